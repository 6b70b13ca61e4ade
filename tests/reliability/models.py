"""Tiny models and data files for the reliability tests.

* :func:`build_ranker`: a TF2 ranker whose vocabulary (a ``StaticHashTable``) holds HTML and quote
  payloads, so every report that shows table keys is checked for escaping.
* :func:`build_tf1_ranker`: a TF1 Session export whose signature keys (feature and output names)
  are HTML payloads: TF1 signature keys are free text, unlike node names.
* :func:`build_write_file`: a model that writes a file each time it runs (an unsafe op).
* :func:`without_outputs`, :func:`write_data`: broken copies and data files made from the above.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from recadvisor.tfimport import import_tf

XSS = "<script>alert(1)</script>"
QUOTES = "\"'&"
VOCAB = ["books", "music", XSS, f"q{QUOTES}q"]
N_ROWS = 32


def build_ranker(path: Path, seed: int = 0) -> Path:
    """string ``user_id`` hashed, string ``category`` looked up in a payload-laden vocabulary,
    int64 ``age`` of shape [N,1]; outputs ``score`` and ``logit``."""
    tf = import_tf()
    rng = np.random.default_rng(seed)

    class Ranker(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.user_emb = tf.Variable(rng.normal(size=(64, 4)).astype("float32"), name="user_emb")
            self.cat_emb = tf.Variable(rng.normal(size=(8, 4)).astype("float32"), name="cat_emb")
            self.kernel = tf.Variable(rng.normal(size=(9, 1)).astype("float32"), name="kernel")
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(VOCAB), tf.constant(np.arange(1, len(VOCAB) + 1), tf.int64)
                ),
                default_value=0,
            )

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="user_id"),
                tf.TensorSpec([None, 1], tf.int64, name="age"),
                tf.TensorSpec([None], tf.string, name="category"),
            ]
        )
        def serve(self, user_id, age, category):
            u = tf.gather(self.user_emb, tf.strings.to_hash_bucket_fast(user_id, 64))
            c = tf.gather(self.cat_emb, self.table.lookup(category))
            x = tf.concat([u, c, tf.cast(age, tf.float32) / 100.0], axis=1)
            logit = tf.squeeze(tf.matmul(x, self.kernel), 1)
            return {"score": tf.sigmoid(logit), "logit": logit}

    module = Ranker()
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.serve.get_concrete_function()}
    )
    return path


def build_tf1_ranker(path: Path, input_key: str, output_key: str) -> Path:
    """A TF1 Session export whose signature input and output keys are free text."""
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 3], name="x")
        w = v1.get_variable("w", initializer=np.ones((3, 1), "float32"), use_resource=True)
        y = tf.identity(tf.matmul(x, w), name="y")
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            sig = v1.saved_model.signature_def_utils.predict_signature_def(
                inputs={input_key: x}, outputs={output_key: y}
            )
            builder.add_meta_graph_and_variables(
                sess, ["serve"], signature_def_map={"serving_default": sig}
            )
            builder.save()
    return path


def build_write_file(path: Path, target: Path) -> Path:
    """Each call writes ``target`` (``tf.io.write_file``) and returns ``x * 2``."""
    tf = import_tf()

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            tf.io.write_file(str(target), "the model ran")
            return {"y": x * 2.0}

    module = Writer()
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.serve.get_concrete_function()}
    )
    return path


def without_outputs(model: Path, path: Path) -> Path:
    """A copy of ``model`` whose ``serving_default`` signature declares no outputs."""
    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(model, path)
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    for meta in proto.meta_graphs:
        meta.signature_def["serving_default"].outputs.clear()
    (path / "saved_model.pb").write_bytes(proto.SerializeToString())
    return path


def ranker_frame(rows: int = N_ROWS, seed: int = 1) -> pd.DataFrame:
    """Rows fitting :func:`build_ranker` (categories drawn from the vocabulary and beyond)."""
    rng = np.random.default_rng(seed)
    cats = np.array([*VOCAB, "unknown"], dtype=object)
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in rng.integers(0, 500, rows)],
            "age": rng.integers(18, 70, rows).astype("int64"),
            "category": cats[rng.integers(0, len(cats), rows)],
            "label": rng.integers(0, 2, rows).astype("int64"),
        }
    )


def tree_digest(*roots: Path) -> dict[str, str]:
    """Relative path -> sha256 for every file under each root (a file root is hashed itself)."""
    digests = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            digests[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return digests
