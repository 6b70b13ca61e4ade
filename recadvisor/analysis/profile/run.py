"""Running a model under the profiler: batches, the fresh function instance, the trace."""

from __future__ import annotations

import contextlib
import itertools
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recadvisor.analysis.profile.kernels import RUNNER_PREFIX, attribute_runtime_times
from recadvisor.analysis.profile.results import (
    TARGET_FROZEN,
    TARGET_SIGNATURE,
    BatchProfile,
    Profile,
)
from recadvisor.analysis.profile.xplane import RuntimeOpTime, read_xplane_op_times
from recadvisor.bench import ProgressCallback, measure_latency, take_rows
from recadvisor.errors import DataError, RecAdvisorError
from recadvisor.model.graph import ModelGraph
from recadvisor.model.load import LoadedModel, first_line
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)

# At most this many distinct batches per batch size are prepared and used in turn.
MAX_DISTINCT_BATCHES = 8
# At most this many untraced calls on the fresh function instance before its trace (at least 1,
# which builds the instance): enough to warm caches and the allocator, far below the ~90 calls
# after which the executor would treat kernels as inexpensive.
TRACE_WARMUP_CALLS = 10
# Names the fresh function instances (one per trace) apart; see "Why a fresh instance" in
# recadvisor/analysis/profile/__init__.py.
_INSTANCE_TAGS = itertools.count()


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
        rows_b = take_rows({k: np.asarray(feeds[k]) for k in keys}, batch_size, b * batch_size)
        batch = {}
        for k in keys:
            try:
                batch[k] = tf.constant(rows_b[k], dtype=tf.dtypes.as_dtype(dtypes[k]))
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
