"""load_feeds: one call from a data file (or none) to feeds, labels and a JSON summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recadvisor.data import DEFAULT_SYNTHETIC_ROWS, LoadedData, load_feeds
from recadvisor.errors import DataError


def test_loads_file_with_labels_and_summary(tmp_path, spec, sample_frame, writer):
    frame = sample_frame.assign(request_id=["r1", "r2", "r3", "r4"])
    path = writer(frame, tmp_path / "sample.parquet", "parquet")

    loaded = load_feeds(path, spec)

    assert isinstance(loaded, LoadedData)
    assert loaded.source == "file" and not loaded.is_synthetic
    assert loaded.n_rows == 4 and loaded.path == str(path)
    assert list(loaded.feeds) == list(spec.inputs)
    assert loaded.labels["label"].tolist() == [0, 1, 0, 1]
    assert loaded.unused_columns == ("request_id",)
    assert loaded.frame is not None and "label" in loaded.frame.columns
    summary = loaded.to_dict()
    json.dumps(summary)  # JSON-serializable, no arrays
    assert summary["inputs"]["history"] == {"dtype": "string", "shape": [4, 5]}
    assert summary["inputs"]["age"] == {"dtype": "int64", "shape": [4, 1]}
    assert summary["labels"]["label"] == {"dtype": "int64", "positives": 2}
    assert summary["unused_columns"] == ["request_id"]


def test_rows_limits_the_file(tmp_path, spec, sample_frame, writer):
    path = writer(sample_frame, tmp_path / "sample.jsonl", "jsonl")
    loaded = load_feeds(path, spec, rows=3)
    assert loaded.n_rows == 3 and loaded.feeds["history"].shape == (3, 5)


def test_synthesizes_without_a_file(spec):
    loaded = load_feeds(None, spec, seed=1, vocabularies={"user_id": ["u1", "u2"]})
    assert loaded.source == "synthetic" and loaded.is_synthetic
    assert loaded.n_rows == DEFAULT_SYNTHETIC_ROWS
    assert loaded.frame is None and loaded.labels == {} and loaded.path is None
    assert set(loaded.feeds["user_id"].tolist()) <= {"u1", "u2"}
    assert loaded.feeds["history"].shape == (DEFAULT_SYNTHETIC_ROWS, 5)
    assert load_feeds(None, spec, rows=5).to_dict()["inputs"]["price"] == {
        "dtype": "float32",
        "shape": [5, 1],
    }


def test_label_named_like_an_input_stays_an_input(tmp_path, spec, sample_frame, writer):
    path = writer(sample_frame, tmp_path / "sample.csv", "csv")
    loaded = load_feeds(path, spec, label_names=("age", "label"))
    assert list(loaded.labels) == ["label"]
    np.testing.assert_array_equal(loaded.feeds["age"][:, 0], [18, 25, 40, 61])


def test_per_output_label_columns_are_labels(tmp_path, spec, sample_frame, writer):
    frame = sample_frame.assign(label_ctcvr=[0, 0, 0, 1], request_id=["a", "b", "c", "d"])
    path = writer(frame, tmp_path / "sample.parquet", "parquet")
    loaded = load_feeds(path, spec)
    assert list(loaded.labels) == ["label", "label_ctcvr"]
    assert loaded.labels["label_ctcvr"].tolist() == [0, 0, 0, 1]
    assert loaded.unused_columns == ("request_id",)


def test_errors_are_data_errors(tmp_path, spec, sample_frame, writer):
    with pytest.raises(DataError, match="not found"):
        load_feeds(tmp_path / "missing.parquet", spec)
    path = writer(sample_frame.drop(columns=["price", "age"]), tmp_path / "partial.npz", "npz")
    with pytest.raises(DataError, match="missing columns for inputs: age, price;"):
        load_feeds(path, spec)
