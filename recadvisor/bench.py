"""Latency, throughput and memory harness.

Every model is wrapped in a runner with ``prepare(feeds) -> args`` (done once per batch size, not
timed) and ``run(args) -> outputs`` (timed). The timed region is the same for every runner: one
call of the runtime on inputs that are already in its own form, plus reading the outputs back as
numpy. What ``prepare`` does up front, for every runner alike:

* SavedModels (baseline, rebuilt, and the call floor): numpy -> tensors. The timed call is the
  public keyword call ``signature(**tensors)``, as a Python server makes it. TensorFlow's Python
  binding inside it checks every input's spec and resolves every captured variable and table on
  each call (about 0.2 ms of a 0.4 ms batch-1 call on the samples; ~3 us per captured variable,
  so a model with fewer variables is really faster for a Python caller). ``flat_call=True``
  binds the inputs and captures once in ``prepare`` and times only the runtime's execution of
  the signature function (what a C++ server such as TF Serving pays, plus one Python call).
* TF1 models run through their frozen graph: numpy -> tensors in the graph's input order.
* ONNX: string inputs -> object arrays of ``str``; a session with sequential execution and all
  graph optimizations; inputs bound once (``IOBinding``) when the model has no string inputs
  (onnxruntime binds numeric tensors only).

Models are timed **interleaved**: each round calls every model, in a shuffled order, so machine
noise (a noisy 2-core box) hits all models alike; figures are medians and percentiles over many
calls. Within a round each model gets a short burst of calls (``burst``; ``compare`` uses 8)
after one untimed call: a model timed right after other models runs on caches and thread pools
they disturbed, which penalises onnxruntime at batch 1 most (ESMM: 0.086 ms call by call,
0.032 ms in bursts; TensorFlow models change by a few percent).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from recadvisor.errors import ModelLoadError
from recadvisor.model.spec import SignatureSpec
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: how long-running work reports progress."""


class LatencySummaryDict(TypedDict):
    """``LatencySummary.to_dict()`` (a ``compare.json`` latency entry)."""

    batch_size: int
    calls: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    rows_per_s: float
    samples_ms: list[float]


class MemoryDict(TypedDict):
    """What :func:`peak_memory_mb` measures, in MiB."""

    peak_rss_mb: float
    import_rss_mb: float
    model_rss_mb: float


@dataclass(frozen=True)
class LatencySummary:
    """Latency of one model at one batch size (milliseconds)."""

    batch_size: int
    calls: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    rows_per_s: float
    samples_ms: tuple[float, ...] = ()

    def to_dict(self) -> LatencySummaryDict:
        """JSON form (``samples_ms``: every timed call, for CDF plots)."""
        return {
            "batch_size": self.batch_size,
            "calls": self.calls,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
            "rows_per_s": self.rows_per_s,
            "samples_ms": [round(x, 4) for x in self.samples_ms],
        }


def summarize(batch_size: int, seconds: Sequence[float]) -> LatencySummary:
    """Percentiles of per-call wall times (seconds in, milliseconds out)."""
    arr = np.asarray(seconds, dtype="float64") * 1e3
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return LatencySummary(
        batch_size=batch_size,
        calls=int(arr.size),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        mean_ms=float(arr.mean()),
        rows_per_s=float(batch_size / (p50 / 1e3)) if p50 > 0 else 0.0,
        samples_ms=tuple(float(x) for x in arr),
    )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the garbage collector while timing (as ``timeit`` does)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def measure_latency(
    fn: Callable[[], Any],
    *,
    warmup: int,
    calls: int,
    batch_size: int = 0,
    on_call: Callable[[], None] | None = None,
) -> LatencySummary:
    """Time ``calls`` calls of one model one by one, after ``warmup`` untimed calls.

    For a model on its own (``analyze``'s profile); :func:`time_interleaved` times several
    models against each other.

    Args:
        fn: the call to time; it must finish its work before returning.
        warmup: untimed calls first.
        calls: timed calls (at least 1).
        batch_size: rows per call, recorded in the result.
        on_call: called after every call (warm-up and timed), outside the timed window.

    Returns:
        A :class:`LatencySummary`.

    Raises:
        ValueError: ``calls`` < 1 or ``warmup`` < 0.
    """
    if calls < 1 or warmup < 0:
        raise ValueError(f"need calls >= 1 and warmup >= 0, got calls={calls}, warmup={warmup}")
    for _ in range(warmup):
        fn()
        if on_call is not None:
            on_call()
    times = []
    clock = time.perf_counter
    with gc_paused():
        for _ in range(calls):
            start = clock()
            fn()
            times.append(clock() - start)
            if on_call is not None:
                on_call()
    return summarize(batch_size, times)


def take_rows(
    feeds: Mapping[str, np.ndarray], n: int, start: int = 0, request_inputs: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """``n`` rows from ``feeds`` (cycling when there are fewer); ``request_inputs`` keep 1 row."""
    out = {}
    for k, v in feeds.items():
        total = v.shape[0]
        rows = 1 if k in request_inputs else n
        idx = (np.arange(rows) + start) % max(total, 1)
        out[k] = v[idx]
    return out


def run_in_chunks(
    runner: Any, feeds: Mapping[str, np.ndarray], batch: int = 256
) -> dict[str, np.ndarray]:
    """Run a runner over every row of ``feeds`` in chunks of ``batch`` rows, untimed (parity
    and quality); per-request inputs (one row next to N candidate rows) go with every chunk.

    Args:
        runner: a runner with ``prepare`` and ``run``.
        feeds: the runner's own inputs.
        batch: rows per call.

    Returns:
        output key -> values for all rows.
    """
    n = max(v.shape[0] for v in feeds.values())
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, batch):
        chunk = {
            k: v if v.shape[0] == 1 < n else v[start : start + batch] for k, v in feeds.items()
        }
        for k, v in runner.run(runner.prepare(chunk)).items():
            parts.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v) for k, v in parts.items()}


class SavedModelRunner:
    """Runs a SavedModel signature (loaded with ``tf.saved_model.load``).

    Args:
        path: the SavedModel directory.
        signature: the signature key (default: the model's serving signature).
        flat_call: time the signature's function on inputs and captures bound once in
            ``prepare``, instead of the public keyword call ``signature(**tensors)`` (default),
            which adds TensorFlow's Python argument binding to every call.
        device: a TensorFlow device (``/GPU:0``) to place the call on; ops without a kernel
            there (string ops) fall back to the CPU. ``None``: TensorFlow's default placement.
    """

    kind = "saved_model"

    def __init__(
        self,
        path: str | Path,
        signature: str | None = None,
        flat_call: bool = False,
        device: str | None = None,
    ) -> None:
        from recadvisor.model.load import load_model

        self.loaded = load_model(path, signature)
        if self.loaded.function is None:  # TF1: run its frozen graph
            from recadvisor.model.freeze import freeze
            from recadvisor.model.runtime import GraphRunner

            self.graph_runner: Any = GraphRunner(freeze(self.loaded))
        else:
            self.graph_runner = None
        self.spec: SignatureSpec = self.loaded.spec
        self.path = str(path)
        self.flat_call = flat_call
        self.device = device

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Any:
        """Everything one call needs, converted and bound once (see the module docstring)."""
        tf = import_tf()
        if self.graph_runner is not None:
            return self.graph_runner.prepare(feeds)
        tensors = {
            k: tf.constant(feeds[k], dtype=tf.dtypes.as_dtype(self.spec.inputs[k].dtype))
            for k in self.spec.inputs
        }
        if self.device:  # copy the inputs to the device once, outside the timed call
            with tf.device(self.device):
                tensors = {k: tf.identity(v) for k, v in tensors.items()}
        if not self.flat_call:
            return tensors
        return _bind_flat(self.loaded.function, tensors)

    def run(self, prepared: Any) -> dict[str, np.ndarray]:
        """One call; outputs as numpy (placed on ``device`` when one is set)."""
        if self.device is None:  # the timed path: no device scope to enter
            return self._call(prepared)
        with import_tf().device(self.device):
            return self._call(prepared)

    def _call(self, prepared: Any) -> dict[str, np.ndarray]:
        if self.graph_runner is not None:
            return self.graph_runner.run(prepared)
        if isinstance(prepared, _FlatCall):
            outs = prepared.call(prepared.args)
        else:
            outs = self.loaded.function(**prepared)
        return {k: v.numpy() for k, v in outs.items()}


@dataclass(frozen=True)
class _FlatCall:
    """A signature call with its inputs bound: ``call(args)`` returns the output dict."""

    call: Callable[[list[Any]], Mapping[str, Any]]
    args: list[Any]


def _bind_flat(function: Any, tensors: Mapping[str, Any]) -> _FlatCall | Mapping[str, Any]:
    """Bind keyword tensors to ``function``'s flat inputs (plus its captures) once.

    This is what ``ConcreteFunction.__call__`` does on every call before running the function.
    It uses TensorFlow internals, so when they are missing (another TensorFlow version) the
    keyword tensors are returned and the runner falls back to the keyword call.
    """
    try:
        from tensorflow.python.eager.polymorphic_function import function_type_utils

        bound = function_type_utils.canonicalize_function_inputs(
            (), dict(tensors), function.function_type
        )
        flat = list(function.function_type.unpack_inputs(bound))
        return _FlatCall(
            function._inference_function.call_preflattened,  # noqa: SLF001
            flat + list(function.captured_inputs),
        )
    except (ImportError, AttributeError, TypeError) as e:
        log.warning("flat signature call unavailable (%s); timing keyword calls", e)
        return tensors


def configure_onnx_session(options: Any, threads: int | None = None) -> None:
    """The serving options every onnxruntime session here uses (timed and profiled alike).

    Sequential execution (these graphs are chains of small ops: no parallel branches worth a
    thread hand-off) and every graph optimization (fusions, constant folding), memory patterns
    on (the default: off made batch-1 calls 1.2x slower). Why, measured: docs/ARCHITECTURE.md.

    Args:
        options: an ``onnxruntime.SessionOptions`` (changed in place).
        threads: intra- and inter-op threads (None: onnxruntime's default, one per core).
    """
    import onnxruntime as ort

    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = threads


class OnnxRunner:
    """Runs an ONNX model with onnxruntime (strings fed as object arrays of ``str``)."""

    kind = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ModelLoadError(
                "onnxruntime is not installed; pip install 'recadvisor[onnx]'"
            ) from e
        options = ort.SessionOptions()
        configure_onnx_session(options, threads)
        self.threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise ModelLoadError(f"cannot load ONNX model '{path}': {e}") from e
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        # IOBinding takes numeric tensors only: onnxruntime crashes (SIGSEGV) copying a bound
        # string output back, e.g. a retrieval model's top-K ids
        self.bindable = not any(
            "string" in meta.type for meta in [*self.inputs.values(), *self.session.get_outputs()]
        )
        self.path = str(path)

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Any:
        """Inputs keyed by ONNX input name (``name`` or ``name:0``), bound when every input and
        output is numeric."""
        prepared = self.feed_dict(feeds)
        if not self.bindable:
            return prepared
        prepared = {k: np.ascontiguousarray(v) for k, v in prepared.items()}
        binding = self.session.io_binding()
        for name, arr in prepared.items():
            binding.bind_cpu_input(name, arr)
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        # the binding points at the arrays' memory: keep them alive with it
        return _BoundOnnx(binding, prepared)

    def feed_dict(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """numpy arrays keyed by ONNX input name; strings as object arrays of ``str``."""
        prepared = {}
        for name, meta in self.inputs.items():
            key = name if name in feeds else name.split(":")[0]
            if key not in feeds:
                raise ModelLoadError(f"ONNX input '{name}' has no matching feature in the data")
            arr = feeds[key]
            if "string" in meta.type:
                arr = np.array(
                    [x.decode() if isinstance(x, bytes) else str(x) for x in arr.reshape(-1)],
                    dtype=object,
                ).reshape(arr.shape)
            prepared[name] = arr
        return prepared

    def run(self, prepared: Any) -> dict[str, np.ndarray]:
        """One call; outputs keyed without a ``:0`` suffix."""
        if isinstance(prepared, _BoundOnnx):
            self.session.run_with_iobinding(prepared.binding)
            outs = prepared.binding.copy_outputs_to_cpu()
        else:
            outs = self.session.run(self.output_names, prepared)
        return {n.split(":")[0]: o for n, o in zip(self.output_names, outs, strict=True)}


@dataclass(frozen=True)
class _BoundOnnx:
    """An onnxruntime ``IOBinding`` and the input arrays it points at."""

    binding: Any
    arrays: Mapping[str, np.ndarray]


def build_floor_model(spec: SignatureSpec, out_dir: str | Path) -> Path:
    """A trivial SavedModel with the same inputs: the cost of one TF call from Python.

    It reads the batch size off the first input and returns zeros, so every figure can be read
    as "x above the floor".
    """
    tf = import_tf()
    keys = list(spec.inputs)
    specs = [
        tf.TensorSpec(
            None if spec.inputs[k].shape is None else list(spec.inputs[k].shape),
            tf.dtypes.as_dtype(spec.inputs[k].dtype),
            name=k,
        )
        for k in keys
    ]

    def floor(*args: Any) -> dict[str, Any]:
        return {"out": tf.zeros(tf.shape(args[0])[:1], tf.float32)}

    module = tf.Module()
    module.f = tf.function(floor, input_signature=specs, autograph=False)
    path = Path(out_dir)
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.f.get_concrete_function()}
    )
    return path


def time_interleaved(
    runners: Mapping[str, Any],
    feeds: Mapping[str, Mapping[str, np.ndarray]],
    batch_size: int,
    *,
    requests: int = 200,
    warmup: int = 20,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    request_inputs: Mapping[str, Sequence[str]] | None = None,
    burst: int = 1,
) -> dict[str, LatencySummary]:
    """Time every runner on the same rows, interleaved and shuffled each round.

    Each round calls every runner, in a new random order, once untimed (when ``burst`` > 1) and
    then ``burst`` times timed. ``burst`` 1 interleaves call by call; a larger ``burst`` times
    each model in the steady state a server dedicated to it runs in, while rounds still spread
    machine noise over all models.

    Args:
        runners: label -> runner.
        feeds: label -> that runner's feeds (already encoded to its contract).
        batch_size: rows per call.
        requests: timed calls per runner.
        warmup: untimed calls per runner first.
        seed: shuffling seed.
        progress: called with (done, total) after each round.
        request_inputs: label -> inputs that take one row per request (per-request dedup).
        burst: consecutive timed calls per runner and round.

    Returns:
        label -> :class:`LatencySummary`.
    """
    rng = random.Random(seed)
    request_inputs = request_inputs or {}
    prepared = {
        label: runner.prepare(
            take_rows(feeds[label], batch_size, request_inputs=request_inputs.get(label, ()))
        )
        for label, runner in runners.items()
    }
    labels = list(runners)
    for _ in range(warmup):
        for label in labels:
            runners[label].run(prepared[label])
    times: dict[str, list[float]] = {label: [] for label in labels}
    clock = time.perf_counter
    burst = max(1, burst)
    done = 0
    while done < requests:
        calls = min(burst, requests - done)
        rng.shuffle(labels)
        with gc_paused():
            for label in labels:
                run, args = runners[label].run, prepared[label]
                if burst > 1:
                    run(args)  # back to this model's steady state after the others ran
                for _ in range(calls):
                    start = clock()
                    run(args)
                    times[label].append(clock() - start)
        done += calls
        if progress is not None:
            progress(done, requests)
    return {label: summarize(batch_size, t) for label, t in times.items()}


def time_batches_python(
    runners: Mapping[str, Any],
    feeds: Mapping[str, Mapping[str, np.ndarray]],
    batch_sizes: Sequence[int],
    *,
    requests: int,
    warmup: int,
    burst: int,
    request_inputs: Mapping[str, Sequence[str]],
    progress: ProgressCallback | None = None,
    stage: str = "batch",
) -> dict[str, dict[int, LatencySummary]]:
    """:func:`~recadvisor.bench.time_interleaved` at each batch size.

    Returns:
        label -> batch size -> :class:`LatencySummary`.
    """
    latencies: dict[str, dict[int, LatencySummary]] = {k: {} for k in runners}
    for bs in batch_sizes:
        name = f"{stage} {bs}"
        result = time_interleaved(
            runners,
            feeds,
            bs,
            requests=requests,
            warmup=warmup,
            request_inputs=request_inputs,
            progress=(lambda d, t, s=name: progress(s, d, t)) if progress else None,
            burst=burst,
        )
        for label, summary in result.items():
            latencies[label][bs] = summary
    return latencies


def peak_memory_mb(
    kind: str,
    path: str | Path,
    signature: str | None,
    feeds: Mapping[str, np.ndarray],
    batch_size: int = 256,
    calls: int = 20,
    timeout: float = 300.0,
    request_inputs: Sequence[str] = (),
) -> MemoryDict | None:
    """Peak resident memory of loading and running one model, in a fresh process.

    Args:
        kind: ``saved_model``, ``tf1`` or ``onnx``.
        path: the model file or directory.
        signature: the signature key (SavedModels).
        feeds: the model's own inputs (already encoded to its contract).
        batch_size: rows per call.
        calls: calls made after loading.
        timeout: seconds before the child is given up.
        request_inputs: inputs the model takes once per request (one row, per_request_dedup).

    Returns:
        ``{"peak_rss_mb": ..., "import_rss_mb": ..., "model_rss_mb": ...}`` (the model's share
        is the resident memory after the calls minus that right after importing the runtime),
        or ``None`` on failure.
    """
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "feeds.npz"
        rows = take_rows(feeds, batch_size, request_inputs=request_inputs)
        np.savez(npz, **rows)
        cmd = [
            sys.executable,
            "-m",
            "recadvisor.bench",
            kind,
            str(path),
            signature or "",
            str(npz),
            str(calls),
        ]
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "RECADVISOR_TF_LOGS": ""},
            )
        except subprocess.TimeoutExpired:
            log.warning("memory measurement of %s timed out", path)
            return None
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            log.warning(
                "memory measurement of %s failed: %s", path, lines[-1] if lines else proc.returncode
            )
            return None
        return json.loads(proc.stdout.strip().splitlines()[-1])


def _rss_mb(field_name: str = "VmRSS") -> float:
    """Current (``VmRSS``) or peak (``VmHWM``) resident memory in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _memory_child(argv: Sequence[str]) -> None:
    kind, path, signature, npz, calls = argv
    if kind == "onnx":
        import onnxruntime  # noqa: F401
    else:
        import_tf()
    base = _rss_mb()
    data = np.load(npz, allow_pickle=True)
    feeds = {k: data[k] for k in data.files}
    runner: Any = OnnxRunner(path) if kind == "onnx" else SavedModelRunner(path, signature or None)
    prepared = runner.prepare(feeds)
    for _ in range(int(calls)):
        runner.run(prepared)
    now = _rss_mb()
    peak = _rss_mb("VmHWM")
    print(json.dumps({"peak_rss_mb": peak, "import_rss_mb": base, "model_rss_mb": now - base}))


if __name__ == "__main__":
    _memory_child(sys.argv[1:])
