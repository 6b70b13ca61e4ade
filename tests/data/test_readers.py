"""Reading sample data files: every format round-trips, and every failure is a DataError."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recadvisor.data import detect_format, read_table, to_feeds
from recadvisor.errors import DataError

from .sample_files import FORMAT_EXTENSIONS


@pytest.mark.parametrize("fmt", sorted(FORMAT_EXTENSIONS))
def test_every_format_round_trips_to_feeds(tmp_path, spec, sample_frame, writer, fmt):
    path = writer(sample_frame, tmp_path / f"data.{FORMAT_EXTENSIONS[fmt]}", fmt)

    frame = read_table(path)
    feeds = to_feeds(frame, spec)

    assert sorted(frame.columns) == sorted(sample_frame.columns)
    assert len(frame) == 4
    assert feeds["user_id"].dtype == object and feeds["user_id"].shape == (4,)
    assert feeds["user_id"].tolist() == ["u1", "ü2", "u3", "u4"]
    assert feeds["age"].dtype == np.int64 and feeds["age"].shape == (4, 1)
    assert feeds["age"][:, 0].tolist() == [18, 25, 40, 61]
    assert feeds["price"].dtype == np.float32 and feeds["price"].shape == (4, 1)
    np.testing.assert_array_equal(feeds["price"][:, 0], np.float32([0.5, 1.25, -3.0, 100.0]))
    assert feeds["history"].dtype == object and feeds["history"].shape == (4, 5)
    assert feeds["history"].tolist() == sample_frame["history"].tolist()
    assert all(type(v) is str for v in feeds["history"].ravel())


def test_limit_reads_first_rows(tmp_path, sample_frame, writer):
    for fmt in ("parquet", "csv", "jsonl", "npz", "tfrecord"):
        path = writer(sample_frame, tmp_path / f"limit.{FORMAT_EXTENSIONS[fmt]}", fmt)
        frame = read_table(path, limit=2)
        assert frame["user_id"].tolist() == ["u1", "ü2"], fmt


def test_fmt_overrides_extension(tmp_path, sample_frame, writer):
    path = writer(sample_frame, tmp_path / "data.txt", "jsonl")
    with pytest.raises(DataError, match="cannot tell the format"):
        read_table(path)
    assert read_table(path, fmt="json")["age"].tolist() == [18, 25, 40, 61]


def test_detect_format_handles_gzip_and_aliases():
    assert detect_format("a/b.PQ") == ("parquet", False)
    assert detect_format("x.csv.gz") == ("csv", True)
    assert detect_format("x.tfrecords.gz") == ("tfrecord", True)
    assert detect_format("x.bin", fmt="tfr") == ("tfrecord", False)
    with pytest.raises(DataError, match="not supported"):
        detect_format("x.parquet.gz")
    with pytest.raises(DataError, match="unknown data format 'xls'"):
        detect_format("x.csv", fmt="xls")


def test_gzipped_jsonl_and_csv(tmp_path, sample_frame):
    path = tmp_path / "data.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write('{"a": 1, "b": ["x", "y"]}\n{"a": 2, "b": ["z"]}\n')
    frame = read_table(path)
    assert frame["a"].tolist() == [1, 2]
    assert frame["b"].tolist() == [["x", "y"], ["z"]]
    csv_path = tmp_path / "data.csv.gz"
    sample_frame[["user_id", "age"]].to_csv(csv_path, index=False, compression="gzip")
    assert read_table(csv_path)["age"].tolist() == [18, 25, 40, 61]


def test_csv_keeps_id_text_exact_and_infers_numbers(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text(
        "zip,count,score,country,tags,big\n"
        '007,1,1.5,NA,"[""a"", ""b""]",99999999999999999999\n'
        '12,2,2,,"[]",1\n',
        encoding="utf-8",
    )
    frame = read_table(path)
    assert frame["zip"].tolist() == ["007", "12"]  # leading zero kept: stays text
    assert frame["count"].dtype == np.int64
    assert frame["score"].dtype == np.float64
    assert frame["country"].iloc[0] == "NA"  # only empty fields are missing
    assert pd.isna(frame["country"].iloc[1])
    assert frame["tags"].tolist() == [["a", "b"], []]
    assert frame["big"].tolist() == ["99999999999999999999", "1"]  # beyond int64: text


def test_json_array_document_and_missing_keys(tmp_path):
    path = tmp_path / "records.json"
    path.write_text(json.dumps([{"a": 1, "b": "x"}, {"a": 2}]), encoding="utf-8")
    frame = read_table(path)
    assert frame["a"].tolist() == [1, 2]
    assert frame["b"].iloc[0] == "x" and pd.isna(frame["b"].iloc[1])


def test_tfrecord_scalars_lists_and_absent_features(tmp_path):
    from recadvisor.tfimport import import_tf

    tf = import_tf()
    path = tmp_path / "ex.tfr"
    with tf.io.TFRecordWriter(str(path)) as writer:
        first = tf.train.Example()
        first.features.feature["s"].bytes_list.value.append(b"one")
        first.features.feature["raw"].bytes_list.value.append(b"\xff\xfe")
        first.features.feature["ids"].int64_list.value.extend([1, 2, 3])
        first.features.feature["w"].float_list.value.append(0.25)
        writer.write(first.SerializeToString())
        second = tf.train.Example()
        second.features.feature["s"].bytes_list.value.extend([b"a", b"b"])
        second.features.feature["ids"].int64_list.value.append(7)
        writer.write(second.SerializeToString())
    frame = read_table(path)
    assert frame["s"].tolist() == ["one", ["a", "b"]]
    assert frame["raw"].iloc[0] == b"\xff\xfe"  # not UTF-8: kept as bytes
    assert frame["ids"].tolist() == [[1, 2, 3], 7]
    assert frame["w"].iloc[0] == 0.25 and pd.isna(frame["w"].iloc[1])


def test_npz_rows_and_columns(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(
        path, s=np.array([b"x", b"y"]), col=np.array([[1], [2]]), seq=np.arange(6).reshape(2, 3)
    )
    frame = read_table(path)
    assert frame["s"].tolist() == [b"x", b"y"]
    assert frame["col"].tolist() == [1, 2]
    assert [list(v) for v in frame["seq"]] == [[0, 1, 2], [3, 4, 5]]


# ---------------------------------------------------------------------------------- failures


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found: .*nope.csv"):
        read_table(tmp_path / "nope.csv")


def test_directory_is_refused(tmp_path):
    folder = tmp_path / "folder.parquet"
    folder.mkdir()
    with pytest.raises(DataError, match="is a directory"):
        read_table(folder)


@pytest.mark.parametrize("ext", ["parquet", "csv", "jsonl", "npz", "tfrecord"])
def test_empty_file_is_data_error(tmp_path, ext):
    path = tmp_path / f"empty.{ext}"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_table(path)


def test_header_only_csv_has_no_rows(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="holds no rows"):
        read_table(path)


@pytest.mark.parametrize("ext", ["parquet", "npz", "tfrecord"])
def test_wrong_format_is_data_error(tmp_path, ext):
    path = tmp_path / f"wrong.{ext}"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{path.name}"):
        read_table(path)


def test_csv_read_as_parquet_is_data_error(tmp_path, sample_frame, writer):
    path = writer(sample_frame, tmp_path / "real.csv", "csv")
    with pytest.raises(DataError, match="as parquet"):
        read_table(path, fmt="parquet")


def test_jsonl_bad_line_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2 of"):
        read_table(path)
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2 .* not an object"):
        read_table(path)


def test_npz_arrays_of_different_lengths(tmp_path):
    path = tmp_path / "ragged.npz"
    np.savez(path, a=np.arange(3), b=np.arange(4))
    with pytest.raises(DataError, match="different numbers of rows"):
        read_table(path)


def test_npz_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, a=np.array(["x", None], dtype=object))
    with pytest.raises(DataError, match="pickled"):
        read_table(path)


def test_unreadable_text_is_data_error(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"a,b\n\xff\xfe\x00,1\n")
    with pytest.raises(DataError, match="binary.csv"):
        read_table(path)


def test_bad_limit(tmp_path, sample_frame, writer):
    path = writer(sample_frame, tmp_path / "d.csv", "csv")
    with pytest.raises(DataError, match="positive integer"):
        read_table(path, limit=0)


@pytest.mark.parametrize("ext", ["parquet", "csv", "jsonl", "json", "npz", "tfrecord"])
@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(max_size=200))
def test_random_bytes_raise_only_data_error(tmp_path, spec, ext, content):
    path = tmp_path / f"fuzz.{ext}"
    path.write_bytes(content)
    try:
        frame = read_table(path)
        to_feeds(frame, spec)
    except DataError as e:
        message = str(e)
        assert message and "\n" not in message
