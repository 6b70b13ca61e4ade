"""Keras 3 models: Keras-RS layers (``keras-rs``) and Keras 3 preprocessing layers, exported with
``model.export(path, format="tf_saved_model")`` (Keras 3's serving export: ``serve`` and
``serving_default`` endpoints). Runs with Keras 3 (no ``TF_USE_LEGACY_KERAS``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.zoo import data
from benchmarks.zoo.export import finish, fit_quietly

DIM = 8


def _export(model: object, out: Path) -> None:
    model.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)  # type: ignore[attr-defined]


def build_keras_rs_dcn(out: Path) -> None:
    """DCN-v2 with ``keras_rs.layers.FeatureCross`` over ``StringLookup``, ``IntegerLookup`` and
    ``Discretization`` embeddings plus the raw price (the Keras-RS DCN example's shape)."""
    import keras
    import keras_rs

    frame = data.click_log()
    inputs = {
        "user_id": keras.Input(shape=(1,), dtype="string", name="user_id"),
        "category": keras.Input(shape=(1,), dtype="string", name="category"),
        "shop_id": keras.Input(shape=(1,), dtype="int64", name="shop_id"),
        "price": keras.Input(shape=(1,), dtype="float32", name="price"),
    }
    encoders = {
        "user_id": keras.layers.StringLookup(vocabulary=data.USERS),
        "category": keras.layers.StringLookup(vocabulary=data.CATEGORIES),
        "shop_id": keras.layers.IntegerLookup(vocabulary=np.array(data.SHOPS, dtype="int64")),
        "price": keras.layers.Discretization(bin_boundaries=[5.0, 10.0, 20.0, 50.0, 100.0]),
    }
    sizes = {"user_id": len(data.USERS) + 1, "category": 8, "shop_id": 9, "price": 6}
    parts = [
        keras.layers.Flatten()(keras.layers.Embedding(sizes[k], DIM)(encoders[k](inputs[k])))
        for k in inputs
    ]
    x0 = keras.layers.Concatenate()([*parts, inputs["price"]])
    x = keras_rs.layers.FeatureCross(projection_dim=8)(x0, x0)
    x = keras_rs.layers.FeatureCross(projection_dim=8)(x0, x)
    x = keras.layers.Dense(16, activation="relu")(x)
    out_layer = keras.layers.Dense(1, activation="sigmoid", name="ctr")(x)
    model = keras.Model(inputs, out_layer)
    model.compile("adam", "binary_crossentropy")
    fit_quietly(model, _frame_inputs(frame, inputs), frame["label"].to_numpy())
    _export(model, out)
    finish(out, frame, list(inputs), ["label"])


def build_keras_rs_retrieval(out: Path) -> None:
    """A query tower + ``keras_rs.layers.BruteForceRetrieval`` (top 10 over the trained item
    embeddings), its indices mapped to the items' **string ids** by ``StringLookup(invert=True)``;
    rank-1 string inputs."""
    import keras
    import keras_rs

    frame = data.click_log()
    user_id = keras.Input(shape=(), dtype="string", name="user_id")
    city = keras.Input(shape=(), dtype="string", name="city")
    user_lookup = keras.layers.StringLookup(vocabulary=data.USERS)
    city_hash = keras.layers.Hashing(num_bins=16)
    query = keras.layers.Dense(DIM)(
        keras.layers.Concatenate()(
            [
                keras.layers.Embedding(len(data.USERS) + 1, DIM)(user_lookup(user_id)),
                keras.layers.Embedding(16, DIM)(city_hash(city)),
            ]
        )
    )
    query_model = keras.Model({"user_id": user_id, "city": city}, query)
    item_id = keras.Input(shape=(), dtype="string", name="item_id")
    item_lookup = keras.layers.StringLookup(vocabulary=data.ITEMS)
    item_embedding = keras.layers.Embedding(len(data.ITEMS) + 1, DIM)
    item_vec = item_embedding(item_lookup(item_id))
    score = keras.layers.Activation("sigmoid")(
        keras.layers.Dot(axes=1)([query_model({"user_id": user_id, "city": city}), item_vec])
    )
    trainer = keras.Model({"user_id": user_id, "city": city, "item_id": item_id}, score)
    trainer.compile("adam", "binary_crossentropy")
    fit_quietly(
        trainer,
        {k: frame[k].to_numpy().astype(str) for k in ("user_id", "city", "item_id")},
        frame["label"].to_numpy(),
    )
    # candidates: the items' trained vectors, indexed by their position in data.ITEMS
    candidates = item_embedding(item_lookup(np.array(data.ITEMS)))
    retrieval = keras_rs.layers.BruteForceRetrieval(k=10, return_scores=True)
    retrieval.update_candidates(candidates)
    scores, top = retrieval(query)
    item_names = keras.layers.StringLookup(
        vocabulary=data.ITEMS, invert=True, num_oov_indices=0, name="item_names"
    )
    served = keras.Model(
        {"user_id": user_id, "city": city},
        {"scores": scores, "item_ids": item_names(top)},
    )
    _export(served, out)
    finish(out, frame, ["user_id", "city"], [])


def build_keras3_preprocessing(out: Path) -> None:
    """Keras 3 preprocessing layers inside the model: ``StringLookup`` with ``mask_token=""`` over
    a padded multi-valued history ``[N, 5]`` (mean over the unmasked items), ``IntegerLookup``
    (int64 -> int64), ``Hashing`` with a ``salt`` (keyed SipHash), ``Discretization`` and
    ``HashedCrossing`` (city x device)."""
    import keras

    frame = data.click_log(pad="", min_history=1)
    inputs = {
        "hist_item_id": keras.Input(shape=(data.HISTORY,), dtype="string", name="hist_item_id"),
        "user_id": keras.Input(shape=(1,), dtype="string", name="user_id"),
        "shop_id": keras.Input(shape=(1,), dtype="int64", name="shop_id"),
        "age": keras.Input(shape=(1,), dtype="int64", name="age"),
        "city": keras.Input(shape=(1,), dtype="string", name="city"),
        "device": keras.Input(shape=(1,), dtype="string", name="device"),
    }
    hist_ids = keras.layers.StringLookup(vocabulary=data.ITEMS, mask_token="")(
        inputs["hist_item_id"]
    )
    hist_vecs = keras.layers.Embedding(len(data.ITEMS) + 2, DIM, mask_zero=True)(hist_ids)
    hist = keras.layers.GlobalAveragePooling1D()(hist_vecs)  # honours the padding mask
    user = keras.layers.Hashing(num_bins=64, salt=[7, 11])(inputs["user_id"])
    shop = keras.layers.IntegerLookup(vocabulary=np.array(data.SHOPS, dtype="int64"))(
        inputs["shop_id"]
    )
    age = keras.layers.Discretization(bin_boundaries=[18, 25, 35, 50, 65])(inputs["age"])
    cross = keras.layers.HashedCrossing(num_bins=32)((inputs["city"], inputs["device"]))
    parts = [hist]
    for ids, rows in ((user, 64), (shop, 9), (age, 6), (cross, 32)):
        parts.append(keras.layers.Flatten()(keras.layers.Embedding(rows, DIM)(ids)))
    x = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()(parts))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="ctr")(x))
    model.compile("adam", "binary_crossentropy")
    feeds = _frame_inputs(frame, inputs)
    fit_quietly(model, feeds, frame["label"].to_numpy())
    _export(model, out)
    finish(out, frame, list(inputs), ["label"])


def _frame_inputs(frame, inputs: dict) -> dict:
    """Training arrays shaped like the Keras inputs (``[N, 1]`` columns, ``[N, K]`` histories)."""
    feeds = {}
    for name in inputs:
        if name == "hist_item_id":
            feeds[name] = data.history_matrix(frame).astype(str)
        elif frame[name].dtype == object:
            feeds[name] = frame[name].to_numpy().astype(str).reshape(-1, 1)
        else:
            feeds[name] = frame[name].to_numpy().reshape(-1, 1)
    return feeds


__all__ = ["build_keras3_preprocessing", "build_keras_rs_dcn", "build_keras_rs_retrieval"]
