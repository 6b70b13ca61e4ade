"""ONNX export: blockers named, Bucketize and integer tables lowered, parity with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from recadvisor.errors import ExportError, OutputExistsError
from recadvisor.model.graph import ModelGraph
from recadvisor.model.onnx_export import (
    export_onnx,
    find_onnx_blockers,
    lower_for_onnx,
    ort_feeds,
)
from recadvisor.model.runtime import GraphRunner
from recadvisor.rewrite.base import RewriteContext
from recadvisor.rewrite.encodings import encode_feeds
from recadvisor.rewrite.ids_upstream import IdsUpstreamPass
from recadvisor.rewrite.numeric_bucketize import NumericBucketizePass
from recadvisor.rewrite.per_request_dedup import PerRequestDedupPass, one_request_feeds
from recadvisor.rewrite.quantize_embeddings import QuantizeEmbeddingsPass
from tests.rewrite.fixtures_contract import (
    ContractModel,
    hashing_ranker,
    int_lookup,
    max_abs_diff,
    segment_history,
    two_tower,
)
from tests.rewrite.fixtures_patterns import int_sparse_cross


@pytest.fixture(scope="module")
def hranker() -> ContractModel:
    return hashing_ranker()


@pytest.fixture(scope="module")
def string_free(hranker: ContractModel) -> tuple[ModelGraph, dict[str, np.ndarray]]:
    """numeric_bucketize + ids_upstream: a string-free graph with a Bucketize, and its feeds."""
    ctx = hranker.context()
    bucketized = NumericBucketizePass().apply(hranker.graph, {}, ctx).graph
    up = IdsUpstreamPass().apply(bucketized, {}, ctx)
    return up.graph, encode_feeds(up.encodings, hranker.feeds)


def test_strings_block_export_with_the_fix_named(hranker: ContractModel, tmp_path: Path) -> None:
    blockers = {b.op: b for b in find_onnx_blockers(hranker.graph)}
    assert blockers["StringToHashBucketFast"].count == 3
    assert set(blockers["StringToHashBucketFast"].inputs) == {"user_id", "item_id", "age"}
    assert blockers["LookupTableFindV2"].inputs == ("category",)
    with pytest.raises(ExportError, match="ids_upstream") as info:
        export_onnx(hranker.graph, tmp_path / "m.onnx", hranker.feeds)
    assert "StringToHashBucketFast x3" in str(info.value)
    assert not (tmp_path / "m.onnx").exists()


def test_string_free_graph_exports_with_parity(string_free, tmp_path: Path) -> None:
    graph, feeds = string_free
    assert find_onnx_blockers(graph) == []
    result = export_onnx(graph, tmp_path / "model.onnx", feeds)
    assert result.lowered == {"Bucketize": 1, "Log1p": 1}  # no tf2onnx handler for either
    assert result.max_abs_diff <= 1e-5 and set(result.parity) == {"score", "logit"}
    assert result.inputs == tuple(graph.signature.inputs)
    model = onnx.load(str(tmp_path / "model.onnx"))
    assert [i.name for i in model.graph.input] == list(graph.signature.inputs)
    assert {o.name for o in model.graph.output} == {"score", "logit"}
    assert "Bucketize" not in result.onnx_ops and result.size_bytes > 0
    assert result.onnx_ops["Log"] == 1
    with pytest.raises(OutputExistsError):
        export_onnx(graph, tmp_path / "model.onnx", feeds)


def test_lowered_bucketize_matches_tensorflow(string_free) -> None:
    graph, feeds = string_free
    lowered, counts = lower_for_onnx(graph)
    assert counts == {"Bucketize": 1, "Log1p": 1}
    assert "Bucketize" not in lowered.op_counts() and "Log1p" not in lowered.op_counts()
    wide = dict(feeds)
    wide["age"] = np.array([[-1], [17], [18], [44], [70], [71], [10**6]] * 2, np.int64)
    wide = {k: v[: len(wide["age"])] if k != "age" else v for k, v in wide.items()}
    assert max_abs_diff(GraphRunner(lowered)(wide), GraphRunner(graph)(wide)) <= 1e-6


def test_integer_lookup_table_is_lowered(tmp_path: Path) -> None:
    model = int_lookup()
    assert find_onnx_blockers(model.graph) == []
    result = export_onnx(model.graph, tmp_path / "int.onnx", model.feeds)
    assert result.lowered == {"LookupTableFindV2": 1}
    assert result.max_abs_diff <= 1e-5  # feeds include unknown codes and holes in the range


def test_unread_inputs_are_left_out_of_the_onnx_model(tmp_path: Path) -> None:
    """``request_id`` is declared but never read: the ONNX model takes only ``code`` and ``x``, so
    its inputs are all numeric and onnxruntime can bind them once."""
    from recadvisor.bench import OnnxRunner

    model = int_lookup()
    assert "request_id" in model.graph.input_nodes
    result = export_onnx(model.graph, tmp_path / "int.onnx", model.feeds)
    assert result.inputs == ("code", "x")
    runner = OnnxRunner(tmp_path / "int.onnx")
    out = runner.run(runner.prepare(model.feeds))
    assert max_abs_diff(out, model.run_original(model.feeds)) <= 1e-5


def test_an_output_named_like_an_input_exports(tmp_path: Path) -> None:
    """A signature returning ``x`` (a feature it also reads) next to ``score``: ONNX names
    must be unique, so the output is ``x:output`` there, and the runner reads it back as
    ``x``."""
    from recadvisor.bench import OnnxRunner
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model
    from recadvisor.tfimport import import_tf

    tf = import_tf()
    module = tf.Module()
    specs = {k: tf.TensorSpec([None, 1], tf.float32, name=k) for k in ("x", "y")}

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        return {"x": f["x"] * 2.0, "score": f["x"] + f["y"]}

    module.serve = serve
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": serve})
    feeds = {"x": np.arange(4, dtype=np.float32).reshape(4, 1), "y": np.ones((4, 1), np.float32)}
    result = export_onnx(freeze(load_model(tmp_path / "sm")), tmp_path / "m.onnx", feeds)
    assert result.max_abs_diff == 0.0
    runner = OnnxRunner(tmp_path / "m.onnx")
    out = runner.run(runner.prepare(feeds))
    np.testing.assert_array_equal(out["x"], feeds["x"] * 2)
    np.testing.assert_array_equal(out["score"], feeds["x"] + 1)


def test_one_hot_of_ids_that_are_never_negative_needs_no_remap(tmp_path: Path) -> None:
    """ONNX counts a negative one-hot index from the end, so indices that can be negative are
    mapped to ``depth`` first; ids gathered from a constant of non-negative ids (cast wider)
    are not, ids from a constant holding -1 are, and both match TensorFlow (ids >= depth and
    the -1 give a zero row)."""
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model
    from recadvisor.tfimport import import_tf

    tf = import_tf()
    module = tf.Module()
    specs = {"x": tf.TensorSpec([None], tf.int64, name="x")}
    remap = tf.constant([0, 2, 1, 5], tf.int32)
    with_missing = tf.constant([0, -1, 1, 5], tf.int64)

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        safe = tf.cast(tf.gather(remap, f["x"]), tf.int64)
        return {
            "safe": tf.one_hot(safe, 4),
            "missing": tf.one_hot(tf.gather(with_missing, f["x"]), 4),
        }

    module.serve = serve
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": serve})
    graph = freeze(load_model(tmp_path / "sm"))
    lowered, counts = lower_for_onnx(graph)
    remapped = [n.name for n in lowered.graph_def.node if n.name.endswith("/onnx_negative")]
    assert counts["OneHot"] == 2 and len(remapped) == 1, remapped
    feeds = {"x": np.array([0, 1, 2, 3, 3, 1], np.int64)}
    result = export_onnx(graph, tmp_path / "m.onnx", feeds)
    assert result.max_abs_diff == 0.0


def test_quantized_tables_export(string_free, hranker: ContractModel, tmp_path: Path) -> None:
    graph, feeds = string_free
    q = QuantizeEmbeddingsPass().apply(
        graph, {"dtype": "int8"}, RewriteContext(feeds, hranker.feeds, hranker.labels)
    )
    result = export_onnx(q.graph, tmp_path / "int8.onnx", feeds)
    assert result.max_abs_diff <= 1e-5
    assert result.size_bytes < 0.6 * export_onnx(graph, tmp_path / "f32.onnx", feeds).size_bytes


def test_per_request_graph_exports(tmp_path: Path) -> None:
    model = two_tower()
    up = IdsUpstreamPass().apply(model.graph, {}, model.context(labels=False))
    encoded = encode_feeds(up.encodings, model.feeds)
    dd = PerRequestDedupPass().apply(up.graph, {}, RewriteContext(encoded, model.feeds))
    request = one_request_feeds(model.feeds, ["hist_item_id", "user_age", "user_id"], row=2)
    feeds = encode_feeds(up.encodings + dd.encodings, request)
    result = export_onnx(dd.graph, tmp_path / "dedup.onnx", feeds)
    assert result.max_abs_diff <= 1e-5
    assert result.onnx_ops.get("Expand", 0) >= 1  # BroadcastTo of the user tower


def test_ort_feeds_use_object_str_arrays(hranker: ContractModel) -> None:
    feeds = dict(hranker.feeds)
    feeds["user_id"] = np.array([b"u1", b"u2"] * 128)  # fixed-width |S bytes
    converted = ort_feeds(hranker.graph, feeds)
    assert converted["user_id"].dtype == object
    assert isinstance(converted["user_id"][0], str) and converted["user_id"][0] == "u1"
    assert converted["price"].dtype == np.float32


@pytest.mark.slow  # a saved model and a tf2onnx conversion (~10-20 s)
def test_sparse_and_multi_valued_crosses_are_lowered_entry_for_entry(tmp_path: Path) -> None:
    """Hashed crosses of a sparse column (0 to 3 values a row) and a dense [N,2] one, of one
    column, and of a sparse column the client sends: the lowered graph and onnxruntime give
    TensorFlow's indices, values and dense shape exactly, in order (also for empty rows, an
    empty batch, and client indices out of row-major order, which the kernel reads only up
    to the first one out of order)."""
    from recadvisor.bench import OnnxRunner

    model = int_sparse_cross()
    assert find_onnx_blockers(model.graph) == []
    lowered, counts = lower_for_onnx(model.graph)
    assert counts == {"SparseCross": 3} and "SparseCross" not in lowered.op_counts()
    result = export_onnx(model.graph, tmp_path / "m.onnx", model.feeds)
    assert result.max_abs_diff == 0.0
    runner = OnnxRunner(tmp_path / "m.onnx")
    f = model.feeds
    empty_rows = {
        "codes": np.full((4, 3), -1, np.int64),
        "level": f["level"][:4],
        "ids_indices": np.zeros((0, 2), np.int64),
        "ids_values": np.zeros(0, np.int64),
        "ids_shape": np.array([4, 3], np.int64),
    }
    no_rows = {**{k: v[:0] for k, v in f.items()}, "ids_shape": np.array([0, 3], np.int64)}
    order = np.random.default_rng(0).permutation(len(f["ids_values"]))
    order[: len(order) // 2] = np.sort(order[: len(order) // 2])  # a sorted run, then not
    shuffled = {**f, "ids_indices": f["ids_indices"][order], "ids_values": f["ids_values"][order]}
    for feeds in (f, empty_rows, no_rows, shuffled):
        original = model.run_original(feeds)
        for got in (GraphRunner(lowered)(feeds), runner.run(runner.prepare(feeds))):
            for key, value in original.items():
                assert np.array_equal(np.asarray(got[key]), value), key
    assert model.run_original(empty_rows)["pair_shape"].tolist() == [4, 0]
    assert model.run_original(f)["pair_shape"][1] == 6  # 3 codes x 2 levels
    assert 0 < len(model.run_original(shuffled)["client_values"]) < len(order) * 2


def test_segment_reductions_and_self_reshape_export(tmp_path: Path) -> None:
    """SegmentMax/SegmentMin have no working tf2onnx handler (integer data fails, an empty
    segment gives -inf); a reshape to x's own dims, left alone, is merged by tf2onnx into the
    reshape before it and fails in onnxruntime."""
    model = segment_history()
    result = export_onnx(model.graph, tmp_path / "seg.onnx", model.feeds)
    assert result.lowered == {
        "SegmentMax": 1,
        "SegmentMin": 1,
        "SparseSegmentMean": 1,
        "SparseSegmentSum": 1,
        "Reshape": 1,
    }
    assert result.max_abs_diff <= 1e-5 and result.opset >= 18
    assert set(result.parity) == {"score", "lengths", "lowest", "pooled", "summed"}
    assert not {"SegmentMax", "SegmentMin"} & set(result.onnx_ops)
    assert not {"TopK", "Unique"} & set(result.onnx_ops)  # tf2onnx's sparse-segment handler


def test_onnxruntime_failure_is_an_export_error(tmp_path: Path, monkeypatch) -> None:
    """Without dropping the self-reshape, tf2onnx's reshape merge breaks the model: the export
    says so (an ExportError, which rebuild records as a note) and writes nothing."""
    import recadvisor.model.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "_drop_self_reshapes", lambda graph, graph_def, static: 0)
    model = segment_history()
    with pytest.raises(ExportError, match="fails on the sample rows"):
        export_onnx(model.graph, tmp_path / "seg.onnx", model.feeds)
    assert not (tmp_path / "seg.onnx").exists()


def test_lowered_segment_reductions_match_tensorflow() -> None:
    """Empty segments give 0 (row 3 has no ids), negative values stay, and a batch with no ids
    gives no segments."""
    model = segment_history()
    lowered, counts = lower_for_onnx(model.graph)
    assert counts["SegmentMax"] == 1 and counts["SegmentMin"] == 1
    ops = lowered.op_counts()
    assert not {"SegmentMax", "SegmentMin", "SparseSegmentMean", "SparseSegmentSum"} & set(ops)
    packed = [
        n
        for n in lowered.graph_def.node
        if n.op == "Reshape" and lowered.nodes[n.input[1].split(":")[0]].op == "Pack"
    ]
    assert counts["Reshape"] == 1 and len(packed) == 1  # the swapped dims stay a Reshape
    run_lowered, run_graph = GraphRunner(lowered), GraphRunner(model.graph)
    empty = {"hist": np.full((4, 5), -1, np.int64), "x": model.feeds["x"][:4]}
    for feeds in (model.feeds, empty):
        got, want = run_lowered(feeds), run_graph(feeds)
        for key in want:  # shapes included (empty outputs too); max/min exact, sums to 1 ulp
            np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]), rtol=1e-6)
            assert np.shape(got[key]) == np.shape(want[key])
    out = run_lowered(model.feeds)
    assert np.asarray(out["lowest"])[3] == 0.0 and not np.asarray(out["pooled"])[3].any()
