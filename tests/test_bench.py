"""The timing harness (bench) and the serving module it times (runtime).

Tiny models built once per session: a TF2 model with two embedding tables over 64 KiB and a
lookup table, a TF2 model with a ``tf.while_loop``, the TF1 export of ``tests.model.builders``,
and a two-input ONNX graph.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recadvisor.bench import (
    LatencySummary,
    OnnxRunner,
    SavedModelRunner,
    _BoundOnnx,
    _FlatCall,
    measure_latency,
    time_interleaved,
)
from recadvisor.model.freeze import freeze
from recadvisor.model.load import load_model
from recadvisor.model.runtime import (
    INLINE_BUDGET_BYTES,
    VARIABLE_MIN_BYTES,
    GraphRunner,
    build_serving_module,
    export_saved_model,
    run_loaded,
    variable_consts,
)
from recadvisor.tfimport import import_tf
from tests.model import builders

ROWS = 6
BIG_ROWS = 160  # 160 x 128 float32 = 80 KiB: over VARIABLE_MIN_BYTES


def _feeds(n: int = ROWS) -> dict[str, np.ndarray]:
    return {
        "item": np.arange(n, dtype="int64") % BIG_ROWS,
        "cat": np.array(["a", "b", "zz"] * n, dtype=object)[:n],
    }


def _save(module: Any, path: Path) -> Path:
    """``tf.saved_model.save`` with ``module.serve`` as ``serving_default``."""
    import_tf().saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


@pytest.fixture(scope="session")
def tables_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two big embedding tables (variables), one small dense kernel, a string lookup table."""
    tf = import_tf()
    rng = np.random.default_rng(0)

    class Model(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb_a = tf.Variable(rng.normal(size=(BIG_ROWS, 128)).astype("float32"))
            self.emb_b = tf.Variable(rng.normal(size=(BIG_ROWS + 40, 128)).astype("float32"))
            self.w = tf.Variable(rng.normal(size=(128, 1)).astype("float32"))
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(["a", "b"], tf.constant([1, 2], tf.int64)), 0
            )

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.int64, name="item"),
                tf.TensorSpec([None], tf.string, name="cat"),
            ]
        )
        def serve(self, item: Any, cat: Any) -> dict[str, Any]:
            x = tf.gather(self.emb_a, item) + tf.gather(self.emb_b, self.table.lookup(cat))
            return {"score": tf.sigmoid(tf.squeeze(tf.matmul(x, self.w), 1))}

    return _save(Model(), tmp_path_factory.mktemp("bench") / "tables")


@pytest.fixture(scope="session")
def loop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``tf.while_loop`` over a variable: freezing lowers it to Enter/Merge/Exit frames."""
    tf = import_tf()

    class Loop(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.full((4, 3), 0.5, "float32"))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            def body(i: Any, acc: Any) -> tuple[Any, Any]:
                return i + 1, acc + tf.matmul(x, self.w) * tf.cast(i, tf.float32)

            start = (tf.constant(0), tf.zeros([tf.shape(x)[0], 3]))
            _, acc = tf.while_loop(lambda i, _: i < 4, body, start)
            return {"y": acc}

    return _save(Loop(), tmp_path_factory.mktemp("bench") / "loop")


@pytest.fixture(scope="session")
def tf1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return builders.build_tf1_estimator_style(tmp_path_factory.mktemp("bench") / "tf1")


def _onnx_model(path: Path, with_string: bool) -> Path:
    """``y = x * 2 + b`` (float32 [N,2] inputs), plus an unread string input when asked."""
    import onnx
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2]),
        helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 2]),
    ]
    if with_string:
        inputs.append(helper.make_tensor_value_info("tag", TensorProto.STRING, ["N"]))
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["x2"]),
        helper.make_node("Add", ["x2", "b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        initializer=[two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert set(a) == set(b)
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


# ------------------------------------------------------------------------------ runtime


def test_variable_consts_keeps_big_constants_inline_within_the_budget(tables_dir: Path) -> None:
    graph = freeze(load_model(tables_dir))
    big = {n.name for n in graph.graph_def.node if graph.const_bytes(n.name) >= VARIABLE_MIN_BYTES}
    assert len(big) == 2
    assert variable_consts(graph) == set()  # 180 KiB in all: inside the default budget
    assert variable_consts(graph, inline_budget_bytes=0) == big
    # a budget that fits one table keeps the smaller one inline, the bigger one as a variable
    smaller = min(big, key=graph.const_bytes)
    one = variable_consts(graph, inline_budget_bytes=graph.const_bytes(smaller))
    assert one == big - {smaller}


def test_inline_and_variable_exports_match_the_original(tables_dir: Path, tmp_path: Path) -> None:
    tf = import_tf()
    loaded = load_model(tables_dir)
    graph = freeze(loaded)
    feeds = _feeds()
    ref = run_loaded(loaded.function, loaded.spec.inputs, feeds)
    assert build_serving_module(graph).module.recadvisor_variables == []
    as_vars = build_serving_module(graph, inline_budget_bytes=0)
    assert len(as_vars.module.recadvisor_variables) == 2
    for budget, n_vars in ((0, 2), (None, 0)):
        kwargs = {} if budget is None else {"inline_budget_bytes": budget}
        out = export_saved_model(graph, tmp_path / f"budget{budget}", **kwargs)
        saved = [n for n, _ in tf.train.list_variables(str(out / "variables" / "variables"))]
        assert len([n for n in saved if "VARIABLE_VALUE" in n]) == n_vars
        reloaded = load_model(out)
        assert _max_diff(ref, run_loaded(reloaded.function, reloaded.spec.inputs, feeds)) == 0.0
    runner = GraphRunner(graph)
    assert runner.serving.module.recadvisor_variables  # quick to start: tables as variables
    assert _max_diff(ref, runner(feeds)) == 0.0
    assert _max_diff(runner(feeds), runner.run(runner.prepare(feeds))) == 0.0
    inline = GraphRunner(graph, inline_budget_bytes=INLINE_BUDGET_BYTES)
    assert _max_diff(ref, inline(feeds)) == 0.0


def test_frozen_while_loop_runs_and_exports(loop_dir: Path, tmp_path: Path) -> None:
    loaded = load_model(loop_dir)
    graph = freeze(loaded)
    assert "Enter" in graph.op_counts()  # lowered loop frames: the case that used to fail
    feeds = {"x": np.arange(12, dtype="float32").reshape(3, 4)}
    ref = run_loaded(loaded.function, loaded.spec.inputs, feeds)
    # acc = sum_i i * (x @ w) for i < 4 = 6 * 0.5 * row sums
    np.testing.assert_allclose(ref["y"][:, 0], 3.0 * feeds["x"].sum(1))
    assert _max_diff(ref, GraphRunner(graph)(feeds)) == 0.0
    reloaded = load_model(export_saved_model(graph, tmp_path / "loop"))
    assert _max_diff(ref, run_loaded(reloaded.function, reloaded.spec.inputs, feeds)) == 0.0


# -------------------------------------------------------------------------------- bench


def test_flat_call_matches_the_keyword_call(tables_dir: Path) -> None:
    keyword = SavedModelRunner(tables_dir)
    flat = SavedModelRunner(tables_dir, flat_call=True)
    feeds = _feeds()
    prepared = flat.prepare(feeds)
    assert isinstance(prepared, _FlatCall)
    # the two inputs, then the captured variables and table, bound once
    assert len(prepared.args) == 2 + len(flat.loaded.function.captured_inputs) > 2
    assert _max_diff(keyword.run(keyword.prepare(feeds)), flat.run(prepared)) == 0.0


def test_tf1_runner_converts_inputs_in_prepare(tf1_dir: Path) -> None:
    tf = import_tf()
    runner = SavedModelRunner(tf1_dir)
    assert runner.graph_runner is not None
    feeds = builders.tf1_feeds(8)
    prepared = runner.prepare(feeds)
    assert all(isinstance(t, tf.Tensor) for t in prepared)
    out = runner.run(prepared)
    assert out["prob"].shape == (8,)
    assert _max_diff(out, runner.graph_runner(feeds)) == 0.0


@pytest.mark.parametrize("with_string", [False, True])
def test_onnx_runner_binds_numeric_inputs_once(tmp_path: Path, with_string: bool) -> None:
    path = _onnx_model(tmp_path / "m.onnx", with_string)
    runner = OnnxRunner(path, threads=1)
    rng = np.random.default_rng(0)
    feeds: dict[str, np.ndarray] = {
        "x": rng.normal(size=(5, 2)).astype("float32"),
        "b": rng.normal(size=(5, 2)).astype("float32"),
        "tag": np.array([b"t"] * 5),
    }
    prepared = runner.prepare(feeds)
    assert isinstance(prepared, _BoundOnnx) is not with_string
    expected = feeds["x"] * 2 + feeds["b"]
    for _ in range(2):  # a bound call can be repeated
        np.testing.assert_allclose(runner.run(prepared)["y"], expected, rtol=1e-6)


class _Counting:
    """A runner that records its calls in a shared log and sleeps ``cost`` seconds."""

    kind = "fake"

    def __init__(self, name: str, log: list[str], cost: float = 0.0) -> None:
        self.name, self.log, self.cost = name, log, cost

    def prepare(self, feeds: dict[str, np.ndarray]) -> int:
        return len(next(iter(feeds.values())))

    def run(self, rows: int) -> dict[str, np.ndarray]:
        self.log.append(self.name)
        if self.cost:
            time.sleep(self.cost)
        return {"y": np.zeros(rows)}


def test_time_interleaved_bursts() -> None:
    log: list[str] = []
    runners = {k: _Counting(k, log) for k in ("a", "b", "c")}
    feeds = {k: {"x": np.zeros(10)} for k in runners}
    result = time_interleaved(runners, feeds, 4, requests=10, warmup=2, burst=4)
    assert {k: s.calls for k, s in result.items()} == {"a": 10, "b": 10, "c": 10}
    # 2 warm-up calls, 10 timed, and one untimed call per round (rounds of 4, 4, 2)
    assert all(log.count(k) == 2 + 10 + 3 for k in runners)
    # each round calls every model once in a block: 1 untimed call + the burst
    timed, pos = log[6:], 0
    for size in (5, 5, 3):
        blocks = [timed[pos + i * size : pos + (i + 1) * size] for i in range(3)]
        assert all(len(set(b)) == 1 for b in blocks)
        assert {b[0] for b in blocks} == set(runners)
        pos += 3 * size
    assert pos == len(timed)


def test_time_interleaved_call_by_call_and_ratios() -> None:
    log: list[str] = []
    runners = {"slow": _Counting("slow", log, 0.002), "fast": _Counting("fast", log, 0.0005)}
    feeds = {k: {"x": np.zeros(4)} for k in runners}
    result = time_interleaved(runners, feeds, 1, requests=20, warmup=1)
    assert len(log) == 2 * 21  # burst 1: no extra untimed calls
    assert result["fast"].p50_ms < result["slow"].p50_ms
    assert result["slow"].p50_ms >= 2.0 and result["slow"].rows_per_s <= 500.0


def test_device_placed_rows_in_compare(tables_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``devices=cpu,gpu`` with a GPU visible adds ``@gpu`` rows (checked against the CPU
    baseline) and a note; the placement itself is exercised on ``/CPU:0`` here (no GPU)."""
    import importlib

    from recadvisor import api

    compare_module = importlib.import_module(
        "recadvisor.compare"
    )  # the package exports api.compare
    real = compare_module.compare

    def on_cpu(*args: Any, **kwargs: Any) -> Any:
        assert kwargs["gpu_device"] == "/GPU:0"
        return real(*args, **{**kwargs, "gpu_device": "/CPU:0"})

    tf = import_tf()
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["fake-gpu"])
    monkeypatch.setattr(compare_module, "compare", on_cpu)
    result = api.compare(
        tables_dir,
        [tables_dir],
        batch_sizes=(1,),
        requests=3,
        measure_memory=False,
        devices="cpu,gpu",
    )
    labels = [m.label for m in result.models]
    assert len(labels) == 4 and sum(label.endswith(" @gpu") for label in labels) == 2
    assert all(m.parity_passed for m in result.models[1:])
    assert any(
        note.startswith("GPU rows ('@gpu'): the baseline on the GPU") for note in result.notes
    )


def test_no_gpu_note(tables_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recadvisor import api

    monkeypatch.setattr(import_tf().config, "list_physical_devices", lambda kind=None: [])
    result = api.compare(
        tables_dir, [], batch_sizes=(1,), requests=3, measure_memory=False, devices="cpu,gpu"
    )
    assert [m.label for m in result.models] == [result.models[0].label]
    assert any("sees no GPU" in note for note in result.notes)
    with pytest.raises(ValueError, match="unknown device"):
        api.compare(tables_dir, [], devices="tpu")


def test_measure_latency_counts_calls_and_orders_percentiles() -> None:
    calls: list[int] = []
    ticks: list[int] = []
    stats = measure_latency(
        lambda: calls.append(1), warmup=4, calls=30, batch_size=8, on_call=lambda: ticks.append(1)
    )
    assert isinstance(stats, LatencySummary)
    assert len(calls) == len(ticks) == 34
    assert stats.calls == 30 and stats.batch_size == 8
    assert 0 <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms
    with pytest.raises(ValueError):
        measure_latency(lambda: None, warmup=0, calls=0)


def test_onnx_runner_returns_string_outputs_without_binding(tmp_path: Path) -> None:
    """A retrieval model's top-K ids are strings: onnxruntime's IOBinding crashes copying them
    back (SIGSEGV), so a model with a string output runs unbound, and returns the strings."""
    import onnx
    from onnx import TensorProto, helper

    ids = helper.make_tensor("ids", TensorProto.STRING, [3], [b"item_0", b"item_1", b"item_2"])
    graph = helper.make_graph(
        [helper.make_node("Gather", ["ids", "k"], ["top"], axis=0)],
        "retrieval",
        [helper.make_tensor_value_info("k", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("top", TensorProto.STRING, [None])],
        initializer=[ids],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "retrieval.onnx"
    onnx.save(model, str(path))
    runner = OnnxRunner(path)
    assert not runner.bindable
    prepared = runner.prepare({"k": np.array([2, 0], dtype=np.int64)})
    assert [str(x) for x in runner.run(prepared)["top"]] == ["item_2", "item_0"]
