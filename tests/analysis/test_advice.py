"""Findings -> suggestions -> plan."""

from __future__ import annotations

import json

import pytest

from recadvisor.advice import RETRAIN, advise, build_plan
from recadvisor.analysis.detectors import run_detectors
from recadvisor.analysis.features import compute_feature_stats
from recadvisor.analysis.findings import DetectorContext, make_finding
from recadvisor.errors import PlanError
from tests.analysis.detectors import models
from tests.analysis.detectors.conftest import make_profile


@pytest.fixture(scope="module")
def ranker(tmp_path_factory):
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model

    loaded = load_model(models.build_ranker(tmp_path_factory.mktemp("advice") / "model"))
    graph = freeze(loaded)
    frame = models.ranker_frame()
    ctx = DetectorContext(
        graph=graph,
        info=loaded.info,
        feature_stats=compute_feature_stats(frame, loaded.spec),
        feeds=models.ranker_feeds(frame),
    )
    return graph, run_detectors(ctx, strict=True), ctx


def _by_kind(suggestions):
    out = {}
    for s in suggestions:
        out.setdefault(s.kind, []).append(s)
    return out


def test_each_finding_maps_to_its_pass(ranker):
    graph, findings, _ = ranker
    got = _by_kind(advise(findings, graph))
    (bucketize,) = got["numeric_bucketize"]
    assert bucketize.targets == ("age",) and bucketize.exactness == "exact-in-range"
    assert not bucketize.changes_contract
    assert bucketize.params == {"inputs": ["age"], "out_of_range": "clamp"}
    assert bucketize.expected_bytes_saved == (100 - 26 - 1) * 8 * 4
    assert "Discretization(bin_boundaries=[21, 22, 23" in bucketize.training_side
    assert "every integer in [20, 45]" in bucketize.message
    upstream = {t for s in got["ids_upstream"] for t in s.targets}
    assert upstream == {"user_id", "city", "hist_item_id", "item_id", "category"}  # not age
    assert all(s.exactness == "exact" and s.changes_contract for s in got["ids_upstream"])
    assert (
        "to_hash_bucket_fast(user_id, 1000)"
        in next(s for s in got["ids_upstream"] if s.targets == ("user_id",)).training_side
    )
    assert {s.targets for s in got["merge_duplicates"]} == {("city",), ("category",)}
    (share,) = got["share_embeddings"]
    assert share.targets == ("hist_item_id", "item_id") and share.exactness == "lossy"
    assert share.params == {"features": [["hist_item_id", "item_id"]], "keep": "mean"}
    pruned = [s.targets[0] for s in got["prune_embedding_rows"]]
    assert pruned[0] == "user_emb" and "city_emb" not in pruned  # 50 rows for 8 cities
    # plan entries name tables by their variable, not TensorFlow's capture name (unknown_3)
    assert got["prune_embedding_rows"][0].params["tables"] == ["user_emb"]
    assert got["prune_embedding_rows"][0].tables == (
        next(f for f in findings if f.evidence.get("variable") == "user_emb").evidence["table"],
    )
    assert ("item_emb",) in [s.targets for s in got["reduce_embedding_dim"]]
    # nothing reads request_id at all: no dead sub-graph to drop, only the signature to trim
    (unread,) = got["remove_from_signature"]
    assert unread.targets == ("request_id",) and unread.pass_name is None
    (dedup,) = got["per_request_dedup"]
    assert dedup.params == {"request_inputs": ["age", "city", "hist_item_id", "user_id"]}
    data = json.loads(json.dumps([s.to_dict() for s in advise(findings, graph)]))
    assert set(data[0]) == {
        "kind",
        "targets",
        "message",
        "plan_entry",
        "exactness",
        "changes_contract",
        "expected_saving",
        "training_side",
        "severity",
        "finding_kinds",
        "tables",
    }


def test_sorted_by_expected_time_saving(ranker):
    graph, _, ctx = ranker
    age_hash = next(
        n
        for n in graph.nodes
        if graph.nodes[n].op == "StringToHashBucketFast" and graph.features_of_node[n] == {"age"}
    )
    item_matmul = next(
        n
        for n in graph.nodes
        if graph.nodes[n].op == "MatMul" and "item_id" in graph.features_of_node[n]
    )
    profile = make_profile(graph, {age_hash: 80.0, item_matmul: 20.0})
    findings = run_detectors(
        DetectorContext(
            graph=graph, feeds=ctx.feeds, profile=profile, feature_stats=ctx.feature_stats
        ),
        strict=True,
    )
    suggestions = advise(findings, graph, profile=profile)
    first = suggestions[0]
    assert first.kind == "numeric_bucketize" and abs(first.expected_time_share - 0.8) < 1e-9
    assert first.batch_size == 64
    assert first.expected_time_share_by_batch == {1: pytest.approx(0.8), 64: pytest.approx(0.8)}


def test_plan_presets(ranker, tmp_path):
    from recadvisor.plan import check_plan_fits, load_plan, save_plan

    graph, findings, _ = ranker
    suggestions = advise(findings, graph)
    enabled = {}
    for preset in ("safe", "fast", "small"):
        plan = build_plan(suggestions, graph, preset)
        check_plan_fits(plan, graph)
        assert plan.fingerprint == graph.fingerprint() and plan.preset == preset
        enabled[preset] = {e.pass_name for e in plan.rewrites if e.enabled}
        assert plan.entry("numeric_bucketize").params["inputs"] == ["age"]
        assert "age" not in plan.entry("ids_upstream").params["inputs"]
        dedup = plan.entry("per_request_dedup")
        assert not dedup.enabled and dedup.params["request_inputs"]
        assert "matches how the model is served" in dedup.comment
        path = save_plan(plan, tmp_path / f"{preset}.yaml")
        assert load_plan(path) == plan
    assert enabled["safe"] == {
        "strip_control_deps",
        "drop_unused_inputs",
        "merge_duplicates",
        "split_concat_matmul",
        "grappler_optimize",
    }
    assert enabled["fast"] == enabled["safe"] | {"numeric_bucketize", "ids_upstream"}
    assert enabled["small"] == enabled["fast"] | {
        "share_embeddings",
        "prune_embedding_rows",
        "quantize_embeddings",
    }
    small = build_plan(suggestions, graph, "small")
    # the low-rank item table is shared instead of reduced
    assert "shared by share_embeddings instead" in small.entry("reduce_embedding_dim").comment
    pruned = set(small.entry("prune_embedding_rows").params["tables"])
    share = next(s for s in suggestions if s.kind == "share_embeddings")
    shared_names = {graph.table_name(c) for c in share.tables}
    assert pruned and len(shared_names) == 2 and not pruned & shared_names
    # without sharing (fast), nothing is pruned either; in a lossy plan without a share
    # suggestion the shared tables would be pruned
    no_share = build_plan([s for s in suggestions if s.kind != "share_embeddings"], graph, "small")
    assert shared_names <= set(no_share.entry("prune_embedding_rows").params["tables"])
    assert small.entry("share_embeddings").params == {
        "features": [["hist_item_id", "item_id"]],
        "keep": "mean",
    }


def test_targeted_pass_without_targets_is_disabled(ranker):
    graph, findings, _ = ranker
    no_numeric = [f for f in findings if f.kind != "numeric_as_string"]
    plan = build_plan(advise(no_numeric, graph), graph, "fast")
    entry = plan.entry("numeric_bucketize")
    assert not entry.enabled and "found nothing" in entry.comment
    assert plan.entry("ids_upstream").enabled


def test_training_only_and_outputs(ranker):
    graph, _, _ = ranker
    unsafe = make_finding(
        "unsafe_op",
        [],
        ["graph/ReadFile"],
        "high",
        "1 ReadFile op",
        {"op": "ReadFile", "reason": "reads a file"},
    )
    output = make_finding(
        "unused_output",
        [],
        ["x"],
        "low",
        "serving only score",
        {"keep": ["score"], "time_share": 0.2, "time_share_by_batch": {64: 0.2}},
    )
    got = _by_kind(advise([unsafe, output], graph, preset="fast"))
    (remove,) = got["remove_unsafe_op"]
    assert remove.pass_name is None and remove.exactness == RETRAIN
    assert remove.to_dict()["plan_entry"] is None
    (prune,) = got["prune_outputs"]
    assert prune.params == {"keep": ["score"]} and prune.changes_contract
    plan = build_plan(list(got["prune_outputs"]), graph, "small")
    assert not plan.entry("prune_outputs").enabled
    assert plan.entry("prune_outputs").params == {"keep": ["score"]}


def test_unknown_preset(ranker):
    graph, findings, _ = ranker
    with pytest.raises(PlanError, match="unknown preset"):
        advise(findings, graph, preset="turbo")


def test_repeated_actions_are_listed_once(ranker):
    graph, findings, _ = ranker
    city = [f for f in findings if f.kind == "duplicate_feature" and "city" in f.features]
    assert city, "the ranker hashes city twice"
    once = advise(city, graph)
    twice = advise([*city, *city], graph)
    assert [s.to_dict() for s in twice] == [s.to_dict() for s in once]
    keys = [(s.kind, s.targets) for s in twice]
    assert len(keys) == len(set(keys))
