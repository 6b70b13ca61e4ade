"""tf-keras (Keras 2) models on ``tf.feature_column`` through ``DenseFeatures`` /
``SequenceFeatures``, saved with ``model.save(path, save_format="tf")`` as the feature-column
tutorials do. Runs with ``TF_USE_LEGACY_KERAS=1``.

Feature columns turn a dense string input into a ``SparseTensor`` first (``to_sparse_input``:
``NotEqual`` to the ignore value ``""``, ``Where``, ``GatherNd``), then hash or look it up, and
embed with a sparse combiner: the "sparse feature-column path".
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.zoo import data
from benchmarks.zoo.export import finish, fit_quietly


def _keras_inputs(tf, frame, specs: dict) -> tuple[dict, dict]:
    """Keras inputs (``[N, width]``) and the training arrays for them."""
    inputs, feeds = {}, {}
    for name, (dtype, width) in specs.items():
        inputs[name] = tf.keras.Input(shape=(width,), dtype=dtype, name=name)
        if name == "hist_item_id":
            feeds[name] = data.history_matrix(frame).astype(str)
        else:
            values = frame[name].to_numpy()
            feeds[name] = (values.astype(str) if values.dtype == object else values).reshape(-1, 1)
    return inputs, feeds


def build_wide_deep(out: Path) -> None:
    """Wide & deep over every categorical column kind: hash bucket, vocabulary list (strings,
    with OOV hash buckets; and int64), identity, bucketized, two crossed columns, a multi-valued
    ``[N, 5]`` history (``shared_embeddings`` are refused in eager mode: the TF1 model has them)."""
    import tensorflow as tf

    fc = tf.feature_column
    frame = data.click_log(pad="")
    user = fc.categorical_column_with_hash_bucket("user_id", hash_bucket_size=64)
    category = fc.categorical_column_with_vocabulary_list("category", data.CATEGORIES)
    city = fc.categorical_column_with_vocabulary_list("city", data.CITIES, num_oov_buckets=2)
    device = fc.categorical_column_with_vocabulary_list("device", data.DEVICES)
    shop = fc.categorical_column_with_vocabulary_list(
        "shop_id", data.SHOPS, dtype=tf.int64, default_value=0
    )
    hour = fc.categorical_column_with_identity("hour", num_buckets=24)
    age = fc.bucketized_column(fc.numeric_column("age", dtype=tf.int64), [18, 25, 35, 50, 65])
    item = fc.categorical_column_with_vocabulary_list("item_id", data.ITEMS)
    hist = fc.categorical_column_with_vocabulary_list("hist_item_id", data.ITEMS)
    wide = [
        fc.indicator_column(category),
        fc.indicator_column(age),
        fc.indicator_column(fc.crossed_column([category, age], hash_bucket_size=32)),
        fc.indicator_column(fc.crossed_column(["city", "device"], hash_bucket_size=32)),
    ]
    deep = [
        fc.embedding_column(user, dimension=8),
        fc.embedding_column(city, dimension=4),
        fc.embedding_column(device, dimension=2),
        fc.embedding_column(shop, dimension=4),
        fc.embedding_column(hour, dimension=4),
        fc.embedding_column(item, dimension=8),
        fc.embedding_column(hist, dimension=8, combiner="mean"),
        fc.numeric_column("price"),
    ]
    specs = {
        "user_id": (tf.string, 1),
        "category": (tf.string, 1),
        "city": (tf.string, 1),
        "device": (tf.string, 1),
        "shop_id": (tf.int64, 1),
        "hour": (tf.int64, 1),
        "age": (tf.int64, 1),
        "item_id": (tf.string, 1),
        "hist_item_id": (tf.string, data.HISTORY),
        "price": (tf.float32, 1),
    }
    inputs, feeds = _keras_inputs(tf, frame, specs)
    wide_x = tf.keras.layers.DenseFeatures(wide, name="wide")(inputs)
    deep_x = tf.keras.layers.DenseFeatures(deep, name="deep")(inputs)
    deep_x = tf.keras.layers.Dense(16, activation="relu")(deep_x)
    logit = tf.keras.layers.Add()(
        [tf.keras.layers.Dense(1)(wide_x), tf.keras.layers.Dense(1)(deep_x)]
    )
    model = tf.keras.Model(inputs, tf.keras.layers.Activation("sigmoid", name="prob")(logit))
    model.compile("adam", "binary_crossentropy")
    fit_quietly(model, feeds, frame["label"].to_numpy())
    model.save(str(out / "saved_model"), save_format="tf")
    finish(out, frame, list(specs), ["label"])


def build_sequence(out: Path) -> None:
    """``SequenceFeatures`` over a padded string history (sequence hash-bucket column, ``""``
    ignored) pooled over its true length, with context columns in ``DenseFeatures``: a
    vocabulary list with an OOV bucket and a hashed user id.

    (A ``categorical_column_with_vocabulary_file`` is not tracked as an asset by
    ``model.save``: the SavedModel would read the file from its absolute build path.)"""
    import tensorflow as tf

    fc = tf.feature_column
    frame = data.click_log(pad="")
    hist = fc.sequence_categorical_column_with_hash_bucket("hist_item_id", hash_bucket_size=64)
    sequence_columns = [fc.embedding_column(hist, dimension=8)]
    city = fc.categorical_column_with_vocabulary_list("city", data.CITIES, num_oov_buckets=1)
    context_columns = [
        fc.embedding_column(city, dimension=4),
        fc.embedding_column(fc.categorical_column_with_hash_bucket("user_id", 64), dimension=8),
    ]
    specs = {
        "hist_item_id": (tf.string, data.HISTORY),
        "city": (tf.string, 1),
        "user_id": (tf.string, 1),
    }
    inputs, feeds = _keras_inputs(tf, frame, specs)
    seq, seq_len = tf.keras.experimental.SequenceFeatures(sequence_columns, name="history")(
        {"hist_item_id": inputs["hist_item_id"]}
    )
    pooled = tf.keras.layers.Lambda(_mean_over_length, name="mean_over_length")((seq, seq_len))
    context = tf.keras.layers.DenseFeatures(context_columns, name="context")(
        {k: inputs[k] for k in ("city", "user_id")}
    )
    x = tf.keras.layers.Dense(16, activation="relu")(
        tf.keras.layers.Concatenate()([pooled, context])
    )
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1, activation="sigmoid", name="prob")(x))
    model.compile("adam", "binary_crossentropy")
    fit_quietly(model, feeds, frame["label"].to_numpy())
    model.save(str(out / "saved_model"), save_format="tf")
    finish(out, frame, list(specs), ["label"])


def _mean_over_length(pair):  # noqa: ANN001, ANN202 - a Keras Lambda body
    """Mean of a ``[N, T, D]`` sequence over its first ``length`` steps (no closure: Lambda
    bodies are serialized with the model)."""
    import tensorflow as tf

    seq, length = pair
    mask = tf.sequence_mask(length, maxlen=tf.shape(seq)[1], dtype=seq.dtype)[..., None]
    total = tf.reduce_sum(seq * mask, axis=1)
    return total / tf.maximum(tf.cast(length, seq.dtype)[:, None], 1.0)


__all__ = ["build_sequence", "build_wide_deep"]
