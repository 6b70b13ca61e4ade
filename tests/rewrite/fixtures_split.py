"""Tiny TF1 (``tf.compat.v1.Session``, ``SavedModelBuilder``) models that split a string input
into tokens in the graph (``StringSplitV2``), and their raw feeds.

``split_tokens``: ``tags`` ``"a|b|c"`` split on ``"|"`` by ``tf.strings.split(...).to_sparse()``
(a ragged result turned sparse: ``RaggedTensorToSparse``), looked up in a
``StaticVocabularyTable`` with 2 OOV buckets (``LookupTableSizeV2``) and mean-pooled by
``safe_embedding_lookup_sparse``; ``words`` split on whitespace with ``maxsplit=2`` by
``tf.compat.v1.strings.split`` (a ``SparseTensor`` straight from the op), hashed into 40
buckets and sqrtn-pooled, and counted per row (``unsorted_segment_sum`` over
``tf.shape(words)[0]`` segments: a ``Shape`` reader of the split input); ``price`` dense. Two
heads, ``score`` and ``logit``.

``split_tokens_v1``: TF1's ``StringSplit`` (``tf.compat.v1.string_split``, a *set* of delimiter
bytes): ``cats`` split on ``",;"`` (empty tokens skipped), looked up in a ``StaticHashTable`` whose
default ``-1`` the pooling drops (``safe_embedding_lookup_sparse`` prunes ids below 0) and
sum-pooled; ``spaced`` split on ``" "`` keeping empty tokens (``skip_empty=False``), hashed into
20 buckets and mean-pooled. No other reader of the tokens, so a batch whose rows have no token
(``""`` gives none here) pools to zeros through every runtime.

``split_refused``: the negative cases: ``notes`` split on ``","``, its tokens hashed and pooled
*and* their lengths (``StringLength``) summed per row, a string use of the tokens that cannot
move to the client; ``user`` split on ``"_"`` (tokens hashed) and also hashed whole; ``item``
hashed (still rewritten).

Feeds hold empty strings, rows of separators only, repeated and leading/trailing separators,
one-token rows, out-of-vocabulary and unicode tokens.
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
from recadvisor.tfimport import import_tf
from tests.rewrite.fixtures_contract import ContractModel

TAGS = ["books", "music", "games", "toys"]
TOKENS = [*TAGS, "", "garden", "ü日本", "x" * 60]
# every row a tricky case first, then random joins
TRICKY_TAGS = ["", "|", "||", "books", "a||b", "|games|", "games||music", "ü日本|books", "games|"]
TRICKY_CATS = ["", ",", ";;", "books", ",books;", "games,;music", "ü日本;,", "a,,b;;c"]
TRICKY_SPACED = ["", " ", "  ", "one", " lead", "trail ", "a  b", "a \tb"]
TRICKY_WORDS = ["", " ", "  \t\n", "one", " lead", "trail ", "a  b", "a b c d e", "\x0bx\x0cy\rz"]
N_ROWS = 48

_TMP = Path(tempfile.mkdtemp(prefix="recadvisor-split-"))
atexit.register(shutil.rmtree, _TMP, True)


def _joined(rng: np.random.Generator, n_rows: int, seps: list[str], head: list[str]) -> np.ndarray:
    rows = list(head)
    while len(rows) < n_rows:
        tokens = rng.choice(TOKENS, rng.integers(0, 5)).tolist()
        row = ""
        for k, token in enumerate(tokens):
            row += (rng.choice(seps) if k else "") + token
        rows.append(row)
    return np.array(rows[:n_rows], dtype=object)


def split_feeds(n_rows: int = N_ROWS, seed: int = 0, tricky: bool = True) -> dict[str, np.ndarray]:
    """Raw inputs for ``split_tokens`` (the tricky rows first unless ``tricky`` is false)."""
    rng = np.random.default_rng(seed)
    return {
        "tags": _joined(rng, n_rows, ["|", "||"], TRICKY_TAGS if tricky else []),
        "words": _joined(rng, n_rows, [" ", "\t", "  ", " \n "], TRICKY_WORDS if tricky else []),
        "price": rng.normal(size=n_rows).astype(np.float32),
    }


def split_v1_feeds(n_rows: int = N_ROWS, seed: int = 2, tricky: bool = True) -> dict[str, Any]:
    """Raw inputs for ``split_tokens_v1``."""
    rng = np.random.default_rng(seed)
    return {
        "cats": _joined(rng, n_rows, [",", ";", ",;", ";;"], TRICKY_CATS if tricky else []),
        "spaced": _joined(rng, n_rows, [" ", "  "], TRICKY_SPACED if tricky else []),
    }


def refused_feeds(n_rows: int = N_ROWS, seed: int = 1) -> dict[str, np.ndarray]:
    """Raw inputs for ``split_refused``."""
    rng = np.random.default_rng(seed)
    return {
        "notes": _joined(rng, n_rows, [","], ["", ",", "a,,b"]),
        "user": _joined(rng, n_rows, ["_"], ["", "_", "u_1"]),
        "item": np.array(rng.choice(TOKENS, n_rows), dtype=object),
    }


class SessionModel(ContractModel):
    """A TF1 model whose original outputs come from its SavedModel loaded in a v1 Session (the
    oracle: neither our freezing nor our runner is involved)."""

    def run_original(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Load the SavedModel in a fresh Session (its ``main_op`` fills the tables) and run the
        ``serving_default`` signature on ``feeds``."""
        tf = import_tf()
        v1 = tf.compat.v1
        with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
            meta = v1.saved_model.loader.load(sess, ["serve"], str(self.path))
            sig = meta.signature_def["serving_default"]
            fetches = {k: v.name for k, v in sig.outputs.items()}
            return sess.run(fetches, {sig.inputs[k].name: v for k, v in feeds.items()})


def _save_session(
    name: str, build: Any, feeds: dict[str, np.ndarray], outputs: tuple[str, ...]
) -> ContractModel:
    """Build a graph with ``build(v1, tf, rng) -> (inputs, outputs)`` in a Session, initialize
    it and save it with ``main_op=tables_initializer()``."""
    tf = import_tf()
    v1 = tf.compat.v1
    path = _TMP / name
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        inputs, heads = build(v1, tf, np.random.default_rng(0))
        inputs_key = next(iter(inputs))
        sess.run([v1.global_variables_initializer(), v1.tables_initializer()])
        sig = v1.saved_model.predict_signature_def(inputs, dict(zip(outputs, heads, strict=True)))
        builder = v1.saved_model.Builder(str(path))
        builder.add_meta_graph_and_variables(
            sess,
            ["serve"],
            signature_def_map={"serving_default": sig},
            main_op=v1.tables_initializer(),
        )
        builder.save()
    loaded = load_model(path)
    labels = (np.random.default_rng(7).random(len(feeds[inputs_key])) < 0.5).astype(np.int64)
    return SessionModel(path, loaded, freeze(loaded), feeds, labels)


def _variable(v1: Any, rng: np.random.Generator, name: str, *shape: int) -> Any:
    return v1.get_variable(name, initializer=(0.5 * rng.normal(size=shape)).astype(np.float32))


def _pooled(
    tf: Any, table: Any, tokens: Any, ids_of: Any, combiner: str = "mean"
) -> tuple[Any, Any]:
    """The tokens' ids (``ids_of(values)``) as a SparseTensor, and their pooled embeddings."""
    ids = tf.SparseTensor(tokens.indices, ids_of(tokens.values), tokens.dense_shape)
    return ids, tf.nn.safe_embedding_lookup_sparse(table, ids, combiner=combiner)


def _hash(tf: Any, num_buckets: int) -> Any:
    return lambda values: tf.strings.to_hash_bucket_fast(values, num_buckets)


def _build_tokens(v1: Any, tf: Any, rng: np.random.Generator) -> tuple[dict, tuple]:
    tags = v1.placeholder(tf.string, [None], name="tags")
    words = v1.placeholder(tf.string, [None], name="words")
    price = v1.placeholder(tf.float32, [None], name="price")
    table = tf.lookup.StaticVocabularyTable(
        tf.lookup.KeyValueTensorInitializer(TAGS, np.arange(len(TAGS), dtype=np.int64)),
        num_oov_buckets=2,
    )
    tag_emb = _variable(v1, rng, "tag_emb", len(TAGS) + 2, 3)
    tokens = tf.strings.split(tags, "|").to_sparse()
    _, tag_vec = _pooled(tf, tag_emb, tokens, table.lookup)
    word_tokens = v1.strings.split(words, maxsplit=2)  # whitespace, a SparseTensor
    word_emb = _variable(v1, rng, "word_emb", 40, 3)
    word_ids, word_vec = _pooled(tf, word_emb, word_tokens, _hash(tf, 40), "sqrtn")
    n_words = tf.math.unsorted_segment_sum(
        tf.ones_like(word_ids.values, tf.float32), word_ids.indices[:, 0], tf.shape(words)[0]
    )
    x = tf.concat([tag_vec, word_vec, price[:, None], n_words[:, None]], axis=1)
    logit = tf.squeeze(tf.matmul(x, _variable(v1, rng, "w", 8, 1)), 1, name="logit")
    return {"tags": tags, "words": words, "price": price}, (tf.sigmoid(logit), logit)


@cache
def split_tokens() -> ContractModel:
    """Build (once) the split model described in the module docstring."""
    return _save_session("split_tokens", _build_tokens, split_feeds(), ("score", "logit"))


def _build_tokens_v1(v1: Any, tf: Any, rng: np.random.Generator) -> tuple[dict, tuple]:
    cats = v1.placeholder(tf.string, [None], name="cats")
    spaced = v1.placeholder(tf.string, [None], name="spaced")
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(TAGS, np.arange(len(TAGS), dtype=np.int64)), -1
    )
    cat_emb = _variable(v1, rng, "cat_emb", len(TAGS), 3)
    cat_tokens = v1.string_split(cats, delimiter=",;")
    _, cat_vec = _pooled(tf, cat_emb, cat_tokens, table.lookup, "sum")
    spaced_emb = _variable(v1, rng, "spaced_emb", 20, 3)
    spaced_tokens = v1.string_split(spaced, delimiter=" ", skip_empty=False)
    _, spaced_vec = _pooled(tf, spaced_emb, spaced_tokens, _hash(tf, 20))
    x = tf.concat([cat_vec, spaced_vec], axis=1)
    score = tf.sigmoid(tf.squeeze(tf.matmul(x, _variable(v1, rng, "w", 6, 1)), 1), name="score")
    return {"cats": cats, "spaced": spaced}, (score,)


@cache
def split_tokens_v1() -> ContractModel:
    """Build (once) the ``StringSplit`` model described in the module docstring."""
    return _save_session("split_tokens_v1", _build_tokens_v1, split_v1_feeds(), ("score",))


def _build_refused(v1: Any, tf: Any, rng: np.random.Generator) -> tuple[dict, tuple]:
    notes = v1.placeholder(tf.string, [None], name="notes")
    user = v1.placeholder(tf.string, [None], name="user")
    item = v1.placeholder(tf.string, [None], name="item")
    note_tokens = v1.strings.split(notes, ",")
    lengths = tf.math.unsorted_segment_sum(
        tf.strings.length(note_tokens.values), note_tokens.indices[:, 0], tf.shape(notes)[0]
    )
    embeddings = [_variable(v1, rng, f"emb_{k}", 16, 2) for k in range(4)]
    parts = [
        _pooled(tf, embeddings[0], note_tokens, _hash(tf, 16))[1],
        _pooled(tf, embeddings[1], v1.strings.split(user, "_"), _hash(tf, 16))[1],
        tf.gather(embeddings[2], tf.strings.to_hash_bucket_fast(user, 16)),
        tf.gather(embeddings[3], tf.strings.to_hash_bucket_fast(item, 16)),
        tf.cast(lengths, tf.float32)[:, None],
    ]
    score = tf.reduce_sum(tf.concat(parts, axis=1), axis=1, name="score")
    return {"notes": notes, "user": user, "item": item}, (score,)


@cache
def split_refused() -> ContractModel:
    """Build (once) the negative model described in the module docstring."""
    return _save_session("split_refused", _build_refused, refused_feeds(), ("score",))
