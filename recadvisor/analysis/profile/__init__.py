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
rank ops, and :class:`~recadvisor.bench.LatencySummary` (measured without the profiler, by
:func:`recadvisor.bench.measure_latency`) for latency.

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

Layout: :mod:`.results` (the dataclasses), :mod:`.xplane` (trace reading), :mod:`.kernels`
(runtime kernels -> graph nodes, fusions), :mod:`.run` (running and tracing).
"""

from __future__ import annotations

from recadvisor.analysis.profile.kernels import (
    MAX_UNMAPPED_LISTED,
    RUNNER_PREFIX,
    RuntimeNameMapper,
    attribute_runtime_times,
)
from recadvisor.analysis.profile.results import (
    TARGET_FROZEN,
    TARGET_SIGNATURE,
    BatchProfile,
    OpTiming,
    Profile,
)
from recadvisor.analysis.profile.run import (
    fresh_function_instance,
    profile_model,
    trace_warmup_calls,
)
from recadvisor.analysis.profile.xplane import RuntimeOpTime, read_xplane_op_times

__all__ = [
    "MAX_UNMAPPED_LISTED",
    "RUNNER_PREFIX",
    "TARGET_FROZEN",
    "TARGET_SIGNATURE",
    "BatchProfile",
    "OpTiming",
    "Profile",
    "RuntimeNameMapper",
    "RuntimeOpTime",
    "attribute_runtime_times",
    "fresh_function_instance",
    "profile_model",
    "read_xplane_op_times",
    "trace_warmup_calls",
]
