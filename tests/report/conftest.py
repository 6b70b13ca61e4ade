"""Fixtures for the report tests: hand-made dicts and one real tiny analysis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.report import fixtures

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture()
def analysis_dict() -> dict[str, Any]:
    return fixtures.analysis_dict()


@pytest.fixture()
def comparison_dict() -> dict[str, Any]:
    return fixtures.comparison_dict()


@pytest.fixture()
def rebuild_dict() -> dict[str, Any]:
    return fixtures.rebuild_dict()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def build_tiny_ranker(path: Path) -> Path:
    """A tiny TF2 ranker: hashed string ids, a numeric hashed as a string, a vocabulary table,
    two embedding tables, a small MLP and an input the graph never reads."""
    from recadvisor.tfimport import import_tf

    tf = import_tf()
    rng = np.random.default_rng(0)

    class Ranker(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.user_emb = tf.Variable(rng.normal(size=(400, 8)).astype("float32"))
            self.age_emb = tf.Variable(rng.normal(size=(100, 8)).astype("float32"))
            self.cat_emb = tf.Variable(rng.normal(size=(5, 8)).astype("float32"))
            self.kernel = tf.Variable(rng.normal(size=(24, 8)).astype("float32"))
            self.bias = tf.Variable(np.zeros(8, "float32"))
            self.out = tf.Variable(rng.normal(size=(8, 1)).astype("float32"))
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(["books", "music", "games", "food"]),
                    tf.constant([1, 2, 3, 4], tf.int64),
                ),
                default_value=0,
            )

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="user_id"),
                tf.TensorSpec([None], tf.int64, name="age"),
                tf.TensorSpec([None], tf.string, name="category"),
                tf.TensorSpec([None], tf.string, name="request_id"),
            ]
        )
        def serve(self, user_id, age, category, request_id):
            del request_id  # declared, never read
            u = tf.strings.to_hash_bucket_fast(user_id, 400)
            a = tf.strings.to_hash_bucket_fast(tf.strings.as_string(age), 100)
            c = self.table.lookup(category)
            x = tf.concat(
                [
                    tf.gather(self.user_emb, u),
                    tf.gather(self.age_emb, a),
                    tf.gather(self.cat_emb, c),
                ],
                axis=1,
            )
            h = tf.nn.relu(tf.matmul(x, self.kernel) + self.bias)
            return {"score": tf.sigmoid(tf.squeeze(tf.matmul(h, self.out), 1))}

    model = Ranker()
    tf.saved_model.save(
        model, str(path), signatures={"serving_default": model.serve.get_concrete_function()}
    )
    return path


def tiny_sample_frame(rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in rng.integers(0, 60, rows)],
            "age": rng.integers(18, 70, rows).astype("int64"),
            "category": rng.choice(["books", "music", "games", "food", "toys"], rows),
            "request_id": [f"r{i}" for i in range(rows)],
            "label": rng.integers(0, 2, rows).astype("int64"),
        }
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(SavedModel dir, sample Parquet file) of the tiny ranker."""
    root = tmp_path_factory.mktemp("tiny")
    model_dir = build_tiny_ranker(root / "model")
    data = root / "sample.parquet"
    tiny_sample_frame().to_parquet(data)
    return model_dir, data


@pytest.fixture(scope="session")
def written_artifacts(
    tiny_model: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny ranker through the public API as the demo runs it: ``analysis/`` (analyze),
    ``fast/`` (rebuild ``fast`` with ONNX), ``compare/`` (baseline vs both, timed briefly,
    memory not measured: the demo test measures it)."""
    from recadvisor import api

    model_dir, data = tiny_model
    root = tmp_path_factory.mktemp("artifacts")
    api.analyze(model_dir, data=data, out_dir=root / "analysis", batch_sizes=(1, 32), preset="fast")
    rebuilt = api.rebuild(model_dir, root / "fast", preset="fast", data=data, onnx=True)
    api.compare(
        model_dir,
        [root / "fast", root / "fast" / "model.onnx"],
        data=data,
        batch_sizes=(1, 32),
        requests=30,
        measure_memory=False,
        out_dir=root / "compare",
        rebuild_info=rebuilt.to_dict(),
    )
    return root


@pytest.fixture(scope="session")
def real_analysis(written_artifacts: Path) -> dict[str, Any]:
    """``analysis.json`` of the tiny ranker, as written."""
    return json.loads((written_artifacts / "analysis" / "analysis.json").read_text())


@pytest.fixture(scope="session")
def real_comparison(written_artifacts: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``compare.json``, ``rebuild.json``) of the tiny ranker rebuilt with ``fast``."""
    return (
        json.loads((written_artifacts / "compare" / "compare.json").read_text()),
        json.loads((written_artifacts / "fast" / "rebuild.json").read_text()),
    )
