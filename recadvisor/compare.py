"""``compare``: baseline vs rebuilt (SavedModels or ONNX files) on the same rows.

Models run interleaved in one process after warm-up (see :mod:`recadvisor.bench`). A rebuilt
directory with a ``feature_contract.json`` is fed through its encoder (the client-side encoding is
not part of the timed call, as it runs upstream in the feature pipeline). A trivial signature with
the same inputs is timed too: the TF-in-Python call floor every model pays.
"""

from __future__ import annotations

import logging
import platform
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from recadvisor.analysis.onnx_profile import OnnxProfileDict
from recadvisor.bench import (
    LatencySummary,
    LatencySummaryDict,
    MemoryDict,
    OnnxRunner,
    SavedModelRunner,
    build_floor_model,
    peak_memory_mb,
    run_in_chunks,
    take_rows,
    time_batches_python,
)
from recadvisor.errors import ModelLoadError
from recadvisor.rewrite.encodings import broadcast_inputs, one_request_feeds
from recadvisor.tfimport import import_tf
from recadvisor.verify import QualityDict, compare_outputs, quality_metrics

log = logging.getLogger(__name__)
FLOOR = "(call floor)"
COMPARE_SCHEMA_VERSION = 1


class MachineDict(TypedDict):
    """Where the comparison ran (``onnxruntime`` is null when it is not installed)."""

    cpu: str
    cores: int | None
    python: str
    tensorflow: str
    platform: str
    onnxruntime: str | None


class ModelResultDict(TypedDict):
    """``ModelResult.to_dict()``: one model of ``compare.json``, figures by batch size (string
    keys); ``parity`` and ``parity_passed`` are null for the baseline."""

    label: str
    kind: str
    path: str
    size_bytes: int
    node_count: int | None
    latency: dict[str, LatencySummaryDict]
    ratio_vs_baseline: dict[str, float]
    ratio_vs_floor: dict[str, float]
    parity: dict[str, float] | None
    parity_passed: bool | None
    quality: dict[str, QualityDict]
    memory: MemoryDict | None
    encoded_inputs: list[str]
    onnx_profile: OnnxProfileDict | None  # ONNX models only (onnxruntime's profiler)


class ComparisonDict(TypedDict):
    """``compare.json`` (schema :data:`COMPARE_SCHEMA_VERSION`): ``Comparison.to_dict()``.

    ``models[0]`` is the baseline; ``floor`` is the call floor's latency by batch size.
    """

    schema_version: int
    baseline: str
    signature: str
    batch_sizes: list[int]
    requests: int
    rows: int
    machine: MachineDict
    tolerance: float
    call: str
    burst: int
    runtime: str
    # the serving runtime's facts (recadvisor.serving.workloads): runtime, c_models,
    # python_models, c_parity, and when measured onnx_call_floor_ms, python_p50_ms, request,
    # concurrency, candidate_setting (see README, "Serving runtime")
    serving: dict[str, Any]
    floor: dict[str, LatencySummaryDict]
    models: list[ModelResultDict]
    notes: list[str]


@dataclass(frozen=True)
class ModelResult:
    """One model's figures in a comparison."""

    label: str
    kind: str
    path: str
    size_bytes: int
    node_count: int | None
    latency: dict[int, LatencySummary]
    ratio_vs_baseline: dict[int, float]
    ratio_vs_floor: dict[int, float]
    parity: dict[str, float] | None = None
    parity_passed: bool | None = None
    quality: dict[str, QualityDict] = field(default_factory=dict)
    memory: MemoryDict | None = None
    encoded_inputs: tuple[str, ...] = ()
    onnx_profile: OnnxProfileDict | None = None

    def to_dict(self) -> ModelResultDict:
        """JSON form."""
        return {
            "label": self.label,
            "kind": self.kind,
            "path": self.path,
            "size_bytes": self.size_bytes,
            "node_count": self.node_count,
            "latency": {str(b): s.to_dict() for b, s in self.latency.items()},
            "ratio_vs_baseline": {str(b): r for b, r in self.ratio_vs_baseline.items()},
            "ratio_vs_floor": {str(b): r for b, r in self.ratio_vs_floor.items()},
            "parity": self.parity,
            "parity_passed": self.parity_passed,
            "quality": self.quality,
            "memory": self.memory,
            "encoded_inputs": list(self.encoded_inputs),
            "onnx_profile": self.onnx_profile,
        }


@dataclass(frozen=True)
class Comparison:
    """Everything ``compare`` measured; ``to_dict`` is ``compare.json``."""

    baseline: str
    signature: str
    batch_sizes: tuple[int, ...]
    requests: int
    rows: int
    machine: MachineDict
    models: tuple[ModelResult, ...]
    floor: dict[int, LatencySummary]
    tolerance: float
    notes: tuple[str, ...] = ()
    call: str = "keyword"
    burst: int = 1
    runtime: str = "python"
    serving: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> ComparisonDict:
        """``compare.json`` (schema :class:`ComparisonDict`)."""
        return {
            "schema_version": COMPARE_SCHEMA_VERSION,
            "baseline": self.baseline,
            "signature": self.signature,
            "batch_sizes": list(self.batch_sizes),
            "requests": self.requests,
            "rows": self.rows,
            "machine": self.machine,
            "tolerance": self.tolerance,
            "call": self.call,
            "burst": self.burst,
            "runtime": self.runtime,
            "serving": self.serving,
            "floor": {str(b): s.to_dict() for b, s in self.floor.items()},
            "models": [m.to_dict() for m in self.models],
            "notes": list(self.notes),
        }


def machine_info() -> MachineDict:
    """CPU, cores and library versions, for the record."""
    import os

    tf = import_tf()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import onnxruntime

        ort_version: str | None = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "platform": platform.platform(),
        "onnxruntime": ort_version,
    }


def _label_for(path: Path, used: set[str], baseline: bool = False) -> str:
    """A short row label: ``baseline``, the rebuilt folder's name (``safe``, ``fast``), or
    ``<folder>.onnx`` for an ONNX file (``fast.onnx``); the paths are listed once elsewhere."""
    if baseline:
        label = "baseline"
    elif path.suffix == ".onnx":
        stem = path.parent.name if path.stem == "model" and path.parent.name else path.stem
        label = f"{stem}.onnx"
    else:
        label = path.parent.name if path.name == "saved_model" else path.name
    base, i = label, 2
    while label in used:
        label, i = f"{base}#{i}", i + 1
    used.add(label)
    return label


def open_model(
    path: str | Path, signature: str | None, threads: int | None = None, flat_call: bool = False
) -> tuple[Any, Path | None, Path]:
    """A runner for a SavedModel dir, a rebuilt dir (with ``saved_model/``) or an ``.onnx`` file.

    ``flat_call`` is passed to :class:`~recadvisor.bench.SavedModelRunner`.

    Returns:
        (runner, directory holding ``feature_contract.json`` or None, the model path)
    """
    p = Path(path)
    if p.suffix == ".onnx":
        if not p.is_file():
            raise ModelLoadError(f"ONNX model '{p}' does not exist")
        contract = p.parent if (p.parent / "feature_contract.json").is_file() else None
        return OnnxRunner(p, threads), contract, p
    if (p / "saved_model").is_dir() and not (p / "saved_model.pb").is_file():
        contract = p if (p / "feature_contract.json").is_file() else None
        return (
            SavedModelRunner(p / "saved_model", signature, flat_call),
            contract,
            p / "saved_model",
        )
    contract = None
    for d in (p, p.parent):
        if (d / "feature_contract.json").is_file():
            contract = d
    return SavedModelRunner(p, signature, flat_call), contract, p


def _per_request_inputs(contract_dirs: Iterable[Path | None]) -> list[str]:
    """The inputs any of these rebuilt models takes once per request (``broadcast``)."""
    from recadvisor.encode import load_feature_contract

    keys: list[str] = []
    for contract_dir in contract_dirs:
        if contract_dir is not None:
            keys.extend(broadcast_inputs(load_feature_contract(contract_dir).encodings))
    return list(dict.fromkeys(keys))


def _encode(contract_dir: Path | None, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if contract_dir is None:
        return dict(feeds)
    from recadvisor.encode import encode_inputs

    return encode_inputs(contract_dir, dict(feeds))


def _node_count(runner: Any) -> int | None:
    """Nodes of the model a runner serves (the frozen graph for SavedModels)."""
    try:
        if runner.kind == "onnx":
            import onnx

            return len(onnx.load(runner.path).graph.node)
        if runner.graph_runner is not None:  # TF1: already frozen to be run
            return len(runner.graph_runner.graph.graph_def.node)
        from recadvisor.model.freeze import freeze

        return len(freeze(runner.loaded).graph_def.node)
    except Exception as e:  # noqa: BLE001 - a count is nice to have, not essential
        log.warning("cannot count nodes of %s: %s", runner.path, e)
        return None


def _profile_onnx_model(
    runner: OnnxRunner,
    feeds: Mapping[str, np.ndarray],
    batch_sizes: Sequence[int],
    request_inputs: Sequence[str],
    calls: int,
) -> dict[str, Any] | None:
    """Per-node onnxruntime time of one ONNX candidate (``compare.json``'s ``onnx_profile``)."""
    from recadvisor.analysis.onnx_profile import profile_onnx
    from recadvisor.bench import configure_onnx_session

    try:
        profile = profile_onnx(
            runner.path,
            lambda bs: runner.feed_dict(take_rows(feeds, bs, request_inputs=request_inputs)),
            batch_sizes,
            calls=calls,
            session_options=lambda options: configure_onnx_session(options, runner.threads),
        )
    except Exception as e:  # noqa: BLE001 - the profile is extra detail, the timings stand
        log.warning("cannot profile %s per node: %s", runner.path, e)
        return None
    return profile.to_dict()


def compare(
    baseline: str | Path,
    candidates: Sequence[str | Path],
    feeds: Mapping[str, np.ndarray],
    *,
    labels: Mapping[str, np.ndarray] | None = None,
    signature: str | None = None,
    batch_sizes: Sequence[int] = (1, 32, 256),
    requests: int = 200,
    warmup: int = 20,
    threads: int | None = None,
    tolerance: float = 1e-5,
    measure_memory: bool = True,
    parity_rows: int = 1024,
    progress: Callable[[str, int, int], None] | None = None,
    flat_call: bool = False,
    burst: int = 8,
    gpu_device: str | None = None,
    onnx_profile_calls: int = 50,
    runtime: str = "python",
    request_size: int | None = None,
    concurrency: Sequence[int] = (),
    concurrency_seconds: float = 2.0,
    candidate_setting: str | None = None,
    also_python: bool = False,
) -> Comparison:
    """Benchmark candidates against a baseline on the same rows.

    Args:
        baseline: the original SavedModel directory.
        candidates: rebuilt dirs, SavedModel dirs or ``.onnx`` files.
        feeds: raw inputs in the baseline's contract (signature key -> array).
        labels: label arrays (``label`` and ``label_<output>``) for AUC / log-loss.
        signature: the baseline's signature key.
        batch_sizes: batch sizes to time.
        requests: timed calls per model and batch size.
        warmup: untimed calls first.
        threads: intra-op threads for TensorFlow and onnxruntime (None: their defaults); with
            ``tf-c``, the intra- and inter-op threads of every C session.
        tolerance: max abs diff for the parity verdict.
        measure_memory: measure peak RSS per model in a separate process.
        parity_rows: rows used for parity and quality.
        progress: ``progress(stage, done, total)``.
        flat_call: time SavedModels (baseline, candidates and the floor alike) on inputs and
            captures bound to the signature once, leaving out TensorFlow's per-call Python
            binding, instead of the public keyword call ``signature(**tensors)`` (default).
        burst: consecutive timed calls per model in each interleaved round (see
            :func:`~recadvisor.bench.time_interleaved`). Call-by-call interleaving (1) measures
            every model right after the others disturbed caches and thread pools, which costs
            onnxruntime at batch 1 more than half of its time (ESMM: 0.086 ms vs 0.032 ms).
        gpu_device: a TensorFlow device (``/GPU:0``): the baseline and every SavedModel
            candidate are also timed placed there, as ``<label> @gpu`` rows (ratios against the
            CPU baseline; memory is not measured for them).
        onnx_profile_calls: calls per batch size profiled per node for each ONNX model
            (onnxruntime's profiler, in a session of its own; 0: no ``onnx_profile``).
        runtime: ``python`` (TF-Python signature calls) or ``tf-c`` (SavedModels through
            TensorFlow's C API in a C loop, as TF Serving runs them; falls back to ``python``
            with a note when the C program cannot be built); see :mod:`recadvisor.serving`.
        request_size: time ranking requests of one user x this many candidates instead of
            ``batch_sizes`` (the per-request inputs of one row repeated for models that take
            them per row, once for ``per_request_dedup`` rebuilds).
        concurrency: closed-loop caller counts (e.g. ``(1, 2, 4)``), each run for
            ``concurrency_seconds`` per model, at the request size or the first batch size.
        concurrency_seconds: seconds per model and caller count.
        candidate_setting: a session setting (:mod:`recadvisor.serving.settings`) for every
            candidate's C session; the baseline keeps TensorFlow's defaults.
        also_python: with ``tf-c``, also time in Python (``serving.python_p50_ms``).

    Returns:
        A :class:`Comparison`.
    """
    from recadvisor.serving import workloads
    from recadvisor.serving.tfc import TfcUnavailableError

    configs_for = workloads.check_options(runtime, candidate_setting)
    if request_size:
        batch_sizes = (request_size,)
    tf = import_tf()
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            log.warning("TensorFlow already initialised; --threads applies to onnxruntime only")
    used: set[str] = set()
    base_runner, _, base_path = open_model(baseline, signature, threads, flat_call)
    spec = base_runner.spec
    base_label = _label_for(Path(baseline), used, baseline=True)
    runners: dict[str, Any] = {base_label: base_runner}
    model_feeds: dict[str, dict[str, np.ndarray]] = {base_label: dict(feeds)}
    meta: dict[str, tuple[str, Path, Path | None]] = {base_label: ("saved_model", base_path, None)}
    opened = []
    for cand in candidates:
        runner, contract, path = open_model(cand, signature, threads, flat_call)
        opened.append((_label_for(Path(cand), used), runner, contract, path))
    notes = []
    once = _per_request_inputs(contract for _, _, contract, _ in opened)
    if once:
        # a candidate takes these once per call: every model is timed and checked on requests
        # (row 0's request inputs next to every row's candidate inputs), the serving case
        feeds = one_request_feeds(feeds, once)
        model_feeds[base_label] = dict(feeds)
        notes.append(
            f"a candidate takes {', '.join(once)} once per request: every model is timed and "
            f"checked on one request (row 0's {', '.join(once)} next to each batch of "
            "candidates); AUC/log-loss are not computed on these rows"
        )
        labels = None
    elif request_size:
        feeds, note = workloads.request_feeds(feeds, spec)
        model_feeds[base_label] = dict(feeds)
        notes.append(note)
        labels = None
    for label, runner, contract, path in opened:
        runners[label] = runner
        model_feeds[label] = _encode(contract, feeds)
        meta[label] = (runner.kind, path, contract)
    on_gpu: set[str] = set()
    if gpu_device:
        for label in [k for k, r in runners.items() if r.kind == "saved_model"]:
            kind, path, contract = meta[label]
            gpu_label = f"{label} @gpu"
            runners[gpu_label] = SavedModelRunner(path, signature, flat_call, device=gpu_device)
            model_feeds[gpu_label] = model_feeds[label]
            meta[gpu_label] = (kind, path, contract)
            on_gpu.add(gpu_label)
    n_rows = next(iter(feeds.values())).shape[0]
    # inputs a per-request rebuild takes once per call (encoded to a single row)
    request_inputs = {
        label: [k for k, v in model_feeds[label].items() if v.shape[0] == 1 and n_rows > 1]
        for label in runners
    }

    with tempfile.TemporaryDirectory() as tmp:
        floor_runner = SavedModelRunner(
            build_floor_model(spec, Path(tmp) / "floor"), flat_call=flat_call
        )
        timed = dict(runners)
        timed[FLOOR] = floor_runner
        timed_feeds = dict(model_feeds)
        timed_feeds[FLOOR] = dict(feeds)
        latencies: dict[str, dict[int, LatencySummary]] = {k: {} for k in timed}
        serving: dict[str, Any] = {}
        configs = configs_for([label for label, *_ in opened])
        if threads:  # the C sessions get them too
            configs = workloads.with_threads(configs, list(timed), threads)
        if runtime == "tf-c":
            try:
                latencies, serving = workloads.time_serving_runtime(
                    timed,
                    timed_feeds,
                    batch_sizes,
                    requests=requests,
                    warmup=warmup,
                    burst=burst,
                    request_inputs=request_inputs,
                    configs=configs,
                    progress=progress,
                )
            except TfcUnavailableError as e:
                notes.append(
                    f"the TensorFlow C runtime cannot be built here ({e}): timed in Python"
                )
                runtime = "python"
            except RuntimeError as e:  # the C program failed on these models
                log.warning("C runtime failed: %s", e)
                notes.append(
                    f"the TensorFlow C runtime failed on these models ({e}): timed in Python"
                )
                runtime = "python"
        if candidate_setting and runtime == "python":
            notes.append(
                f"session setting '{candidate_setting}' applies to C sessions only: "
                "not applied in the Python runtime"
            )
        python_latencies = time_batches_python(
            timed,
            timed_feeds,
            batch_sizes if runtime == "python" or also_python else (),
            requests=requests,
            warmup=warmup,
            burst=burst,
            request_inputs=request_inputs,
            progress=progress,
        )
        if runtime == "python":
            latencies = python_latencies
        elif also_python:
            serving["python_p50_ms"] = workloads.p50_table(python_latencies)
        if concurrency:
            serving["concurrency"] = workloads.run_concurrency(
                runners,
                model_feeds,
                batch_sizes[0],
                concurrency,
                runtime=runtime,
                seconds=concurrency_seconds,
                request_inputs=request_inputs,
                configs=configs,
                progress=progress,
            )

    rows = min(parity_rows, n_rows)
    ref = run_in_chunks(base_runner, take_rows(feeds, rows))
    results = []
    for label, runner in runners.items():
        kind, path, contract = meta[label]
        outs = (
            ref
            if label == base_label
            else run_in_chunks(
                runner, take_rows(model_feeds[label], rows, request_inputs=request_inputs[label])
            )
        )
        parity = None
        passed = None
        if label != base_label:
            common = sorted(set(ref) & set(outs))
            checked = compare_outputs(ref, outs, tolerance, outputs=common, align_shapes=True)
            parity = {o.key: o.max_abs_diff for o in checked.outputs}
            passed = checked.passed
            dropped = sorted(set(ref) - set(outs))
            if dropped:
                notes.append(f"{label} does not return {', '.join(dropped)} (pruned outputs)")
        quality = (
            quality_metrics(
                outs, {k: v[:rows] if len(v) >= rows else v for k, v in (labels or {}).items()}
            )
            if labels
            else {}
        )
        size = (
            path.stat().st_size
            if path.is_file()
            else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        )
        memory = None
        if measure_memory and label not in on_gpu:
            if progress:
                progress(f"memory {label}", 0, 1)
            memory = peak_memory_mb(
                kind,
                path,
                signature if kind != "onnx" else None,
                model_feeds[label],
                request_inputs=request_inputs[label],
            )
        onnx_profile = None
        if kind == "onnx" and onnx_profile_calls > 0:
            if progress:
                progress(f"ONNX profile {label}", 0, 1)
            onnx_profile = _profile_onnx_model(
                runner, model_feeds[label], batch_sizes, request_inputs[label], onnx_profile_calls
            )
        results.append(
            ModelResult(
                label=label,
                kind=kind,
                path=str(path),
                size_bytes=size,
                node_count=_node_count(runner),
                latency=latencies[label],
                ratio_vs_baseline={
                    bs: latencies[label][bs].p50_ms / latencies[base_label][bs].p50_ms
                    for bs in batch_sizes
                },
                ratio_vs_floor={
                    bs: latencies[label][bs].p50_ms / latencies[FLOOR][bs].p50_ms
                    for bs in batch_sizes
                },
                parity=parity,
                parity_passed=passed,
                quality=quality,
                memory=memory,
                encoded_inputs=tuple(
                    sorted(
                        k
                        for k in model_feeds[label]
                        if model_feeds[label][k].dtype != feeds[k].dtype
                        or model_feeds[label][k].shape != feeds[k].shape
                    )
                ),
                onnx_profile=onnx_profile,
            )
        )
    return Comparison(
        baseline=str(baseline),
        signature=spec.key,
        batch_sizes=tuple(batch_sizes),
        requests=requests,
        rows=n_rows,
        machine=machine_info(),
        models=tuple(results),
        floor=latencies[FLOOR],
        tolerance=tolerance,
        notes=tuple(notes),
        call="flat" if flat_call else "keyword",
        burst=burst,
        runtime=runtime,
        serving=workloads.serving_facts(
            serving, runtime, request_size, latencies, request_inputs, candidate_setting
        ),
    )
