"""DeepMatch two-tower models (``deepmatch``), served as their docs show: the trained model's
user tower, ``Model(inputs=model.user_input, outputs=model.user_embedding)``, saved as a
SavedModel (the item vectors go to an ANN index offline).

DeepMatch builds on DeepCTR's feature definitions and ``tf.keras`` = Keras 2, so these run with
``TF_USE_LEGACY_KERAS=1``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.zoo import data
from benchmarks.zoo.export import finish, fit_quietly

EMB = 8


def build_dssm(out: Path) -> None:
    """DSSM (logistic loss): a user tower over hashed string ids and a string history
    (``VarLenSparseFeat``, mean-pooled, padding ``"0"`` masked on the raw string)."""
    from deepctr.feature_column import SparseFeat, VarLenSparseFeat
    from deepmatch.models import DSSM
    from tensorflow.keras.models import Model

    frame = data.click_log(pad="0")
    user_columns = [
        SparseFeat("user_id", 64, EMB, use_hash=True, dtype="string"),
        SparseFeat("city", 16, EMB, use_hash=True, dtype="string"),
        VarLenSparseFeat(
            SparseFeat(
                "hist_item_id", 48, EMB, use_hash=True, dtype="string", embedding_name="item_id"
            ),
            maxlen=data.HISTORY,
            combiner="mean",
        ),
    ]
    item_columns = [
        SparseFeat("item_id", 48, EMB, use_hash=True, dtype="string"),
        SparseFeat("category", 16, EMB, use_hash=True, dtype="string"),
    ]
    model = DSSM(
        user_columns,
        item_columns,
        user_dnn_hidden_units=(16, EMB),
        item_dnn_hidden_units=(16, EMB),
        loss_type="logistic",
    )
    model.compile("adam", "binary_crossentropy")
    x = {
        "user_id": frame["user_id"].to_numpy().astype(str),
        "city": frame["city"].to_numpy().astype(str),
        "hist_item_id": data.history_matrix(frame).astype(str),
        "item_id": frame["item_id"].to_numpy().astype(str),
        "category": frame["category"].to_numpy().astype(str),
    }
    fit_quietly(model, x, frame["label"].to_numpy())
    _untrack_replaced_lists(model)
    user_tower = Model(inputs=model.user_input, outputs=model.user_embedding)
    user_tower.save(str(out / "saved_model"), save_format="tf")
    finish(out, frame, ["user_id", "city", "hist_item_id"], [])


def build_fm(out: Path) -> None:
    """DeepMatch FM (logistic loss) on label-encoded integer ids (0 pads), a mean-pooled integer
    history with its length (``length_name``); the whole model (user x item score) is saved."""
    from deepctr.feature_column import SparseFeat, VarLenSparseFeat
    from deepmatch.models import FM

    frame = data.click_log()
    item_index = {item: i + 1 for i, item in enumerate(data.ITEMS)}
    user_index = {user: i + 1 for i, user in enumerate(data.USERS)}
    frame["user_idx"] = frame["user_id"].map(user_index).astype("int64")
    frame["item_idx"] = frame["item_id"].map(item_index).fillna(0).astype("int64")
    frame["hist_item_idx"] = [
        [item_index.get(i, 0) for i in cell] for cell in frame["hist_item_id"]
    ]
    vocab = len(data.ITEMS) + 1
    user_columns = [
        SparseFeat("user_idx", len(data.USERS) + 1, EMB, dtype="int64"),
        SparseFeat("age", 100, EMB, dtype="int64"),
        VarLenSparseFeat(
            SparseFeat("hist_item_idx", vocab, EMB, embedding_name="item_idx", dtype="int64"),
            maxlen=data.HISTORY,
            combiner="mean",
            length_name="hist_len",
        ),
    ]
    item_columns = [SparseFeat("item_idx", vocab, EMB, dtype="int64")]
    model = FM(user_columns, item_columns, loss_type="logistic")
    model.compile("adam", "binary_crossentropy")
    names = ["user_idx", "age", "hist_item_idx", "hist_len", "item_idx"]
    x = {n: np.array(frame[n].tolist(), dtype="int64") for n in names}
    fit_quietly(model, x, frame["label"].to_numpy())
    _untrack_replaced_lists(model)
    model.save(str(out / "saved_model"), save_format="tf")
    finish(out, frame, names, ["label"])


def _untrack_replaced_lists(model: object) -> None:
    """Re-wrap DeepCTR ``DNN.activation_layers`` lists, whose last item DeepCTR replaces in
    ``build`` (``output_activation``): TensorFlow refuses to save a tracked list that was
    modified in place ("A list element was replaced"). The layers and weights are unchanged."""
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "activation_layers"):
            layer.activation_layers = list(layer.activation_layers)


__all__ = ["build_dssm", "build_fm"]
