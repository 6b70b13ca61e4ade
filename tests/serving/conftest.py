"""Tiny models for the serving-runtime tests, built once per session.

``two_tower``: a TF2 ``tf.Module`` with string ids (hashed to embedding rows), float and int64
inputs, per-request inputs named ``user_*`` and two outputs (``score``, ``user_vec``), saved with
a ``sample.parquet`` beside it. Some user ids are longer than TensorFlow's inline string size, so
the C program's heap-string path runs too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recadvisor.tfimport import import_tf

N_ROWS = 64


@dataclass(frozen=True)
class ServingModel:
    """A saved model dir, its sample data file and raw feeds."""

    path: Path
    data: Path
    feeds: dict[str, np.ndarray]


def two_tower_feeds(n_rows: int = N_ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows of 8 users (a user's age is the same on all its rows) and 20 items."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 8, n_rows)
    long_name = "user-with-a-name-longer-than-the-inline-buffer-"
    return {
        "user_id": np.array(
            [f"{long_name}{u}" if u % 2 else f"u{u}é" for u in users], dtype=object
        ),
        "user_age": (20 + 3 * users).astype(np.float32),
        "item_id": np.array([f"i{k}" for k in rng.integers(0, 20, n_rows)], dtype=object),
        "item_price": rng.normal(size=n_rows).astype(np.float32),
        "item_count": rng.integers(0, 5, n_rows).astype(np.int64),
    }


def build_two_tower(path: Path) -> Path:
    """Save the two-tower model to ``path``."""
    tf = import_tf()
    rng = np.random.default_rng(1)

    class TwoTower(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.user_emb = tf.Variable(rng.normal(size=(50, 4)).astype(np.float32))
            self.item_emb = tf.Variable(rng.normal(size=(50, 4)).astype(np.float32))
            self.w = tf.Variable(rng.normal(size=(1, 4)).astype(np.float32))

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="user_id"),
                tf.TensorSpec([None], tf.float32, name="user_age"),
                tf.TensorSpec([None], tf.string, name="item_id"),
                tf.TensorSpec([None], tf.float32, name="item_price"),
                tf.TensorSpec([None], tf.int64, name="item_count"),
            ]
        )
        def serve(self, user_id, user_age, item_id, item_price, item_count):  # noqa: ANN001
            user = tf.gather(self.user_emb, tf.strings.to_hash_bucket_fast(user_id, 50))
            user = tf.nn.relu(user * (1.0 + 0.01 * user_age[:, None]))
            item = tf.gather(self.item_emb, tf.strings.to_hash_bucket_fast(item_id, 50))
            count = tf.cast(item_count, tf.float32)[:, None]
            item = item + item_price[:, None] * self.w + 0.1 * count
            score = tf.sigmoid(tf.reduce_sum(user * item, axis=1))
            return {"score": score, "user_vec": user}

    module = TwoTower()
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.serve.get_concrete_function()}
    )
    return path


@pytest.fixture(scope="session")
def two_tower(tmp_path_factory: pytest.TempPathFactory) -> ServingModel:
    root = tmp_path_factory.mktemp("serving")
    path = build_two_tower(root / "two_tower")
    feeds = two_tower_feeds()
    frame = pd.DataFrame({k: list(v) for k, v in feeds.items()})
    frame["label"] = (np.arange(N_ROWS) % 3 == 0).astype(np.int64)
    data = root / "sample.parquet"
    frame.to_parquet(data)
    return ServingModel(path, data, feeds)
