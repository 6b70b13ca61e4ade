"""Synthesized feeds: shapes, dtypes, determinism, vocabularies and the warning."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from recadvisor.data import SYNTHETIC_SEQUENCE_LENGTH, synthesize_feeds, synthetic_shape
from recadvisor.errors import DataError
from recadvisor.model.spec import SignatureSpec, TensorInfo


@pytest.fixture(scope="module")
def wide_spec() -> SignatureSpec:
    inputs = {
        "user": TensorInfo("user", "string", (None,)),
        "age": TensorInfo("age", "int64", (None, 1)),
        "small": TensorInfo("small", "int8", (None,)),
        "price": TensorInfo("price", "float32", (None, 1)),
        "history": TensorInfo("history", "string", (None, None)),
        "fixed": TensorInfo("fixed", "int32", (None, 5)),
        "flag": TensorInfo("flag", "bool", (None,)),
        "cube": TensorInfo("cube", "float64", (None, None, None)),
        "anything": TensorInfo("anything", "string", None),
    }
    return SignatureSpec("serving_default", inputs)


def test_shapes_and_dtypes_fit_the_signature(wide_spec):
    feeds = synthesize_feeds(wide_spec, 7)
    assert list(feeds) == list(wide_spec.inputs)
    shapes = {key: feed.shape for key, feed in feeds.items()}
    assert shapes == {
        "user": (7,),
        "age": (7, 1),
        "small": (7,),
        "price": (7, 1),
        "history": (7, SYNTHETIC_SEQUENCE_LENGTH),
        "fixed": (7, 5),
        "flag": (7,),
        "cube": (7, SYNTHETIC_SEQUENCE_LENGTH, 1),
        "anything": (7,),
    }
    assert feeds["user"].dtype == object and all(type(v) is str for v in feeds["user"])
    assert all(v.startswith("v") for v in feeds["history"].ravel())
    assert feeds["age"].dtype == np.int64 and 0 <= feeds["age"].min() <= feeds["age"].max() < 100
    assert feeds["small"].dtype == np.int8
    assert feeds["price"].dtype == np.float32
    assert feeds["fixed"].dtype == np.int32
    assert feeds["flag"].dtype == np.bool_
    assert feeds["cube"].dtype == np.float64


def test_same_seed_same_values_and_inputs_independent(wide_spec):
    first = synthesize_feeds(wide_spec, 16, seed=3)
    again = synthesize_feeds(wide_spec, 16, seed=3)
    other = synthesize_feeds(wide_spec, 16, seed=4)
    for key in wide_spec.inputs:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["price"], other["price"])
    alone = SignatureSpec("s", {"price": wide_spec.inputs["price"]})
    np.testing.assert_array_equal(synthesize_feeds(alone, 16, seed=3)["price"], first["price"])


def test_vocabularies_are_used_and_converted(wide_spec):
    vocabularies = {"user": ["alice", "bob"], "age": [30, 40.0], "history": [b"x", "y"]}
    feeds = synthesize_feeds(wide_spec, 200, vocabularies=vocabularies)
    assert set(feeds["user"].tolist()) == {"alice", "bob"}
    assert set(feeds["age"].ravel().tolist()) == {30, 40}
    assert set(feeds["history"].ravel().tolist()) == {b"x", "y"}


def test_oov_fraction_mixes_in_unknown_values(wide_spec):
    feeds = synthesize_feeds(wide_spec, 400, vocabularies={"user": ["alice"]}, oov_fraction=0.25)
    unknown = sum(v != "alice" for v in feeds["user"])
    assert 50 < unknown < 150


def test_bad_vocabulary_and_rows(wide_spec):
    with pytest.raises(DataError, match="vocabulary for input 'age' does not fit its dtype int64"):
        synthesize_feeds(wide_spec, 2, vocabularies={"age": ["a"]})
    with pytest.raises(DataError, match="positive integer"):
        synthesize_feeds(wide_spec, 0)
    with pytest.raises(DataError, match="input 'r' has dtype resource"):
        synthesize_feeds(SignatureSpec("s", {"r": TensorInfo("r", "resource", ())}), 2)


def test_warns_that_data_driven_advice_is_off(wide_spec, caplog):
    with caplog.at_level(logging.WARNING, logger="recadvisor.data.synthesize"):
        synthesize_feeds(wide_spec, 2)
    assert "data-driven advice" in caplog.text and "is off" in caplog.text


def test_synthetic_shape_of_fixed_batch_dimension():
    assert synthetic_shape(TensorInfo("x", "int64", (1, 3)), 4) == (4, 3)
    assert synthetic_shape(TensorInfo("x", "int64", ()), 4) == (4,)
