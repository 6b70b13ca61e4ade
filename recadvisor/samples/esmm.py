"""ESMM sample: shared embeddings feeding a CTR tower and a CVR tower; ctcvr = ctr * cvr.

Inputs: ``user_id`` (hashed into a table far larger than the user count), ``item_id`` and
``hist_item_id`` ``[N, 20]`` (one shared item table, history mean-pooled with ``""`` masked),
``category`` (vocabulary ``StaticHashTable``, out-of-vocabulary -> a reserved row), ``city``,
``age`` (int64 formatted with ``AsString`` and hashed). ``session_id`` is declared in the
signature and never read. Both towers: dense(ReLU) -> dense(ReLU) -> dense(1).

Trained the ESMM way, on the whole impression space: log loss of ``ctr`` against clicks plus log
loss of ``ctcvr`` against conversions; ``cvr`` is never fitted directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from recadvisor.model.spec import TensorInfo
from recadvisor.samples.common import (
    AucTarget,
    ModelParams,
    SampleDefinition,
    SampleModel,
    SampleSize,
    age_as_string_flaw,
    apply_mlp,
    binary_cross_entropy,
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
    "item_id": TensorInfo("item_id", "string", (None,)),
    "category": TensorInfo("category", "string", (None,)),
    "city": TensorInfo("city", "string", (None,)),
    "age": TensorInfo("age", "int64", (None,)),
    "hist_item_id": TensorInfo("hist_item_id", "string", (None, HISTORY_LENGTH)),
    "session_id": TensorInfo("session_id", "string", (None,)),
}


class ESMMModel(SampleModel):
    """The ESMM weights and forward pass.

    Args:
        size: table sizes and widths.
        categories: the category vocabulary (most frequent first).
        rng: initializes the weights.
    """

    def __init__(self, size: SampleSize, categories: list[str], rng: np.random.Generator) -> None:
        self.size = size
        p = self.params = ModelParams("esmm", rng)
        d, s, h = size.id_dim, size.small_dim, size.hidden_units
        self.user_embedding = p.embedding("user_embedding", size.user_buckets, d)
        self.item_embedding = p.embedding("item_embedding", size.item_buckets, d)
        self.category_table = p.vocabulary_table("category_vocabulary", categories)
        self.category_embedding = p.embedding("category_embedding", len(categories) + 1, s)
        self.city_embedding = p.embedding("city_embedding", size.city_buckets, s)
        self.age_embedding = p.embedding("age_embedding", size.age_buckets, s)
        width = 3 * d + 3 * s
        self.ctr_tower = p.mlp("ctr_tower", width, [h, h // 2, 1], None)
        self.cvr_tower = p.mlp("cvr_tower", width, [h, h // 2, 1], None)

    def logits(self, features: Mapping[str, Any]) -> tuple[Any, Any]:
        """``([N] ctr logits, [N] cvr logits)``."""
        tf = import_tf()
        size = self.size
        hist = features["hist_item_id"]
        shared = tf.concat(
            [
                hash_lookup(self.user_embedding, features["user_id"], size.user_buckets),
                hash_lookup(self.item_embedding, features["item_id"], size.item_buckets),
                masked_mean(
                    hash_lookup(self.item_embedding, hist, size.item_buckets),
                    tf.not_equal(hist, ""),
                ),
                tf.gather(
                    self.category_embedding, self.category_table.lookup(features["category"])
                ),
                hash_lookup(self.city_embedding, features["city"], size.city_buckets),
                hash_lookup(
                    self.age_embedding, tf.strings.as_string(features["age"]), size.age_buckets
                ),
            ],
            axis=1,
        )
        ctr = tf.squeeze(apply_mlp(self.ctr_tower, shared), axis=1)
        cvr = tf.squeeze(apply_mlp(self.cvr_tower, shared), axis=1)
        return ctr, cvr

    def serve(self, features: Mapping[str, Any]) -> dict[str, Any]:
        """``{"ctr", "cvr", "ctcvr"}``, each ``[N]`` probabilities."""
        tf = import_tf()
        ctr_logit, cvr_logit = self.logits(features)
        ctr, cvr = tf.sigmoid(ctr_logit), tf.sigmoid(cvr_logit)
        return {"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr}

    def loss(self, features: Mapping[str, Any], labels: Mapping[str, Any]) -> Any:
        """Click log loss on ctr + conversion log loss on ctcvr."""
        tf = import_tf()
        ctr_logit, cvr_logit = self.logits(features)
        ctr_loss = tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels["label"], ctr_logit)
        )
        ctcvr = tf.sigmoid(ctr_logit) * tf.sigmoid(cvr_logit)
        return ctr_loss + binary_cross_entropy(labels["label_ctcvr"], ctcvr)


def make_columns(data: Interactions) -> dict[str, np.ndarray]:
    """Input columns (signature order) then ``label`` (click) and ``label_ctcvr``."""
    return {
        "user_id": data.user_ids(),
        "item_id": data.item_ids(),
        "category": data.categories(),
        "city": data.cities(),
        "age": data.ages(),
        "hist_item_id": data.history_item_ids(HISTORY_LENGTH),
        "session_id": data.row_ids("s"),
        "label": data.click,
        "label_ctcvr": data.conversion,
    }


def make_model(
    size: SampleSize, train: Mapping[str, np.ndarray], rng: np.random.Generator
) -> ESMMModel:
    """A fresh ESMM whose category vocabulary comes from the training rows."""
    return ESMMModel(size, top_vocabulary(train["category"]), rng)


def planted_flaws(size: SampleSize, columns: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """The flaws planted in this ESMM, with the numbers of this build."""
    return [
        age_as_string_flaw(size, columns),
        unused_input_flaw("session_id"),
        oversized_user_table_flaw(size, columns),
    ]


DEFINITION = SampleDefinition(
    name="esmm",
    inputs=INPUTS,
    outputs=("ctr", "cvr", "ctcvr"),
    labels=("label", "label_ctcvr"),
    make_columns=make_columns,
    make_model=make_model,
    planted_flaws=planted_flaws,
    auc_targets={
        "ctr": AucTarget("label"),
        "cvr": AucTarget("label_ctcvr", only_where="label"),
        "ctcvr": AucTarget("label_ctcvr"),
    },
)
