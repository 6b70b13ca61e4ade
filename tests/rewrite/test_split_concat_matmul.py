"""split_concat_matmul: DIN-style attention layer split, folded and hoisted; refusals; rollback.

``din_like``: ``query`` [N, 4] and ``keys`` [N, 5, 4] (float inputs, no strings). The attention
layer is DIN's: ``Reshape(concat([q, k, q - k, q * k], 2), [-1, 16]) @ W + b`` with ``q`` the
query broadcast over the 5 positions, then ReLU, a sum over the positions and a top layer over
``concat([query, head, tail, query - head], 1)`` (``head``/``tail``: the pooled vector's two
halves; rank 2: the difference folds, nothing is hoisted).

``not_splittable``: a concat on axis 0 before a MatMul, a weight computed from an input, and
a plain concat of two inputs (splitting it would save nothing): nothing to rewrite.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recadvisor.errors import PlanError
from recadvisor.model.edits import source_through_identity
from recadvisor.model.freeze import freeze
from recadvisor.model.graph import ModelGraph
from recadvisor.model.load import load_model
from recadvisor.model.runtime import GraphRunner
from recadvisor.plan import preset_plan
from recadvisor.rewrite import split_concat_matmul
from recadvisor.rewrite.base import PassRefused, RewriteContext
from recadvisor.rewrite.pipeline import run_pipeline
from recadvisor.rewrite.split_concat_matmul import SplitConcatMatMulPass
from recadvisor.tfimport import import_tf

N_ROWS, HISTORY, DIM, HIDDEN = 64, 5, 4, 6


def _save_and_freeze(
    tmp: Path, name: str, build: Callable[[Any], tuple[Any, Any]]
) -> tuple[ModelGraph, dict[str, np.ndarray]]:
    """Save ``build(tf)`` -> (module, serving function), reload it, freeze it; sample feeds."""
    tf = import_tf()
    module, serve = build(tf)
    path = tmp / name
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    graph = freeze(load_model(path))
    rng = np.random.default_rng(1)
    feeds = {
        key: rng.normal(size=(N_ROWS, *[d or N_ROWS for d in spec.shape[1:]])).astype(np.float32)
        for key, spec in graph.signature.inputs.items()
    }
    return graph, feeds


def _din_like(tf: Any) -> tuple[Any, Any]:
    rng = np.random.default_rng(0)
    module = tf.Module()
    module.w_att = tf.Variable(rng.normal(size=(4 * DIM, HIDDEN)).astype(np.float32))
    module.b_att = tf.Variable(rng.normal(size=(HIDDEN,)).astype(np.float32))
    module.w_top = tf.Variable(rng.normal(size=(DIM + HIDDEN + DIM, 1)).astype(np.float32))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, DIM], tf.float32, name="query"),
            tf.TensorSpec([None, HISTORY, DIM], tf.float32, name="keys"),
        ]
    )
    def serve(query: Any, keys: Any) -> dict[str, Any]:
        q = tf.broadcast_to(query[:, None, :], tf.shape(keys))
        att_in = tf.concat([q, keys, q - keys, q * keys], axis=2)
        hidden = tf.matmul(tf.reshape(att_in, [-1, 4 * DIM]), module.w_att) + module.b_att
        hidden = tf.nn.relu(tf.reshape(hidden, [-1, HISTORY, HIDDEN]))
        pooled = tf.reduce_sum(hidden, axis=1)
        head, tail = pooled[:, :DIM], pooled[:, DIM:]
        top_in = tf.concat([query, head, tail, query - head], axis=1)
        return {"score": tf.sigmoid(tf.matmul(top_in, module.w_top))}

    return module, serve


def _not_splittable(tf: Any) -> tuple[Any, Any]:
    rng = np.random.default_rng(0)
    module = tf.Module()
    module.w = tf.Variable(rng.normal(size=(DIM, 3)).astype(np.float32))
    module.w2 = tf.Variable(rng.normal(size=(2 * DIM, 3)).astype(np.float32))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, DIM], tf.float32, name="a"),
            tf.TensorSpec([None, DIM], tf.float32, name="b"),
        ]
    )
    def serve(a: Any, b: Any) -> dict[str, Any]:
        rows = tf.matmul(tf.concat([a, a - b], axis=0), module.w)  # concat on axis 0
        scaled = module.w2 * tf.reduce_mean(b)  # the weight is computed, not a Const
        cols = tf.matmul(tf.concat([a, a - b], axis=1), scaled)
        plain = tf.matmul(tf.concat([a, b], axis=1), module.w2)  # nothing folds
        return {"rows": rows, "cols": cols, "plain": plain}

    return module, serve


@pytest.fixture(scope="module")
def din_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelGraph, dict[str, np.ndarray]]:
    return _save_and_freeze(tmp_path_factory.mktemp("split"), "din_like", _din_like)


def _ctx(feeds: dict[str, np.ndarray]) -> RewriteContext:
    return RewriteContext(feeds, feeds)


def _max_diff(a: ModelGraph, b: ModelGraph, feeds: dict[str, np.ndarray]) -> float:
    out_a, out_b = GraphRunner(a)(feeds), GraphRunner(b)(feeds)
    return max(float(np.max(np.abs(out_a[k] - out_b[k]))) for k in out_a)


def test_attention_layer_split_folded_and_hoisted(
    din_like: tuple[ModelGraph, dict[str, np.ndarray]],
) -> None:
    graph, feeds = din_like
    result = SplitConcatMatMulPass().apply(graph, {}, _ctx(feeds))
    new = result.graph
    assert _max_diff(graph, new, feeds) <= 1e-5
    assert result.stats["layers_split"] == 2
    by_width = {layer["width_before"]: layer for layer in result.stats["layers"]}
    # attention: q folded with q - k and hoisted, k folded with q - k; q * k stays per position
    attention = by_width[4 * DIM]
    assert attention["width_after"] == 2 * DIM
    assert attention["per_row_terms"] == 1 and attention["bias_folded"]
    # top: query - head folded into query and head; nothing to hoist in rank 2
    top = by_width[2 * DIM + HIDDEN]
    assert top["width_after"] == DIM + HIDDEN and top["per_row_terms"] == 0
    assert not top["bias_folded"]
    # structure: no concat left, no Sub left, one MatMul per remaining term
    assert graph.op_counts()["ConcatV2"] == 2 and "ConcatV2" not in new.op_counts()
    assert graph.op_counts()["Sub"] == 2 and "Sub" not in new.op_counts()
    # q * k reads the [N, 1, d] query instead of its broadcast, which is gone
    assert result.stats["broadcasts_removed"] == 1 and "BroadcastTo" not in new.op_counts()
    assert new.op_counts()["MatMul"] == 3 + 3
    weights = {
        tuple(n.attr["value"].tensor.tensor_shape.dim[i].size for i in range(2))
        for n in new.graph_def.node
        if n.op == "Const" and n.name.endswith(tuple(f"weight_{i}" for i in range(4)))
    }
    assert weights == {(DIM, HIDDEN), (DIM, 1), (HIDDEN - DIM, 1)}
    # the query's product runs before the broadcast: it reads the [N, 1, d] slice
    hoisted = [
        n
        for n in new.graph_def.node
        if n.op == "MatMul"
        and new.nodes[n.input[0].split(":")[0]].input[0].endswith("strided_slice")
    ]
    assert len(hoisted) == 1
    assert graph.graph_def.node[0] is not new.graph_def.node[0]  # input not mutated
    assert len(graph.graph_def.node) == len(din_like[0].graph_def.node)


def test_per_row_weights_fold_the_query_key_product(
    din_like: tuple[ModelGraph, dict[str, np.ndarray]],
) -> None:
    graph, feeds = din_like
    result = SplitConcatMatMulPass().apply(graph, {"per_row_weights": True}, _ctx(feeds))
    new = result.graph
    assert _max_diff(graph, new, feeds) <= 1e-5
    attention = {layer["width_before"]: layer for layer in result.stats["layers"]}[4 * DIM]
    # k @ (W_k + q[..., None] * W_qk): one product per position, of width d
    assert attention["width_after"] == DIM
    assert new.op_counts()["BatchMatMulV2"] == 1
    matmul = next(n for n in new.graph_def.node if n.op == "BatchMatMulV2")
    assert source_through_identity(new, matmul.input[0]) == new.input_nodes["keys"]
    assert "BroadcastTo" not in new.op_counts() and "ConcatV2" not in new.op_counts()


def test_params_checked(din_like: tuple[ModelGraph, dict[str, np.ndarray]]) -> None:
    graph, feeds = din_like
    with pytest.raises(PlanError, match="unknown params"):
        SplitConcatMatMulPass().apply(graph, {"fold": True}, _ctx(feeds))
    with pytest.raises(PlanError, match="true or false"):
        SplitConcatMatMulPass().check_params({"per_row_weights": "yes"}, graph)


def test_refuses_axis0_concat_and_non_const_weight(tmp_path: Path) -> None:
    graph, feeds = _save_and_freeze(tmp_path, "not_splittable", _not_splittable)
    with pytest.raises(PassRefused) as info:
        SplitConcatMatMulPass().apply(graph, {}, _ctx(feeds))
    message = str(info.value)
    assert "not on the last axis" in message
    assert "weight is not a rank-2 float Const" in message
    assert "no part folds or broadcasts" in message


def test_second_run_finds_no_concat(
    din_like: tuple[ModelGraph, dict[str, np.ndarray]],
) -> None:
    """Once split, the graph has no concat left: a second run finds nothing."""
    graph, feeds = din_like
    once = SplitConcatMatMulPass().apply(graph, {}, _ctx(feeds)).graph
    with pytest.raises(PassRefused, match="no MatMul reads a ConcatV2"):
        SplitConcatMatMulPass().apply(once, {}, _ctx(feeds))


def test_safe_preset_runs_it_and_rolls_back_a_wrong_fold(
    din_like: tuple[ModelGraph, dict[str, np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    graph, feeds = din_like
    plan = preset_plan("safe", graph)
    assert plan.entry("split_concat_matmul").enabled
    assert preset_plan("fast", graph).entry("split_concat_matmul").enabled
    result = run_pipeline(graph, plan, _ctx(feeds), strict=True)
    assert result.record("split_concat_matmul").status == "applied"
    assert _max_diff(graph, result.graph, feeds) <= 1e-5
    # folding q - k as q + k is wrong: the pipeline's parity check must catch it
    monkeypatch.setitem(split_concat_matmul._LINEAR_OPS, "Sub", 1.0)
    broken = run_pipeline(graph, plan, _ctx(feeds))
    record = broken.record("split_concat_matmul")
    assert record.status == "rolled_back" and "max abs diff" in record.reason
    assert _max_diff(graph, broken.graph, feeds) <= 1e-5


def test_onnx_export_parity(
    din_like: tuple[ModelGraph, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    from recadvisor.model.onnx_export import export_onnx

    graph, feeds = din_like
    new = SplitConcatMatMulPass().apply(graph, {}, _ctx(feeds)).graph
    exported = export_onnx(new, tmp_path / "split.onnx", feeds)
    assert exported.max_abs_diff <= 1e-5
    assert exported.onnx_ops["MatMul"] == 6


def test_rebuild_exports_onnx_with_per_row_weights(tmp_path: Path) -> None:
    """The SavedModel keeps the plain split (no BatchMatMulV2: slow in TF at batch 1), while
    model.onnx gets the per-row fold, checked against the final graph."""
    import json

    from recadvisor.rebuild import rebuild

    tf = import_tf()
    module, serve = _din_like(tf)
    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"serving_default": serve})
    feeds = _save_and_freeze(tmp_path, "again", _din_like)[1]
    rebuild(tmp_path / "model", tmp_path / "out", preset="safe", data=feeds, onnx=True)
    report = json.loads((tmp_path / "out" / "rebuild.json").read_text())
    assert any("per_row_weights" in note for note in report["notes"]), report["notes"]
    assert report["onnx"]["max_abs_diff"] <= 1e-5
    saved = freeze(load_model(tmp_path / "out" / "saved_model"))
    assert "BatchMatMulV2" not in saved.op_counts()
    import onnx

    plain = (
        SplitConcatMatMulPass().apply(freeze(load_model(tmp_path / "model")), {}, _ctx(feeds)).graph
    )
    from recadvisor.model.onnx_export import export_onnx

    exported = export_onnx(plain, tmp_path / "plain.onnx", feeds)
    folded = onnx.load(str(tmp_path / "out" / "model.onnx"))
    assert len(folded.graph.node) != sum(exported.onnx_ops.values())
