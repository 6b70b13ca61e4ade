"""duplicates detector: hashed twice, identical tables, redundant columns."""

from __future__ import annotations

from recadvisor.analysis.detectors import duplicates
from recadvisor.analysis.features import compute_feature_stats
from recadvisor.analysis.findings import DUPLICATE_FEATURE, MEDIUM


def _by_reason(findings):
    out = {}
    for f in findings:
        assert f.kind == DUPLICATE_FEATURE
        out.setdefault(f.evidence["reason"], []).append(f)
    return out


def test_city_hashed_twice(ranker):
    found = _by_reason(duplicates.detect(ranker.context()))
    (city,) = found["hashed_twice"]
    assert city.features == ("city",) and city.severity == MEDIUM
    assert city.evidence["mergeable"] and city.evidence["num_buckets"] == [50, 50]
    assert len(city.evidence["redundant_nodes"]) == 1
    assert "hashed 2 times" in city.message


def test_identical_vocabulary_tables(ranker):
    found = _by_reason(duplicates.detect(ranker.context()))
    (twice,) = found["looked_up_twice"]
    assert twice.features == ("category",) and len(twice.evidence["lookup_nodes"]) == 2
    (tables,) = found["identical_tables"]
    assert tables.evidence["table_kind"] == "lookup" and len(tables.evidence["tables"]) == 2
    assert tables.features == ("category",)


def test_one_to_one_columns_from_data(ranker):
    frame = ranker.frame.copy()
    frame["city"] = frame["user_id"].str.replace("u", "city", regex=False)
    stats = compute_feature_stats(frame, ranker.loaded.spec)
    found = _by_reason(duplicates.detect(ranker.context(feature_stats=stats)))
    (pair,) = found["one_to_one_columns"]
    assert pair.features == ("city", "user_id")
    assert "map one-to-one" in pair.message
    # synthetic data: no data-based claims
    synthetic = _by_reason(
        duplicates.detect(ranker.context(feature_stats=stats, feeds_synthetic=True))
    )
    assert "one_to_one_columns" not in synthetic


def test_nothing_duplicated(clean, multitask):
    assert duplicates.detect(clean.context()) == []
    assert duplicates.detect(multitask.context()) == []
