"""``analyze()``: the analyzer end to end, from a SavedModel directory to findings and a plan.

Steps (each one a module of its own):

1. ``inspect_saved_model`` + ``find_unsafe_ops``: the stored graph and function library are
   scanned before anything runs; unsafe ops stop the analysis unless ``allow_unsafe_ops``.
2. ``load_model`` + ``freeze``: the chosen signature as a frozen :class:`ModelGraph`.
3. ``load_feeds``: the sample data (or inputs synthesized from the signature and the graph's
   vocabularies, with data-driven advice turned off).
4. ``profile_model`` + ``attribute``: per-op CPU time and latency at each batch size, charged to
   features, op types and stages.
5. ``compute_feature_stats``: pandas statistics of the sample data.
6. ``run_all_detectors`` -> ``advise`` -> ``build_plan``.

:meth:`Analysis.to_dict` is ``analysis.json`` (a public interface). Its keys:

Its schema is :class:`AnalysisDict` (version :data:`ANALYSIS_SCHEMA_VERSION`, in
``schema_version``); every key below is always present, ``null`` where stated.

* ``model``: path, source format, signature key, fingerprint, available signatures, the data
  used (``data``), the full-log statistics used (``log_stats``: folder, rows, engine, files,
  digest; ``null`` without ``--stats``) and run information (``run``: timings, settings,
  failed detectors);
* ``signature``: inputs and outputs with dtypes and shapes;
* ``inventory``: node and op counts, variables, embedding and lookup tables, string ops;
* ``profile``: ``target``, ``batch_sizes``, ``reference_batch``; ``latency``, ``per_op_type``,
  ``per_feature``, ``per_stage`` and ``per_feature_op_type`` keyed by batch size (string keys);
  and ``batches``: per batch size ``latency`` (p50/p90/p99/mean ms), ``per_op_type``,
  ``per_feature``, ``per_stage``, ``per_feature_stage`` (feature -> stage -> share),
  ``per_feature_op_type`` (feature -> op type -> share), ``per_node_bucket`` (profiled node ->
  the feature or bucket its time was charged to, ``(split)`` when divided),
  ``per_node_features`` (profiled node -> features in its ancestry), ``mapped_fraction``,
  ``mapped_us``, ``unmapped_us`` and ``top_ops``; ``null`` when not profiled;
* ``feature_stats``: per column and between columns (``null`` without a data file);
* ``findings``: each with ``kind``, ``features``, ``nodes``, ``severity``, ``message``,
  ``evidence``;
* ``suggestions``: each with ``kind``, ``targets``, ``message``, ``plan_entry``, ``exactness``,
  ``changes_contract``, ``expected_saving``, ``training_side``;
* ``plan``: the plan also written to ``plan.yaml``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from recadvisor.advice import Suggestion, SuggestionDict, advise, build_plan
from recadvisor.analysis.detectors import find_unsafe_ops, refuse_unsafe, run_all_detectors
from recadvisor.analysis.detectors.graph_patterns import input_vocabularies
from recadvisor.analysis.features import FeatureStats, FeatureStatsDict, compute_feature_stats
from recadvisor.analysis.findings import DetectorContext, Finding, FindingDict, to_jsonable
from recadvisor.analysis.inventory import ModelDescriptionDict, describe_model
from recadvisor.analysis.profile.results import OpTimingDict
from recadvisor.bench import LatencySummaryDict, ProgressCallback
from recadvisor.data.feeds import LoadedDataDict
from recadvisor.model.spec import SignatureDict, SignatureSpec
from recadvisor.plan import Plan, PlanDict
from recadvisor.stats.artifact import LogStatsSummaryDict

log = logging.getLogger(__name__)

TOP_OPS = 20
# Attribution keys copied into each batch of the profile section (what the report's charts read).
BATCH_SHARE_KEYS = (
    "per_op_type",
    "per_feature",
    "per_stage",
    "per_feature_stage",
    "per_feature_op_type",
    "per_node_bucket",
    "per_node_features",
)
# ... and also keyed by batch size at the top of the profile section.
TOP_LEVEL_SHARE_KEYS = ("per_op_type", "per_feature", "per_stage", "per_feature_op_type")
ANALYSIS_SCHEMA_VERSION = 1
Shares = dict[str, float]


class BatchProfileDict(TypedDict):
    """The profile at one batch size: latency, op-time shares, the top ops."""

    latency: LatencySummaryDict
    mapped_fraction: float
    mapped_us: float
    unmapped_us: float
    per_op_type: Shares
    per_feature: Shares
    per_stage: Shares
    per_feature_stage: dict[str, Shares]
    per_feature_op_type: dict[str, Shares]
    per_node_bucket: dict[str, str]
    per_node_features: dict[str, list[str]]
    top_ops: list[OpTimingDict]


class ProfileSectionDict(TypedDict):
    """``analysis.json``'s ``profile``: per batch size (string keys) in ``batches``, and the
    latency and main shares also keyed by batch size at the top."""

    target: str
    batch_sizes: list[int]
    reference_batch: int | None
    latency: dict[str, LatencySummaryDict]
    per_op_type: dict[str, Shares]
    per_feature: dict[str, Shares]
    per_stage: dict[str, Shares]
    per_feature_op_type: dict[str, dict[str, Shares]]
    batches: dict[str, BatchProfileDict]


class AnalysisRunDict(TypedDict):
    """How the analysis ran (``model.run``)."""

    preset: str
    batch_sizes: list[int]
    profile_calls: int
    allow_unsafe_ops: bool
    unsafe_ops: list[Any]
    detectors_failed: dict[str, str]
    timings_s: dict[str, float]
    notes: list[str]


class AnalysisModelDict(TypedDict):
    """The model analyzed (``model``), the data used and the run."""

    path: str
    source_format: str
    signature: str
    available_signatures: list[str]
    fingerprint: str
    data: LoadedDataDict
    run: AnalysisRunDict
    log_stats: LogStatsSummaryDict | None  # analyze --stats: the full-log statistics used


class AnalysisDict(TypedDict):
    """``analysis.json`` (schema :data:`ANALYSIS_SCHEMA_VERSION`): ``Analysis.to_dict()``."""

    schema_version: int
    model: AnalysisModelDict
    signature: SignatureDict
    inventory: ModelDescriptionDict
    profile: ProfileSectionDict | None
    feature_stats: FeatureStatsDict | None
    findings: list[FindingDict]
    suggestions: list[SuggestionDict]
    plan: PlanDict
    serving_settings: dict[str, Any] | None  # analyze --serving-settings (recadvisor.serving)


ANALYSIS_KEYS = tuple(AnalysisDict.__annotations__)


@dataclass(frozen=True)
class Analysis:
    """The result of :func:`analyze`.

    Attributes:
        model: path, format, signature key, fingerprint, data and run information.
        signature: the analyzed signature.
        inventory: the model inventory (``describe`` output).
        profile: the per-op profile (``None`` when profiling was skipped).
        attributions: batch size -> cost attribution.
        feature_stats: sample-data statistics (``None`` without a data file).
        findings: the detectors' findings, most severe first.
        suggestions: what to do, biggest saving first.
        plan: the rebuild plan (:class:`recadvisor.plan.Plan`).
    """

    model: AnalysisModelDict
    signature: SignatureSpec
    inventory: ModelDescriptionDict
    profile: Any
    attributions: dict[int, Any]
    feature_stats: FeatureStats | None
    findings: tuple[Finding, ...]
    suggestions: tuple[Suggestion, ...]
    plan: Plan
    notes: tuple[str, ...] = field(default_factory=tuple)
    serving_settings: dict[str, Any] | None = None

    def findings_of(self, kind: str) -> list[Finding]:
        """The findings of one kind."""
        return [f for f in self.findings if f.kind == kind]

    def profile_dict(self) -> ProfileSectionDict | None:
        """The ``profile`` section of ``analysis.json``."""
        if self.profile is None:
            return None
        per: dict[str, Any] = {}
        for batch in self.profile.batches:
            bs = int(batch.batch_size)
            attribution = self.attributions.get(bs)
            shares = attribution.to_dict() if attribution else {}
            per[str(bs)] = {
                "latency": batch.latency.to_dict(),
                "mapped_fraction": batch.mapped_fraction,
                "mapped_us": batch.mapped_us,
                "unmapped_us": batch.unmapped_us,
                **{key: shares.get(key, {}) for key in BATCH_SHARE_KEYS},
                "top_ops": [t.to_dict() for t in batch.ops[:TOP_OPS]],
            }
        sizes = [int(b.batch_size) for b in self.profile.batches]
        return {
            "target": getattr(self.profile, "target", ""),
            "batch_sizes": sizes,
            "reference_batch": max(sizes) if sizes else None,
            "latency": {k: v["latency"] for k, v in per.items()},
            **{key: {k: v[key] for k, v in per.items()} for key in TOP_LEVEL_SHARE_KEYS},
            "batches": per,
        }

    def to_dict(self) -> AnalysisDict:
        """``analysis.json`` (schema :class:`AnalysisDict`; keys: see the module docstring)."""
        return to_jsonable(
            {
                "schema_version": ANALYSIS_SCHEMA_VERSION,
                "model": self.model,
                "signature": self.signature.to_dict(),
                "inventory": self.inventory,
                "profile": self.profile_dict(),
                "feature_stats": None
                if self.feature_stats is None
                else self.feature_stats.to_dict(),
                "findings": [f.to_dict() for f in self.findings],
                "suggestions": [s.to_dict() for s in self.suggestions],
                "plan": self.plan.to_dict(),
                "serving_settings": self.serving_settings,
            }
        )


def analyze(
    model_dir: str | Path,
    *,
    data: str | Path | None = None,
    signature: str | None = None,
    batch_sizes: Sequence[int] = (1, 256),
    preset: str = "safe",
    allow_unsafe_ops: bool = False,
    profile_calls: int = 200,
    progress: ProgressCallback | None = None,
    data_rows: int | None = None,
    seed: int = 0,
    profile: bool = True,
    stats_dir: str | Path | None = None,
) -> Analysis:
    """Analyze a SavedModel: profile, attribution, detectors, suggestions and a plan.

    Args:
        model_dir: the SavedModel directory.
        data: a sample data file (Parquet, CSV, JSONL, NPZ, TFRecord); ``None`` synthesizes
            inputs from the signature (value-based advice is then skipped).
        signature: the signature key (default ``serving_default`` or the only one).
        batch_sizes: batch sizes to profile.
        preset: the plan preset: ``safe``, ``fast`` or ``small``.
        allow_unsafe_ops: analyze (and run) a model holding file/network/Python ops.
        profile_calls: timed calls per batch size (warm-up and traced calls scale with it).
        progress: ``progress(description, done, total)``: passed to the profiler, then called
            once per detector.
        data_rows: read at most this many rows (or synthesize this many).
        seed: seed for synthesized inputs.
        profile: run the profiler (``False``: findings without time shares, much faster).
        stats_dir: a ``recadvisor stats`` folder made for this model: rows hit and per-request
            evidence come from the full logs (``model.log_stats`` says which logs).

    Returns:
        The :class:`Analysis`.

    Raises:
        UnsafeModelError: unsafe ops found and ``allow_unsafe_ops`` is false.
        ModelLoadError, SignatureError, FreezeError, DataError, PlanError: see their messages.
    """
    from recadvisor.data import load_feeds
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import inspect_saved_model, load_model

    timings: dict[str, float] = {}
    start = t0 = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[step] = round(now - t0, 3)
        t0 = now

    info = inspect_saved_model(model_dir)
    unsafe = find_unsafe_ops(info)
    refuse_unsafe(unsafe, info.path, allow_unsafe_ops)
    lap("scan")
    loaded = load_model(model_dir, signature)
    graph = freeze(loaded)
    lap("load_and_freeze")
    loaded_data = load_feeds(
        data, loaded.spec, rows=data_rows, seed=seed, vocabularies=input_vocabularies(graph)
    )
    log_stats = None
    if stats_dir is not None:
        from recadvisor.stats import load_stats

        log_stats = load_stats(stats_dir, graph.fingerprint())
    synthetic = loaded_data.source == "synthetic"
    notes = []
    if synthetic:
        notes.append(
            "no sample data: inputs were synthesized from the signature, so rows hit, "
            "boundaries, overlaps and feature statistics are not reported"
        )
    lap("data")

    prof = None
    attributions: dict[int, Any] = {}
    if profile:
        from recadvisor.analysis.attribution import attribute
        from recadvisor.analysis.profile import profile_model

        warmup = max(3, profile_calls // 10)
        trace_calls = max(5, profile_calls // 4)
        prof = profile_model(
            loaded,
            graph,
            loaded_data.feeds,
            batch_sizes,
            warmup=warmup,
            calls=profile_calls,
            trace_calls=trace_calls,
            progress=progress,
        )
        for batch in prof.batches:
            attributions[int(batch.batch_size)] = attribute(graph, batch)
        lap("profile")
    reference = attributions[max(attributions)] if attributions else None

    stats = None
    if loaded_data.frame is not None:
        stats = compute_feature_stats(loaded_data.frame, loaded.spec)
    lap("feature_stats")

    ctx = DetectorContext(
        graph=graph,
        info=info,
        feature_stats=stats,
        profile=prof,
        attribution=reference,
        feeds=loaded_data.feeds,
        feeds_synthetic=synthetic,
        log_stats=log_stats,
    )
    run = run_all_detectors(ctx, progress=progress)
    lap("detectors")
    suggestions = advise(run.findings, graph, reference, preset, profile=prof)
    plan = build_plan(suggestions, graph, preset, model_path=info.path)
    lap("advice")
    timings["total"] = round(time.perf_counter() - start, 3)

    model: AnalysisModelDict = {
        "path": info.path,
        "source_format": info.source_format,
        "signature": loaded.spec.key,
        "available_signatures": sorted(info.signatures),
        "fingerprint": graph.fingerprint(),
        "data": loaded_data.to_dict(),
        "log_stats": None if log_stats is None else log_stats.summary(),
        "run": {
            "preset": preset,
            "batch_sizes": list(batch_sizes),
            "profile_calls": profile_calls if profile else 0,
            "allow_unsafe_ops": allow_unsafe_ops,
            "unsafe_ops": [f.evidence.get("op") for f in unsafe],
            "detectors_failed": dict(run.failed),
            "timings_s": timings,
            "notes": notes,
        },
    }
    log.info(
        "analyzed %s in %.1f s: %s findings, %s suggestions",
        info.path,
        timings["total"],
        len(run.findings),
        len(suggestions),
    )
    return Analysis(
        model=model,
        signature=loaded.spec,
        inventory=describe_model(loaded, graph).to_dict(),
        profile=prof,
        attributions=attributions,
        feature_stats=stats,
        findings=tuple(run.findings),
        suggestions=tuple(suggestions),
        plan=plan,
        notes=tuple(notes),
    )
