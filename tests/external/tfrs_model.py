"""Build a TensorFlow Recommenders retrieval index the way the TFRS tutorials do.

Run as a script (``TF_USE_LEGACY_KERAS=1 python tfrs_model.py OUT_DIR``): TFRS needs Keras 2 as
``tf.keras``, which has to be chosen before TensorFlow is first imported. The user tower is a
``StringLookup`` + ``Embedding`` over user ids and a ``Hashing`` + ``Embedding`` over the
request's ``hour`` (as a string); the index is ``BruteForce`` over 60 item vectors and its
signature returns the top-10 scores and item ids (``output_1``, ``output_2``).
"""

from __future__ import annotations

import sys
from pathlib import Path

USERS = [f"user_{i}" for i in range(150)]
ITEMS = [f"item_{i}" for i in range(60)]


def build(path: Path) -> Path:
    """Build the two towers, index the items and save the index to ``path``."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    tf.random.set_seed(0)
    user_id = tf.keras.Input(shape=(), dtype=tf.string, name="user_id")
    hour = tf.keras.Input(shape=(), dtype=tf.string, name="hour")
    user_vec = tf.keras.layers.Embedding(len(USERS) + 1, 16)(
        tf.keras.layers.StringLookup(vocabulary=USERS)(user_id)
    )
    hour_vec = tf.keras.layers.Embedding(24, 16)(tf.keras.layers.Hashing(num_bins=24)(hour))
    query = tf.keras.layers.Dense(16)(tf.keras.layers.Concatenate()([user_vec, hour_vec]))
    user_model = tf.keras.Model({"user_id": user_id, "hour": hour}, query)

    item_model = tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=ITEMS),
            tf.keras.layers.Embedding(len(ITEMS) + 1, 16),
        ]
    )
    items = tf.data.Dataset.from_tensor_slices(ITEMS).batch(16)
    index = tfrs.layers.factorized_top_k.BruteForce(user_model, k=10)
    index.index_from_dataset(tf.data.Dataset.zip((items, items.map(item_model))))
    index({"user_id": tf.constant(["user_1"]), "hour": tf.constant(["7"])})
    tf.saved_model.save(index, str(path))
    return path


if __name__ == "__main__":
    build(Path(sys.argv[1]))
