"""per_request_dedup: per-request (user-side) inputs are sent once and their sub-graph runs once.

What it rewrites: a ranking request scores N candidates for one user, yet the signature takes the
user's features N times and computes the user tower N times. This pass splits the inputs into
request inputs (the plan's ``request_inputs``, or detected from their names: ``user``, ``uid``,
``hist``, ``query``, ``context``, ``session``... tokens, plus the inputs that hold one value per
value of such an input in the sample rows, like a user's age) and candidate inputs (the rest).
Request inputs get shape ``[1, ...]``; every node computed from request inputs alone now runs on
one row. Where such a tensor meets the candidate side (the first node that reads both) and where
it is a signature output, it is broadcast to the candidates' batch: ``BroadcastTo(t,
concat([N], shape(t)[1:]))`` with ``N = shape(candidate input)[0]``; a candidate-side ``Shape``
of a request-side tensor (DIN broadcasts the target item to ``tf.shape(history)``) reads the
broadcast tensor instead. Each request input gets an encoding of kind ``broadcast``: the client
sends one row.

Checks before accepting: on a sample request (row 0's request inputs repeated for every
candidate row) the rewritten graph must equal the original to 1e-5, and every broadcast tensor
must be batch-major (its first dimension is the batch). The pipeline then checks it again on
several sample requests (``recadvisor.rewrite.pipeline``).

When it refuses: no request inputs found or none left for candidates; no node mixes the two
sides; a request-side tensor reaching the candidate side is not batch-major (e.g. a shape or a
reduction over the batch); fewer than 2 sample rows; the check above fails.

Exactness: exact for requests whose request inputs are the same on every row (which is what the
``broadcast`` encoding enforces). Changes the contract.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recadvisor.model.edits import add_const, add_node, reserve_name
from recadvisor.model.graph import ModelGraph, canonical_tensor, is_control_input, node_name
from recadvisor.model.runtime import GraphRunner, probe_tensors
from recadvisor.model.spec import SignatureSpec, TensorInfo
from recadvisor.rewrite.base import (
    EXACT,
    InputEncoding,
    PassRefused,
    PassResult,
    RewriteContext,
    RewritePass,
)
from recadvisor.rewrite.encodings import encode_feeds, one_request_feeds

log = logging.getLogger(__name__)

REQUEST_TOKENS = frozenset(
    {
        "user",
        "users",
        "uid",
        "hist",
        "history",
        "request",
        "query",
        "context",
        "profile",
        "member",
        "customer",
        "session",
        "visitor",
        "viewer",
    }
)
PARITY_TOLERANCE = 1e-5
MIN_REPEATED_GROUPS = 10  # request ids seen twice or more before the sample rows are trusted


def detect_request_inputs(keys: Sequence[str]) -> list[str]:
    """Inputs whose names say they describe the request (user, history, query, context...).

    Args:
        keys: signature input keys.

    Returns:
        The keys that look per-request.
    """
    found = []
    for key in keys:
        tokens = set(re.split(r"[^a-z0-9]+", key.lower()))
        if tokens & REQUEST_TOKENS or key.lower().startswith("u_"):
            found.append(key)
    return found


def _row_keys(value: np.ndarray) -> list[Any]:
    """One hashable key per row (the row's bytes for multi-element rows)."""
    arr = np.asarray(value)
    if arr.ndim <= 1:
        return arr.tolist()
    return [tuple(r.ravel().tolist()) for r in arr]


def follows_request(
    feeds: Mapping[str, np.ndarray], seeds: Sequence[str], min_groups: int = MIN_REPEATED_GROUPS
) -> list[str]:
    """Inputs that, in the sample rows, hold one value per value of a request id.

    A user's age or city is the same on every row of that user, while an item's features vary
    between the user's rows. An input is taken as per-request when, for a seed input with at
    least ``min_groups`` values seen on two rows or more, it never varies within a seed value.

    Args:
        feeds: sample rows (signature key -> array).
        seeds: request inputs found by name (e.g. ``user_id``).
        min_groups: repeated seed values needed before the data is trusted.

    Returns:
        The other inputs that follow a seed, in ``feeds`` order.
    """
    found: list[str] = []
    for seed in seeds:
        groups: dict[Any, list[int]] = {}
        for i, k in enumerate(_row_keys(feeds[seed])):
            groups.setdefault(k, []).append(i)
        repeated = [rows for rows in groups.values() if len(rows) > 1]
        if len(repeated) < min_groups:
            continue
        for key, value in feeds.items():
            if key in seeds or key in found:
                continue
            rows = _row_keys(value)
            if all(len({_hashable(rows[i]) for i in idx}) == 1 for idx in repeated):
                found.append(key)
    return found


def _follows_in_logs(context: RewriteContext, seeds: Sequence[str]) -> set[str] | None:
    """Inputs the full-log stats show to hold one value per value of a seed (``None``: the
    stats checked none of the seeds, or there are no stats)."""
    stats = context.log_stats
    if stats is None:
        return None
    found: set[str] | None = None
    for seed in seeds:
        inputs = stats.per_request_inputs(seed)
        if inputs is not None:
            found = (found or set()) | set(inputs)
    return found


def _data_source(context: RewriteContext) -> str:
    if context.log_stats is not None and context.log_stats.doc.get("per_request"):
        return context.log_stats.source()
    return "sample rows"


def _hashable(value: Any) -> Any:
    return value if not isinstance(value, float) or value == value else "nan"


def _frontier(
    graph: ModelGraph, request: set[str], candidate: set[str]
) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Request-only tensors read by candidate-side nodes, and request-only outputs.

    Returns:
        (tensor -> candidate-side reader nodes, output key -> request-only tensor).
    """
    feats = graph.features_of_node

    def request_only(name: str) -> bool:
        f = feats.get(name, frozenset())
        return bool(f) and f <= request

    crossings: dict[str, set[str]] = {}
    for node in graph.graph_def.node:
        if not (feats.get(node.name, frozenset()) & candidate):
            continue
        for inp in node.input:
            if not is_control_input(inp) and request_only(node_name(inp)):
                crossings.setdefault(canonical_tensor(inp), set()).add(node.name)
    outputs = {
        k: canonical_tensor(t)
        for k, t in graph.output_tensors.items()
        if request_only(node_name(t))
    }
    return crossings, outputs


def _shape_crossings(
    graph: ModelGraph, crossings: dict[str, set[str]]
) -> dict[str, tuple[str, set[str]]]:
    """Move ``Shape`` crossings onto the tensor they measure (changes ``crossings`` in place).

    The candidate side may read the shape of a request-side tensor (DIN broadcasts the target
    item to ``tf.shape(history)``); that shape must be the candidates' batch, so the candidate
    side reads ``Shape`` of the broadcast tensor instead.

    Returns:
        Shape tensor -> (the request-side tensor it measures, its candidate-side readers).
    """
    nodes = {n.name: n for n in graph.graph_def.node}
    moved: dict[str, tuple[str, set[str]]] = {}
    for t in list(crossings):
        node = nodes.get(node_name(t))
        if node is None or node.op != "Shape" or not node.input:
            continue
        source = canonical_tensor(node.input[0])
        moved[t] = (source, crossings.pop(t))
        crossings.setdefault(source, set())
    return moved


def _add_shape_slice(
    graph_def: Any, name: str, shape: str, bounds: tuple[str, str, str], end_mask: int
) -> None:
    """``shape[begin:end:stride]`` of an int32 shape vector (``end_mask=1``: to the end).

    ``bounds`` names the (begin, end, stride) constant nodes.
    """
    add_node(
        graph_def,
        name,
        "StridedSlice",
        [shape, *bounds],
        T="dtype:int32",
        Index="dtype:int32",
        begin_mask=0,
        end_mask=end_mask,
        ellipsis_mask=0,
        new_axis_mask=0,
        shrink_axis_mask=0,
    )


def _np_dtype_name(value: np.ndarray) -> str:
    return "string" if value.dtype.kind in "OSU" else value.dtype.name


class PerRequestDedupPass(RewritePass):
    """Request inputs given once, their sub-graph run once (see the module docstring)."""

    name = "per_request_dedup"
    exactness = EXACT
    changes_contract = True

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Make request inputs ``[1, ...]`` and broadcast where they meet the candidates.

        Args:
            graph: the current stage.
            params: ``request_inputs`` (list of keys; default: detected from names).
            context: sample inputs in the current contract (at least 2 rows).

        Returns:
            The rewritten graph and one ``broadcast`` encoding per request input.
        """
        keys = list(graph.signature.inputs)
        given = params.get("request_inputs")
        by_data: list[str] = []
        if given:
            request = list(given)
        else:
            request = detect_request_inputs(keys)
            from_logs = _follows_in_logs(context, request)
            present = {k: np.asarray(context.feeds[k]) for k in keys if k in context.feeds}
            if from_logs is not None:
                by_data = [k for k in keys if k in from_logs and k not in request]
                request += by_data
            elif len(present) == len(keys) and request:
                by_data = follows_request(present, request)
                request += by_data
        unknown = [k for k in request if k not in graph.signature.inputs]
        if unknown:
            raise PassRefused(
                f"per_request_dedup: request_inputs {unknown} are not signature "
                f"inputs; inputs are {', '.join(keys)}"
            )
        candidate = [k for k in keys if k not in request]
        if not request or not candidate:
            raise PassRefused(
                "per_request_dedup: cannot split inputs into request and candidate sides "
                f"(request: {request or 'none'}); name them with request_inputs in the plan"
            )
        shapes = {k: graph.signature.inputs[k].shape for k in keys}
        if any(not shapes[k] for k in keys):
            raise PassRefused(
                "per_request_dedup: every input needs a known rank >= 1 (a batch dimension)"
            )
        crossings, request_outputs = _frontier(graph, set(request), set(candidate))
        if not crossings:
            raise PassRefused(
                f"per_request_dedup: no node reads both request inputs ({', '.join(request)}) "
                f"and candidate inputs ({', '.join(candidate)})"
            )
        feeds = {k: np.asarray(context.feeds[k]) for k in keys if k in context.feeds}
        if len(feeds) != len(keys) or min(v.shape[0] for v in feeds.values()) < 2:
            raise PassRefused("per_request_dedup needs sample data with at least 2 rows")
        sample = one_request_feeds(feeds, request)
        shape_reads = _shape_crossings(graph, crossings)
        tensors = sorted(set(crossings) | set(request_outputs.values()))
        probed = probe_tensors(graph, tensors, sample)
        batch = next(iter(sample.values())).shape[0]
        for t in tensors:
            if probed[t].ndim == 0 or probed[t].shape[0] != batch:
                raise PassRefused(
                    f"per_request_dedup: request-side tensor '{t}' (shape {probed[t].shape}) is "
                    "not batch-major where it meets the candidate side"
                )

        gd = graph.copy_graph_def()
        names = {n.name: n for n in gd.node}
        taken = set(names)

        for key in request:
            ph = names[graph.input_nodes[key]]
            if ph.attr["shape"].shape.dim:
                ph.attr["shape"].shape.dim[0].size = 1
        cand = candidate[0]
        cand_node = graph.input_nodes[cand]
        consts = {}
        for label, value in {"zero": [0], "one": [1], "axis": 0}.items():
            consts[label] = reserve_name(taken, f"per_request/{label}")
            add_const(gd, consts[label], np.array(value, np.int32))
        zero, one = consts["zero"], consts["one"]
        cand_shape = reserve_name(taken, "per_request/candidate_shape")
        add_node(
            gd,
            cand_shape,
            "Shape",
            [cand_node],
            T=f"dtype:{graph.signature.inputs[cand].dtype}",
            out_type="dtype:int32",
        )
        n_rows = reserve_name(taken, "per_request/candidates")
        _add_shape_slice(gd, n_rows, cand_shape, (zero, one, one), end_mask=0)
        broadcast_of: dict[str, str] = {}
        for t in tensors:
            dtype = _np_dtype_name(probed[t])
            base = node_name(t)
            shape = reserve_name(taken, f"{base}/per_request_shape")
            add_node(gd, shape, "Shape", [t], T=f"dtype:{dtype}", out_type="dtype:int32")
            tail = reserve_name(taken, f"{base}/per_request_tail")
            _add_shape_slice(gd, tail, shape, (one, zero, one), end_mask=1)
            target = reserve_name(taken, f"{base}/per_request_target")
            add_node(
                gd,
                target,
                "ConcatV2",
                [n_rows, tail, consts["axis"]],
                N=2,
                T="dtype:int32",
                Tidx="dtype:int32",
            )
            out = reserve_name(taken, f"{base}/per_request_broadcast")
            rewire_readers = crossings.get(t, set())
            for n in gd.node:
                if n.name in rewire_readers:
                    for pos, inp in enumerate(n.input):
                        if not is_control_input(inp) and canonical_tensor(inp) == t:
                            n.input[pos] = out
            add_node(gd, out, "BroadcastTo", [t, target], T=f"dtype:{dtype}", Tidx="dtype:int32")
            broadcast_of[t] = out + ":0"
        for t, (source, readers) in shape_reads.items():
            shape_of = reserve_name(taken, f"{node_name(t)}/per_request_batch_shape")
            old = names[node_name(t)]
            add_node(
                gd,
                shape_of,
                "Shape",
                [broadcast_of[source]],
                T=old.attr["T"],
                out_type=old.attr["out_type"],
            )
            for n in gd.node:
                if n.name in readers:
                    for pos, inp in enumerate(n.input):
                        if not is_control_input(inp) and canonical_tensor(inp) == t:
                            n.input[pos] = shape_of + ":0"
        output_tensors = dict(graph.output_tensors)
        for key, t in request_outputs.items():
            output_tensors[key] = broadcast_of[t]
        new_inputs = dict(graph.signature.inputs)
        encodings = []
        for key in request:
            info = graph.signature.inputs[key]
            new_inputs[key] = TensorInfo(key, info.dtype, (1, *info.shape[1:]))
            encodings.append(InputEncoding(key, "broadcast", info.dtype, info.dtype, {"rows": 1}))
        signature = SignatureSpec(graph.signature.key, new_inputs, dict(graph.signature.outputs))
        new_graph = graph.replace(graph_def=gd, signature=signature, output_tensors=output_tensors)
        before = GraphRunner(graph)(sample)
        after = GraphRunner(new_graph)(encode_feeds(encodings, sample))
        diff = max(
            float(
                np.max(np.abs(np.asarray(before[k], np.float64) - np.asarray(after[k], np.float64)))
            )
            if np.asarray(before[k]).dtype.kind in "fiub"
            else 0.0
            for k in before
        )
        if diff > PARITY_TOLERANCE:
            raise PassRefused(
                f"per_request_dedup: the deduplicated graph differs by {diff:.3g} on a sample "
                "request; the request side is not row-wise (leave the pass off)"
            )
        notes = [
            f"request inputs sent once ([1, ...]): {', '.join(request)}"
            + ("" if given else " (detected from their names; set request_inputs to change)"),
            *(
                [
                    f"{', '.join(by_data)}: one value per request id in the "
                    f"{_data_source(context)}, so sent once as well"
                ]
                if by_data
                else []
            ),
            f"candidate inputs ([N, ...]): {', '.join(candidate)}",
            f"{len(tensors)} request-side tensors broadcast to the candidates' batch",
        ]
        stats = {
            "request_inputs": request,
            "candidate_inputs": candidate,
            "broadcasts": len(tensors),
            "max_abs_diff_on_sample_request": diff,
            "nodes_before": len(graph.graph_def.node),
            "nodes_after": len(gd.node),
        }
        log.info("per_request_dedup: %d request inputs, %d broadcasts", len(request), len(tensors))
        return PassResult(self.name, new_graph, stats, tuple(encodings), tuple(notes))
