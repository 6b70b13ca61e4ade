"""Per-op CPU profile and end-to-end latency of a model, at several batch sizes.

Method (see DESIGN.md, "Per-op timing"):

1. Batches are cut from the sample feeds by cycling rows; a few distinct batches per batch size
   are converted to tensors up front and used in turn.
2. After ``warmup`` calls, ``calls`` calls are timed one by one with ``time.perf_counter`` (not
   under the profiler) to give the latency percentiles.
3. ``trace_calls`` more calls run under ``tf.profiler.experimental.start/stop``, on a fresh
   instance of the function (see "Why a fresh instance" below) after a few untraced calls
   (:func:`trace_warmup_calls`). The trace's ``.xplane.pb`` host plane has one event per executed
   kernel, named ``node_name:OpType`` with the runtime kernel as display name. We take each
   kernel's self time (its duration minus kernel events nested in it on the same thread), sum it
   per node and divide by ``trace_calls``.
4. Runtime node names are mapped back to nodes of the frozen :class:`ModelGraph`: exact name,
   then with the runner's prefix removed, then with Grappler's renaming undone
   (``ArithmeticOptimizer/Rule_name``, ``-folded`` suffixes), then by a unique path suffix whose
   op type is compatible. Fused kernels are charged to the graph nodes they replace:
   ``_MklNativeFusedMatMul``/``_FusedMatMul``/``_FusedConv2D`` (named after the last node of the
   fusion, e.g. the ``Relu``) go to the ``MatMul``/``Conv`` node heading the fused chain, the
   chain's other nodes are listed in :attr:`OpTiming.fused_nodes`; ``_TensorToHashBucketFast``
   goes to the hash node and lists the ``AsString`` it absorbed. What cannot be mapped is kept in
   :attr:`BatchProfile.unmapped_us`.

Timings under the profiler are inflated by the tracing itself; use ``self_us`` and ``share`` to
rank ops, and :class:`LatencyStats` (measured without the profiler) for latency.

Why a fresh instance: TensorFlow's executor keeps a running cost estimate per kernel (it starts at
1e8 cycles and decays by 0.9 per untraced call); once it falls below 8000 cycles (after ~90 calls)
the kernel counts as inexpensive, runs inline, and is traced only at TraceMe level 3. On TF 2.21
``tf.profiler.experimental.start`` ignores ``ProfilerOptions`` (``host_tracer_level=3`` and even
``python_tracer_level=1`` change nothing: the host tracer stays at level 2), so a warmed-up model
showed only its 4-8 most expensive kernels, at batch 1 and at 256 alike. Tracing does not update
the estimates, so the trace runs on a new instantiation of the function (the call's
``config_proto`` carries a unique ``session_metadata.name``, which is part of the instantiation
key): every kernel then still counts as expensive and is recorded. The latency percentiles are
measured on the original, warmed-up instance.

The model profiled is the unmodified loaded signature function for TF2 SavedModels. TF1 models
have no such function (``LoadedModel.function is None``): their frozen graph is profiled through
:class:`~recadvisor.model.runtime.GraphRunner` instead, and :attr:`Profile.target` says so.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from recadvisor.analysis.stages import DENSE_HEAD_OPS, DENSE_TAIL_OPS, is_dense_kernel
from recadvisor.errors import DataError, RecAdvisorError
from recadvisor.model.graph import ModelGraph, is_control_input, node_name
from recadvisor.model.load import LoadedModel, first_line
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)

TARGET_SIGNATURE = "loaded_signature"
TARGET_FROZEN = "frozen_graph"
# Node-name prefix GraphRunner's import_graph_def gives every imported node.
RUNNER_PREFIX = "model/"
# At most this many distinct batches per batch size are prepared and used in turn.
MAX_DISTINCT_BATCHES = 8
# How many unmapped runtime names BatchProfile keeps for diagnosis.
MAX_UNMAPPED_LISTED = 20
# At most this many untraced calls on the fresh function instance before its trace (at least 1,
# which builds the instance): enough to warm caches and the allocator, far below the ~90 calls
# after which the executor would treat kernels as inexpensive.
TRACE_WARMUP_CALLS = 10
# Names the fresh function instances (one per trace) apart; see "Why a fresh instance" above.
_INSTANCE_TAGS = itertools.count()

ProgressCallback = Callable[[str, int, int], None]


# --------------------------------------------------------------------------- results
class OpTimingDict(TypedDict):
    """``OpTiming.to_dict()``: one profiled graph node."""

    node: str
    op: str
    runtime_ops: list[str]
    self_us: float
    share: float
    fused_nodes: list[str]


class LatencyStatsDict(TypedDict):
    """``LatencyStats.to_dict()``, in milliseconds."""

    batch_size: int
    calls: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float


@dataclass(frozen=True)
class OpTiming:
    """CPU time of one graph node at one batch size.

    Attributes:
        node: node name in the frozen ModelGraph (fused runtime kernels mapped back).
        op: the node's graph op type, e.g. ``StringToHashBucketFast``.
        runtime_ops: the kernels that actually ran for it, e.g. ``_TensorToHashBucketFast``.
        self_us: mean microseconds per model call (under the profiler).
        share: fraction of the mapped op time at this batch size (shares sum to 1).
        fused_nodes: graph nodes whose work ran inside this node's fused kernel (their own time
            is included here), e.g. the ``BiasAdd`` and ``Relu`` of a fused ``MatMul``.
    """

    node: str
    op: str
    runtime_ops: tuple[str, ...]
    self_us: float
    share: float
    fused_nodes: tuple[str, ...] = ()

    def to_dict(self) -> OpTimingDict:
        """JSON form."""
        return {
            "node": self.node,
            "op": self.op,
            "runtime_ops": list(self.runtime_ops),
            "self_us": self.self_us,
            "share": self.share,
            "fused_nodes": list(self.fused_nodes),
        }


@dataclass(frozen=True)
class LatencyStats:
    """End-to-end latency of ``calls`` timed calls, in milliseconds."""

    batch_size: int
    calls: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float

    def to_dict(self) -> LatencyStatsDict:
        """JSON form."""
        return {
            "batch_size": self.batch_size,
            "calls": self.calls,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
        }


@dataclass(frozen=True)
class BatchProfile:
    """Latency and per-node op time at one batch size.

    Attributes:
        batch_size: rows per call.
        latency: end-to-end latency measured without the profiler.
        ops: per-node timings, most expensive first.
        unmapped_us: mean microseconds per call of runtime kernels not mapped to a graph node.
        trace_calls: calls traced under the profiler.
        unmapped_ops: the largest unmapped ``runtime_name:RuntimeOp`` -> microseconds per call.
    """

    batch_size: int
    latency: LatencyStats
    ops: tuple[OpTiming, ...]
    unmapped_us: float
    trace_calls: int = 0
    unmapped_ops: dict[str, float] = field(default_factory=dict)

    @property
    def mapped_us(self) -> float:
        """Mean microseconds per call of the kernels mapped to graph nodes."""
        return float(sum(t.self_us for t in self.ops))

    @property
    def total_us(self) -> float:
        """Mean microseconds per call of all traced kernels (summed over threads)."""
        return self.mapped_us + self.unmapped_us

    @property
    def mapped_fraction(self) -> float:
        """Fraction of traced kernel time mapped to graph nodes (1.0 when nothing was traced)."""
        total = self.total_us
        return 1.0 if total <= 0 else self.mapped_us / total

    def timing_of(self, node: str) -> OpTiming | None:
        """The timing of one graph node, or None when it did not run on its own."""
        for t in self.ops:
            if t.node == node:
                return t
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "batch_size": self.batch_size,
            "latency": self.latency.to_dict(),
            "trace_calls": self.trace_calls,
            "mapped_us": self.mapped_us,
            "unmapped_us": self.unmapped_us,
            "mapped_fraction": self.mapped_fraction,
            "ops": [t.to_dict() for t in self.ops],
            "unmapped_ops": dict(self.unmapped_ops),
        }


@dataclass(frozen=True)
class Profile:
    """The profile of one model at several batch sizes.

    Attributes:
        batches: one :class:`BatchProfile` per batch size, in the order asked.
        target: what ran: ``loaded_signature`` (the unmodified TF2 signature function) or
            ``frozen_graph`` (TF1 models: the frozen graph through GraphRunner).
        signature: the signature key profiled.
        warmup / calls / trace_calls: the settings used, per batch size.
    """

    batches: tuple[BatchProfile, ...]
    target: str = TARGET_SIGNATURE
    signature: str = ""
    warmup: int = 0
    calls: int = 0
    trace_calls: int = 0

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes profiled."""
        return tuple(b.batch_size for b in self.batches)

    def for_batch(self, batch_size: int) -> BatchProfile:
        """The profile at one batch size.

        Raises:
            KeyError: that batch size was not profiled.
        """
        for b in self.batches:
            if b.batch_size == batch_size:
                return b
        raise KeyError(f"batch size {batch_size} was not profiled; profiled: {self.batch_sizes}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "target": self.target,
            "signature": self.signature,
            "warmup": self.warmup,
            "calls": self.calls,
            "trace_calls": self.trace_calls,
            "batches": [b.to_dict() for b in self.batches],
        }


# --------------------------------------------------------------------------- latency
def measure_latency(
    fn: Callable[[], Any],
    *,
    warmup: int,
    calls: int,
    batch_size: int = 0,
    on_call: Callable[[], None] | None = None,
) -> LatencyStats:
    """Time ``calls`` calls of ``fn`` one by one, after ``warmup`` untimed calls.

    The garbage collector is paused while timing (as ``timeit`` does).

    Args:
        fn: the call to time; it must finish its work before returning.
        warmup: untimed calls first.
        calls: timed calls (at least 1).
        batch_size: recorded in the result.
        on_call: called after every call (warm-up and timed), outside the timed window.

    Returns:
        :class:`LatencyStats` with p50/p90/p99/mean in milliseconds.

    Raises:
        ValueError: ``calls`` < 1 or ``warmup`` < 0.
    """
    if calls < 1 or warmup < 0:
        raise ValueError(f"need calls >= 1 and warmup >= 0, got calls={calls}, warmup={warmup}")
    for _ in range(warmup):
        fn()
        if on_call is not None:
            on_call()
    times = np.empty(calls, dtype=np.float64)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(calls):
            start = time.perf_counter()
            fn()
            times[i] = time.perf_counter() - start
            if on_call is not None:
                on_call()
    finally:
        if gc_was_enabled:
            gc.enable()
    ms = times * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(
        batch_size=batch_size,
        calls=calls,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        mean_ms=float(ms.mean()),
    )


# --------------------------------------------------------------------------- xplane reading
@dataclass(frozen=True)
class RuntimeOpTime:
    """Total self time of one runtime kernel (one node of the executed graph) in a trace."""

    name: str
    op: str
    self_ps: int
    events: int


_OP_EVENT_NAME = re.compile(r"^(?P<node>[^:\s][^:]*):(?P<op>_?[A-Za-z][A-Za-z0-9_]*)$")


def _load_xspace(path: Path) -> Any:
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError:  # older/newer layouts ship it as a top-level tsl package
        from tsl.profiler.protobuf import xplane_pb2  # type: ignore[no-redef]
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    return space


def read_xplane_op_times(path: str | Path) -> list[RuntimeOpTime]:
    """Sum the self time of every kernel event in an ``.xplane.pb`` trace, per runtime node.

    Kernel events are recognized by their metadata: name ``node:OpType`` (with ``OpType`` as
    display name for expensive kernels, none for inline ones). A kernel's self time is its
    duration minus the kernel events nested inside it
    on the same thread (e.g. a function call op running its body inline).

    Args:
        path: the ``.xplane.pb`` file ``tf.profiler`` wrote.

    Returns:
        One :class:`RuntimeOpTime` per (runtime node name, kernel), largest first.
    """
    space = _load_xspace(Path(path))
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for plane in space.planes:
        kernels: dict[int, tuple[str, str]] = {}
        for md_id, md in plane.event_metadata.items():
            m = _OP_EVENT_NAME.match(md.name)
            # expensive kernels carry the op type as display name; inexpensive ones (run
            # inline, traced at host_tracer_level 3) carry only the "node:OpType" name
            if m is not None and md.display_name in ("", m.group("op")):
                kernels[md_id] = (m.group("node"), m.group("op"))
        if not kernels:
            continue
        for line in plane.lines:
            events = sorted(
                (e.offset_ps, e.offset_ps + e.duration_ps, kernels[e.metadata_id])
                for e in line.events
                if e.metadata_id in kernels
            )
            self_time = [end - start for start, end, _ in events]
            stack: list[tuple[int, int]] = []  # (end, index) of enclosing kernel events
            for i, (start, end, _) in enumerate(events):
                while stack and stack[-1][0] <= start:
                    stack.pop()
                if stack and end <= stack[-1][0]:
                    self_time[stack[-1][1]] -= end - start
                stack.append((end, i))
            for (_, _, key), spent in zip(events, self_time, strict=True):
                acc = totals[key]
                acc[0] += max(spent, 0)
                acc[1] += 1
    result = [RuntimeOpTime(n, op, ps, cnt) for (n, op), (ps, cnt) in totals.items()]
    return sorted(result, key=lambda r: (-r.self_ps, r.name))


# --------------------------------------------------------------------------- name mapping
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


# --------------------------------------------------------------------------- fusion
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


# --------------------------------------------------------------------------- running
def _check_feeds(feeds: Mapping[str, np.ndarray], input_keys: Iterable[str]) -> int:
    """Validate feeds against the signature inputs; return the number of rows."""
    keys = list(input_keys)
    missing = [k for k in keys if k not in feeds]
    if missing:
        raise DataError(
            f"sample feeds lack signature inputs {missing}; provide a column for each of: "
            f"{', '.join(keys)}"
        )
    rows = {k: int(np.shape(feeds[k])[0]) if np.ndim(feeds[k]) else 0 for k in keys}
    if not keys:
        return 1
    if min(rows.values()) == 0:
        empty = sorted(k for k, n in rows.items() if n == 0)
        raise DataError(f"sample feeds for {empty} are empty or scalar; give at least one row")
    if len(set(rows.values())) > 1:
        raise DataError(f"sample feeds have different row counts per input: {rows}")
    return next(iter(rows.values()))


def _make_batches(
    feeds: Mapping[str, np.ndarray],
    keys: Sequence[str],
    dtypes: Mapping[str, str],
    batch_size: int,
    rows: int,
) -> list[dict[str, Any]]:
    """Distinct batches of ``batch_size`` rows cut from the feeds by cycling rows, as tensors."""
    tf = import_tf()
    count = max(1, min(MAX_DISTINCT_BATCHES, -(-rows // batch_size)))
    batches = []
    for b in range(count):
        idx = (np.arange(batch_size) + b * batch_size) % rows
        batch = {}
        for k in keys:
            try:
                batch[k] = tf.constant(
                    np.asarray(feeds[k])[idx], dtype=tf.dtypes.as_dtype(dtypes[k])
                )
            except (TypeError, ValueError) as e:
                raise DataError(
                    f"sample feed '{k}' cannot be converted to the signature dtype "
                    f"{dtypes[k]}: {first_line(e)}"
                ) from e
        batches.append(batch)
    return batches


@dataclass
class _Target:
    """The callable profiled and how its runtime names relate to the frozen graph."""

    kind: str
    call: Callable[[dict[str, Any]], Any]
    strip_prefixes: tuple[str, ...]


def _make_target(loaded: LoadedModel, graph: ModelGraph) -> _Target:
    if loaded.function is not None:
        function = loaded.function
        return _Target(TARGET_SIGNATURE, lambda batch: function(**batch), ())
    from recadvisor.model.runtime import build_serving_module

    serving = build_serving_module(graph)
    keys = serving.input_keys
    log.info(
        "profiling the frozen graph of %s (tf1 model: no loaded signature function)", loaded.path
    )
    return _Target(
        TARGET_FROZEN, lambda batch: serving.function(*[batch[k] for k in keys]), (RUNNER_PREFIX,)
    )


@contextlib.contextmanager
def fresh_function_instance(tag: str) -> Iterator[None]:
    """Make TensorFlow function calls in this block run on a new instantiation of the function.

    The calls carry a ``config_proto`` whose ``experimental.session_metadata.name`` is ``tag``;
    that proto is part of the key under which the runtime caches function instantiations, so the
    first call builds a new executor (Grappler runs again, with the same options) with fresh
    per-kernel cost estimates. The previous call options are restored on exit.

    Args:
        tag: a name no earlier block used (an earlier tag reuses that block's instance).
    """
    import_tf()
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    ctx = context.context()
    options = ctx.function_call_options
    saved = options.config_proto_serialized
    config = config_pb2.ConfigProto()
    if saved is None:
        config.CopyFrom(ctx.config)
    else:
        config.ParseFromString(saved)
    config.experimental.session_metadata.name = tag
    options.config_proto_serialized = config
    try:
        yield
    finally:
        # the setter takes a ConfigProto or None, not the serialized bytes it returns
        options.config_proto_serialized = (
            None if saved is None else config_pb2.ConfigProto.FromString(saved)
        )


def _trace(call: Callable[[], Any], calls: int, on_call: Callable[[], None]) -> list[RuntimeOpTime]:
    """Run ``call`` ``calls`` times under the TensorFlow profiler and read the kernels back.

    The caller runs this on a fresh function instance (:func:`fresh_function_instance`): on a
    warmed-up one the cheap kernels are not recorded.
    """
    tf = import_tf()
    # level 3 would also record inexpensive kernels; TF 2.21 ignores these options (the host
    # tracer stays at level 2), which is why the caller traces a fresh function instance
    options = tf.profiler.experimental.ProfilerOptions(
        host_tracer_level=3, python_tracer_level=0, device_tracer_level=0
    )
    with tempfile.TemporaryDirectory(prefix="recadvisor-trace-") as logdir:
        try:
            tf.profiler.experimental.start(logdir, options=options)
        except Exception as e:  # noqa: BLE001 - AlreadyExists/Unavailable and friends
            raise RecAdvisorError(
                f"cannot start the TensorFlow profiler ({first_line(e)}); stop any other "
                "profiling session in this process and retry"
            ) from e
        try:
            for _ in range(calls):
                call()
                on_call()
        finally:
            tf.profiler.experimental.stop()
        traces = sorted(Path(logdir).rglob("*.xplane.pb"), key=lambda p: p.stat().st_mtime)
        if not traces:
            raise RecAdvisorError(
                f"the TensorFlow profiler wrote no .xplane.pb under {logdir}; check that the "
                "temporary directory is writable (TMPDIR)"
            )
        return read_xplane_op_times(traces[-1])


class _Progress:
    """Counts calls and reports them to an optional callback, at most ~200 times in all."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0
        self.description = ""
        self.step = max(1, total // 200)

    def phase(self, description: str) -> None:
        self.description = description
        self._report()

    def tick(self) -> None:
        self.done += 1
        if self.done % self.step == 0 or self.done == self.total:
            self._report()

    def _report(self) -> None:
        if self.callback is not None:
            self.callback(self.description, self.done, self.total)


def trace_warmup_calls(warmup: int) -> int:
    """Untraced calls on the fresh function instance before its trace, for a ``warmup``."""
    return max(1, min(warmup, TRACE_WARMUP_CALLS))


def profile_model(
    loaded: LoadedModel,
    graph: ModelGraph,
    feeds: Mapping[str, np.ndarray],
    batch_sizes: Sequence[int] = (1, 256),
    *,
    warmup: int = 20,
    calls: int = 200,
    trace_calls: int = 50,
    progress: ProgressCallback | None = None,
) -> Profile:
    """Profile a model's per-op CPU time and latency at each batch size.

    Args:
        loaded: the loaded model (its unmodified signature function is what runs; TF1 models
            run their frozen graph instead).
        graph: the model's frozen graph, to map kernels back to nodes.
        feeds: sample inputs by signature key, equal row counts; batches cycle through rows.
        batch_sizes: rows per call, each profiled separately.
        warmup: untimed calls per batch size before timing (and, up to
            :data:`TRACE_WARMUP_CALLS`, on the fresh instance before the trace).
        calls: timed calls per batch size (latency percentiles).
        trace_calls: calls per batch size traced under the profiler (per-op times), on a fresh
            instance of the function so that cheap kernels are recorded too.
        progress: ``progress(description, calls_done, calls_total)``, e.g. for a rich bar.

    Returns:
        A :class:`Profile` with one :class:`BatchProfile` per batch size.

    Raises:
        DataError: feeds miss inputs, are empty, disagree in rows, or the model rejects them.
        ValueError: a batch size < 1 or calls < 1.
        RecAdvisorError: the profiler could not be started or wrote no trace.
    """
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {list(batch_sizes)}")
    if calls < 1 or trace_calls < 1 or warmup < 0:
        raise ValueError("need calls >= 1, trace_calls >= 1 and warmup >= 0")
    spec_inputs = loaded.spec.inputs
    rows = _check_feeds(feeds, spec_inputs)
    dtypes = {k: spec_inputs[k].dtype for k in spec_inputs}
    target = _make_target(loaded, graph)
    trace_warmup = trace_warmup_calls(warmup)
    per_batch = warmup + calls + trace_warmup + trace_calls
    counter = _Progress(progress, len(batch_sizes) * per_batch)
    results = []
    for batch_size in batch_sizes:
        batches = _make_batches(feeds, list(spec_inputs), dtypes, batch_size, rows)
        turn = [0]

        def one_call(batches: list[dict[str, Any]] = batches, turn: list[int] = turn) -> Any:
            batch = batches[turn[0] % len(batches)]
            turn[0] += 1
            return target.call(batch)

        counter.phase(f"batch {batch_size}: warm-up and timing")
        try:
            one_call()  # a failing model fails here, before any timing
            latency = measure_latency(
                one_call, warmup=warmup, calls=calls, batch_size=batch_size, on_call=counter.tick
            )
            counter.phase(f"batch {batch_size}: tracing ops")
            with fresh_function_instance(f"recadvisor-trace-{next(_INSTANCE_TAGS)}"):
                for _ in range(trace_warmup):
                    one_call()
                    counter.tick()
                op_times = _trace(one_call, trace_calls, counter.tick)
        except RecAdvisorError:
            raise
        except Exception as e:  # noqa: BLE001 - TF raises many types on bad inputs
            raise DataError(
                f"model '{loaded.path}' failed on a batch of {batch_size} sample rows: "
                f"{first_line(e)}"
            ) from e
        ops, unmapped_us, unmapped_ops = attribute_runtime_times(
            graph, op_times, trace_calls, target.strip_prefixes
        )
        result = BatchProfile(
            batch_size=batch_size,
            latency=latency,
            ops=ops,
            unmapped_us=unmapped_us,
            trace_calls=trace_calls,
            unmapped_ops=unmapped_ops,
        )
        log.info(
            "batch %d: p50 %.3f ms, %.1f us of ops per call, %.1f%% mapped",
            batch_size,
            latency.p50_ms,
            result.total_us,
            100 * result.mapped_fraction,
        )
        results.append(result)
    counter.phase("done")
    return Profile(
        batches=tuple(results),
        target=target.kind,
        signature=loaded.spec.key,
        warmup=warmup,
        calls=calls,
        trace_calls=trace_calls,
    )
