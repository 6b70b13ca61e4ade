"""Tiny models with the id patterns third-party recommender code exports, and their raw feeds.

Built with the libraries' own layers, not by hand, so the graphs are the ones users have:

``keras3_patterns`` (Keras 3, ``model.export``): ``hist`` [N,5] through ``Hashing(mask_value="")``
and ``Embedding(mask_zero=True)`` + masked pooling (a padding mask on the raw string next to the
hash); ``tags`` [N,3] through ``StringLookup(mask_token="")``; ``uid`` through ``IntegerLookup``
over sparse 64-bit ids (an int64 -> int64 hash table); ``salted`` through
``Hashing(salt=[11, 22])`` (``StringToHashBucketStrong``); ``a`` x ``b`` through
``HashedCrossing`` (``SparseCross``); ``oov`` [N,2] through ``StringLookup(num_oov_indices=3,
mask_token="")`` (mask select, then OOV hash buckets for keys the table lacks); ``code``
through ``IntegerLookup(num_oov_indices=2)`` (OOV index ``code mod 2``).

``feature_columns`` (tf-keras ``DenseFeatures``): ``user`` hash bucket (embedding, sum),
``tags`` [N,3] multi-valued hash bucket (embedding, mean), ``cat`` vocabulary list with 2 OOV
buckets (embedding, sqrtn), ``cat2`` vocabulary list (indicator), ``shop`` int64 vocabulary list
(embedding): every one goes through ``to_sparse_input`` (``NotEqual`` to the ignore value,
``Where``, ``GatherNd``).

``feature_cross`` (tf-keras ``DenseFeatures``): ``crossed_column(["user", "city"])`` next to a
hash bucket embedding of ``user``, ``crossed_column(["kind", "city"])`` where ``kind`` is also a
vocabulary column (its table is then keyed by ``Fingerprint64``). ``feature_cross_oov``:
``crossed_column(["kind2", "city"])`` where ``kind2`` is also a vocabulary column with 2 OOV hash
buckets (its OOV bucket becomes ``Fingerprint64 mod 2`` in the graph).

``keras3_salted_cross`` (Keras 3): the negative case, ``s`` is hashed with a salt and crossed with
``t`` (a cross needs ``Fingerprint64`` ids, from which a keyed hash cannot be computed).

``deepctr_hash``: DeepCTR's ``HashLayer(mask_zero=True)`` written out: ``hash(x, N - 1) + 1``
times ``x != as_string(zeros([1]))`` (the mask constant is computed, shape ``[1]``).

Feeds hold the pad / ignore values, out-of-vocabulary values, empty strings, unicode and long
strings.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from recadvisor.model.freeze import freeze
from recadvisor.model.load import load_model
from recadvisor.model.runtime import run_loaded
from recadvisor.tfimport import import_tf
from tests.rewrite.fixtures_contract import ContractModel

ITEMS = [f"item_{i}" for i in range(30)]
CATS = ["books", "music", "games"]
BIG_IDS = [10**9 + 7, 5, 123456789012]
POOL = ["", "item_1", "item_2", "item_29", "zzz", "ü日本", "x" * 100, "books", "music"]
N_ROWS = 96

_TMP = Path(tempfile.mkdtemp(prefix="recadvisor-patterns-"))
atexit.register(shutil.rmtree, _TMP, True)


def _strings(rng: np.random.Generator, shape: tuple[int, ...], pool: list[str]) -> np.ndarray:
    return np.array(rng.choice(pool, shape), dtype=object)


def _finish(path: Path, feeds: dict[str, np.ndarray]) -> ContractModel:
    loaded = load_model(path)
    graph = freeze(loaded)
    out = run_loaded(loaded.function, loaded.spec.inputs, feeds)
    score = np.asarray(next(iter(out.values()))).reshape(-1)
    labels = (np.random.default_rng(7).random(score.shape[0]) < 0.5).astype(np.int64)
    return ContractModel(path, loaded, graph, feeds, labels)


def keras3_feeds(n_rows: int = N_ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    """Raw inputs for ``keras3_patterns``."""
    rng = np.random.default_rng(seed)
    return {
        "hist": _strings(rng, (n_rows, 5), POOL),
        "tags": _strings(rng, (n_rows, 3), POOL),
        "uid": rng.choice([*BIG_IDS, 0, 77, -3], (n_rows, 1)).astype(np.int64),
        "salted": _strings(rng, (n_rows, 1), POOL),
        "a": _strings(rng, (n_rows, 1), POOL),
        "b": _strings(rng, (n_rows, 1), POOL),
        "oov": _strings(rng, (n_rows, 2), POOL),
        "code": rng.choice([5, 9, 0, -3, 77], (n_rows, 1)).astype(np.int64),
    }


@cache
def keras3_patterns() -> ContractModel:
    """Build (once) the Keras 3 model described in the module docstring."""
    import_tf()
    import keras

    keras.utils.set_random_seed(0)
    ins = {
        "hist": keras.Input(shape=(5,), dtype="string", name="hist"),
        "tags": keras.Input(shape=(3,), dtype="string", name="tags"),
        "uid": keras.Input(shape=(1,), dtype="int64", name="uid"),
        "salted": keras.Input(shape=(1,), dtype="string", name="salted"),
        "a": keras.Input(shape=(1,), dtype="string", name="a"),
        "b": keras.Input(shape=(1,), dtype="string", name="b"),
        "oov": keras.Input(shape=(2,), dtype="string", name="oov"),
        "code": keras.Input(shape=(1,), dtype="int64", name="code"),
    }
    hist = keras.layers.Hashing(num_bins=50, mask_value="")(ins["hist"])
    hist = keras.layers.Embedding(50, 4, mask_zero=True)(hist)
    hist = keras.layers.GlobalAveragePooling1D()(hist)
    tags = keras.layers.StringLookup(vocabulary=ITEMS, mask_token="")(ins["tags"])
    tags = keras.ops.sum(keras.layers.Embedding(32, 4)(tags), axis=1)
    uid = keras.layers.IntegerLookup(vocabulary=BIG_IDS)(ins["uid"])
    uid = keras.layers.Flatten()(keras.layers.Embedding(4, 4)(uid))
    salted = keras.layers.Hashing(num_bins=20, salt=[11, 22])(ins["salted"])
    salted = keras.layers.Flatten()(keras.layers.Embedding(20, 4)(salted))
    cross = keras.layers.HashedCrossing(num_bins=30)((ins["a"], ins["b"]))
    cross = keras.layers.Flatten()(keras.layers.Embedding(30, 4)(cross))
    oov = keras.layers.StringLookup(vocabulary=ITEMS[:5], num_oov_indices=3, mask_token="")
    oov = keras.ops.sum(keras.layers.Embedding(9, 4)(oov(ins["oov"])), axis=1)
    code = keras.layers.IntegerLookup(vocabulary=[5, 9], num_oov_indices=2)(ins["code"])
    code = keras.layers.Flatten()(keras.layers.Embedding(4, 4)(code))
    x = keras.layers.Concatenate()([hist, tags, uid, salted, cross, oov, code])
    x = keras.layers.Dense(8, activation="relu")(x)
    out = keras.layers.Dense(1, activation="sigmoid", name="score")(x)
    path = _TMP / "keras3_patterns"
    keras.Model(ins, out).export(str(path), format="tf_saved_model", verbose=False)
    return _finish(path, keras3_feeds())


def feature_column_feeds(n_rows: int = N_ROWS, seed: int = 1) -> dict[str, np.ndarray]:
    """Raw inputs for ``feature_columns``."""
    rng = np.random.default_rng(seed)
    cats = [*CATS, "", "other", "ü日本"]
    return {
        "user": _strings(rng, (n_rows, 1), POOL),
        "tags": _strings(rng, (n_rows, 3), POOL),
        "cat": _strings(rng, (n_rows, 1), cats),
        "cat2": _strings(rng, (n_rows, 1), cats),
        "shop": rng.choice([101, 102, 103, 0, -1, 7], (n_rows, 1)).astype(np.int64),
    }


def _save_tf_keras(columns: list[Any], specs: dict[str, tuple[int, Any]], name: str) -> Path:
    tf = import_tf()
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    ins = {k: tf_keras.Input((w,), dtype=dt, name=k) for k, (w, dt) in specs.items()}
    x = tf_keras.layers.DenseFeatures(columns)(ins)
    x = tf_keras.layers.Dense(8, activation="relu")(x)
    out = tf_keras.layers.Dense(1, activation="sigmoid", name="p")(x)
    path = _TMP / name
    tf_keras.Model(ins, out).save(str(path), save_format="tf")
    del tf
    return path


@cache
def feature_columns() -> ContractModel:
    """Build (once) the feature-column model described in the module docstring."""
    tf = import_tf()
    fc = tf.feature_column
    columns = [
        fc.embedding_column(fc.categorical_column_with_hash_bucket("user", 40), 4, combiner="sum"),
        fc.embedding_column(fc.categorical_column_with_hash_bucket("tags", 30), 4),
        fc.embedding_column(
            fc.categorical_column_with_vocabulary_list("cat", CATS, num_oov_buckets=2),
            3,
            combiner="sqrtn",
        ),
        fc.indicator_column(fc.categorical_column_with_vocabulary_list("cat2", CATS)),
        fc.embedding_column(
            fc.categorical_column_with_vocabulary_list("shop", [101, 102, 103], dtype=tf.int64), 3
        ),
    ]
    specs = {
        "user": (1, tf.string),
        "tags": (3, tf.string),
        "cat": (1, tf.string),
        "cat2": (1, tf.string),
        "shop": (1, tf.int64),
    }
    return _finish(_save_tf_keras(columns, specs, "feature_columns"), feature_column_feeds())


def feature_cross_feeds(n_rows: int = N_ROWS, seed: int = 2) -> dict[str, np.ndarray]:
    """Raw inputs for ``feature_cross``."""
    rng = np.random.default_rng(seed)
    return {
        "user": _strings(rng, (n_rows, 1), POOL),
        "city": _strings(rng, (n_rows, 1), ["paris", "oslo", "", "ü日本"]),
        "kind": _strings(rng, (n_rows, 1), [*CATS, "other"]),
    }


@cache
def feature_cross() -> ContractModel:
    """Build (once) the crossed-column model described in the module docstring."""
    tf = import_tf()
    fc = tf.feature_column
    kind = fc.categorical_column_with_vocabulary_list("kind", CATS)
    columns = [
        fc.embedding_column(fc.categorical_column_with_hash_bucket("user", 40), 4),
        fc.indicator_column(fc.crossed_column(["user", "city"], hash_bucket_size=25)),
        fc.indicator_column(kind),
        fc.indicator_column(fc.crossed_column(["kind", "city"], hash_bucket_size=10)),
    ]
    specs = {k: (1, tf.string) for k in ("user", "city", "kind")}
    return _finish(_save_tf_keras(columns, specs, "feature_cross"), feature_cross_feeds())


@cache
def feature_cross_oov() -> ContractModel:
    """Build (once) the crossed vocabulary-with-OOV model described in the module docstring."""
    tf = import_tf()
    fc = tf.feature_column
    kind2 = fc.categorical_column_with_vocabulary_list("kind2", CATS, num_oov_buckets=2)
    columns = [
        fc.indicator_column(kind2),
        fc.indicator_column(fc.crossed_column(["kind2", "city"], hash_bucket_size=10)),
    ]
    rng = np.random.default_rng(3)
    feeds = {
        "kind2": _strings(rng, (N_ROWS, 1), [*CATS, "other", ""]),
        "city": _strings(rng, (N_ROWS, 1), ["paris", "oslo", ""]),
    }
    specs = {k: (1, tf.string) for k in feeds}
    return _finish(_save_tf_keras(columns, specs, "feature_cross_oov"), feeds)


@cache
def deepctr_hash() -> ContractModel:
    """Build (once) DeepCTR's masked ``HashLayer`` pattern over a [N,4] history."""
    tf = import_tf()
    rng = np.random.default_rng(4)
    module = tf.Module()
    module.emb = tf.Variable(rng.normal(size=(20, 4)).astype(np.float32))
    specs = {"hist": tf.TensorSpec([None, 4], tf.string, name="hist")}

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        x = f["hist"]
        zero = tf.as_string(tf.zeros([1], dtype="int32"))
        ids = tf.strings.to_hash_bucket_fast(x, 19)
        mask = tf.cast(tf.not_equal(x, zero), "int64")
        ids = (ids + 1) * mask
        pooled = tf.reduce_sum(tf.gather(module.emb, ids), axis=1)
        return {"score": tf.sigmoid(tf.reduce_sum(pooled, axis=1, keepdims=True))}

    module.serve = serve
    path = _TMP / "deepctr_hash"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    feeds = {"hist": _strings(np.random.default_rng(5), (N_ROWS, 4), [*POOL, "0"])}
    return _finish(path, feeds)


@cache
def retrieval_top_k() -> ContractModel:
    """A retrieval index: a hashed ``user_id`` scores 20 items, ``output_2`` is the top-5 item
    ids gathered from a string constant (a string output, like a TFRS ``BruteForce`` index)."""
    tf = import_tf()
    rng = np.random.default_rng(6)
    module = tf.Module()
    module.user = tf.Variable(rng.normal(size=(50, 4)).astype(np.float32))
    module.items = tf.Variable(rng.normal(size=(20, 4)).astype(np.float32))
    item_ids = tf.constant([f"item_{i}" for i in range(20)])
    specs = {"user_id": tf.TensorSpec([None], tf.string, name="user_id")}

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        user = tf.gather(module.user, tf.strings.to_hash_bucket_fast(f["user_id"], 50))
        scores, top = tf.math.top_k(tf.matmul(user, module.items, transpose_b=True), k=5)
        return {"output_1": scores, "output_2": tf.gather(item_ids, top)}

    module.serve = serve
    path = _TMP / "retrieval_top_k"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    feeds = {"user_id": _strings(np.random.default_rng(7), (N_ROWS,), POOL)}
    return _finish(path, feeds)


@cache
def retrieval_inverse_lookup() -> ContractModel:
    """A retrieval index whose top-K positions go through int64 -> string tables on the way out,
    as Keras-RS does with an inverse ``StringLookup``: ``item_ids`` reads a dense table (keys
    0..19, one missing so the default shows), ``item_codes`` a table of sparse 64-bit keys,
    ``item_names`` a table holding every position 0..19."""
    tf = import_tf()
    rng = np.random.default_rng(8)
    module = tf.Module()
    module.user = tf.Variable(rng.normal(size=(50, 4)).astype(np.float32))
    module.items = tf.Variable(rng.normal(size=(20, 4)).astype(np.float32))
    dense_keys = tf.constant([k for k in range(20) if k != 7], tf.int64)
    dense_values = tf.constant([f"item_{k}" for k in range(20) if k != 7])
    module.names = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(dense_keys, dense_values), default_value="[UNK]"
    )
    sparse_keys = tf.constant([k * 1_000_003_017 for k in range(20)], tf.int64)
    sparse_values = tf.constant([f"code_{k}" for k in range(20)])
    module.codes = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(sparse_keys, sparse_values), default_value=""
    )
    every_key = tf.constant(list(range(20))[::-1], tf.int64)  # in any order
    module.every = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(every_key, tf.strings.as_string(every_key * 3)),
        default_value="[UNK]",
    )
    specs = {"user_id": tf.TensorSpec([None], tf.string, name="user_id")}

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        user = tf.gather(module.user, tf.strings.to_hash_bucket_fast(f["user_id"], 50))
        scores, top = tf.math.top_k(tf.matmul(user, module.items, transpose_b=True), k=5)
        top = tf.cast(top, tf.int64)
        return {
            "scores": scores,
            "item_ids": module.names.lookup(top),
            "item_codes": module.codes.lookup(top * 1_000_003_017),
            "item_names": module.every.lookup(top),
        }

    module.serve = serve
    path = _TMP / "retrieval_inverse_lookup"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    feeds = {"user_id": _strings(np.random.default_rng(9), (N_ROWS,), POOL)}
    return _finish(path, feeds)


@cache
def keras3_salted_cross() -> ContractModel:
    """Build (once) the negative Keras 3 model described in the module docstring."""
    import_tf()
    import keras

    keras.utils.set_random_seed(1)
    ins = {k: keras.Input(shape=(1,), dtype="string", name=k) for k in ("s", "t")}
    salted = keras.layers.Hashing(num_bins=16, salt=7)(ins["s"])
    salted = keras.layers.Flatten()(keras.layers.Embedding(16, 2)(salted))
    cross = keras.layers.HashedCrossing(num_bins=12)((ins["s"], ins["t"]))
    cross = keras.layers.Flatten()(keras.layers.Embedding(12, 2)(cross))
    out = keras.layers.Dense(1, name="score")(keras.layers.Concatenate()([salted, cross]))
    path = _TMP / "keras3_salted_cross"
    keras.Model(ins, out).export(str(path), format="tf_saved_model", verbose=False)
    rng = np.random.default_rng(8)
    return _finish(path, {k: _strings(rng, (N_ROWS, 1), POOL) for k in ins})


AGE_BOUNDARIES = [18, 30, 50]


def multi_valued_cross_feeds(n_rows: int = N_ROWS, seed: int = 9) -> dict[str, np.ndarray]:
    """Raw inputs for ``feature_multi_valued_cross``: 0 to 3 non-pad ``tags`` a row."""
    rng = np.random.default_rng(seed)
    tags = _strings(rng, (n_rows, 3), [*CATS, "", "", "other", "ü日本"])
    tags[:4] = ""  # rows with no tag: no crossed value at all
    tags[4] = ["books", "music", "games"]
    return {
        "tags": tags,
        "words": _strings(rng, (n_rows, 2), POOL),
        "age": rng.choice([5, 18, 29, 30, 64, -1], (n_rows, 1)).astype(np.int64),
    }


@cache
def feature_multi_valued_cross() -> ContractModel:
    """Crosses over multi-valued columns (tf-keras ``DenseFeatures``): ``crossed_column`` of a
    ``[N,3]`` vocabulary column (``""`` ignored: sparse, 0 to 3 values a row) with a bucketized
    ``age`` (an indicator), and of a raw ``[N,2]`` string key (a dense column) with the same
    bucketized ``age`` (an embedding: the cross output read by a sparse combiner)."""
    tf = import_tf()
    fc = tf.feature_column
    age = fc.bucketized_column(fc.numeric_column("age", dtype=tf.int64), AGE_BOUNDARIES)
    tags = fc.categorical_column_with_vocabulary_list("tags", CATS)
    columns = [
        fc.indicator_column(fc.crossed_column([tags, age], hash_bucket_size=20)),
        fc.embedding_column(fc.crossed_column(["words", age], hash_bucket_size=16), 3),
        fc.indicator_column(age),
    ]
    specs = {"tags": (3, tf.string), "words": (2, tf.string), "age": (1, tf.int64)}
    return _finish(
        _save_tf_keras(columns, specs, "feature_multi_valued_cross"), multi_valued_cross_feeds()
    )


def _sparse_from_padded(tf: Any, x: Any, pad: Any) -> Any:
    """The values of ``x`` other than ``pad`` as a SparseTensor (feature columns' path)."""
    indices = tf.where(tf.not_equal(x, pad))
    return tf.SparseTensor(indices, tf.gather_nd(x, indices), tf.shape(x, out_type=tf.int64))


@cache
def raw_sparse_cross(hashed: bool = True) -> ContractModel:
    """``tf.sparse.cross_hashed`` written out, its three parts the outputs: a sparse string
    column (``tags`` [N,3] without ``""``), a sparse int64 column (``codes`` [N,2] without -1)
    and a dense int64 column (``level`` [N,2]); plus a score. ``hashed=False``: the negative
    case, ``tf.sparse.cross`` (string crosses, ``SparseCrossV2``)."""
    tf = import_tf()
    module = tf.Module()
    module.emb = tf.Variable(np.random.default_rng(10).normal(size=(40, 2)).astype(np.float32))
    specs = {
        "tags": tf.TensorSpec([None, 3], tf.string, name="tags"),
        "codes": tf.TensorSpec([None, 2], tf.int64, name="codes"),
        "level": tf.TensorSpec([None, 2], tf.int64, name="level"),
    }

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        columns = [
            _sparse_from_padded(tf, f["tags"], ""),
            _sparse_from_padded(tf, f["codes"], tf.constant(-1, tf.int64)),
            f["level"],
        ]
        if not hashed:
            crossed = tf.sparse.cross(columns)
            ids = tf.strings.to_hash_bucket_fast(crossed.values, 40)
            return {"n": tf.size(ids), "score": tf.reduce_sum(tf.gather(module.emb, ids))}
        crossed = tf.sparse.cross_hashed(columns, num_buckets=40, hash_key=7)
        ids = tf.SparseTensor(crossed.indices, crossed.values, crossed.dense_shape)
        pooled = tf.nn.safe_embedding_lookup_sparse(module.emb, ids, combiner="mean")
        return {
            "indices": crossed.indices,
            "values": crossed.values,
            "dense_shape": crossed.dense_shape,
            "score": tf.reduce_sum(pooled, axis=1),
        }

    module.serve = serve
    path = _TMP / f"raw_sparse_cross_{'hashed' if hashed else 'strings'}"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    rng = np.random.default_rng(11)
    tags = _strings(rng, (N_ROWS, 3), [*POOL, "", ""])
    tags[:3] = ""  # empty rows
    codes = rng.choice([-1, -1, 0, 5, 2**40, -7], (N_ROWS, 2)).astype(np.int64)
    level = rng.choice([0, 1, 2, -5, 2**62], (N_ROWS, 2)).astype(np.int64)
    return _finish(path, {"tags": tags, "codes": codes, "level": level})


@cache
def int_sparse_cross() -> ContractModel:
    """Hashed crosses of int64 columns only, their parts the outputs: ``pair`` = a sparse
    ``codes`` [N,3] (-1 dropped: 0 to 3 values a row) x a dense ``level`` [N,2], without
    buckets (``mod INT64_MAX``); ``single`` = ``codes`` alone into 10 buckets; ``client`` = a
    sparse column the client sends (``ids_indices``, ``ids_values``, ``ids_shape``: maybe not
    in row-major order) x ``level``."""
    tf = import_tf()
    module = tf.Module()
    specs = {
        "codes": tf.TensorSpec([None, 3], tf.int64, name="codes"),
        "level": tf.TensorSpec([None, 2], tf.int64, name="level"),
        "ids_indices": tf.TensorSpec([None, 2], tf.int64, name="ids_indices"),
        "ids_values": tf.TensorSpec([None], tf.int64, name="ids_values"),
        "ids_shape": tf.TensorSpec([2], tf.int64, name="ids_shape"),
    }

    @tf.function(input_signature=[specs])
    def serve(f: dict) -> dict:
        codes = _sparse_from_padded(tf, f["codes"], tf.constant(-1, tf.int64))
        pair = tf.sparse.cross_hashed([codes, f["level"]], num_buckets=0, hash_key=3)
        single = tf.sparse.cross_hashed([codes], num_buckets=10)
        sent = tf.SparseTensor(f["ids_indices"], f["ids_values"], f["ids_shape"])
        client = tf.sparse.cross_hashed([sent, f["level"]], num_buckets=50)
        out = {}
        for name, crossed in (("pair", pair), ("single", single), ("client", client)):
            out[f"{name}_indices"] = crossed.indices
            out[f"{name}_values"] = crossed.values
            out[f"{name}_shape"] = crossed.dense_shape
        return out

    module.serve = serve
    path = _TMP / "int_sparse_cross"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    rng = np.random.default_rng(12)
    codes = rng.choice([-1, -1, 0, 5, 2**40, -7, 2**63 - 1], (N_ROWS, 3)).astype(np.int64)
    codes[:2] = -1
    level = rng.choice([0, 1, -5, 2**62], (N_ROWS, 2)).astype(np.int64)
    rows, slots = np.nonzero(codes != -1)  # the codes as a sparse tensor, in row-major order
    sent = {
        "ids_indices": np.stack([rows, slots], axis=1).astype(np.int64),
        "ids_values": codes[rows, slots],
        "ids_shape": np.array(codes.shape, np.int64),
    }
    return _finish(path, {"codes": codes, "level": level, **sent})


def bucketized_crosses_feeds(n_rows: int = N_ROWS, seed: int = 10) -> dict[str, np.ndarray]:
    """Raw inputs for ``feature_bucketized_crosses``: histories with empty slots (gaps too),
    rows with no value at all, out-of-vocabulary items, ages and prices across every bucket."""
    rng = np.random.default_rng(seed)
    hist = _strings(rng, (n_rows, 4), [*ITEMS[:6], "", "", "zzz", "ü日本"])
    hist[:4] = ""  # no history: no cross for these rows
    hist[4] = ["item_1", "", "item_2", ""]  # gaps between values
    return {
        "hist": hist,
        "tags": _strings(rng, (n_rows, 3), POOL),
        "city": _strings(rng, (n_rows, 1), ["paris", "oslo", "", "ü日本"]),
        "age": rng.integers(0, 90, (n_rows, 1)).astype(np.int64),
        "prices": rng.uniform(0.0, 100.0, (n_rows, 2)).astype(np.float32),
    }


@cache
def feature_bucketized_crosses() -> ContractModel:
    """``crossed_column`` over bucketized columns (tf-keras ``DenseFeatures``): a multi-valued
    ``[N, 4]`` vocabulary column (``hist``, ``""`` ignored, 2 OOV buckets) x a bucketized
    ``age`` (indicator); the raw ``[N, 3]`` ``tags`` x a bucketized ``[N, 2]`` ``prices`` (two
    buckets a row, the tiled bucketized indices; embedding, mean); ``city`` x ``hist`` x
    ``age`` (three columns, one dense, indicator)."""
    tf = import_tf()
    fc = tf.feature_column
    hist = fc.categorical_column_with_vocabulary_list("hist", ITEMS[:8], num_oov_buckets=2)
    age = fc.bucketized_column(fc.numeric_column("age", dtype=tf.int64), [18, 30, 50])
    prices = fc.bucketized_column(fc.numeric_column("prices", shape=(2,)), [10.0, 50.0])
    columns = [
        fc.indicator_column(fc.crossed_column([hist, age], hash_bucket_size=20)),
        fc.embedding_column(fc.crossed_column(["tags", prices], hash_bucket_size=16), 3),
        fc.indicator_column(fc.crossed_column(["city", hist, age], hash_bucket_size=24)),
        fc.indicator_column(age),
    ]
    specs = {
        "hist": (4, tf.string),
        "tags": (3, tf.string),
        "city": (1, tf.string),
        "age": (1, tf.int64),
        "prices": (2, tf.float32),
    }
    path = _save_tf_keras(columns, specs, "feature_bucketized_crosses")
    return _finish(path, bucketized_crosses_feeds())
