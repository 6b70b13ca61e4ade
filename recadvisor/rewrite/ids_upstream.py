"""ids_upstream: string (and numeric-as-string) inputs become int64 ids computed by the client.

What it rewrites: a signature input whose every reader, looking through ops that keep or select
its values (``Identity``, ``Reshape``, ``Squeeze``, ``ExpandDims``, and ``GatherNd``/``GatherV2``
on it as params, ``StridedSlice``, ``Slice``, ``Tile``, ``Transpose``: the feature-column
``to_sparse_input`` path gathers the non-ignored values before hashing), is one of

* ``StringToHashBucketFast(num_buckets=N)`` -> the input becomes the int64 bucket id;
* ``StringToHashBucketStrong(N, key)`` (Keras ``Hashing(salt=...)``) -> the keyed bucket id
  (SipHash-2-4 with the op's key, which the contract then holds);
* ``LookupTableFindV2`` on a string-keyed table with integer values and a constant default ->
  the vocabulary index; a table read with a hash for its out-of-vocabulary keys
  (``SelectV2(ids != default, ids, hash(x, n) + size)``: feature columns' ``num_oov_buckets``,
  ``tf.lookup.StaticVocabularyTable``, Keras ``num_oov_indices > 1``, also with Keras'
  ``mask_token`` select in between) -> the final index, OOV buckets included;
* on an integer input, ``LookupTableFindV2`` on an integer-keyed table (Keras ``IntegerLookup``,
  integer vocabulary columns) -> the vocabulary index;
* a hashed cross (``SparseCross`` / ``SparseCrossHashed`` with ``hashed_output``, i.e. Keras
  ``HashedCrossing`` and feature columns' ``crossed_column``) -> the input becomes its
  ``Fingerprint64`` (the int64 with the same bits), which is exactly what the cross hashes for a
  string column, so the cross stays in the graph and reads int64 columns; a plain hash of the
  same input is then computed in the graph as ``Fingerprint64 mod N`` (unsigned, dividing
  only non-negative numbers so that ONNX agrees) and a vocabulary of it reads a copy of its
  table keyed by the keys' ``Fingerprint64`` (its OOV buckets: ``Fingerprint64 mod n``; its
  ``LookupTableSizeV2`` becomes a constant);
* a string split into tokens (``StringSplitV2``: ``tf.strings.split``, also through
  ``RaggedTensorToSparse`` from ``.to_sparse()``; TF1's ``StringSplit``:
  ``tf.compat.v1.string_split``) whose tokens are read as above (hashed, looked up, with OOV
  buckets...) -> the input becomes the ``[N, K]`` matrix of its token ids, padded
  with a reserved id (encoding ``string_split``: the client splits exactly like the op); the
  graph rebuilds the split's sparse tensor from it (``Where(ids != pad)``, ``GatherNd``,
  ``[N, most tokens in a row]``), bypassing a ``RaggedTensorToSparse`` of the split, and the
  tokens' hash / lookup is removed as for any input (:func:`_token_graph`). Refused when the
  raw string is read another way too (but its ``Shape``), is sliced or reshaped before the
  split, the separator is not a constant, or the tokens are read as strings, crossed, or
  compared with the padding;
* for numeric inputs, ``AsString`` followed only by ``StringToHashBucketFast``, or grappler's
  fused ``_TensorToHashBucketFast`` -> the input becomes the int64 bucket id of the formatted
  number.

The hash / lookup / ``AsString`` nodes are removed (and the table, when nothing else reads it);
``Shape``-like readers stay. The input may also be compared (``Equal`` / ``NotEqual``) with
constants whose values are all one value (also constants computed by a small constant
sub-graph, e.g. DeepCTR's ``as_string(zeros([1]))``): a padding mask ``hist != ""``, Keras'
``mask_value`` / ``mask_token``, a feature column's ignore value. Each such value is sent as a
reserved id the kind never produces (-1, -2... below the smallest real id); the comparisons
compare ids, and a ``SelectV2`` maps a reserved id back to the id TensorFlow computed for the
value before the hash/lookup's readers (exact). With ``Fingerprint64`` ids the comparisons
compare with the value's fingerprint and the encoder refuses a value whose fingerprint collides.
Each changed input gets an :class:`InputEncoding` that ``recadvisor.rewrite.encodings`` applies
bit for bit like TensorFlow.

When it refuses an input (the reason is in the notes): the input is also read in another way
(as a string or a number), is hashed with two different bucket counts or looked up in two
tables (it cannot be one int), a cross reads it next to a keyed hash, a
table has a non-constant default, a cross uses a strong hash or a string output, or its ids are
themselves a signature output. Other inputs are still rewritten; the pass refuses as a whole
only when no input qualifies. :func:`plan_input` is the one matcher: ``analyze`` calls it too,
so an ``exact`` suggestion is made only for inputs this pass accepts.

Exactness: exact (the client computes the same ids TensorFlow computed). Changes the contract.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recadvisor.model.edits import (
    NodeMaker,
    add_cast,
    add_const,
    add_node,
    protected_nodes,
    remove_if_unread,
    remove_nodes,
    reserve_name,
    resolve_const,
    rewire,
    surviving_tables,
    tf_dtype_enum,
    unique_name,
)
from recadvisor.model.graph import (
    STRING_OPS,
    ModelGraph,
    canonical_tensor,
    is_control_input,
    node_name,
)
from recadvisor.model.queries import (
    CROSS_OPS,
    IDENTITY_OPS,
    VALUE_SELECTING_OPS,
    sparse_reshape_to_own_2d,
    walk_passthrough,
)
from recadvisor.model.spec import SignatureSpec, TensorInfo
from recadvisor.rewrite.base import (
    EXACT,
    InputEncoding,
    PassRefused,
    PassResult,
    RewriteContext,
    RewritePass,
)
from recadvisor.rewrite.encodings import as_int64, fingerprint64, siphash24
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)

HASH_OPS = frozenset({"StringToHashBucketFast"})
STRONG_HASH_OPS = frozenset({"StringToHashBucketStrong"})
COMPARE_OPS = frozenset({"Equal", "NotEqual"})
FIND_OPS = frozenset({"LookupTableFindV2", "LookupTableFind"})
SELECT_OPS = frozenset({"SelectV2", "Select"})
AS_STRING_ATTRS = ("precision", "scientific", "shortest", "width", "fill")
# the largest constant sub-graph evaluated to read a compared value
MAX_CONST_SUBGRAPH = 32
SPLIT_OPS = frozenset({"StringSplitV2", "StringSplit"})
# the padding of the intermediate token graph (_token_graph); the client sends its reserved id
SPLIT_PAD = b"\x00recadvisor:padding\x00"
# ops of RaggedTensor.from_value_rowids between a split and RaggedTensorToSparse
RAGGED_PARTITION_OPS = frozenset(
    {
        "Identity",
        "StridedSlice",
        "Cast",
        "Size",
        "Shape",
        "Max",
        "Reshape",
        "Greater",
        "AddV2",
        "Mul",
        "Maximum",
        "Minimum",
        "DenseBincount",
        "Bincount",
        "Cumsum",
        "ConcatV2",
    }
)


class InputRefused(Exception):
    """One input cannot move upstream (the reason names it)."""


@dataclass
class _Terminal:
    """One reader that ends the input's pass-through chain, and what replaces it.

    ``value_of`` gives the id the original graph computes for one raw value (reserved ids are
    mapped back to it); ``min_id`` is the smallest id the kind produces. ``retype`` lists
    ``(node, attr, index)`` type attributes set to int64 (a cross column), ``mod_of`` the hash
    nodes computed in the graph from ``Fingerprint64`` ids (node -> num_buckets).
    """

    encoding: tuple[Any, ...]  # (kind, frozen params) for comparison
    kind: str
    params: dict[str, Any]
    target_dtype: str
    rewires: tuple[tuple[str, str], ...]  # (tensor whose readers move, tensor they read instead)
    remove: tuple[str, ...]  # nodes deleted
    description: str
    value_of: Callable[[Any], int] | None = None
    min_id: int = 0
    claims: tuple[str, ...] = ()  # other terminal nodes this one accounts for
    retype: tuple[tuple[str, str, int], ...] = ()
    mod_of: dict[str, int] = field(default_factory=dict)
    fingerprint_tables: dict[str, str] = field(default_factory=dict)  # find node -> table
    compared: tuple[bytes, ...] = ()  # values whose fingerprint must not collide
    find: str = ""  # a vocabulary's find op
    oov_hash: tuple[str, int] | None = None  # a vocabulary's OOV hash node and bucket count


@dataclass
class _Comparison:
    """``Equal``/``NotEqual`` of the input with a constant (e.g. a padding mask)."""

    node: str
    const_pos: int
    value: Any  # bytes for strings, int for integers
    shape: tuple[int, ...] = ()


@dataclass
class _InputPlan:
    key: str
    placeholder: str
    source_dtype: str
    target_dtype: str
    kind: str
    params: dict[str, Any]
    chain: set[str] = field(default_factory=set)
    shape_readers: set[str] = field(default_factory=set)
    terminals: list[_Terminal] = field(default_factory=list)
    comparisons: list[_Comparison] = field(default_factory=list)
    reserved: dict[Any, int] = field(default_factory=dict)  # constant -> id sent for it
    restore: dict[int, int] = field(default_factory=dict)  # reserved id -> original id
    split: _Split | None = None  # the input is split into tokens; the plan is for the tokens

    def describe(self) -> str:
        """``string -> int64 (StringToHashBucketFast(100); '' is sent as -1)``."""
        reserved = "".join(
            f"; {_show(v)} is sent as {i}" for v, i in self.reserved.items() if i in self.restore
        )
        if self.split is not None:
            sep = self.split.sep
            if self.split.op == "StringSplit":
                on = f"any byte of {_show(sep)}" if sep else "every byte"
            else:
                on = _show(sep) if sep else "whitespace"
            return (
                f"{self.source_dtype} -> {self.target_dtype} [N, K] (split on {on}, each token: "
                f"{self.terminals[0].description}{reserved}; padded with "
                f"{self.reserved[SPLIT_PAD]})"
            )
        return (
            f"{self.source_dtype} -> {self.target_dtype} "
            f"({self.terminals[0].description}{reserved})"
        )

    def encoding(self) -> InputEncoding:
        """The contract entry: the ids' encoding, inside a ``string_split`` one for a split."""
        if self.split is None:
            return InputEncoding(
                self.key, self.kind, self.source_dtype, self.target_dtype, dict(self.params)
            )
        params: dict[str, Any] = {
            "op": self.split.op,
            "sep": self.split.sep.decode("utf-8", "surrogateescape"),
        }
        if self.split.op == "StringSplit":
            params["skip_empty"] = self.split.skip_empty
        else:
            params["maxsplit"] = self.split.maxsplit
        params["pad_id"] = self.reserved[SPLIT_PAD]
        params["tokens"] = {"kind": self.kind, "params": dict(self.params)}
        return InputEncoding(self.key, "string_split", self.source_dtype, self.target_dtype, params)


def _show(value: Any) -> str:
    return repr(value.decode("utf-8", "replace")) if isinstance(value, bytes) else repr(value)


def _freeze_params(params: Mapping[str, Any]) -> Any:
    out = []
    for k, v in sorted(params.items()):
        out.append((k, tuple(v) if isinstance(v, list) else v))
    return tuple(out)


def _as_string_attrs(node: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for name in AS_STRING_ATTRS:
        if name not in node.attr:
            continue
        a = node.attr[name]
        if name in ("scientific", "shortest"):
            attrs[name] = bool(a.b)
        elif name == "fill":
            attrs[name] = a.s.decode()
        else:
            attrs[name] = int(a.i)
    return attrs


def _text(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _evaluate_constant(graph: ModelGraph, tensor: str) -> np.ndarray | None:
    """The value of a tensor computed from constants only (a few nodes), else None."""
    value = resolve_const(graph, tensor)
    if value is not None:
        return value
    ancestors = graph.ancestors([node_name(tensor)], control=False)
    if len(ancestors) > MAX_CONST_SUBGRAPH:
        return None
    if any(
        graph.nodes[n].op in ("Placeholder", "PlaceholderWithDefault") or n in graph.tables
        for n in ancestors
    ):
        return None
    tf = import_tf()
    gd = tf.compat.v1.GraphDef()
    for name in ancestors:
        node = gd.node.add()
        node.CopyFrom(graph.nodes[name])
        kept = [i for i in node.input if not i.startswith("^")]
        del node.input[:]
        node.input.extend(kept)
    try:
        with tf.Graph().as_default() as g:
            tf.graph_util.import_graph_def(gd, name="")
            with tf.compat.v1.Session(graph=g) as sess:
                return np.asarray(sess.run(canonical_tensor(tensor)))
    except Exception as e:  # noqa: BLE001 - not a constant sub-graph we can run: not a mask
        log.debug("could not evaluate %s as a constant: %s", tensor, e)
        return None


def _comparison(graph: ModelGraph, reader: str, pos: int, dtype: str) -> _Comparison | None:
    """The reader as a comparison with a constant of one repeated value, else None."""
    node = graph.nodes[reader]
    if node.op not in COMPARE_OPS or pos > 1 or len(node.input) < 2:
        return None
    other = 1 - pos
    value = _evaluate_constant(graph, node.input[other])
    if value is None or value.size == 0:
        return None
    arr = np.asarray(value)
    if dtype == "string":
        if arr.dtype != object:
            return None
        distinct = {_text(v) for v in arr.reshape(-1)}
    elif arr.dtype.kind in "iu" and dtype.startswith(("int", "uint")):
        distinct = {int(v) for v in arr.reshape(-1)}
    else:
        return None
    if len(distinct) != 1:
        return None
    return _Comparison(reader, other, distinct.pop(), tuple(arr.shape))


def _table_params(
    graph: ModelGraph, key: str, find: Any, allowed_keys: tuple[str, ...]
) -> tuple[Any, dict[str, Any], int, Any]:
    """A find op's table as vocabulary params: (table, params, default, python dict)."""
    table_name = graph.table_of_node(find.name)
    table = graph.tables.get(table_name or "")
    if table is None:
        raise InputRefused(f"input '{key}' is looked up in a table whose contents are unknown")
    if not table.key_dtype.startswith(allowed_keys) or not table.value_dtype.startswith(
        ("int", "uint")
    ):
        raise InputRefused(
            f"input '{key}' is looked up in a {table.key_dtype}->{table.value_dtype} table; "
            "only string->integer and integer->integer vocabularies move upstream"
        )
    default = resolve_const(graph, find.input[2]) if len(find.input) > 2 else None
    if default is None or np.asarray(default).ndim != 0:
        raise InputRefused(
            f"input '{key}' is looked up in table '{table_name}' with a non-constant default"
        )
    is_string = table.key_dtype == "string"
    raw_keys = [_text(k) if is_string else int(k) for k in table.keys.reshape(-1)]
    values = [int(v) for v in table.values.reshape(-1)]
    params = {
        "key_dtype": "string" if is_string else "int64",
        "keys": [
            k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else k for k in raw_keys
        ],
        "values": values,
        "default_value": int(np.asarray(default)),
    }
    return table, params, int(np.asarray(default)), dict(zip(raw_keys, values, strict=True))


def _const_int(graph: ModelGraph, tensor: str, table: Any) -> int | None:
    """An int constant, or the size of ``table`` read by ``LookupTableSizeV2``."""
    value = resolve_const(graph, tensor)
    if value is not None and np.asarray(value).size == 1:
        return int(np.asarray(value).reshape(-1)[0])
    node = graph.nodes.get(node_name(tensor))
    if node is not None and node.op in ("LookupTableSizeV2", "LookupTableSize"):
        if graph.tables.get(graph.table_of_node(node.name) or "") is table:
            return table.size
    return None


def _mask_select(graph: ModelGraph, find: Any) -> tuple[Any, Any, int] | None:
    """Keras' mask around a lookup: ``SelectV2(x == mask_token, mask_value, find)``.

    Returns:
        (the select node, the mask token, the mask value), or None.
    """
    readers = graph.consumers.get(find.name, [])
    if len(readers) != 1 or graph.nodes[readers[0]].op not in SELECT_OPS:
        return None
    select = graph.nodes[readers[0]]
    cond = graph.nodes.get(node_name(select.input[0]))
    if node_name(select.input[2]) != find.name or cond is None or cond.op != "Equal":
        return None
    if graph.consumers.get(cond.name) != [select.name]:
        return None
    sides = [node_name(i) for i in cond.input[:2]]
    x = node_name(find.input[1])
    if x not in sides:
        return None
    token = resolve_const(graph, cond.input[1 - sides.index(x)])
    value = resolve_const(graph, select.input[1])
    if token is None or value is None or token.size != 1 or value.size != 1:
        return None
    raw = np.asarray(token).reshape(-1)[0]
    mask = _text(raw) if isinstance(raw, (bytes, str)) else int(raw)
    return select, mask, int(np.asarray(value).reshape(-1)[0])


def _match_oov_select(
    graph: ModelGraph, find: Any, default: int, table: Any
) -> tuple[str, tuple[str, ...], str, int, int, tuple[Any, int] | None, str] | None:
    """``SelectV2(ids != default, ids, hash(x, n) + offset)`` around a find op (``ids`` may be
    Keras' mask select around the find op; for integer keys Keras' ``hash`` is ``x mod n``).

    Returns:
        (the select node, the nodes it replaces, the hash node, n, offset, (mask token, mask
        value) or None, ``fingerprint64`` or ``floormod``), or None when the find op is read
        another way.
    """
    masked = _mask_select(graph, find)
    ids = masked[0] if masked is not None else find
    mask = (masked[1], masked[2]) if masked is not None else None
    readers = set(graph.consumers.get(ids.name, []))
    selects = [r for r in readers if graph.nodes[r].op in SELECT_OPS]
    if len(selects) != 1:
        return None
    select = graph.nodes[selects[0]]
    cond = graph.nodes.get(node_name(select.input[0]))
    if cond is None or cond.op not in COMPARE_OPS or readers != {select.name, cond.name}:
        return None
    if set(graph.consumers.get(cond.name, [])) != {select.name}:
        return None
    sides = [node_name(i) for i in cond.input[:2]]
    if ids.name not in sides:
        return None
    if resolve_const(graph, cond.input[1 - sides.index(ids.name)]) is None or int(
        np.asarray(resolve_const(graph, cond.input[1 - sides.index(ids.name)])).reshape(-1)[0]
    ) != int(default):
        return None
    kept, other = (1, 2) if cond.op == "NotEqual" else (2, 1)
    if node_name(select.input[kept]) != ids.name:
        return None
    add = graph.nodes.get(node_name(select.input[other]))
    if (
        add is None
        or add.op not in ("AddV2", "Add")
        or graph.consumers.get(add.name) != [select.name]
    ):
        return None
    for h_pos in (0, 1):
        hash_node = graph.nodes.get(node_name(add.input[h_pos]))
        if hash_node is None:
            continue
        if hash_node.op in HASH_OPS:
            n, how = int(hash_node.attr["num_buckets"].i), "fingerprint64"
        elif hash_node.op == "FloorMod" and resolve_const(graph, hash_node.input[1]) is not None:
            n, how = (
                int(np.asarray(resolve_const(graph, hash_node.input[1])).reshape(-1)[0]),
                "floormod",
            )
            if n < 1:
                return None
        else:
            continue
        if node_name(hash_node.input[0]) != node_name(find.input[1]):
            return None
        if graph.consumers.get(hash_node.name) != [add.name]:
            return None
        offset = _const_int(graph, add.input[1 - h_pos], table)
        if offset is None:
            return None
        replaced = (select.name, cond.name, add.name, hash_node.name, find.name)
        if masked is not None:
            replaced += (ids.name, node_name(ids.input[0]))
        size = graph.nodes.get(node_name(add.input[1 - h_pos]))
        if size is not None and size.op.startswith("LookupTableSize"):
            if graph.consumers.get(size.name) == [add.name]:
                replaced += (size.name,)
        return select.name, replaced, hash_node.name, n, offset, mask, how
    return None


def _plan_lookup(graph: ModelGraph, key: str, reader: str, is_string: bool) -> _Terminal:
    node = graph.nodes[reader]
    allowed = ("string",) if is_string else ("int", "uint")
    table, params, default, mapping = _table_params(graph, key, node, allowed)
    values = [*params["values"], default]
    oov = _match_oov_select(graph, node, default, table)
    if oov is not None:
        select, replaced, hash_node, n, offset, mask, how = oov
        params = {**params, "oov_buckets": n, "oov_offset": offset}
        if how == "floormod":
            params["oov_hash"] = how
        if mask is not None:
            token = mask[0].decode("utf-8", "surrogateescape") if is_string else str(mask[0])
            params["mask"] = {token: mask[1]}

        def value_of(v: Any) -> int:
            if mask is not None and v == mask[0]:
                return mask[1]
            found = mapping.get(v, default)
            if found != default:
                return found
            return offset + (int(v) % n if how == "floormod" else fingerprint64(_text(v)) % n)

        return _Terminal(
            ("vocabulary", table.content_digest(), default, n, offset),
            "vocabulary",
            params,
            table.value_dtype,
            ((select + ":0", node.input[1]),),
            replaced,
            f"vocabulary lookup ({table.size} keys) + {n} OOV hash buckets",
            value_of,
            min([*params["values"], offset]),
            claims=(hash_node,),
            find=reader,
            oov_hash=(hash_node, n),
        )
    return _Terminal(
        ("vocabulary", table.content_digest(), default),
        "vocabulary",
        params,
        table.value_dtype,
        ((reader + ":0", node.input[1]),),
        (reader,),
        f"vocabulary lookup ({table.size} keys)",
        lambda v: mapping.get(v, default),
        min(values),
        find=reader,
    )


def _plan_cross(graph: ModelGraph, key: str, reader: str, pos: int) -> _Terminal:
    node = graph.nodes[reader]
    if node.op == "SparseCrossV2" or (
        node.op == "SparseCross" and not node.attr["hashed_output"].b
    ):
        raise InputRefused(f"input '{key}' is crossed into strings by {node.op} '{reader}'")
    if node.op == "SparseCrossHashed":
        strong = resolve_const(graph, node.input[-2])
        if strong is None or bool(np.asarray(strong)):
            raise InputRefused(f"input '{key}' is crossed with a strong (keyed) hash")
    n_sparse = len(node.attr["sparse_types"].list.type)
    if n_sparse <= pos < 2 * n_sparse:
        retype = ((reader, "sparse_types", pos - n_sparse),)
    elif pos >= 3 * n_sparse:
        retype = ((reader, "dense_types", pos - 3 * n_sparse),)
    else:
        raise InputRefused(f"input '{key}' is read as cross indices/shapes by '{reader}'")
    return _Terminal(
        ("fingerprint64",),
        "fingerprint64",
        {},
        "int64",
        (),
        (),
        f"Fingerprint64 for {node.op}",
        None,
        0,
        retype=retype,
    )


def _plan_string_terminal(graph: ModelGraph, key: str, reader: str, pos: int) -> _Terminal:
    node = graph.nodes[reader]
    if node.op in HASH_OPS and pos == 0:
        nb = int(node.attr["num_buckets"].i)
        params = {"num_buckets": nb}
        return _Terminal(
            ("hash_bucket", _freeze_params(params)),
            "hash_bucket",
            params,
            "int64",
            ((reader + ":0", node.input[0]),),
            (reader,),
            f"StringToHashBucketFast({nb})",
            lambda v: fingerprint64(v) % nb,
            0,
        )
    if node.op in STRONG_HASH_OPS and pos == 0:
        nb = int(node.attr["num_buckets"].i)
        words = [int(k) & ((1 << 64) - 1) for k in node.attr["key"].list.i]
        params = {"num_buckets": nb, "key": words}
        return _Terminal(
            ("strong_hash_bucket", _freeze_params(params)),
            "strong_hash_bucket",
            params,
            "int64",
            ((reader + ":0", node.input[0]),),
            (reader,),
            f"StringToHashBucketStrong({nb}, keyed)",
            lambda v: siphash24(words, v) % nb,
            0,
        )
    if node.op in FIND_OPS and pos == 1:
        return _plan_lookup(graph, key, reader, is_string=True)
    if node.op in CROSS_OPS:
        return _plan_cross(graph, key, reader, pos)
    raise InputRefused(f"input '{key}' is also read as a string by {node.op} '{reader}'")


def _plan_numeric_terminal(
    graph: ModelGraph, key: str, reader: str, pos: int, dtype: str
) -> _Terminal | None:
    node = graph.nodes[reader]
    if node.op in FIND_OPS and pos == 1 and dtype.startswith(("int", "uint")):
        return _plan_lookup(graph, key, reader, is_string=False)
    if node.op == "_TensorToHashBucketFast" and pos == 0:
        nb = int(node.attr["num_buckets"].i)
        params = {"num_buckets": nb, "value_dtype": dtype}
        return _Terminal(
            ("as_string_hash_bucket", _freeze_params(params)),
            "as_string_hash_bucket",
            params,
            "int64",
            ((reader + ":0", node.input[0]),),
            (reader,),
            f"_TensorToHashBucketFast({nb})",
        )
    if node.op == "AsString" and pos == 0:
        hashes = graph.consumers.get(reader, [])
        if not hashes or any(graph.nodes[h].op not in HASH_OPS for h in hashes):
            others = sorted({graph.nodes[h].op for h in hashes} - HASH_OPS)
            raise InputRefused(
                f"input '{key}' is formatted as a string and then read by {others or 'nothing'}"
            )
        if any(n == reader for n in graph.output_nodes.values()):
            raise InputRefused(f"input '{key}' formatted as a string is a signature output")
        buckets = {int(graph.nodes[h].attr["num_buckets"].i) for h in hashes}
        if len(buckets) > 1:
            raise InputRefused(
                f"input '{key}' is hashed into {sorted(buckets)} buckets; it cannot become one "
                "int64 input"
            )
        nb = buckets.pop()
        params = {"num_buckets": nb, "value_dtype": dtype, **_as_string_attrs(node)}
        return _Terminal(
            ("as_string_hash_bucket", _freeze_params(params)),
            "as_string_hash_bucket",
            params,
            "int64",
            tuple((h + ":0", node.input[0]) for h in hashes),
            (reader, *hashes),
            f"AsString + StringToHashBucketFast({nb})",
        )
    return None


def _merge_fingerprint(key: str, planned: list[_Terminal]) -> list[_Terminal]:
    """Under a cross, plain hashes of the input become ``Fingerprint64 mod N`` in the graph."""
    merged = []
    for term in planned:
        if term.kind == "fingerprint64":
            merged.append(term)
        elif term.kind == "hash_bucket":
            nb = int(term.params["num_buckets"])
            hash_node = term.remove[0]
            merged.append(
                _Terminal(
                    ("fingerprint64",),
                    "fingerprint64",
                    {},
                    "int64",
                    (),
                    (),
                    f"Fingerprint64 mod {nb} in the graph",
                    mod_of={hash_node: nb},
                )
            )
        elif term.kind == "vocabulary":
            # the table is keyed by the keys' fingerprints; an OOV bucket is Fingerprint64 mod n
            keys = tuple(k.encode("utf-8", "surrogateescape") for k in term.params["keys"])
            merged.append(
                _Terminal(
                    ("fingerprint64",),
                    "fingerprint64",
                    {},
                    "int64",
                    (),
                    (),
                    f"{term.description} keyed by Fingerprint64",
                    fingerprint_tables={term.find: ""},
                    compared=keys,
                    mod_of=dict([term.oov_hash]) if term.oov_hash else {},
                )
            )
        else:
            raise InputRefused(
                f"input '{key}' is crossed and also read as {term.description}; a cross needs "
                "its Fingerprint64, from which that cannot be computed"
            )
    return merged


# --------------------------------------------------------------------------- split strings
@dataclass(frozen=True)
class _Split:
    """A ``StringSplitV2`` (or ``StringSplit``) of an input, moved to the client.

    ``graph`` is the original graph with the input turned into the ``[N, K]`` matrix of its
    tokens (string, padded with :data:`SPLIT_PAD`) and the split's sparse outputs rebuilt from
    it (:func:`_token_graph`); the input's plan is made on that graph.
    """

    node: str
    op: str  # StringSplitV2, or TF1's StringSplit (sep: a set of bytes; skip_empty)
    sep: bytes
    maxsplit: int
    skip_empty: bool
    graph: ModelGraph


def _split_of(
    graph: ModelGraph,
    key: str,
    chain: set[str],
    shape_readers: set[str],
    terminals: list[tuple[str, int]],
) -> str | None:
    """The ``StringSplitV2`` / ``StringSplit`` node that splits input ``key``, or None.

    Raises:
        InputRefused: the input is split and also read another way, through ops other than
            ``Identity``, or with a separator that is not a constant.
    """
    splits = [r for r, pos in terminals if graph.nodes[r].op in SPLIT_OPS and pos == 0]
    if not splits:
        return None
    op = graph.nodes[splits[0]].op
    others = sorted({f"{graph.nodes[r].op} '{r}'" for r, _ in terminals if r not in splits})
    if len(set(splits)) > 1 or others:
        raise InputRefused(
            f"input '{key}' is split into tokens by {op} and also read by "
            f"{', '.join(others[:3]) or 'another split'}; only a string read by one "
            "split alone moves upstream"
        )
    if any(graph.nodes[n].op not in IDENTITY_OPS for n in chain) or any(
        graph.nodes[r].op not in ("Shape", "Size", "Rank") for r in shape_readers
    ):
        raise InputRefused(
            f"input '{key}' is reshaped or sliced before {op} '{splits[0]}' (or its "
            "shape is read by ShapeN); only a rank-1 input split as it is moves upstream"
        )
    sep = resolve_const(graph, graph.nodes[splits[0]].input[1])
    if sep is None or np.asarray(sep).size != 1:
        raise InputRefused(
            f"input '{key}' is split by {op} '{splits[0]}' with a separator that is not a constant"
        )
    return splits[0]


def _from_split(graph: ModelGraph, tensor: str, split: str) -> bool:
    """Whether ``tensor`` is computed from ``split``'s indices and shape (and constants) only,
    by the ops of ``RaggedTensor.from_value_rowids`` (the row partition of
    ``tf.strings.split``'s ragged result)."""
    seen: set[str] = set()
    frontier = [node_name(tensor)]
    reached = False
    while frontier:
        name = frontier.pop()
        if name in seen:
            continue
        seen.add(name)
        node = graph.nodes[name]
        if node.op == "Const":
            continue
        if node.op not in RAGGED_PARTITION_OPS:
            return False
        for inp in node.input:
            if is_control_input(inp):
                continue
            if node_name(inp) == split:
                if canonical_tensor(inp) not in (f"{split}:0", f"{split}:2"):
                    return False
                reached = True
            else:
                frontier.append(node_name(inp))
    return reached


def _token_graph(graph: ModelGraph, key: str, split_name: str) -> ModelGraph:
    """Input ``key`` becomes its ``[N, K]`` string token matrix and the split is rebuilt from it.

    ``indices = Where(tokens != pad)`` (row-major, like the op), ``values =
    GatherNd(tokens, indices)``, ``dense_shape = [N, max tokens in a row]`` (0 for no token).
    A ``RaggedTensorToSparse`` of ``tf.strings.split``'s ragged result (values: the split's,
    row partition: from its indices and shape) yields those same three tensors, so it and its
    row partition are bypassed. The pad is compared with the tokens and so becomes a reserved
    id when the tokens' plan is made.
    """
    gd = graph.copy_graph_def()
    names = {n.name for n in gd.node}
    by_name = {n.name: n for n in gd.node}
    split = by_name[split_name]
    tokens = split.input[0]
    shape = by_name[graph.input_nodes[key]].attr["shape"].shape
    shape.unknown_rank = False
    del shape.dim[:]
    shape.dim.add(size=-1)
    shape.dim.add(size=-1)
    base = f"{split_name}/from_tokens"

    def name(suffix: str) -> str:
        return reserve_name(names, f"{base}/{suffix}")

    def const(suffix: str, value: np.ndarray) -> str:
        node = name(suffix)
        add_const(gd, node, value)
        return node

    pad = const("pad", np.array(SPLIT_PAD, dtype=object))
    mask = name("is_token")
    add_node(gd, mask, "NotEqual", [tokens, pad], T="dtype:string", incompatible_shape_error=True)
    indices = name("indices")
    add_node(gd, indices, "Where", [mask], T="dtype:bool")
    values = name("values")
    add_node(
        gd, values, "GatherNd", [tokens, indices], Tparams="dtype:string", Tindices="dtype:int64"
    )
    counts, as_int = name("tokens_per_row"), name("is_token_int")
    add_cast(gd, as_int, mask, "bool", "int64")
    add_node(
        gd,
        counts,
        "Sum",
        [as_int, const("row_axis", np.array(1, np.int32))],
        T="dtype:int64",
        Tidx="dtype:int32",
        keep_dims=False,
    )
    with_zero = name("tokens_per_row_and_zero")
    axis0 = const("axis", np.array(0, np.int32))
    add_node(
        gd,
        with_zero,
        "ConcatV2",
        [counts, const("zero", np.zeros([1], np.int64)), axis0],
        T="dtype:int64",
        Tidx="dtype:int32",
        N=2,
    )
    width = name("width")
    add_node(
        gd, width, "Max", [with_zero, axis0], T="dtype:int64", Tidx="dtype:int32", keep_dims=False
    )
    tokens_shape = name("tokens_shape")
    # N as Shape(tokens)[0] (not Size(counts)): graph queries see the rows are the input's
    add_node(gd, tokens_shape, "Shape", [tokens], T="dtype:string", out_type="dtype:int64")
    rows = NodeMaker(gd, names, base, prefix="").strided("rows", tokens_shape, 0, 1, shrink=True)
    dense_shape = name("dense_shape")
    add_node(gd, dense_shape, "Pack", [rows, width], T="dtype:int64", N=2, axis=0)
    outputs = (indices, values, dense_shape)
    placeholder = graph.input_nodes[key]
    chain, shape_readers, _ = walk_passthrough(graph, placeholder)
    for reader in shape_readers:  # the shape of the [N] input is that of the [N] counts
        node = by_name[reader]
        for pos, inp in enumerate(node.input):
            if node_name(inp) in chain | {placeholder}:
                node.input[pos] = counts
        node.attr["T"].type = tf_dtype_enum("int64")
    doomed = {split_name}
    for reader in graph.consumers.get(split_name, []):
        node = graph.nodes[reader]
        if (
            node.op == "RaggedTensorToSparse"
            and node.attr["RAGGED_RANK"].i == 1
            and canonical_tensor(node.input[1]) == f"{split_name}:1"
            and _from_split(graph, node.input[0], split_name)
        ):
            for k, tensor in enumerate(outputs):
                rewire(gd, f"{reader}:{k}", tensor)
            doomed.add(reader)
    for k, tensor in enumerate(outputs):
        rewire(gd, f"{split_name}:{k}", tensor)
    remove_nodes(gd, doomed, protected_nodes(graph))
    inputs = dict(graph.signature.inputs)
    inputs[key] = TensorInfo(key, "string", (None, None))
    signature = SignatureSpec(graph.signature.key, inputs, dict(graph.signature.outputs))
    return _bypass_same_shape_reshapes(
        graph.replace(graph_def=gd, signature=signature), indices, dense_shape
    )


def _bypass_same_shape_reshapes(graph: ModelGraph, indices: str, shape: str) -> ModelGraph:
    """Bypass each ``SparseReshape`` of the rebuilt split to ``[prod(shape[:1]), shape[1]]``,
    its own shape (``safe_embedding_lookup_sparse`` flattens the leading dimensions so): it
    returns its input unchanged. Exact, fewer ops, and no ``[N, 0]`` reshape (a batch where no
    row has a token) for tf2onnx, whose ``SparseReshape`` divides by the dimensions."""
    same = []
    for reader in graph.consumers.get(node_name(indices), []):
        node = graph.nodes[reader]
        if node.op != "SparseReshape" or [canonical_tensor(i) for i in node.input[:2]] != [
            canonical_tensor(indices),
            canonical_tensor(shape),
        ]:
            continue
        if sparse_reshape_to_own_2d(graph, node):
            same.append(reader)
    if not same:
        return graph
    gd = graph.copy_graph_def()
    for reader in same:
        rewire(gd, f"{reader}:0", indices)
        rewire(gd, f"{reader}:1", shape)
    remove_nodes(gd, same, protected_nodes(graph))
    return graph.replace(graph_def=gd)


def _plan_split(graph: ModelGraph, key: str, split: str) -> _InputPlan:
    """Plan a split input: the plan of its token matrix (see :func:`_token_graph`), whose ids
    the client sends padded with a reserved id.

    Raises:
        InputRefused: the tokens are not hashed or looked up, are read another way, are crossed
            (a ``Fingerprint64`` id has no spare value for the pad), or are compared with the
            pad.
    """
    node = graph.nodes[split]
    sep = _text(np.asarray(resolve_const(graph, node.input[1])).reshape(-1)[0])
    maxsplit = int(node.attr["maxsplit"].i) if "maxsplit" in node.attr else -1
    skip_empty = bool(node.attr["skip_empty"].b) if "skip_empty" in node.attr else True
    token_graph = _token_graph(graph, key, split)
    info = _Split(split, node.op, sep, maxsplit, skip_empty, token_graph)
    try:
        plan = plan_input(info.graph, key)
    except InputRefused as e:
        raise InputRefused(f"the tokens of {node.op} '{split}': {e}") from e
    if plan is None:
        raise InputRefused(
            f"input '{key}' is split into tokens by {node.op} '{split}' but no token is "
            "hashed or looked up"
        )
    return _as_split_plan(plan, info)


def _as_split_plan(plan: _InputPlan, split: _Split) -> _InputPlan:
    """A token plan as the split input's plan: the pad is sent as its reserved id and never
    reaches the hash / lookup readers (the token values are gathered where ids != pad), so it
    needs no restoring select."""
    import dataclasses

    if plan.kind == "fingerprint64":
        raise InputRefused(
            f"input '{plan.key}' is split by {split.op} '{split.node}' and its tokens are "
            "crossed; a Fingerprint64 id leaves no value free for the padding"
        )
    if sum(c.value == SPLIT_PAD for c in plan.comparisons) != 1:
        raise InputRefused(f"input '{plan.key}': its tokens are compared with the padding value")
    pad_id = plan.reserved[SPLIT_PAD]
    params = dict(plan.params)
    reserved = {k: v for k, v in (params.pop("reserved", None) or {}).items() if v != pad_id}
    if reserved:
        params["reserved"] = reserved
    restore = {rid: v for rid, v in plan.restore.items() if rid != pad_id}
    return dataclasses.replace(plan, params=params, restore=restore, split=split)


def _plan_inputs(
    graph: ModelGraph, keys: list[str]
) -> tuple[ModelGraph, list[_InputPlan], list[str]]:
    """Plan each input; a split input turns the graph into its token graph first.

    Returns:
        (the graph the plans are made on: ``graph`` with every accepted split input as its
        token matrix; the plans; the refusal reasons).
    """
    work = graph
    plans: list[_InputPlan] = []
    refused: list[str] = []
    for key in keys:
        try:
            plan = plan_input(work, key)
        except InputRefused as e:
            refused.append(str(e))
            continue
        if plan is not None:
            if plan.split is not None:
                work = plan.split.graph
            plans.append(plan)
    if work is graph:
        return work, plans, refused
    replanned = []
    for plan in plans:  # node names hold, but each plan must see the final graph
        try:
            again = plan_input(work, plan.key)
        except InputRefused as e:
            raise PassRefused(f"ids_upstream: planning '{plan.key}' again failed: {e}") from e
        if again is None:
            raise PassRefused(f"ids_upstream: input '{plan.key}' vanished from the token graph")
        replanned.append(again if plan.split is None else _as_split_plan(again, plan.split))
    return work, replanned, refused


def _reserve(
    plan_kind: str, first: _Terminal, comparisons: list[_Comparison]
) -> tuple[dict[Any, int], dict[int, int]]:
    """Reserved ids for the compared values and the original id each stands for."""
    reserved: dict[Any, int] = {}
    restore: dict[int, int] = {}
    if plan_kind == "fingerprint64":
        for cmp in comparisons:
            reserved.setdefault(cmp.value, as_int64(fingerprint64(_text(cmp.value))))
        return reserved, restore
    next_id = min(first.min_id, 0) - 1
    for cmp in comparisons:
        if cmp.value in reserved:
            continue
        reserved[cmp.value] = next_id
        if first.value_of is not None:
            restore[next_id] = int(first.value_of(cmp.value))
        next_id -= 1
    return reserved, restore


def plan_input(graph: ModelGraph, key: str) -> _InputPlan | None:
    """How input ``key`` would move upstream; None when it is not hashed or looked up at all.

    This is the pass's one matcher; ``analyze`` calls it before it suggests the pass.

    Args:
        graph: the frozen graph.
        key: a signature input key.

    Returns:
        The plan, or None when nothing hashes, looks up or crosses the input.

    Raises:
        InputRefused: the input is hashed/looked up but cannot become one integer input.
    """
    info = graph.signature.inputs[key]
    placeholder = graph.input_nodes[key]
    chain, shape_readers, terminals = walk_passthrough(graph, placeholder, VALUE_SELECTING_OPS)
    split = _split_of(graph, key, chain, shape_readers, terminals)
    if split is not None:
        return _plan_split(graph, key, split)
    is_string = info.dtype == "string"
    is_numeric = info.dtype.startswith(("int", "uint", "float", "bfloat")) or info.dtype == "bool"
    if not terminals or not (is_string or is_numeric):
        return None
    planned: list[_Terminal] = []
    comparisons: list[_Comparison] = []
    numeric_uses: list[str] = []
    for reader, pos in terminals:
        if reader in graph.output_nodes.values():
            raise InputRefused(f"input '{key}' (or its ids) is a signature output")
        cmp = _comparison(graph, reader, pos, info.dtype)
        if cmp is not None:
            comparisons.append(cmp)
        elif is_string:
            planned.append(_plan_string_terminal(graph, key, reader, pos))
        else:
            term = _plan_numeric_terminal(graph, key, reader, pos, info.dtype)
            if term is None:
                numeric_uses.append(reader)
            else:
                planned.append(term)
    claimed = {c for t in planned for c in t.claims}
    numeric_uses = [f"{graph.nodes[r].op} '{r}'" for r in numeric_uses if r not in claimed]
    planned = [t for t in planned if not set(t.remove[:1]) & claimed]
    if not planned:
        return None
    if numeric_uses:
        raise InputRefused(
            f"input '{key}' is hashed or looked up but also read as a number by "
            f"{', '.join(numeric_uses[:3])}"
        )
    if any(t.kind == "fingerprint64" for t in planned):
        planned = _merge_fingerprint(key, planned)
    kinds = {t.encoding for t in planned}
    if len(kinds) > 1:
        described = sorted({t.description for t in planned})
        raise InputRefused(
            f"input '{key}' is read as {' and '.join(described)}; it cannot become one int64 "
            "input (merge_duplicates or the model must hash it one way)"
        )
    first = planned[0]
    if comparisons and first.value_of is None and first.kind != "fingerprint64":
        raise InputRefused(
            f"input '{key}' is compared with a constant and read as {first.description}; "
            "that comparison cannot be kept exact on its ids"
        )
    params = dict(first.params)
    reserved, restore = _reserve(first.kind, first, comparisons)
    if first.kind == "fingerprint64":
        compared = dict.fromkeys(
            [*(_text(v) for v in reserved), *(c for t in planned for c in t.compared)]
        )
        if compared:
            params["compared"] = [v.decode("utf-8", "surrogateescape") for v in compared]
    elif reserved:
        params["reserved"] = {
            (v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)): i
            for v, i in reserved.items()
        }
    return _InputPlan(
        key=key,
        placeholder=placeholder,
        source_dtype=info.dtype,
        target_dtype=first.target_dtype,
        kind=first.kind,
        params=params,
        chain=chain,
        shape_readers=shape_readers,
        terminals=planned,
        comparisons=comparisons,
        reserved=reserved,
        restore=restore,
    )


def _restore_reserved(graph_def: Any, names: set[str], ids: str, restore: Mapping[int, int]) -> str:
    """Nodes turning reserved ids back into the id TensorFlow computed for their value."""
    current = ids
    base = ids.split(":")[0]
    for rid, original in restore.items():
        rid_const, value_const = (
            unique_name(names, f"{base}/reserved_{abs(rid)}_{s}") for s in ("id", "value")
        )
        names.update((rid_const, value_const))
        add_const(graph_def, rid_const, np.array(rid, np.int64))
        add_const(graph_def, value_const, np.array(original, np.int64))
        is_reserved = reserve_name(names, f"{base}/is_reserved_{abs(rid)}")
        add_node(
            graph_def,
            is_reserved,
            "Equal",
            [current, rid_const],
            T="dtype:int64",
            incompatible_shape_error=True,
        )
        restored = reserve_name(names, f"{base}/restored_{abs(rid)}")
        add_node(
            graph_def, restored, "SelectV2", [is_reserved, value_const, current], T="dtype:int64"
        )
        current = restored
    return current


def _unsigned_mod(graph_def: Any, names: set[str], ids: str, num_buckets: int) -> str:
    """``uint64(ids) mod N`` from int64 ids: the ids' bits read as uint64 (``Cast`` keeps them),
    an unsigned ``FloorMod``, the remainder back to int64 (it is below ``N``). tf2onnx writes
    the ``FloorMod`` as ``Div``/``Mul``/``Sub``, which ONNX clean-up turns into ``Mod``."""
    base = reserve_name(names, f"{ids.split(':')[0]}/fingerprint_mod_{num_buckets}")
    unsigned = reserve_name(names, f"{base}/as_uint64")
    add_cast(graph_def, unsigned, ids, "int64", "uint64")
    n = reserve_name(names, f"{base}/n")
    add_const(graph_def, n, np.array(num_buckets, np.uint64))
    rest = reserve_name(names, f"{base}/floormod")
    add_node(graph_def, rest, "FloorMod", [unsigned, n], T="dtype:uint64")
    add_cast(graph_def, base, rest, "uint64", "int64")
    return base


def _become_const(node: Any, value: np.ndarray) -> None:
    """Turn ``node`` into a ``Const`` holding ``value``, in place."""
    tf = import_tf()
    del node.input[:]
    node.op = "Const"
    for attr in list(node.attr):
        del node.attr[attr]
    node.attr["dtype"].type = tf_dtype_enum(value.dtype)
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))


def _fingerprint_table(
    graph: ModelGraph, graph_def: Any, names: set[str], find: Any
) -> dict[str, Any]:
    """Point a string-keyed find op at a copy of its table keyed by the keys' Fingerprint64.

    Returns:
        The new table, keyed by its resource placeholder.
    """
    import dataclasses

    old = graph.tables[graph.table_of_node(find.name) or ""]
    name = reserve_name(names, f"{old.placeholder}_fingerprint64")
    node = graph_def.node.add()
    node.CopyFrom(graph.nodes[old.placeholder])
    node.name = name
    keys = np.array([as_int64(fingerprint64(_text(k))) for k in old.keys.reshape(-1)], np.int64)
    if len(set(keys.tolist())) != keys.size:
        raise PassRefused(
            f"ids_upstream: two keys of table '{old.placeholder}' share a Fingerprint64"
        )
    find.input[0] = name
    find.attr["Tin"].type = tf_dtype_enum("int64")
    for size in graph_def.node:  # a static table's size is a constant
        if (
            size.op.startswith("LookupTableSize")
            and graph.table_of_node(size.name) == old.placeholder
        ):
            _become_const(size, np.array(old.size, np.int64))
    table = dataclasses.replace(
        old,
        placeholder=name,
        key_dtype="int64",
        keys=keys,
        origin=f"{old.origin}, Fingerprint64 keys",
    )
    return {name: table}


def _set_type_attr(node: Any, dtype: str) -> None:
    enum = tf_dtype_enum(dtype)
    if node.op == "Placeholder":
        node.attr["dtype"].type = enum
    elif "Tparams" in node.attr:
        node.attr["Tparams"].type = enum
    elif "T" in node.attr:
        node.attr["T"].type = enum


class IdsUpstreamPass(RewritePass):
    """String / numeric-as-string inputs become integer ids (see the module docstring)."""

    name = "ids_upstream"
    exactness = EXACT
    changes_contract = True

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Move hashing / vocabulary lookups out of the graph.

        Args:
            graph: the current stage.
            params: ``inputs`` (only these keys), ``exclude`` (never these keys),
                ``numeric`` (default true: also numeric-as-string inputs).
            context: unused (the rewrite is exact by construction).

        Returns:
            The rewritten graph, one encoding per changed input, refusals as notes.
        """
        only = set(params.get("inputs") or [])
        exclude = set(params.get("exclude") or [])
        numeric = bool(params.get("numeric", True))
        keys = [
            key
            for key, info in graph.signature.inputs.items()
            if not ((only and key not in only) or key in exclude)
            and (info.dtype == "string" or numeric)
        ]
        work, plans, refused = _plan_inputs(graph, keys)
        if not plans:
            reason = "; ".join(refused) if refused else "no input is hashed or looked up in a table"
            raise PassRefused(f"ids_upstream: nothing to move upstream: {reason}")

        original, graph = graph, work  # the rewrite edits the graph where splits are tokens
        gd = graph.copy_graph_def()
        by_name = {n.name: n for n in gd.node}
        doomed: set[str] = set()
        encodings: list[InputEncoding] = []
        notes: list[str] = []
        new_inputs = dict(graph.signature.inputs)
        names = set(by_name)
        old_consts: set[str] = set()
        new_tables: dict[str, Any] = {}
        for plan in plans:
            for name in (plan.placeholder, *plan.chain, *plan.shape_readers):
                _set_type_attr(by_name[name], plan.target_dtype)
            for cmp in plan.comparisons:
                node = by_name[cmp.node]
                const = reserve_name(names, f"{cmp.node}/reserved_id")
                add_const(gd, const, np.full(cmp.shape, plan.reserved[cmp.value], np.int64))
                old_consts.add(node_name(node.input[cmp.const_pos]))
                node.input[cmp.const_pos] = const
                node.attr["T"].type = tf_dtype_enum("int64")
            fixed: dict[str, str] = {}
            for term in plan.terminals:
                for old, new in term.rewires:
                    if plan.restore:
                        if new not in fixed:
                            fixed[new] = _restore_reserved(gd, names, new, plan.restore)
                        new = fixed[new]
                    rewire(gd, old, new)
                doomed.update(term.remove)
                for hash_node, nb in term.mod_of.items():
                    ids = _unsigned_mod(gd, names, by_name[hash_node].input[0], nb)
                    rewire(gd, hash_node + ":0", ids)
                    doomed.add(hash_node)
                for find in term.fingerprint_tables:
                    old_consts.add(node_name(by_name[find].input[0]))
                    new_tables.update(_fingerprint_table(graph, gd, names, by_name[find]))
                for node_name_, attr, index in term.retype:
                    cross = by_name[node_name_]
                    cross.attr[attr].list.type[index] = tf_dtype_enum("int64")
                    if "internal_type" in cross.attr:
                        cross.attr["internal_type"].type = tf_dtype_enum("int64")
            info = graph.signature.inputs[plan.key]
            new_inputs[plan.key] = TensorInfo(plan.key, plan.target_dtype, info.shape)
            encodings.append(plan.encoding())
            notes.append(f"{plan.key}: {plan.describe()}; compute with recadvisor encode")
        removed = remove_nodes(gd, doomed, protected_nodes(graph))
        removed |= remove_if_unread(gd, old_consts - removed, protected_nodes(graph))
        notes.extend(f"left in the graph: {r}" for r in refused)
        signature = SignatureSpec(graph.signature.key, new_inputs, dict(graph.signature.outputs))
        new_graph = graph.replace(
            graph_def=gd, signature=signature, tables={**surviving_tables(graph, gd), **new_tables}
        )
        before_ops, after_ops = original.op_counts(), new_graph.op_counts()
        stats = {
            "inputs_changed": [p.key for p in plans],
            "inputs_refused": len(refused),
            "nodes_removed": len(removed),
            "nodes_before": len(original.graph_def.node),
            "nodes_after": len(gd.node),
            "string_ops_before": sum(c for op, c in before_ops.items() if op in STRING_OPS),
            "string_ops_after": sum(c for op, c in after_ops.items() if op in STRING_OPS),
            "tables_removed": len(original.tables) - len(new_graph.tables),
        }
        log.info(
            "ids_upstream: %d inputs moved upstream, %d nodes removed", len(plans), len(removed)
        )
        return PassResult(self.name, new_graph, stats, tuple(encodings), tuple(notes))
