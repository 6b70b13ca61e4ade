"""ids_upstream on strings split into tokens in the graph (``StringSplitV2`` and TF1's
``StringSplit``), see fixtures_split.

The client splits like TensorFlow (checked against ``tf.strings.split`` and
``tf.compat.v1.string_split`` on tricky strings), sends the tokens' ids as a padded ``[N, K]``
matrix, and the rebuilt graph, its SavedModel and its ONNX file give the original SavedModel's
outputs (run in a v1 Session) on rows with no token, one token, empty tokens and repeated
separators; a split whose tokens are also read as strings is refused with the reason, and so is
a split input also read whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recadvisor.errors import DataError
from recadvisor.model.graph import STRING_OPS
from recadvisor.model.load import load_model
from recadvisor.model.onnx_export import export_onnx
from recadvisor.model.runtime import GraphRunner, export_saved_model, run_loaded
from recadvisor.rewrite.base import PassResult
from recadvisor.rewrite.encodings import (
    encode_feeds,
    encoding_from_dict,
    split_string,
    split_string_v1,
    split_strings,
)
from recadvisor.rewrite.ids_upstream import IdsUpstreamPass
from recadvisor.tfimport import import_tf
from tests.rewrite.fixtures_contract import ContractModel, max_abs_diff
from tests.rewrite.fixtures_split import (
    TAGS,
    split_feeds,
    split_refused,
    split_tokens,
    split_tokens_v1,
    split_v1_feeds,
)

TRICKY = [
    "",
    "a",
    "|",
    "||",
    "a||b",
    "|a|",
    "a|b|c|d|e",
    " a  b ",
    "   ",
    "a\tb\nc\rd",
    "\x0bv\x0cf\x0b",
    "\x1cfs\x1c",  # not whitespace for TensorFlow
    "\xa0nb\xa0sp",  # U+00A0 (two UTF-8 bytes): not ASCII whitespace
    "x\x85y",  # U+0085 (NEL): not ASCII whitespace
    "abab",
    "aab",
    "ü日本|ü",
    "x" * 300,
]
SEPS = ["|", "", " ", "ab", "||", "ü"]
DELIMITERS = ["|", ",;", " ", "", "ü", "ab"]  # StringSplit: a set of bytes
MAXSPLITS = [-1, 0, 1, 2, 5]


@pytest.fixture(scope="module")
def model() -> ContractModel:
    return split_tokens()


@pytest.fixture(scope="module")
def upstream(model: ContractModel) -> PassResult:
    return IdsUpstreamPass().apply(model.graph, {}, model.context(labels=False))


def _edge_batches() -> dict[str, dict[str, np.ndarray]]:
    """A one-row batch, a batch where no row has a whitespace token (K = 0 for ``words``) and
    ``tags`` are empty tokens only, and rows of separators only."""

    def batch(tags: list[str], words: list[str]) -> dict[str, np.ndarray]:
        price = np.linspace(-1, 1, len(tags)).astype(np.float32)
        return {
            "tags": np.array(tags, dtype=object),
            "words": np.array(words, dtype=object),
            "price": price,
        }

    return {
        "one_row": batch(["games||books"], ["a b c d"]),
        "no_token": batch(["", "", ""], ["", " ", "\t\n"]),
        "separators_only": batch(["|||", "|", "||||||"], ["x", "  x  ", "x y"]),
    }


@pytest.mark.parametrize("sep", SEPS)
def test_client_split_is_tensorflows(sep: str) -> None:
    """``split_string`` / ``split_strings`` against ``tf.strings.split`` (``StringSplitV2``)."""
    tf = import_tf()
    for maxsplit in MAXSPLITS:
        expected = tf.strings.split(tf.constant(TRICKY), sep or None, maxsplit).to_list()
        for text, tokens in zip(TRICKY, expected, strict=True):
            got = split_string(text.encode(), sep.encode(), maxsplit)
            assert got == tokens, (sep, maxsplit, text)
        flat, lengths = split_strings(np.array(TRICKY, dtype=object), sep.encode(), maxsplit)
        assert lengths.tolist() == [len(t) for t in expected]
        assert flat.tolist() == [t for row in expected for t in row]


@pytest.mark.parametrize("skip_empty", [True, False])
def test_client_split_is_tensorflow_1s(skip_empty: bool) -> None:
    """``split_string_v1`` / ``split_strings(op="StringSplit")`` against TF1's ``StringSplit``
    (``tf.compat.v1.string_split``): every byte of the delimiter separates, ``""`` gives no
    token, an empty delimiter splits into bytes."""
    tf = import_tf()
    for delimiter in DELIMITERS:
        sparse = tf.compat.v1.string_split(TRICKY, delimiter, skip_empty)
        rows = sparse.indices.numpy()[:, 0]
        values = sparse.values.numpy().tolist()
        expected = [
            [v for r, v in zip(rows, values, strict=True) if r == i] for i in range(len(TRICKY))
        ]
        for text, tokens in zip(TRICKY, expected, strict=True):
            got = split_string_v1(text.encode(), delimiter.encode(), skip_empty)
            assert got == tokens, (delimiter, skip_empty, text)
        flat, lengths = split_strings(
            np.array(TRICKY, dtype=object),
            delimiter.encode(),
            op="StringSplit",
            skip_empty=skip_empty,
        )
        assert lengths.tolist() == [len(t) for t in expected]
        assert flat.tolist() == values


def test_string_split_encoding_is_the_padded_token_ids() -> None:
    """The contract entry as JSON -> ``[N, K]`` ids: each token's vocabulary id (OOV buckets
    included) or hash bucket as TensorFlow computes it, ``pad_id`` after a row's last token."""
    tf = import_tf()
    texts = np.array(["books|zz||music", "", "|", "ü日本", "games|toys|books|x"], dtype=object)
    vocab = {
        "input": "tags",
        "kind": "string_split",
        "source_dtype": "string",
        "target_dtype": "int64",
        "params": {
            "sep": "|",
            "maxsplit": -1,
            "pad_id": -1,
            "tokens": {
                "kind": "vocabulary",
                "params": {
                    "key_dtype": "string",
                    "keys": TAGS,
                    "values": list(range(len(TAGS))),
                    "default_value": -1,
                    "oov_buckets": 3,
                    "oov_offset": len(TAGS),
                },
            },
        },
    }
    table = tf.lookup.StaticVocabularyTable(
        tf.lookup.KeyValueTensorInitializer(TAGS, np.arange(len(TAGS), dtype=np.int64)), 3
    )
    tokens = tf.strings.split(tf.constant(texts.astype(str)), "|")
    expected = tf.ragged.map_flat_values(table.lookup, tokens).to_tensor(-1).numpy()
    got = encode_feeds([encoding_from_dict(vocab)], {"tags": texts})["tags"]
    assert got.dtype == np.int64 and np.array_equal(got, expected)

    hashed = {**vocab, "params": {**vocab["params"], "sep": "", "maxsplit": 1}}
    hashed["params"]["tokens"] = {"kind": "hash_bucket", "params": {"num_buckets": 7}}
    tokens = tf.strings.split(tf.constant(texts.astype(str)), maxsplit=1)
    hashes = tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, tokens, 7)
    got = encode_feeds([encoding_from_dict(hashed)], {"tags": texts})["tags"]
    assert np.array_equal(got, hashes.to_tensor(-1).numpy())
    assert got.shape == (len(texts), 2)


def test_split_input_needs_one_string_per_row(upstream: PassResult) -> None:
    feeds = {**split_feeds(4), "tags": np.array([["a|b"], ["c"], [""], ["d"]], dtype=object)}
    with pytest.raises(DataError, match="'tags'.*one string per row"):
        encode_feeds(upstream.encodings, feeds)


def test_split_inputs_become_token_ids(model: ContractModel, upstream: PassResult) -> None:
    enc = {e.input_key: e for e in upstream.encodings}
    assert {k: e.kind for k, e in enc.items()} == {"tags": "string_split", "words": "string_split"}
    tags, words = enc["tags"].params, enc["words"].params
    assert (tags["sep"], tags["maxsplit"], words["sep"], words["maxsplit"]) == ("|", -1, "", 2)
    assert tags["tokens"]["kind"] == "vocabulary" and tags["tokens"]["params"]["oov_buckets"] == 2
    assert words["tokens"] == {"kind": "hash_bucket", "params": {"num_buckets": 40}}
    assert tags["pad_id"] < 0 and words["pad_id"] < 0  # never a token's id
    ops = upstream.graph.op_counts()
    assert not [op for op in ops if op in STRING_OPS or op.startswith("LookupTable")]
    assert "RaggedTensorToSparse" not in ops and not upstream.graph.tables
    assert "SparseReshape" not in ops  # a reshape of the split to its own shape is bypassed
    assert ops["SparseSegmentMean"] == ops["SparseSegmentSqrtN"] == 1  # the pooling stays
    assert ops["UnsortedSegmentSum"] == 1  # over tf.shape(words)[0]: the [N] token counts
    assert all(i.dtype != "string" for i in upstream.graph.signature.inputs.values())
    assert upstream.stats["string_ops_after"] == 0 < upstream.stats["string_ops_before"]

    encoded = encode_feeds(upstream.encodings, model.feeds)
    assert encoded["tags"].shape == (len(model.feeds["tags"]), 7)  # "|||..." rows: 7 tokens
    assert encoded["tags"][0].tolist() == [5] + [tags["pad_id"]] * 6  # "": one empty token (OOV)
    assert (encoded["words"][:3] == words["pad_id"]).all()  # whitespace only: no token
    assert max_abs_diff(GraphRunner(upstream.graph)(encoded), model.run_original(model.feeds)) == 0


@pytest.mark.parametrize("batch", ["one_row", "no_token", "separators_only", "fresh"])
def test_rewritten_graph_is_exact_on_edge_batches(
    model: ContractModel, upstream: PassResult, batch: str
) -> None:
    feeds = _edge_batches().get(batch) or split_feeds(300, seed=11, tricky=False)
    encoded = encode_feeds(upstream.encodings, feeds)
    got = GraphRunner(upstream.graph)(encoded)
    assert max_abs_diff(got, model.run_original(feeds)) <= 1e-6, batch


@pytest.mark.slow
def test_saved_model_and_onnx_are_exact(
    model: ContractModel, upstream: PassResult, tmp_path: Path
) -> None:
    """The re-exported SavedModel and the ONNX file (tf2onnx converts the sparse pooling as it
    is) against the original on the sample rows and the edge batches that have a token."""
    from recadvisor.bench import OnnxRunner

    encoded = encode_feeds(upstream.encodings, model.feeds)
    loaded = load_model(export_saved_model(upstream.graph, tmp_path / "sm"))
    served = run_loaded(loaded.function, loaded.spec.inputs, encoded)
    assert max_abs_diff(served, model.run_original(model.feeds)) <= 1e-6
    result = export_onnx(upstream.graph, tmp_path / "m.onnx", encoded)
    assert result.max_abs_diff <= 1e-5
    assert not {"StringSplitV2", "LookupTableFindV2"} & set(result.onnx_ops)
    runner = OnnxRunner(tmp_path / "m.onnx")
    for name, feeds in _edge_batches().items():
        if name == "no_token":
            continue  # see test_onnx_batch_without_tokens
        got = runner.run(runner.prepare(encode_feeds(upstream.encodings, feeds)))
        assert max_abs_diff(got, model.run_original(feeds)) <= 1e-5, name


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="tf2onnx's UnsortedSegmentSum (here over the token rows) sizes its output with "
    "ReduceMax(Unique(segment ids)): a negative size when there is no token",
)
def test_onnx_batch_without_tokens(
    model: ContractModel, upstream: PassResult, tmp_path: Path
) -> None:
    """A batch where no row has a whitespace token (a batch of one empty string) gives a
    ``[N, 0]`` id matrix; TensorFlow pools and counts it to zeros, onnxruntime must too (the
    pooling alone does: see test_string_split_v1_inputs_onnx)."""
    from recadvisor.bench import OnnxRunner

    encoded = encode_feeds(upstream.encodings, model.feeds)
    export_onnx(upstream.graph, tmp_path / "m.onnx", encoded)
    runner = OnnxRunner(tmp_path / "m.onnx")
    feeds = _edge_batches()["no_token"]
    got = runner.run(runner.prepare(encode_feeds(upstream.encodings, feeds)))
    assert max_abs_diff(got, model.run_original(feeds)) <= 1e-5


@pytest.fixture(scope="module")
def model_v1() -> ContractModel:
    return split_tokens_v1()


@pytest.fixture(scope="module")
def upstream_v1(model_v1: ContractModel) -> PassResult:
    return IdsUpstreamPass().apply(model_v1.graph, {}, model_v1.context(labels=False))


def _v1_batches() -> dict[str, dict[str, np.ndarray]]:
    """No token in any row (``[N, 0]`` matrices), one row, and 200 fresh rows."""
    return {
        "no_token": {
            "cats": np.array(["", ",;", ";;,"], dtype=object),
            "spaced": np.array(["", "", ""], dtype=object),
        },
        "one_row": {
            "cats": np.array([",games;"], dtype=object),
            "spaced": np.array(["  "], object),
        },
        "fresh": split_v1_feeds(200, seed=12, tricky=False),
    }


def test_string_split_v1_inputs_become_token_ids(
    model_v1: ContractModel, upstream_v1: PassResult
) -> None:
    enc = {e.input_key: e.params for e in upstream_v1.encodings}
    assert {e.input_key: e.kind for e in upstream_v1.encodings} == {
        "cats": "string_split",
        "spaced": "string_split",
    }
    assert (enc["cats"]["op"], enc["cats"]["sep"], enc["cats"]["skip_empty"]) == (
        "StringSplit",
        ",;",
        True,
    )
    assert (enc["spaced"]["sep"], enc["spaced"]["skip_empty"]) == (" ", False)
    assert enc["cats"]["tokens"]["params"]["default_value"] == -1
    assert enc["cats"]["pad_id"] == -2  # below the table's default -1, which the pooling drops
    ops = upstream_v1.graph.op_counts()
    assert not [op for op in ops if op in STRING_OPS or op.startswith("LookupTable")]
    assert "StringSplit" not in ops and "SparseReshape" not in ops
    encoded = encode_feeds(upstream_v1.encodings, model_v1.feeds)
    assert encoded["spaced"][2].tolist()[:3] == [encoded["spaced"][1][0]] * 3  # "  ": 3 x ""
    for name, feeds in {"sample": model_v1.feeds, **_v1_batches()}.items():
        encoded = encode_feeds(upstream_v1.encodings, feeds)
        got = GraphRunner(upstream_v1.graph)(encoded)
        assert max_abs_diff(got, model_v1.run_original(feeds)) == 0, name
    assert encode_feeds(upstream_v1.encodings, _v1_batches()["no_token"])["cats"].shape == (3, 0)


@pytest.mark.slow
def test_string_split_v1_inputs_onnx(
    model_v1: ContractModel, upstream_v1: PassResult, tmp_path: Path
) -> None:
    """ONNX on the sample rows, on a batch with no token at all (``[N, 0]`` ids: the pooling
    gives zero rows), one row and fresh rows."""
    from recadvisor.bench import OnnxRunner

    encoded = encode_feeds(upstream_v1.encodings, model_v1.feeds)
    result = export_onnx(upstream_v1.graph, tmp_path / "m.onnx", encoded)
    assert result.max_abs_diff <= 1e-5
    runner = OnnxRunner(tmp_path / "m.onnx")
    for name, feeds in _v1_batches().items():
        got = runner.run(runner.prepare(encode_feeds(upstream_v1.encodings, feeds)))
        assert max_abs_diff(got, model_v1.run_original(feeds)) <= 1e-5, name


def test_splits_read_another_way_are_refused() -> None:
    """``notes``' tokens are hashed and also measured (``StringLength``), ``user`` is split and
    also hashed whole: both stay strings with the reason in the notes; ``item`` still moves
    upstream, exactly."""
    model = split_refused()
    result = IdsUpstreamPass().apply(model.graph, {}, model.context(labels=False))
    assert [e.input_key for e in result.encodings] == ["item"]
    notes = [n for n in result.notes if n.startswith("left in the graph")]
    assert len(notes) == 2, result.notes
    (tokens,) = [n for n in notes if "'notes'" in n]
    assert "the tokens of StringSplitV2" in tokens
    assert "input 'notes' is also read as a string by StringLength" in tokens
    (whole,) = [n for n in notes if "'user'" in n]
    assert "input 'user' is split into tokens by StringSplitV2 and also read by" in whole
    assert "StringToHashBucketFast" in whole
    inputs = result.graph.signature.inputs
    assert inputs["notes"].dtype == inputs["user"].dtype == "string"
    assert inputs["item"].dtype == "int64"
    assert result.graph.op_counts()["StringSplitV2"] == 2
    encoded = encode_feeds(result.encodings, model.feeds)
    assert max_abs_diff(GraphRunner(result.graph)(encoded), model.run_original(model.feeds)) == 0


@pytest.mark.slow
def test_cli_fast_onnx_with_encode_inputs(model: ContractModel, tmp_path: Path) -> None:
    """``recadvisor rebuild --preset fast --onnx`` on the TF1 model, then ``encode_inputs`` on
    new raw rows: the string-free SavedModel and the ONNX file give the original's outputs."""
    import pandas as pd
    from typer.testing import CliRunner

    from recadvisor.bench import OnnxRunner
    from recadvisor.cli import app
    from recadvisor.encode import encode_inputs, load_feature_contract

    data = tmp_path / "sample.parquet"
    pd.DataFrame(model.feeds).to_parquet(data)
    out = tmp_path / "fast"
    args = ["rebuild", str(model.path), "--out", str(out), "--preset", "fast", "--onnx"]
    result = CliRunner().invoke(app, [*args, "--data", str(data)])
    assert result.exit_code == 0, result.output
    contract = load_feature_contract(out)
    assert {e.input_key: e.kind for e in contract.encodings}["tags"] == "string_split"
    rebuilt = load_model(out / "saved_model")
    assert all(info.dtype != "string" for info in rebuilt.spec.inputs.values())
    onnx = OnnxRunner(out / "model.onnx")
    fresh = split_feeds(64, seed=21, tricky=False)
    for feeds in (fresh, _edge_batches()["one_row"], _edge_batches()["separators_only"]):
        encoded = encode_inputs(out, feeds)
        original = model.run_original(feeds)
        served = run_loaded(rebuilt.function, rebuilt.spec.inputs, encoded)
        assert max_abs_diff(served, original) <= 1e-5
        assert max_abs_diff(onnx.run(onnx.prepare(encoded)), original) <= 1e-5
