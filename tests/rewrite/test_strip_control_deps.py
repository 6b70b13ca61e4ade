"""strip_control_deps: parity, no NoOp/control edges left, pruning works after it, asserts kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recadvisor.model.freeze import freeze
from recadvisor.model.graph import ModelGraph, is_control_input
from recadvisor.model.load import load_model
from recadvisor.model.runtime import GraphRunner
from recadvisor.rewrite.base import PassRefused
from recadvisor.tfimport import import_tf
from tests.rewrite.conftest import TinyModel, apply_pass, max_diff


def _control_inputs(graph: ModelGraph) -> int:
    return sum(is_control_input(i) for n in graph.graph_def.node for i in n.input)


def test_strips_control_edges_noops_and_identity_chains(ranker: TinyModel) -> None:
    before = ranker.graph
    result = apply_pass("strip_control_deps", before, ranker.feeds)
    after = result.graph
    assert _control_inputs(before) > 0 and before.op_counts()["NoOp"] == 3
    assert _control_inputs(after) == 0
    assert "NoOp" not in after.op_counts()
    # only the two signature output nodes remain Identity
    assert after.op_counts()["Identity"] == 2
    assert result.stats["noops_removed"] == 3
    assert result.stats["nodes_removed"] == len(before.graph_def.node) - len(after.graph_def.node)
    assert max_diff(before, after, ranker.feeds) == 0.0
    assert after.signature == before.signature and after.tables.keys() == before.tables.keys()


def test_pruning_needs_it(ranker: TinyModel, ranker_stripped: ModelGraph) -> None:
    keep = {"keep": ["cvr"]}
    pruned_raw = apply_pass("prune_outputs", ranker.graph, ranker.feeds, keep).graph
    pruned = apply_pass("prune_outputs", ranker_stripped, ranker.feeds, keep).graph
    # with control edges every gather and lookup stays alive for cvr too
    assert pruned_raw.op_counts()["LookupTableFindV2"] == 3
    assert pruned_raw.op_counts()["GatherV2"] == 4
    # cvr reads the deep user and item embeddings only
    assert pruned.op_counts()["LookupTableFindV2"] == 1
    assert pruned.op_counts()["GatherV2"] == 2
    assert len(pruned.graph_def.node) < len(pruned_raw.graph_def.node) // 2


def test_second_run_refused(ranker_stripped: ModelGraph, ranker: TinyModel) -> None:
    with pytest.raises(PassRefused):
        apply_pass("strip_control_deps", ranker_stripped, ranker.feeds)


@pytest.fixture(scope="module")
def assert_model(tmp_path_factory: pytest.TempPathFactory) -> ModelGraph:
    """y = x @ w with an Assert(x >= 0) that TF2 ties to the output (lowered to Switch/Merge)."""
    tf = import_tf()
    module = tf.Module()
    module.w = tf.Variable([[2.0]])

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def serve(x: object) -> dict:
        tf.debugging.assert_greater_equal(x, 0.0, message="x must be >= 0")
        return {"y": tf.matmul(x, module.w)}

    module.serve = serve
    path = Path(tmp_path_factory.mktemp("assert_model")) / "model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return freeze(load_model(path))


def test_keeps_assert_and_control_flow(assert_model: ModelGraph) -> None:
    tf = import_tf()
    feeds = {"x": np.array([[1.0], [3.0]], np.float32)}
    result = apply_pass("strip_control_deps", assert_model, feeds)
    after = result.graph
    assert result.stats["control_inputs_kept"] >= 1
    assert result.stats["control_flow_nodes_kept"] > 0
    assert "Assert" in after.op_counts() and "Merge" in after.op_counts()
    # the output still waits for the assert's conditional
    assert any(assert_model.nodes[n].op == "Assert" for n in after.reachable_from_outputs())
    out = GraphRunner(after)(feeds)["y"]
    np.testing.assert_array_equal(out, [[2.0], [6.0]])  # not the empty output of a dead branch
    with pytest.raises(tf.errors.InvalidArgumentError, match="x must be >= 0"):
        GraphRunner(after)({"x": np.array([[-1.0]], np.float32)})
