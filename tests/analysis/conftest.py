"""Tiny models for the analyzer tests, built once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recadvisor.tfimport import import_tf

AGE_BUCKETS = 100
ITEM_VOCAB = [f"item{i}" for i in range(40)]


def build_tiny_ranker(path: Path) -> Path:
    """A tf.Module ranker: ``age`` (int64) through AsString + StringToHashBucketFast, ``item_id``
    (string) through a StaticHashTable, two embedding gathers, an age x item interaction, a
    2-layer MLP; ``price`` goes straight into the MLP and ``request_id`` is never read."""
    tf = import_tf()
    rng = np.random.default_rng(0)

    class TinyRanker(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.age_emb = tf.Variable(rng.normal(size=(AGE_BUCKETS, 8)).astype("float32"))
            self.item_emb = tf.Variable(rng.normal(size=(len(ITEM_VOCAB) + 1, 8)).astype("float32"))
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(ITEM_VOCAB), tf.range(1, len(ITEM_VOCAB) + 1, dtype=tf.int64)
                ),
                default_value=0,
            )
            self.w1 = tf.Variable(rng.normal(size=(18, 32)).astype("float32"))
            self.b1 = tf.Variable(np.zeros(32, "float32"))
            self.w2 = tf.Variable(rng.normal(size=(32, 1)).astype("float32"))
            self.b2 = tf.Variable(np.zeros(1, "float32"))

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 1], tf.int64, name="age"),
                tf.TensorSpec([None, 1], tf.string, name="item_id"),
                tf.TensorSpec([None, 1], tf.float32, name="price"),
                tf.TensorSpec([None, 1], tf.string, name="request_id"),
            ]
        )
        def serve(self, age, item_id, price, request_id):
            del request_id  # declared, never read
            a = tf.strings.to_hash_bucket_fast(tf.strings.as_string(age), AGE_BUCKETS)
            ae = tf.reshape(tf.gather(self.age_emb, a), [-1, 8])
            ie = tf.reshape(tf.gather(self.item_emb, self.table.lookup(item_id)), [-1, 8])
            cross = tf.reduce_sum(ae * ie, axis=1, keepdims=True)
            x = tf.concat([ae, ie, cross, price], axis=1)
            h = tf.nn.relu(tf.matmul(x, self.w1) + self.b1)
            return {"score": tf.sigmoid(tf.matmul(h, self.w2) + self.b2)}

    module = TinyRanker()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def tiny_ranker_feeds(n: int = 64) -> dict[str, np.ndarray]:
    """Sample rows for :func:`build_tiny_ranker` (some item ids out of vocabulary)."""
    rng = np.random.default_rng(1)
    return {
        "age": rng.integers(18, 80, (n, 1)).astype("int64"),
        "item_id": np.array([[f"item{i}"] for i in rng.integers(0, 50, n)], dtype=object),
        "price": rng.uniform(1, 100, (n, 1)).astype("float32"),
        "request_id": np.array([[f"r{i}"] for i in range(n)], dtype=object),
    }


@pytest.fixture(scope="session")
def tiny_ranker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_ranker(tmp_path_factory.mktemp("tiny_ranker") / "model")


@pytest.fixture(scope="session")
def tiny_ranker(tiny_ranker_dir: Path) -> Any:
    from recadvisor.model.load import load_model

    return load_model(tiny_ranker_dir)


@pytest.fixture(scope="session")
def tiny_ranker_graph(tiny_ranker: Any) -> Any:
    from recadvisor.model.freeze import freeze

    return freeze(tiny_ranker)


@pytest.fixture(scope="session")
def tiny_ranker_feeds_fixture() -> dict[str, np.ndarray]:
    return tiny_ranker_feeds()


@pytest.fixture(scope="session")
def tiny_ranker_profile(
    tiny_ranker: Any, tiny_ranker_graph: Any, tiny_ranker_feeds_fixture: dict[str, np.ndarray]
) -> Any:
    from recadvisor.analysis.profile import profile_model

    return profile_model(
        tiny_ranker,
        tiny_ranker_graph,
        tiny_ranker_feeds_fixture,
        (1, 64),
        warmup=3,
        calls=20,
        trace_calls=5,
    )
