"""DSSM two-tower sample: user tower and item tower, score = sigmoid(scale * cosine + bias).

User tower: ``user_id`` (hashed into a table far larger than the user count), ``age`` (int64
formatted with ``AsString`` and hashed), ``gender``, ``city`` (hashed *twice*: a deep embedding
here and a separate 1-wide bias table added to the logit), ``hist_item_id`` ``[N, 20]`` (``""``
padding masked out, mean-pooled, its own table over the item-id space). Item tower: ``item_id``,
``category`` (vocabulary ``StaticHashTable``, out-of-vocabulary -> a reserved row), ``price``
``[N, 1]``. ``request_id`` is declared in the signature and never read.

Each tower: embeddings -> concat -> dense(ReLU) -> dense -> L2-normalize.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from recadvisor.model.spec import TensorInfo
from recadvisor.samples.common import (
    AucTarget,
    ClickModel,
    ModelParams,
    SampleDefinition,
    SampleSize,
    age_as_string_flaw,
    apply_mlp,
    flaw,
    hash_lookup,
    masked_mean,
    oversized_user_table_flaw,
    top_vocabulary,
    unused_input_flaw,
)
from recadvisor.samples.synthetic import Interactions
from recadvisor.tfimport import import_tf

HISTORY_LENGTH = 20

INPUTS = {
    "user_id": TensorInfo("user_id", "string", (None,)),
    "age": TensorInfo("age", "int64", (None,)),
    "gender": TensorInfo("gender", "string", (None,)),
    "city": TensorInfo("city", "string", (None,)),
    "hist_item_id": TensorInfo("hist_item_id", "string", (None, HISTORY_LENGTH)),
    "item_id": TensorInfo("item_id", "string", (None,)),
    "category": TensorInfo("category", "string", (None,)),
    "price": TensorInfo("price", "float32", (None, 1)),
    "request_id": TensorInfo("request_id", "string", (None,)),
}


class DSSMModel(ClickModel):
    """The DSSM weights and forward pass.

    Args:
        size: table sizes and widths.
        categories: the category vocabulary (most frequent first).
        rng: initializes the weights.
    """

    def __init__(self, size: SampleSize, categories: list[str], rng: np.random.Generator) -> None:
        self.size = size
        p = self.params = ModelParams("dssm", rng)
        d, s, h = size.id_dim, size.small_dim, size.hidden_units
        self.user_embedding = p.embedding("user_embedding", size.user_buckets, d)
        self.age_embedding = p.embedding("age_embedding", size.age_buckets, s)
        self.gender_embedding = p.embedding("gender_embedding", size.gender_buckets, s)
        self.city_embedding = p.embedding("city_embedding", size.city_buckets, s)
        self.city_bias = p.embedding("city_bias", size.city_buckets, 1, scale=0.0)
        self.hist_item_embedding = p.embedding("hist_item_embedding", size.item_buckets, d)
        self.item_embedding = p.embedding("item_embedding", size.item_buckets, d)
        self.category_table = p.vocabulary_table("category_vocabulary", categories)
        self.category_embedding = p.embedding("category_embedding", len(categories) + 1, s)
        self.user_tower = p.mlp("user_tower", 2 * d + 3 * s, [h, h // 2], None)
        self.item_tower = p.mlp("item_tower", d + s + 1, [h, h // 2], None)
        self.scale = p.scalar("cosine_scale", 5.0)
        self.bias = p.scalar("bias", 0.0)

    def logit(self, features: Mapping[str, Any]) -> Any:
        """``[N]`` logits."""
        tf = import_tf()
        size = self.size
        hist = features["hist_item_id"]
        user = tf.concat(
            [
                hash_lookup(self.user_embedding, features["user_id"], size.user_buckets),
                hash_lookup(
                    self.age_embedding, tf.strings.as_string(features["age"]), size.age_buckets
                ),
                hash_lookup(self.gender_embedding, features["gender"], size.gender_buckets),
                hash_lookup(self.city_embedding, features["city"], size.city_buckets),
                masked_mean(
                    hash_lookup(self.hist_item_embedding, hist, size.item_buckets),
                    tf.not_equal(hist, ""),
                ),
            ],
            axis=1,
        )
        item = tf.concat(
            [
                hash_lookup(self.item_embedding, features["item_id"], size.item_buckets),
                tf.gather(
                    self.category_embedding, self.category_table.lookup(features["category"])
                ),
                tf.math.log1p(tf.maximum(features["price"], 0.0)),
            ],
            axis=1,
        )
        user_vector = tf.math.l2_normalize(apply_mlp(self.user_tower, user), axis=1)
        item_vector = tf.math.l2_normalize(apply_mlp(self.item_tower, item), axis=1)
        cosine = tf.reduce_sum(user_vector * item_vector, axis=1)
        city_bias = hash_lookup(self.city_bias, features["city"], size.city_buckets)[:, 0]
        return self.scale * cosine + city_bias + self.bias


def make_columns(data: Interactions) -> dict[str, np.ndarray]:
    """Input columns (signature order) then ``label``."""
    return {
        "user_id": data.user_ids(),
        "age": data.ages(),
        "gender": data.genders(),
        "city": data.cities(),
        "hist_item_id": data.history_item_ids(HISTORY_LENGTH),
        "item_id": data.item_ids(),
        "category": data.categories(),
        "price": data.prices().reshape(-1, 1),
        "request_id": data.row_ids("r"),
        "label": data.click,
    }


def make_model(
    size: SampleSize, train: Mapping[str, np.ndarray], rng: np.random.Generator
) -> DSSMModel:
    """A fresh DSSM whose category vocabulary comes from the training rows."""
    return DSSMModel(size, top_vocabulary(train["category"]), rng)


def planted_flaws(size: SampleSize, columns: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """The flaws planted in this DSSM, with the numbers of this build."""
    return [
        age_as_string_flaw(size, columns),
        flaw(
            "duplicate_feature",
            ["city"],
            f"city is hashed twice into {size.city_buckets} buckets: a {size.small_dim}-wide "
            "embedding in the user tower and a separate 1-wide bias table added to the logit",
        ),
        unused_input_flaw("request_id"),
        oversized_user_table_flaw(size, columns),
        flaw(
            "shared_embedding_candidate",
            ["item_id", "hist_item_id"],
            f"item_id and hist_item_id hash the same item-id space into {size.item_buckets} "
            "buckets but use two separate tables",
        ),
    ]


DEFINITION = SampleDefinition(
    name="dssm",
    inputs=INPUTS,
    outputs=("score",),
    labels=("label",),
    make_columns=make_columns,
    make_model=make_model,
    planted_flaws=planted_flaws,
    auc_targets={"score": AucTarget("label")},
)
