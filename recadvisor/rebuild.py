"""Rebuild a SavedModel: load, freeze, run the plan's rewrite passes, export, check, report.

:func:`rebuild` writes, atomically (an existing output needs ``force``; the input model is never
touched)::

    OUT/saved_model/          the rebuilt SavedModel (same signature key(s); large constants as
                              variables, lookup tables re-created)
    OUT/rebuild.json          passes applied / refused / rolled back with reasons, parity per
                              output vs the original model, sizes, node and op counts, timings
    OUT/plan.yaml             the plan that was run
    OUT/feature_contract.json only when a pass changed the input contract
    OUT/model.onnx            only with ``onnx=True`` and when the graph can be exported

Parity is checked three times: each pass against the stage before it (the pipeline), the final
graph against the *original loaded model*, and the exported SavedModel, reloaded from disk,
against the original model again. A failure of the last two raises instead of writing output.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from recadvisor.errors import DataError, ExportError, FreezeError, OutputExistsError, RewriteError
from recadvisor.model.graph import ModelGraph, node_name
from recadvisor.model.load import LoadedModel, first_line
from recadvisor.model.onnx_export import OnnxExportDict
from recadvisor.model.spec import SignatureDict, SignatureSpec
from recadvisor.plan import (
    Plan,
    PlanEntry,
    check_plan_fits,
    load_plan,
    preset_plan,
    save_plan,
)
from recadvisor.rewrite.base import RewriteContext
from recadvisor.rewrite.encodings import broadcast_inputs, feature_contract_dict
from recadvisor.rewrite.pipeline import APPLIED, PipelineDict, PipelineResult, run_pipeline
from recadvisor.verify import DEFAULT_TOLERANCE, Parity, ParityDict, compare_outputs

log = logging.getLogger(__name__)

REBUILD_SCHEMA_VERSION = 2  # 2: data.note and sizes.onnx_bytes always present
DEFAULT_SAMPLE_ROWS = 64
MAX_FILE_ROWS = 4096  # rows read from a data file for the parity checks and accuracy gates
SAVED_MODEL_DIR = "saved_model"
REPORT_FILE = "rebuild.json"
PLAN_FILE = "plan.yaml"
CONTRACT_FILE = "feature_contract.json"
ONNX_FILE = "model.onnx"


class RebuildModelDict(TypedDict):
    """The input model (``rebuild.json``'s ``model``)."""

    path: str
    signature: str
    source_format: str
    fingerprint: str


class RebuildOutputDict(TypedDict):
    """Where the rebuilt model went (``output``)."""

    dir: str
    saved_model: str
    signature_keys: list[str]


class RebuildPlanRefDict(TypedDict):
    """The plan run (``plan``): its preset and the file written beside the model."""

    preset: str
    file: str


class RebuildDataDict(TypedDict):
    """Where the sample rows came from (``data``); ``note`` is empty unless synthesized."""

    source: str
    path: str | None
    rows: int
    labels: bool
    note: str


class RebuildParityDict(TypedDict):
    """The three parity checks against the original model (``parity``)."""

    freeze_vs_original: ParityDict
    final_vs_original: ParityDict
    exported_vs_original: ParityDict


class RebuildSizesDict(TypedDict):
    """Bytes on disk and in constants (``sizes``); ``onnx_bytes`` is null without ONNX."""

    original_bytes: int
    saved_model_bytes: int
    variables_bytes: int
    frozen_const_bytes: int
    final_const_bytes: int
    onnx_bytes: int | None


class RebuildNodesDict(TypedDict):
    """Node counts (``nodes``): stored (graph + functions), frozen, rebuilt."""

    original: int
    frozen: int
    final: int


class RebuildOpCountsDict(TypedDict):
    """Op type counts (``op_counts``), same three stages."""

    original: dict[str, int]
    frozen: dict[str, int]
    final: dict[str, int]


class OnnxWrittenDict(OnnxExportDict):
    """``onnx`` when ``model.onnx`` was written (``path`` relative to the output folder)."""

    exported: bool


class OnnxSkippedDict(TypedDict):
    """``onnx`` when the export was asked for but could not be done."""

    exported: bool
    reason: str


class RebuildDict(TypedDict):
    """``rebuild.json`` (schema :data:`REBUILD_SCHEMA_VERSION`): ``RebuildResult.to_dict()``."""

    schema_version: int
    model: RebuildModelDict
    output: RebuildOutputDict
    plan: RebuildPlanRefDict
    passed: bool
    data: RebuildDataDict
    passes: PipelineDict
    parity: RebuildParityDict
    signature_after: SignatureDict
    sizes: RebuildSizesDict
    nodes: RebuildNodesDict
    op_counts: RebuildOpCountsDict
    timings: dict[str, float]
    notes: list[str]
    onnx: OnnxWrittenDict | OnnxSkippedDict | None


@dataclass(frozen=True)
class RebuildResult:
    """Everything :func:`rebuild` did; ``to_dict()`` is ``rebuild.json``.

    Attributes:
        model_dir / out_dir / saved_model_dir: input model, output folder, rebuilt SavedModel.
        signature: the signature key rebuilt; ``signature_keys`` all keys it is published under.
        source_format: ``tf1`` or ``tf2``.
        plan: the plan run.
        pipeline: per-pass records and the final graph.
        freeze_parity: the frozen graph vs the original model (before any pass).
        parity: the final graph vs the original model.
        export_parity: the exported SavedModel, reloaded, vs the original model.
        data: where the sample rows came from (``source``, ``rows``, ``labels``).
        sizes: bytes on disk (original, rebuilt SavedModel, its variables).
        nodes: node counts (original SavedModel incl. functions, frozen, final).
        op_counts: op type counts (``original``, ``frozen``, ``final``).
        timings: seconds per phase.
        notes: remarks (contract changes, skipped ONNX export...).
        onnx: the ONNX export's summary, when requested.
    """

    model_dir: str
    out_dir: str
    saved_model_dir: str
    signature: str
    signature_keys: tuple[str, ...]
    source_format: str
    plan: Plan
    pipeline: PipelineResult
    freeze_parity: Parity
    parity: Parity
    export_parity: Parity
    data: RebuildDataDict
    sizes: RebuildSizesDict
    nodes: RebuildNodesDict
    op_counts: RebuildOpCountsDict
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    onnx: OnnxWrittenDict | OnnxSkippedDict | None = None

    @property
    def graph(self) -> ModelGraph:
        """The final (rebuilt) graph."""
        return self.pipeline.graph

    @property
    def passed(self) -> bool:
        """The rebuilt model matches the original within tolerance (in process and exported)."""
        return self.parity.passed and self.export_parity.passed

    def to_dict(self) -> RebuildDict:
        """The content of ``rebuild.json`` (schema :class:`RebuildDict`)."""
        return {
            "schema_version": REBUILD_SCHEMA_VERSION,
            "model": {
                "path": self.model_dir,
                "signature": self.signature,
                "source_format": self.source_format,
                "fingerprint": self.plan.fingerprint,
            },
            "output": {
                "dir": self.out_dir,
                "saved_model": self.saved_model_dir,
                "signature_keys": list(self.signature_keys),
            },
            "plan": {"preset": self.plan.preset, "file": PLAN_FILE},
            "passed": self.passed,
            "data": self.data,
            "passes": self.pipeline.to_dict(),
            "parity": {
                "freeze_vs_original": self.freeze_parity.to_dict(),
                "final_vs_original": self.parity.to_dict(),
                "exported_vs_original": self.export_parity.to_dict(),
            },
            "signature_after": self.graph.signature.to_dict(),
            "sizes": self.sizes,
            "nodes": self.nodes,
            "op_counts": self.op_counts,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "notes": list(self.notes),
            "onnx": self.onnx,
        }


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
    return total


def _check_paths(model_dir: str | Path, out_dir: str | Path, force: bool) -> None:
    from recadvisor.output import check_output_dir

    model = Path(model_dir).resolve()
    out = Path(out_dir).resolve()
    if out == model or model in out.parents or out in model.parents:
        raise OutputExistsError(
            f"output '{out_dir}' overlaps the input model '{model_dir}'; choose another --out "
            "(the input model is never modified)"
        )
    check_output_dir(out_dir, force)


def _original_function(loaded: LoadedModel) -> tuple[Any, Any]:
    """The original signature as a callable (and the object keeping it alive)."""
    if loaded.function is not None:
        return loaded.function, loaded.obj
    from recadvisor.tfimport import import_tf

    tf = import_tf()
    obj = tf.saved_model.load(loaded.path, tags=list(loaded.info.tags) or None)
    return obj.signatures[loaded.spec.key], obj


def table_vocabularies(graph: ModelGraph) -> dict[str, list[Any]]:
    """Input key -> keys of the lookup table that input is looked up in (for synthesized rows).

    Args:
        graph: the frozen graph.

    Returns:
        One entry per input read (through any op chain) by exactly one table lookup's keys.
    """
    vocab: dict[str, list[Any]] = {}
    for node in graph.graph_def.node:
        if node.op not in ("LookupTableFindV2", "LookupTableFind") or len(node.input) < 2:
            continue
        table = graph.tables.get(graph.table_of_node(node.name) or "")
        feats = graph.features_of_node.get(node_name(node.input[1]), frozenset())
        if table is None or len(feats) != 1:
            continue
        key = next(iter(feats))
        if key not in vocab:
            vocab[key] = [
                k.decode("utf-8", "replace")
                if isinstance(k, bytes)
                else k.item()
                if hasattr(k, "item")
                else k
                for k in table.keys
            ]
    return vocab


def _sample_rows(
    data: Mapping[str, Any] | str | Path | None,
    labels: Any,
    graph: ModelGraph,
    rows: int,
) -> tuple[dict[str, np.ndarray], np.ndarray | None, RebuildDataDict]:
    """Feeds (original contract), labels and a summary of where they came from."""
    spec = graph.signature
    if data is None or isinstance(data, (str, Path)):
        from recadvisor.data import load_feeds

        loaded = load_feeds(
            None if data is None else data,
            spec,
            rows=rows if data is None else max(rows, MAX_FILE_ROWS),
            vocabularies=table_vocabularies(graph) if data is None else None,
        )
        feeds = dict(loaded.feeds)
        if labels is None and loaded.labels:
            labels = next(iter(loaded.labels.values()))
        source, path, n_rows = loaded.source, loaded.path, loaded.n_rows
    else:
        missing = sorted(set(spec.inputs) - set(data))
        if missing:
            raise DataError(
                f"sample data is missing inputs {', '.join(missing)}; signature "
                f"'{spec.key}' takes {', '.join(sorted(spec.inputs))}"
            )
        feeds = {}
        for key, info in spec.inputs.items():
            arr = np.asarray(data[key])
            feeds[key] = arr.astype(object) if info.dtype == "string" else arr
        first = next(iter(feeds.values()), np.zeros(0))
        source, path, n_rows = "given", None, int(first.shape[0]) if first.ndim else 1
    label_array = None if labels is None else np.asarray(labels)
    summary: RebuildDataDict = {
        "source": source,
        "path": path,
        "rows": n_rows,
        "labels": label_array is not None,
        "note": "synthesized rows: parity is checked on random inputs"
        if source == "synthetic"
        else "",
    }
    return feeds, label_array, summary


def _resolve_plan(
    plan: Plan | str | Path | None, preset: str, graph: ModelGraph, model_dir: str | Path
) -> Plan:
    if plan is None:
        chosen = preset_plan(preset, graph, model_path=str(model_dir))
    elif isinstance(plan, Plan):
        chosen = plan
    else:
        chosen = load_plan(plan)
    check_plan_fits(chosen, graph)
    return chosen


def _signature_keys(loaded: LoadedModel) -> list[str]:
    """The chosen key plus every other key serving the very same signature.

    Keras exports carry ``serve`` next to ``serving_default``; clients of either keep working.
    """
    key = loaded.spec.key
    same = [
        k
        for k, spec in loaded.info.signatures.items()
        if k != key and spec.inputs == loaded.spec.inputs and spec.outputs == loaded.spec.outputs
    ]
    return [key, *sorted(same)]


def _final_tolerance(pipeline: PipelineResult) -> float:
    """The sum of the applied passes' tolerances (each stage is within its own of the last)."""
    total = sum(r.tolerance or 0.0 for r in pipeline.records if r.status == APPLIED)
    return max(DEFAULT_TOLERANCE, total)


def _write_contract(path: Path, pipeline: PipelineResult, original: SignatureSpec) -> None:
    doc = feature_contract_dict(list(pipeline.encodings), pipeline.graph.signature, original)
    path.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")


SPLIT_PASS = "split_concat_matmul"


def _onnx_graph(
    graph: ModelGraph,
    plan: Plan,
    context: RewriteContext,
    pipeline: PipelineResult,
    final_outputs: Mapping[str, np.ndarray],
) -> tuple[ModelGraph, str]:
    """The graph ``model.onnx`` is built from, and a note when it is not the final graph.

    Where ``split_concat_matmul`` applied without ``per_row_weights``, the plan is run again
    with it: folding ``q * k`` into per-row weights (``BatchMatMulV2``) is much faster on
    onnxruntime but slower in TensorFlow at batch 1, so the SavedModel keeps the plain split
    and the ONNX file gets the folded one, if its outputs match the final graph's.

    Args:
        graph: the frozen original.
        plan: the plan the pipeline ran.
        context: the pipeline's sample rows.
        pipeline: the pipeline's result.
        final_outputs: the final graph's outputs on ``pipeline.feeds``.

    Returns:
        (graph to export, note for ``rebuild.json`` or ``""``).
    """
    from recadvisor.model.runtime import GraphRunner

    entry = plan.entry(SPLIT_PASS)
    record = pipeline.record(SPLIT_PASS)
    if (
        entry is None
        or record is None
        or record.status != APPLIED
        or entry.params.get("per_row_weights")
    ):
        return pipeline.graph, ""
    variant_plan = plan.with_entry(
        PlanEntry(SPLIT_PASS, True, {**entry.params, "per_row_weights": True}, entry.comment)
    )
    variant = run_pipeline(graph, variant_plan, context)
    variant_record = variant.record(SPLIT_PASS)
    if variant_record is None or variant_record.status != APPLIED:
        return pipeline.graph, ""
    parity = compare_outputs(final_outputs, GraphRunner(variant.graph)(pipeline.feeds))
    if not parity.passed:
        return pipeline.graph, ""
    return variant.graph, (
        f"model.onnx is built with {SPLIT_PASS} per_row_weights (q * k folded into per-row "
        f"weights: faster on onnxruntime; the SavedModel keeps the plain split, faster in "
        f"TensorFlow at batch 1); vs the final graph: {parity.summary()}"
    )


def _export_onnx(
    graph: ModelGraph, path: Path, feeds: Mapping[str, np.ndarray]
) -> tuple[OnnxWrittenDict | OnnxSkippedDict, str]:
    """Write ``path`` (inside the temporary output folder); (summary for rebuild.json, note).

    The summary's ``path`` is relative to the output folder (``model.onnx``).
    """
    from recadvisor.errors import RecAdvisorError
    from recadvisor.model.onnx_export import export_onnx

    try:
        result = export_onnx(graph, path, feeds)
    except RecAdvisorError as e:
        return {"exported": False, "reason": str(e)}, f"ONNX export skipped: {first_line(e)}"
    # written into the temporary output folder; record where it is once the folder is in place
    summary: OnnxWrittenDict = {**result.to_dict(), "path": path.name, "exported": path.exists()}
    return summary, ""


def rebuild(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    plan: Plan | str | Path | None = None,
    preset: str = "safe",
    data: Mapping[str, Any] | str | Path | None = None,
    labels: Any = None,
    signature: str | None = None,
    force: bool = False,
    onnx: bool = False,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    stats: str | Path | None = None,
) -> RebuildResult:
    """Rebuild a SavedModel for faster CPU serving, checking parity at every step.

    Args:
        model_dir: the input SavedModel (never modified).
        out_dir: the output folder (see the module docstring); must not exist unless ``force``.
        plan: a :class:`Plan` or a plan file; default: the ``preset``'s plan for this model.
        preset: ``safe`` (exact, drop-in), ``fast`` or ``small``; used when ``plan`` is None.
        data: sample rows: ``{input key: array}``, a data file (its first
            ``max(sample_rows, 4096)`` rows are used), or None to synthesize rows (drawn from the
            model's lookup-table keys where an input is looked up).
        labels: labels for the rows (accuracy gates of lossy passes); read from the file when
            ``data`` is a file with a label column.
        signature: signature key (default ``serving_default`` or the only one).
        force: replace an existing ``out_dir``.
        onnx: also write ``model.onnx`` when the rebuilt graph can be exported.
        sample_rows: rows to synthesize when ``data`` is None.
        stats: a ``recadvisor stats`` folder for this model: the passes that decide from data
            (``prune_embedding_rows``, ``numeric_bucketize``, ``per_request_dedup``) use the
            full logs; the sample rows still drive parity checks and gates.

    Returns:
        A :class:`RebuildResult` (also written as ``out_dir/rebuild.json``).

    Raises:
        OutputExistsError: ``out_dir`` exists without ``force`` or overlaps the input.
        ModelLoadError / SignatureError / FreezeError: the model cannot be loaded or frozen, or
            the frozen graph does not reproduce it.
        PlanError: the plan does not fit this model.
        DataError: the sample rows do not fit the signature.
        RewriteError: the rewritten graph does not match the original (a bug: please report).
        ExportError: the SavedModel could not be written or does not match after reloading.
    """
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model
    from recadvisor.model.runtime import GraphRunner, export_saved_model, run_loaded
    from recadvisor.output import atomic_output_dir
    from recadvisor.tfimport import import_tf

    timings: dict[str, float] = {}
    start = time.perf_counter()
    _check_paths(model_dir, out_dir, force)
    loaded = load_model(model_dir, signature)
    graph = freeze(loaded)
    original_fn, _keep_alive = _original_function(loaded)
    timings["load_and_freeze"] = time.perf_counter() - start

    chosen_plan = _resolve_plan(plan, preset, graph, model_dir)
    feeds, label_array, data_summary = _sample_rows(data, labels, graph, sample_rows)
    log_stats = None
    if stats is not None:
        from recadvisor.stats import load_stats

        log_stats = load_stats(stats, graph.fingerprint())
        data_summary = {**data_summary, "log_stats": log_stats.summary()}
    original_outputs = run_loaded(original_fn, loaded.spec.inputs, feeds)
    frozen_outputs = GraphRunner(graph)(feeds)
    freeze_parity = compare_outputs(original_outputs, frozen_outputs, DEFAULT_TOLERANCE)
    if not freeze_parity.passed:
        raise FreezeError(
            f"the frozen graph of {loaded.path} does not reproduce the model "
            f"({freeze_parity.summary()}); it cannot be rebuilt safely"
        )

    t0 = time.perf_counter()
    context = RewriteContext(feeds=feeds, raw_feeds=feeds, labels=label_array, log_stats=log_stats)
    pipeline = run_pipeline(graph, chosen_plan, context)
    timings["pipeline"] = time.perf_counter() - t0
    final = pipeline.graph
    tolerance = _final_tolerance(pipeline)
    output_keys = list(final.output_tensors)
    if broadcast_inputs(pipeline.encodings):
        # per-request inputs: the sample rows are now one request (see the pipeline)
        original_outputs = run_loaded(original_fn, loaded.spec.inputs, pipeline.raw_feeds)
    final_outputs = GraphRunner(final)(pipeline.feeds)
    parity = compare_outputs(original_outputs, final_outputs, tolerance, outputs=output_keys)
    if not parity.passed:
        raise RewriteError(
            f"the rewritten graph does not match {loaded.path} "
            f"({parity.summary()}); re-run with fewer passes and report this"
        )

    notes: list[str] = []
    if pipeline.encodings:
        changed = sorted({e.input_key for e in pipeline.encodings})
        notes.append(f"input contract changed for {', '.join(changed)}: see {CONTRACT_FILE}")
    dropped = sorted(set(loaded.spec.outputs) - set(final.output_tensors))
    if dropped:
        notes.append(f"outputs dropped from the signature: {', '.join(dropped)}")
    requests = broadcast_inputs(pipeline.encodings)
    if requests:
        notes.append(
            f"per-request inputs ({', '.join(requests)}) are sent once per call; the "
            "final and exported models were checked on one request (the first sample "
            "row's request inputs with every row's candidate inputs)"
        )
    if data_summary["note"]:
        notes.append(data_summary["note"])
    for rec in pipeline.records:
        if rec.status in ("rolled_back", "failed"):
            notes.append(f"{rec.name}: {rec.reason}")

    t0 = time.perf_counter()
    tf = import_tf()
    keys = _signature_keys(loaded)
    onnx_summary: OnnxWrittenDict | OnnxSkippedDict | None = None
    out_path = Path(out_dir)
    with atomic_output_dir(out_path, force) as tmp:
        saved_model = tmp / SAVED_MODEL_DIR
        export_saved_model(final, saved_model, signature_keys=keys)
        try:
            reloaded = tf.saved_model.load(str(saved_model))
            exported_outputs = run_loaded(
                reloaded.signatures[final.signature.key], final.signature.inputs, pipeline.feeds
            )
        except Exception as e:  # noqa: BLE001 - TF raises many types; all mean a bad export
            raise ExportError(
                f"the rebuilt SavedModel does not load or run: {first_line(e)}"
            ) from e
        export_parity = compare_outputs(
            original_outputs, exported_outputs, tolerance, outputs=output_keys
        )
        if not export_parity.passed:
            raise ExportError(
                f"the exported SavedModel differs from the original "
                f"({export_parity.summary()}); nothing was written"
            )
        save_plan(chosen_plan, tmp / PLAN_FILE)
        if pipeline.encodings:
            _write_contract(tmp / CONTRACT_FILE, pipeline, loaded.spec)
        if onnx:
            onnx_graph, variant_note = _onnx_graph(
                graph, chosen_plan, context, pipeline, final_outputs
            )
            onnx_summary, note = _export_onnx(onnx_graph, tmp / ONNX_FILE, pipeline.feeds)
            if note:  # the export was skipped
                notes.append(note)
            elif variant_note:
                notes.append(variant_note)
        timings["export_and_check"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - start
        saved_bytes = _dir_bytes(saved_model)
        onnx_file = tmp / ONNX_FILE
        sizes: RebuildSizesDict = {
            "original_bytes": _dir_bytes(Path(loaded.path)),
            "saved_model_bytes": saved_bytes,
            "variables_bytes": _dir_bytes(saved_model / "variables"),
            "frozen_const_bytes": sum(graph.const_bytes(n) for n in graph.nodes),
            "final_const_bytes": sum(final.const_bytes(n) for n in final.nodes),
            "onnx_bytes": onnx_file.stat().st_size if onnx_file.exists() else None,
        }
        result = RebuildResult(
            model_dir=str(model_dir),
            out_dir=str(out_path),
            saved_model_dir=str(out_path / SAVED_MODEL_DIR),
            signature=loaded.spec.key,
            signature_keys=tuple(keys),
            source_format=loaded.info.source_format,
            plan=chosen_plan,
            pipeline=pipeline,
            freeze_parity=freeze_parity,
            parity=parity,
            export_parity=export_parity,
            data=data_summary,
            sizes=sizes,
            nodes={
                "original": int(sum(loaded.info.op_counts.values())),
                "frozen": len(graph.graph_def.node),
                "final": len(final.graph_def.node),
            },
            op_counts={
                "original": dict(loaded.info.op_counts),
                "frozen": graph.op_counts(),
                "final": final.op_counts(),
            },
            timings=timings,
            notes=tuple(notes),
            onnx=onnx_summary,
        )
        (tmp / REPORT_FILE).write_text(
            json.dumps(result.to_dict(), indent=2, default=str), encoding="utf-8"
        )
    log.info("rebuilt %s -> %s (%s)", model_dir, out_dir, ", ".join(pipeline.names(APPLIED)))
    return result


__all__ = ["RebuildResult", "rebuild", "table_vocabularies"]
