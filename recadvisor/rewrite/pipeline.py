"""The rewrite pipeline: run a plan's passes in registry order, each checked, each revocable.

For every enabled plan entry, in :data:`~recadvisor.rewrite.registry.PASS_ORDER` order:

1. the pass rewrites the current stage (:meth:`RewritePass.apply`); :class:`PassRefused` is
   recorded as ``refused`` and the stage is kept;
2. the candidate runs (:class:`~recadvisor.model.runtime.GraphRunner`) on the sample rows next to
   the current stage. A pass that changes the input contract returns :class:`InputEncoding`\\ s;
   the raw sample rows are encoded with ``recadvisor.rewrite.encodings.encode_feeds`` for the
   candidate. A pass that makes inputs per-request (``broadcast`` encodings: user-side inputs
   sent once, ``[1, ...]``) is checked on :data:`REQUEST_CHECKS` sample requests instead: one
   row's request inputs repeated for every candidate row in the previous stage, given once to
   the candidate; from then on the sample rows are the first of those requests (and labels,
   which no longer line up, are dropped);
3. outputs are compared (:func:`recadvisor.verify.compare_outputs`) with the pass's tolerance
   (``params.max_abs_diff`` overrides it); lossy passes with labels also face an AUC gate
   (``params.max_auc_drop``, default 0.001). Outside them the pass is ``rolled_back`` with the
   reason, e.g. ``rolled back: max abs diff 0.03 on ctr > 1e-05``;
4. any other exception is recorded as ``failed`` (rolled back too); ``strict=True`` re-raises it
   instead, which is what tests want.

Disabled entries are recorded as ``disabled``. Nothing is ever kept silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

import numpy as np

from recadvisor.errors import PlanError, RecAdvisorError
from recadvisor.model.graph import ModelGraph
from recadvisor.model.load import first_line
from recadvisor.plan import Plan, PlanEntry, pass_params
from recadvisor.rewrite.base import (
    LOSSY,
    InputEncoding,
    InputEncodingDict,
    PassRefused,
    PassResult,
    RewriteContext,
    RewritePass,
)
from recadvisor.rewrite.encodings import broadcast_inputs, encode_feeds, one_request_feeds
from recadvisor.rewrite.registry import PASS_NAMES, get_pass
from recadvisor.verify import Parity, ParityDict, auc_changes, compare_outputs, worst_of

log = logging.getLogger(__name__)

APPLIED = "applied"
REFUSED = "refused"
ROLLED_BACK = "rolled_back"
FAILED = "failed"
DISABLED = "disabled"
STATUSES = (APPLIED, REFUSED, ROLLED_BACK, FAILED, DISABLED)
DEFAULT_MAX_AUC_DROP = 0.001
REQUEST_CHECKS = 3  # sample requests a per-request pass is checked on
PassStatus = Literal["applied", "refused", "rolled_back", "failed", "disabled"]


class PassRecordDict(TypedDict):
    """``PassRecord.to_dict()``: one entry of ``rebuild.json``'s ``passes.passes``."""

    name: str
    status: PassStatus
    exactness: str
    reason: str
    stats: dict[str, Any]
    notes: list[str]
    parity: ParityDict | None
    gates: dict[str, Any]
    tolerance: float | None
    seconds: float
    nodes_before: int
    nodes_after: int
    encodings: list[InputEncodingDict]


class PipelineDict(TypedDict):
    """``PipelineResult.to_dict()``: ``rebuild.json``'s ``passes`` section."""

    applied: list[str]
    refused: list[str]
    rolled_back: list[str]
    failed: list[str]
    disabled: list[str]
    nodes_before: int
    nodes_after: int
    contract_changed: bool
    encodings: list[InputEncodingDict]
    passes: list[PassRecordDict]


@dataclass(frozen=True)
class PassRecord:
    """What happened to one plan entry.

    Attributes:
        name: the pass name.
        status: ``applied``, ``refused``, ``rolled_back``, ``failed`` or ``disabled``.
        exactness: ``exact``, ``exact-in-range`` or ``lossy`` (empty when the pass never loaded).
        reason: why it was refused / rolled back / failed (empty when applied).
        stats: the pass's own numbers (nodes removed, bytes saved...).
        notes: the pass's remarks.
        parity: the check against the previous stage, when one ran.
        gates: accuracy gates that ran (per output AUC before/after), when any.
        tolerance: the max abs diff allowed.
        seconds: time for the rewrite and its check.
        nodes_before / nodes_after: node counts of the stage before and after (equal unless
            applied).
        encodings: input encodings the pass introduced (applied passes only).
    """

    name: str
    status: PassStatus
    exactness: str = ""
    reason: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    parity: Parity | None = None
    gates: dict[str, Any] = field(default_factory=dict)
    tolerance: float | None = None
    seconds: float = 0.0
    nodes_before: int = 0
    nodes_after: int = 0
    encodings: tuple[InputEncoding, ...] = ()

    def to_dict(self) -> PassRecordDict:
        """JSON form for ``rebuild.json``."""
        return {
            "name": self.name,
            "status": self.status,
            "exactness": self.exactness,
            "reason": self.reason,
            "stats": _jsonable(self.stats),
            "notes": list(self.notes),
            "parity": None if self.parity is None else self.parity.to_dict(),
            "gates": _jsonable(self.gates),
            "tolerance": self.tolerance,
            "seconds": round(self.seconds, 4),
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "encodings": [e.to_dict() for e in self.encodings],
        }


@dataclass(frozen=True)
class PipelineResult:
    """The final stage and the record of every plan entry.

    Attributes:
        graph: the final ModelGraph.
        records: one per plan entry, in execution order (disabled ones included).
        encodings: input encodings of the final graph, in the order the passes emitted them
            (several for one input apply one after the other).
        feeds: the sample rows in the final graph's input contract.
        raw_feeds: the same rows in the original contract (one request, row 0's request inputs
            on every row, when a pass made inputs per-request: compare the original model on
            these).
        initial_nodes: node count of the graph the pipeline started from.
    """

    graph: ModelGraph
    records: tuple[PassRecord, ...]
    encodings: tuple[InputEncoding, ...] = ()
    feeds: Mapping[str, np.ndarray] = field(default_factory=dict)
    raw_feeds: Mapping[str, np.ndarray] = field(default_factory=dict)
    initial_nodes: int = 0

    def record(self, name: str) -> PassRecord | None:
        """The record of one pass, if the plan had it."""
        return next((r for r in self.records if r.name == name), None)

    def names(self, status: str) -> list[str]:
        """Names of the passes with one status."""
        return [r.name for r in self.records if r.status == status]

    @property
    def contract_changed(self) -> bool:
        """True when an applied pass changed the signature (inputs or outputs)."""
        return bool(self.encodings) or any(
            r.status == APPLIED and r.stats.get("outputs_dropped") for r in self.records
        )

    def to_dict(self) -> PipelineDict:
        """JSON form for ``rebuild.json``."""
        return {
            "applied": self.names(APPLIED),
            "refused": self.names(REFUSED),
            "rolled_back": self.names(ROLLED_BACK),
            "failed": self.names(FAILED),
            "disabled": self.names(DISABLED),
            "nodes_before": self.initial_nodes,
            "nodes_after": len(self.graph.graph_def.node),
            "contract_changed": self.contract_changed,
            "encodings": [e.to_dict() for e in self.encodings],
            "passes": [r.to_dict() for r in self.records],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def _ordered_entries(plan: Plan, overrides: Mapping[str, RewritePass]) -> list[PlanEntry]:
    unknown = [
        e.pass_name
        for e in plan.rewrites
        if e.pass_name not in PASS_NAMES and e.pass_name not in overrides
    ]
    if unknown:
        raise PlanError(
            f"plan names unknown rewrite pass(es) {', '.join(unknown)}; known passes: "
            f"{', '.join(PASS_NAMES)}"
        )
    rank = {name: i for i, name in enumerate(PASS_NAMES)}
    return sorted(plan.rewrites, key=lambda e: rank.get(e.pass_name, len(rank)))


def _encode(
    encodings: list[InputEncoding],
    raw_feeds: Mapping[str, np.ndarray],
    current_feeds: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Current feeds with every encoded input recomputed from the raw rows.

    All encodings so far are applied in order (several for one input chain).
    """
    encoded = encode_feeds(encodings, raw_feeds)
    feeds = dict(current_feeds)
    for enc in encodings:
        feeds[enc.input_key] = np.asarray(encoded[enc.input_key])
    return feeds


def _feeds_for(
    graph: ModelGraph, encodings: list[InputEncoding], raw_feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``graph``'s inputs computed from raw rows (the original contract)."""
    feeds = _encode(encodings, raw_feeds, raw_feeds) if encodings else dict(raw_feeds)
    return {k: v for k, v in feeds.items() if k in graph.signature.inputs}


def request_rows(n_rows: int, count: int = REQUEST_CHECKS) -> list[int]:
    """Rows whose request-side inputs stand for the sample requests (first, spread, last).

    Args:
        n_rows: sample rows available.
        count: requests wanted.

    Returns:
        Up to ``count`` distinct row indices, row 0 first.
    """
    if n_rows <= 0:
        return []
    return sorted({round(i * (n_rows - 1) / max(count - 1, 1)) for i in range(count)})


def _auc_gate(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
    max_drop: float,
) -> tuple[dict[str, Any], str]:
    """AUC per output against the labels, before and after; a reason when one drops too much."""
    gates: dict[str, Any] = {}
    reason = ""
    for key, change in auc_changes(reference, candidate, labels).items():
        gates[key] = {
            "auc_before": change.before,
            "auc_after": change.after,
            "auc_drop": change.drop,
            "max_auc_drop": max_drop,
        }
        if change.drop > max_drop and not reason:
            reason = f"AUC on {key} fell by {change.drop:.4g} > {max_drop:.4g}"
    return gates, reason


@dataclass
class _Stage:
    """The current stage while the pipeline runs (mutable, private).

    ``raw_feeds`` are the sample rows in the original contract that ``feeds`` encode; after a
    pass introduced per-request inputs they hold one request (row 0's request inputs on every
    row), and ``labels`` no longer apply (None).
    """

    graph: ModelGraph
    feeds: dict[str, np.ndarray]
    raw_feeds: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    runner: Any = None
    reference: dict[str, np.ndarray] | None = None
    encodings: list[InputEncoding] = field(default_factory=list)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The stage's outputs on other rows."""
        from recadvisor.model.runtime import GraphRunner

        if self.runner is None:
            self.runner = GraphRunner(self.graph)
        return self.runner(feeds)

    def outputs(self) -> dict[str, np.ndarray]:
        """The stage's outputs on its feeds (computed once)."""
        if self.reference is None:
            self.reference = self.run(self.feeds)
        return self.reference


def _check_requests(
    stage: _Stage, result: PassResult, encodings: list[InputEncoding], tolerance: float
) -> tuple[Parity, _Stage]:
    """Parity of a pass that made inputs per-request, on several one-request samples.

    Each sample request takes one row's request inputs, repeated for every candidate row, in
    the previous stage (which takes them on every row) and once in the candidate. The next
    stage keeps the first request as its sample rows.
    """
    from recadvisor.model.runtime import GraphRunner

    requests = broadcast_inputs(encodings)
    n_rows = int(next(iter(stage.raw_feeds.values())).shape[0])
    runner = GraphRunner(result.graph)
    parities: list[Parity] = []
    stages: list[_Stage] = []
    for row in request_rows(n_rows):
        raw = one_request_feeds(stage.raw_feeds, requests, row)
        reference = stage.run(_feeds_for(stage.graph, stage.encodings, raw))
        feeds = _feeds_for(result.graph, encodings, raw)
        candidate = runner(feeds)
        parities.append(
            compare_outputs(
                reference, candidate, tolerance, outputs=list(result.graph.output_tensors)
            )
        )
        stages.append(_Stage(result.graph, feeds, raw, None, runner, candidate, encodings))
    if not stages:
        raise RecAdvisorError(
            f"pass '{result.name}' made inputs per-request but there are no "
            "sample rows to check it on; pass --data"
        )
    return worst_of(parities), stages[0]


def _run_entry(
    entry: PlanEntry, rewrite: RewritePass, stage: _Stage, log_stats: Any = None
) -> tuple[str, str, dict[str, Any], _Stage | None]:
    """Apply one pass and check it: (status, reason, record fields, next stage or None)."""
    from recadvisor.model.runtime import GraphRunner

    tolerance = float(entry.params.get("max_abs_diff", rewrite.tolerance))
    stage_context = RewriteContext(
        feeds=stage.feeds, raw_feeds=stage.raw_feeds, labels=stage.labels, log_stats=log_stats
    )
    try:
        result = rewrite.apply(stage.graph, pass_params(entry), stage_context)
    except PassRefused as e:
        return REFUSED, str(e), {}, None
    encodings = stage.encodings + list(result.encodings)
    if set(broadcast_inputs(result.encodings)) - set(broadcast_inputs(stage.encodings)):
        parity, next_stage = _check_requests(stage, result, encodings, tolerance)
        reference: Mapping[str, np.ndarray] = {}
        candidate: Mapping[str, np.ndarray] = {}
        labels = None  # one request's rows no longer line up with the labels
    else:
        feeds = (
            _encode(encodings, stage.raw_feeds, stage.feeds)
            if result.encodings
            else dict(stage.feeds)
        )
        feeds = {k: v for k, v in feeds.items() if k in result.graph.signature.inputs}
        missing = sorted(set(result.graph.signature.inputs) - set(feeds))
        if missing:
            raise RecAdvisorError(f"no sample rows for the new input(s) {', '.join(missing)}")
        reference = stage.outputs()
        runner = GraphRunner(result.graph)
        candidate = runner(feeds)
        parity = compare_outputs(
            reference, candidate, tolerance, outputs=list(result.graph.output_tensors)
        )
        labels = stage.labels
        next_stage = _Stage(
            result.graph, feeds, stage.raw_feeds, labels, runner, candidate, encodings
        )
    fields: dict[str, Any] = dict(
        stats=result.stats, notes=result.notes, parity=parity, tolerance=tolerance
    )
    if not parity.passed:
        return ROLLED_BACK, f"rolled back: {parity.summary()}", fields, None
    if rewrite.exactness == LOSSY:
        max_drop = float(entry.params.get("max_auc_drop", DEFAULT_MAX_AUC_DROP))
        gates, reason = _auc_gate(reference, candidate, labels, max_drop)
        fields["gates"] = gates
        if reason:
            return ROLLED_BACK, f"rolled back: {reason}", fields, None
    fields["encodings"] = tuple(result.encodings)
    return APPLIED, "", fields, next_stage


def run_pipeline(
    graph: ModelGraph,
    plan: Plan,
    context: RewriteContext,
    strict: bool = False,
    passes: Mapping[str, RewritePass] | None = None,
) -> PipelineResult:
    """Run the plan's enabled passes on ``graph``, checking each against the previous stage.

    Args:
        graph: the frozen model (never mutated).
        plan: the plan (check it first with :func:`recadvisor.plan.check_plan_fits`).
        context: sample rows (``feeds`` in the graph's contract, ``raw_feeds`` in the original
            one) and optional labels.
        strict: re-raise unexpected exceptions from a pass instead of recording ``failed``.
        passes: pass instances to use instead of the registry's, by name (tests register a
            deliberately broken pass this way).

    Returns:
        A :class:`PipelineResult`.

    Raises:
        PlanError: the plan names a pass that is neither registered nor in ``passes``.
    """
    overrides = dict(passes or {})
    stage = _Stage(
        graph,
        {k: np.asarray(v) for k, v in context.feeds.items()},
        {k: np.asarray(v) for k, v in context.raw_feeds.items()},
        None if context.labels is None else np.asarray(context.labels),
    )
    records: list[PassRecord] = []
    for entry in _ordered_entries(plan, overrides):
        nodes = len(stage.graph.graph_def.node)
        if not entry.enabled:
            records.append(
                PassRecord(entry.pass_name, DISABLED, nodes_before=nodes, nodes_after=nodes)
            )
            continue
        start = time.perf_counter()
        rewrite: RewritePass | None = None
        try:
            rewrite = overrides.get(entry.pass_name) or get_pass(entry.pass_name)
            status, reason, fields, next_stage = _run_entry(
                entry, rewrite, stage, context.log_stats
            )
        except Exception as e:
            if strict:
                raise
            log.warning("pass %s failed: %s", entry.pass_name, first_line(e))
            status, fields, next_stage = FAILED, {}, None
            reason = f"failed ({type(e).__name__}): {first_line(e)}; rolled back"
        if next_stage is not None:
            stage = next_stage
        log.info("pass %s: %s %s", entry.pass_name, status, reason)
        records.append(
            PassRecord(
                entry.pass_name,
                status,
                exactness=getattr(rewrite, "exactness", ""),
                reason=reason,
                seconds=time.perf_counter() - start,
                nodes_before=nodes,
                nodes_after=len(stage.graph.graph_def.node),
                **fields,
            )
        )
    return PipelineResult(
        graph=stage.graph,
        records=tuple(records),
        encodings=tuple(stage.encodings),
        feeds=stage.feeds,
        raw_feeds=stage.raw_feeds,
        initial_nodes=len(graph.graph_def.node),
    )
