"""Tiny models for the rewrite tests, built once per session.

``ranker``: a TF2 ``tf.Module`` with two heads (``ctr``, ``cvr``), a user id hashed twice with the
same bucket count (wide and deep parts), two identical item vocabularies (``StaticHashTable``), a
Dense-style ``MatMul + BiasAdd + Relu`` layer and an input (``unused``) whose sub-graph (lookup +
gather through its own table) no output reads; automatic control dependencies tie it to the outputs.
``tf1_ranker``: the same idea written with ``tf.compat.v1`` and exported by ``SavedModelBuilder``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from recadvisor.model.freeze import freeze
from recadvisor.model.graph import ModelGraph
from recadvisor.model.load import load_model
from recadvisor.model.runtime import GraphRunner
from recadvisor.rewrite.base import PassResult, RewriteContext
from recadvisor.rewrite.registry import get_pass
from recadvisor.tfimport import import_tf

ITEMS = ["apple", "banana", "cherry", "date", "elder"]
N_ROWS = 32


@dataclass(frozen=True)
class TinyModel:
    """A saved model, its frozen graph and sample feeds."""

    path: Path
    graph: ModelGraph
    feeds: dict[str, np.ndarray]


def sample_feeds(n_rows: int = N_ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    """Raw inputs for both tiny rankers (some items are out of vocabulary)."""
    rng = np.random.default_rng(seed)
    items = ITEMS + ["unknown"]
    return {
        "user": np.array([f"u{k}" for k in rng.integers(0, 40, n_rows)], dtype=object),
        "item": np.array([items[k] for k in rng.integers(0, len(items), n_rows)], dtype=object),
        "price": rng.normal(size=(n_rows, 1)).astype(np.float32),
        "unused": np.array(["x"] * n_rows, dtype=object),
    }


def build_ranker(path: Path) -> Path:
    """Save the TF2 ranker to ``path``."""
    tf = import_tf()
    rng = np.random.default_rng(0)

    def var(*shape: int) -> object:
        return tf.Variable((0.3 * rng.normal(size=shape)).astype(np.float32))

    def vocab() -> object:
        init = tf.lookup.KeyValueTensorInitializer(
            tf.constant(ITEMS), tf.constant(np.arange(1, len(ITEMS) + 1), tf.int64)
        )
        return tf.lookup.StaticHashTable(init, default_value=0)

    module = tf.Module()
    module.user_wide, module.user_deep = var(30, 1), var(30, 8)
    module.item_emb, module.item_bias = var(len(ITEMS) + 1, 8), var(len(ITEMS) + 1, 1)
    module.w1, module.b1 = var(17, 16), var(16)
    module.w_ctr, module.w_cvr = var(16, 1), var(16, 1)
    module.vocab_a, module.vocab_b = vocab(), vocab()
    module.unused_emb = var(7, 2)
    module.unused_vocab = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(["x", "y"]), tf.constant([1, 2], tf.int64)),
        default_value=0,
    )
    specs = {
        "user": tf.TensorSpec([None], tf.string, name="user"),
        "item": tf.TensorSpec([None], tf.string, name="item"),
        "price": tf.TensorSpec([None, 1], tf.float32, name="price"),
        "unused": tf.TensorSpec([None], tf.string, name="unused"),
    }

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        wide = tf.gather(module.user_wide, tf.strings.to_hash_bucket_fast(f["user"], 30))
        deep = tf.gather(module.user_deep, tf.strings.to_hash_bucket_fast(f["user"], 30))
        item = tf.gather(module.item_emb, module.vocab_a.lookup(f["item"]))
        item_bias = tf.gather(module.item_bias, module.vocab_b.lookup(f["item"]))
        x = tf.concat([deep, item, f["price"]], axis=1)
        hidden = tf.nn.relu(tf.nn.bias_add(tf.matmul(x, module.w1), module.b1))
        logit = wide + item_bias
        tf.gather(tf.convert_to_tensor(module.unused_emb), module.unused_vocab.lookup(f["unused"]))
        return {
            "ctr": tf.sigmoid(tf.matmul(hidden, module.w_ctr) + logit),
            "cvr": tf.sigmoid(tf.matmul(hidden, module.w_cvr)),
        }

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def build_tf1_ranker(path: Path) -> Path:
    """Save a TF1-style (Session, SavedModelBuilder) model with a HashTableV2 to ``path``."""
    tf = import_tf()
    v1 = tf.compat.v1
    rng = np.random.default_rng(1)
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        user = v1.placeholder(tf.string, [None], name="user")
        item = v1.placeholder(tf.string, [None], name="item")
        price = v1.placeholder(tf.float32, [None, 1], name="price")
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(ITEMS), tf.constant(np.arange(1, len(ITEMS) + 1), tf.int64)
            ),
            0,
        )
        user_emb = v1.get_variable("user_emb", initializer=rng.normal(size=(20, 4)).astype("f4"))
        item_emb = v1.get_variable("item_emb", initializer=rng.normal(size=(6, 4)).astype("f4"))
        w = v1.get_variable("w", initializer=rng.normal(size=(9, 1)).astype("f4"))
        x = tf.concat(
            [
                tf.gather(user_emb, tf.strings.to_hash_bucket_fast(user, 20)),
                tf.gather(item_emb, table.lookup(item)),
                price,
            ],
            axis=1,
        )
        score = tf.sigmoid(tf.matmul(x, w), name="score")
        sess.run([v1.global_variables_initializer(), v1.tables_initializer()])
        builder = v1.saved_model.Builder(str(path))
        sig = v1.saved_model.predict_signature_def(
            {"user": user, "item": item, "price": price}, {"score": score}
        )
        builder.add_meta_graph_and_variables(
            sess,
            ["serve"],
            signature_def_map={"serving_default": sig},
            main_op=v1.tables_initializer(),
        )
        builder.save()
    return path


@pytest.fixture(scope="session")
def ranker(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """The TF2 ranker, frozen, with sample feeds."""
    path = build_ranker(tmp_path_factory.mktemp("ranker") / "model")
    return TinyModel(path, freeze(load_model(path)), sample_feeds())


@pytest.fixture(scope="session")
def tf1_ranker(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """The TF1-style ranker, frozen, with sample feeds (no ``unused`` input)."""
    path = build_tf1_ranker(tmp_path_factory.mktemp("tf1_ranker") / "model")
    feeds = {k: v for k, v in sample_feeds().items() if k != "unused"}
    return TinyModel(path, freeze(load_model(path)), feeds)


def apply_pass(
    name: str, graph: ModelGraph, feeds: dict[str, np.ndarray], params: dict | None = None
) -> PassResult:
    """Apply one registered pass with the feeds as context."""
    return get_pass(name).apply(graph, params or {}, RewriteContext(feeds, feeds))


def max_diff(graph_a: ModelGraph, graph_b: ModelGraph, feeds: dict[str, np.ndarray]) -> float:
    """Largest abs difference over the outputs ``graph_b`` has, both run on ``feeds``."""
    a, b = GraphRunner(graph_a)(feeds), GraphRunner(graph_b)(feeds)
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in b)


@pytest.fixture(scope="session")
def ranker_stripped(ranker: TinyModel) -> ModelGraph:
    """The TF2 ranker after ``strip_control_deps``."""
    return apply_pass("strip_control_deps", ranker.graph, ranker.feeds).graph
