"""TensorFlow Recommenders models (``tensorflow-recommenders``), built as its tutorials do.

TFRS needs Keras 2 as ``tf.keras`` (``TF_USE_LEGACY_KERAS=1``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.zoo import data
from benchmarks.zoo.export import finish

DIM = 16


def build_retrieval(out: Path) -> None:
    """Two towers trained with ``tfrs.tasks.Retrieval``, then a ``BruteForce`` top-10 index over
    the item tower whose signature returns scores and the items' **string ids**
    (``output_1``/``output_2``); rank-1 string inputs; saved with ``tf.saved_model.save``."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    frame = data.click_log()
    user_id = tf.keras.Input(shape=(), dtype=tf.string, name="user_id")
    device = tf.keras.Input(shape=(), dtype=tf.string, name="device")
    user_vec = tf.keras.layers.Embedding(len(data.USERS) + 1, DIM)(
        tf.keras.layers.StringLookup(vocabulary=data.USERS)(user_id)
    )
    device_vec = tf.keras.layers.Embedding(8, DIM)(tf.keras.layers.Hashing(num_bins=8)(device))
    query = tf.keras.layers.Dense(DIM)(tf.keras.layers.Concatenate()([user_vec, device_vec]))
    user_model = tf.keras.Model({"user_id": user_id, "device": device}, query)
    item_model = tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=data.ITEMS),
            tf.keras.layers.Embedding(len(data.ITEMS) + 1, DIM),
        ]
    )
    items = tf.data.Dataset.from_tensor_slices(data.ITEMS).batch(32)

    class TwoTower(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user_model, self.item_model = user_model, item_model
            self.task = tfrs.tasks.Retrieval(
                metrics=tfrs.metrics.FactorizedTopK(items.map(item_model))
            )

        def compute_loss(self, features, training=False):
            queries = self.user_model({k: features[k] for k in ("user_id", "device")})
            return self.task(queries, self.item_model(features["item_id"]), compute_metrics=False)

    clicks = frame[frame["label"] == 1]
    train = tf.data.Dataset.from_tensor_slices(
        {c: clicks[c].to_numpy().astype(str) for c in ("user_id", "device", "item_id")}
    ).batch(64)
    model = TwoTower()
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    model.fit(train, epochs=1, verbose=0)

    index = tfrs.layers.factorized_top_k.BruteForce(user_model, k=10)
    index.index_from_dataset(tf.data.Dataset.zip((items, items.map(item_model))))
    index({"user_id": tf.constant(["u1"]), "device": tf.constant(["ios"])})
    tf.saved_model.save(index, str(out / "saved_model"))
    finish(out, frame, ["user_id", "device"], [])


def build_dcn_multitask(out: Path) -> None:
    """A DCN ranking model with ``tfrs.layers.dcn.Cross`` over ``StringLookup`` /
    ``IntegerLookup`` embeddings and two heads (click, conversion), as in the TFRS DCN and
    multi-task tutorials; saved with ``model.save(path, save_format="tf")``."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    frame = data.click_log()
    inputs = {
        "user_id": tf.keras.Input(shape=(1,), dtype=tf.string, name="user_id"),
        "item_id": tf.keras.Input(shape=(1,), dtype=tf.string, name="item_id"),
        "shop_id": tf.keras.Input(shape=(1,), dtype=tf.int64, name="shop_id"),
        "hour": tf.keras.Input(shape=(1,), dtype=tf.int64, name="hour"),
    }
    lookups = {
        "user_id": tf.keras.layers.StringLookup(vocabulary=data.USERS),
        "item_id": tf.keras.layers.StringLookup(vocabulary=data.ITEMS),
        "shop_id": tf.keras.layers.IntegerLookup(vocabulary=np.array(data.SHOPS, dtype="int64")),
        "hour": tf.keras.layers.IntegerLookup(vocabulary=np.arange(24, dtype="int64")),
    }
    embedded = [
        tf.keras.layers.Flatten()(
            tf.keras.layers.Embedding(lookups[k].vocabulary_size(), 8)(lookups[k](inputs[k]))
        )
        for k in inputs
    ]
    x0 = tf.keras.layers.Concatenate()(embedded)
    x = tfrs.layers.dcn.Cross(projection_dim=8)(x0)
    x = tf.keras.layers.Dense(16, activation="relu")(x)
    click = tf.keras.layers.Dense(1, activation="sigmoid", name="click")(x)
    conversion = tf.keras.layers.Dense(1, activation="sigmoid", name="conversion")(x)
    model = tf.keras.Model(inputs, {"click": click, "conversion": conversion})
    model.compile("adam", {"click": "binary_crossentropy", "conversion": "binary_crossentropy"})
    x_train = {
        k: frame[k].to_numpy().astype(str if k.endswith("_id") and k != "shop_id" else "int64")
        for k in inputs
    }
    model.fit(
        x_train,
        {"click": frame["label"].to_numpy(), "conversion": frame["label_conversion"].to_numpy()},
        epochs=1,
        batch_size=128,
        verbose=0,
    )
    model.save(str(out / "saved_model"), save_format="tf")
    labelled = frame.rename(
        columns={"label": "label_click", "label_conversion": "label_conversion"}
    )
    finish(out, labelled, list(inputs), ["label_click", "label_conversion"])


__all__ = ["build_dcn_multitask", "build_retrieval"]
