"""Tiny models for the contract-changing and table passes, built once per test process.

``hashing_ranker``: string ids hashed (``user_id`` [N], ``item_id`` [N,1] through a Reshape), a
numeric input formatted and hashed (``age`` [N,1], values 18..70; the ids sliced ``[:, 0]``), a
string vocabulary (``StaticHashTable``, ``category``) and a dense input (``price``, through
``log1p``) -> concat -> MLP -> ``score`` and ``logit``. ``item_emb`` has rank 3 (plus tiny
noise) so truncated SVD keeps 3 of 16 dims.

``two_tower``: a DSSM-like model. User side: ``user_id`` (hash 1000), ``user_age`` (dense),
``hist_item_id`` [N,5] (hash 500, a history of items padded with ``""``, mean-pooled under the
mask ``hist_item_id != ""``); item side: ``item_id`` (hash 500) and ``item_price``. ``hist_emb``
is ``item_emb`` plus small noise (one id space, two tables). Outputs ``score`` (dot product) and
``user_vec`` (user side only).

``int_lookup``: int64 codes looked up in an int64->int64 table, plus a declared string
``request_id`` nothing reads. ``segment_history``: a padded id history ``hist`` [N,5] (``-1``
pads, some rows all padding) made sparse like a feature column (``tf.where``): the sequence
lengths by ``segment_max`` over the sorted row ids, a ``segment_min`` of negated values, the
embeddings' ``sparse.segment_mean`` and ``sparse.segment_sum`` by row, and
embeddings reshaped ``[N*5, 4]`` -> ``[N, 5, 4]`` and again to their own dims.
``batch_reduce``: a user side summed over the batch (not row-wise).

``double_hash``: negative cases: ``user_id`` hashed into 100 and into 1000 buckets, ``age`` used
both as a number and formatted as a string.

``cast_ids``: ``age`` [N,1] hashed, its ids reshaped to ``tf.shape(ids)[:1]`` and cast to int32
before the gather (rewritable); ``year`` hashed and offset by one (``ids + 1``) before its gather
(not rewritable: the offset would apply to bucket indices).

Builders are cached with ``functools.cache`` so every test module shares one build.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from recadvisor.model.freeze import freeze
from recadvisor.model.graph import ModelGraph
from recadvisor.model.load import LoadedModel, load_model
from recadvisor.model.runtime import run_loaded
from recadvisor.rewrite.base import RewriteContext
from recadvisor.tfimport import import_tf

CATEGORIES = ["books", "games", "music", "garden", "toys"]
N_ROWS = 256


@dataclass(frozen=True)
class ContractModel:
    """A saved model, the loaded signature, its frozen graph, raw sample feeds and labels."""

    path: Path
    loaded: LoadedModel
    graph: ModelGraph
    feeds: dict[str, np.ndarray]
    labels: np.ndarray

    def run_original(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the original (loaded, unfrozen) signature."""
        return run_loaded(self.loaded.function, self.loaded.spec.inputs, feeds)

    def context(self, labels: bool = True) -> RewriteContext:
        """The sample rows as a pass context (raw feeds = feeds), with the labels by default."""
        return RewriteContext(self.feeds, self.feeds, self.labels if labels else None)


_TMP = Path(tempfile.mkdtemp(prefix="recadvisor-contract-"))
atexit.register(shutil.rmtree, _TMP, True)


def _finish(module: Any, serve: Any, name: str, feeds: dict[str, np.ndarray]) -> ContractModel:
    tf = import_tf()
    path = _TMP / name
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    loaded = load_model(path)
    graph = freeze(loaded)
    out = run_loaded(loaded.function, loaded.spec.inputs, feeds)
    score = np.asarray(out["score"]).reshape(-1)
    rng = np.random.default_rng(7)
    labels = (rng.random(score.shape[0]) < score).astype(np.int64)
    return ContractModel(path, loaded, graph, feeds, labels)


def ranker_feeds(n_rows: int = N_ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    """Raw inputs for ``hashing_ranker``: 120 users, 80 items, ages 18..70, one OOV category."""
    rng = np.random.default_rng(seed)
    cats = CATEGORIES + ["unknown"]
    ages = np.concatenate([np.arange(18, 71), rng.integers(18, 71, max(0, n_rows - 53))])[:n_rows]
    return {
        "user_id": np.array([f"user_{k}" for k in rng.integers(0, 120, n_rows)], dtype=object),
        "item_id": np.array([[f"item_{k}"] for k in rng.integers(0, 80, n_rows)], dtype=object),
        "age": rng.permutation(ages).reshape(n_rows, 1).astype(np.int64),
        "category": np.array([cats[k] for k in rng.integers(0, len(cats), n_rows)], dtype=object),
        "price": rng.normal(size=(n_rows, 1)).astype(np.float32),
    }


@cache
def hashing_ranker() -> ContractModel:
    """Build (once) the hashing ranker described in the module docstring."""
    tf = import_tf()
    rng = np.random.default_rng(0)

    def var(value: np.ndarray) -> Any:
        return tf.Variable(value.astype(np.float32))

    module = tf.Module()
    module.user_emb = var(0.5 * rng.normal(size=(1000, 8)))
    low_rank = rng.normal(size=(500, 3)) @ rng.normal(size=(3, 16))
    module.item_emb = var(0.3 * low_rank + 1e-4 * rng.normal(size=(500, 16)))
    module.age_emb = var(0.5 * rng.normal(size=(100, 4)))
    module.cat_emb = var(0.5 * rng.normal(size=(len(CATEGORIES) + 1, 4)))
    module.w1, module.b1 = var(0.3 * rng.normal(size=(33, 16))), var(0.1 * rng.normal(size=16))
    module.w2 = var(0.3 * rng.normal(size=(16, 1)))
    module.vocab = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(CATEGORIES), tf.constant(np.arange(len(CATEGORIES)), tf.int64)
        ),
        default_value=len(CATEGORIES),
    )
    specs = {
        "user_id": tf.TensorSpec([None], tf.string, name="user_id"),
        "item_id": tf.TensorSpec([None, 1], tf.string, name="item_id"),
        "age": tf.TensorSpec([None, 1], tf.int64, name="age"),
        "category": tf.TensorSpec([None], tf.string, name="category"),
        "price": tf.TensorSpec([None, 1], tf.float32, name="price"),
    }

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        user = tf.gather(module.user_emb, tf.strings.to_hash_bucket_fast(f["user_id"], 1000))
        item_ids = tf.strings.to_hash_bucket_fast(tf.reshape(f["item_id"], [-1]), 500)
        item = tf.gather(module.item_emb, item_ids)
        age_ids = tf.strings.to_hash_bucket_fast(tf.strings.as_string(f["age"]), 100)[:, 0]
        age = tf.gather(module.age_emb, age_ids)
        cat = tf.gather(module.cat_emb, module.vocab.lookup(f["category"]))
        price = tf.math.log1p(tf.abs(f["price"]))
        x = tf.concat([user, item, age, cat, price], axis=1)
        hidden = tf.nn.relu(tf.matmul(x, module.w1) + module.b1)
        logit = tf.matmul(hidden, module.w2)
        return {"score": tf.sigmoid(logit), "logit": logit}

    module.serve = serve
    return _finish(module, serve, "hashing_ranker", ranker_feeds())


def two_tower_feeds(n_rows: int = N_ROWS, seed: int = 1) -> dict[str, np.ndarray]:
    """Raw inputs for ``two_tower`` (every row a different user)."""
    rng = np.random.default_rng(seed)
    return {
        "user_id": np.array([f"u{k}" for k in rng.integers(0, 300, n_rows)], dtype=object),
        "user_age": rng.uniform(18, 70, size=(n_rows, 1)).astype(np.float32),
        "hist_item_id": np.array(
            [
                [f"item_{k}" if k < 80 else "" for k in row]  # "" pads short histories
                for row in rng.integers(0, 100, (n_rows, 5))
            ],
            dtype=object,
        ),
        "item_id": np.array([f"item_{k}" for k in rng.integers(0, 80, n_rows)], dtype=object),
        "item_price": rng.normal(size=(n_rows, 1)).astype(np.float32),
    }


@cache
def two_tower() -> ContractModel:
    """Build (once) the two-tower model described in the module docstring."""
    tf = import_tf()
    rng = np.random.default_rng(3)

    def var(value: np.ndarray) -> Any:
        return tf.Variable(value.astype(np.float32))

    module = tf.Module()
    module.user_emb = var(0.5 * rng.normal(size=(1000, 8)))
    item_emb = 0.5 * rng.normal(size=(500, 8))
    module.item_emb = var(item_emb)
    module.hist_emb = var(item_emb + 1e-3 * rng.normal(size=(500, 8)))
    module.wu, module.bu = var(0.3 * rng.normal(size=(17, 8))), var(0.1 * rng.normal(size=8))
    module.wi, module.bi = var(0.3 * rng.normal(size=(9, 8))), var(0.1 * rng.normal(size=8))
    specs = {
        "user_id": tf.TensorSpec([None], tf.string, name="user_id"),
        "user_age": tf.TensorSpec([None, 1], tf.float32, name="user_age"),
        "hist_item_id": tf.TensorSpec([None, 5], tf.string, name="hist_item_id"),
        "item_id": tf.TensorSpec([None], tf.string, name="item_id"),
        "item_price": tf.TensorSpec([None, 1], tf.float32, name="item_price"),
    }

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        user = tf.gather(module.user_emb, tf.strings.to_hash_bucket_fast(f["user_id"], 1000))
        hist = tf.gather(module.hist_emb, tf.strings.to_hash_bucket_fast(f["hist_item_id"], 500))
        mask = tf.cast(tf.not_equal(f["hist_item_id"], ""), tf.float32)[:, :, None]
        hist = tf.reduce_sum(hist * mask, axis=1) / (tf.reduce_sum(mask, axis=1) + 1.0)
        u_in = tf.concat([user, hist, f["user_age"] / 50.0], axis=1)
        user_vec = tf.tanh(tf.matmul(u_in, module.wu) + module.bu)
        item = tf.gather(module.item_emb, tf.strings.to_hash_bucket_fast(f["item_id"], 500))
        i_in = tf.concat([item, f["item_price"]], axis=1)
        item_vec = tf.tanh(tf.matmul(i_in, module.wi) + module.bi)
        score = tf.sigmoid(tf.reduce_sum(user_vec * item_vec, axis=1, keepdims=True))
        return {"score": score, "user_vec": user_vec}

    module.serve = serve
    return _finish(module, serve, "two_tower", two_tower_feeds())


@cache
def double_hash() -> ContractModel:
    """Build (once) the negative-case model described in the module docstring."""
    tf = import_tf()
    rng = np.random.default_rng(5)
    module = tf.Module()
    module.small = tf.Variable(rng.normal(size=(100, 4)).astype(np.float32))
    module.big = tf.Variable(rng.normal(size=(1000, 4)).astype(np.float32))
    module.age_emb = tf.Variable(rng.normal(size=(50, 4)).astype(np.float32))
    specs = {
        "user_id": tf.TensorSpec([None], tf.string, name="user_id"),
        "age": tf.TensorSpec([None], tf.int64, name="age"),
    }

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        a = tf.gather(module.small, tf.strings.to_hash_bucket_fast(f["user_id"], 100))
        b = tf.gather(module.big, tf.strings.to_hash_bucket_fast(f["user_id"], 1000))
        age = tf.gather(
            module.age_emb, tf.strings.to_hash_bucket_fast(tf.strings.as_string(f["age"]), 50)
        )
        age_num = tf.cast(tf.reshape(f["age"], [-1, 1]), tf.float32) / 100.0
        score = tf.sigmoid(tf.reduce_sum(a + b + age, axis=1, keepdims=True) + age_num)
        return {"score": score}

    module.serve = serve
    rng2 = np.random.default_rng(6)
    feeds = {
        "user_id": np.array([f"u{k}" for k in rng2.integers(0, 50, 64)], dtype=object),
        "age": rng2.integers(18, 70, 64).astype(np.int64),
    }
    return _finish(module, serve, "double_hash", feeds)


@cache
def cast_ids() -> ContractModel:
    """Build (once) the ``cast_ids`` model described in the module docstring."""
    tf = import_tf()
    rng = np.random.default_rng(8)
    module = tf.Module()
    module.age_emb = tf.Variable(rng.normal(size=(60, 4)).astype(np.float32))
    module.year_emb = tf.Variable(rng.normal(size=(41, 4)).astype(np.float32))
    specs = {
        "age": tf.TensorSpec([None, 1], tf.int64, name="age"),
        "year": tf.TensorSpec([None], tf.int64, name="year"),
    }

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        age_ids = tf.strings.to_hash_bucket_fast(tf.strings.as_string(f["age"]), 60)
        flat = tf.cast(tf.reshape(age_ids, tf.shape(age_ids)[:1]), tf.int32)
        year_ids = tf.strings.to_hash_bucket_fast(tf.strings.as_string(f["year"]), 40) + 1
        x = tf.gather(module.age_emb, flat) + tf.gather(module.year_emb, year_ids)
        return {"score": tf.sigmoid(tf.reduce_sum(x, axis=1))}

    module.serve = serve
    rng2 = np.random.default_rng(9)
    feeds = {
        "age": rng2.integers(18, 71, (128, 1)).astype(np.int64),
        "year": rng2.integers(1990, 2021, 128).astype(np.int64),
    }
    return _finish(module, serve, "cast_ids", feeds)


@cache
def int_lookup() -> ContractModel:
    """Integer codes looked up in an int64->int64 table (what tf2onnx refuses) + a dense input."""
    tf = import_tf()
    rng = np.random.default_rng(8)
    codes = np.array([100, 205, 310, 415, 520, 612, 730, 801], np.int64)
    module = tf.Module()
    module.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(codes), tf.constant(np.arange(1, codes.size + 1), tf.int64)
        ),
        default_value=0,
    )
    module.emb = tf.Variable(rng.normal(size=(codes.size + 1, 4)).astype(np.float32))
    module.w = tf.Variable(rng.normal(size=(5, 1)).astype(np.float32))
    specs = {
        "code": tf.TensorSpec([None], tf.int64, name="code"),
        "x": tf.TensorSpec([None, 1], tf.float32, name="x"),
        "request_id": tf.TensorSpec([None], tf.string, name="request_id"),
    }

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        e = tf.gather(module.emb, module.table.lookup(f["code"]))
        return {"score": tf.sigmoid(tf.matmul(tf.concat([e, f["x"]], 1), module.w))}

    module.serve = serve
    rng2 = np.random.default_rng(9)
    pool = np.concatenate([codes, [0, 101, 999, -5]])
    feeds = {
        "code": rng2.choice(pool, 64).astype(np.int64),
        "x": rng2.normal(size=(64, 1)).astype(np.float32),
        "request_id": np.array([f"r{i}" for i in range(64)], dtype=object),
    }
    return _finish(module, serve, "int_lookup", feeds)


@cache
def batch_reduce() -> ContractModel:
    """A user side summed over the batch (not row-wise): per_request_dedup must refuse it."""
    tf = import_tf()
    module = tf.Module()
    module.w = tf.Variable(np.ones((4, 1), np.float32))
    specs = {
        "user_x": tf.TensorSpec([None, 4], tf.float32, name="user_x"),
        "item_x": tf.TensorSpec([None, 4], tf.float32, name="item_x"),
    }

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        user_total = tf.reduce_sum(f["user_x"], axis=0)
        return {"score": tf.sigmoid(tf.matmul(f["item_x"] * user_total, module.w))}

    module.serve = serve
    rng = np.random.default_rng(10)
    feeds = {
        "user_x": rng.normal(size=(8, 4)).astype(np.float32),
        "item_x": rng.normal(size=(8, 4)).astype(np.float32),
    }
    return _finish(module, serve, "batch_reduce", feeds)


def _diff(a: Any, b: Any) -> float:
    x, y = np.asarray(a), np.asarray(b)
    if x.dtype.kind in "OSU" or y.dtype.kind in "OSU":  # string outputs: equal or not

        def text(v: Any) -> str:
            return v.decode() if isinstance(v, bytes) else str(v)

        same = x.shape == y.shape and all(
            text(p) == text(q) for p, q in zip(x.reshape(-1), y.reshape(-1), strict=True)
        )
        return 0.0 if same else float("inf")
    return float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))))


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Largest absolute difference over the outputs both dicts hold (strings: 0 or inf)."""
    return max(_diff(a[k], b[k]) for k in a if k in b)


@cache
def segment_history() -> ContractModel:
    """Sorted segment reductions (``SegmentMax``/``SegmentMin``) and a reshape to own dims."""
    tf = import_tf()
    rng = np.random.default_rng(11)
    module = tf.Module()
    module.emb = tf.Variable(rng.normal(size=(20, 4)).astype(np.float32))
    specs = {
        "hist": tf.TensorSpec([None, None], tf.int64, name="hist"),  # T unknown
        "x": tf.TensorSpec([None, 5], tf.float32, name="x"),
    }

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        hist = f["hist"]
        where = tf.where(hist >= 0)  # [nnz, 2], sorted by row
        rows = where[:, 0]
        lengths = tf.math.segment_max(where[:, 1] + 1, rows)  # a feature column's seq length
        lowest = tf.math.segment_min(-tf.gather_nd(f["x"], where), rows)
        pooled = tf.sparse.segment_mean(module.emb, tf.gather_nd(hist, where), rows)
        summed = tf.sparse.segment_sum(module.emb, tf.gather_nd(hist, where), rows)
        ids = tf.maximum(hist, 0)
        e = tf.gather(module.emb, ids)  # [N, 5, 4]
        flat = tf.gather(module.emb, tf.reshape(ids, [-1]))  # [N * 5, 4], not a Reshape
        back = tf.reshape(flat, tf.concat([tf.shape(hist, out_type=tf.int32), [4]], 0))
        again = tf.reshape(back, [tf.shape(back)[0], tf.shape(back)[1], 4])  # a no-op
        swapped = tf.reshape(e, [tf.shape(e)[1], tf.shape(e)[0], 4])  # not a no-op
        score = tf.sigmoid(tf.reduce_sum(again, [1, 2]) + tf.reduce_sum(swapped) * 1e-3)
        return {
            "score": score,
            "lengths": lengths,
            "lowest": lowest,
            "pooled": pooled,
            "summed": summed,
        }

    module.serve = serve
    hist = rng.integers(0, 20, size=(64, 5)).astype(np.int64)
    lengths = rng.integers(0, 6, size=64)
    lengths[[3, 10, 11]] = 0  # empty segments between filled ones
    hist[np.arange(5)[None, :] >= lengths[:, None]] = -1
    feeds = {"hist": hist, "x": rng.normal(size=(64, 5)).astype(np.float32)}
    return _finish(module, serve, "segment_history", feeds)
