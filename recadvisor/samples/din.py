"""DIN sample: target-aware attention over a 50-long behaviour history, then an MLP.

Inputs: target ``item_id`` + ``cate_id``; history ``hist_item_id`` and ``hist_cate_id``
``[N, 50]`` (``""`` padding masked); ``user_id``; ``age`` int64 ``[N, 1]`` (formatted with
``AsString`` and hashed). The target item and the history share one item table, as real DIN
does, but ``hist_cate_id`` has its own table over the same id space as ``cate_id``.

Attention: for each history position, an MLP over ``[q, k, q - k, q * k]`` scores the key
against the target query; scores are softmaxed over the unpadded positions and pool the keys.
Top: ``[user, age, q, interest, q * interest]`` -> dense(ReLU) -> dense(ReLU) -> dense(1).
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
    distinct,
    flaw,
    hash_lookup,
)
from recadvisor.samples.synthetic import Interactions
from recadvisor.tfimport import import_tf

HISTORY_LENGTH = 50

INPUTS = {
    "item_id": TensorInfo("item_id", "string", (None,)),
    "cate_id": TensorInfo("cate_id", "string", (None,)),
    "hist_item_id": TensorInfo("hist_item_id", "string", (None, HISTORY_LENGTH)),
    "hist_cate_id": TensorInfo("hist_cate_id", "string", (None, HISTORY_LENGTH)),
    "user_id": TensorInfo("user_id", "string", (None,)),
    "age": TensorInfo("age", "int64", (None, 1)),
}


class DINModel(ClickModel):
    """The DIN weights and forward pass.

    Args:
        size: table sizes and widths.
        rng: initializes the weights.
    """

    def __init__(self, size: SampleSize, rng: np.random.Generator) -> None:
        self.size = size
        p = self.params = ModelParams("din", rng)
        d, s, h = size.id_dim, size.small_dim, size.hidden_units
        self.item_embedding = p.embedding("item_embedding", size.item_buckets, d)
        self.cate_embedding = p.embedding("cate_embedding", size.category_buckets, s)
        self.hist_cate_embedding = p.embedding("hist_cate_embedding", size.category_buckets, s)
        self.user_embedding = p.embedding("user_embedding", size.din_user_buckets, d)
        self.age_embedding = p.embedding("age_embedding", size.age_buckets, s)
        key_width = d + s
        self.attention = p.mlp("attention", 4 * key_width, [h, h // 2, 1], None)
        self.top = p.mlp("top", d + s + 3 * key_width, [2 * h, h, 1], None)

    def logit(self, features: Mapping[str, Any]) -> Any:
        """``[N]`` logits."""
        tf = import_tf()
        size = self.size
        query = tf.concat(
            [
                hash_lookup(self.item_embedding, features["item_id"], size.item_buckets),
                hash_lookup(self.cate_embedding, features["cate_id"], size.category_buckets),
            ],
            axis=1,
        )
        hist_items = features["hist_item_id"]
        keys = tf.concat(
            [
                hash_lookup(self.item_embedding, hist_items, size.item_buckets),
                hash_lookup(
                    self.hist_cate_embedding, features["hist_cate_id"], size.category_buckets
                ),
            ],
            axis=2,
        )
        mask = tf.not_equal(hist_items, "")
        queries = tf.broadcast_to(query[:, None, :], tf.shape(keys))
        attention_in = tf.concat([queries, keys, queries - keys, queries * keys], axis=2)
        scores = tf.squeeze(apply_mlp(self.attention, attention_in), axis=2)
        scores = tf.where(mask, scores, tf.constant(-1e9))
        weights = tf.nn.softmax(scores, axis=1) * tf.cast(mask, tf.float32)
        interest = tf.reduce_sum(weights[:, :, None] * keys, axis=1)
        age_ids = tf.strings.to_hash_bucket_fast(
            tf.strings.as_string(features["age"]), size.age_buckets
        )
        top_in = tf.concat(
            [
                hash_lookup(self.user_embedding, features["user_id"], size.din_user_buckets),
                tf.gather(self.age_embedding, age_ids[:, 0]),
                query,
                interest,
                query * interest,
            ],
            axis=1,
        )
        return tf.squeeze(apply_mlp(self.top, top_in), axis=1)


def make_columns(data: Interactions) -> dict[str, np.ndarray]:
    """Input columns (signature order) then ``label``."""
    return {
        "item_id": data.item_ids(),
        "cate_id": data.categories(),
        "hist_item_id": data.history_item_ids(HISTORY_LENGTH),
        "hist_cate_id": data.history_categories(HISTORY_LENGTH),
        "user_id": data.user_ids(),
        "age": data.ages().reshape(-1, 1),
        "label": data.click,
    }


def make_model(
    size: SampleSize, train: Mapping[str, np.ndarray], rng: np.random.Generator
) -> DINModel:
    """A fresh DIN (it learns no vocabulary from the training rows)."""
    del train
    return DINModel(size, rng)


def planted_flaws(size: SampleSize, columns: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """The flaws planted in this DIN, with the numbers of this build."""
    return [
        age_as_string_flaw(size, columns, shape="[N,1]"),
        flaw(
            "shared_embedding_candidate",
            ["cate_id", "hist_cate_id"],
            f"cate_id and hist_cate_id hash the same category space into "
            f"{size.category_buckets} buckets but use two separate tables "
            f"({distinct(columns['hist_cate_id'])} categories in the data)",
        ),
    ]


DEFINITION = SampleDefinition(
    name="din",
    inputs=INPUTS,
    outputs=("score",),
    labels=("label",),
    make_columns=make_columns,
    make_model=make_model,
    planted_flaws=planted_flaws,
    auc_targets={"score": AucTarget("label")},
)
