"""numeric_as_string detector and its boundaries."""

from __future__ import annotations

import numpy as np

from recadvisor.analysis.detectors import numeric_as_string
from recadvisor.analysis.detectors.numeric_as_string import value_boundaries
from recadvisor.analysis.features import compute_feature_stats
from recadvisor.analysis.findings import HIGH, LOW, MEDIUM, NUMERIC_AS_STRING


def test_age_hashed_as_string_with_exact_boundaries(ranker):
    findings = numeric_as_string.detect(ranker.context())
    assert [f.features for f in findings] == [("age",)]
    f = findings[0]
    ev = f.evidence
    ages = np.unique(ranker.feeds["age"])
    assert ev["source"] == "graph" and ev["input_dtype"] == "int64"
    assert ev["num_buckets"] == [100] and ev["table_rows"] == 100 and ev["table_dim"] == 8
    assert ev["method"] == "distinct"
    assert ev["values"] == ages.tolist()
    assert ev["boundaries"] == ages[1:].tolist()
    assert (ev["min"], ev["max"]) == (20, 45) and ev["contiguous"]
    assert ev["exact_for"] == "every integer in [20, 45]"
    assert ev["rows_used"] <= len(ages) and ev["hash_collisions"] == len(ages) - ev["rows_used"]
    assert f.severity == HIGH  # 100 rows for 26 values
    assert "26 distinct values in [20, 45]" in f.message
    assert any(n.endswith("AsString") for n in f.nodes)


def test_without_data_no_boundaries(ranker):
    f = numeric_as_string.detect(ranker.context(feeds=None, feature_stats=None))[0]
    assert f.severity == MEDIUM and "boundaries" not in f.evidence
    synthetic = numeric_as_string.detect(ranker.context(feeds_synthetic=True))[0]
    assert "boundaries" not in synthetic.evidence


def test_value_boundaries_non_contiguous_and_quantile():
    sparse = value_boundaries(np.array([3, 7, 7, 10]))
    assert sparse["boundaries"] == [7, 10] and not sparse["contiguous"]
    assert "3 observed values" in sparse["exact_for"]
    floats = value_boundaries(np.array([0.5, 1.5, np.nan]))
    assert floats["values"] == [0.5, 1.5] and not floats["integral"]
    many = value_boundaries(np.random.default_rng(0).normal(size=5000), n_bins=16)
    assert many["method"] == "quantile" and many["n_distinct"] == 5000
    assert len(many["boundaries"]) == 15 and many["boundaries"] == sorted(many["boundaries"])
    assert "lossy" in many["exact_for"]
    assert value_boundaries(np.array([]))["method"] == "none"


def test_string_input_holding_numbers_is_reported_from_data(ranker):
    frame = ranker.frame.copy()
    frame["city"] = [str(i % 8 + 1) for i in range(len(frame))]
    feeds = dict(ranker.feeds, city=frame["city"].to_numpy(dtype=object))
    stats = compute_feature_stats(frame, ranker.loaded.spec)
    findings = numeric_as_string.detect(ranker.context(feature_stats=stats, feeds=feeds))
    city = [f for f in findings if f.features == ("city",)]
    assert len(city) == 1 and city[0].kind == NUMERIC_AS_STRING and city[0].severity == LOW
    assert city[0].evidence["source"] == "data"
    assert city[0].evidence["boundaries"] == [2, 3, 4, 5, 6, 7, 8]


def test_no_numeric_strings_no_findings(clean, multitask, ranker):
    assert numeric_as_string.detect(clean.context()) == []
    assert numeric_as_string.detect(multitask.context()) == []
    # ids such as "u12" do not parse as numbers: only age is reported
    assert [f.features for f in numeric_as_string.detect(ranker.context())] == [("age",)]
