"""Tiny models of every export kind, built the way real exports are built."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recadvisor.tfimport import import_tf


def build_tf2_module(path: Path) -> Path:
    """tf.saved_model.save of a tf.Module: StaticHashTable, AsString+hash, feature hashed twice,
    an input never read, [N] and [N,1] inputs, two signatures."""
    tf = import_tf()
    rng = np.random.default_rng(0)

    class Ranker(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.user_emb = tf.Variable(
                rng.normal(size=(500, 8)).astype("float32"), name="user_emb"
            )
            self.age_emb = tf.Variable(rng.normal(size=(100, 8)).astype("float32"), name="age_emb")
            self.cat_emb = tf.Variable(rng.normal(size=(6, 8)).astype("float32"), name="cat_emb")
            self.user_bias = tf.Variable(rng.normal(size=(500, 1)).astype("float32"), name="ubias")
            self.kernel = tf.Variable(rng.normal(size=(24, 4)).astype("float32"), name="kernel")
            self.bias = tf.Variable(np.zeros(4, "float32"), name="bias")
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(["books", "music", "games", "food"]),
                    tf.constant([1, 2, 3, 4], tf.int64),
                ),
                default_value=0,
            )

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="user_id"),
                tf.TensorSpec([None, 1], tf.int64, name="age"),
                tf.TensorSpec([None], tf.string, name="category"),
                tf.TensorSpec([None], tf.string, name="request_id"),
            ]
        )
        def serve(self, user_id, age, category, request_id):
            del request_id  # declared, never read
            u = tf.strings.to_hash_bucket_fast(user_id, 500)
            u2 = tf.strings.to_hash_bucket_fast(user_id, 500)  # hashed twice
            a = tf.strings.to_hash_bucket_fast(tf.strings.as_string(tf.squeeze(age, 1)), 100)
            c = self.table.lookup(category)
            x = tf.concat(
                [
                    tf.gather(self.user_emb, u),
                    tf.gather(self.age_emb, a),
                    tf.gather(self.cat_emb, c),
                ],
                axis=1,
            )
            h = tf.nn.relu(tf.matmul(x, self.kernel) + self.bias)
            logit = tf.reduce_sum(h, 1) + tf.squeeze(tf.gather(self.user_bias, u2), 1)
            return {"score": tf.sigmoid(logit), "logit": logit}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id")])
        def user_vector(self, user_id):
            return {"vec": tf.gather(self.user_emb, tf.strings.to_hash_bucket_fast(user_id, 500))}

    m = Ranker()
    tf.saved_model.save(
        m,
        str(path),
        signatures={
            "serving_default": m.serve.get_concrete_function(),
            "user_vector": m.user_vector.get_concrete_function(),
        },
    )
    return path


def tf2_feeds(n: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    cats = np.array(["books", "music", "games", "food", "other"], dtype=object)
    return {
        "user_id": np.array([f"u{i}" for i in rng.integers(0, 1000, n)], dtype=object),
        "age": rng.integers(18, 70, (n, 1)).astype("int64"),
        "category": cats[rng.integers(0, 5, n)],
        "request_id": np.array([f"r{i}" for i in range(n)], dtype=object),
    }


def build_tf1_estimator_style(path: Path) -> Path:
    """A TF1 Session export: placeholders, ref/resource variables, a HashTableV2 initialized by
    the main op (tables_initializer), as Estimator exports do."""
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        cat = v1.placeholder(tf.string, [None], name="cat")
        age = v1.placeholder(tf.int64, [None, 1], name="age")
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(["a", "b", "c"], tf.constant([1, 2, 3], tf.int64)),
            -1,
        )
        emb = v1.get_variable("emb", [20, 4], initializer=v1.random_normal_initializer(seed=1))
        w = v1.get_variable("w", [4, 1], initializer=v1.random_normal_initializer(seed=2))
        idx = table.lookup(cat) + 1 + tf.squeeze(age, 1) % 10
        h = tf.gather(emb, idx)
        prob = tf.sigmoid(tf.squeeze(tf.matmul(h, w), 1), name="prob")
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            sig = v1.saved_model.predict_signature_def({"cat": cat, "age": age}, {"prob": prob})
            builder.add_meta_graph_and_variables(
                sess,
                ["serve"],
                signature_def_map={"serving_default": sig},
                main_op=v1.tables_initializer(),
            )
            builder.save()
    return path


def tf1_feeds(n: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {
        "cat": np.array(["a", "b", "c", "zz"] * (n // 4), dtype=object),
        "age": rng.integers(0, 80, (n, 1)).astype("int64"),
    }


def build_keras3_export(path: Path) -> Path:
    """Keras 3 functional model with StringLookup, Hashing, a custom layer; ``model.export``."""
    tf = import_tf()
    import keras

    class ScaledDot(keras.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

        def call(self, a, b):
            return keras.ops.sum(a * b, axis=-1, keepdims=True) * self.scale

    user = keras.Input(shape=(1,), dtype="string", name="user_id")
    item = keras.Input(shape=(1,), dtype="string", name="item_id")
    lookup = keras.layers.StringLookup(vocabulary=["i1", "i2", "i3", "i4"], name="item_lookup")
    hashing = keras.layers.Hashing(num_bins=200, name="user_hash")
    u = keras.layers.Flatten()(keras.layers.Embedding(200, 8, name="user_emb")(hashing(user)))
    i = keras.layers.Flatten()(keras.layers.Embedding(5, 8, name="item_emb")(lookup(item)))
    u = keras.layers.Dense(8, activation="relu")(u)
    out = keras.layers.Activation("sigmoid", name="score")(ScaledDot()(u, i))
    model = keras.Model({"user_id": user, "item_id": item}, out)
    model.export(str(path), format="tf_saved_model", verbose=False)
    del tf
    return path


def keras3_feeds(n: int = 8) -> dict[str, np.ndarray]:
    return {
        "user_id": np.array([[f"u{i}"] for i in range(n)], dtype=object),
        "item_id": np.array([["i1"], ["i2"], ["i9"], ["i4"]] * (n // 4), dtype=object),
    }


def build_tf_keras2_save(path: Path) -> Path:
    """Keras 2 (tf-keras) functional model with StringLookup; ``model.save(dir)`` (SavedModel)."""
    import tf_keras

    user = tf_keras.Input(shape=(1,), dtype="string", name="user_id")
    price = tf_keras.Input(shape=(1,), dtype="float32", name="price")
    lookup = tf_keras.layers.StringLookup(vocabulary=["u1", "u2", "u3"], name="user_lookup")
    u = tf_keras.layers.Flatten()(tf_keras.layers.Embedding(4, 4)(lookup(user)))
    x = tf_keras.layers.Concatenate()([u, price])
    x = tf_keras.layers.Dense(8, activation="relu")(x)
    out = tf_keras.layers.Dense(1, activation="sigmoid", name="prob")(x)
    model = tf_keras.Model({"user_id": user, "price": price}, out)
    model.save(str(path), save_format="tf")
    return path


def tf_keras2_feeds(n: int = 8) -> dict[str, np.ndarray]:
    return {
        "user_id": np.array([["u1"], ["u2"], ["zz"], ["u3"]] * (n // 4), dtype=object),
        "price": np.linspace(0, 3, n, dtype="float32").reshape(n, 1),
    }
