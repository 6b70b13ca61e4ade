"""The public Python API; the CLI is a thin layer over these functions.

TensorFlow is imported only when a function runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recadvisor.analysis.analyze import Analysis, ProfileSectionDict
    from recadvisor.analysis.inventory import ModelDescription
    from recadvisor.bench import ProgressCallback
    from recadvisor.compare import Comparison, ComparisonDict
    from recadvisor.data.feeds import LoadedData
    from recadvisor.model.graph import ModelGraph
    from recadvisor.model.spec import SignatureSpec
    from recadvisor.rebuild import RebuildDict, RebuildResult
    from recadvisor.report.index_view import IndexEntry

DEMO_PRESETS = ("safe", "fast", "request")  # rebuilt by the demo; fast and request also to ONNX
DEMO_BATCH_SIZES = (1, 256)
DEMO_REQUEST = 256  # candidates per ranking request in the demo's per-request comparison


def refuse_unsafe_models(paths: list[str | Path], allow: bool, command: str) -> None:
    """Scan each SavedModel (stored graph and function library, nothing executed) before a
    command loads it, and refuse one with unsafe ops unless ``allow``.

    Args:
        paths: SavedModel directories, rebuilt folders (holding ``saved_model/``) or ``.onnx``
            files (not scanned: onnxruntime has no file, network or Python ops).
        allow: ``--allow-unsafe-ops`` was given.
        command: the command name, for the message.

    Raises:
        UnsafeModelError: a model contains unsafe ops and ``allow`` is false.
        ModelLoadError: a path is not a SavedModel.
    """
    if allow:
        return
    from recadvisor.analysis.detectors.unsafe_ops import find_unsafe_ops, refuse_unsafe
    from recadvisor.model.load import inspect_saved_model

    for raw in paths:
        path = Path(raw)
        if path.suffix == ".onnx":
            continue
        if (path / "saved_model").is_dir() and not (path / "saved_model.pb").is_file():
            path = path / "saved_model"
        refuse_unsafe(find_unsafe_ops(inspect_saved_model(path)), str(path), allow, command)


def describe(
    model_dir: str | Path,
    signature: str | None = None,
    tensorboard_dir: str | Path | None = None,
    *,
    allow_unsafe_ops: bool = False,
) -> ModelDescription:
    """Load, freeze and describe a SavedModel.

    Args:
        model_dir: the SavedModel directory.
        signature: signature key (default ``serving_default`` or the only one).
        tensorboard_dir: when given, also write the frozen graph there for TensorBoard.
        allow_unsafe_ops: load a model that holds file/network/Python ops (else refused
            before anything runs).

    Returns:
        The :class:`~recadvisor.analysis.inventory.ModelDescription`.
    """
    from recadvisor.analysis.inventory import describe_model
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model

    refuse_unsafe_models([model_dir], allow_unsafe_ops, "describe")
    loaded = load_model(model_dir, signature)
    graph = freeze(loaded)
    if tensorboard_dir is not None:
        write_tensorboard(graph, None, tensorboard_dir)
    return describe_model(loaded, graph)


def write_tensorboard(
    graph: ModelGraph, profile: ProfileSectionDict | None, logdir: str | Path
) -> Path:
    """Write the frozen graph (Graphs tab) and, when given, the profile section of
    ``analysis.json`` (latency, stage shares, op types, top nodes per batch size) for TensorBoard.

    Args:
        graph: the frozen :class:`~recadvisor.model.graph.ModelGraph`.
        profile: ``analysis.json``'s ``profile`` dict, or None for the graph only.
        logdir: the log directory.

    Returns:
        The log directory.
    """
    from recadvisor.model.tensorboard import write_graph, write_summaries
    from recadvisor.report.tensorboard import profile_summaries

    path = write_graph(graph, logdir)
    steps = profile_summaries(profile)
    if steps:
        write_summaries(path, steps)
    return path


def load_data(
    data: str | Path | None,
    spec: SignatureSpec,
    rows: int | None = None,
    vocabularies: dict | None = None,
) -> LoadedData:
    """Read sample data for a signature (or synthesize it), with its label columns.

    Args:
        data: a data file, or ``None`` to synthesize rows from the signature.
        spec: the signature the rows must fit.
        rows: read (or synthesize) at most this many rows.
        vocabularies: input key -> values to draw synthesized rows from.

    Returns:
        The :class:`~recadvisor.data.feeds.LoadedData`.
    """
    from recadvisor.data import load_feeds

    return load_feeds(data, spec, rows=rows, vocabularies=vocabularies)


def compare(
    baseline: str | Path,
    candidates: list[str | Path],
    *,
    data: str | Path | None = None,
    signature: str | None = None,
    batch_sizes: tuple[int, ...] = (1, 32, 256),
    requests: int = 200,
    threads: int | None = None,
    devices: str = "cpu",
    measure_memory: bool = True,
    out_dir: str | Path | None = None,
    force: bool = False,
    rebuild_info: RebuildDict | None = None,
    allow_unsafe_ops: bool = False,
    progress: ProgressCallback | None = None,
    runtime: str = "python",
    request_size: int | None = None,
    concurrency: tuple[int, ...] = (),
    concurrency_seconds: float = 2.0,
    candidate_setting: str | None = None,
    also_python: bool = False,
) -> Comparison:
    """Benchmark rebuilt models against the baseline; optionally write compare.json/html.

    Args:
        baseline: the original SavedModel directory.
        candidates: rebuilt dirs, SavedModel dirs or ``.onnx`` files.
        data: sample data file (else inputs are synthesized from the signature).
        signature: signature key.
        batch_sizes: batch sizes to time.
        requests: timed calls per model and batch size.
        threads: intra-op threads.
        devices: ``cpu`` or ``cpu,gpu``: with a GPU visible to TensorFlow the baseline and
            every SavedModel candidate are also timed on it (``<label> @gpu`` rows and a note
            saying whether the GPU is slower); without one a note says so.
        measure_memory: measure peak memory per model in a separate process.
        out_dir: where to write ``compare.json`` and ``compare.html`` (atomically).
        force: replace an existing ``out_dir``.
        rebuild_info: a ``rebuild.json`` dict to show in the report.
        allow_unsafe_ops: run models that hold file/network/Python ops (else refused before
            anything runs).
        progress: ``progress(stage, done, total)`` callback.
        runtime: ``python`` (TF-Python signature calls) or ``tf-c`` (TensorFlow's C API in a
            C loop, as TF Serving runs models; falls back to Python with a note when it cannot
            be built).
        request_size: time ranking requests of one user x this many candidates.
        concurrency: closed-loop caller counts to run (throughput and p99).
        concurrency_seconds: seconds per model and caller count.
        candidate_setting: a session setting for the candidates' C sessions
            (``caller_thread``, ``per_session``; see :mod:`recadvisor.serving.settings`).
        also_python: with ``tf-c``, also time every model in Python.

    Returns:
        A :class:`~recadvisor.compare.Comparison`.
    """
    import dataclasses
    import json

    from recadvisor.compare import compare as run_compare
    from recadvisor.model.load import inspect_saved_model
    from recadvisor.output import atomic_output_dir, check_output_dir
    from recadvisor.tfimport import import_tf

    refuse_unsafe_models([baseline, *candidates], allow_unsafe_ops, "compare")
    if out_dir is not None:
        check_output_dir(out_dir, force)
    spec = inspect_saved_model(baseline).choose_signature(signature)
    loaded = load_data(data, spec)
    wanted = parse_devices(devices)
    gpus = import_tf().config.list_physical_devices("GPU") if "gpu" in wanted else []
    result = run_compare(
        baseline,
        candidates,
        loaded.feeds,
        labels=loaded.labels or None,
        signature=signature,
        batch_sizes=batch_sizes,
        requests=requests,
        threads=threads,
        measure_memory=measure_memory,
        progress=progress,
        gpu_device="/GPU:0" if gpus else None,
        runtime=runtime,
        request_size=request_size,
        concurrency=concurrency,
        concurrency_seconds=concurrency_seconds,
        candidate_setting=candidate_setting,
        also_python=also_python,
    )
    if "gpu" in wanted:
        note = (
            _gpu_note(result)
            if gpus
            else "GPU requested but TensorFlow sees no GPU on this machine: CPU figures only"
        )
        result = dataclasses.replace(result, notes=result.notes + (note,))
    if out_dir is not None:
        with atomic_output_dir(out_dir, force=True) as tmp:
            payload = result.to_dict()
            (tmp / "compare.json").write_text(json.dumps(payload, indent=2, default=str))
            _render_comparison(payload, tmp / "compare.html", rebuild_info)
    return result


def parse_devices(text: str) -> frozenset[str]:
    """``"cpu,gpu"`` -> ``{"cpu", "gpu"}``.

    Raises:
        ValueError: empty, or a device other than ``cpu`` and ``gpu``.
    """
    wanted = frozenset(d.strip().lower() for d in text.split(",") if d.strip())
    unknown = sorted(wanted - {"cpu", "gpu"})
    if not wanted or unknown:
        raise ValueError(
            f"unknown device(s) {', '.join(unknown) or repr(text)}; use cpu, gpu or cpu,gpu"
        )
    return wanted


def _gpu_note(result: Any) -> str:
    """Say, per batch size, how the baseline placed on the GPU compares with it on the CPU."""
    models = {m.label: m for m in result.models}
    base = result.models[0]
    gpu = models.get(f"{base.label} @gpu")
    if gpu is None:
        return "GPU rows: none (no SavedModel to place on the GPU)"
    ratios = ", ".join(f"{r:.2f}x at batch {bs}" for bs, r in sorted(gpu.ratio_vs_baseline.items()))
    slower = [bs for bs, r in gpu.ratio_vs_baseline.items() if r > 1.0]
    verdict = (
        f"slower on the GPU at batch {', '.join(map(str, sorted(slower)))} (small ranking models "
        "often are: kernel launches and host-device copies outweigh 4-5 small layers)"
        if slower
        else "faster on the GPU at every timed batch size"
    )
    return f"GPU rows ('@gpu'): the baseline on the GPU takes {ratios} of its CPU time; {verdict}"


def _render_comparison(
    payload: ComparisonDict, path: Path, rebuild_info: RebuildDict | None
) -> None:
    from recadvisor.report import render_comparison

    render_comparison(payload, path, rebuild=rebuild_info)


def rebuild(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    plan: str | Path | None = None,
    preset: str = "safe",
    data: str | Path | None = None,
    signature: str | None = None,
    onnx: bool = False,
    force: bool = False,
    allow_unsafe_ops: bool = False,
    stats: str | Path | None = None,
) -> RebuildResult:
    """Rebuild a SavedModel (see :func:`recadvisor.rebuild.rebuild`).

    Args:
        model_dir: the original SavedModel (never modified).
        out_dir: output folder (atomic; an existing one needs ``force``).
        plan: a ``plan.yaml`` (from ``analyze``); else ``preset`` drives it.
        preset: ``safe``, ``fast`` or ``small``.
        data: sample data file for parity checks and gates (else synthesized).
        signature: signature key.
        onnx: also export ``model.onnx``.
        force: replace an existing ``out_dir``.
        allow_unsafe_ops: rebuild a model that holds file/network/Python ops (else refused
            before anything runs).
        stats: a ``recadvisor stats`` folder: data-driven passes decide from the full logs.

    Returns:
        The :class:`~recadvisor.rebuild.RebuildResult`.
    """
    from recadvisor.output import check_output_dir
    from recadvisor.rebuild import rebuild as run_rebuild

    refuse_unsafe_models([model_dir], allow_unsafe_ops, "rebuild")
    check_output_dir(out_dir, force)
    return run_rebuild(
        model_dir,
        out_dir,
        plan=plan,
        preset=preset,
        data=data,
        signature=signature,
        force=force,
        onnx=onnx,
        stats=stats,
    )


def analyze(
    model_dir: str | Path,
    *,
    data: str | Path | None = None,
    signature: str | None = None,
    out_dir: str | Path | None = None,
    batch_sizes: tuple[int, ...] = (1, 256),
    preset: str = "safe",
    allow_unsafe_ops: bool = False,
    tensorboard_dir: str | Path | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
    serving_settings: bool = False,
    request_size: int = 256,
    stats: str | Path | None = None,
) -> Analysis:
    """Analyze a SavedModel; with ``out_dir``, write analysis.json, plan.yaml and report.html.

    Args:
        model_dir: the SavedModel directory.
        data: sample data file (else inputs are synthesized; data-driven advice is off).
        signature: signature key.
        out_dir: output folder (written atomically; an existing one needs ``force``).
        batch_sizes: batch sizes to profile.
        preset: plan preset: ``safe``, ``fast`` or ``small``.
        allow_unsafe_ops: run a model that contains file/network/Python ops.
        tensorboard_dir: also write the frozen graph and the profile for TensorBoard.
        force: replace an existing ``out_dir``.
        progress: ``progress(stage, done, total)`` callback.
        serving_settings: also time session settings in TensorFlow's C runtime (batch 1 and
            one request of ``request_size`` candidates, 1 and 2 callers; each setting in its own
            process) and report the best as TF Serving flags and a ``ConfigProto``.
        request_size: candidates per request for ``serving_settings``.
        stats: a ``recadvisor stats`` folder: rows hit and per-request evidence come from the
            full logs (the sample still drives profiling).

    Returns:
        The :class:`~recadvisor.analysis.analyze.Analysis`.
    """
    import json

    from recadvisor.analysis.analyze import analyze as run_analyze
    from recadvisor.output import atomic_output_dir, check_output_dir
    from recadvisor.plan import save_plan

    if out_dir is not None:
        check_output_dir(out_dir, force)
    result = run_analyze(
        model_dir,
        data=data,
        signature=signature,
        batch_sizes=batch_sizes,
        preset=preset,
        allow_unsafe_ops=allow_unsafe_ops,
        progress=progress,
        stats_dir=stats,
    )
    if serving_settings:
        import dataclasses

        from recadvisor.serving.tuning import analyze_settings

        measured = analyze_settings(result, data, signature, request_size, progress)
        result = dataclasses.replace(result, serving_settings=measured)
    payload = result.to_dict()
    if tensorboard_dir is not None:
        from recadvisor.model.freeze import freeze
        from recadvisor.model.load import load_model

        graph = freeze(load_model(model_dir, signature))
        write_tensorboard(graph, payload["profile"], tensorboard_dir)
    if out_dir is not None:
        from recadvisor.report import render_analysis

        with atomic_output_dir(out_dir, force=True) as tmp:
            (tmp / "analysis.json").write_text(json.dumps(payload, indent=2, default=str))
            save_plan(result.plan, tmp / "plan.yaml")
            render_analysis(payload, tmp / "report.html")
    return result


def stats(
    model_dir: str | Path,
    data: list[str],
    out_dir: str | Path,
    **options: Any,
) -> dict:
    """Feature statistics of the model's inputs over log files (``recadvisor stats``).

    Args:
        model_dir: the SavedModel directory.
        data: files, folders or globs of logs (Parquet, CSV, JSON Lines; hive partitions).
        out_dir: the stats folder (``stats.json`` + ``counts/``), written atomically.
        **options: ``signature``, ``engine`` (``duckdb`` | ``spark``), ``spark_master``,
            ``memory_limit``, ``threads``, ``force``, ``allow_unsafe_ops``, ``progress``
            (see :func:`recadvisor.stats.compute_stats`).

    Returns:
        The ``stats.json`` document.
    """
    from recadvisor.stats import compute_stats

    return dict(compute_stats(model_dir, data, out_dir, **options))


def encode_inputs(rebuilt_dir: str | Path, raw_inputs: dict) -> dict:
    """Encode raw inputs for a rebuilt model whose contract changed (see ``feature_contract.json``).

    Args:
        rebuilt_dir: the folder ``rebuild`` wrote.
        raw_inputs: signature key -> raw values (strings, numbers) as the original model took them.

    Returns:
        signature key -> numpy array the rebuilt model takes (bit-exact TensorFlow ids).
    """
    from recadvisor.encode import encode_inputs as run_encode

    return run_encode(rebuilt_dir, raw_inputs)


@dataclass(frozen=True)
class DemoModel:
    """What the demo did for one sample model.

    Attributes:
        name: the sample's name (``dssm``, ``esmm``, ``din``).
        model_dir: its SavedModel.
        analysis: the analysis (also ``<out>/<name>/analysis/``).
        rebuilds: preset -> the rebuild (``<out>/<name>/<preset>/``).
        comparison: baseline vs ``safe``, ``fast`` and ``fast``'s ONNX file, in batches, in the
            serving runtime (TensorFlow's C API) with the Python figures beside it.
        analysis_report / compare_report: the HTML reports written.
        request_comparison: baseline vs ``safe``, ``request`` and its ONNX file on ranking
            requests of one user x :data:`DEMO_REQUEST` candidates, with 1 and 2 callers.
        request_report: its HTML report.
    """

    name: str
    model_dir: Path
    analysis: Analysis
    rebuilds: dict[str, RebuildResult]
    comparison: Comparison
    analysis_report: Path
    compare_report: Path
    request_comparison: Comparison | None = None
    request_report: Path | None = None


@dataclass(frozen=True)
class DemoResult:
    """Everything :func:`demo` wrote: one :class:`DemoModel` per sample and the index page."""

    out_dir: Path
    models: tuple[DemoModel, ...]
    index: Path


def demo(
    models_dir: str | Path = "sample_models",
    out_dir: str | Path = "reports",
    *,
    rows: int = 20000,
    requests: int = 200,
    force: bool = False,
    size: str = "full",
    names: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
) -> DemoResult:
    """The main job on the bundled samples: build them (when missing), then analyze, rebuild
    (``safe``; ``fast`` and ``request`` with ONNX) and compare each in the serving runtime, in
    batches and on ranking requests, and write ``out_dir/index.html``.

    Each model's reports go to ``out_dir/<name>/`` (``analysis/``, ``safe/``, ``fast/``,
    ``request/``, ``compare/``, ``request-compare/``), replacing earlier demo output there.
    Memory is measured in ``compare``.

    Args:
        models_dir: where the sample models are (or are built).
        out_dir: the reports folder.
        rows: rows of synthetic data per sample, when a sample is built.
        requests: timed calls per model and batch size.
        force: rebuild the samples even when they exist.
        size: sample size when built: ``full`` or ``tiny``.
        names: the samples to run (default: all of ``SAMPLE_NAMES``).
        progress: ``progress(stage, done, total)``; sample building reports its messages as
            stages with ``(0, 1)``.

    Returns:
        A :class:`DemoResult`.
    """
    from recadvisor.report import render_index
    from recadvisor.samples import SAMPLE_NAMES, build_samples

    models_root, out = Path(models_dir), Path(out_dir)
    chosen = list(SAMPLE_NAMES if names is None else names)
    missing = [n for n in chosen if force or not (models_root / n / "saved_model").is_dir()]
    if missing:
        build_samples(
            models_root,
            rows=rows,
            names=missing,
            size=size,
            force=force,
            progress=(lambda msg: progress(msg, 0, 1)) if progress else None,
        )
    out.mkdir(parents=True, exist_ok=True)
    done: list[DemoModel] = []
    for name in chosen:
        done.append(_demo_model(name, models_root / name, out / name, requests, progress))
    index = render_index(
        [_index_entry(m) for m in done],
        out / "index.html",
    )
    return DemoResult(out_dir=out, models=tuple(done), index=index)


def _index_entry(model: DemoModel) -> IndexEntry:
    entry: IndexEntry = {
        "name": model.name,
        "analysis": model.analysis.to_dict(),
        "comparison": model.comparison.to_dict(),
        "analysis_report": str(model.analysis_report),
        "compare_report": str(model.compare_report),
    }
    if model.request_comparison is not None and model.request_report is not None:
        entry["request_comparison"] = model.request_comparison.to_dict()
        entry["request_report"] = str(model.request_report)
    return entry


def _with_onnx(*rebuilt: Path) -> list[str | Path]:
    """The rebuilt folders, then the ONNX file of the last one when it was written."""
    onnx = rebuilt[-1] / "model.onnx"
    return [*rebuilt, *([onnx] if onnx.is_file() else [])]


def _demo_model(
    name: str, sample_dir: Path, out: Path, requests: int, progress: ProgressCallback | None
) -> DemoModel:
    """Analyze, rebuild and compare one sample into ``out`` (progress stages named after it)."""
    model = sample_dir / "saved_model"
    data = sample_dir / "sample.parquet"
    if progress is not None:
        outer = progress

        def progress(stage: str, done: int, total: int) -> None:
            outer(f"{name}: {stage}", done, total)

    analysis = analyze(model, data=data, out_dir=out / "analysis", force=True, progress=progress)
    rebuilds: dict[str, RebuildResult] = {}
    for i, preset in enumerate(DEMO_PRESETS):
        if progress is not None:
            progress("rebuild", i, len(DEMO_PRESETS))
        rebuilds[preset] = rebuild(
            model, out / preset, preset=preset, data=data, onnx=(preset != "safe"), force=True
        )
    comparison = compare(
        model,
        _with_onnx(out / "safe", out / "fast"),
        data=data,
        batch_sizes=DEMO_BATCH_SIZES,
        requests=requests,
        measure_memory=True,
        out_dir=out / "compare",
        force=True,
        rebuild_info=rebuilds["fast"].to_dict(),
        progress=progress,
        runtime="tf-c",
        also_python=True,
    )
    request_comparison = compare(
        model,
        _with_onnx(out / "safe", out / "request"),
        data=data,
        requests=requests,
        measure_memory=False,
        out_dir=out / "request-compare",
        force=True,
        rebuild_info=rebuilds["request"].to_dict(),
        progress=progress,
        runtime="tf-c",
        request_size=DEMO_REQUEST,
        concurrency=(1, 2),
        concurrency_seconds=1.0,
    )
    return DemoModel(
        name=name,
        model_dir=model,
        analysis=analysis,
        rebuilds=rebuilds,
        comparison=comparison,
        analysis_report=out / "analysis" / "report.html",
        compare_report=out / "compare" / "compare.html",
        request_comparison=request_comparison,
        request_report=out / "request-compare" / "compare.html",
    )
