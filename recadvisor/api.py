"""The public Python API; the CLI is a thin layer over these functions.

TensorFlow is imported only when a function runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recadvisor.analysis.inventory import ModelDescription


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
    from recadvisor.analysis.inventory import describe_model, write_tensorboard_graph
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model

    refuse_unsafe_models([model_dir], allow_unsafe_ops, "describe")
    loaded = load_model(model_dir, signature)
    graph = freeze(loaded)
    if tensorboard_dir is not None:
        write_tensorboard_graph(graph, tensorboard_dir)
    return describe_model(loaded, graph)


def load_data(
    data: str | Path | None, spec: object, rows: int | None = None, vocabularies: dict | None = None
) -> object:
    """Read sample data for a signature (or synthesize it), with its label columns."""
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
    rebuild_info: dict | None = None,
    allow_unsafe_ops: bool = False,
    progress: object = None,
) -> object:
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


def _render_comparison(payload: dict, path: Path, rebuild_info: dict | None) -> None:
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
) -> object:
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
    progress: object = None,
    stats: str | Path | None = None,
) -> object:
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
    payload = result.to_dict()
    if tensorboard_dir is not None:
        from recadvisor.model.freeze import freeze
        from recadvisor.model.load import load_model
        from recadvisor.report.tensorboard import write_profile

        write_profile(freeze(load_model(model_dir, signature)), result.profile, tensorboard_dir)
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
