"""share_embeddings: tables of one id space (items and a history of items) become one."""

from __future__ import annotations

import pytest

from recadvisor.model.queries import rewritable_tables
from recadvisor.model.runtime import GraphRunner
from recadvisor.rewrite.base import PassRefused, PassResult, RewriteContext
from recadvisor.rewrite.encodings import encode_feeds
from recadvisor.rewrite.ids_upstream import IdsUpstreamPass
from recadvisor.rewrite.share_embeddings import ShareEmbeddingsPass, id_space
from tests.rewrite.fixtures_contract import ContractModel, hashing_ranker, max_abs_diff, two_tower


@pytest.fixture(scope="module")
def tower() -> ContractModel:
    return two_tower()


@pytest.fixture(scope="module")
def context(tower: ContractModel) -> RewriteContext:
    return tower.context()


@pytest.fixture(scope="module")
def shared(tower: ContractModel, context: RewriteContext) -> PassResult:
    return ShareEmbeddingsPass().apply(tower.graph, {}, context)


def test_detects_items_and_item_history(tower: ContractModel, shared: PassResult) -> None:
    [group] = shared.stats["groups"]
    assert len(group["tables"]) == 2
    assert any("(hist_item_id)" in t for t in group["tables"])
    assert any("(item_id)" in t for t in group["tables"])
    before = rewritable_tables(tower.graph)
    after = rewritable_tables(shared.graph)
    assert len(after) == len(before) - 1
    assert shared.stats["bytes_saved"] == 500 * 8 * 4
    spaces = {
        id_space(tower.graph, tower.graph.nodes[g].input[1])
        for t in before.values()
        for g in t.gathers
    }
    assert ("hash", 500, "string") in spaces and ("hash", 1000, "string") in spaces


def test_output_within_the_gate(tower: ContractModel, shared: PassResult) -> None:
    diff = max_abs_diff(GraphRunner(shared.graph)(tower.feeds), tower.run_original(tower.feeds))
    assert 1e-6 < diff <= 1e-2
    assert shared.stats["gate"]["max_abs_diff"] == pytest.approx(diff, abs=1e-6)


def test_keep_one_feature_table(tower: ContractModel, context: RewriteContext) -> None:
    result = ShareEmbeddingsPass().apply(
        tower.graph, {"features": [["hist_item_id", "item_id"]], "keep": "item_id"}, context
    )
    assert result.notes[0].startswith("shared (item_id)")
    out = GraphRunner(result.graph)(tower.feeds)
    assert 0 < max_abs_diff(out, tower.run_original(tower.feeds)) <= 1e-2


def test_detection_works_after_ids_upstream(tower: ContractModel) -> None:
    up = IdsUpstreamPass().apply(tower.graph, {}, tower.context(labels=False))
    encoded = encode_feeds(up.encodings, tower.feeds)
    result = ShareEmbeddingsPass().apply(
        up.graph, {}, RewriteContext(encoded, tower.feeds, tower.labels)
    )
    assert len(result.stats["groups"]) == 1
    assert max_abs_diff(GraphRunner(result.graph)(encoded), tower.run_original(tower.feeds)) <= 1e-2


def test_gate_refuses(tower: ContractModel, context: RewriteContext) -> None:
    with pytest.raises(PassRefused, match="max_abs_diff"):
        ShareEmbeddingsPass().apply(tower.graph, {"max_abs_diff": 1e-7}, context)


def test_refuses_tables_of_different_spaces_or_shapes(
    tower: ContractModel, context: RewriteContext
) -> None:
    with pytest.raises(PassRefused, match="differ in shape"):
        ShareEmbeddingsPass().apply(tower.graph, {"features": [["user_id", "item_id"]]}, context)
    model = hashing_ranker()
    with pytest.raises(PassRefused, match="no tables to share"):
        ShareEmbeddingsPass().apply(model.graph, {}, model.context(labels=False))
