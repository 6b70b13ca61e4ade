"""ONNX lowering of ``SparseReshape``: tf2onnx divides by the shapes' dimensions, so a sparse
tensor with a zero dimension (a crossed column with no value in any row of the batch, any
column in an empty batch) used to stop onnxruntime ("Integer division by zero")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recadvisor.model.freeze import freeze
from recadvisor.model.load import load_model
from recadvisor.model.onnx_export import export_onnx, find_onnx_blockers, lower_for_onnx
from recadvisor.model.runtime import GraphRunner
from recadvisor.tfimport import import_tf
from tests.rewrite.fixtures_contract import ContractModel

pytestmark = pytest.mark.slow  # a saved model and a tf2onnx conversion (~10 s)


@pytest.fixture(scope="module")
def reshaped_cross(tmp_path_factory: pytest.TempPathFactory) -> ContractModel:
    """``codes`` ``[N, 4]`` (-1 dropped: 0 to 4 values a row) as a sparse tensor, reshaped to
    ``[-1, 2]`` (an output: a real reshape), and crossed with ``day`` ``[N, 1]`` into an
    embedding through ``safe_embedding_lookup_sparse`` (which reshapes the cross's ``[N, W]``
    ids onto themselves; ``W`` is 0 when no row has a code)."""
    tf = import_tf()
    module = tf.Module()
    module.emb = tf.Variable(np.random.default_rng(3).normal(size=(30, 2)).astype(np.float32))
    specs = {
        "codes": tf.TensorSpec([None, 4], tf.int64, name="codes"),
        "day": tf.TensorSpec([None, 1], tf.int64, name="day"),
    }

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        x = f["codes"]
        where = tf.where(tf.not_equal(x, -1))
        codes = tf.SparseTensor(where, tf.gather_nd(x, where), tf.shape(x, out_type=tf.int64))
        pairs = tf.sparse.reshape(codes, [-1, 2])
        crossed = tf.sparse.cross_hashed([codes, f["day"]], num_buckets=30)
        pooled = tf.nn.safe_embedding_lookup_sparse(module.emb, crossed, combiner="mean")
        return {
            "pair_indices": pairs.indices,
            "pair_shape": pairs.dense_shape,
            "score": tf.reduce_sum(pooled, axis=1),
        }

    module.serve = serve
    path = tmp_path_factory.mktemp("reshaped_cross")
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    rng = np.random.default_rng(4)
    codes = rng.choice([-1, -1, 3, 7, 2**40], (32, 4)).astype(np.int64)
    codes[:3] = -1
    feeds = {"codes": codes, "day": rng.integers(0, 7, (32, 1)).astype(np.int64)}
    loaded = load_model(path)
    return ContractModel(path, loaded, freeze(loaded), feeds, np.zeros(32, np.int64))


def _run_both(
    model: ContractModel, lowered: Any, runner: Any, feeds: dict[str, np.ndarray]
) -> None:
    original = model.run_original(feeds)
    for got in (GraphRunner(lowered)(feeds), runner.run(runner.prepare(feeds))):
        for key, value in original.items():
            np.testing.assert_allclose(np.asarray(got[key]), value, rtol=0, atol=1e-6)
            assert np.asarray(got[key]).shape == value.shape, key


def test_sparse_reshape_runs_on_zero_dimensions(
    reshaped_cross: ContractModel, tmp_path: Path
) -> None:
    """The embedding's reshape onto the same 2-D shape is dropped (its readers read its
    inputs), the real one keeps its node with zero dimensions raised to 1; both give
    TensorFlow's results, also for a one-row batch with no code (the cross is ``[1, 0]``).
    (An empty batch runs in the lowered graph; onnxruntime stops on it later, in tf2onnx's
    segment sum, whose segment count is the largest id + 1.)"""
    from recadvisor.bench import OnnxRunner

    model = reshaped_cross
    assert find_onnx_blockers(model.graph) == []
    before = model.graph.op_counts()["SparseReshape"]
    lowered, counts = lower_for_onnx(model.graph)
    assert counts["SparseReshape"] == before >= 2
    assert lowered.op_counts().get("SparseReshape", 0) == 1  # only tf.sparse.reshape is left
    result = export_onnx(model.graph, tmp_path / "m.onnx", model.feeds)
    assert result.max_abs_diff <= 1e-6
    runner = OnnxRunner(tmp_path / "m.onnx")
    f = model.feeds
    no_code = {"codes": np.full((1, 4), -1, np.int64), "day": f["day"][:1]}
    for feeds in (f, no_code):
        _run_both(model, lowered, runner, feeds)
    empty = {k: v[:0] for k, v in f.items()}
    assert GraphRunner(lowered)(empty)["pair_shape"].tolist() == [0, 2]
    assert model.run_original(no_code)["pair_shape"].tolist() == [2, 2]
