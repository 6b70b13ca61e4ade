"""Small recommender models built the way third-party code builds them, with sample data.

None of these goes through recadvisor's own sample builders: they use the public Keras 3,
tf-keras (Keras 2) feature-column and TensorFlow Recommenders APIs as their tutorials do, so
the analyzer meets the graphs those libraries really export (Keras 3 ``model.export`` with
``serve`` + ``serving_default``, SparseTensor feature columns and ``SparseCross``, TFRS top-k
indexes whose outputs are ``output_1``/``output_2``). Weights are random: the analyzer reads
structure and time, not accuracy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from recadvisor.tfimport import import_tf

ROWS = 400
ITEMS = [f"item_{i}" for i in range(60)]
CATEGORIES = ["books", "music", "games", "food", "toys", "garden"]
SHOPS = [101, 102, 103, 104, 105, 106, 107, 108]
PRICE_BOUNDARIES = [5.0, 10.0, 20.0, 50.0, 100.0]
AGE_BOUNDARIES = [18, 25, 35, 50, 65]


def sample_frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Rows of one click log shared by the models: string, integer and float columns, a label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": [f"user_{i}" for i in rng.integers(0, 150, rows)],
            "item_id": rng.choice(ITEMS + ["item_unseen"], rows),
            "category": rng.choice(CATEGORIES, rows),
            "shop_id": rng.choice(SHOPS + [999], rows).astype("int64"),
            "hour": rng.integers(0, 24, rows).astype("int64"),
            "age": rng.integers(16, 80, rows).astype("int64"),
            "price": rng.uniform(1, 150, rows).astype("float32"),
            "label": rng.integers(0, 2, rows).astype("int64"),
        }
    )


def build_keras3_deepfm(path: Path) -> Path:
    """A Keras 3 DeepFM with its preprocessing inside the model, exported with ``model.export``.

    ``user_id`` -> ``Hashing``; ``item_id``/``category`` -> ``StringLookup``; ``shop_id`` ->
    ``IntegerLookup``; ``price`` -> ``Discretization`` (and also fed raw to the MLP); ``hour``
    (int64) -> ``Hashing`` (Keras hashes integers through their string form). Each field has an
    embedding for the FM/deep part and a 1-dim weight for the linear part.
    """
    import_tf()
    import keras

    k = 8
    inputs = {
        "user_id": keras.Input(shape=(1,), dtype="string", name="user_id"),
        "item_id": keras.Input(shape=(1,), dtype="string", name="item_id"),
        "category": keras.Input(shape=(1,), dtype="string", name="category"),
        "shop_id": keras.Input(shape=(1,), dtype="int64", name="shop_id"),
        "hour": keras.Input(shape=(1,), dtype="int64", name="hour"),
        "price": keras.Input(shape=(1,), dtype="float32", name="price"),
    }
    fields = {
        "user_id": (keras.layers.Hashing(num_bins=1000, name="user_hash"), 1000),
        "item_id": (keras.layers.StringLookup(vocabulary=ITEMS, name="item_lookup"), 61),
        "category": (keras.layers.StringLookup(vocabulary=CATEGORIES, name="cat_lookup"), 7),
        "shop_id": (keras.layers.IntegerLookup(vocabulary=SHOPS, name="shop_lookup"), 9),
        "hour": (keras.layers.Hashing(num_bins=48, name="hour_hash"), 48),
        "price": (
            keras.layers.Discretization(bin_boundaries=PRICE_BOUNDARIES, name="price_bins"),
            len(PRICE_BOUNDARIES) + 1,
        ),
    }
    embedded, linear = [], []
    for name, (layer, rows) in fields.items():
        ids = layer(inputs[name])
        embedded.append(keras.layers.Embedding(rows, k, name=f"{name}_emb")(ids))  # [N,1,k]
        linear.append(keras.layers.Flatten()(keras.layers.Embedding(rows, 1)(ids)))
    stack = keras.layers.Concatenate(axis=1)(embedded)  # [N, fields, k]
    square_of_sum = keras.ops.square(keras.ops.sum(stack, axis=1))
    sum_of_square = keras.ops.sum(keras.ops.square(stack), axis=1)
    fm = 0.5 * keras.ops.sum(square_of_sum - sum_of_square, axis=1, keepdims=True)
    deep = keras.layers.Concatenate()([keras.layers.Flatten()(stack), inputs["price"]])
    for units in (32, 16):
        deep = keras.layers.Dense(units, activation="relu")(deep)
    logit = keras.layers.Add()([keras.layers.Add()(linear), fm, keras.layers.Dense(1)(deep)])
    out = keras.layers.Activation("sigmoid", name="ctr")(logit)
    model = keras.Model(inputs, out, name="deepfm")
    model.export(str(path), format="tf_saved_model", verbose=False)
    return path


def build_tf_keras_wide_deep(path: Path) -> Path:
    """A tf-keras (Keras 2) wide & deep model on ``tf.feature_column``, saved with ``model.save``.

    Wide: ``category`` one-hot, ``age`` bucketized, and their cross (``SparseCross`` hashing);
    deep: hashed ``user_id`` and ``category`` (looked up a second time) as embedding columns,
    plus raw ``price``. ``item_id`` is declared as an input but no column reads it.
    """
    tf = import_tf()
    import tf_keras

    fc = tf.feature_column
    category = fc.categorical_column_with_vocabulary_list("category", CATEGORIES)
    age = fc.bucketized_column(fc.numeric_column("age", dtype=tf.int64), AGE_BOUNDARIES)
    wide_columns = [
        fc.indicator_column(category),
        fc.indicator_column(age),
        fc.indicator_column(fc.crossed_column([category, age], hash_bucket_size=64)),
    ]
    user = fc.categorical_column_with_hash_bucket("user_id", hash_bucket_size=500)
    deep_columns = [
        fc.embedding_column(user, dimension=8),
        fc.embedding_column(category, dimension=4),
        fc.numeric_column("price"),
    ]
    inputs = {
        "user_id": tf_keras.Input(shape=(1,), dtype=tf.string, name="user_id"),
        "item_id": tf_keras.Input(shape=(1,), dtype=tf.string, name="item_id"),
        "category": tf_keras.Input(shape=(1,), dtype=tf.string, name="category"),
        "age": tf_keras.Input(shape=(1,), dtype=tf.int64, name="age"),
        "price": tf_keras.Input(shape=(1,), dtype=tf.float32, name="price"),
    }
    wide = tf_keras.layers.DenseFeatures(wide_columns, name="wide_features")(inputs)
    deep = tf_keras.layers.DenseFeatures(deep_columns, name="deep_features")(inputs)
    for units in (32, 16):
        deep = tf_keras.layers.Dense(units, activation="relu")(deep)
    logit = tf_keras.layers.Add()([tf_keras.layers.Dense(1)(wide), tf_keras.layers.Dense(1)(deep)])
    out = tf_keras.layers.Activation("sigmoid", name="prob")(logit)
    model = tf_keras.Model(inputs, out, name="wide_deep")
    model.save(str(path), save_format="tf")
    return path


TFRS_SCRIPT = Path(__file__).with_name("tfrs_model.py")


def tfrs_available() -> bool:
    """Whether TensorFlow Recommenders is installed for this Python (it is optional)."""
    import importlib.util

    return importlib.util.find_spec("tensorflow_recommenders") is not None


def build_tfrs_retrieval(path: Path) -> Path:
    """A TFRS two-tower retrieval index (``BruteForce``), built in a child process.

    TFRS needs Keras 2 as ``tf.keras`` (``TF_USE_LEGACY_KERAS=1`` before TensorFlow is
    imported), which this process has already imported with Keras 3.
    """
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, str(TFRS_SCRIPT), str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the TFRS index failed:\n{done.stderr[-3000:]}")
    return path


HISTORY_LEN = 10


def history_frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Click rows with a fixed-length history of item ids (0 pads) for the two-tower model."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, HISTORY_LEN + 1, rows)  # an empty history pools to NaN
    history = [
        np.concatenate(
            [rng.integers(1, len(ITEMS) + 1, n), np.zeros(HISTORY_LEN - n, np.int64)]
        ).astype("int64")
        for n in lengths
    ]
    base = sample_frame(rows, seed)
    return pd.DataFrame(
        {
            "user_id": base["user_id"],
            "age": base["age"],
            "history": history,
            "item_id": base["item_id"],
            "category": base["category"],
            "label": base["label"],
        }
    )


def build_keras3_two_tower_history(path: Path) -> Path:
    """A Keras 3 two-tower model whose user tower mean-pools a padded history of item ids.

    User tower: hashed ``user_id``, bucketized ``age`` and the masked mean of the embeddings of
    ``history`` (``[N, 10]`` int64, 0 pads, at least one item, ``Embedding(mask_zero=True)`` +
    ``GlobalAveragePooling1D``); item tower: ``item_id``/``category`` through ``StringLookup``;
    the score is the sigmoid of the towers' dot product. Exported with ``model.export``.
    """
    import_tf()
    import keras

    dim = 16
    inputs = {
        "user_id": keras.Input(shape=(1,), dtype="string", name="user_id"),
        "age": keras.Input(shape=(1,), dtype="int64", name="age"),
        "history": keras.Input(shape=(HISTORY_LEN,), dtype="int64", name="history"),
        "item_id": keras.Input(shape=(1,), dtype="string", name="item_id"),
        "category": keras.Input(shape=(1,), dtype="string", name="category"),
    }
    item_table = keras.layers.Embedding(len(ITEMS) + 2, dim, mask_zero=True, name="item_emb")
    user = keras.layers.Embedding(500, dim)(
        keras.layers.Hashing(num_bins=500, name="user_hash")(inputs["user_id"])
    )
    age = keras.layers.Embedding(len(AGE_BOUNDARIES) + 1, 4)(
        keras.layers.Discretization(bin_boundaries=AGE_BOUNDARIES, name="age_bins")(
            keras.ops.cast(inputs["age"], "float32")
        )
    )
    pooled = keras.layers.GlobalAveragePooling1D(name="history_mean")(item_table(inputs["history"]))
    user_x = keras.layers.Concatenate()(
        [keras.layers.Flatten()(user), keras.layers.Flatten()(age), pooled]
    )
    for units in (64, 32):
        user_x = keras.layers.Dense(units, activation="relu")(user_x)
    item_ids = keras.layers.StringLookup(vocabulary=ITEMS, name="item_lookup")(inputs["item_id"])
    cat_ids = keras.layers.StringLookup(vocabulary=CATEGORIES, name="cat_lookup")(
        inputs["category"]
    )
    item_x = keras.layers.Concatenate()(
        [
            keras.layers.Flatten()(item_table(item_ids)),
            keras.layers.Flatten()(keras.layers.Embedding(len(CATEGORIES) + 1, 4)(cat_ids)),
        ]
    )
    for units in (64, 32):
        item_x = keras.layers.Dense(units, activation="relu")(item_x)
    score = keras.layers.Dot(axes=1)([user_x, item_x])
    out = keras.layers.Activation("sigmoid", name="score")(score)
    model = keras.Model(inputs, out, name="two_tower_history")
    model.export(str(path), format="tf_saved_model", verbose=False)
    return path
