"""shared_embeddings detector: two tables, one id space."""

from __future__ import annotations

from recadvisor.analysis.detectors import shared_embeddings
from recadvisor.analysis.detectors.shared_embeddings import canonical_name
from recadvisor.analysis.findings import LOW, MEDIUM, SHARED_EMBEDDING_CANDIDATE


def test_history_and_item_tables_share_an_id_space(ranker):
    findings = shared_embeddings.detect(ranker.context())
    assert [f.features for f in findings] == [("hist_item_id", "item_id")]
    f = findings[0]
    assert f.kind == SHARED_EMBEDDING_CANDIDATE and f.severity == MEDIUM
    assert f.evidence["same_id_space"] == "both hashed into 500 buckets"
    assert f.evidence["value_containment"] > 0.9  # history items come from the item ids
    assert f.evidence["rewrite"] and f.evidence["bytes_saved"] == 500 * 8 * 4


def test_without_data_names_decide(ranker):
    findings = shared_embeddings.detect(ranker.context(feeds=None, feature_stats=None))
    assert [f.features for f in findings] == [("hist_item_id", "item_id")]
    assert findings[0].severity == LOW and findings[0].evidence["value_containment"] is None


def test_disjoint_values_are_not_a_candidate(ranker):
    frame = ranker.frame.copy()
    frame["hist_item_id"] = [[f"other{j}" for j in range(5)] for _ in range(len(frame))]
    from recadvisor.analysis.features import compute_feature_stats

    stats = compute_feature_stats(frame, ranker.loaded.spec)
    assert shared_embeddings.detect(ranker.context(feature_stats=stats)) == []


def test_no_candidates(clean, multitask):
    assert shared_embeddings.detect(clean.context()) == []
    # user and item ids overlap as numbers (both 0..63), which says nothing for int inputs
    assert shared_embeddings.detect(multitask.context()) == []


def test_canonical_name():
    assert canonical_name("hist_item_id") == "item_id"
    assert canonical_name("item_id_seq") == "item_id"
    assert canonical_name("clicked_cate_id") == "cate_id"
    assert canonical_name("user_id") == "user_id"
