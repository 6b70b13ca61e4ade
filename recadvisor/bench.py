"""Latency, throughput and memory harness.

Every model is wrapped in a runner with ``prepare(feeds) -> args`` (done once per batch size, not
timed: converting numpy to tensors is the client's job) and ``run(args) -> outputs`` (timed,
including reading the outputs back as numpy). Models are timed **interleaved**: each round calls
every model once, in a shuffled order, so machine noise (a noisy 2-core box) hits all models alike;
figures are medians and percentiles over many calls.
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recadvisor.errors import ModelLoadError
from recadvisor.model.spec import SignatureSpec
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)


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

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``samples_ms``: every timed call, for CDF plots)."""
        d = dict(self.__dict__)
        d["samples_ms"] = [round(x, 4) for x in self.samples_ms]
        return d


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


def take_rows(feeds: Mapping[str, np.ndarray], n: int, start: int = 0,
              request_inputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """``n`` rows from ``feeds`` (cycling when there are fewer); ``request_inputs`` keep 1 row."""
    out = {}
    for k, v in feeds.items():
        total = v.shape[0]
        rows = 1 if k in request_inputs else n
        idx = (np.arange(rows) + start) % max(total, 1)
        out[k] = v[idx]
    return out


class SavedModelRunner:
    """Runs a SavedModel signature (loaded with ``tf.saved_model.load``)."""

    kind = "saved_model"

    def __init__(self, path: str | Path, signature: str | None = None) -> None:
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

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Any:
        """Tensors for one call."""
        tf = import_tf()
        if self.graph_runner is not None:
            return dict(feeds)
        return {
            k: tf.constant(feeds[k], dtype=tf.dtypes.as_dtype(self.spec.inputs[k].dtype))
            for k in self.spec.inputs
        }

    def run(self, prepared: Any) -> dict[str, np.ndarray]:
        """One call; outputs as numpy."""
        if self.graph_runner is not None:
            return self.graph_runner(prepared)
        return {k: v.numpy() for k, v in self.loaded.function(**prepared).items()}


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
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise ModelLoadError(f"cannot load ONNX model '{path}': {e}") from e
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.path = str(path)

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Any:
        """numpy arrays keyed by ONNX input name (``name`` or ``name:0``)."""
        prepared = {}
        for name, meta in self.inputs.items():
            key = name if name in feeds else name.split(":")[0]
            if key not in feeds:
                raise ModelLoadError(f"ONNX input '{name}' has no matching feature in the data")
            arr = feeds[key]
            if "string" in meta.type:
                arr = np.array([x.decode() if isinstance(x, bytes) else str(x)
                                for x in arr.reshape(-1)], dtype=object).reshape(arr.shape)
            prepared[name] = arr
        return prepared

    def run(self, prepared: Any) -> dict[str, np.ndarray]:
        """One call; outputs keyed without a ``:0`` suffix."""
        outs = self.session.run(self.output_names, prepared)
        return {n.split(":")[0]: o for n, o in zip(self.output_names, outs, strict=True)}


def build_floor_model(spec: SignatureSpec, out_dir: str | Path) -> Path:
    """A trivial SavedModel with the same inputs: the cost of one TF call from Python.

    It reads the batch size off the first input and returns zeros, so every figure can be read
    as "x above the floor".
    """
    tf = import_tf()
    keys = list(spec.inputs)
    specs = [
        tf.TensorSpec(None if spec.inputs[k].shape is None else list(spec.inputs[k].shape),
                      tf.dtypes.as_dtype(spec.inputs[k].dtype), name=k)
        for k in keys
    ]

    def floor(*args: Any) -> dict[str, Any]:
        return {"out": tf.zeros(tf.shape(args[0])[:1], tf.float32)}

    module = tf.Module()
    module.f = tf.function(floor, input_signature=specs, autograph=False)
    path = Path(out_dir)
    tf.saved_model.save(module, str(path),
                        signatures={"serving_default": module.f.get_concrete_function()})
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
) -> dict[str, LatencySummary]:
    """Time every runner on the same rows, interleaved and shuffled each round.

    Args:
        runners: label -> runner.
        feeds: label -> that runner's feeds (already encoded to its contract).
        batch_size: rows per call.
        requests: timed calls per runner.
        warmup: untimed calls per runner first.
        seed: shuffling seed.
        progress: called with (done, total) after each round.
        request_inputs: label -> inputs that take one row per request (per-request dedup).

    Returns:
        label -> :class:`LatencySummary`.
    """
    rng = random.Random(seed)
    request_inputs = request_inputs or {}
    prepared = {
        label: runner.prepare(take_rows(feeds[label], batch_size,
                                        request_inputs=request_inputs.get(label, ())))
        for label, runner in runners.items()
    }
    labels = list(runners)
    for _ in range(warmup):
        for label in labels:
            runners[label].run(prepared[label])
    times: dict[str, list[float]] = {label: [] for label in labels}
    clock = time.perf_counter
    for i in range(requests):
        rng.shuffle(labels)
        for label in labels:
            start = clock()
            runners[label].run(prepared[label])
            times[label].append(clock() - start)
        if progress is not None:
            progress(i + 1, requests)
    return {label: summarize(batch_size, t) for label, t in times.items()}


def peak_memory_mb(kind: str, path: str | Path, signature: str | None,
                   feeds: Mapping[str, np.ndarray], batch_size: int = 256,
                   calls: int = 20, timeout: float = 300.0) -> dict[str, float] | None:
    """Peak resident memory of loading and running one model, in a fresh process.

    Returns:
        ``{"peak_rss_mb": ..., "import_rss_mb": ..., "model_rss_mb": ...}`` (the model's share
        is the resident memory after the calls minus that right after importing the runtime),
        or ``None`` on failure.
    """
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "feeds.npz"
        np.savez(npz, **{k: v for k, v in take_rows(feeds, batch_size).items()})
        cmd = [sys.executable, "-m", "recadvisor.bench", kind, str(path), signature or "",
               str(npz), str(calls)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "RECADVISOR_TF_LOGS": ""})
        except subprocess.TimeoutExpired:
            log.warning("memory measurement of %s timed out", path)
            return None
        if proc.returncode != 0:
            log.warning("memory measurement of %s failed: %s", path, proc.stderr[-500:])
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
