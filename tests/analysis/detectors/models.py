"""Tiny SavedModels with known flaws (and one without) for the detector tests.

* :func:`build_ranker`: a two-tower ranker with every planted flaw the detectors look for.
* :func:`build_multitask`: an ESMM-like model with ``ctr``, ``cvr`` and ``ctcvr`` outputs and
  no string work at all.
* :func:`build_clean`: a small single-output model the detectors must find nothing in.
* :func:`build_read_file` / :func:`build_py_function`: models with unsafe ops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recadvisor.tfimport import import_tf

USER_BUCKETS = 1000
AGE_BUCKETS = 100
CITY_BUCKETS = 50
ITEM_BUCKETS = 500
HIST_LEN = 5
CATEGORIES = [f"cat{i}" for i in range(10)]
DIM = 8


def build_ranker(path: Path) -> Path:
    """A two-tower ranker with planted flaws.

    User tower: ``user_id`` (string, 1000 hash buckets for ~40 users), ``age`` (int64 through
    AsString + hash), ``city`` (hashed twice: deep and linear tables), ``hist_item_id``
    (string [N,5], "" padding masked, its own table over the same 500 buckets as ``item_id``).
    Item tower: ``item_id`` (500 buckets, a rank-2 table), ``category`` (looked up twice in two
    identical vocabulary tables), ``price``. ``request_id`` is never read. Outputs ``score`` and
    ``logit``.
    """
    tf = import_tf()
    rng = np.random.default_rng(0)

    def table(rows: int, dim: int = DIM) -> np.ndarray:
        return rng.normal(size=(rows, dim)).astype("float32")

    class Ranker(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.user = tf.Variable(table(USER_BUCKETS), name="user_emb")
            self.age = tf.Variable(table(AGE_BUCKETS), name="age_emb")
            self.city_deep = tf.Variable(table(CITY_BUCKETS), name="city_emb")
            self.city_linear = tf.Variable(table(CITY_BUCKETS, 1), name="city_bias")
            self.hist = tf.Variable(table(ITEM_BUCKETS), name="hist_item_emb")
            low_rank = table(ITEM_BUCKETS, 2) @ table(2, DIM)
            self.item = tf.Variable(low_rank.astype("float32"), name="item_emb")
            self.category = tf.Variable(table(len(CATEGORIES) + 1), name="category_emb")
            self.category_bias = tf.Variable(table(len(CATEGORIES) + 1, 1), name="category_bias")
            self.w_user = tf.Variable(table(4 * DIM, DIM), name="w_user")
            self.w_item = tf.Variable(table(2 * DIM + 1, DIM), name="w_item")
            init = tf.lookup.KeyValueTensorInitializer(
                tf.constant(CATEGORIES), tf.range(1, len(CATEGORIES) + 1, dtype=tf.int64)
            )
            self.vocab = tf.lookup.StaticHashTable(init, default_value=0)
            init2 = tf.lookup.KeyValueTensorInitializer(
                tf.constant(CATEGORIES), tf.range(1, len(CATEGORIES) + 1, dtype=tf.int64)
            )
            self.vocab_copy = tf.lookup.StaticHashTable(init2, default_value=0)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="user_id"),
                tf.TensorSpec([None], tf.int64, name="age"),
                tf.TensorSpec([None], tf.string, name="city"),
                tf.TensorSpec([None, HIST_LEN], tf.string, name="hist_item_id"),
                tf.TensorSpec([None], tf.string, name="item_id"),
                tf.TensorSpec([None], tf.string, name="category"),
                tf.TensorSpec([None, 1], tf.float32, name="price"),
                tf.TensorSpec([None], tf.string, name="request_id"),
            ]
        )
        def serve(self, user_id, age, city, hist_item_id, item_id, category, price, request_id):
            del request_id
            u = tf.gather(self.user, tf.strings.to_hash_bucket_fast(user_id, USER_BUCKETS))
            a = tf.gather(
                self.age, tf.strings.to_hash_bucket_fast(tf.strings.as_string(age), AGE_BUCKETS)
            )
            c = tf.gather(self.city_deep, tf.strings.to_hash_bucket_fast(city, CITY_BUCKETS))
            mask = tf.cast(tf.not_equal(hist_item_id, ""), tf.float32)[:, :, None]
            h = tf.gather(self.hist, tf.strings.to_hash_bucket_fast(hist_item_id, ITEM_BUCKETS))
            h = tf.reduce_sum(h * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
            user = tf.nn.l2_normalize(
                tf.nn.relu(tf.matmul(tf.concat([u, a, c, h], 1), self.w_user)), 1
            )
            i = tf.gather(self.item, tf.strings.to_hash_bucket_fast(item_id, ITEM_BUCKETS))
            k = tf.gather(self.category, self.vocab.lookup(category))
            item = tf.nn.l2_normalize(tf.matmul(tf.concat([i, k, price], 1), self.w_item), 1)
            city_bias = tf.gather(
                self.city_linear, tf.strings.to_hash_bucket_fast(city, CITY_BUCKETS)
            )[:, 0]
            cat_bias = tf.gather(self.category_bias, self.vocab_copy.lookup(category))[:, 0]
            logit = 5.0 * tf.reduce_sum(user * item, 1) + city_bias + cat_bias
            return {"score": tf.sigmoid(logit), "logit": logit}

    module = Ranker()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def ranker_frame(n: int = 400, seed: int = 1) -> pd.DataFrame:
    """Sample rows for :func:`build_ranker`: ~40 users, 26 ages, 8 cities, ~120 items."""
    rng = np.random.default_rng(seed)
    items = [f"i{j}" for j in range(120)]
    hist = []
    for _ in range(n):
        length = int(rng.integers(1, HIST_LEN + 1))
        seq = list(rng.choice(items[:80], length)) + [""] * (HIST_LEN - length)
        hist.append(seq)
    return pd.DataFrame(
        {
            "user_id": [f"u{j}" for j in rng.integers(0, 40, n)],
            "age": rng.integers(20, 46, n).astype("int64"),
            "city": [f"city{j}" for j in rng.integers(0, 8, n)],
            "hist_item_id": hist,
            "item_id": list(rng.choice(items, n)),
            "category": [CATEGORIES[j] for j in rng.integers(0, len(CATEGORIES), n)],
            "price": rng.uniform(1, 50, n).astype("float32"),
            "request_id": [f"r{j}" for j in range(n)],
        }
    )


def ranker_feeds(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The frame as feeds for :func:`build_ranker`."""
    return {
        "user_id": frame["user_id"].to_numpy(dtype=object),
        "age": frame["age"].to_numpy(dtype=np.int64),
        "city": frame["city"].to_numpy(dtype=object),
        "hist_item_id": np.array(frame["hist_item_id"].tolist(), dtype=object),
        "item_id": frame["item_id"].to_numpy(dtype=object),
        "category": frame["category"].to_numpy(dtype=object),
        "price": frame["price"].to_numpy(dtype=np.float32).reshape(-1, 1),
        "request_id": frame["request_id"].to_numpy(dtype=object),
    }


def build_multitask(path: Path) -> Path:
    """ESMM-like: shared ``user_id``/``item_id`` embeddings (int64 ids), a CTR tower and a CVR
    tower (2-layer MLPs), outputs ``ctr``, ``cvr`` and ``ctcvr = ctr * cvr``."""
    tf = import_tf()
    rng = np.random.default_rng(2)

    def w(*shape: int) -> np.ndarray:
        return (rng.normal(size=shape) / np.sqrt(shape[0])).astype("float32")

    class MultiTask(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.user = tf.Variable(w(64, 4), name="user_emb")
            self.item = tf.Variable(w(64, 4), name="item_emb")
            self.ctr = [tf.Variable(w(9, 16), name="ctr1"), tf.Variable(w(16, 1), name="ctr2")]
            self.cvr = [tf.Variable(w(9, 16), name="cvr1"), tf.Variable(w(16, 1), name="cvr2")]

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.int64, name="user_id"),
                tf.TensorSpec([None], tf.int64, name="item_id"),
                tf.TensorSpec([None, 1], tf.float32, name="price"),
            ]
        )
        def serve(self, user_id, item_id, price):
            x = tf.concat([tf.gather(self.user, user_id), tf.gather(self.item, item_id), price], 1)
            ctr = tf.sigmoid(tf.matmul(tf.nn.relu(tf.matmul(x, self.ctr[0])), self.ctr[1]))[:, 0]
            cvr = tf.sigmoid(tf.matmul(tf.nn.relu(tf.matmul(x, self.cvr[0])), self.cvr[1]))[:, 0]
            return {"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr}

    module = MultiTask()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def multitask_feeds(n: int = 256) -> dict[str, np.ndarray]:
    """Feeds for :func:`build_multitask` covering every user and item row."""
    rng = np.random.default_rng(3)
    return {
        "user_id": (np.arange(n) % 64).astype(np.int64),
        "item_id": rng.permutation(np.arange(n) % 64).astype(np.int64),
        "price": rng.uniform(0, 1, (n, 1)).astype(np.float32),
    }


def build_clean(path: Path) -> Path:
    """One int64 id input into a 64 x 4 table plus a float input, one output: nothing to flag."""
    tf = import_tf()
    rng = np.random.default_rng(4)

    class Clean(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item = tf.Variable(rng.normal(size=(64, 4)).astype("float32"), name="item_emb")
            self.w = tf.Variable(rng.normal(size=(5, 1)).astype("float32"), name="w")

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.int64, name="item_id"),
                tf.TensorSpec([None, 1], tf.float32, name="price"),
            ]
        )
        def serve(self, item_id, price):
            x = tf.concat([tf.gather(self.item, item_id), price], 1)
            return {"score": tf.sigmoid(tf.matmul(x, self.w))[:, 0]}

    module = Clean()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def clean_frame(n: int = 256) -> pd.DataFrame:
    """Rows for :func:`build_clean` hitting all 64 item rows."""
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "item_id": (np.arange(n) % 64).astype(np.int64),
            "price": rng.uniform(0, 1, n).astype(np.float32),
        }
    )


def clean_feeds(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The frame as feeds for :func:`build_clean`."""
    return {
        "item_id": frame["item_id"].to_numpy(np.int64),
        "price": frame["price"].to_numpy(np.float32).reshape(-1, 1),
    }


def build_read_file(path: Path, data_file: Path) -> Path:
    """A model whose serving function reads ``data_file`` (``ReadFile``)."""
    tf = import_tf()

    class Reader(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            size = tf.cast(tf.strings.length(tf.io.read_file(str(data_file))), tf.float32)
            return {"y": x + size}

    module = Reader()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def build_py_function(path: Path) -> Path:
    """A model whose serving function calls Python (``EagerPyFunc``)."""
    tf = import_tf()

    class PyCaller(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            y = tf.py_function(lambda t: t * 2.0, [x], tf.float32)
            return {"y": y}

    module = PyCaller()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path
