"""grappler_optimize: zero-bias Dense layers get their MatMul+BiasAdd+Relu fusion back."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from recadvisor.errors import PlanError
from recadvisor.model.freeze import freeze
from recadvisor.model.graph import ModelGraph
from recadvisor.model.load import load_model
from recadvisor.model.runtime import GraphRunner
from recadvisor.rewrite.base import PassRefused
from recadvisor.rewrite.grappler_optimize import non_portable_nodes
from recadvisor.rewrite.registry import get_pass
from recadvisor.tfimport import import_tf
from tests.rewrite.conftest import TinyModel, apply_pass, max_diff

FEEDS = {"x": np.random.default_rng(0).normal(size=(8, 6)).astype(np.float32)}


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> ModelGraph:
    """Two Dense+ReLU layers with all-zero biases (like a freshly initialised Keras model)."""
    tf = import_tf()
    rng = np.random.default_rng(0)
    module = tf.Module()
    module.w1 = tf.Variable(rng.normal(size=(6, 8)).astype(np.float32))
    module.b1 = tf.Variable(np.zeros(8, np.float32))
    module.w2 = tf.Variable(rng.normal(size=(8, 4)).astype(np.float32))
    module.b2 = tf.Variable(np.zeros(4, np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="x")])
    def serve(x: object) -> dict:
        h = tf.nn.relu(tf.nn.bias_add(tf.matmul(x, module.w1), module.b1))
        return {"y": tf.nn.relu(tf.nn.bias_add(tf.matmul(h, module.w2), module.b2))}

    module.serve = serve
    path = Path(tmp_path_factory.mktemp("mlp")) / "model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    graph = freeze(load_model(path))
    return apply_pass("strip_control_deps", graph, FEEDS).graph


def _executed_ops(graph: ModelGraph) -> Counter[str]:
    """Op types TensorFlow actually ran (after its own load-time Grappler and oneDNN passes)."""
    from tensorflow.python.eager import context

    runner = GraphRunner(graph)
    ctx = context.context()
    ctx.enable_run_metadata()
    try:
        runner(FEEDS)
        meta = ctx.export_run_metadata()
    finally:
        ctx.disable_run_metadata()
    return Counter(n.op for g in meta.partition_graphs for n in g.node)


def test_fuses_matmul_bias_relu(mlp: ModelGraph) -> None:
    result = apply_pass("grappler_optimize", mlp, FEEDS)
    after = result.graph
    assert mlp.op_counts()["MatMul"] == 2 and mlp.op_counts()["Relu"] == 2
    counts = after.op_counts()
    assert counts.get("_FusedMatMul") == 2
    assert "MatMul" not in counts and "Relu" not in counts and "BiasAdd" not in counts
    assert result.stats["fused_matmuls"] == 2
    assert set(after.input_nodes.values()) <= set(after.nodes)
    assert set(after.output_nodes.values()) <= set(after.nodes)
    assert max_diff(mlp, after, FEEDS) <= 1e-5


def test_fusion_lost_without_it_and_back_with_it(mlp: ModelGraph) -> None:
    """Why: load-time constant folding drops the zero BiasAdd, leaving an unfusable MatMul+Relu."""
    before = _executed_ops(mlp)
    if not before:
        pytest.skip("run metadata not available in this TensorFlow build")
    after = _executed_ops(apply_pass("grappler_optimize", mlp, FEEDS).graph)
    assert before["Relu"] == 2  # separate activations: the fusion was lost
    assert after["Relu"] == 0
    assert sum(v for k, v in after.items() if "FusedMatMul" in k) == 2


def test_fuse_false(mlp: ModelGraph) -> None:
    result = apply_pass("grappler_optimize", mlp, FEEDS, {"fuse": False})
    assert "_FusedMatMul" not in result.graph.op_counts()
    assert "remap" not in result.stats["optimizers"]


def test_portable_check() -> None:
    tf = import_tf()
    graph_def = tf.compat.v1.GraphDef()
    for name, op, fused in [
        ("ok", "_FusedMatMul", [b"BiasAdd", b"Relu"]),
        ("gelu", "_FusedMatMul", [b"BiasAdd", b"GeluExact"]),
        ("mkl", "_MklLayerNorm", []),
        ("plain", "MatMul", []),
    ]:
        node = graph_def.node.add(name=name, op=op)
        if fused:
            node.attr["fused_ops"].list.s.extend(fused)
    bad = non_portable_nodes(graph_def, before_ops={"MatMul"})
    assert len(bad) == 2 and "gelu" in bad[0] and "mkl" in bad[1]


def test_refuses_when_nothing_to_do(tf1_ranker: TinyModel) -> None:
    stripped = apply_pass("strip_control_deps", tf1_ranker.graph, tf1_ranker.feeds).graph
    with pytest.raises(PassRefused, match="nothing to optimize"):
        apply_pass("grappler_optimize", stripped, tf1_ranker.feeds)


def test_bad_params(mlp: ModelGraph) -> None:
    with pytest.raises(PlanError):
        get_pass("grappler_optimize").check_params({"fuse": "yes"}, mlp)
    with pytest.raises(PlanError):
        get_pass("grappler_optimize").check_params({"level": 3}, mlp)
