"""The input encoder against TensorFlow's own ops, bit for bit, and the encode API/file path."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recadvisor.encode import encode_file, encode_inputs, load_feature_contract
from recadvisor.errors import DataError, OutputExistsError, PlanError
from recadvisor.model.runtime import GraphRunner
from recadvisor.rewrite.base import InputEncoding
from recadvisor.rewrite.encodings import (
    bucketize,
    encode_feeds,
    encoding_from_dict,
    feature_contract_dict,
    fingerprint64,
    fingerprint64_array,
    format_as_string,
    hash_bucket,
)
from recadvisor.rewrite.ids_upstream import IdsUpstreamPass
from recadvisor.tfimport import import_tf
from tests.rewrite.fixtures_contract import ContractModel, hashing_ranker, max_abs_diff


def adversarial_strings() -> list[bytes]:
    """Empty, every length 1..300 (all FarmHash code paths), unicode, 1000 chars, raw bytes."""
    rng = random.Random(0)
    out = [b""]
    for n in range(1, 301):
        out.append(bytes(rng.randrange(256) for _ in range(n)))
    out += [
        s.encode()
        for s in (
            "héllo wörld",
            "日本語のテキスト",
            "emoji 🎉🎉",
            "a" * 1000,
            "x" * 64,
            "y" * 65,
            "z" * 128,
            "user_12345",
            " ",
            "\x00",
        )
    ]
    out.append("".join(rng.choice("abcdef🎉é") for _ in range(1000)).encode())
    return out


@pytest.fixture(scope="module")
def tf():
    return import_tf()


@pytest.fixture(scope="module")
def rebuilt_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ContractModel, object]:
    """A directory holding the feature contract of hashing_ranker after ids_upstream."""
    model = hashing_ranker()
    result = IdsUpstreamPass().apply(model.graph, {}, model.context(labels=False))
    out = tmp_path_factory.mktemp("rebuilt")
    doc = feature_contract_dict(result.encodings, result.graph.signature, model.graph.signature)
    (out / "feature_contract.json").write_text(json.dumps(doc), encoding="utf-8")
    return out, model, result


def test_fingerprint64_matches_tf_fingerprint_bit_for_bit(tf) -> None:
    strings = adversarial_strings()
    expected = np.frombuffer(tf.fingerprint(tf.constant(strings)).numpy().tobytes(), "<u8")
    ours = np.array([fingerprint64(s) for s in strings], dtype=np.uint64)
    assert np.array_equal(ours, expected)
    assert np.array_equal(fingerprint64_array(strings), expected)


@pytest.mark.parametrize("num_buckets", [1, 7, 100, 1000, 2**31 - 1, 2**63 - 1])
def test_hash_bucket_matches_to_hash_bucket_fast(tf, num_buckets: int) -> None:
    strings = adversarial_strings()
    expected = tf.strings.to_hash_bucket_fast(tf.constant(strings), num_buckets).numpy()
    ours = hash_bucket(strings, num_buckets)
    assert ours.dtype == np.int64
    assert np.array_equal(ours, expected)


def test_hash_bucket_takes_str_bytes_and_numpy_forms(tf) -> None:
    text = ["user_1", "ünïcode", ""]
    expected = tf.strings.to_hash_bucket_fast(tf.constant(text), 1000).numpy()
    for form in (
        text,
        np.array(text),
        np.array(text, dtype=object),
        np.array([t.encode() for t in text], dtype=object),
        np.array([t.encode() for t in text]),
    ):
        assert np.array_equal(hash_bucket(form, 1000), expected)
    grid = np.array([["a", "b"], ["c", "d"]], dtype=object)
    assert hash_bucket(grid, 10).shape == (2, 2)


def test_hash_bucket_refuses_missing_and_float_values() -> None:
    with pytest.raises(DataError, match="missing"):
        hash_bucket(np.array(["a", None], dtype=object), 10, "user_id")
    with pytest.raises(DataError, match="floats where strings"):
        hash_bucket(np.array([1.5, 2.0]), 10, "user_id")


@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"precision": 2},
        {"scientific": True},
        {"shortest": True},
        {"width": 8},
        {"width": 6, "fill": "0"},
        {"precision": 3, "scientific": True, "width": 12, "fill": "-"},
    ],
)
def test_as_string_formats_floats_like_tensorflow(tf, attrs: dict) -> None:
    values = np.array(
        [
            0.0,
            -0.0,
            1.5,
            -2.25,
            3.14159265,
            1e-8,
            123456.789,
            1e20,
            -7e-5,
            np.inf,
            -np.inf,
            np.nan,
            np.copysign(np.nan, -1),
        ],
        dtype=np.float32,
    )
    expected = tf.strings.as_string(tf.constant(values), **attrs).numpy()
    assert list(format_as_string(values, "float32", **attrs)) == list(expected)
    doubles = values.astype(np.float64) * 1.000001
    expected64 = tf.strings.as_string(tf.constant(doubles), **attrs).numpy()
    assert list(format_as_string(doubles, "float64", **attrs)) == list(expected64)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("attrs", [{}, {"width": 5}, {"width": 5, "fill": "0"}])
def test_as_string_formats_integers_like_tensorflow(tf, dtype: str, attrs: dict) -> None:
    info = np.iinfo(dtype)
    values = np.array([0, 1, -1, 18, 70, 12345, info.min, info.max], dtype=dtype)
    expected = tf.strings.as_string(tf.constant(values), **attrs).numpy()
    assert list(format_as_string(values, dtype, **attrs)) == list(expected)


def test_as_string_hash_bucket_matches_the_tensorflow_pipeline(tf) -> None:
    ages = np.arange(-5, 120, dtype=np.int64).reshape(-1, 1)
    expected = tf.strings.to_hash_bucket_fast(tf.strings.as_string(tf.constant(ages)), 100)
    enc = InputEncoding(
        "age",
        "as_string_hash_bucket",
        "int64",
        "int64",
        {"num_buckets": 100, "value_dtype": "int64"},
    )
    out = encode_feeds([enc], {"age": ages})["age"]
    assert out.shape == (125, 1)
    assert np.array_equal(out, expected.numpy())


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64"])
def test_bucketize_matches_tensorflow(tf, dtype: str) -> None:
    boundaries = [-3.0, 0.0, 0.5, 18.0, 19.0, 70.0, 16777216.0]
    values = np.array(
        [-10, -3, -2.5, 0, 0.25, 0.5, 17, 18, 18.5, 69, 70, 71, 16777217, 2**25 + 1],
        dtype=np.float64,
    )
    if dtype.startswith("int"):
        values = np.floor(values)
    arr = values.astype(dtype)
    expected = tf.raw_ops.Bucketize(input=tf.constant(arr), boundaries=boundaries).numpy()
    assert np.array_equal(bucketize(arr, boundaries, dtype), expected)


def test_vocabulary_encoding_uses_default_for_oov() -> None:
    enc = InputEncoding(
        "cat",
        "vocabulary",
        "string",
        "int64",
        {"key_dtype": "string", "keys": ["a", "b", "é"], "values": [3, 1, 2], "default_value": 9},
    )
    out = encode_feeds([enc], {"cat": np.array(["b", "é", "zz", "a", ""], dtype=object)})
    assert out["cat"].tolist() == [1, 2, 9, 3, 9]
    assert out["cat"].dtype == np.int64


def test_broadcast_sends_one_row_and_refuses_differing_rows() -> None:
    enc = InputEncoding("user_id", "broadcast", "int64", "int64", {"rows": 1})
    out = encode_feeds([enc], {"user_id": np.array([[5], [5], [5]]), "item": np.arange(3)})
    assert out["user_id"].shape == (1, 1)
    assert out["item"].shape == (3,)
    with pytest.raises(DataError, match="per-request"):
        encode_feeds([enc], {"user_id": np.array([5, 6])})


def test_encodings_chain_in_order_and_round_trip_through_json(tf) -> None:
    encs = [
        InputEncoding("user_id", "hash_bucket", "string", "int64", {"num_buckets": 50}),
        InputEncoding("user_id", "broadcast", "int64", "int64", {"rows": 1}),
    ]
    restored = [encoding_from_dict(json.loads(json.dumps(e.to_dict()))) for e in encs]
    assert restored == encs
    out = encode_feeds(restored, {"user_id": np.array(["u1", "u1"], dtype=object)})
    assert out["user_id"].tolist() == [
        int(tf.strings.to_hash_bucket_fast(tf.constant(["u1"]), 50).numpy()[0])
    ]


def test_encoding_from_dict_rejects_unknown_kind_and_missing_fields() -> None:
    with pytest.raises(PlanError, match="unknown encoding kind"):
        encoding_from_dict(
            {"input": "x", "kind": "md5", "source_dtype": "string", "target_dtype": "int64"}
        )
    with pytest.raises(PlanError, match="lacks field"):
        encoding_from_dict({"input": "x", "kind": "hash_bucket"})
    with pytest.raises(DataError, match="missing"):
        encode_feeds(
            [InputEncoding("x", "hash_bucket", "string", "int64", {"num_buckets": 3})],
            {"y": np.array([1])},
        )


def test_encode_inputs_gives_the_rebuilt_model_tensorflow_ids(rebuilt_dir) -> None:
    path, model, result = rebuilt_dir
    raw = {k: v.tolist() for k, v in model.feeds.items()}
    raw["item_id"] = [row[0] for row in raw["item_id"]]  # [N] where the model wants [N,1]
    encoded = encode_inputs(path, raw)
    assert encoded["item_id"].shape == (len(raw["user_id"]), 1)
    assert {k: v.dtype for k, v in encoded.items()} == {
        "user_id": np.int64,
        "item_id": np.int64,
        "age": np.int64,
        "category": np.int64,
        "price": np.float32,
    }
    assert max_abs_diff(GraphRunner(result.graph)(encoded), model.run_original(model.feeds)) <= 1e-5
    contract = load_feature_contract(path)
    assert {e.input_key for e in contract.encodings} == {"user_id", "item_id", "age", "category"}


def test_encode_inputs_without_contract_says_nothing_to_encode(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="did not change the input contract"):
        encode_inputs(tmp_path, {"x": [1]})
    (tmp_path / "feature_contract.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PlanError, match="not valid JSON"):
        encode_inputs(tmp_path, {"x": [1]})


@pytest.mark.parametrize("suffix", [".parquet", ".npz"])
def test_encode_file_csv_to_model_inputs(rebuilt_dir, tmp_path: Path, suffix: str) -> None:
    path, model, result = rebuilt_dir
    frame = pd.DataFrame(
        {
            "user_id": model.feeds["user_id"],
            "item_id": model.feeds["item_id"][:, 0],
            "age": model.feeds["age"][:, 0],
            "category": model.feeds["category"],
            "price": model.feeds["price"][:, 0],
            "label": model.labels,
        }
    )
    frame.to_csv(tmp_path / "raw.csv", index=False)
    out = tmp_path / f"encoded{suffix}"
    report = encode_file(path, tmp_path / "raw.csv", out)
    assert report.rows == len(frame) and report.passed_through == ("label",)
    assert set(report.encoded) == {"user_id", "item_id", "age", "category"}
    if suffix == ".npz":
        with np.load(out) as data:
            feeds = {k: data[k] for k in result.graph.signature.inputs}
            assert np.array_equal(data["label"], model.labels)
    else:
        back = pd.read_parquet(out)
        feeds = {k: back[k].to_numpy() for k in result.graph.signature.inputs}
        feeds = {
            k: v.reshape(-1, 1) if result.graph.signature.inputs[k].rank == 2 else v
            for k, v in feeds.items()
        }
    assert max_abs_diff(GraphRunner(result.graph)(feeds), model.run_original(model.feeds)) <= 1e-5
    with pytest.raises(OutputExistsError):
        encode_file(path, tmp_path / "raw.csv", out)


def test_encode_file_errors_name_the_fix(rebuilt_dir, tmp_path: Path) -> None:
    path, model, _ = rebuilt_dir
    pd.DataFrame({"user_id": ["a"]}).to_csv(tmp_path / "partial.csv", index=False)
    with pytest.raises(DataError, match="lacks columns"):
        encode_file(path, tmp_path / "partial.csv", tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"\.parquet or \.npz"):
        encode_file(path, tmp_path / "partial.csv", tmp_path / "x.txt")


def test_reserved_strings_keep_their_reserved_ids(tf) -> None:
    enc = InputEncoding(
        "hist", "hash_bucket", "string", "int64", {"num_buckets": 500, "reserved": {"": -1}}
    )
    values = np.array([["item_1", ""], ["", "item_2"]], dtype=object)
    out = encode_feeds([enc], {"hist": values})["hist"]
    expected = tf.strings.to_hash_bucket_fast(tf.constant(values.astype(str)), 500).numpy()
    assert out[0, 1] == out[1, 0] == -1
    assert out[0, 0] == expected[0, 0] and out[1, 1] == expected[1, 1]


# --------------------------------------------------------------------------- keyed hash, crosses
HASH_STRINGS = ["", "a", "abc", "hello world", "ü日本", "x" * 7, "x" * 8, "y" * 15, "z" * 16]
HASH_STRINGS += ["q" * 17, "L" * 1000, "user_123", "\x00\x01", "🙂" * 9]


def test_strong_hash_is_bit_exact_with_tensorflow() -> None:
    from recadvisor.rewrite.encodings import strong_hash_bucket

    tf = import_tf()
    rng = np.random.default_rng(0)
    values = HASH_STRINGS + [f"s{int(v)}" for v in rng.integers(0, 10**9, 300)]
    for key in ([11, 22], [0, 0], [2**63 + 5, 2**64 - 1]):
        signed = [k - 2**64 if k >= 2**63 else k for k in key]  # the attr holds int64
        expected = tf.raw_ops.StringToHashBucketStrong(
            input=tf.constant(values), num_buckets=2**62, key=signed
        ).numpy()
        got = strong_hash_bucket(np.array(values, dtype=object), 2**62, key)
        assert (got == expected).all(), key


def test_fingerprint_ids_are_tensorflow_fingerprints() -> None:
    from recadvisor.rewrite.encodings import fingerprint64_ids

    tf = import_tf()
    expected = tf.bitcast(tf.fingerprint(tf.constant(HASH_STRINGS)), tf.int64).numpy()
    got = fingerprint64_ids(np.array(HASH_STRINGS, dtype=object))
    assert got.dtype == np.int64 and (got == expected).all()


def test_vocabulary_with_oov_buckets_matches_static_vocabulary_table() -> None:
    tf = import_tf()
    keys = ["books", "music", "games"]
    table = tf.lookup.StaticVocabularyTable(
        tf.lookup.KeyValueTensorInitializer(keys, tf.constant([0, 1, 2], tf.int64)), 5
    )
    values = ["books", "", "other", "ü日本", "games", "x" * 70]
    enc = InputEncoding(
        "cat",
        "vocabulary",
        "string",
        "int64",
        {
            "keys": keys,
            "values": [0, 1, 2],
            "default_value": -1,
            "oov_buckets": 5,
            "oov_offset": 3,
        },
    )
    got = encode_feeds([enc], {"cat": np.array(values, dtype=object)})["cat"]
    assert (got == table.lookup(tf.constant(values)).numpy()).all()


def test_fingerprint_encoding_refuses_a_collision_with_a_compared_value(monkeypatch) -> None:
    from recadvisor.rewrite import encodings

    enc = InputEncoding("city", "fingerprint64", "string", "int64", {"compared": [""]})
    out = encode_feeds([enc], {"city": np.array(["", "paris"], dtype=object)})["city"]
    assert out[0] != out[1]
    # a 2^-64 collision, forged: "" hashes like "paris", so "paris" would read as the pad value
    original = encodings.fingerprint64
    monkeypatch.setattr(
        encodings, "fingerprint64", lambda b: original(b"paris") if b == b"" else original(b)
    )
    with pytest.raises(DataError, match="same Fingerprint64"):
        encode_feeds([enc], {"city": np.array(["paris"], dtype=object)})
