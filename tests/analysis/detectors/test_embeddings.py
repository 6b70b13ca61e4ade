"""embeddings detector: sizes, rows hit, effective rank."""

from __future__ import annotations

import numpy as np

from recadvisor.analysis.detectors import embeddings
from recadvisor.analysis.detectors.embeddings import energy_dims, rule_of_thumb_dim
from recadvisor.analysis.detectors.graph_patterns import find_embedding_tables
from recadvisor.analysis.findings import HIGH, LARGE_EMBEDDING


def _by_variable(findings):
    return {f.evidence["variable"]: f for f in findings if f.kind == LARGE_EMBEDDING}


def test_tables_are_found_with_their_features(ranker):
    tables = {t.variable: t for t in find_embedding_tables(ranker.graph)}
    assert set(tables) == {
        "user_emb",
        "age_emb",
        "city_emb",
        "city_bias",
        "hist_item_emb",
        "item_emb",
        "category_emb",
        "category_bias",
    }
    assert (tables["user_emb"].rows, tables["user_emb"].dim) == (1000, 8)
    assert tables["user_emb"].bytes == 1000 * 8 * 4
    assert tables["city_bias"].dim == 1 and tables["city_bias"].features == ("city",)
    assert tables["age_emb"].uses[0].id_kind == "hash"
    assert tables["category_emb"].uses[0].id_kind == "vocabulary"


def test_oversized_user_table(ranker):
    found = _by_variable(embeddings.detect(ranker.context()))
    user = found["user_emb"]
    users = len(set(ranker.feeds["user_id"]))
    assert user.features == ("user_id",)
    assert "oversized" in user.evidence["issues"]
    assert user.evidence["rows_hit"] <= users and user.evidence["cardinality"] == users
    assert user.evidence["hit_fraction"] < 0.05 and user.severity == HIGH
    assert user.evidence["rule_of_thumb_dim"] == rule_of_thumb_dim(users)
    assert "of 1,000 rows" in user.message


def test_low_rank_item_table(ranker):
    item = _by_variable(embeddings.detect(ranker.context()))["item_emb"]
    assert "low_rank" in item.evidence["issues"]
    assert item.evidence["dims_99"] <= 2 and item.evidence["dims_95"] <= 2
    assert item.evidence["rank_basis"] == "rows hit"


def test_synthetic_feeds_claim_no_rows_hit(ranker):
    found = _by_variable(embeddings.detect(ranker.context(feeds_synthetic=True)))
    assert "user_emb" not in found  # rows hit on made-up data mean nothing
    assert found["item_emb"].evidence["rows_hit"] is None
    assert found["item_emb"].evidence["rank_basis"] == "all rows"


def test_well_sized_table_is_not_reported(clean, multitask):
    assert embeddings.detect(clean.context()) == []
    assert embeddings.detect(multitask.context()) == []


def test_energy_dims_and_rule_of_thumb():
    rng = np.random.default_rng(0)
    rank2 = rng.normal(size=(200, 2)) @ rng.normal(size=(2, 16))
    e = energy_dims(rank2)
    assert e["dims_95"] <= 2 and e["dims_99"] == 2
    full = energy_dims(np.eye(8))
    assert full["dims_99"] == 8 and full["dims_95"] == 8
    assert energy_dims(np.zeros((0, 4)))["dims_99"] is None
    assert rule_of_thumb_dim(10000) == 60 and rule_of_thumb_dim(0) == 6
