"""What a profile holds: per-node op timings and latency per batch size."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

from recadvisor.bench import LatencySummary

TARGET_SIGNATURE = "loaded_signature"
TARGET_FROZEN = "frozen_graph"


class OpTimingDict(TypedDict):
    """``OpTiming.to_dict()``: one profiled graph node."""

    node: str
    op: str
    runtime_ops: list[str]
    self_us: float
    share: float
    fused_nodes: list[str]


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
    latency: LatencySummary
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
