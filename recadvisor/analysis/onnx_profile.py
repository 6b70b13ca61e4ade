"""Per-node time of an ONNX model on onnxruntime, from its own profiler.

onnxruntime writes a Chrome-trace JSON when ``SessionOptions.enable_profiling`` is set: one
``Node`` event per kernel run (``<node>_kernel_time``, with ``args.op_name``) and one ``Session``
event per ``model_run``. :func:`profile_onnx` runs the model ``calls`` times per batch size in a
session of its own (profiling slows every call a little, so latency is never timed in it),
reads that file and takes each node's median kernel time over the calls (medians, because on a
shared machine a call that loses the CPU puts thousands of microseconds on whichever kernel was
running), then sums them per op type. Shares are of the summed node medians;
``kernel_fraction`` is that sum over the median ``model_run`` time (the rest is onnxruntime's
own per-call work: input checks, allocation, the executor's loop, and the profiler itself,
which adds about a microsecond per node: at batch 1 the shares are more telling than the
microseconds).

The node names are those of the model as onnxruntime runs it, after its own graph
optimizations (fused nodes such as ``MatMul_fused`` or ``Gemm`` replace the exported ones).
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from recadvisor.errors import ModelLoadError

DEFAULT_CALLS = 50
TOP_N = 10


class OnnxNodeTimeDict(TypedDict):
    """:meth:`OnnxNodeTime.to_dict`."""

    name: str
    op_type: str
    us_per_call: float
    share: float
    nodes: int


class OnnxBatchProfileDict(TypedDict):
    """:meth:`OnnxBatchProfile.to_dict`."""

    batch_size: int
    calls: int
    run_us: float
    kernel_us: float
    kernel_fraction: float
    node_count: int
    top_nodes: list[OnnxNodeTimeDict]
    per_op_type: list[OnnxNodeTimeDict]


class OnnxProfileDict(TypedDict):
    """``compare.json``'s ``onnx_profile`` of an ONNX model: :meth:`OnnxProfile.to_dict`."""

    path: str
    batches: dict[str, OnnxBatchProfileDict]


@dataclass(frozen=True)
class OnnxNodeTime:
    """Kernel time of one node (or one op type) per call.

    Attributes:
        name: node name (or op type in the per-op-type list).
        op_type: the ONNX op type (or ``""`` in the per-op-type list).
        us_per_call: median kernel microseconds per call (summed over the nodes of an op type).
        share: fraction of the summed node medians.
        nodes: how many nodes (1 for a node, the count for an op type).
    """

    name: str
    op_type: str
    us_per_call: float
    share: float
    nodes: int = 1

    def to_dict(self) -> OnnxNodeTimeDict:
        """JSON form."""
        return {
            "name": self.name,
            "op_type": self.op_type,
            "us_per_call": self.us_per_call,
            "share": self.share,
            "nodes": self.nodes,
        }


@dataclass(frozen=True)
class OnnxBatchProfile:
    """Where one batch size's time went.

    Attributes:
        batch_size: rows per call.
        calls: profiled calls.
        run_us: median ``model_run`` microseconds per call (profiler on).
        kernel_us: the nodes' median kernel microseconds, summed.
        kernel_fraction: ``kernel_us`` / ``run_us``.
        node_count: nodes that ran (after onnxruntime's graph optimizations).
        top_nodes: the costliest nodes, most first.
        per_op_type: every op type, most first.
    """

    batch_size: int
    calls: int
    run_us: float
    kernel_us: float
    kernel_fraction: float
    node_count: int
    top_nodes: tuple[OnnxNodeTime, ...]
    per_op_type: tuple[OnnxNodeTime, ...]

    def to_dict(self) -> OnnxBatchProfileDict:
        """JSON form."""
        return {
            "batch_size": self.batch_size,
            "calls": self.calls,
            "run_us": self.run_us,
            "kernel_us": self.kernel_us,
            "kernel_fraction": self.kernel_fraction,
            "node_count": self.node_count,
            "top_nodes": [n.to_dict() for n in self.top_nodes],
            "per_op_type": [n.to_dict() for n in self.per_op_type],
        }


@dataclass(frozen=True)
class OnnxProfile:
    """Per-node time of one ONNX model at each batch size (``compare.json``'s ``onnx_profile``)."""

    path: str
    batches: tuple[OnnxBatchProfile, ...]

    def to_dict(self) -> OnnxProfileDict:
        """JSON form: batch size (as a string) -> :class:`OnnxBatchProfile` dict."""
        return {
            "path": self.path,
            "batches": {str(b.batch_size): b.to_dict() for b in self.batches},
        }


def read_ort_trace(
    path: str | Path, skip_runs: int = 0
) -> tuple[list[float], dict[str, tuple[str, list[float]]]]:
    """Read an onnxruntime profile file.

    Args:
        path: the JSON file ``end_profiling()`` returned.
        skip_runs: leading ``model_run`` calls to leave out (warm-up).

    Returns:
        (``model_run`` microseconds per kept call, node name -> (op type, kernel microseconds
        of each kept call)).
    """
    events = json.loads(Path(path).read_text())
    runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
        key=lambda e: e["ts"],
    )
    kept = runs[skip_runs:]
    start = kept[0]["ts"] if kept else float("inf")
    nodes: dict[str, tuple[str, list[float]]] = {}
    for e in events:
        name = str(e.get("name", ""))
        if e.get("cat") != "Node" or not name.endswith("_kernel_time") or e["ts"] < start:
            continue
        op = e.get("args", {}).get("op_name", "")
        nodes.setdefault(name[: -len("_kernel_time")], (op, []))[1].append(float(e["dur"]))
    return [float(e["dur"]) for e in kept], nodes


def summarize_trace(
    batch_size: int,
    run_us: Sequence[float],
    node_us: Mapping[str, tuple[str, Sequence[float]]],
    top: int = TOP_N,
) -> OnnxBatchProfile:
    """Per-node and per-op-type shares of one batch size's profiled calls.

    Args:
        batch_size: rows per call.
        run_us: ``model_run`` microseconds per call.
        node_us: node name -> (op type, kernel microseconds of each call).
        top: nodes to keep in ``top_nodes``.

    Returns:
        An :class:`OnnxBatchProfile`.
    """
    medians = {
        name: (op, float(np.median(times)) if len(times) else 0.0)
        for name, (op, times) in node_us.items()
    }
    total = sum(us for _, us in medians.values())

    def share(us: float) -> float:
        return us / total if total > 0 else 0.0

    ranked = sorted(medians.items(), key=lambda kv: (-kv[1][1], kv[0]))
    top_nodes = tuple(OnnxNodeTime(name, op, us, share(us)) for name, (op, us) in ranked[:top])
    by_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for op, us in medians.values():
        by_op[op][0] += us
        by_op[op][1] += 1
    per_op = tuple(
        OnnxNodeTime(op, "", us, share(us), int(n))
        for op, (us, n) in sorted(by_op.items(), key=lambda kv: (-kv[1][0], kv[0]))
    )
    run = float(np.median(run_us)) if len(run_us) else 0.0
    return OnnxBatchProfile(
        batch_size=batch_size,
        calls=len(run_us),
        run_us=run,
        kernel_us=total,
        kernel_fraction=total / run if run > 0 else 0.0,
        node_count=len(medians),
        top_nodes=top_nodes,
        per_op_type=per_op,
    )


def profile_onnx(
    path: str | Path,
    feeds_for_batch: Callable[[int], Mapping[str, np.ndarray]],
    batch_sizes: Sequence[int],
    calls: int = DEFAULT_CALLS,
    warmup: int = 5,
    session_options: Callable[[Any], None] | None = None,
    top: int = TOP_N,
) -> OnnxProfile:
    """Profile an ONNX model per node with onnxruntime's profiler, one session per batch size.

    Args:
        path: the ``.onnx`` file.
        feeds_for_batch: batch size -> inputs keyed by ONNX input name, ready for
            ``session.run`` (e.g. :meth:`recadvisor.bench.OnnxRunner.feed_dict`).
        batch_sizes: batch sizes to profile.
        calls: profiled calls per batch size.
        warmup: calls run first and left out.
        session_options: applied to each ``SessionOptions`` before profiling is switched on
            (use the serving options, so the graph profiled is the graph timed).
        top: nodes kept per batch size.

    Returns:
        An :class:`OnnxProfile`.

    Raises:
        ModelLoadError: onnxruntime is missing or cannot load the model.
    """
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelLoadError("onnxruntime is not installed; pip install 'recadvisor[onnx]'") from e
    batches = []
    with tempfile.TemporaryDirectory(prefix="recadvisor-ort-profile-") as tmp:
        for bs in batch_sizes:
            options = ort.SessionOptions()
            if session_options is not None:
                session_options(options)
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / f"b{bs}")
            try:
                session = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
                raise ModelLoadError(f"cannot load ONNX model '{path}': {e}") from e
            feeds = dict(feeds_for_batch(bs))
            names = [o.name for o in session.get_outputs()]
            for _ in range(warmup + calls):
                session.run(names, feeds)
            trace = session.end_profiling()
            run_us, node_us = read_ort_trace(trace, skip_runs=warmup)
            batches.append(summarize_trace(bs, run_us, node_us, top))
    return OnnxProfile(str(path), tuple(batches))
