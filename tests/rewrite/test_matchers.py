"""Advice asks each pass's own matcher: exact suggestions are what ``fast`` applies, the rest are
refused with the matcher's reason."""

from __future__ import annotations

from recadvisor.advice import RETRAIN, advise, build_plan
from recadvisor.analysis.detectors import run_detectors
from recadvisor.analysis.findings import (
    DUPLICATE_FEATURE,
    UNUSED_INPUT,
    DetectorContext,
    make_finding,
)
from recadvisor.model.load import load_model
from recadvisor.plan import PRESET_PASSES
from recadvisor.rewrite.base import RewriteContext
from recadvisor.rewrite.matchers import MATCHERS, applied_targets, pipeline_view, refusals
from recadvisor.rewrite.pipeline import run_pipeline
from tests.rewrite.conftest import TinyModel


def _exact_fast(suggestions):
    return [
        s for s in suggestions if s.exactness == "exact" and s.pass_name in PRESET_PASSES["fast"]
    ]


def test_exact_suggestions_are_applied_by_fast(ranker: TinyModel) -> None:
    """The ranker hashes a feature twice, holds twin vocabularies and an unread input: each exact
    suggestion's pass is applied by the fast plan, to (at least) the suggestion's targets."""
    ctx = DetectorContext(graph=ranker.graph, info=load_model(ranker.path).info, feeds=ranker.feeds)
    suggestions = advise(run_detectors(ctx, strict=True), ranker.graph, preset="fast")
    exact = _exact_fast(suggestions)
    assert {"merge_duplicates", "drop_unused_inputs"} <= {s.pass_name for s in exact}
    plan = build_plan(suggestions, ranker.graph, "fast")
    result = run_pipeline(ranker.graph, plan, RewriteContext(ranker.feeds, ranker.feeds))
    for s in exact:
        record = result.record(s.pass_name)
        assert record is not None and record.status == "applied", (s.kind, record)
        assert set(s.targets) <= applied_targets(s.pass_name, record.stats), (s, record.stats)
    assert not [s for s in suggestions if s.kind.endswith("_refused")]


def test_matchers_refuse_with_reasons(tf1_ranker: TinyModel) -> None:
    """Nothing is duplicated or unread in the TF1 ranker: both matchers refuse, saying why."""
    graph = pipeline_view(tf1_ranker.graph)
    assert refusals("merge_duplicates", graph, ["user"]) == {
        "user": "no duplicated node, constant or table computes it"
    }
    assert refusals("drop_unused_inputs", graph, ["price"]) == {
        "price": "a signature output still depends on it"
    }
    assert refusals("prune_outputs", graph, ["score"]) is None  # no matcher: not in fast
    assert set(MATCHERS) <= set(PRESET_PASSES["fast"])


def test_refused_targets_are_downgraded(tf1_ranker: TinyModel) -> None:
    """Findings that claim a merge or a dead input the passes would not do give no exact
    suggestion: each target gets a ``<pass>_refused`` suggestion with the matcher's reason."""
    graph = tf1_ranker.graph
    findings = [
        make_finding(
            DUPLICATE_FEATURE,
            ["user"],
            [],
            "medium",
            "claimed duplicate",
            evidence={"reason": "hashed_twice", "mergeable": True},
        ),
        make_finding(
            UNUSED_INPUT, ["price"], [], "low", "claimed unused", evidence={"dead_consumers": ["x"]}
        ),
    ]
    suggestions = advise(findings, graph, preset="fast")
    assert _exact_fast(suggestions) == []
    refused = {s.kind: s for s in suggestions if s.kind.endswith("_refused")}
    assert set(refused) == {"merge_duplicates_refused", "drop_unused_inputs_refused"}
    for s in refused.values():
        assert s.pass_name is None and s.exactness == RETRAIN
    assert "a signature output still depends on it" in refused["drop_unused_inputs_refused"].message
    assert refused["merge_duplicates_refused"].targets == ("user",)
