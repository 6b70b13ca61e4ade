"""The ONNX clean-up on a real Keras 3 export, and the per-node ONNX profile in ``compare``.

A tiny Keras 3 model with integer inputs (no string stage, so it exports without a rebuild):
embeddings (Keras 3 wraps negative indices before every gather), a padding-masked mean over a
history (``mask_zero`` + ``GlobalAveragePooling1D``) and dense layers. tf2onnx's output of it
carries every pattern the clean-up removes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recadvisor.model.freeze import freeze
from recadvisor.model.load import load_model
from recadvisor.model.onnx_export import export_onnx
from recadvisor.tfimport import import_tf

HISTORY = 5
ITEMS = 30
ROWS = 64


def _feeds(rows: int = ROWS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, HISTORY + 1, rows)
    history = np.zeros((rows, HISTORY), np.int64)
    for r, n in enumerate(lengths):
        history[r, :n] = rng.integers(1, ITEMS, n)
    return {
        "history": history,
        "item": rng.integers(0, ITEMS, (rows, 1)).astype(np.int64),
        "price": rng.uniform(0, 10, (rows, 1)).astype(np.float32),
    }


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import_tf()
    import keras

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("onnx_cleanup")
    history = keras.Input(shape=(HISTORY,), dtype="int64", name="history")
    item = keras.Input(shape=(1,), dtype="int64", name="item")
    price = keras.Input(shape=(1,), dtype="float32", name="price")
    table = keras.layers.Embedding(ITEMS, 8, mask_zero=True)
    pooled = keras.layers.GlobalAveragePooling1D()(table(history))
    item_vec = keras.layers.Flatten()(keras.layers.Embedding(ITEMS, 8)(item))
    x = keras.layers.Concatenate()([pooled, item_vec, price])
    # non-zero biases: an all-zero bias is folded away before conversion
    x = keras.layers.Dense(16, activation="relu", bias_initializer="ones")(x)
    out = keras.layers.Dense(1, activation="sigmoid", bias_initializer="ones", name="score")(x)
    model = keras.Model([history, item, price], out)
    model_dir = root / "model"
    model.export(str(model_dir), format="tf_saved_model", verbose=False)
    feeds = _feeds()
    frame = pd.DataFrame({k: list(v) if v.shape[1] > 1 else v[:, 0] for k, v in feeds.items()})
    frame.to_parquet(root / "sample.parquet")
    return model_dir, root / "sample.parquet"


@pytest.fixture(scope="module")
def exports(keras_model: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    import onnx

    graph = freeze(load_model(keras_model[0]))
    feeds = _feeds()
    root = tmp_path_factory.mktemp("onnx_exports")
    raw = export_onnx(graph, root / "raw.onnx", feeds, cleanup=False)
    cleaned = export_onnx(graph, root / "model.onnx", feeds)
    models = {k: onnx.load(str(root / f"{k}.onnx")) for k in ("raw", "model")}
    return raw, cleaned, models


def test_cleanup_removes_what_tf2onnx_leaves_with_parity(exports: Any) -> None:
    raw, cleaned, models = exports
    raw_ops = Counter(n.op_type for n in models["raw"].graph.node)
    ops = Counter(n.op_type for n in models["model"].graph.node)
    # tf2onnx's output has the Keras index wrap (Less) and arithmetic selects (Not)
    assert raw_ops["Less"] >= 2 and raw_ops["Not"] >= 2 and raw.cleanup == {}
    assert ops["Less"] == 0 and ops["Where"] == 0 and ops["MatMul"] == 0
    assert ops["Not"] == 1  # the mask's own NotEqual, counted for the mean's denominator
    assert ops["Gemm"] == 2
    rewrites = cleaned.cleanup["rewrites"]
    for name in ("restore_where", "drop_index_wrap", "fold_gather_mask", "matmul_add_to_gemm"):
        assert rewrites.get(name, 0) >= 1, rewrites
    assert cleaned.cleanup["nodes_before"] == sum(raw_ops.values())
    assert cleaned.cleanup["nodes_after"] == sum(ops.values()) < sum(raw_ops.values()) // 2
    assert cleaned.onnx_ops == dict(ops.most_common())
    # the parity export_onnx checked is of the cleaned model it wrote
    assert cleaned.max_abs_diff <= 1e-5 and cleaned.tolerance == 1e-5


def test_compare_reports_onnx_time_per_node(
    keras_model: tuple[Path, Path], exports: Any, tmp_path: Path
) -> None:
    from recadvisor import api

    _, cleaned, _ = exports
    model_dir, data = keras_model
    out = tmp_path / "report"
    api.compare(
        model_dir,
        [cleaned.path],
        data=data,
        batch_sizes=(1, 16),
        requests=5,
        measure_memory=False,
        out_dir=out,
    )
    result = json.loads((out / "compare.json").read_text())
    base, onnx_model = result["models"]
    assert base["onnx_profile"] is None
    assert onnx_model["kind"] == "onnx" and onnx_model["parity_passed"]
    profile = onnx_model["onnx_profile"]
    assert set(profile["batches"]) == {"1", "16"}
    for bs, batch in profile["batches"].items():
        assert batch["batch_size"] == int(bs) and batch["calls"] == 50
        per_op = batch["per_op_type"]
        assert sum(o["share"] for o in per_op) == pytest.approx(1.0, abs=1e-6)
        assert sum(o["nodes"] for o in per_op) == batch["node_count"]
        assert sum(o["us_per_call"] for o in per_op) == pytest.approx(batch["kernel_us"])
        assert 0 < batch["kernel_us"] <= batch["run_us"]
        assert "Gather" in {o["name"] for o in per_op}
        top = [n["us_per_call"] for n in batch["top_nodes"]]
        assert top == sorted(top, reverse=True) and len(top) <= 10
    html = (out / "compare.html").read_text()
    assert "Where the ONNX time goes" in html and "Gather" in html
