"""A TF1 graph exported from a ``tf.compat.v1.Session`` with ``SavedModelBuilder`` and
``main_op=tf.compat.v1.tables_initializer()`` (Estimator-era serving: tables initialized when
the model loads), the way pre-TF2 recommender code still in production does it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.zoo import data
from benchmarks.zoo.export import finish


def build_session(out: Path) -> None:
    """Rank-1 placeholders (``[None]``): a hashed user id, ``shared_embedding_columns`` between
    the item and a padded ``[None, 5]`` history (feature-column sparse path, ``""`` ignored), a
    ``"|"``-separated tag string split into a multi-valued sparse feature and looked up in a
    vocabulary table, and an int64 -> int64 ``StaticHashTable`` for shop ids. Two heads (click
    and conversion probabilities). Trained for a few steps in the Session, then saved."""
    import tensorflow as tf

    v1 = tf.compat.v1
    frame = data.click_log(pad="")
    frame["tags"] = [
        "|".join(sorted({data.item_category(i) for i in cell if i}))
        for cell in frame["hist_item_id"]
    ]
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        user_id = v1.placeholder(tf.string, [None], name="user_id")
        item_id = v1.placeholder(tf.string, [None], name="item_id")
        hist = v1.placeholder(tf.string, [None, data.HISTORY], name="hist_item_id")
        tags = v1.placeholder(tf.string, [None], name="tags")
        shop_id = v1.placeholder(tf.int64, [None], name="shop_id")
        price = v1.placeholder(tf.float32, [None], name="price")
        click = v1.placeholder(tf.float32, [None], name="click")
        conversion = v1.placeholder(tf.float32, [None], name="conversion")

        fc = v1.feature_column
        item_col = fc.categorical_column_with_vocabulary_list("item_id", data.ITEMS)
        hist_col = fc.categorical_column_with_vocabulary_list("hist_item_id", data.ITEMS)
        columns = [
            fc.embedding_column(fc.categorical_column_with_hash_bucket("user_id", 64), 8),
            *fc.shared_embedding_columns([item_col, hist_col], dimension=8, combiner="mean"),
        ]
        features = {"user_id": user_id[:, None], "item_id": item_id[:, None], "hist_item_id": hist}
        dense = fc.input_layer(features, columns)

        tag_table = tf.lookup.StaticVocabularyTable(
            tf.lookup.KeyValueTensorInitializer(
                data.CATEGORIES, np.arange(len(data.CATEGORIES), dtype="int64")
            ),
            num_oov_buckets=1,
        )
        tag_tokens = tf.strings.split(tags, "|").to_sparse()
        tag_ids = tf.SparseTensor(
            tag_tokens.indices, tag_table.lookup(tag_tokens.values), tag_tokens.dense_shape
        )
        tag_weights = v1.get_variable("tag_embedding", [len(data.CATEGORIES) + 1, 4])
        tag_vec = tf.nn.safe_embedding_lookup_sparse(tag_weights, tag_ids, combiner="mean")

        shop_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                np.array(data.SHOPS, dtype="int64"),
                np.arange(1, len(data.SHOPS) + 1, dtype="int64"),
            ),
            default_value=0,
        )
        shop_weights = v1.get_variable("shop_embedding", [len(data.SHOPS) + 1, 4])
        shop_vec = tf.nn.embedding_lookup(shop_weights, shop_table.lookup(shop_id))

        x = tf.concat([dense, tag_vec, shop_vec, tf.math.log1p(price)[:, None]], axis=1)

        def dense(inputs, units, name):  # noqa: ANN001, ANN202 - tf.compat.v1.layers needs Keras 2
            w = v1.get_variable(f"{name}/kernel", [inputs.shape[1], units])
            b = v1.get_variable(f"{name}/bias", [units], initializer=v1.zeros_initializer())
            return tf.matmul(inputs, w) + b

        hidden = tf.nn.relu(dense(x, 16, "hidden"))
        click_logit = tf.squeeze(dense(hidden, 1, "click"), 1)
        conversion_logit = tf.squeeze(dense(hidden, 1, "conversion"), 1)
        ctr = tf.sigmoid(click_logit, name="ctr")
        ctcvr = tf.multiply(ctr, tf.sigmoid(conversion_logit), name="ctcvr")
        loss = tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=click, logits=click_logit)
        ) - tf.reduce_mean(
            conversion * tf.math.log(ctcvr + 1e-7)
            + (1 - conversion) * tf.math.log(1 - ctcvr + 1e-7)
        )
        train = v1.train.AdamOptimizer(0.01).minimize(loss)

        feed = {
            user_id: frame["user_id"].to_numpy().astype(str),
            item_id: frame["item_id"].to_numpy().astype(str),
            hist: data.history_matrix(frame).astype(str),
            tags: frame["tags"].to_numpy().astype(str),
            shop_id: frame["shop_id"].to_numpy(),
            price: frame["price"].to_numpy(),
            click: frame["label"].to_numpy().astype("float32"),
            conversion: frame["label_conversion"].to_numpy().astype("float32"),
        }
        with v1.Session(graph=graph) as sess:
            sess.run([v1.global_variables_initializer(), v1.tables_initializer()])
            for _ in range(20):
                sess.run(train, feed)
            signature = v1.saved_model.predict_signature_def(
                inputs={
                    "user_id": user_id,
                    "item_id": item_id,
                    "hist_item_id": hist,
                    "tags": tags,
                    "shop_id": shop_id,
                    "price": price,
                },
                outputs={"ctr": ctr, "ctcvr": ctcvr},
            )
            builder = v1.saved_model.Builder(str(out / "saved_model"))
            builder.add_meta_graph_and_variables(
                sess,
                [v1.saved_model.tag_constants.SERVING],
                signature_def_map={"serving_default": signature},
                main_op=v1.tables_initializer(),
            )
            builder.save()
    labelled = frame.rename(columns={"label": "label_ctr", "label_conversion": "label_ctcvr"})
    finish(
        out,
        labelled,
        ["user_id", "item_id", "hist_item_id", "tags", "shop_id", "price"],
        ["label_ctr", "label_ctcvr"],
    )


__all__ = ["build_session"]
