"""A tiny ranker and its "logs" for the stats tests.

The ranker reads every id kind ``recadvisor stats`` maps to embedding rows:

* ``user_id`` (string): ``StringToHashBucketFast(50)``;
* ``item`` (string): a vocabulary (``StaticHashTable``) whose default is the OOV row;
* ``hist`` (string ``[N,4]``): hashed into 40 buckets, with a padding mask ``hist != ""``;
* ``age`` (int64 ``[N,1]``): ``AsString`` + hash into 100 buckets;
* ``cat_code`` (int64): the row itself;
* ``price`` (float32 ``[N,1]``): a number only;
* ``segment`` (int64): a number, one value per user (a per-request input).

The logs are hive-partitioned Parquet (``day=1``, ``day=2``) with nulls and NaN in ``price``,
pads in ``hist``, OOV items, and ``age`` one value per user except on :data:`AGE_FLIPS` users.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recadvisor.tfimport import import_tf

ITEMS = ["apple", "banana", "cherry", "date", "elder", "fig"]
N_USERS = 120
AGE_FLIPS = 3  # users whose age differs between their rows
ROWS_PER_DAY = 1500


def build_ranker(path: Path) -> Path:
    """Save the ranker described in the module docstring to ``path``."""
    tf = import_tf()
    rng = np.random.default_rng(1)

    def var(*shape: int) -> object:
        return tf.Variable((0.3 * rng.normal(size=shape)).astype(np.float32))

    module = tf.Module()
    module.user_emb, module.item_emb, module.hist_emb = var(50, 4), var(7, 4), var(40, 4)
    module.age_emb, module.cat_emb, module.w = var(100, 2), var(16, 2), var(18, 1)
    module.vocab = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(ITEMS), tf.constant(np.arange(len(ITEMS)), tf.int64)
        ),
        default_value=len(ITEMS),
    )
    specs = [
        tf.TensorSpec([None], tf.string, name="user_id"),
        tf.TensorSpec([None], tf.string, name="item"),
        tf.TensorSpec([None, 4], tf.string, name="hist"),
        tf.TensorSpec([None, 1], tf.int64, name="age"),
        tf.TensorSpec([None], tf.int64, name="cat_code"),
        tf.TensorSpec([None, 1], tf.float32, name="price"),
        tf.TensorSpec([None], tf.int64, name="segment"),
    ]

    @tf.function(input_signature=specs)
    def serve(user_id, item, hist, age, cat_code, price, segment):
        u = tf.gather(module.user_emb, tf.strings.to_hash_bucket_fast(user_id, 50))
        i = tf.gather(module.item_emb, module.vocab.lookup(item))
        mask = tf.cast(tf.not_equal(hist, ""), tf.float32)[..., None]
        h = tf.gather(module.hist_emb, tf.strings.to_hash_bucket_fast(hist, 40))
        h = tf.reduce_sum(h * mask, axis=1)
        a = tf.gather(
            module.age_emb, tf.strings.to_hash_bucket_fast(tf.strings.as_string(age), 100)
        )
        a = tf.reshape(a, [-1, 2])
        c = tf.gather(module.cat_emb, cat_code)
        p = tf.where(tf.math.is_nan(price), tf.zeros_like(price), price)
        s = tf.cast(segment, tf.float32)[:, None]
        x = tf.concat([u, i, h, a, c, p, s], axis=1)
        return {"score": tf.sigmoid(tf.matmul(x, module.w))}

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def log_table(day: int, rows: int = ROWS_PER_DAY) -> pa.Table:
    """One day of logs (deterministic per day); ``price`` holds NaN and nulls."""
    rng = np.random.default_rng(day)
    users = rng.zipf(1.6, rows) % N_USERS
    base_age = 18 + (np.arange(N_USERS) * 7) % 50
    age = base_age[users].astype(np.int64)
    flip = np.isin(users, np.arange(AGE_FLIPS)) & (rng.random(rows) < 0.5)
    age[flip] += 1
    items = np.array(ITEMS + ["kiwi", "lime"], dtype=object)[rng.integers(0, 8, rows)]
    hist_pool = np.array([f"h{k}" for k in range(300)], dtype=object)
    hist = []
    for _ in range(rows):
        n = int(rng.integers(0, 5))
        hist.append(list(hist_pool[rng.zipf(1.3, n) % 300]) + [""] * (4 - n))
    price = rng.gamma(2.0, 10.0, rows).astype(np.float32)
    price[rng.random(rows) < 0.02] = np.nan
    prices = [
        None if null else float(v) for v, null in zip(price, rng.random(rows) < 0.02, strict=True)
    ]
    return pa.table(
        {
            "user_id": pa.array([f"u{k}" for k in users], pa.string()),
            "item": pa.array(items.tolist(), pa.string()),
            "hist": pa.array(hist, pa.list_(pa.string())),
            "age": pa.array(age, pa.int64()),
            "cat_code": pa.array(rng.integers(0, 12, rows), pa.int64()),
            "price": pa.array(prices, pa.float32()),
            "segment": pa.array(users % 5, pa.int64()),
            "label": pa.array(rng.integers(0, 2, rows), pa.int64()),
        }
    )


def write_logs(root: Path) -> Path:
    """Write two days of logs as hive-partitioned Parquet under ``root`` (two files per day)."""
    for day in (1, 2):
        table = log_table(day)
        folder = root / f"day={day}"
        folder.mkdir(parents=True)
        half = table.num_rows // 2
        pq.write_table(table.slice(0, half), folder / "part-0.parquet")
        pq.write_table(table.slice(half), folder / "part-1.parquet")
    return root
