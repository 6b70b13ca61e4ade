"""Mapping runtime kernels back to nodes of the frozen graph, fused kernels included.

Runtime node names are mapped by exact name, then with the runner's prefix removed, then with
Grappler's renaming undone, then by a unique path suffix whose op type is compatible. Fused
kernels are charged to the graph node heading the fused chain.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from recadvisor.analysis.profile.results import OpTiming
from recadvisor.analysis.profile.xplane import RuntimeOpTime
from recadvisor.analysis.stages import DENSE_HEAD_OPS, DENSE_TAIL_OPS, is_dense_kernel
from recadvisor.model.graph import ModelGraph, is_control_input, node_name

log = logging.getLogger(__name__)

# Node-name prefix GraphRunner's import_graph_def gives every imported node.
RUNNER_PREFIX = "model/"
# How many unmapped runtime names BatchProfile keeps for diagnosis.
MAX_UNMAPPED_LISTED = 20


_GRAPPLER_SCOPES = frozenset(
    {
        "ArithmeticOptimizer",
        "ConstantFolding",
        "Remapper",
        "DependencyOptimizer",
        "LayoutOptimizer",
        "MemoryOptimizer",
        "LoopOptimizer",
        "ScopedAllocatorOptimizer",
        "AutoMixedPrecision",
        "PinToHostOptimizer",
        "ImplementationSelector",
    }
)
_GRAPPLER_SUFFIX = re.compile(r"(-folded(-\d+)?|_cf__\d+|/_\d+__cf__\d+)$")


def _op_compatible(runtime_op: str, graph_op: str) -> bool:
    """Whether a kernel of type ``runtime_op`` can stand for a graph node of ``graph_op``."""
    if runtime_op == graph_op:
        return True
    base = re.sub(r"^_(MklNative|Mkl)", "", runtime_op)
    if base == graph_op:
        return True
    if runtime_op == "ReadVariableOp":
        return graph_op in ("Identity", "IdentityN")
    if runtime_op in ("ResourceGather", "ResourceGatherNd"):
        return graph_op in ("GatherV2", "Gather", "GatherNd")
    if runtime_op == "_TensorToHashBucketFast":
        return graph_op == "StringToHashBucketFast"
    if "Fused" in runtime_op:
        return (
            graph_op in DENSE_HEAD_OPS
            or graph_op in DENSE_TAIL_OPS
            or graph_op in ("Add", "AddV2", "Mul", "FusedBatchNorm", "FusedBatchNormV3")
        )
    return False


def _grappler_variants(name: str) -> list[str]:
    """Candidate original names for a node name Grappler may have rewritten."""
    variants = []
    stripped = _GRAPPLER_SUFFIX.sub("", name)
    if stripped != name:
        variants.append(stripped)
    parts = stripped.split("/")
    if any(p in _GRAPPLER_SCOPES for p in parts):
        idx = max(i for i, p in enumerate(parts) if p in _GRAPPLER_SCOPES)
        head, rest = parts[:idx], parts[idx + 1 :]
        if rest:
            first = rest[0]
            # "AddOpsRewrite_add" -> "add"; "Rule_int64_Cast" -> "int64_Cast" -> "Cast"
            pieces = first.split("_")
            for k in range(len(pieces)):
                candidate = "_".join(pieces[k:])
                if candidate:
                    variants.append("/".join([*head, candidate, *rest[1:]]))
    return variants


class RuntimeNameMapper:
    """Maps runtime kernel names from a trace to nodes of a frozen ModelGraph.

    Args:
        graph: the frozen graph.
        strip_prefixes: prefixes the runner adds to every node name (e.g. ``model/``).
    """

    def __init__(self, graph: ModelGraph, strip_prefixes: Sequence[str] = ()) -> None:
        self.graph = graph
        self.strip_prefixes = tuple(strip_prefixes)
        self._suffix_index: dict[str, list[str]] | None = None
        self._cache: dict[tuple[str, str], str | None] = {}

    def _suffixes(self) -> dict[str, list[str]]:
        if self._suffix_index is None:
            index: dict[str, list[str]] = defaultdict(list)
            for name in self.graph.nodes:
                parts = name.split("/")
                for k in range(1, len(parts) - 1):  # proper suffixes of >= 2 components
                    index["/".join(parts[k:])].append(name)
            self._suffix_index = dict(index)
        return self._suffix_index

    def _candidates(self, name: str) -> list[str]:
        names = [name]
        for prefix in self.strip_prefixes:
            if name.startswith(prefix):
                names.append(name[len(prefix) :])
        for n in list(names):
            names.extend(_grappler_variants(n))
        return list(dict.fromkeys(names))

    def map(self, runtime_name: str, runtime_op: str) -> str | None:
        """The graph node a runtime kernel ran for, or None when it cannot be told.

        Args:
            runtime_name: the node name in the trace.
            runtime_op: the kernel type in the trace.
        """
        key = (runtime_name, runtime_op)
        if key not in self._cache:
            self._cache[key] = self._map(runtime_name, runtime_op)
        return self._cache[key]

    def _map(self, runtime_name: str, runtime_op: str) -> str | None:
        nodes = self.graph.nodes
        candidates = self._candidates(runtime_name)
        for name in candidates:
            if name in nodes:
                return name
        suffixes = self._suffixes()
        for name in candidates:
            parts = name.split("/")
            # drop leading scopes of the runtime name (runtime longer), and look the rest up
            # both as a full graph name and as a suffix of longer graph names (graph longer)
            for k in range(len(parts) - 1 if len(parts) > 1 else 1):
                tail = "/".join(parts[k:])
                hits = ([tail] if tail in nodes else []) + suffixes.get(tail, [])
                hits = [h for h in dict.fromkeys(hits) if _op_compatible(runtime_op, nodes[h].op)]
                if len(hits) == 1:
                    return hits[0]
                if len(hits) > 1:
                    break  # ambiguous: a shorter tail would only be more so
        return None


_HASH_ABSORBED_OPS = frozenset({"AsString"})
_FUSION_CHAIN_OPS = DENSE_TAIL_OPS | frozenset({"Add", "AddV2", "Mul", "FusedBatchNormV3"})
# Shape-only ops Grappler moves out of a fusion: a Keras Dense on a 3-D input runs Reshape ->
# MatMul -> Add -> Reshape -> Relu, and the fused kernel named after the Relu covers the
# MatMul, the Add and the Relu. The walk back goes through them; they are not fused nodes.
_FUSION_RESHAPE_OPS = frozenset({"Reshape", "Squeeze", "ExpandDims"})


def _data_inputs(graph: ModelGraph, name: str) -> list[str]:
    node = graph.nodes[name]
    return [
        node_name(i) for i in node.input if not is_control_input(i) and node_name(i) in graph.nodes
    ]


def _fusion_head(graph: ModelGraph, name: str) -> tuple[str, list[str]]:
    """For a node named by a fused dense kernel: the MatMul/Conv heading it and the chain."""
    chain: list[str] = []
    current = name
    for _ in range(16):
        op = graph.nodes[current].op
        if op in DENSE_HEAD_OPS:
            return current, chain[::-1]
        inputs = _data_inputs(graph, current)
        if op in _FUSION_RESHAPE_OPS and inputs:
            current = inputs[0]  # the reshaped tensor; the other input is the shape
            continue
        if op not in _FUSION_CHAIN_OPS:
            break
        chain.append(current)
        heads = [i for i in inputs if graph.nodes[i].op in DENSE_HEAD_OPS]
        tails = [
            i
            for i in inputs
            if graph.nodes[i].op in _FUSION_CHAIN_OPS or graph.nodes[i].op in _FUSION_RESHAPE_OPS
        ]
        if heads:
            current = heads[0]
        elif len(tails) == 1:
            current = tails[0]
        else:
            break
    return name, []


def _forward_fused(graph: ModelGraph, head: str, timed: set[str]) -> list[str]:
    """Single-consumer tail ops after ``head`` that did not run on their own."""
    chain: list[str] = []
    current = head
    for _ in range(16):
        consumers = graph.consumers.get(current, [])
        if len(consumers) != 1:
            break
        nxt = consumers[0]
        if graph.nodes[nxt].op not in _FUSION_CHAIN_OPS or nxt in timed:
            break
        chain.append(nxt)
        current = nxt
    return chain


@dataclass
class _NodeAccumulator:
    self_ps: int = 0
    runtime_ops: set[str] = field(default_factory=set)
    fused: list[str] = field(default_factory=list)


def attribute_runtime_times(
    graph: ModelGraph,
    op_times: Iterable[RuntimeOpTime],
    calls: int,
    strip_prefixes: Sequence[str] = (),
) -> tuple[tuple[OpTiming, ...], float, dict[str, float]]:
    """Map runtime kernel times onto graph nodes (fusions resolved) and average per call.

    Args:
        graph: the frozen graph.
        op_times: the kernels read from a trace.
        calls: how many model calls the trace covers.
        strip_prefixes: prefixes the runner adds to node names.

    Returns:
        (per-node timings sorted by time, unmapped microseconds per call, the largest unmapped
        kernels as ``name:Op`` -> microseconds per call).
    """
    mapper = RuntimeNameMapper(graph, strip_prefixes)
    per_node: dict[str, _NodeAccumulator] = defaultdict(_NodeAccumulator)
    unmapped: dict[str, int] = defaultdict(int)
    fused_heads: set[str] = set()
    for rt in op_times:
        node = mapper.map(rt.name, rt.op)
        if node is None:
            unmapped[f"{rt.name}:{rt.op}"] += rt.self_ps
            continue
        graph_op = graph.nodes[node].op
        target, absorbed = node, []
        fused_dense = "Fused" in rt.op and is_dense_kernel(rt.op)
        if fused_dense and graph_op not in DENSE_HEAD_OPS:
            target, absorbed = _fusion_head(graph, node)
        elif fused_dense:
            fused_heads.add(node)
        elif rt.op == "_TensorToHashBucketFast":
            absorbed = [
                i for i in _data_inputs(graph, node) if graph.nodes[i].op in _HASH_ABSORBED_OPS
            ]
        acc = per_node[target]
        acc.self_ps += rt.self_ps
        acc.runtime_ops.add(rt.op)
        acc.fused.extend(a for a in absorbed if a != target and a not in acc.fused)
    timed = set(per_node)
    for head in fused_heads:
        acc = per_node[head]
        acc.fused.extend(n for n in _forward_fused(graph, head, timed) if n not in acc.fused)
    scale = 1.0 / (1e6 * max(calls, 1))  # picoseconds in total -> microseconds per call
    mapped_total = sum(a.self_ps for a in per_node.values())
    timings = [
        OpTiming(
            node=name,
            op=graph.nodes[name].op,
            runtime_ops=tuple(sorted(acc.runtime_ops)),
            self_us=acc.self_ps * scale,
            share=acc.self_ps / mapped_total if mapped_total else 0.0,
            fused_nodes=tuple(acc.fused),
        )
        for name, acc in per_node.items()
    ]
    timings.sort(key=lambda t: (-t.self_us, t.node))
    top_unmapped = sorted(unmapped.items(), key=lambda kv: -kv[1])[:MAX_UNMAPPED_LISTED]
    if unmapped:
        log.debug("unmapped runtime kernels: %s", top_unmapped)
    return (
        tuple(timings),
        sum(unmapped.values()) * scale,
        {k: v * scale for k, v in top_unmapped},
    )
