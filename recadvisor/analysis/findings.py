"""What detectors report (:class:`Finding`) and what they read (:class:`DetectorContext`).

A finding is one observation about a model, with the signature inputs it concerns, the graph
nodes involved, a severity, a one-sentence message with numbers and an ``evidence`` dict (time
shares, bytes, rows, boundaries...). ``Finding.to_dict()`` is what ``analysis.json`` lists under
``findings`` and what the advice step (:mod:`recadvisor.advice`) turns into suggestions.

The context carries the frozen graph plus everything optional a detector may use: the
SavedModel metadata (for the unsafe-op scan), feature statistics of the sample data, the per-op
profile and the per-feature attribution, and the sample feeds. Detectors must cope with any of
the optional parts being ``None`` (no data, no profile) and say less rather than guess.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from recadvisor.model.graph import ModelGraph

if TYPE_CHECKING:
    from recadvisor.analysis.features import FeatureStats
    from recadvisor.model.load import SavedModelInfo

# Finding kinds (the ``kind`` field); analysis.json consumers may rely on these names.
STRING_OP = "string_op"
NUMERIC_AS_STRING = "numeric_as_string"
LARGE_EMBEDDING = "large_embedding"
DUPLICATE_FEATURE = "duplicate_feature"
SHARED_EMBEDDING_CANDIDATE = "shared_embedding_candidate"
UNUSED_INPUT = "unused_input"
UNUSED_OUTPUT = "unused_output"
OUTPUT_COST = "output_cost"
PER_REQUEST_FEATURE = "per_request_feature"
UNSAFE_OP = "unsafe_op"
FINDING_KINDS = (
    STRING_OP,
    NUMERIC_AS_STRING,
    LARGE_EMBEDDING,
    DUPLICATE_FEATURE,
    SHARED_EMBEDDING_CANDIDATE,
    UNUSED_INPUT,
    UNUSED_OUTPUT,
    OUTPUT_COST,
    PER_REQUEST_FEATURE,
    UNSAFE_OP,
)

HIGH = "high"
MEDIUM = "medium"
LOW = "low"
INFO = "info"
SEVERITIES = (HIGH, MEDIUM, LOW, INFO)


def severity_rank(severity: str) -> int:
    """0 for ``high`` ... 3 for ``info`` (sort key: most severe first)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples, sets and bytes into plain JSON values.

    Args:
        value: any nesting of dicts, lists, tuples, sets, numpy values and bytes.

    Returns:
        The same data made of dict/list/str/int/float/bool/None only (NaN and inf become None).
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(v) for v in sorted(value, key=str)]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class FindingDict(TypedDict):
    """``Finding.to_dict()``: an ``analysis.json`` ``findings`` entry (``evidence`` is free-form,
    per detector)."""

    kind: str
    features: list[str]
    nodes: list[str]
    severity: str
    message: str
    evidence: dict[str, Any]
    detector: str


@dataclass(frozen=True)
class Finding:
    """One observation about the model.

    Attributes:
        kind: one of :data:`FINDING_KINDS`.
        features: the signature input keys concerned (sorted).
        nodes: frozen-graph node names involved (or op locations for unsafe ops).
        severity: ``high``, ``medium``, ``low`` or ``info``.
        message: one sentence, with numbers.
        evidence: the data behind the message (time shares per batch size, bytes, rows,
            boundaries...); JSON-serializable after :func:`to_jsonable`.
        detector: the detector that produced it.
    """

    kind: str
    features: tuple[str, ...]
    nodes: tuple[str, ...]
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    detector: str = ""

    def to_dict(self) -> FindingDict:
        """JSON form (an ``analysis.json`` ``findings`` entry)."""
        return {
            "kind": self.kind,
            "features": list(self.features),
            "nodes": list(self.nodes),
            "severity": self.severity,
            "message": self.message,
            "evidence": to_jsonable(self.evidence),
            "detector": self.detector,
        }


def make_finding(
    kind: str,
    features: Iterable[str],
    nodes: Iterable[str],
    severity: str,
    message: str,
    evidence: Mapping[str, Any] | None = None,
    detector: str = "",
) -> Finding:
    """Build a :class:`Finding` with sorted, de-duplicated features and nodes."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity '{severity}'; use one of {SEVERITIES}")
    return Finding(
        kind=kind,
        features=tuple(sorted(set(features))),
        nodes=tuple(sorted(set(nodes))),
        severity=severity,
        message=message,
        evidence=dict(evidence or {}),
        detector=detector,
    )


@dataclass(frozen=True)
class DetectorContext:
    """Everything a detector may read.

    Attributes:
        graph: the frozen serving graph.
        info: the SavedModel metadata (graph and function library as stored), for the unsafe-op
            scan; ``None`` when the graph was built in memory.
        feature_stats: statistics of the sample data, ``None`` without data.
        profile: per-op profile (``recadvisor.analysis.profile.Profile``), ``None`` when not run.
        attribution: cost per feature at the reference batch size
            (``recadvisor.analysis.attribution.Attribution``), ``None`` when not run.
        feeds: sample inputs keyed by signature input key (real or synthesized).
        feeds_synthetic: the feeds were synthesized from the signature, so value-based evidence
            (rows hit, boundaries, overlaps) is not meaningful and detectors skip it.
        cache: scratch space shared by detectors within one run (e.g. evaluated id tensors).
        log_stats: statistics of the full logs (``recadvisor stats``), or ``None``; detectors
            that read rows hit or per-request evidence prefer them to the sample.
    """

    graph: ModelGraph
    info: SavedModelInfo | None = None
    feature_stats: FeatureStats | None = None
    profile: Any = None
    attribution: Any = None
    feeds: Mapping[str, np.ndarray] | None = None
    feeds_synthetic: bool = False
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    log_stats: Any = None

    @property
    def real_feeds(self) -> Mapping[str, np.ndarray] | None:
        """The feeds when they come from real data, else ``None``."""
        return None if self.feeds_synthetic else self.feeds

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Batch sizes profiled, ascending (empty without a profile)."""
        if self.profile is None:
            return ()
        return tuple(sorted(int(b.batch_size) for b in self.profile.batches))

    @property
    def reference_batch(self) -> int | None:
        """The batch size severities are judged at: the attribution's, else the largest profiled."""
        if self.attribution is not None:
            return int(self.attribution.batch_size)
        sizes = self.batch_sizes
        return sizes[-1] if sizes else None

    def _per_node(self, batch_size: int, field: str) -> dict[str, float]:
        """Node name -> the sum of the profiled ops' ``field`` at ``batch_size`` (memoized)."""
        key = f"node_{field}:{batch_size}"
        if key not in self.cache:
            totals: dict[str, float] = {}
            if self.profile is not None:
                for batch in self.profile.batches:
                    if int(batch.batch_size) == int(batch_size):
                        for op in batch.ops:
                            totals[op.node] = totals.get(op.node, 0.0) + float(getattr(op, field))
            self.cache[key] = totals
        return self.cache[key]

    def node_shares(self, batch_size: int) -> dict[str, float]:
        """Node name -> share of the summed op time at ``batch_size`` (empty if not profiled)."""
        return self._per_node(batch_size, "share")

    def node_micros(self, batch_size: int) -> dict[str, float]:
        """Node name -> mean microseconds per call at ``batch_size`` (empty if not profiled)."""
        return self._per_node(batch_size, "self_us")

    def time_shares(self, nodes: Iterable[str]) -> dict[int, float]:
        """Summed op-time share of ``nodes`` per profiled batch size (empty without profile)."""
        names = set(nodes)
        return {
            bs: sum(share for node, share in self.node_shares(bs).items() if node in names)
            for bs in self.batch_sizes
        }

    def time_share(self, nodes: Iterable[str]) -> float | None:
        """Summed op-time share of ``nodes`` at the reference batch size, or ``None``."""
        bs = self.reference_batch
        if bs is None or self.profile is None:
            return None
        names = set(nodes)
        return sum(share for node, share in self.node_shares(bs).items() if node in names)

    def feature_share(self, feature: str) -> float | None:
        """The attribution's share of op time charged to ``feature``, or ``None``."""
        if self.attribution is None:
            return None
        return float(self.attribution.per_feature.get(feature, 0.0))


def share_text(share: float | None, batch_size: int | None) -> str:
    """``"7.1% of op time at batch 256"`` or ``"not profiled"``."""
    if share is None or batch_size is None:
        return "not profiled"
    return f"{100.0 * share:.1f}% of op time at batch {batch_size}"


def severity_for_share(
    share: float | None, high: float = 0.10, medium: float = 0.03, default: str = LOW
) -> str:
    """Map a time share to a severity (``default`` when not profiled)."""
    if share is None:
        return default
    if share >= high:
        return HIGH
    if share >= medium:
        return MEDIUM
    return LOW


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
