"""Per-request features: inputs whose sub-graph does not depend on candidate-side inputs.

A ranking call scores N candidates for one request (one user): user-side features are the same
in every row, so their sub-graph (a DSSM user tower, DIN's user embedding) could run once per
request instead of once per candidate (``per_request_dedup``).

How the sides are found:

1. Structure: the graph's live nodes are grouped by the set of signature inputs in their data
   ancestry. Inputs that meet in a node *before* the final join (a node fed by every used input)
   belong to one component: a DSSM has two (user tower, item tower); in DIN the target item and
   the behaviour history meet in the attention unit, while ``user_id`` stays on its own.
2. Naming: a component is candidate-side when one of its inputs is named like a candidate
   (``item``, ``ad``, ``target``, ``category``, ``price``...), request-side when its inputs are
   named like a user, context or behaviour history (``user``, ``age``, ``city``, ``hist_...``)
   and none like a candidate. Components that match neither are left out.

With full-log statistics (``analyze --stats``) the finding also says which inputs the logs show to
hold one value per request key (``per_request_in_logs``). The finding lists the request-side
inputs, the candidate-side inputs, the join nodes and the
share of op time the request-side sub-graph takes: at batch size N, deduplication saves up to
``share * (1 - 1/N)`` of it. Without candidate-side inputs (or without names to go by) nothing
is claimed; two towers with unknown sides give an ``info`` finding. A request side doing no
gather, lookup, string or matrix work (only reshapes and arithmetic) is not worth reporting.
"""

from __future__ import annotations

import re
from typing import Any

from recadvisor.analysis.detectors.graph_patterns import HASH_OPS, LOOKUP_FIND_OPS
from recadvisor.analysis.findings import (
    INFO,
    LOW,
    MEDIUM,
    PER_REQUEST_FEATURE,
    DetectorContext,
    Finding,
    make_finding,
    share_text,
)
from recadvisor.model.graph import GATHER_OPS, STRING_OPS, ModelGraph, is_control_input, node_name

NAME = "per_request"
REQUEST = "request"
CANDIDATE = "candidate"
UNKNOWN = "unknown"

# a request-side sub-graph is worth deduplicating only if it does one of these
WORTHWHILE_OPS = (
    GATHER_OPS
    | HASH_OPS
    | LOOKUP_FIND_OPS
    | STRING_OPS
    | frozenset(
        {
            "MatMul",
            "BatchMatMul",
            "BatchMatMulV2",
            "BatchMatMulV3",
            "_FusedMatMul",
            "Conv2D",
            "Conv1D",
            "Einsum",
            "Softmax",
        }
    )
)
HISTORY_TOKENS = frozenset(
    {
        "hist",
        "his",
        "history",
        "seq",
        "sequence",
        "behavior",
        "behaviour",
        "clicked",
        "click",
        "clicks",
        "recent",
        "last",
        "past",
        "watched",
        "viewed",
        "bought",
    }
)
REQUEST_TOKENS = frozenset(
    {
        "user",
        "uid",
        "usr",
        "member",
        "customer",
        "client",
        "query",
        "context",
        "ctx",
        "age",
        "gender",
        "sex",
        "city",
        "country",
        "region",
        "province",
        "location",
        "geo",
        "device",
        "os",
        "platform",
        "session",
        "request",
        "req",
        "profile",
        "hour",
        "weekday",
        "occupation",
        "zip",
        "zipcode",
        "language",
        "lang",
    }
)
CANDIDATE_TOKENS = frozenset(
    {
        "item",
        "iid",
        "cand",
        "candidate",
        "target",
        "ad",
        "ads",
        "adgroup",
        "campaign",
        "product",
        "goods",
        "sku",
        "doc",
        "document",
        "video",
        "movie",
        "song",
        "music",
        "article",
        "news",
        "post",
        "shop",
        "store",
        "brand",
        "cate",
        "category",
        "cat",
        "price",
        "seller",
        "creative",
        "title",
        "tag",
        "tags",
        "genre",
        "author",
    }
)


def name_tokens(name: str) -> list[str]:
    """``histItemId`` / ``hist_item_id`` -> ``["hist", "item", "id"]``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


def side_of_name(name: str) -> str:
    """``request``, ``candidate`` or ``unknown`` from a feature's name."""
    tokens = set(name_tokens(name))
    if tokens & HISTORY_TOKENS:
        return REQUEST
    if tokens & CANDIDATE_TOKENS:
        return CANDIDATE
    if tokens & REQUEST_TOKENS:
        return REQUEST
    return UNKNOWN


def feature_components(graph: ModelGraph) -> list[frozenset[str]]:
    """Groups of used inputs that meet before the final join (see the module docstring)."""
    live = graph.reachable_from_outputs(control=False)
    used: set[str] = set()
    for out in graph.output_nodes.values():
        used |= graph.features_of_node.get(out, frozenset())
    parent = {f: f for f in used}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for name in live:
        feats = graph.features_of_node.get(name, frozenset()) & used
        if len(feats) < 2 or feats == used:
            continue
        first, *rest = sorted(feats)
        for other in rest:
            parent[find(other)] = find(first)
    groups: dict[str, set[str]] = {}
    for f in used:
        groups.setdefault(find(f), set()).add(f)
    return sorted((frozenset(g) for g in groups.values()), key=lambda g: sorted(g))


def component_side(features: frozenset[str]) -> str:
    """A component is candidate-side if any input is, request-side if any is and none is not."""
    sides = {side_of_name(f) for f in features}
    if CANDIDATE in sides:
        return CANDIDATE
    if REQUEST in sides:
        return REQUEST
    return UNKNOWN


def _join_nodes(graph: ModelGraph, request: set[str], live: set[str]) -> list[str]:
    joins = []
    for name in live:
        feats = graph.features_of_node.get(name, frozenset())
        if not feats or feats <= request or not feats & request:
            continue
        for inp in graph.nodes[name].input:
            if is_control_input(inp):
                continue
            src = graph.features_of_node.get(node_name(inp), frozenset())
            if src and src <= request:
                joins.append(name)
                break
    return sorted(joins)


def detect(ctx: DetectorContext) -> list[Finding]:
    """At most one ``per_request_feature`` finding naming the request-side inputs."""
    graph = ctx.graph
    components = feature_components(graph)
    if len(components) < 2:
        return []
    sides = {c: component_side(c) for c in components}
    request = set().union(*(c for c, s in sides.items() if s == REQUEST))
    candidate = set().union(*(c for c, s in sides.items() if s == CANDIDATE))
    unknown = set().union(*(c for c, s in sides.items() if s == UNKNOWN))
    evidence: dict[str, Any] = {
        "components": [sorted(c) for c in components],
        "component_sides": [sides[c] for c in components],
    }
    if not request or not candidate:
        towers = [c for c in components if len(c) > 1]
        if len(towers) < 2:
            return []
        return [
            make_finding(
                PER_REQUEST_FEATURE,
                [],
                [],
                INFO,
                f"the inputs form {len(towers)} towers that meet only at the end ("
                + " | ".join(", ".join(sorted(t)) for t in towers)
                + "), but their names do not say which side is per-request",
                evidence | {"request_inputs": [], "candidate_inputs": []},
                detector=NAME,
            )
        ]
    live = graph.reachable_from_outputs(control=False)
    sub = sorted(
        n for n in live if graph.features_of_node.get(n) and graph.features_of_node[n] <= request
    )
    if not any(graph.nodes[n].op in WORTHWHILE_OPS for n in sub):
        return []  # only reshapes and arithmetic on the request side: nothing to save
    joins = _join_nodes(graph, request, live)
    share = ctx.time_share(sub)
    bs = ctx.reference_batch
    shares = ctx.time_shares(sub)
    savings = {b: s * (1.0 - 1.0 / b) for b, s in shares.items() if b > 0}
    severity = LOW
    if share is not None and share >= 0.2:
        severity = MEDIUM
    evidence.update(
        {
            "request_inputs": sorted(request),
            "candidate_inputs": sorted(candidate),
            "unknown_inputs": sorted(unknown),
            "request_nodes": len(sub),
            "join_nodes": joins,
            "time_share": share,
            "time_share_by_batch": shares,
            "max_saving_by_batch": savings,
        }
    )
    message = (
        f"inputs {', '.join(f'`{f}`' for f in sorted(request))} feed a {len(sub)}-node "
        f"sub-graph ({share_text(share, bs)}) that does not depend on the candidate inputs "
        f"{', '.join(f'`{f}`' for f in sorted(candidate))}: it could run once per request "
        "instead of once per candidate"
    )
    if ctx.log_stats is not None and ctx.log_stats.doc.get("per_request"):
        checks = ctx.log_stats.doc["per_request"]
        follows = {
            key: sorted(c["input"] for c in checks if c["key"] == key and c["per_request"])
            for key in dict.fromkeys(c["key"] for c in checks)
        }
        evidence["per_request_in_logs"] = {
            "source": ctx.log_stats.source(),
            "one_value_per_key": follows,
            "checks": checks,
        }
        message += "; " + "; ".join(
            f"in the {ctx.log_stats.source()} these hold one value per `{key}`: "
            + (", ".join(f"`{f}`" for f in inputs) or "none")
            for key, inputs in follows.items()
        )
    return [
        make_finding(
            PER_REQUEST_FEATURE, request, joins, severity, message, evidence, detector=NAME
        )
    ]
