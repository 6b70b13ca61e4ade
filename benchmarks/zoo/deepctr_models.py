"""DeepCTR models (``deepctr``), built with its feature definitions as its docs show.

DeepCTR runs on ``tf.keras`` = Keras 2, so these builders run with ``TF_USE_LEGACY_KERAS=1``
(tf_keras). Its ``Hash`` layer hashes strings with ``StringToHashBucketFast`` and, for sequence
and attention-query features, masks the padding value ``"0"`` with ``NotEqual`` on the raw
string; integers with ``use_hash`` are hashed through their string form (``AsString``). Models
are saved with ``model.save(path, save_format="tf")`` (DeepCTR's FAQ: a SavedModel for serving).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.zoo import data
from benchmarks.zoo.export import finish, fit_quietly

EMB = 4


def _inputs(frame, names, string_seq=()) -> dict:
    """Model inputs as DeepCTR feeds them: one ``[N, 1]`` column per feature."""
    feeds = {}
    for name in names:
        if name in string_seq:
            feeds[name] = data.history_matrix(frame, name).astype(str)
        elif frame[name].dtype == object:
            feeds[name] = frame[name].to_numpy().astype(str)
        else:
            feeds[name] = frame[name].to_numpy()
    return feeds


def build_deepfm(out: Path) -> None:
    """DeepFM: hashed string ids, a vocabulary file (CSV, ``TextFileInitializer``) for the
    category, an integer hashed through its string form, and a dense float."""
    from deepctr.feature_column import DenseFeat, SparseFeat, get_feature_names
    from deepctr.models import DeepFM

    frame = data.click_log(pad="0")
    vocab = out / "category_vocab.csv"
    out.mkdir(parents=True, exist_ok=True)
    # DeepCTR's vocabulary file: "index,key" per line, index 0 reserved for unknown keys
    vocab.write_text("".join(f"{i + 1},{c}\n" for i, c in enumerate(data.CATEGORIES)))
    columns = [
        SparseFeat("user_id", 64, EMB, use_hash=True, dtype="string"),
        SparseFeat("item_id", 48, EMB, use_hash=True, dtype="string"),
        SparseFeat(
            "category",
            len(data.CATEGORIES) + 1,
            EMB,
            use_hash=True,  # DeepCTR reads vocabulary_path only on its Hash path
            vocabulary_path=str(vocab),
            dtype="string",
        ),
        SparseFeat("hour", 24, EMB, use_hash=True, dtype="int64"),
        DenseFeat("price", 1),
    ]
    model = DeepFM(columns, columns, dnn_hidden_units=(16, 8), task="binary")
    names = get_feature_names(columns)
    model.compile("adam", "binary_crossentropy")
    fit_quietly(model, _inputs(frame, names), frame["label"].to_numpy())
    model.save(str(out / "saved_model"), save_format="tf")
    vocab.unlink()  # the SavedModel holds its own copy (assets/)
    finish(out, frame, names, ["label"])


def build_din(out: Path) -> None:
    """DIN over a padded string history (``VarLenSparseFeat``, padding ``"0"``): the query item
    and the history share one hashed embedding and both are masked on the raw string."""
    from deepctr.feature_column import DenseFeat, SparseFeat, VarLenSparseFeat, get_feature_names
    from deepctr.models import DIN

    frame = data.click_log(pad="0")
    columns = [
        SparseFeat("user_id", 64, EMB, use_hash=True, dtype="string"),
        SparseFeat("item_id", 48, EMB, use_hash=True, dtype="string"),
        SparseFeat("category", 16, EMB, use_hash=True, dtype="string"),
        DenseFeat("price", 1),
        VarLenSparseFeat(
            SparseFeat(
                "hist_item_id", 48, EMB, use_hash=True, dtype="string", embedding_name="item_id"
            ),
            maxlen=data.HISTORY,
        ),
    ]
    model = DIN(columns, ["item_id"], dnn_hidden_units=(16, 8), att_hidden_size=(8, 4))
    names = get_feature_names(columns)
    model.compile("adam", "binary_crossentropy")
    fit_quietly(model, _inputs(frame, names, ("hist_item_id",)), frame["label"].to_numpy())
    model.save(str(out / "saved_model"), save_format="tf")
    finish(out, frame, names, ["label"])


def build_mmoe(out: Path) -> None:
    """MMOE multi-task (click and conversion heads) on integer ids DeepCTR embeds directly
    (label-encoded, no hashing) and hashed string ids."""
    from deepctr.feature_column import DenseFeat, SparseFeat, get_feature_names
    from deepctr.models import MMOE

    frame = data.click_log(pad="0")
    frame["shop_index"] = frame["shop_id"] % 100  # label-encoded ids 0..99
    columns = [
        SparseFeat("user_id", 64, EMB, use_hash=True, dtype="string"),
        SparseFeat("city", 16, EMB, use_hash=True, dtype="string"),
        SparseFeat("shop_index", 100, EMB, dtype="int64"),
        DenseFeat("price", 1),
    ]
    model = MMOE(
        columns,
        num_experts=2,
        expert_dnn_hidden_units=(16,),
        tower_dnn_hidden_units=(8,),
        task_types=("binary", "binary"),
        task_names=("ctr", "ctcvr"),
    )
    names = get_feature_names(columns)
    model.compile("adam", ["binary_crossentropy", "binary_crossentropy"])
    labels = [frame["label"].to_numpy(), frame["label_conversion"].to_numpy()]
    fit_quietly(model, _inputs(frame, names), labels)
    model.save(str(out / "saved_model"), save_format="tf")
    finish(
        out,
        frame.rename(columns={"label": "label_ctr", "label_conversion": "label_ctcvr"}),
        names,
        ["label_ctr", "label_ctcvr"],
    )


def build_xdeepfm(out: Path) -> None:
    """xDeepFM (CIN) on hashed integers (``AsString`` + hash) and hashed strings."""
    from deepctr.feature_column import SparseFeat, get_feature_names
    from deepctr.models import xDeepFM

    frame = data.click_log(pad="0")
    columns = [
        SparseFeat("user_id", 64, EMB, use_hash=True, dtype="string"),
        SparseFeat("device", 8, EMB, use_hash=True, dtype="string"),
        SparseFeat("shop_id", 16, EMB, use_hash=True, dtype="int64"),
        SparseFeat("age", 32, EMB, use_hash=True, dtype="int64"),
    ]
    model = xDeepFM(columns, columns, dnn_hidden_units=(16, 8), cin_layer_size=(8, 8))
    names = get_feature_names(columns)
    model.compile("adam", "binary_crossentropy")
    fit_quietly(model, _inputs(frame, names), frame["label"].to_numpy())
    model.save(str(out / "saved_model"), save_format="tf")
    finish(out, frame, names, ["label"])


__all__ = ["build_deepfm", "build_din", "build_mmoe", "build_xdeepfm"]
