"""String ops on the serving path, grouped by the feature they serve, with their cost.

Flags every node an output needs whose op works on strings: ``AsString``, the
``StringToHashBucket*`` family, string-keyed ``LookupTableFind*``, ``StringSplit``,
``StringToNumber``, regex ops, ``StringJoin``, ``Substr``..., string comparisons (``Equal`` /
``NotEqual`` on strings, e.g. padding masks) and feature crosses (``SparseCross*``: the values of
several inputs formatted and hashed together). One finding per feature (or per set of features
for ops that mix several), with the op types, the share of op time they take per profiled batch
size, and the bucket counts / vocabulary sizes involved. String ops block onnxruntime and cost
CPU at every call; computing ids upstream (``ids_upstream``) or bucketizing numbers
(``numeric_bucketize``) removes them.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from recadvisor.analysis.detectors.graph_patterns import (
    HASH_OPS,
    LOOKUP_FIND_OPS,
    dtype_name,
    find_hash_ops,
    find_table_lookups,
)
from recadvisor.analysis.findings import (
    INFO,
    LOW,
    STRING_OP,
    DetectorContext,
    Finding,
    make_finding,
    severity_for_share,
    share_text,
)
from recadvisor.analysis.stages import FEATURE_CROSS_OPS
from recadvisor.model.graph import STRING_OPS, ModelGraph

NAME = "string_ops"
STRING_COMPARE_OPS = frozenset({"Equal", "NotEqual"})


def string_nodes(graph: ModelGraph) -> list[str]:
    """Nodes that outputs need and that work on strings (ops, string lookups, string compares)."""
    live = graph.reachable_from_outputs(control=False)
    lookups = {t.node: t for t in find_table_lookups(graph)}
    found = []
    for node in graph.graph_def.node:
        if node.name not in live:
            continue
        if node.op in STRING_OPS or node.op in FEATURE_CROSS_OPS:
            found.append(node.name)
        elif node.op in LOOKUP_FIND_OPS:
            if lookups.get(node.name) is None or lookups[node.name].key_dtype in (
                "string",
                "unknown",
            ):
                found.append(node.name)
        elif node.op in STRING_COMPARE_OPS and "T" in node.attr:
            if dtype_name(node.attr["T"].type) == "string":
                found.append(node.name)
    return found


def detect(ctx: DetectorContext) -> list[Finding]:
    """One ``string_op`` finding per feature (set) served by string ops."""
    graph = ctx.graph
    groups: dict[frozenset[str], list[str]] = defaultdict(list)
    for name in string_nodes(graph):
        groups[graph.features_of_node.get(name, frozenset())].append(name)
    hashes = {h.node: h for h in find_hash_ops(graph)}
    lookups = {t.node: t for t in find_table_lookups(graph)}
    bs = ctx.reference_batch
    findings = []
    for feats, nodes in sorted(groups.items(), key=lambda kv: sorted(kv[0])):
        op_types = Counter(graph.nodes[n].op for n in nodes)
        shares = ctx.time_shares(nodes)
        share = shares.get(bs) if bs is not None else None
        micros = {b: sum(ctx.node_micros(b).get(n, 0.0) for n in nodes) for b in ctx.batch_sizes}
        buckets = sorted(
            {
                hashes[n].num_buckets
                for n in nodes
                if n in hashes and hashes[n].num_buckets is not None
            }
        )
        vocab_sizes = sorted({lookups[n].size for n in nodes if n in lookups})
        ops_text = ", ".join(
            f"{op}" + (f" x{c}" if c > 1 else "") for op, c in sorted(op_types.items())
        )
        who = (
            "feature " + ", ".join(f"`{f}`" for f in sorted(feats))
            if feats
            else "no signature input (constants)"
        )
        message = (
            f"{who} goes through {len(nodes)} string op(s) ({ops_text}): {share_text(share, bs)}"
        )
        input_dtypes = {
            f: graph.signature.inputs[f].dtype for f in feats if f in graph.signature.inputs
        }
        severity = severity_for_share(share, high=0.10, medium=0.03, default=LOW)
        if not feats:
            severity = INFO
        findings.append(
            make_finding(
                STRING_OP,
                feats,
                nodes,
                severity,
                message,
                evidence={
                    "op_types": dict(op_types),
                    "time_share": share,
                    "time_share_by_batch": shares,
                    "time_us_by_batch": micros,
                    "input_dtypes": input_dtypes,
                    "num_buckets": buckets,
                    "vocabulary_sizes": vocab_sizes,
                    "hashes": sorted(n for n in nodes if graph.nodes[n].op in HASH_OPS),
                    "lookups": sorted(n for n in nodes if graph.nodes[n].op in LOOKUP_FIND_OPS),
                },
                detector=NAME,
            )
        )
    return findings
