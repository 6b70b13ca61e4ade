"""ONNX clean-up passes on tiny hand-built graphs: the op count left, parity on onnxruntime, and
the cases each pass must leave alone."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from recadvisor.model.onnx_optimize import optimize_onnx

F, I64, I32, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: dict[str, Any]) -> Any:
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        outputs,
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


def _ops(model: Any) -> Counter[str]:
    return Counter(n.op_type for n in model.graph.node)


def _cast_chains(model: Any) -> int:
    made = {o: n.op_type for n in model.graph.node for o in n.output}
    return sum(
        1 for n in model.graph.node if n.op_type == "Cast" and made.get(n.input[0]) == "Cast"
    )


def _vi(name: str, dtype: int, shape: list[Any]) -> Any:
    return helper.make_tensor_value_info(name, dtype, shape)


def _arith_select(cond: str, a: str, b: str, out: str, to: int = F) -> list[Any]:
    """tf2onnx's SelectV2: Cast(c) * a + b * Cast(Not(c))."""
    return [
        helper.make_node("Cast", [cond], [f"{out}_pos"], to=to),
        helper.make_node("Not", [cond], [f"{out}_not"]),
        helper.make_node("Cast", [f"{out}_not"], [f"{out}_neg"], to=to),
        helper.make_node("Mul", [f"{out}_pos", a], [f"{out}_m1"]),
        helper.make_node("Mul", [b, f"{out}_neg"], [f"{out}_m2"]),
        helper.make_node("Add", [f"{out}_m1", f"{out}_m2"], [out]),
    ]


def test_arithmetic_select_becomes_where_and_is_right_on_inf() -> None:
    nodes = [helper.make_node("Greater", ["x", "zero"], ["c"]), *_arith_select("c", "x", "y", "z")]
    model = _model(
        nodes,
        [_vi("x", F, ["n"]), _vi("y", F, ["n"])],
        [_vi("z", F, ["n"])],
        {"zero": np.float32(0)},
    )
    cleaned, result = optimize_onnx(model, strict=True)
    assert _ops(cleaned) == Counter({"Greater": 1, "Where": 1})
    assert result.rewrites == {"restore_where": 1}
    assert result.nodes_before == 7 and result.nodes_after == 2
    x = np.array([1.0, -1.0, 2.0], np.float32)
    y = np.array([np.inf, 5.0, np.nan], np.float32)
    (raw,) = _run(model, {"x": x, "y": y})
    (got,) = _run(cleaned, {"x": x, "y": y})
    np.testing.assert_array_equal(got, np.where(x > 0, x, y))  # TensorFlow's SelectV2
    assert np.isnan(raw[0]) and np.isnan(raw[2])  # 0 * inf: the arithmetic form was wrong


def test_select_whose_casts_differ_from_its_type_is_kept() -> None:
    nodes = [
        helper.make_node("Greater", ["x", "zero"], ["c"]),
        helper.make_node("Cast", ["c"], ["pos"], to=F),
        helper.make_node("Not", ["c"], ["not"]),
        helper.make_node("Cast", ["not"], ["neg"], to=I32),  # not the Add's type
        helper.make_node("Cast", ["neg"], ["negf"], to=F),
        helper.make_node("Mul", ["pos", "x"], ["m1"]),
        helper.make_node("Mul", ["y", "negf"], ["m2"]),
        helper.make_node("Add", ["m1", "m2"], ["z"]),
    ]
    model = _model(nodes, [_vi("x", F, [3]), _vi("y", F, [3])], [_vi("z", F, [3])], {"zero": 0.0})
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.float32(0), "zero"))
    cleaned, result = optimize_onnx(model, passes=["restore_where"], strict=True)
    assert "restore_where" not in result.rewrites and _ops(cleaned)["Where"] == 0


def _wrapped_gather(rows: int, n: int) -> Any:
    nodes = [
        helper.make_node("Cast", ["i"], ["i_f"], to=F),
        helper.make_node("Less", ["i_f", "zero"], ["neg"]),
        helper.make_node("Add", ["i", "n"], ["wrapped"]),
        *_arith_select("neg", "wrapped", "i", "idx", to=I64),
        helper.make_node("Gather", ["table", "idx"], ["e"], axis=0),
    ]
    table = np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)
    return _model(
        nodes,
        [_vi("i", I64, ["n", 3])],
        [_vi("e", F, ["n", 3, 2])],
        {"zero": np.float32(0), "n": np.int64(n), "table": table},
    )


def test_keras_negative_index_wrap_is_dropped_before_a_gather() -> None:
    model = _wrapped_gather(rows=7, n=7)
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites.get("drop_index_wrap") == 1
    assert _ops(cleaned) == Counter({"Gather": 1})
    ids = np.array([[0, 6, -1], [-7, 3, 2]], np.int64)
    np.testing.assert_array_equal(_run(cleaned, {"i": ids})[0], _run(model, {"i": ids})[0])


def test_index_wrap_by_another_size_is_kept() -> None:
    model = _wrapped_gather(rows=7, n=5)  # i + 5 is not ONNX's wrap of a 7-row table
    cleaned, result = optimize_onnx(model, strict=True)
    assert "drop_index_wrap" not in result.rewrites
    assert _ops(cleaned)["Less"] == 1 and _ops(cleaned)["Where"] == 1
    ids = np.array([[0, 6, -1]], np.int64)
    np.testing.assert_array_equal(_run(cleaned, {"i": ids})[0], _run(model, {"i": ids})[0])


def test_lossless_cast_chains_fold_and_lossy_ones_stay() -> None:
    nodes = [
        # bool -> int32 -> float: int32 holds every bool, so one Cast is enough
        helper.make_node("Greater", ["x", "zero"], ["c"]),
        helper.make_node("Cast", ["c"], ["c_i"], to=I32),
        helper.make_node("Cast", ["c_i"], ["c_f"], to=F),
        # a Cast to the type it already has
        helper.make_node("Cast", ["x"], ["x_same"], to=F),
        helper.make_node("Add", ["c_f", "x_same"], ["y"]),
        # int64 -> float -> int64 rounds big ids: must stay
        helper.make_node("Cast", ["ids"], ["ids_f"], to=F),
        helper.make_node("Cast", ["ids_f"], ["ids_back"], to=I64),
    ]
    model = _model(
        nodes,
        [_vi("x", F, [3]), _vi("ids", I64, [2])],
        [_vi("y", F, [3]), _vi("ids_back", I64, [2])],
        {"zero": np.float32(0)},
    )
    assert _cast_chains(model) == 2
    cleaned, result = optimize_onnx(model, strict=True)
    assert _cast_chains(cleaned) == 1  # only the lossy int64 -> float -> int64 chain is left
    assert _ops(cleaned)["Cast"] == 3 and result.rewrites["fold_casts"] == 2
    feeds = {"x": np.array([-1, 0.5, 2], np.float32), "ids": np.array([2**24 + 1, 3], np.int64)}
    for a, b in zip(_run(model, feeds), _run(cleaned, feeds), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _run(cleaned, feeds)[1][0] == 2**24  # the rounding the kept chain stands for


def test_full_slice_and_unsqueeze_squeeze_pair_are_dropped_partial_slice_kept() -> None:
    big = np.array([0, 0], np.int64), np.array([1 << 62, 1 << 62], np.int64)
    nodes = [
        helper.make_node("Slice", ["x", "s0", "e0"], ["full"]),
        helper.make_node("Unsqueeze", ["full", "ax"], ["u"]),
        helper.make_node("Squeeze", ["u", "ax"], ["back"]),
        helper.make_node("Slice", ["back", "s0", "e1"], ["part"]),
    ]
    model = _model(
        nodes,
        [_vi("x", F, [2, 3])],
        [_vi("part", F, [2, 2])],
        {"s0": big[0], "e0": big[1], "e1": np.array([2, 2], np.int64), "ax": np.array([2])},
    )
    cleaned, _ = optimize_onnx(model, strict=True)
    assert _ops(cleaned) == Counter({"Slice": 1})
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(_run(cleaned, {"x": x})[0], x[:2, :2])


def test_matmul_plus_bias_becomes_gemm_only_for_rank_2() -> None:
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["y"]),
        helper.make_node("MatMul", ["x3", "w"], ["x3w"]),  # rank 3: Gemm cannot take it
        helper.make_node("Add", ["x3w", "b"], ["y3"]),
    ]
    model = _model(
        nodes,
        [_vi("x", F, ["n", 4]), _vi("x3", F, ["n", 2, 4])],
        [_vi("y", F, ["n", 3]), _vi("y3", F, ["n", 2, 3])],
        {"w": w, "b": b},
    )
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites == {"matmul_add_to_gemm": 1}
    assert _ops(cleaned) == Counter({"Gemm": 1, "MatMul": 1, "Add": 1})
    feeds = {
        "x": rng.normal(size=(5, 4)).astype(np.float32),
        "x3": rng.normal(size=(5, 2, 4)).astype(np.float32),
    }
    for a, c in zip(_run(model, feeds), _run(cleaned, feeds), strict=True):
        np.testing.assert_allclose(a, c, atol=1e-6)


def _masked_history(pad_checked: int, share_table: bool) -> Any:
    """Where(history != pad, Gather(T, history), 0): Keras mask_zero before a masked mean."""
    nodes = [
        helper.make_node("Gather", ["table", "h"], ["e"], axis=0),
        helper.make_node("Equal", ["h", "pad"], ["is_pad"]),
        helper.make_node("Not", ["is_pad"], ["keep"]),
        helper.make_node("Unsqueeze", ["keep", "last"], ["keep3"]),
        helper.make_node("Where", ["keep3", "e", "zero"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "one"], ["pooled"], keepdims=0),
    ]
    outputs = [_vi("pooled", F, ["n", 2])]
    if share_table:
        nodes.append(helper.make_node("Gather", ["table", "item"], ["item_e"], axis=0))
        outputs.append(_vi("item_e", F, ["n", 2]))
    table = np.arange(1, 11, dtype=np.float32).reshape(5, 2)
    return _model(
        nodes,
        [_vi("h", I64, ["n", 3]), *([_vi("item", I64, ["n"])] if share_table else [])],
        outputs,
        {
            "table": table,
            "pad": np.int64(pad_checked),
            "last": np.array([2], np.int64),
            "zero": np.float32(0),
            "one": np.array([1], np.int64),
        },
    )


@pytest.mark.parametrize("share_table", [False, True])
def test_padding_mask_is_folded_into_the_table(share_table: bool) -> None:
    model = _masked_history(0, share_table)
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites == {"fold_gather_mask": 1}
    ops = _ops(cleaned)
    assert ops["Where"] == 0 and ops["Equal"] == 0 and ops["Not"] == 0
    assert ops["Gather"] == (2 if share_table else 1)
    tables = {i.name: numpy_helper.to_array(i) for i in cleaned.graph.initializer}
    assert len([t for t in tables.values() if t.shape == (5, 2)]) == (2 if share_table else 1)
    feeds = {"h": np.array([[1, 0, 4], [0, 0, 2]], np.int64)}
    if share_table:
        feeds["item"] = np.array([0, 3], np.int64)  # the shared table keeps row 0
    for a, c in zip(_run(model, feeds), _run(cleaned, feeds), strict=True):
        np.testing.assert_array_equal(a, c)


def test_mask_on_a_value_outside_the_table_is_kept() -> None:
    cleaned, result = optimize_onnx(_masked_history(9, False), strict=True)
    assert "fold_gather_mask" not in result.rewrites and _ops(cleaned)["Where"] == 1


def test_optimize_does_not_touch_its_input_and_rejects_unknown_passes() -> None:
    model = _wrapped_gather(rows=7, n=7)
    before = model.SerializeToString()
    optimize_onnx(model)
    assert model.SerializeToString() == before
    with pytest.raises(ValueError, match="unknown ONNX clean-up passes"):
        optimize_onnx(model, passes=["no_such_pass"])


def test_a_failing_pass_is_skipped_unless_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    from recadvisor.model import onnx_optimize

    def broken(model: Any) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(onnx_optimize, "PASSES", (("broken", broken), *onnx_optimize.PASSES[1:]))
    model = _wrapped_gather(rows=7, n=7)
    cleaned, result = onnx_optimize.optimize_onnx(model)
    assert "boom" in result.skipped["broken"]
    # the index wrap needs the Where that 'broken' did not make
    assert "drop_index_wrap" not in result.rewrites
    with pytest.raises(RuntimeError, match="boom"):
        onnx_optimize.optimize_onnx(model, strict=True)


def _keras_dot(expose_product: bool = False) -> Any:
    """Keras Dot(axes=1) as tf2onnx writes it: Unsqueeze, Unsqueeze, MatMul, Squeeze."""
    nodes = [
        helper.make_node("Unsqueeze", ["a", "ax1"], ["a3"]),
        helper.make_node("Unsqueeze", ["b", "ax2"], ["b3"]),
        helper.make_node("MatMul", ["a3", "b3"], ["ab"]),
        helper.make_node("Squeeze", ["ab", "ax1"], ["dot"]),
    ]
    outputs = [_vi("dot", F, ["n", 1])]
    if expose_product:  # another reader of the [N, 1, 1] product
        outputs.append(_vi("ab", F, ["n", 1, 1]))
    return _model(
        nodes,
        [_vi("a", F, ["n", 4]), _vi("b", F, ["n", 4])],
        outputs,
        {"ax1": np.array([1], np.int64), "ax2": np.array([2], np.int64)},
    )


def test_batched_dot_becomes_a_row_sum_of_products() -> None:
    model = _keras_dot()
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites == {"batched_dot_to_reduce": 1}
    assert _ops(cleaned) == Counter({"Mul": 1, "ReduceSum": 1})
    rng = np.random.default_rng(0)
    feeds = {k: rng.normal(size=(6, 4)).astype(np.float32) for k in ("a", "b")}
    got = _run(cleaned, feeds)[0]
    assert got.shape == (6, 1)
    np.testing.assert_allclose(got, _run(model, feeds)[0], atol=1e-6)


def test_batched_dot_whose_product_is_read_elsewhere_is_kept() -> None:
    cleaned, result = optimize_onnx(_keras_dot(expose_product=True), strict=True)
    assert result.rewrites == {} and _ops(cleaned)["MatMul"] == 1


def test_tensors_a_subgraph_reads_are_kept_and_not_bypassed() -> None:
    """An If branch reads an outer Cast's output by name (not as a node input)."""
    then_graph = helper.make_graph(
        [helper.make_node("Identity", ["x_same"], ["then_out"])],
        "then",
        [],
        [_vi("then_out", F, [3])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["x_same"], ["else_out"])], "else", [], [_vi("else_out", F, [3])]
    )
    nodes = [
        helper.make_node("Cast", ["x"], ["x_same"], to=F),  # a no-op cast only the bodies read
        helper.make_node("If", ["flag"], ["y"], then_branch=then_graph, else_branch=else_graph),
    ]
    model = _model(nodes, [_vi("x", F, [3]), _vi("flag", B, [])], [_vi("y", F, [3])], {})
    cleaned, _ = optimize_onnx(model, strict=True)
    assert _ops(cleaned) == Counter({"Cast": 1, "If": 1})
    x = np.array([1.0, -2.0, 3.0], np.float32)
    for flag in (True, False):
        feeds = {"x": x, "flag": np.array(flag)}
        np.testing.assert_array_equal(_run(cleaned, feeds)[0], x if flag else -x)


def _outer_product(contraction: int | str) -> Any:
    """A batch of ``[4, k] x [k, 3]`` MatMuls (xDeepFM's CIN with ``k = 1``)."""
    return _model(
        [helper.make_node("MatMul", ["a", "b"], ["ab"])],
        [_vi("a", F, [2, "n", 4, contraction]), _vi("b", F, [2, "n", contraction, 3])],
        [_vi("ab", F, [2, "n", 4, 3])],
        {},
    )


def test_matmul_over_a_unit_contraction_becomes_an_exact_mul() -> None:
    model = _outer_product(1)
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites == {"outer_matmul_to_mul": 1}
    assert _ops(cleaned) == Counter({"Mul": 1})  # 0 MatMul left
    rng = np.random.default_rng(0)
    feeds = {
        "a": rng.normal(size=(2, 5, 4, 1)).astype(np.float32),
        "b": rng.normal(size=(2, 5, 1, 3)).astype(np.float32),
    }
    np.testing.assert_array_equal(_run(cleaned, feeds)[0], _run(model, feeds)[0])


@pytest.mark.parametrize("contraction", [2, "k"])
def test_matmul_over_a_longer_or_unknown_contraction_is_kept(contraction: int | str) -> None:
    cleaned, result = optimize_onnx(_outer_product(contraction), strict=True)
    assert result.rewrites == {} and _ops(cleaned) == Counter({"MatMul": 1})


def _lowered_bucketize(bounds: np.ndarray, x_type: int = I64) -> Any:
    """``Bucketize`` as onnx_export lowers it: the count of boundaries <= float(x)."""
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=F),
        helper.make_node("Unsqueeze", ["xf", "last"], ["x3"]),
        helper.make_node("GreaterOrEqual", ["x3", "bounds"], ["ge"]),
        helper.make_node("Cast", ["ge"], ["hits"], to=I32),
        helper.make_node("ReduceSum", ["hits", "last"], ["bucket"], keepdims=0),
    ]
    return _model(
        nodes,
        [_vi("x", x_type, ["n", 1])],
        [_vi("bucket", I32, ["n", 1])],
        {"bounds": bounds.astype(np.float32), "last": np.array([-1], np.int64)},
    )


def test_integer_bucketize_becomes_a_gather_and_is_exact_everywhere() -> None:
    bounds = np.array([-7.5, -2, 0, 0.5, 3, 3.25, 11, 1000])
    model = _lowered_bucketize(bounds)
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites == {"int_bucketize_to_gather": 1}
    ops = _ops(cleaned)
    assert ops["GreaterOrEqual"] == 0 and ops["ReduceSum"] == 0 and ops["Gather"] == 1
    edges = [-(2**63), -(2**40), -9, -8, -7, -3, -2, -1, 0, 1, 2, 3, 4, 10, 11, 12, 999, 1000]
    x = np.array([*edges, 1001, 2**40, 2**63 - 1], np.int64).reshape(-1, 1)
    got = _run(cleaned, {"x": x})[0]
    np.testing.assert_array_equal(got, _run(model, {"x": x})[0])
    np.testing.assert_array_equal(got[:, 0], np.searchsorted(bounds, x[:, 0], side="right"))


def test_bucketize_of_a_float_or_over_a_wide_span_is_kept() -> None:
    floats = _lowered_bucketize(np.array([0.5, 2.0]), x_type=F)
    floats.graph.node[0].attribute[0].i = F  # Cast float -> float: x is no integer
    wide = _lowered_bucketize(np.array([0, 5e6]))  # 5M ids: over the 1M-entry remap limit
    for model in (floats, wide):
        cleaned, result = optimize_onnx(model, strict=True)
        assert "int_bucketize_to_gather" not in result.rewrites
        assert _ops(cleaned)["GreaterOrEqual"] == 1


def _tensordot(x_shape: list[Any], free: list[int]) -> Any:
    """tf2onnx's ``tf.tensordot(x, W, 1) + b`` (a Keras Dense on a rank-3 input)."""
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Cast", ["shape"], ["shape32"], to=I32),
        helper.make_node("Gather", ["shape32", "free"], ["kept"], axis=0),
        helper.make_node("Concat", ["kept", "units"], ["out_shape32"], axis=0),
        helper.make_node("Cast", ["out_shape32"], ["out_shape"], to=I64),
        helper.make_node("Reshape", ["x", "flat"], ["x2"]),
        helper.make_node("MatMul", ["x2", "w"], ["xw"]),
        helper.make_node("Reshape", ["xw", "out_shape"], ["y"]),
        helper.make_node("Add", ["y", "b"], ["z"]),
    ]
    return _model(
        nodes,
        [_vi("x", F, x_shape)],
        [_vi("z", F, [f"z{i}" for i in range(len(x_shape))])],
        {
            "free": np.array(free, np.int32),
            "units": np.array([3], np.int32),
            "flat": np.array([-1, 4], np.int64),
            "w": rng.normal(size=(4, 3)).astype(np.float32),
            "b": rng.normal(size=3).astype(np.float32),
        },
    )


@pytest.mark.parametrize(("x_shape", "left"), [(["n", 5, 4], "MatMul"), (["n", 4], "Gemm")])
def test_tensordot_becomes_one_matmul(x_shape: list[Any], left: str) -> None:
    model = _tensordot(x_shape, free=list(range(len(x_shape) - 1)))
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites["tensordot_to_matmul"] == 1
    ops = _ops(cleaned)  # 0 Reshape, Shape, Gather, Concat, Cast left
    assert ops == (Counter({"MatMul": 1, "Add": 1}) if left == "MatMul" else Counter({"Gemm": 1}))
    x = np.random.default_rng(2).normal(size=[6, *x_shape[1:]]).astype(np.float32)
    np.testing.assert_allclose(_run(cleaned, {"x": x})[0], _run(model, {"x": x})[0], atol=1e-6)


@pytest.mark.parametrize(
    ("x_shape", "free"), [(["n", 5, "k"], [0, 1]), (["n", 5, 4], [0]), (["n", 5, 4], [1, 0])]
)
def test_tensordot_with_unknown_depth_or_other_kept_axes_is_kept(
    x_shape: list[Any], free: list[int]
) -> None:
    cleaned, result = optimize_onnx(_tensordot(x_shape, free), strict=True)
    assert "tensordot_to_matmul" not in result.rewrites
    assert _ops(cleaned)["Reshape"] == 2


def _tiled_mask(other_width: int | str) -> Any:
    """DeepMatch's masked sum: a [N, T, 1] mask tiled to the embedding width, then a Mul."""
    nodes = [
        helper.make_node("Tile", ["mask", "reps"], ["tiled"]),
        helper.make_node("Mul", ["e", "tiled"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "one"], ["pooled"], keepdims=0),
    ]
    return _model(
        nodes,
        [_vi("mask", F, ["n", 5, 1]), _vi("e", F, ["n", 5, other_width])],
        [_vi("pooled", F, ["n", 4])],
        {"reps": np.array([1, 1, 4], np.int64), "one": np.array([1], np.int64)},
    )


def test_tile_that_a_mul_broadcasts_anyway_is_dropped() -> None:
    model = _tiled_mask(4)
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites == {"drop_broadcast_tile": 1}
    assert _ops(cleaned)["Tile"] == 0
    rng = np.random.default_rng(3)
    feeds = {
        "mask": (rng.random((6, 5, 1)) < 0.5).astype(np.float32),
        "e": rng.normal(size=(6, 5, 4)).astype(np.float32),
    }
    np.testing.assert_array_equal(_run(cleaned, feeds)[0], _run(model, feeds)[0])


def test_tile_whose_reader_does_not_broadcast_it_back_is_kept() -> None:
    # e's width is not known to be 4: Mul(mask, e) could come out narrower than with the tile
    cleaned, result = optimize_onnx(_tiled_mask("d"), strict=True)
    assert "drop_broadcast_tile" not in result.rewrites and _ops(cleaned)["Tile"] == 1


def _sum_over(axis_len: int, keepdims: int) -> Any:
    return _model(
        [helper.make_node("ReduceSum", ["x", "one"], ["s"], keepdims=keepdims)],
        [_vi("x", F, ["n", axis_len, 3])],
        [_vi("s", F, ["n", 1, 3] if keepdims else ["n", 3])],
        {"one": np.array([1], np.int64)},
    )


def test_sum_over_a_unit_axis_becomes_a_squeeze() -> None:
    model = _sum_over(1, keepdims=0)
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites == {"drop_unit_reduce": 1}
    assert _ops(cleaned) == Counter({"Squeeze": 1})  # 0 ReduceSum left
    x = np.random.default_rng(4).normal(size=(5, 1, 3)).astype(np.float32)
    np.testing.assert_array_equal(_run(cleaned, {"x": x})[0], _run(model, {"x": x})[0])


def test_sum_over_a_longer_axis_or_into_a_graph_output_is_kept() -> None:
    for model in (_sum_over(2, keepdims=0), _sum_over(1, keepdims=1)):
        cleaned, result = optimize_onnx(model, strict=True)
        assert result.rewrites == {} and _ops(cleaned) == Counter({"ReduceSum": 1})


def test_sum_over_a_unit_axis_with_keepdims_is_dropped() -> None:
    model = _model(
        [
            helper.make_node("ReduceSum", ["x", "one"], ["s"], keepdims=1),
            helper.make_node("Neg", ["s"], ["y"]),
        ],
        [_vi("x", F, ["n", 1, 3])],
        [_vi("y", F, ["n", 1, 3])],
        {"one": np.array([1], np.int64)},
    )
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites == {"drop_unit_reduce": 1} and _ops(cleaned) == Counter({"Neg": 1})
    x = np.random.default_rng(5).normal(size=(4, 1, 3)).astype(np.float32)
    np.testing.assert_array_equal(_run(cleaned, {"x": x})[0], _run(model, {"x": x})[0])


def _cin_conv(bias_shape: tuple[int, ...] = (1, 4, 1), strides: int = 1) -> Any:
    """tf2onnx's conv1d + BiasAdd in xDeepFM's CIN: a [D, N, C] tensor read as NCHW through a
    Transpose, a 1x1 Conv, a Squeeze of the height axis and a [1, C_out, 1] bias Add."""
    rng = np.random.default_rng(6)
    nodes = [
        helper.make_node("Unsqueeze", ["r", "zero"], ["z"]),
        helper.make_node("Transpose", ["z"], ["nchw"], perm=[2, 3, 0, 1]),
        helper.make_node(
            "Conv", ["nchw", "w"], ["conv"], kernel_shape=[1, 1], strides=[1, strides]
        ),
        helper.make_node("Squeeze", ["conv", "two"], ["squeezed"]),
        helper.make_node("Add", ["squeezed", "b"], ["biased"]),
        helper.make_node("Relu", ["biased"], ["y"]),
    ]
    return _model(
        nodes,
        [_vi("r", F, [3, "n", 6])],
        [_vi("y", F, ["n", 4, "w_out"])],
        {
            "zero": np.array([0], np.int64),
            "two": np.array([2], np.int64),
            "w": rng.normal(size=(4, 6, 1, 1)).astype(np.float32),
            "b": rng.normal(size=bias_shape).astype(np.float32),
        },
    )


def test_pointwise_conv_with_its_bias_becomes_a_matmul() -> None:
    model = _cin_conv()
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites == {"fold_conv_channel_bias": 1, "conv1x1_to_matmul": 1}
    ops = _ops(cleaned)
    assert ops["Conv"] == 0 and ops["MatMul"] == 1 and ops["Transpose"] == 1
    r = np.random.default_rng(7).normal(size=(3, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(_run(cleaned, {"r": r})[0], _run(model, {"r": r})[0], atol=1e-6)


def test_strided_conv_and_a_bias_along_the_width_are_kept() -> None:
    cleaned, result = optimize_onnx(_cin_conv(strides=2), strict=True)
    assert result.rewrites == {"fold_conv_channel_bias": 1}  # the bias still folds
    assert _ops(cleaned)["Conv"] == 1
    cleaned, result = optimize_onnx(_cin_conv(bias_shape=(1, 1, 3)), strict=True)
    assert result.rewrites == {"conv1x1_to_matmul": 1}  # a bias per position is no Conv bias
    assert _ops(cleaned)["Add"] == 1


def _stacked_columns(pieces: int, stack_axis: int = 0) -> Any:
    """DeepCTR's CIN: ``tf.split(x, D, 2)`` stacked again by a list ``tf.matmul``."""
    outs = [f"col{i}" for i in range(pieces)]
    nodes = [helper.make_node("Split", ["x", "sizes"], outs, axis=2)]
    nodes += [helper.make_node("Unsqueeze", [o, "zero"], [f"{o}_1"]) for o in outs]
    nodes.append(helper.make_node("Concat", [f"{o}_1" for o in outs], ["y"], axis=stack_axis))
    return _model(
        nodes,
        [_vi("x", F, ["n", 3, 4])],
        [_vi("y", F, ["a", "n", 3, "b"])],
        {"sizes": np.array([4 // pieces] * pieces, np.int64), "zero": np.array([0], np.int64)},
    )


def test_split_into_columns_and_stacked_becomes_a_transpose() -> None:
    model = _stacked_columns(4)
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites == {"split_stack_to_transpose": 1}
    assert _ops(cleaned) == Counter({"Transpose": 1, "Unsqueeze": 1})  # 0 Split, 0 Concat left
    x = np.random.default_rng(8).normal(size=(5, 3, 4)).astype(np.float32)
    got = _run(cleaned, {"x": x})[0]
    assert got.shape == (4, 5, 3, 1)
    np.testing.assert_array_equal(got, _run(model, {"x": x})[0])


def test_split_into_wider_pieces_or_stacked_on_another_axis_is_kept() -> None:
    for model in (_stacked_columns(2), _stacked_columns(4, stack_axis=3)):
        cleaned, result = optimize_onnx(model, strict=True)
        assert result.rewrites == {} and _ops(cleaned)["Split"] == 1


def _div_mul_sub(x_type: int) -> Any:
    """tf2onnx's integer ``FloorMod(x, 7)``: ``x - (x / 7) * 7``."""
    dtype = {TensorProto.UINT64: np.uint64, I64: np.int64}[x_type]
    nodes = [
        helper.make_node("Div", ["x", "c"], ["q"]),
        helper.make_node("Mul", ["q", "c"], ["qc"]),
        helper.make_node("Sub", ["x", "qc"], ["r"]),
    ]
    return _model(nodes, [_vi("x", x_type, ["n"])], [_vi("r", x_type, ["n"])], {"c": dtype(7)})


def test_unsigned_remainder_becomes_one_mod_and_signed_is_kept() -> None:
    """Unsigned: ``Mod``, equal to the three nodes on every uint64 (top bit set included).
    Signed: kept (``Div`` truncates: for negative x it is not ``Mod``'s floor remainder)."""
    model = _div_mul_sub(TensorProto.UINT64)
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites == {"unsigned_mod": 1}
    assert dict(_ops(cleaned)) == {"Mod": 1}
    x = np.array([0, 6, 7, 2**63 - 1, 2**63, 2**64 - 1, 12345678901234567890], np.uint64)
    got = _run(cleaned, {"x": x})[0]
    np.testing.assert_array_equal(got, _run(model, {"x": x})[0])
    np.testing.assert_array_equal(got, np.array([int(v) % 7 for v in x.tolist()], np.uint64))
    signed, result = optimize_onnx(_div_mul_sub(I64), strict=True)
    assert "unsigned_mod" not in result.rewrites and _ops(signed)["Sub"] == 1


def test_reshape_chains_merge_and_reshapes_to_the_same_shape_are_dropped() -> None:
    """``[N, 1] -> [-1] -> (Cast) -> [-1, 1]`` and ``[N, 1] -> [-1] -> [-1, 1]`` are the input
    itself; ``[N, 4] -> [-1, 2]`` and a reshape whose target has a 0 are kept."""
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["x_flat"]),
        helper.make_node("Cast", ["x_flat"], ["x_flat64"], to=I64),
        helper.make_node("Reshape", ["x_flat64", "column"], ["a"]),
        helper.make_node("Reshape", ["x", "flat"], ["x_flat2"]),
        helper.make_node("Reshape", ["x_flat2", "column"], ["b"]),
        helper.make_node("Reshape", ["y", "pairs"], ["c"]),
        helper.make_node("Reshape", ["y", "copy_first"], ["d"]),
        helper.make_node("Neg", ["a"], ["a_out"]),
        helper.make_node("Neg", ["b"], ["b_out"]),
    ]
    model = _model(
        nodes,
        [_vi("x", I32, ["n", 1]), _vi("y", F, ["n", 4])],
        [_vi("a_out", I64, ["n", 1]), _vi("b_out", I32, ["n", 1]), _vi("c", F, ["m", 2])]
        + [_vi("d", F, ["n", 4])],
        {
            "flat": np.array([-1], np.int64),
            "column": np.array([-1, 1], np.int64),
            "pairs": np.array([-1, 2], np.int64),
            "copy_first": np.array([0, 4], np.int64),
        },
    )
    cleaned, result = optimize_onnx(model, passes=["drop_identity_reshapes"], strict=True)
    assert dict(_ops(cleaned)) == {"Cast": 1, "Reshape": 2, "Neg": 2}
    cast = next(n for n in cleaned.graph.node if n.op_type == "Cast")
    assert list(cast.input) == ["x"]
    feeds = {
        "x": np.arange(5, dtype=np.int32).reshape(5, 1),
        "y": np.arange(20, dtype=np.float32).reshape(5, 4),
    }
    for got, want in zip(_run(cleaned, feeds), _run(model, feeds), strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op", ["Less", "GreaterOrEqual", "Equal"])
def test_integer_compared_in_float_is_compared_as_integer(op: str) -> None:
    """``op(Cast(x, float), c)`` -> ``op(x, c)`` for whole ``|c| <= 2^24``, same result on
    int64 extremes; a fractional constant keeps the cast."""

    def compare(c: float) -> Any:
        nodes = [
            helper.make_node("Cast", ["x"], ["xf"], to=F),
            helper.make_node(op, ["xf", "c"], ["y"]),
        ]
        return _model(nodes, [_vi("x", I64, ["n"])], [_vi("y", B, ["n"])], {"c": np.float32(c)})

    x = np.array([-(2**63), -(2**40), -3, -1, 0, 1, 2, 3, 2**24, 2**63 - 1], np.int64)
    for c in (0.0, -1.0, 3.0, float(2**24)):
        model = compare(c)
        cleaned, result = optimize_onnx(model, strict=True)
        assert result.rewrites == {"compare_integers_directly": 1} and _ops(cleaned)["Cast"] == 0
        np.testing.assert_array_equal(_run(cleaned, {"x": x})[0], _run(model, {"x": x})[0])
    kept, result = optimize_onnx(compare(0.5), strict=True)
    assert "compare_integers_directly" not in result.rewrites and _ops(kept)["Cast"] == 1


def _masked_rows(table: np.ndarray, reshaped: bool) -> Any:
    """DeepMatch's sequence pooling before its sum: ``Gather(T, ids) * mask`` with the mask a
    float cast of ``arange(T) < length`` laid out ``[N, 1, T]`` and reshaped to ``[-1, T, 1]``
    (``reshaped``), or a bool input ``[N, T, 1]`` cast directly."""
    t = 4
    if reshaped:
        nodes = [
            helper.make_node("Unsqueeze", ["length", "last"], ["length3"]),
            helper.make_node("Less", ["positions", "length3"], ["seen"]),
            helper.make_node("Cast", ["seen"], ["seen_f"], to=F),
            helper.make_node("Reshape", ["seen_f", "layout"], ["mask"]),
        ]
        inputs = [_vi("ids", I64, ["n", t]), _vi("length", I64, ["n", 1])]
    else:
        nodes = [helper.make_node("Cast", ["seen"], ["mask"], to=F)]
        inputs = [_vi("ids", I64, ["n", t]), _vi("seen", B, ["n", t, 1])]
    nodes += [
        helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0),
        helper.make_node("Mul", ["rows", "mask"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["pooled"], keepdims=0),
    ]
    return _model(
        nodes,
        inputs,
        [_vi("pooled", F, ["n", table.shape[1]])],
        {
            "table": table,
            "last": np.array([-1], np.int64),
            "positions": np.arange(t, dtype=np.int64),
            "layout": np.array([-1, t, 1], np.int64),
            "axis1": np.array([1], np.int64),
        },
    )


@pytest.mark.parametrize("reshaped", [True, False])
def test_multiplied_sequence_mask_becomes_a_zero_row_gather(reshaped: bool) -> None:
    """The ``[N, T, D]`` multiply goes: masked positions read an appended zero row, equal to
    the product everywhere (lengths 0 to T, a one-row batch); a non-finite table is kept."""
    rng = np.random.default_rng(3)
    table = rng.normal(size=(9, 3)).astype(np.float32)
    model = _masked_rows(table, reshaped)
    cleaned, result = optimize_onnx(model, strict=True)
    assert result.rewrites.get("fold_multiplied_mask") == 1
    ops = _ops(cleaned)
    assert ops["Mul"] == 0 and ops["Cast"] == 0 and ops["Where"] == 1
    ids = rng.integers(0, 9, (6, 4)).astype(np.int64)
    if reshaped:
        feeds_list = [
            {"ids": ids, "length": np.array([[0], [1], [2], [3], [4], [4]], np.int64)},
            {"ids": ids[:1], "length": np.array([[2]], np.int64)},
        ]
    else:
        seen = rng.integers(0, 2, (6, 4, 1)).astype(bool)
        feeds_list = [{"ids": ids, "seen": seen}, {"ids": ids[:1], "seen": seen[:1]}]
    for feeds in feeds_list:
        np.testing.assert_array_equal(_run(cleaned, feeds)[0], _run(model, feeds)[0])
    table[2, 1] = np.inf
    kept, result = optimize_onnx(_masked_rows(table, reshaped), strict=True)
    assert "fold_multiplied_mask" not in result.rewrites and _ops(kept)["Mul"] == 1
