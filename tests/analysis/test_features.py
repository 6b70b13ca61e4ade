"""Feature statistics of sample data (pandas)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from recadvisor.analysis.features import compute_feature_stats
from recadvisor.model.spec import SignatureSpec, TensorInfo


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u1", "u3", None],
            "age": [25, 31, 25, 40, 31],
            "age_text": ["25", "31", "25", "40", "31"],
            "city": [b"paris", b"rome", b"paris", b"oslo", b"rome"],
            "city_code": [1, 2, 1, 3, 2],
            "city_copy": [b"paris", b"rome", b"paris", b"oslo", b"rome"],
            "hist": [["i1", "i2", ""], ["i2"], [], ["i9", "", ""], ["i1"]],
            "item_id": ["i1", "i7", "i2", "i8", "i1"],
            "price": [1.5, np.nan, 2.0, 2.0, 3.25],
            "label": [0, 1, 0, 1, 1],
        }
    )


def test_column_stats():
    stats = compute_feature_stats(_frame())
    user = stats.columns["user_id"]
    assert (user.kind, user.distinct, user.null_share) == ("string", 3, 0.2)
    assert user.top_values[0] == ("u1", 2)
    age = stats.columns["age"]
    assert age.kind == "int" and (age.numeric_min, age.numeric_max) == (25.0, 40.0)
    assert not age.all_numeric
    text = stats.columns["age_text"]
    assert text.kind == "string" and text.all_numeric and text.numeric_max == 40.0
    assert not stats.columns["item_id"].all_numeric
    price = stats.columns["price"]
    assert price.kind == "float" and price.distinct == 3 and price.null_share == 0.2
    city = stats.columns["city"]
    assert city.kind == "string" and city.top_values[0][0] in ("paris", "rome")


def test_sequence_column():
    hist = compute_feature_stats(_frame()).columns["hist"]
    assert hist.is_sequence and hist.kind == "string"
    assert (hist.list_length_min, hist.list_length_max, hist.list_length_mean) == (0, 3, 1.6)
    assert hist.values == 5 and hist.distinct == 3
    assert hist.pad_share == 3 / 8


def test_identical_and_one_to_one_columns():
    stats = compute_feature_stats(_frame())
    identical = {(r.a, r.b) for r in stats.identical}
    one_to_one = {(r.a, r.b) for r in stats.one_to_one}
    assert ("city", "city_copy") in identical
    assert ("city", "city_code") in one_to_one and ("city_code", "city_copy") in one_to_one
    assert ("age", "age_text") in one_to_one
    # user_id and item_id are not mapped one to one
    assert not any({"user_id", "item_id"} == {a, b} for a, b in identical | one_to_one)


def test_value_overlap_between_id_columns():
    stats = compute_feature_stats(_frame())
    ov = stats.overlap("item_id", "hist")
    assert ov is not None and ov.common == 2
    assert ov.containment == 2 / 3 and ov.jaccard == 2 / 5
    assert stats.overlap("user_id", "item_id") is None
    assert stats.overlap("age", "city_code") is None  # int and int: no common value


def test_spec_selects_inputs_and_records_dtypes():
    spec = SignatureSpec(
        "serving_default",
        inputs={
            "user_id": TensorInfo("user_id", "string", (None,)),
            "hist": TensorInfo("hist", "string", (None, 3)),
            "item_id": TensorInfo("item_id", "string", (None,)),
            "missing": TensorInfo("missing", "int64", (None,)),
        },
    )
    stats = compute_feature_stats(_frame(), spec)
    assert list(stats.columns) == ["user_id", "hist", "item_id"]
    assert stats.columns["hist"].signature_dtype == "string"
    data = json.loads(json.dumps(stats.to_dict()))
    assert data["rows"] == 5 and "label" not in data["columns"]
    assert data["overlaps"][0]["a"] == "hist"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(["a", "b", "c", ""])), min_size=1, max_size=40
    )
)
def test_distinct_counts_match_python(rows):
    frame = pd.DataFrame(
        {"n": [r[0] for r in rows], "s": [r[1] for r in rows], "m": [r[0] * 10 for r in rows]}
    )
    stats = compute_feature_stats(frame)
    assert stats.columns["n"].distinct == len({r[0] for r in rows})
    assert stats.columns["s"].distinct == len({r[1] for r in rows})
    # m is a function of n and vice versa
    if stats.columns["n"].distinct > 1 and stats.columns["n"].distinct < len(rows):
        assert ("m", "n") in {(r.a, r.b) for r in stats.one_to_one}
