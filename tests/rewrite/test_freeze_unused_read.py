"""Freezing a model with a variable read no output needs (an unused ``tf.gather(variable)``).

Grappler will not inline a function holding a stateful op with no control edge to the outputs,
and ``convert_variables_to_constants_v2`` does not convert variable reads inside functions, so
a plain freeze fails with "expected type resource != float". freeze retries with aggressive
inlining, which inlines and prunes the read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recadvisor.model.freeze import freeze
from recadvisor.model.load import load_model
from recadvisor.model.runtime import GraphRunner, run_loaded
from recadvisor.rebuild import rebuild
from recadvisor.tfimport import import_tf


@pytest.fixture(scope="module")
def unused_read_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tf = import_tf()
    rng = np.random.default_rng(0)
    module = tf.Module()
    module.emb = tf.Variable(rng.normal(size=(6, 3)).astype(np.float32))
    module.unused = tf.Variable(rng.normal(size=(9, 2)).astype(np.float32))

    @tf.function(input_signature=[{"ids": tf.TensorSpec([None], tf.int64, name="ids")}])
    def serve(f: dict) -> dict:
        tf.gather(module.unused, f["ids"])  # a ResourceGather whose result nothing reads
        return {"score": tf.reduce_sum(tf.gather(module.emb, f["ids"]), axis=1)}

    module.serve = serve
    path = tmp_path_factory.mktemp("unused_read") / "model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def test_freezes_and_matches(unused_read_model: Path) -> None:
    loaded = load_model(unused_read_model)
    graph = freeze(loaded)
    ops = graph.op_counts()
    assert "ResourceGather" not in ops and ops["GatherV2"] == 1  # the unused read is gone
    feeds = {"ids": np.array([0, 5, 2, 2], np.int64)}
    expected = run_loaded(loaded.function, loaded.spec.inputs, feeds)
    got = GraphRunner(graph)(feeds)
    assert np.array_equal(got["score"], expected["score"])


def test_rebuilds(unused_read_model: Path, tmp_path: Path) -> None:
    feeds = {"ids": np.arange(6, dtype=np.int64)}
    result = rebuild(unused_read_model, tmp_path / "out", data=feeds)
    report = json.loads((tmp_path / "out" / "rebuild.json").read_text())
    assert result.passed and report["parity"]["freeze_vs_original"]["max_abs_diff"] == 0
