"""prune_embedding_rows: tables keep the rows the sample hits, plus one fallback row."""

from __future__ import annotations

import numpy as np
import pytest

from recadvisor.model.edits import const_array
from recadvisor.model.queries import rewritable_tables
from recadvisor.model.runtime import GraphRunner, probe_tensors
from recadvisor.rewrite.base import PassRefused, PassResult, RewriteContext
from recadvisor.rewrite.encodings import hash_bucket
from recadvisor.rewrite.prune_embedding_rows import PruneEmbeddingRowsPass
from tests.rewrite.fixtures_contract import (
    ContractModel,
    hashing_ranker,
    max_abs_diff,
    ranker_feeds,
)


@pytest.fixture(scope="module")
def hranker() -> ContractModel:
    return hashing_ranker()


@pytest.fixture(scope="module")
def pruned(hranker: ContractModel) -> PassResult:
    return PruneEmbeddingRowsPass().apply(hranker.graph, {}, hranker.context(labels=False))


def _user_table(graph):
    return next(t for t in rewritable_tables(graph).values() if t.shape[1] == 8)


def test_exact_on_the_sample(hranker: ContractModel, pruned: PassResult) -> None:
    out = GraphRunner(pruned.graph)(hranker.feeds)
    assert max_abs_diff(out, hranker.run_original(hranker.feeds)) <= 1e-5


def test_rows_kept_are_the_ids_the_graph_hashed(hranker: ContractModel, pruned: PassResult) -> None:
    user_ids = np.unique(hash_bucket(hranker.feeds["user_id"], 1000))
    # keyed by the name a person knows the table by (its variable), not the capture name
    key = hranker.graph.table_name(_user_table(hranker.graph).const)
    assert not key.startswith("unknown"), key
    stats = pruned.stats["tables"][key]
    assert stats["rows_before"] == 1000
    assert stats["rows_after"] == user_ids.size + 1  # + the fallback row
    assert _user_table(pruned.graph).shape == (user_ids.size + 1, 8)
    assert pruned.stats["table_bytes_after"] < pruned.stats["table_bytes_before"] / 3
    assert "(user_id): 1000 ->" in " ".join(pruned.notes)
    # the category table (6 rows) is below min_rows and stays
    assert any(t.shape == (6, 4) for t in rewritable_tables(pruned.graph).values())


def test_unseen_ids_read_the_mean_of_the_pruned_rows(
    hranker: ContractModel, pruned: PassResult
) -> None:
    table = _user_table(hranker.graph)
    full = const_array(hranker.graph.nodes[table.const])
    kept = np.unique(hash_bucket(hranker.feeds["user_id"], 1000))
    mask = np.ones(1000, bool)
    mask[kept] = False
    fresh = ranker_feeds(32, seed=5)
    fresh["user_id"] = np.array([f"never_seen_{i}" for i in range(32)], dtype=object)
    unseen = ~np.isin(hash_bucket(fresh["user_id"], 1000), kept)
    assert unseen.any()
    [gather] = _user_table(pruned.graph).gathers
    rows = probe_tensors(pruned.graph, [gather + ":0"], fresh)[gather + ":0"]
    assert np.allclose(rows[unseen], full[mask].mean(axis=0), atol=1e-6)


def test_zeros_fallback(hranker: ContractModel) -> None:
    result = PruneEmbeddingRowsPass().apply(
        hranker.graph, {"fallback": "zeros"}, hranker.context(labels=False)
    )
    table = _user_table(result.graph)
    assert np.all(const_array(result.graph.nodes[table.const])[-1] == 0)


def test_refuses_when_nothing_is_worth_pruning(hranker: ContractModel) -> None:
    with pytest.raises(PassRefused, match="nothing to prune"):
        PruneEmbeddingRowsPass().apply(
            hranker.graph, {"max_keep_fraction": 0.0}, hranker.context(labels=False)
        )
    with pytest.raises(PassRefused, match="needs sample data"):
        PruneEmbeddingRowsPass().apply(hranker.graph, {}, RewriteContext({}, {}))
