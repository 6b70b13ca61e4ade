"""ONNX lowering of feature-column embedding pooling (``safe_embedding_lookup_sparse`` over ids
``to_sparse_input`` took from a dense tensor) as a dense masked reduction
(:mod:`recadvisor.model.sparse_pooling`): same outputs as TensorFlow for empty rows, ignored and
negative ids, each combiner, the sequence layout and a zero-row batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recadvisor.model.freeze import freeze
from recadvisor.model.load import load_model
from recadvisor.model.onnx_export import export_onnx, lower_for_onnx
from recadvisor.model.runtime import GraphRunner
from recadvisor.model.sparse_pooling import (
    find_dense_scatters,
    find_sequence_lengths,
    find_sparse_poolings,
)
from recadvisor.tfimport import import_tf
from tests.rewrite.fixtures_contract import ContractModel

pytestmark = pytest.mark.slow  # a saved model and a tf2onnx conversion (~10 s)

ROWS, WIDTH, BUCKETS = 48, 5, 13


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> ContractModel:
    """``ids`` ``[N, 5]`` (-1 ignored, as ``to_sparse_input`` does it) hashed by ``mod 13``
    with a sentinel 99 mapped to -4 (pruned as invalid), pooled three ways per row; ``seq``
    ``[N, 3]`` reshaped like a sequence column (``[N, 3, 1]`` then ``[N * 3, 1]``), one
    embedding per position, and as ``[N, longest row]`` (a client-split string's shape) pooled
    per row; an ``[N, 1]`` column shared with a variable table read through
    ``Unique`` (``embedding_lookup_sparse``'s TF1 form, spelled here by hand); and ``small``
    ``[N, 1]`` whose ignored -1 is restored to an id after the gather (ids_upstream's form),
    pooled and one-hot as an indicator."""
    tf = import_tf()
    rng = np.random.default_rng(11)
    module = tf.Module()
    module.emb = tf.Variable(rng.normal(size=(BUCKETS, 3)).astype(np.float32))
    module.vocab = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            np.array([5, 12, 0], np.int64), np.array([2, 0, 7], np.int64)
        ),
        -1,
    )
    specs = {
        "ids": tf.TensorSpec([None, WIDTH], tf.int64, name="ids"),
        "seq": tf.TensorSpec([None, 3], tf.int64, name="seq"),
        "one": tf.TensorSpec([None, 1], tf.int64, name="one"),
        "small": tf.TensorSpec([None, 1], tf.int64, name="small"),
    }

    def to_sparse(x: object) -> object:
        where = tf.where(tf.not_equal(x, -1))
        values = tf.gather_nd(x, where)
        values = tf.where(tf.equal(values, 99), tf.constant(-4, tf.int64), values % BUCKETS)
        return tf.SparseTensor(where, values, tf.shape(x, out_type=tf.int64))

    def to_sparse_restored(x: object) -> object:
        """ids_upstream's form: the mask's ignored id -1 restored to an id (12) after the
        gather, where the mask has already dropped it."""
        where = tf.where(tf.not_equal(x, -1))
        values = tf.gather_nd(x, where)
        values = tf.where(tf.equal(values, -1), tf.constant(12, tf.int64), values)
        return tf.SparseTensor(where, values, tf.shape(x, out_type=tf.int64))

    def unique_mean(ids: object) -> object:
        kept = tf.sparse.retain(ids, ids.values >= 0)
        sparse = tf.sparse.fill_empty_rows(kept, tf.constant(0, tf.int64))[0]
        flat, idx = tf.unique(sparse.values)
        rows = tf.gather(module.emb, flat)
        return tf.math.segment_mean(tf.gather(rows, idx), sparse.indices[:, 0])

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        ids = to_sparse(f["ids"])
        out = {
            combiner: tf.nn.safe_embedding_lookup_sparse(module.emb, ids, combiner=combiner)
            for combiner in ("mean", "sum", "sqrtn")
        }
        seq = tf.sparse.reshape(
            to_sparse(f["seq"]), tf.concat([tf.shape(f["seq"], tf.int64), [1]], 0)
        )
        out["sequence"] = tf.nn.safe_embedding_lookup_sparse(module.emb, seq, combiner="mean")
        # a sequence column's length: the last present position + 1, zero-padded to N rows
        last = tf.math.segment_max(seq.indices[:, 1] + 1, seq.indices[:, 0])
        rows = tf.shape(f["seq"], out_type=tf.int64)[0]
        padding = tf.zeros(rows - tf.shape(last, out_type=tf.int64), tf.int64)
        out["length"] = tf.concat([last, padding], 0)
        out["single"] = tf.nn.safe_embedding_lookup_sparse(module.emb, to_sparse(f["one"]))
        # an indicator column's ids: the sparse form back to dense, -1 where nothing is
        out["indicator"] = tf.sparse.to_dense(to_sparse(f["ids"]), default_value=-1)
        # the width computed as the longest row (a client-split string's sparse form)
        split = to_sparse(f["seq"])
        counts = tf.reduce_sum(tf.cast(tf.not_equal(f["seq"], -1), tf.int64), axis=1)
        width = tf.reduce_max(tf.concat([counts, tf.zeros([1], tf.int64)], 0))
        rows = tf.shape(f["seq"], out_type=tf.int64)[0]
        split = tf.SparseTensor(split.indices, split.values, tf.stack([rows, width]))
        out["split"] = tf.nn.safe_embedding_lookup_sparse(module.emb, split, combiner="sqrtn")
        out["unique_unmatched"] = unique_mean(to_sparse(f["one"]))
        restored = to_sparse_restored(f["small"])
        out["restored"] = tf.nn.safe_embedding_lookup_sparse(module.emb, restored)
        where = tf.where(tf.not_equal(f["small"], -1))
        looked_up = tf.SparseTensor(
            where,
            module.vocab.lookup(tf.gather_nd(f["small"], where)),
            tf.shape(f["small"], out_type=tf.int64),
        )
        out["vocab"] = tf.nn.safe_embedding_lookup_sparse(module.emb, looked_up)
        restored_ids = tf.sparse.to_dense(to_sparse_restored(f["small"]), default_value=-1)
        out["restored_indicator"] = tf.reduce_sum(tf.one_hot(restored_ids, BUCKETS), axis=1)
        return out

    module.serve = serve
    path = tmp_path_factory.mktemp("pooled")
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    ids = rng.choice([-1, -1, 3, 20, 99, 7, 2**40], (ROWS, WIDTH)).astype(np.int64)
    ids[:3] = -1  # empty rows
    ids[3] = 99  # only pruned ids: an empty row after pruning
    seq = rng.choice([-1, 4, 99, 30], (ROWS, 3)).astype(np.int64)
    one = rng.choice([-1, 5, 99, 12], (ROWS, 1)).astype(np.int64)
    small = rng.choice([-1, 5, 0, 12, -3], (ROWS, 1)).astype(np.int64)
    feeds = {"ids": ids, "seq": seq, "one": one, "small": small}
    loaded = load_model(path)
    return ContractModel(path, loaded, freeze(loaded), feeds, np.zeros(ROWS, np.int64))


def test_every_pooling_from_dense_ids_is_found(pooled: ContractModel) -> None:
    """The three combiners over ``[N, 5]`` (pooled over axis 1), the sequence layout (no
    pooled axis: one row per position), the computed-width layout and the ``[N, 1]`` column;
    not the hand-written
    ``Unique`` + ``segment_mean`` (no ``Select`` of empty rows after it)."""
    poolings = find_sparse_poolings(pooled.graph)
    found = {(p.combiner, p.pooled_axes, p.x) for p in poolings}
    # [N, 1] and the sequence layout (nothing pooled): no division
    assert {p.x for p in poolings if p.one_per_row} == {"one:0", "seq:0", "small:0"}
    assert found == {
        ("SparseSegmentMean", (1,), "ids:0"),
        ("SparseSegmentSum", (1,), "ids:0"),
        ("SparseSegmentSqrtN", (1,), "ids:0"),
        ("SparseSegmentMean", (), "seq:0"),
        ("SparseSegmentMean", (1,), "one:0"),
        ("SparseSegmentSqrtN", (1,), "seq:0"),
        ("SparseSegmentMean", (1,), "small:0"),
    }
    assert len(poolings) == 8  # two over "small": restored ids, a vocabulary lookup


def test_sequence_length_and_indicator_from_dense_ids_are_found(pooled: ContractModel) -> None:
    """The ``SegmentMax`` of ``indices[:, 1] + 1`` per row over the ``[N, 3, 1]`` reshape, and
    the ``SparseToDense`` of the ``[N, 5]`` ids (``where(mask, f(x), -1)``)."""
    (length,) = find_sequence_lengths(pooled.graph)
    assert (length.x, length.column, length.rank, length.dtype) == ("seq:0", 1, 2, "int64")
    assert [ones for _, ones in length.reshapes] == [1]
    scatters = {s.x: s for s in find_dense_scatters(pooled.graph)}
    assert (scatters["ids:0"].dtype, len(scatters["ids:0"].chain)) == ("int64", 3)
    assert (scatters["small:0"].dtype, len(scatters["small:0"].chain)) == ("int64", 2)


def test_dense_pooling_matches_tensorflow(pooled: ContractModel, tmp_path: Path) -> None:
    """The lowered graph (TensorFlow) and the ONNX export (onnxruntime) give the original's
    outputs and shapes on the sample, on a one-row request with nothing but ignored ids, and
    the lowered graph on an empty batch; the sparse fill and segment ops are gone but one."""
    from recadvisor.bench import OnnxRunner

    lowered, counts = lower_for_onnx(pooled.graph)
    assert counts["SparseSegmentPooling"] == 8 and counts["SegmentMax"] == 1
    assert counts["SparseToDense"] == 2
    # the select restoring the id the mask drops is not copied: the restored pooling gathers
    # where(x >= 0, x, zero row), and the indicator one-hots x itself (-1 and -3 both give a
    # row of zeros). No mask AND where f(ignored) is an invalid id: the restored -1 and the
    # vocabulary's default for -1; kept for "ids" (f(-1) = -1 mod 13 = 12)
    poolings = find_sparse_poolings(pooled.graph)
    for pooling in poolings:
        made = {n.op for n in lowered.graph_def.node if n.name.startswith(pooling.select + "/onnx")}
        assert made >= {"GreaterEqual", "SelectV2", "GatherV2"}
        masked = f"{pooling.select}/onnx_valid" in lowered.nodes
        assert masked == (pooling.x != "small:0"), pooling.x
        if pooling.x == "small:0" and len(pooling.chain) == 2:
            assert "Equal" not in made
    scatter = next(s for s in find_dense_scatters(pooled.graph) if s.x == "small:0")
    assert not [n for n in lowered.graph_def.node if n.name.startswith(scatter.node + "/")]
    assert not {"SegmentMax", "SparseToDense"} & set(lowered.op_counts())
    assert lowered.op_counts().get("SparseFillEmptyRows", 0) == 1  # the hand-written one
    result = export_onnx(pooled.graph, tmp_path / "m.onnx", pooled.feeds)
    assert result.max_abs_diff <= 1e-6
    runner = OnnxRunner(tmp_path / "m.onnx")
    f = pooled.feeds
    nothing = {k: np.full_like(v[:1], -1) for k, v in f.items()}
    for feeds in (f, nothing):
        original = pooled.run_original(feeds)
        for got in (GraphRunner(lowered)(feeds), runner.run(runner.prepare(feeds))):
            for key, value in original.items():
                assert np.asarray(got[key]).shape == value.shape, key
                np.testing.assert_allclose(np.asarray(got[key]), value, rtol=0, atol=1e-6)
    empty = {k: v[:0] for k, v in f.items()}
    original = pooled.run_original(empty)
    got = GraphRunner(lowered)(empty)
    for key in ("mean", "sequence", "single", "split"):
        assert np.asarray(got[key]).shape == original[key].shape, key
        assert original[key].shape[0] == 0 and original[key].shape[-1] == 3, key
    assert np.asarray(got["length"]).shape == original["length"].shape == (0,)


@pytest.fixture(scope="module")
def crossed(tmp_path_factory: pytest.TempPathFactory) -> ContractModel:
    """A hashed cross of ``[N, 1]`` columns in every form a feature column gives it: ``city``
    through ``to_sparse_input`` (-1 ignored: no cross in that row), ``age`` bucketized with
    its sparse form built from shapes (``[range(N), 0]``, every row present) and ``day`` dense;
    read back as an indicator (``SparseToDense``, one-hot, sum). And a cross of a multi-valued
    ``[N, 3]`` column, which keeps the generic lowering."""
    tf = import_tf()
    specs = {
        "city": tf.TensorSpec([None, 1], tf.int64, name="city"),
        "age": tf.TensorSpec([None, 1], tf.float32, name="age"),
        "day": tf.TensorSpec([None, 1], tf.int64, name="day"),
        "tags": tf.TensorSpec([None, 3], tf.int64, name="tags"),
    }

    def to_sparse(x: object) -> object:
        where = tf.where(tf.not_equal(x, -1))
        return tf.SparseTensor(where, tf.gather_nd(x, where), tf.shape(x, out_type=tf.int64))

    def bucketized(x: object) -> object:
        buckets = tf.cast(tf.raw_ops.Bucketize(input=x, boundaries=[18.0, 30.0, 50.0]), tf.int64)
        n = tf.shape(buckets, out_type=tf.int64)[0]
        rows = tf.reshape(tf.range(n), [-1, 1])
        indices = tf.concat([rows, tf.zeros_like(rows)], axis=1)
        return tf.SparseTensor(indices, tf.reshape(buckets, [-1]), tf.stack([n, 1]))

    def bucketized_fc(x: object) -> object:
        """As feature columns' BucketizedColumn builds it for one column: a Transpose of the
        stacked row ids and zeros, values offset by bucket count x column (0 here)."""
        buckets = tf.cast(tf.raw_ops.Bucketize(input=x, boundaries=[18.0, 30.0, 50.0]), tf.int64)
        n = tf.shape(buckets, out_type=tf.int64)[0]
        rows = tf.reshape(tf.expand_dims(tf.range(n), 1), [-1])
        zeros = tf.tile(tf.constant([0], tf.int64), tf.expand_dims(n, 0))
        indices = tf.transpose(tf.stack([rows, zeros]), [1, 0])
        values = tf.reshape(buckets, [-1]) + 4 * zeros
        return tf.SparseTensor(indices, values, tf.stack([n, 1]))

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        ages = bucketized_fc(f["age"])
        age_city = tf.sparse.cross_hashed([to_sparse(f["city"]), ages], num_buckets=16)
        age_ids = tf.sparse.to_dense(ages, default_value=-1)
        cross = tf.sparse.cross_hashed(
            [to_sparse(f["city"]), bucketized(f["age"]), f["day"]], num_buckets=16
        )
        ids = tf.sparse.to_dense(cross, default_value=-1)
        indicator = tf.reduce_sum(tf.one_hot(ids, 16), axis=1)
        tagged = tf.sparse.cross_hashed([to_sparse(f["tags"]), f["day"]], num_buckets=16)
        dense_cross = tf.sparse.cross_hashed([f["day"], f["city"]], num_buckets=16)
        dense_ids = tf.sparse.to_dense(dense_cross, default_value=-1)
        return {
            "dense_indicator": tf.reduce_sum(tf.one_hot(dense_ids, 16), axis=1),
            "age_indicator": tf.reduce_sum(tf.one_hot(age_ids, 4), axis=1),
            "age_city": tf.sparse.to_dense(age_city, default_value=-1),
            "indicator": indicator,
            "cross_shape": cross.dense_shape,
            "cross_values": cross.values,
            "tagged": tf.sparse.to_dense(tagged, default_value=-1),
        }

    module = tf.Module()
    module.serve = serve
    path = tmp_path_factory.mktemp("crossed")
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    rng = np.random.default_rng(5)
    feeds = {
        "city": rng.choice([-1, 3, 2**40, 7], (ROWS, 1)).astype(np.int64),
        "age": rng.uniform(10, 70, (ROWS, 1)).astype(np.float32),
        "day": rng.integers(0, 7, (ROWS, 1)).astype(np.int64),
        "tags": rng.choice([-1, 4, 9], (ROWS, 3)).astype(np.int64),
    }
    loaded = load_model(path)
    return ContractModel(path, loaded, freeze(loaded), feeds, np.zeros(ROWS, np.int64))


def test_one_value_per_row_cross_matches_tensorflow(crossed: ContractModel, tmp_path: Path) -> None:
    """The cross of one-value columns is found (the multi-valued one is not) and lowered
    bit-exactly, its indicator folded into one ``OneHot``: same values, indices and ``[N, 1]``
    / ``[N, 0]`` shape as TensorFlow on the sample, on a one-row request whose city is ignored
    (nothing crosses) and, in the lowered graph, on an empty batch."""
    from recadvisor.bench import OnnxRunner
    from recadvisor.model.queries import static_shapes
    from recadvisor.model.sparse_pooling import every_row_once, one_per_row_cross

    graph = crossed.graph
    crosses = [n for n in graph.graph_def.node if n.op == "SparseCross"]
    shapes = static_shapes(graph)
    found = sorted(one_per_row_cross(graph, n, shapes) for n in crosses)
    assert found == [False, False, True, True]  # the dense-only cross is not "one per row"
    fc_form = [
        every_row_once(graph, n.input[0], n.input[1])
        for n in graph.graph_def.node
        if n.op == "SparseToDense"
    ]
    assert sorted(fc_form) == [False] * 4 + [True]  # the bucketized column's own
    lowered, counts = lower_for_onnx(graph)
    assert counts["SparseCross"] == 4 and "SparseCross" not in lowered.op_counts()
    # the indicator over the one-per-row cross is one OneHot of [N] ids: no [N, W, 16] sum;
    # the bucketized column's SparseToDense is a reshape of its values
    assert lowered.op_counts().get("SparseToDense") == 2  # the multi-valued cross's, age_city
    assert lowered.op_counts().get("OneHot") == 3  # the dense-only cross's folded too
    # the bucketized values' "+ 4 * Tile([0], [n])" is gone; its one-hot needs no remap of
    # negative ids (buckets are never negative), the dense-only cross's none of absent rows
    assert "Tile" not in lowered.op_counts()
    made = [n.name.rsplit("/", 1)[-1] for n in lowered.graph_def.node]
    assert "onnx_negative" not in made and made.count("onnx_indicator_ids") == 1
    result = export_onnx(graph, tmp_path / "m.onnx", crossed.feeds)
    assert result.max_abs_diff == 0.0
    runner = OnnxRunner(tmp_path / "m.onnx")
    f = crossed.feeds
    nothing = {**{k: v[:1] for k, v in f.items()}, "city": np.full((1, 1), -1, np.int64)}
    assert crossed.run_original(nothing)["cross_shape"].tolist() == [1, 0]
    for feeds in (f, nothing):
        original = crossed.run_original(feeds)
        for got in (GraphRunner(lowered)(feeds), runner.run(runner.prepare(feeds))):
            for key, value in original.items():
                assert np.asarray(got[key]).shape == value.shape, key
                np.testing.assert_array_equal(np.asarray(got[key]), value, err_msg=key)
    empty = {k: v[:0] for k, v in f.items()}
    original = crossed.run_original(empty)
    got = GraphRunner(lowered)(empty)
    for key, value in original.items():
        assert np.asarray(got[key]).shape == value.shape, key
