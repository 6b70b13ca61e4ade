"""per_request detector: the request-side sub-graph."""

from __future__ import annotations

from recadvisor.analysis.detectors import per_request
from recadvisor.analysis.detectors.per_request import (
    CANDIDATE,
    REQUEST,
    UNKNOWN,
    feature_components,
    side_of_name,
)
from recadvisor.analysis.findings import PER_REQUEST_FEATURE
from tests.analysis.detectors.conftest import make_profile


def test_user_tower_is_per_request(ranker):
    (f,) = per_request.detect(ranker.context())
    assert f.kind == PER_REQUEST_FEATURE
    assert f.features == ("age", "city", "hist_item_id", "user_id")
    assert f.evidence["candidate_inputs"] == ["category", "item_id", "price"]
    assert f.evidence["join_nodes"] and f.nodes == tuple(f.evidence["join_nodes"])
    assert sorted(map(sorted, f.evidence["components"])) == [
        ["age", "city", "hist_item_id", "user_id"],
        ["category", "item_id", "price"],
    ]


def test_saving_from_profile(ranker):
    graph = ranker.graph
    f = per_request.detect(ranker.context())[0]
    user_matmul = next(
        n
        for n in graph.nodes
        if graph.nodes[n].op == "MatMul" and graph.features_of_node[n] <= set(f.features)
    )
    item_matmul = next(
        n
        for n in graph.nodes
        if graph.nodes[n].op == "MatMul" and "item_id" in graph.features_of_node[n]
    )
    profile = make_profile(graph, {user_matmul: 60.0, item_matmul: 40.0})
    f = per_request.detect(ranker.context(profile=profile))[0]
    assert abs(f.evidence["time_share"] - 0.6) < 1e-9
    assert abs(f.evidence["max_saving_by_batch"][64] - 0.6 * (1 - 1 / 64)) < 1e-9
    assert f.evidence["max_saving_by_batch"][1] == 0.0
    assert f.severity == "medium"


def test_multitask_user_side(multitask):
    (f,) = per_request.detect(multitask.context())
    assert f.features == ("user_id",)
    assert f.evidence["candidate_inputs"] == ["item_id", "price"]


def test_no_request_side(clean):
    assert feature_components(clean.graph) == [frozenset({"item_id"}), frozenset({"price"})]
    assert per_request.detect(clean.context()) == []


def test_side_of_name():
    assert side_of_name("user_id") == REQUEST
    assert side_of_name("hist_item_id") == REQUEST
    assert side_of_name("histCateId") == REQUEST
    assert side_of_name("item_id") == CANDIDATE
    assert side_of_name("ad_campaign") == CANDIDATE
    assert side_of_name("f0") == UNKNOWN
