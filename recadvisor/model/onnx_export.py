"""ONNX export of a string-free rebuilt graph, checked for parity with onnxruntime.

tf2onnx alone cannot export a recommender graph: onnxruntime has no kernel for TensorFlow's
string hash (``StringToHashBucketFast``) nor for ``Bucketize``, and tf2onnx refuses integer-keyed
lookup tables. So :func:`export_onnx`

1. refuses a graph that still reads or makes strings, naming the ops and the inputs they hash and
   the plan entry that removes them (``ids_upstream``);
2. lowers what onnxruntime lacks, in the TensorFlow graph, into plain ops:
   ``Bucketize(x, b)`` -> ``Sum(Cast(ExpandDims(x, -1) >= b))`` (the count of boundaries
   ``<= x``, compared in float32 like the TensorFlow kernel), each integer-keyed lookup table
   -> a gather over a dense remap vector (``keys - min`` indexes it; keys outside the range, and
   holes, read the table's default), or, for sparse keys (64-bit ids, ``Fingerprint64`` keys;
   up to 16384 keys), a match of the ids against every key (``Equal``, then for integer values
   the matched ``value - default`` summed onto the default, else ``ArgMax`` + gather and the
   default where none matches), and for top-K indices whose table holds every position a
   plain gather, ``Log1p``/``Expm1`` (no tf2onnx handler) -> ``Log(x+1)``
   / ``Exp(x)-1``, and a hashed cross of int64 columns (``SparseCross`` from Keras
   ``HashedCrossing`` or feature columns' ``crossed_column`` after ``ids_upstream`` sent its
   strings as ``Fingerprint64`` ids) -> the kernel's ``FingerprintCat64`` chain in uint64
   arithmetic (``Mul``, ``BitwiseXor``, ``RightShift``, ``FloorMod``: opset 18), bit-exact; a
   cross of sparse or multi-valued columns first enumerates the kernel's Cartesian product per
   row in its order (:func:`_lower_sparse_cross`), unless every column holds at most one value
   per row (:func:`_lower_row_crosses`: a value and a presence per row);
   an embedding column's sparse pooling (``SparseFillEmptyRows``, ``SparseSegmentMean``...
   over ids taken from a dense tensor) -> a dense masked reduction
   (:mod:`recadvisor.model.sparse_pooling`); ``SegmentMax``/``SegmentMin`` (a
   feature column's sequence length; tf2onnx's handler fails on integers and gives ``-inf``
   for an empty segment) -> a ``TensorScatterMax``/``Min`` (ONNX ``ScatterND`` with a
   reduction: opset 18), exact; ``SparseSegmentSum``/``SparseSegmentMean`` of float data (a
   feature column's embedding combiner; tf2onnx sorts and deduplicates the ids with ``TopK``
   and ``Unique``) -> a gather and a ``TensorScatterAdd`` (divided by the row count, at least
   1); a ``Reshape`` of ``x`` to its own dims is dropped (tf2onnx
   would merge it, as ``Reshape(x, [0, 0, c])``, with the reshape that made ``x``, and the 0s
   would then copy the wrong dims); and ``SparseReshape``, which tf2onnx writes as divisions
   by the shapes' dimensions, is dropped where it maps a 2-D shape onto itself (every
   embedding column's ids) and otherwise fed shapes without zeros
   (:func:`_lower_sparse_reshape`), so an empty crossed column does not stop onnxruntime;
3. converts with ``tf2onnx.convert.from_graph_def`` (inputs and outputs named by their signature
   keys), then cleans up what tf2onnx leaves (:mod:`recadvisor.model.onnx_optimize`);
4. runs the original graph (TensorFlow) and the ONNX model (onnxruntime) on the sample feeds and
   writes ``path`` only when every output matches within ``tolerance`` (default 1e-5; string
   outputs, e.g. a retrieval model's top-K ids gathered from a constant, must be equal: they
   stay strings in ONNX).

tf2onnx, onnx and onnxruntime are the optional ``onnx`` extra (``pip install recadvisor[onnx]``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from recadvisor.errors import ExportError, OutputExistsError
from recadvisor.model.edits import (
    NodeMaker,
    add_cast,
    add_const,
    add_gather,
    add_node,
    canonical_tensor,
    protected_nodes,
    remove_if_unread,
    reserve_name,
    resolve_const,
    rewire,
)
from recadvisor.model.graph import STRING_OPS, TABLE_OPS, ModelGraph, node_name, source_through
from recadvisor.model.onnx_optimize import OnnxCleanupDict
from recadvisor.model.queries import (
    CROSS_OPS,
    sparse_reshape_to_own_2d,
    static_shapes,
    tensor_through,
)
from recadvisor.model.runtime import GraphRunner
from recadvisor.model.sparse_pooling import (
    bucket_values,
    dense_column,
    emit_dense_column,
    every_row_once,
    fuse_sparse_poolings,
    one_per_row_cross,
)
from recadvisor.tfimport import import_tf
from recadvisor.verify import compare_outputs

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 1e-5
MAX_REMAP_SPAN = 1 << 22  # integer tables with a wider key range are matched key by key
MAX_MATCH_KEYS = 1 << 14  # ... when they have at most this many keys (else they stay blockers)
CROSS_OPSET = 18  # BitwiseXor
# ops that only carry strings and have string kernels in onnxruntime: a string output (the top-K
# item ids of a retrieval model, gathered from a constant) stays a string in ONNX
STRING_CARRIERS = frozenset(
    {"Const", "Identity", "GatherV2", "Reshape", "Squeeze", "ExpandDims", "ConcatV2"}
)
CROSS_MUL = 0xC6A4A7935BD1E995  # FingerprintCat64's multiplier (tensorflow/core/platform)
CROSS_FIX = (
    "no ONNX equivalent for this cross (a string output, a strong hash or a "
    "SparseCrossHashed/SparseCrossV2 op): keep serving it with TensorFlow"
)
STRING_FIX = "enable ids_upstream in the plan (preset fast) to move string hashing/lookups out"
TYPE_ATTRS = (
    "T",
    "dtype",
    "Tparams",
    "SrcT",
    "DstT",
    "Tin",
    "Tout",
    "out_type",
    "key_dtype",
    "value_dtype",
)


@dataclass(frozen=True)
class OnnxBlocker:
    """An op that keeps the graph from running on onnxruntime.

    Attributes:
        op: op type.
        count: how many nodes.
        inputs: signature inputs that reach those nodes.
        fix: the plan entry (or other step) that removes them.
    """

    op: str
    count: int
    inputs: tuple[str, ...]
    fix: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"op": self.op, "count": self.count, "inputs": list(self.inputs), "fix": self.fix}

    def describe(self) -> str:
        """``StringToHashBucketFast x3 (user_id, item_id)``."""
        feats = f" ({', '.join(self.inputs)})" if self.inputs else ""
        return f"{self.op} x{self.count}{feats}"


class OnnxExportDict(TypedDict):
    """``OnnxExportResult.to_dict()`` (``rebuild.json``'s ``onnx`` when the export ran)."""

    path: str
    opset: int
    inputs: list[str]
    outputs: list[str]
    lowered: dict[str, int]
    parity: dict[str, float]
    max_abs_diff: float
    tolerance: float
    rows: int
    onnx_ops: dict[str, int]
    size_bytes: int
    versions: dict[str, str]
    cleanup: OnnxCleanupDict | dict[str, Any]  # empty when the export ran without the clean-up


@dataclass(frozen=True)
class OnnxExportResult:
    """What :func:`export_onnx` wrote and measured.

    Attributes:
        path: the ``.onnx`` file.
        opset: the ONNX opset.
        inputs / outputs: the ONNX model's input/output names (signature keys; tf2onnx drops
            inputs the graph never reads).
        lowered: op type -> how many nodes were lowered before conversion.
        parity: output key -> max abs diff between TensorFlow and onnxruntime.
        max_abs_diff: the largest of those.
        tolerance: the limit checked.
        rows: sample rows compared.
        onnx_ops: ONNX op type -> count in the exported model.
        size_bytes: size of the written file.
        versions: tf2onnx / onnx / onnxruntime versions used.
        cleanup: what the ONNX clean-up did (nodes before/after, rewrites per pass); the
            parity above is of the cleaned model, which is the one written.
    """

    path: str
    opset: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    lowered: dict[str, int] = field(default_factory=dict)
    parity: dict[str, float] = field(default_factory=dict)
    max_abs_diff: float = 0.0
    tolerance: float = DEFAULT_TOLERANCE
    rows: int = 0
    onnx_ops: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    cleanup: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> OnnxExportDict:
        """JSON form (goes into ``rebuild.json``)."""
        return {
            "path": self.path,
            "opset": self.opset,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "lowered": dict(self.lowered),
            "parity": dict(self.parity),
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "rows": self.rows,
            "onnx_ops": dict(self.onnx_ops),
            "size_bytes": self.size_bytes,
            "versions": dict(self.versions),
            "cleanup": dict(self.cleanup),
        }


# --------------------------------------------------------------------------- blockers
def _is_string_typed(node: Any, string_enum: int, other_enum: int) -> bool:
    for attr in TYPE_ATTRS:
        if attr in node.attr and node.attr[attr].type in (string_enum, other_enum):
            return True
    return False


def _lowerable_table(graph: ModelGraph, find: Any) -> bool:
    table = graph.tables.get(graph.table_of_node(find.name) or "")
    if table is None or find.op != "LookupTableFindV2":
        return False
    if not table.key_dtype.startswith(("int", "uint")) or table.values.ndim != 1:
        return False
    if table.value_dtype in ("resource", "variant"):
        return False
    if table.size == 0:
        return resolve_const(graph, find.input[2]) is not None
    span = int(table.keys.max()) - int(table.keys.min()) + 1
    if span > MAX_REMAP_SPAN:  # sparse keys (64-bit ids, Fingerprint64 keys): matched
        return table.size <= MAX_MATCH_KEYS and resolve_const(graph, find.input[2]) is not None
    # holes in the key range read the default, which must then be a constant
    return span == table.size or resolve_const(graph, find.input[2]) is not None


def _input_shape(graph: ModelGraph, tensor: str) -> tuple[int | None, ...] | None:
    """The signature shape of ``tensor`` when it is a signature input (through Identity
    nodes), else None."""
    src = source_through(graph.nodes, tensor, ("Identity",))
    key = next((k for k, v in graph.input_nodes.items() if v == src), None)
    return graph.signature.inputs[key].shape if key is not None else None


def _one_value_column(graph: ModelGraph, tensor: str) -> bool:
    """Whether ``tensor`` is a signature input of shape ``[N, 1]`` (through Identity nodes)."""
    shape = _input_shape(graph, tensor)
    return shape is not None and len(shape) == 2 and shape[1] == 1


def _lowerable_cross(node: Any) -> bool:
    """A hashed ``SparseCross`` whose columns (sparse or dense, any width) are all int64."""
    if node.op != "SparseCross" or not node.attr["hashed_output"].b:
        return False
    types = [*node.attr["sparse_types"].list.type, *node.attr["dense_types"].list.type]
    int64 = import_tf().int64.as_datatype_enum
    return bool(types) and all(t == int64 for t in types)


def _one_value_cross(graph: ModelGraph, node: Any) -> bool:
    """A cross of dense ``[N, 1]`` signature inputs only (one value per row: no grid needed)."""
    if node.attr["sparse_types"].list.type:
        return False
    return all(_one_value_column(graph, i) for i in node.input if not i.startswith("^"))


def find_onnx_blockers(graph: ModelGraph) -> list[OnnxBlocker]:
    """Ops that would keep ``graph`` from converting and running on onnxruntime.

    String ops, string inputs and lookup tables that cannot be lowered are blockers; lowerable
    ops (``Bucketize``, integer-keyed tables with a compact key range) are not. Other nodes that
    merely carry strings (Identity, Reshape) are reported only when nothing else explains them.

    Args:
        graph: the graph to check.

    Returns:
        One :class:`OnnxBlocker` per op type, most frequent first (empty: exportable).
    """
    tf = import_tf()
    string_enum = tf.string.as_datatype_enum
    input_nodes = set(graph.input_nodes.values())
    found: dict[str, list[str]] = {}
    carriers: dict[str, list[str]] = {}
    fixes: dict[str, str] = {}
    for node in graph.graph_def.node:
        if node.name in graph.tables:
            continue
        if node.op in TABLE_OPS:
            if _lowerable_table(graph, node):
                continue
            table = graph.tables.get(graph.table_of_node(node.name) or "")
            if table is not None and table.key_dtype == "string":
                fixes[node.op] = STRING_FIX
            else:
                fixes[node.op] = (
                    "no ONNX equivalent for this lookup table (over 16384 sparse integer keys, "
                    "a non-constant default or non-scalar values); keep serving it "
                    "with TensorFlow"
                )
            found.setdefault(node.op, []).append(node.name)
        elif node.op in STRING_OPS:
            found.setdefault(node.op, []).append(node.name)
            fixes.setdefault(node.op, STRING_FIX)
        elif node.op in CROSS_OPS and not _lowerable_cross(node):
            found.setdefault(node.op, []).append(node.name)
            types = [*node.attr["sparse_types"].list.type, *node.attr["dense_types"].list.type]
            fixes.setdefault(node.op, STRING_FIX if string_enum in types else CROSS_FIX)
        elif node.name in input_nodes and node.attr["dtype"].type == string_enum:
            if graph.consumers.get(node.name):  # an unread string input is a valid ONNX input
                found.setdefault("string input", []).append(node.name)
                fixes.setdefault("string input", STRING_FIX)
        elif (
            _is_string_typed(node, string_enum, string_enum)
            and node.op not in STRING_CARRIERS
            and (graph.consumers.get(node.name) or node.name in graph.output_nodes.values())
        ):
            carriers.setdefault(f"{node.op} on strings", []).append(node.name)
    if not found:
        found = carriers
        fixes = {op: STRING_FIX for op in carriers}
    blockers = []
    for op, nodes in sorted(found.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        feats: set[str] = set()
        for n in nodes:
            feats |= graph.features_of_node.get(n, frozenset())
        blockers.append(OnnxBlocker(op, len(nodes), tuple(sorted(feats)), fixes[op]))
    return blockers


def blockers_message(blockers: list[OnnxBlocker]) -> str:
    """One line naming the blocking ops and the fix."""
    fixes = sorted({b.fix for b in blockers})
    return (
        "model.onnx not written: the graph still has "
        + ", ".join(b.describe() for b in blockers)
        + "; "
        + "; ".join(fixes)
    )


# --------------------------------------------------------------------------- lowering
def _dtype_name(enum: int) -> str:
    return import_tf().dtypes.as_dtype(enum).name


def _lower_bucketize(graph_def: Any, node: Any, names: set[str]) -> None:
    """Rewrite one Bucketize node in place as count(boundaries <= x)."""
    base = node.name
    dtype = _dtype_name(node.attr["T"].type)
    bounds = np.asarray(list(node.attr["boundaries"].list.f), dtype=np.float32)
    cmp_dtype = "float64" if dtype == "float64" else "float32"
    x = node.input[0]

    def fresh(suffix: str) -> str:
        return reserve_name(names, f"{base}/onnx_{suffix}")

    if dtype != cmp_dtype:
        cast = fresh("cast")
        add_cast(graph_def, cast, x, dtype, cmp_dtype)
        x = cast
    axis_m1 = fresh("minus_one")
    add_const(graph_def, axis_m1, np.array(-1, np.int32))
    expanded = fresh("expand")
    add_node(
        graph_def, expanded, "ExpandDims", [x, axis_m1], T=f"dtype:{cmp_dtype}", Tdim="dtype:int32"
    )
    b_const = fresh("boundaries")
    add_const(graph_def, b_const, bounds.astype(cmp_dtype))
    ge = fresh("ge")
    add_node(graph_def, ge, "GreaterEqual", [expanded, b_const], T=f"dtype:{cmp_dtype}")
    as_int = fresh("as_int")
    add_cast(graph_def, as_int, ge, "bool", "int32")
    # the Bucketize node itself becomes the Sum, so its readers need no rewiring
    _become(node, "Sum", [as_int, axis_m1], T="int32", Tidx="int32")
    node.attr["keep_dims"].b = False


def _table_value_dtype(table: Any) -> tuple[np.dtype, str]:
    """The numpy dtype that holds a table's values and its TensorFlow dtype name (string
    values, as in an inverse ``StringLookup`` on a retrieval output, are numpy objects)."""
    if table.value_dtype == "string":
        return np.dtype(object), "string"
    return np.dtype(table.value_dtype), np.dtype(table.value_dtype).name


def _become(node: Any, op: str, inputs: list[str], **dtypes: str) -> None:
    """Turn ``node``, in place, into ``op(inputs)`` with only the given dtype attributes
    (``T="float32"``); its readers need no rewiring."""
    tf = import_tf()
    del node.input[:]
    node.input.extend(inputs)
    node.op = op
    for attr in list(node.attr):
        del node.attr[attr]
    for attr, dtype in dtypes.items():
        node.attr[attr].type = tf.dtypes.as_dtype(dtype).as_datatype_enum


def _become_select(node: Any, cond: str, found: str, default: str, dtype: str) -> None:
    """Turn a lowered find op, in place, into ``SelectV2(cond, found, default)``."""
    _become(node, "SelectV2", [cond, found, default], T=dtype)


def _offsets_from_default(values: np.ndarray, default: Any, value_tf: str) -> np.ndarray | None:
    """``values - default`` for a table of int32/int64 values and a constant scalar default,
    when no difference overflows the dtype; else None."""
    if value_tf not in ("int32", "int64") or default is None or np.asarray(default).size != 1:
        return None
    info = np.iinfo(value_tf)
    base = int(np.asarray(default).ravel()[0])
    offsets = [int(v) - base for v in np.asarray(values).ravel()]
    if any(not info.min <= v <= info.max for v in offsets):
        return None
    return np.array(offsets, dtype=value_tf)


def _lower_sparse_table(graph: ModelGraph, graph_def: Any, node: Any, names: set[str]) -> None:
    """Rewrite one LookupTableFindV2 with sparse integer keys as a key match: ``Equal`` of the
    ids with every key; for integer values and a constant default, ``default + sum(where(match,
    value - default, 0))`` (keys are unique: 5 ONNX nodes); else ``ArgMax`` of the matches, a
    gather of the values, the default where nothing matched (9 nodes)."""
    table = graph.tables[graph.table_of_node(node.name) or ""]
    value_dtype, value_tf = _table_value_dtype(table)
    x, default_tensor = node.input[1], node.input[2]

    def fresh(suffix: str) -> str:
        return reserve_name(names, f"{node.name}/onnx_{suffix}")

    if table.key_dtype != "int64":
        cast = fresh("cast")
        add_cast(graph_def, cast, x, table.key_dtype, "int64")
        x = cast
    keys, values = fresh("keys"), fresh("values")
    add_const(graph_def, keys, table.keys.astype(np.int64))
    last, axis, zero = fresh("last"), fresh("axis"), fresh("zero")
    add_const(graph_def, last, np.array(-1, np.int32))
    expanded = fresh("expand")
    add_node(graph_def, expanded, "ExpandDims", [x, last], T="dtype:int64", Tdim="dtype:int32")
    equal = fresh("equal")
    add_node(graph_def, equal, "Equal", [expanded, keys], T="dtype:int64")
    offsets = _offsets_from_default(table.values, resolve_const(graph, default_tensor), value_tf)
    if offsets is not None:  # keys are unique: at most one match, summed with the default
        add_const(graph_def, values, offsets)
        add_const(graph_def, zero, np.array(0, value_dtype))
        picked = fresh("picked")
        add_node(graph_def, picked, "SelectV2", [equal, values, zero], T=f"dtype:{value_tf}")
        matched = fresh("matched")
        add_node(
            graph_def,
            matched,
            "Sum",
            [picked, last],
            T=f"dtype:{value_tf}",
            Tidx="dtype:int32",
            keep_dims=False,
        )
        _become(node, "AddV2", [matched, default_tensor], T=value_tf)
        return
    add_const(graph_def, values, table.values.astype(value_dtype))
    add_const(graph_def, axis, np.array(0, np.int32))
    add_const(graph_def, zero, np.array(0, np.int32))
    hits = fresh("hits")
    add_cast(graph_def, hits, equal, "bool", "int32")
    hit = fresh("hit")
    add_node(
        graph_def, hit, "Max", [hits, last], T="dtype:int32", Tidx="dtype:int32", keep_dims=False
    )
    found = fresh("found")
    add_node(graph_def, found, "Greater", [hit, zero], T="dtype:int32")
    index = fresh("index")
    add_node(
        graph_def,
        index,
        "ArgMax",
        [hits, last],
        T="dtype:int32",
        Tidx="dtype:int32",
        output_type="dtype:int64",
    )
    gathered = fresh("gather")
    add_gather(graph_def, gathered, values, index, value_tf, "int64", axis)
    _become_select(node, found, gathered, default_tensor, value_tf)


def _index_count(
    graph: ModelGraph, tensor: str, shapes: Callable[[], Mapping[str, Any]]
) -> int | None:
    """``D`` when ``tensor`` can only hold ``0 .. D-1``: ``TopKV2``'s indices over a last axis
    of static length ``D`` (a retrieval model's top-K candidates), through reshapes and
    widening integer casts; else None. ``shapes`` gives the static shapes (asked only then)."""
    tensor, node = _value_source(graph, tensor)
    if node is None or node.op != "TopKV2" or canonical_tensor(tensor) != f"{node.name}:1":
        return None
    if not canonical_tensor(node.input[0]).endswith(":0"):
        return None
    shape = shapes().get(node_name(node.input[0]))
    return shape[-1] if shape and shape[-1] else None


def _lower_table(
    graph: ModelGraph,
    graph_def: Any,
    node: Any,
    names: set[str],
    shapes: Callable[[], Mapping[str, Any]],
) -> None:
    """Rewrite one integer-keyed LookupTableFindV2 in place as a gather over a dense remap
    (without the range check and the default when the ids are indices the keys cover;
    ``shapes`` gives the static shapes, asked only for top-K indices)."""
    table = graph.tables[graph.table_of_node(node.name) or ""]
    if table.size and int(table.keys.max()) - int(table.keys.min()) + 1 > MAX_REMAP_SPAN:
        _lower_sparse_table(graph, graph_def, node, names)
        return
    count = _index_count(graph, node.input[1], shapes)
    order = np.argsort(table.keys.astype(np.int64), kind="stable")
    keys = table.keys.astype(np.int64)[order]
    if count is not None and keys.size >= count and (keys[:count] == np.arange(count)).all():
        value_dtype, value_tf = _table_value_dtype(table)  # key k is row k of the values
        rows = table.values[order[:count]]
        remap = reserve_name(names, f"{node.name}/onnx_remap")
        add_const(graph_def, remap, np.asarray(rows, dtype=value_dtype))
        axis = reserve_name(names, f"{node.name}/onnx_axis")
        add_const(graph_def, axis, np.array(0, np.int32))
        index_dtype = _dtype_name(node.attr["Tin"].type) if "Tin" in node.attr else "int64"
        _become(
            node,
            "GatherV2",
            [remap, node.input[1], axis],
            Tparams=value_tf,
            Tindices=index_dtype,
            Taxis="int32",
        )
        node.attr["batch_dims"].i = 0
        return
    base = node.name
    key_dtype = table.key_dtype
    value_dtype, value_tf = _table_value_dtype(table)
    keys = table.keys.astype(np.int64)
    kmin = int(keys.min()) if keys.size else 0
    span = (int(keys.max()) - kmin + 1) if keys.size else 1
    default = resolve_const(graph, node.input[2])
    remap = np.full(span, b"" if value_tf == "string" else 0, dtype=value_dtype)
    if default is not None:
        remap[:] = np.asarray(default).astype(value_dtype)
    remap[keys - kmin] = table.values.astype(value_dtype)
    x, default_tensor = node.input[1], node.input[2]

    def fresh(suffix: str) -> str:
        return reserve_name(names, f"{base}/onnx_{suffix}")

    if key_dtype != "int64":
        cast = fresh("cast")
        add_cast(graph_def, cast, x, key_dtype, "int64")
        x = cast
    consts = {}
    for label, value in (("kmin", kmin), ("zero", 0), ("span", span), ("last", span - 1)):
        consts[label] = fresh(label)
        add_const(graph_def, consts[label], np.array(value, np.int64))
    axis = fresh("axis")
    add_const(graph_def, axis, np.array(0, np.int32))
    remap_name = fresh("remap")
    add_const(graph_def, remap_name, remap)
    idx = fresh("index")
    add_node(graph_def, idx, "Sub", [x, consts["kmin"]], T="dtype:int64")
    ge = fresh("ge")
    add_node(graph_def, ge, "GreaterEqual", [idx, consts["zero"]], T="dtype:int64")
    lt = fresh("lt")
    add_node(graph_def, lt, "Less", [idx, consts["span"]], T="dtype:int64")
    inside = fresh("inside")
    add_node(graph_def, inside, "LogicalAnd", [ge, lt])
    low = fresh("clip_low")
    add_node(graph_def, low, "Maximum", [idx, consts["zero"]], T="dtype:int64")
    safe = fresh("clip")
    add_node(graph_def, safe, "Minimum", [low, consts["last"]], T="dtype:int64")
    found = fresh("gather")
    add_gather(graph_def, found, remap_name, safe, value_tf, "int64", axis)
    _become_select(node, inside, found, default_tensor, value_tf)


def _lower_unary(graph_def: Any, node: Any, names: set[str]) -> None:
    """``Log1p(x)`` -> ``Log(x + 1)``, ``Expm1(x)`` -> ``Exp(x) - 1`` (no tf2onnx handler)."""
    dtype = _dtype_name(node.attr["T"].type)
    one = reserve_name(names, f"{node.name}/onnx_one")
    add_const(graph_def, one, np.array(1, dtype=dtype))
    inner = reserve_name(names, f"{node.name}/onnx_inner")
    x = node.input[0]
    if node.op == "Log1p":
        add_node(graph_def, inner, "AddV2", [x, one], T=f"dtype:{dtype}")
        node.op = "Log"
        node.input[0] = inner
    else:
        add_node(graph_def, inner, "Exp", [x], T=f"dtype:{dtype}")
        node.op = "Sub"
        del node.input[:]
        node.input.extend([inner, one])


UNARY_LOWERINGS = frozenset({"Log1p", "Expm1"})


_SAME_VALUES = frozenset({"Identity", "Reshape", "ExpandDims", "Squeeze"})


_INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}


def _widening_int_cast(node: Any) -> bool:
    """Whether ``node`` casts a signed integer to a signed integer at least as wide (a value
    keeps its sign)."""
    if node.op != "Cast":
        return False
    src, dst = (_dtype_name(node.attr[a].type) for a in ("SrcT", "DstT"))
    return src in _INT_BITS and dst in _INT_BITS and _INT_BITS[dst] >= _INT_BITS[src]


def _value_source(graph: ModelGraph, tensor: str) -> tuple[str, Any]:
    """(the tensor, its node) that ``tensor`` takes its values from, through reshapes and
    widening integer casts (the node is None for a tensor the graph does not make)."""
    node = graph.nodes.get(node_name(tensor))
    while node is not None and (node.op in _SAME_VALUES or _widening_int_cast(node)):
        tensor = node.input[0]
        node = graph.nodes.get(node_name(tensor))
    return tensor, node


def _never_negative(graph: ModelGraph, tensor: str) -> bool:
    """Whether ``tensor`` cannot hold a negative number: a ``Bucketize`` output, a constant
    or a gather from a constant with no negative entry, or one of those reshaped or cast to a
    wider signed integer."""
    _, node = _value_source(graph, tensor)
    if node is None:
        return False
    if node.op == "Bucketize":
        return True
    if node.op in ("GatherV2", "Gather"):
        return _never_negative(graph, node.input[0])
    value = resolve_const(graph, node.name) if node.op == "Const" else None
    return value is not None and value.dtype.kind in "iu" and bool((value >= 0).all())


def _lower_one_hot(graph: ModelGraph, graph_def: Any, node: Any, names: set[str]) -> None:
    """``OneHot`` indices below zero -> ``depth``: TensorFlow gives a row of ``off_value`` for
    them, ONNX counts a negative index from the end (a feature column's OOV id ``-1`` would
    light the last column). Nothing to do for indices that are never negative (a bucketized
    column's)."""
    if _never_negative(graph, node.input[0]):
        return
    dtype = _dtype_name(node.attr["TI"].type) if "TI" in node.attr else "int64"
    idx, depth = node.input[0], node.input[1]
    if dtype != "int32":
        cast = reserve_name(names, f"{node.name}/onnx_depth")
        add_cast(graph_def, cast, depth, "int32", dtype)
        depth = cast
    zero = reserve_name(names, f"{node.name}/onnx_zero")
    add_const(graph_def, zero, np.array(0, dtype=dtype))
    negative = reserve_name(names, f"{node.name}/onnx_negative")
    add_node(graph_def, negative, "Less", [idx, zero], T=f"dtype:{dtype}")
    safe = reserve_name(names, f"{node.name}/onnx_indices")
    add_node(graph_def, safe, "SelectV2", [negative, depth, idx], T=f"dtype:{dtype}")
    node.input[0] = safe


def _shape_length(graph: ModelGraph, tensor: str) -> int | None:
    """How many dimensions the shape vector ``tensor`` holds, when the graph says: ``Shape`` of
    a signature input of known rank, a cross's ``dense_shape`` (2), a constant."""
    source = tensor_through(graph, tensor)
    node = graph.nodes.get(node_name(source))
    if node is None:
        return None
    if node.op in CROSS_OPS:
        return 2 if source.endswith(":2") else None
    if node.op == "Shape":
        shape = _input_shape(graph, node.input[0])
        return len(shape) if shape is not None else None
    value = resolve_const(graph, source)
    return None if value is None else int(np.asarray(value).size)


def _lower_sparse_reshape(graph: ModelGraph, graph_def: Any, node: Any, names: set[str]) -> bool:
    """``SparseReshape`` without tf2onnx's division by its dimensions (exact).

    tf2onnx's ``SparseReshape`` divides by the product of the dimensions (to infer a ``-1`` and
    to split the flat indices), so onnxruntime stops ("Integer division by zero") on a shape
    holding a 0: ``safe_embedding_lookup_sparse`` reshapes the ids of an embedding column, and
    over a crossed column their width is 0 in a batch where no row has a crossed value (a
    one-row request with an empty multi-valued feature), over any column in an empty batch.

    A reshape of 2-D ids onto their own shape (``safe_embedding_lookup_sparse``'s, see
    :func:`~recadvisor.model.queries.sparse_reshape_to_own_2d`, the shape's length known) is
    dropped: its readers read its inputs (and ~20 ONNX nodes go). Any other keeps the node with
    the zero dimensions of both shapes raised to 1: a shape with a zero dimension holds no
    entry, so the (empty) output indices stay as they are, and nothing changes where no
    dimension is 0; its output shape is computed beside it, ``new_shape`` with a ``-1`` set to
    ``prod(shape) / prod(the other dimensions)``.

    Returns:
        True when the node was dropped (nothing reads it any more).
    """
    original = graph.nodes[node.name]
    if sparse_reshape_to_own_2d(graph, original) and _shape_length(graph, original.input[1]) == 2:
        for out, tensor in ((0, node.input[0]), (1, node.input[1])):
            rewire(graph_def, f"{node.name}:{out}", tensor)
        rewire(graph_def, node.name, node.input[0])
        return True
    make = NodeMaker(graph_def, names, node.name)
    shape, new_shape = node.input[1], node.input[2]
    one, zero = make.const("one", 1, np.int64), make.const("zero", 0, np.int64)
    axis0 = make.const("axis0", 0, np.int32)

    def prod(suffix: str, x: str) -> str:
        return make.op(
            suffix, "Prod", [x, axis0], T="dtype:int64", Tidx="dtype:int32", keep_dims=False
        )

    inferred = make.i64("inferred", "Less", [new_shape, zero])
    known = make.i64(
        "known", "SelectV2", [inferred, make.i64("ones", "OnesLike", [new_shape]), new_shape]
    )
    known_size = make.i64("known_size", "Maximum", [prod("known_prod", known), one])
    missing = make.i64("missing", "FloorDiv", [prod("size", shape), known_size])
    output_shape = make.i64("output_shape", "SelectV2", [inferred, missing, new_shape])
    rewire(graph_def, f"{node.name}:1", output_shape)
    raised_new = make.i64("raised_new_shape", "Maximum", [new_shape, one])
    node.input[1] = make.i64("raised_shape", "Maximum", [shape, one])
    node.input[2] = make.i64("raised", "SelectV2", [inferred, new_shape, raised_new])
    return False


def _cross_hash(make: NodeMaker, nodes: list[Any], columns: list[str]) -> str:
    """The hashed cross values of aligned int64 columns (one value each per output entry).

    TensorFlow's kernel: ``h = hash_key``; per column ``h = FingerprintCat64(h, value)``;
    the value is ``h mod num_buckets`` (``mod INT64_MAX`` without buckets), computed here in
    uint64 arithmetic (``Mul``, ``BitwiseXor``, ``RightShift``, ``FloorMod``), bit-exact.
    With several cross ``nodes`` of as many columns, each column is ``[N, len(nodes)]`` (cross
    ``g`` in column ``g``): the keys and bucket counts broadcast along the last axis, so the
    crosses share one chain of nodes.
    """
    u64 = "dtype:uint64"
    mul = make.const("mul", CROSS_MUL, np.uint64)
    shift = make.const("shift", 47, np.uint64)

    def shift_mix(x: str) -> str:
        shifted = make.op("shr", "RightShift", [x, shift], T=u64)
        return make.op("xor", "BitwiseXor", [x, shifted], T=u64)

    def times(x: str) -> str:
        return make.op("mul", "Mul", [x, mul], T=u64)

    def unsigned(x: str) -> str:
        return make.op("u", "Cast", [x], SrcT="dtype:int64", DstT=u64, Truncate=False)

    def per_cross(values: list[int]) -> np.ndarray:
        return np.array(values[0] if len(values) == 1 else values, np.uint64)

    keys = [(int(n.attr["hash_key"].i) & ((1 << 64) - 1)) ^ CROSS_MUL for n in nodes]
    h = ""
    for column in columns:
        mixed = times(shift_mix(times(unsigned(column))))
        # the first column's h is the key: its h ^ mul is one constant (broadcast)
        seen = make.op("xor", "BitwiseXor", [h, mul], T=u64) if h else ""
        seen = seen or make.const("key_mul", per_cross(keys), np.uint64)
        h = shift_mix(times(shift_mix(times(make.op("xor", "BitwiseXor", [seen, mixed], T=u64)))))
    buckets = per_cross([int(n.attr["num_buckets"].i) or (1 << 63) - 1 for n in nodes])
    bucket = make.op("mod", "FloorMod", [h, make.const("buckets", buckets, np.uint64)], T=u64)
    return make.op("values", "Cast", [bucket], SrcT=u64, DstT="dtype:int64", Truncate=False)


def _slice(make: NodeMaker, suffix: str, vector: str, begin: int, end: int) -> str:
    """``vector[begin:end]`` of an int64 vector (``end`` may count from the end)."""
    return make.strided(suffix, vector, begin, end)


def _element(make: NodeMaker, suffix: str, vector: str, index: int) -> str:
    """``vector[index]`` of an int64 vector, as a scalar."""
    return make.i64(
        suffix,
        "Squeeze",
        [_slice(make, f"{suffix}_slice", vector, index, index + 1)],
        squeeze_dims=[0],
    )


def _shape_of(make: NodeMaker, x: str) -> str:
    return make.op("shape_of", "Shape", [x], T="dtype:int64", out_type="dtype:int64")


def _replace_cross_outputs(
    graph_def: Any, node: Any, indices: str, values: str, shape: str
) -> None:
    for out, tensor in ((0, indices), (1, values), (2, shape)):
        rewire(graph_def, f"{node.name}:{out}", tensor)
    rewire(graph_def, node.name, indices)


def _lower_cross(graph_def: Any, node: Any, names: set[str]) -> None:
    """A hashed ``SparseCross`` of ``[N, 1]`` int64 columns as uint64 arithmetic (bit-exact).

    One value per row, so the sparse output is ``indices [[i, 0]]``, ``shape [N, 1]``.
    """
    make = NodeMaker(graph_def, names, node.name)
    flat = make.const("flat", [-1], np.int32)
    columns = [
        make.i64("flat", "Reshape", [column, flat], Tshape="dtype:int32")
        for column in node.input
        if not column.startswith("^")
    ]
    values = _cross_hash(make, [node], columns)
    n = _element(make, "n", _shape_of(make, values), 0)
    zero, one = make.const("zero", 0, np.int64), make.const("one", 1, np.int64)
    row_ids = make.op("range", "Range", [zero, n, one], Tidx="dtype:int64")
    cols = make.i64("cols", "ZerosLike", [row_ids])
    indices = make.i64("indices", "Pack", [row_ids, cols], N=2, axis=1)
    shape = make.i64("shape", "Pack", [n, one], N=2, axis=0)
    _replace_cross_outputs(graph_def, node, indices, values, shape)


@dataclass(frozen=True)
class _CrossColumn:
    """One column of a cross, per batch row: its value count, where its values start, values."""

    counts: str  # [N] int64
    starts: str  # [N] int64
    values: str  # [nnz] int64


def _sparse_column(make: NodeMaker, indices: str, values: str, n: str, zeros: str) -> _CrossColumn:
    """A sparse column's per-row value counts, as the kernel reads them.

    The kernel walks the rows ``0..N-1`` once and takes, for each, the run of entries at the
    current position whose row it is: it reads the longest prefix of the entries whose rows
    are in ``[0, N)`` and do not decrease (all of them in row-major order, as ``Where`` gives
    them), a row's values then being ``values[start(b) .. start(b) + count(b))``. Here: the
    entries past the first out-of-order or out-of-range one are masked out, the counts are a
    ``TensorScatterAdd`` of the kept entries at their rows, the starts their exclusive sum.
    """
    rows = make.op(
        "rows",
        "GatherV2",
        [indices, make.const("zero", 0, np.int32), make.const("axis1", 1, np.int32)],
        Tparams="dtype:int64",
        Tindices="dtype:int32",
        Taxis="dtype:int32",
        batch_dims=0,
    )

    axis0 = make.const("axis0", 0, np.int32)
    previous = make.op(
        "previous",
        "ConcatV2",
        [_slice(make, "first", rows, 0, 1), _slice(make, "but_last", rows, 0, -1), axis0],
        T="dtype:int64",
        Tidx="dtype:int32",
        N=2,
    )
    zero = make.const("zero", 0, np.int64)
    wrong = [
        make.i64("below", "Less", [rows, zero]),
        make.i64("beyond", "GreaterEqual", [rows, n]),
        make.i64("decreasing", "Less", [rows, previous]),
    ]
    stop = make.op("stop", "LogicalOr", [make.op("out", "LogicalOr", wrong[:2]), wrong[2]])
    stops = make.op("stops", "Cast", [stop], SrcT="dtype:bool", DstT="dtype:int64", Truncate=False)
    seen = make.cumsum("seen", stops, exclusive=False)
    kept = make.i64("kept", "Equal", [seen, zero], incompatible_shape_error=True)
    ones = make.op("ones", "Cast", [kept], SrcT="dtype:bool", DstT="dtype:int64", Truncate=False)
    at = make.op(
        "at",
        "ExpandDims",
        [
            make.i64("safe_rows", "SelectV2", [kept, rows, make.i64("zeros", "ZerosLike", [rows])]),
            make.const("last", -1, np.int32),
        ],
        T="dtype:int64",
        Tdim="dtype:int32",
    )
    counts = make.op(
        "counts", "TensorScatterAdd", [zeros, at, ones], T="dtype:int64", Tindices="dtype:int64"
    )
    return _CrossColumn(counts, make.cumsum("starts", counts, exclusive=True), values)


def _dense_column(make: NodeMaker, dense: str, row_ids: str) -> _CrossColumn:
    """A dense ``[N, W]`` column: ``W`` values in every row, row-major."""
    width = _element(make, "width", _shape_of(make, dense), 1)
    counts = make.i64("counts", "AddV2", [make.i64("zeros", "ZerosLike", [row_ids]), width])
    starts = make.i64("starts", "Mul", [row_ids, width])
    flat = make.i64(
        "flat", "Reshape", [dense, make.const("flat", [-1], np.int32)], Tshape="dtype:int32"
    )
    return _CrossColumn(counts, starts, flat)


def _cross_indicators(graph: ModelGraph, node: Any) -> list[Any]:
    """The indicator columns over a one-per-row cross: ``Sum(OneHot(SparseToDense(cross,
    default), depth), axis=1)`` with a default that one-hots to zeros (``< 0`` or ``>= depth``).
    Returns the ``Sum`` nodes."""
    found = []
    for name in dict.fromkeys(graph.consumers.get(node.name, [])):
        dense = graph.nodes[name]
        expected = [f"{node.name}:0", f"{node.name}:2", f"{node.name}:1"]
        if (
            dense.op != "SparseToDense"
            or [canonical_tensor(i) for i in dense.input[:3]] != expected
        ):
            continue
        default = resolve_const(graph, dense.input[3])
        for onehot_name in dict.fromkeys(graph.consumers.get(name, [])):
            onehot = graph.nodes[onehot_name]
            depth = resolve_const(graph, onehot.input[1]) if onehot.op == "OneHot" else None
            if depth is None or default is None or onehot.attr["axis"].i != -1:
                continue
            if 0 <= int(default) < int(depth) or canonical_tensor(onehot.input[0]) != f"{name}:0":
                continue
            for total_name in dict.fromkeys(graph.consumers.get(onehot_name, [])):
                total = graph.nodes[total_name]
                axis = resolve_const(graph, total.input[1]) if total.op == "Sum" else None
                if axis is None or axis.ravel().tolist() not in ([1], [-2]):
                    continue
                if total.attr["keep_dims"].b or canonical_tensor(total.input[0]) != (
                    f"{onehot_name}:0"
                ):
                    continue
                found.append(total)
    return found


@dataclass
class _RowCross:
    """A hashed ``SparseCross`` read as one value and one presence per row (see
    :func:`_row_cross`): ``columns`` are ``[N, 1]`` int64 in the kernel's order, ``present``
    ``[N]`` bool (``""``: every row crosses), ``n`` the ``[1]`` row count."""

    node: Any
    make: NodeMaker
    n: str
    columns: list[str]
    present: str


def _row_cross(
    graph: ModelGraph, graph_def: Any, node: Any, names: set[str], shapes: Mapping[str, Any]
) -> _RowCross:
    """The per-row columns of a hashed ``SparseCross`` whose columns hold at most one value per
    row (:func:`~recadvisor.model.sparse_pooling.one_per_row_cross`): each sparse column
    scattered into a value and a presence per row (a bucketized column has a value in every
    row, a ``to_sparse_input`` one its mask), dense ``[N, 1]`` columns as they are."""
    make = NodeMaker(graph_def, names, node.name)
    n_sparse = len(node.attr["sparse_types"].list.type)
    inputs = [i for i in node.input if not i.startswith("^")]
    indices, values = inputs[:n_sparse], inputs[n_sparse : 2 * n_sparse]
    shapes_in, dense = inputs[2 * n_sparse : 3 * n_sparse], inputs[3 * n_sparse :]
    n = make.i64(
        "n",
        "Reshape",
        [
            _element(make, "n", shapes_in[0] if shapes_in else _shape_of(make, dense[0]), 0),
            make.const("one_d", [1], np.int32),
        ],
        Tshape="dtype:int32",
    )
    i64, b = "dtype:int64", "dtype:bool"
    zero, axis1 = make.const("zero", 0, np.int64), make.const("axis1", 1, np.int32)
    column0 = make.const("column0", [0], np.int32)
    as_column = make.const("as_column", [-1, 1], np.int32)
    present = ""
    columns = []
    for k in range(n_sparse):
        if every_row_once(graph, indices[k], shapes_in[k]):  # bucketized: a value every row
            flat = bucket_values(make, graph, values[k])
            columns.append(make.i64("column", "Reshape", [flat, as_column], Tshape="dtype:int32"))
            continue
        column = dense_column(graph, indices[k], values[k], shapes_in[k], shapes)
        if column is not None:  # to_sparse_input of an [N, 1] tensor: its mask and f(x)
            value, here = emit_dense_column(make, graph, column)
            columns.append(value)
            present = make.op("present", "LogicalAnd", [present, here]) if present else here
            continue
        rows = make.op(
            "rows",
            "GatherV2",
            [indices[k], column0, axis1],
            Tparams=i64,
            Tindices="dtype:int32",
            Taxis="dtype:int32",
            batch_dims=0,
        )
        empty = make.i64("empty", "Fill", [n, zero], index_type=i64)
        scattered = make.op(
            "value", "TensorScatterUpdate", [empty, rows, values[k]], T=i64, Tindices=i64
        )
        columns.append(make.i64("column", "Reshape", [scattered, as_column], Tshape="dtype:int32"))
        nothing = make.op(
            "nothing", "Fill", [n, make.const("false", False, np.bool_)], T=b, index_type=i64
        )
        hits = make.op(
            "hits",
            "OnesLike",
            [make.op("hit", "Cast", [values[k]], SrcT=i64, DstT=b, Truncate=False)],
            T=b,
        )
        here = make.op("here", "TensorScatterUpdate", [nothing, rows, hits], T=b, Tindices=i64)
        present = make.op("present", "LogicalAnd", [present, here]) if present else here
    return _RowCross(node, make, n, columns + list(dense), present)


def _hash_row_crosses(crosses: list[_RowCross]) -> list[str]:
    """Every row's hashed cross (``[N]`` int64, used where present), for each of ``crosses``.

    Crosses with as many columns share one hash chain (~22 uint64 nodes for two columns): their
    ``k``-th columns are concatenated into ``[N, G]`` and the chain's result split again by a
    gather per cross. Bit-exact, as :func:`_cross_hash`."""
    groups: dict[int, list[int]] = {}
    for i, cross in enumerate(crosses):
        groups.setdefault(len(cross.columns), []).append(i)
    hashed = [""] * len(crosses)
    for members in groups.values():
        make = crosses[members[0]].make
        axis1 = make.const("axis1", 1, np.int32)
        stacked = []
        for k in range(len(crosses[members[0]].columns)):
            parts = [crosses[i].columns[k] for i in members]
            if len(parts) == 1:
                stacked.append(parts[0])
                continue
            stacked.append(
                make.i64("stacked", "ConcatV2", [*parts, axis1], Tidx="dtype:int32", N=len(parts))
            )
        rows = _cross_hash(make, [crosses[i].node for i in members], stacked)
        for g, i in enumerate(members):
            own = make.const("cross", g, np.int32)
            hashed[i] = make.op(
                "hashed_rows",
                "GatherV2",
                [rows, own, axis1],
                Tparams="dtype:int64",
                Tindices="dtype:int32",
                Taxis="dtype:int32",
                batch_dims=0,
            )
    return hashed


def _lower_row_crosses(
    graph: ModelGraph, graph_def: Any, crosses: list[_RowCross], bypassed: set[str]
) -> None:
    """Replace each of ``crosses`` (:func:`_row_cross`) by its per-row form: a row crossed
    where every column is present, one entry per crossed row; the output shape is ``[N, 1]``,
    or ``[N, 0]`` when no row crosses. ~40 ONNX nodes fewer than the grid of
    :func:`_lower_sparse_cross` for two columns, and crosses of as many columns share their
    hash nodes (:func:`_hash_row_crosses`); bit-exact. An indicator column over a cross
    (:func:`_cross_indicators`) becomes one ``OneHot`` of the rows' crosses (``depth`` where
    absent), without the ``[N, W, depth]`` one-hot and its sum; those ``Sum`` nodes go in
    ``bypassed`` (removed once unread)."""
    i64, b = "dtype:int64", "dtype:bool"
    for cross, hashed_rows in zip(crosses, _hash_row_crosses(crosses), strict=True):
        make, node, n, present = cross.make, cross.node, cross.n, cross.present
        if not present:  # every column has a value in every row
            present = make.op(
                "present", "Fill", [n, make.const("true", True, np.bool_)], T=b, index_type=i64
            )
        crossed = make.op("crossed", "Where", [present], T=b)
        flat = make.const("flat", [-1], np.int32)
        at = make.i64("at", "Reshape", [crossed, flat], Tshape="dtype:int32")
        axis0, axis1 = make.const("axis0", 0, np.int32), make.const("axis1", 1, np.int32)
        hashed = make.op(
            "at_value",
            "GatherV2",
            [hashed_rows, at, axis0],
            Tparams=i64,
            Tindices=i64,
            Taxis="dtype:int32",
            batch_dims=0,
        )
        for total in _cross_indicators(graph, node):
            onehot = graph.nodes[node_name(total.input[0])]
            depth = int(resolve_const(graph, onehot.input[1]))
            ids = hashed_rows
            if cross.present:
                off = make.const("off", depth, np.int64)
                ids = make.i64("indicator_ids", "SelectV2", [present, hashed_rows, off])
            folded = make.op(
                "indicator",
                "OneHot",
                [ids, *onehot.input[1:4]],
                T=f"dtype:{_dtype_name(onehot.attr['T'].type)}",
                TI=i64,
                axis=-1,
            )
            rewire(graph_def, total.name, folded)
            bypassed.add(total.name)
        out_indices = make.i64(
            "indices",
            "ConcatV2",
            [crossed, make.i64("col", "ZerosLike", [crossed]), axis1],
            Tidx="dtype:int32",
            N=2,
        )
        count = make.op("count", "Cast", [present], SrcT=b, DstT=i64, Truncate=False)
        with_zero = make.i64(
            "with_zero",
            "ConcatV2",
            [count, make.const("none", [0], np.int64), axis0],
            Tidx="dtype:int32",
            N=2,
        )
        width = make.i64("width", "Max", [with_zero, axis0], Tidx="dtype:int32", keep_dims=True)
        shape = make.i64("shape", "ConcatV2", [n, width, axis0], Tidx="dtype:int32", N=2)
        _replace_cross_outputs(graph_def, node, out_indices, hashed, shape)


def _lower_sparse_cross(graph_def: Any, node: Any, names: set[str]) -> None:
    """A hashed ``SparseCross`` of sparse and/or dense int64 columns of any width (bit-exact).

    The kernel's columns are the sparse ones, then the dense ones; row ``b`` of the output holds
    the Cartesian product of the row's values in every column (the last column varying
    fastest), none when a column has no value in the row; the output's shape is ``[N, the
    largest product]`` with ``N`` the first column's batch size. Lowered as a grid: per column
    ``j < count(b)`` over ``[N, max count_1, ..., max count_K]``, its ``Where`` (row-major, so in
    the kernel's order) gives ``(b, j_1..j_K)``; column ``i``'s value is
    ``values_i[start_i(b) + j_i]``, the entry's position in its row the mixed-radix number of
    ``(j_1..j_K)`` over the row's counts. The grid holds ``N * prod(max counts)`` booleans.
    """
    make = NodeMaker(graph_def, names, node.name)
    n_sparse = len(node.attr["sparse_types"].list.type)
    inputs = [i for i in node.input if not i.startswith("^")]
    indices, values = inputs[:n_sparse], inputs[n_sparse : 2 * n_sparse]
    shapes, dense = inputs[2 * n_sparse : 3 * n_sparse], inputs[3 * n_sparse :]
    n = _element(make, "n", shapes[0] if shapes else _shape_of(make, dense[0]), 0)
    zero, one = make.const("zero", 0, np.int64), make.const("one", 1, np.int64)
    row_ids = make.op("range", "Range", [zero, n, one], Tidx="dtype:int64")
    zeros = make.i64("zeros", "ZerosLike", [row_ids])
    columns = [_sparse_column(make, i, v, n, zeros) for i, v in zip(indices, values, strict=True)]
    columns += [_dense_column(make, d, row_ids) for d in dense]
    k = len(columns)
    axis0 = make.const("axis0", 0, np.int32)
    valid = ""
    for i, column in enumerate(columns):
        widest = make.i64(
            "max",
            "Maximum",
            [
                make.op(
                    "widest",
                    "Max",
                    [column.counts, axis0],
                    T="dtype:int64",
                    Tidx="dtype:int32",
                    keep_dims=False,
                ),
                zero,
            ],
        )
        steps = make.op("steps", "Range", [zero, widest, one], Tidx="dtype:int64")
        grid = [1] * (k + 1)
        grid[i + 1] = -1
        j = make.i64(
            "j", "Reshape", [steps, make.const("grid", grid, np.int32)], Tshape="dtype:int32"
        )
        per_row = make.i64(
            "per_row",
            "Reshape",
            [column.counts, make.const("rows", [-1] + [1] * k, np.int32)],
            Tshape="dtype:int32",
        )
        inside = make.i64("inside", "Less", [j, per_row])
        valid = make.op("valid", "LogicalAnd", [valid, inside]) if valid else inside
    coords = make.op("coords", "Where", [valid], T="dtype:bool")
    axis1 = make.const("axis1", 1, np.int32)

    def gather(suffix: str, params: str, at: str, axis: str = axis0, index: str = "int64") -> str:
        return make.op(
            suffix,
            "GatherV2",
            [params, at, axis],
            Tparams="dtype:int64",
            Tindices=f"dtype:{index}",
            Taxis="dtype:int32",
            batch_dims=0,
        )

    rows = gather("b", coords, make.const("col0", 0, np.int32), axis1, "int32")
    crossed, position, product = [], "", ""
    for i, column in enumerate(columns):
        j = gather("j", coords, make.const("col", i + 1, np.int32), axis1, "int32")
        at = make.i64("at", "AddV2", [gather("start", column.starts, rows), j])
        crossed.append(gather("value", column.values, at))
        count = gather("count", column.counts, rows)
        position = (
            make.i64("pos", "AddV2", [make.i64("pos", "Mul", [position, count]), j])
            if position
            else j
        )
        product = make.i64("product", "Mul", [product, column.counts]) if product else column.counts
    hashed = _cross_hash(make, [node], crossed)
    out_indices = make.i64("indices", "Pack", [rows, position], N=2, axis=1)
    width = make.i64(
        "width",
        "Maximum",
        [
            make.op(
                "largest",
                "Max",
                [product, axis0],
                T="dtype:int64",
                Tidx="dtype:int32",
                keep_dims=False,
            ),
            zero,
        ],
    )
    shape = make.i64("shape", "Pack", [n, width], N=2, axis=0)
    _replace_cross_outputs(graph_def, node, out_indices, hashed, shape)


@dataclass(frozen=True)
class _SegmentLayout:
    """Tensors of a sorted segment reduction: ``data``'s shape, the output's shape
    ``[max(ids) + 1, *data.shape[1:]]``, the ids as ``[n, 1]`` int64 scatter indices, and the
    segment count ``[1]``."""

    data_shape: str
    out_shape: str
    where: str
    count: str
    row_shape: str


def _segment_layout(
    build: NodeMaker, data: str, ids: str, ids_dtype: str, dtype: str
) -> _SegmentLayout:
    """Add the nodes of :class:`_SegmentLayout` (no ids give 0 segments, like TensorFlow)."""
    const, op = build.const, build.op
    i64 = "dtype:int64"
    if ids_dtype != "int64":
        ids = op("ids", "Cast", [ids], SrcT=f"dtype:{ids_dtype}", DstT=i64, Truncate=False)
    axis0 = const("axis", 0, np.int32)
    # max(ids) + 1 segments; the appended -1 makes it 0 when there are no ids
    padded = op("padded", "ConcatV2", [ids, const("none", [-1], np.int64), axis0], T=i64, N=2)
    top = op("top", "Max", [padded, axis0], T=i64, Tidx="dtype:int32", keep_dims=True)
    count = op("count", "AddV2", [top, const("one", [1], np.int64)], T=i64)
    shape = op("shape", "Shape", [data], T=f"dtype:{dtype}", out_type=i64)
    # the dims after the first: Slice(shape, [1], [-1])
    begin, size = const("begin", [1], np.int32), const("size", [-1], np.int32)
    row = op("row_shape", "Slice", [shape, begin, size], T=i64, Index="dtype:int32")
    out_shape = op("out_shape", "ConcatV2", [count, row, axis0], T=i64, N=2)
    where = op("where", "ExpandDims", [ids, const("last", -1, np.int32)], T=i64, Tdim="dtype:int32")
    return _SegmentLayout(shape, out_shape, where, count, row)


def _float_data(node: Any) -> bool:
    """Whether ``node``'s data type ``T`` is a float type (the mean divides)."""
    return np.dtype(_dtype_name(node.attr["T"].type)).kind == "f"


def _lower_sparse_segment(graph_def: Any, node: Any, names: set[str]) -> None:
    """``SparseSegmentSum`` / ``SparseSegmentMean`` (a feature column's embedding combiner) as a
    gather and a ``TensorScatterAdd`` (ONNX ``ScatterND`` reduction add), the mean divided by
    the row count (at least 1: an empty segment gives 0, like TensorFlow). tf2onnx's own
    handler sorts and deduplicates the ids (``TopK``, ``Unique``, a padded grid): most of a
    sequence feature column's time at batch 256. Sums in the ids' order, like TensorFlow's
    kernel up to float reassociation."""
    dtype = _dtype_name(node.attr["T"].type)
    np_dtype = np.dtype(dtype)
    build = NodeMaker(graph_def, names, node.name)
    const, op = build.const, build.op
    data, indices, ids = node.input[0], node.input[1], node.input[2]
    idx_dtype = _dtype_name(node.attr["Tidx"].type) if "Tidx" in node.attr else "int32"
    seg_dtype = (
        _dtype_name(node.attr["Tsegmentids"].type) if "Tsegmentids" in node.attr else "int32"
    )
    i64, t = "dtype:int64", f"dtype:{dtype}"
    axis0 = const("gather_axis", 0, np.int32)
    rows = op(
        "rows",
        "GatherV2",
        [data, indices, axis0],
        Tparams=t,
        Tindices=f"dtype:{idx_dtype}",
        Taxis="dtype:int32",
        batch_dims=0,
    )
    layout = _segment_layout(build, rows, ids, seg_dtype, dtype)
    zeros = op("zeros", "Fill", [layout.out_shape, const("zero", 0, np_dtype)], T=t, index_type=i64)
    sums = op("sums", "TensorScatterAdd", [zeros, layout.where, rows], T=t, Tindices=i64)
    if node.op == "SparseSegmentSum":
        result_inputs, result_op = [sums], "Identity"
    else:
        n = op(
            "n",
            "Slice",
            [layout.data_shape, const("b0", [0], np.int32), const("s1", [1], np.int32)],
            T=i64,
            Index="dtype:int32",
        )
        ones = op("ones", "Fill", [n, const("unit", 1, np_dtype)], T=t, index_type=i64)
        none = op(
            "none_counted",
            "Fill",
            [layout.count, const("nought", 0, np_dtype)],
            T=t,
            index_type=i64,
        )
        counts = op("counts", "TensorScatterAdd", [none, layout.where, ones], T=t, Tindices=i64)
        denom = op("denom", "Maximum", [counts, const("floor", 1, np_dtype)], T=t)
        # [S] -> [S, 1, ...]: one 1 per dim after the first
        unit_dims = op("unit_dims", "OnesLike", [layout.row_shape], T=i64)
        axis_last = const("concat_axis", 0, np.int32)
        b_shape = op("denom_shape", "ConcatV2", [layout.count, unit_dims, axis_last], T=i64, N=2)
        wide = op("denom_wide", "Reshape", [denom, b_shape], T=t, Tshape=i64)
        result_inputs, result_op = [sums, wide], "RealDiv"
    _become(node, result_op, result_inputs, T=dtype)


def _lower_segment_reduce(graph_def: Any, node: Any, names: set[str]) -> None:
    """``SegmentMax`` / ``SegmentMin`` as a scatter with a max/min reduction (exact).

    tf2onnx's own handler fails on integer data (``iinfo(...).min.tolist()``, so the op is
    passed through and onnxruntime has no kernel) and gives ``-inf``/``+inf`` for an empty
    segment where TensorFlow gives 0. With sorted ids ``s`` over ``data`` ``[n, ...]``:
    ``out = TensorScatterMax(Fill([max(s) + 1, ...], lowest), s[:, None], data)`` (``highest``
    and ``TensorScatterMin`` for SegmentMin; ``lowest`` is ``-inf`` for floats, so a segment of
    ``-inf`` stays ``-inf``), and ``0`` where a scatter of ones marks the segment empty. No
    ids (``n == 0``) give ``[0, ...]``, like TensorFlow. ONNX ``ScatterND`` with a max/min
    reduction needs opset 18 (:data:`SEGMENT_OPSET`).
    """
    dtype = _dtype_name(node.attr["T"].type)
    np_dtype = np.dtype(dtype)
    is_max = node.op == "SegmentMax"
    if np_dtype.kind == "f":
        start = -np.inf if is_max else np.inf
    else:
        limits = np.iinfo(np_dtype)
        start = limits.min if is_max else limits.max
    data, ids = node.input[0], node.input[1]
    ids_dtype = _dtype_name(node.attr["Tindices"].type) if "Tindices" in node.attr else "int32"

    build = NodeMaker(graph_def, names, node.name)
    const, op = build.const, build.op

    i64, t = "dtype:int64", f"dtype:{dtype}"
    layout = _segment_layout(build, data, ids, ids_dtype, dtype)
    shape, out_shape, where = layout.data_shape, layout.out_shape, layout.where
    scatter = "TensorScatterMax" if is_max else "TensorScatterMin"
    start_fill = op(
        "start", "Fill", [out_shape, const("lowest", start, np_dtype)], T=t, index_type=i64
    )
    reduced = op("reduced", scatter, [start_fill, where, data], T=t, Tindices=i64)
    zeros = op("zeros", "Fill", [out_shape, const("zero", 0, np_dtype)], T=t, index_type=i64)
    ones = op("ones", "Fill", [shape, const("unit", 1, np_dtype)], T=t, index_type=i64)
    hits = op("hits", "TensorScatterMax", [zeros, where, ones], T=t, Tindices=i64)
    filled = op("filled", "Greater", [hits, zeros], T=t)
    _become(node, "SelectV2", [filled, reduced, zeros], T=dtype)


def _lower_unsorted_segment_sum(graph_def: Any, node: Any, names: set[str]) -> None:
    """``UnsortedSegmentSum(data, ids, num_segments)`` as ``TensorScatterAdd`` into zeros of
    shape ``[num_segments, *data.shape[rank(ids):]]``, with ``ids[..., None]`` as scatter
    indices. A negative id drops its value in TensorFlow: its rows are zeroed and sent to
    segment 0. tf2onnx's own handler sizes its output with ``ReduceMax(Unique(ids))``, which
    is negative when ``ids`` is empty (a batch where no row has a token)."""
    dtype = _dtype_name(node.attr["T"].type)
    np_dtype = np.dtype(dtype)
    ids_dtype = _dtype_name(node.attr["Tindices"].type)
    n_dtype = _dtype_name(node.attr["Tnumsegments"].type)
    make = NodeMaker(graph_def, names, node.name)
    const, op = make.const, make.op
    i64, t = "dtype:int64", f"dtype:{dtype}"
    data, ids, num = node.input[0], node.input[1], node.input[2]
    if ids_dtype != "int64":
        ids = op("ids", "Cast", [ids], SrcT=f"dtype:{ids_dtype}", DstT=i64, Truncate=False)
    if n_dtype != "int64":
        num = op("num", "Cast", [num], SrcT=f"dtype:{n_dtype}", DstT=i64, Truncate=False)
    axis0 = const("axis0", 0, np.int32)
    zero_id = const("zero_id", 0, np.int64)
    kept = op("kept", "GreaterEqual", [ids, zero_id], T=i64)
    safe_ids = op("safe_ids", "SelectV2", [kept, ids, op("id0", "ZerosLike", [ids], T=i64)], T=i64)
    # data's dims after the ids' dims, and the kept mask widened to data's rank
    data_shape = op("data_shape", "Shape", [data], T=t, out_type=i64)
    ids_shape = op("ids_shape", "Shape", [ids], T=i64, out_type=i64)
    ids_rank = op("ids_rank", "Size", [ids_shape], T=i64, out_type="dtype:int32")
    begin = op(
        "begin",
        "Reshape",
        [ids_rank, const("vec", [1], np.int32)],
        T="dtype:int32",
        Tshape="dtype:int32",
    )
    row = op(
        "row_shape",
        "Slice",
        [data_shape, begin, const("rest", [-1], np.int32)],
        T=i64,
        Index="dtype:int32",
    )
    units = op("units", "OnesLike", [row], T=i64)
    mask_shape = op("mask_shape", "ConcatV2", [ids_shape, units, axis0], T=i64, N=2)
    mask = op("mask", "Cast", [kept], SrcT="dtype:bool", DstT=t, Truncate=False)
    wide = op("mask_wide", "Reshape", [mask, mask_shape], T=t, Tshape=i64)
    updates = op("updates", "Mul", [data, wide], T=t)
    count = op("count", "Reshape", [num, const("one", [1], np.int32)], T=i64, Tshape="dtype:int32")
    out_shape = op("out_shape", "ConcatV2", [count, row, axis0], T=i64, N=2)
    zeros = op("zeros", "Fill", [out_shape, const("zero", 0, np_dtype)], T=t, index_type=i64)
    where = op(
        "where", "ExpandDims", [safe_ids, const("last", -1, np.int32)], T=i64, Tdim="dtype:int32"
    )
    _become(node, "TensorScatterAdd", [zeros, where, updates], T=dtype, Tindices="int64")


SEGMENT_LOWERINGS = frozenset({"SegmentMax", "SegmentMin"})
SPARSE_SEGMENT_LOWERINGS = frozenset({"SparseSegmentSum", "SparseSegmentMean"})
SEGMENT_OPSET = 18  # ScatterND with reduction max/min (add: 16)
#: Lowerings that write ONNX ScatterND with a reduction (they need SEGMENT_OPSET).
SCATTER_LOWERINGS = SEGMENT_LOWERINGS | SPARSE_SEGMENT_LOWERINGS | {"UnsortedSegmentSum"}


def _own_dim(graph: ModelGraph, tensor: str, x: str, position: int) -> bool:
    """Whether ``tensor`` is ``Shape(x)[position]`` (a scalar ``StridedSlice`` of ``x``'s shape)."""
    node = graph.nodes.get(node_name(tensor))
    if node is None or node.op != "StridedSlice" or len(node.input) != 4:
        return False
    masks = [node.attr[m].i for m in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask")]
    if node.attr["shrink_axis_mask"].i != 1 or any(masks):
        return False
    shape = graph.nodes.get(node_name(node.input[0]))
    if shape is None or shape.op != "Shape" or canonical_tensor(shape.input[0]) != x:
        return False
    begin, end, stride = (resolve_const(graph, i) for i in node.input[1:])
    if begin is None or end is None or stride is None:
        return False
    return (
        begin.tolist() == [position] and end.tolist() == [position + 1] and stride.tolist() == [1]
    )


def _is_self_reshape(graph: ModelGraph, node: Any, shapes: Mapping[str, Any]) -> bool:
    """Whether ``node`` is ``Reshape(x, Pack(x.shape[0], ..., c))``: x's own dims, in place.

    Every packed dim but at most one is ``Shape(x)[i]`` at position ``i``, the other a constant
    (equal to x's static dim there when that is known), and x's rank is the pack's length: a
    reshape that succeeds is then a no-op (its element count pins the constant dim) unless x is
    empty, where it would only relabel a zero-sized dim.
    """
    if node.op != "Reshape":
        return False
    x = canonical_tensor(node.input[0])
    pack = graph.nodes.get(node_name(node.input[1]))
    static = shapes.get(node_name(x)) if x.endswith(":0") else None
    if pack is None or pack.op != "Pack" or pack.attr["axis"].i != 0 or static is None:
        return False
    dims = [i for i in pack.input if not i.startswith("^")]
    if len(dims) != len(static):
        return False
    constant = [i for i, d in enumerate(dims) if not _own_dim(graph, d, x, i)]
    if len(constant) > 1:
        return False
    for i in constant:
        value = resolve_const(graph, dims[i])
        if value is None or value.ndim != 0 or static[i] not in (None, int(value)):
            return False
    return True


def _drop_self_reshapes(
    graph: ModelGraph, graph_def: Any, static: Callable[[], Mapping[str, Any]]
) -> int:
    """Turn every :func:`_is_self_reshape` node of ``graph_def`` into an ``Identity`` of its x.

    tf2onnx rewrites such a reshape as ``Reshape(x, [0, 0, c])`` (0: copy x's dim) and its
    back-to-back optimizer then merges it with a ``Reshape`` that made x, so the 0s copy the
    dims of the tensor *before* that one (a feature column's sequence embedding
    ``[N * T, D]`` -> ``[N, T, D]`` -> ``[N, T, D]`` fails in onnxruntime as a reshape of
    ``[N * T, D]`` to ``[N * T, D, D]``). Dropping the no-op reshape first avoids it.

    ``static`` gives the static shapes (asked only when a candidate's shape is packed).

    Returns:
        Reshapes dropped.
    """
    candidates = [
        n for n in graph_def.node if n.op == "Reshape" and graph.nodes.get(node_name(n.input[1]))
    ]
    if not any(graph.nodes[node_name(n.input[1])].op == "Pack" for n in candidates):
        return 0
    shapes = static()
    dropped = 0
    for node in candidates:
        if not _is_self_reshape(graph, graph.nodes[node.name], shapes):
            continue
        x = node.input[0]
        del node.input[:]
        node.input.append(x)
        node.op = "Identity"
        for attr in [a for a in node.attr if a != "T"]:
            del node.attr[attr]
        dropped += 1
    return dropped


def lower_for_onnx(graph: ModelGraph) -> tuple[ModelGraph, dict[str, int]]:
    """``Bucketize``, integer-keyed lookup tables, ``Log1p``/``Expm1`` rewritten for tf2onnx.

    Args:
        graph: a graph with no blockers (see :func:`find_onnx_blockers`).

    Returns:
        (the lowered graph, op type -> nodes lowered).
    """
    lowered: Counter[str] = Counter()
    graph, fused = fuse_sparse_poolings(graph)
    lowered.update(fused)
    gd = graph.copy_graph_def()
    names = {n.name for n in gd.node}
    table_refs: set[str] = set()
    unread: set[str] = set()  # nodes whose readers were moved to their inputs
    known_shapes: list[dict[str, Any]] = []  # the static shapes, once something needs them

    def shapes() -> dict[str, Any]:
        if not known_shapes:
            known_shapes.append(static_shapes(graph))
        return known_shapes[0]

    row_crosses: list[_RowCross] = []  # lowered together: they share their hash nodes
    for node in list(gd.node):
        if node.op == "Bucketize":
            _lower_bucketize(gd, node, names)
            lowered["Bucketize"] += 1
        elif node.op == "OneHot":
            _lower_one_hot(graph, gd, node, names)
            lowered["OneHot"] += 1
        elif node.op == "SparseReshape":
            if _lower_sparse_reshape(graph, gd, node, names):
                unread.add(node.name)
            lowered["SparseReshape"] += 1
        elif node.op in UNARY_LOWERINGS:
            lowered[node.op] += 1
            _lower_unary(gd, node, names)
        elif node.op in SEGMENT_LOWERINGS:
            lowered[node.op] += 1
            _lower_segment_reduce(gd, node, names)
        elif node.op in SPARSE_SEGMENT_LOWERINGS and _float_data(node):
            lowered[node.op] += 1
            _lower_sparse_segment(gd, node, names)
        elif node.op == "UnsortedSegmentSum":
            lowered[node.op] += 1
            _lower_unsorted_segment_sum(gd, node, names)
        elif node.op in CROSS_OPS and _lowerable_cross(node):
            one_value = _one_value_cross(graph, graph.nodes[node.name])
            if one_value and not _cross_indicators(graph, node):
                _lower_cross(gd, node, names)
            elif one_value or one_per_row_cross(graph, graph.nodes[node.name], shapes()):
                # the per-row form, which also folds an indicator column over the cross
                row_crosses.append(_row_cross(graph, gd, node, names, shapes()))
            else:
                _lower_sparse_cross(gd, node, names)
            lowered[node.op] += 1
        elif node.op in ("LookupTableFindV2",) and _lowerable_table(graph, graph.nodes[node.name]):
            table_refs.add(node_name(node.input[0]))
            _lower_table(graph, gd, node, names, shapes)
            lowered["LookupTableFindV2"] += 1
    if row_crosses:
        _lower_row_crosses(graph, gd, row_crosses, unread)
    # NoOps that only ordered the lookups keep control edges to the table handles: drop them
    for node in gd.node:
        if node.op == "NoOp":
            kept = [i for i in node.input if node_name(i) not in table_refs]
            del node.input[:]
            node.input.extend(kept)
    self_reshapes = _drop_self_reshapes(graph, gd, shapes)
    if self_reshapes:
        lowered["Reshape"] += self_reshapes
    crosses = {n.name for n in gd.node if n.op in CROSS_OPS and lowered.get(n.op)}
    remove_if_unread(gd, table_refs | crosses | unread, protected_nodes(graph))
    present = {n.name for n in gd.node}
    tables = {k: v for k, v in graph.tables.items() if k in present}
    return graph.replace(graph_def=gd, tables=tables), dict(lowered)


# --------------------------------------------------------------------------- conversion
def _require_onnx() -> tuple[Any, Any, Any]:
    try:
        import onnx
        import onnxruntime
        import tf2onnx
    except ImportError as e:
        raise ExportError(
            f"ONNX export needs tf2onnx, onnx and onnxruntime ({e.name} is missing); "
            "pip install 'recadvisor[onnx]'"
        ) from e
    return tf2onnx, onnx, onnxruntime


def ort_feeds(graph: ModelGraph, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Feeds cast to the signature dtypes; strings as object arrays of ``str`` (never ``|S``)."""
    out: dict[str, np.ndarray] = {}
    for key, info in graph.signature.inputs.items():
        value = np.asarray(feeds[key])
        if info.dtype == "string":
            flat = [
                v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.reshape(-1)
            ]
            out[key] = np.array(flat, dtype=object).reshape(value.shape)
        else:
            out[key] = value.astype(np.dtype(info.dtype))
    return out


def _with_named_outputs(graph: ModelGraph) -> tuple[Any, dict[str, str]]:
    """A GraphDef copy for tf2onnx: one Identity per output (so two outputs never share a tensor)
    and no ``_``-prefixed annotation attributes."""
    gd = graph.copy_graph_def()
    for node in gd.node:  # grappler annotations (_input_shapes...) trip tf2onnx's attr parsing
        for attr in [a for a in node.attr if a.startswith("_")]:
            del node.attr[attr]
    names = {n.name for n in gd.node}
    out_names: dict[str, str] = {}
    dtypes = {k: v.dtype for k, v in graph.signature.outputs.items()}
    for key, tensor in graph.output_tensors.items():
        src = graph.nodes[node_name(tensor)]
        dtype_enum = None
        for attr in ("T", "dtype", "DstT", "Tout", "out_type"):
            if attr in src.attr and src.attr[attr].type:
                dtype_enum = src.attr[attr].type
                break
        dtype = dtypes.get(key) or (_dtype_name(dtype_enum) if dtype_enum else "float32")
        name = reserve_name(names, f"onnx_output/{key}")
        add_node(gd, name, "Identity", [tensor], T=f"dtype:{dtype}")
        out_names[key] = name + ":0"
    return gd, out_names


def _drop_unread_inputs(gd: Any, graph: ModelGraph) -> list[str]:
    """Remove the placeholders of signature inputs no node reads (e.g. a declared ``request_id``)
    from ``gd``, in place: the ONNX model then does not take them, so a string input nobody
    reads does not stop onnxruntime from binding the numeric inputs once.

    Args:
        gd: the GraphDef handed to tf2onnx (edited in place).
        graph: the graph it was copied from (for the signature's input nodes).

    Returns:
        The signature keys the ONNX model takes, in signature order.
    """
    referenced = {node_name(inp) for n in gd.node for inp in n.input}  # data and control edges
    kept: list[str] = []
    unread: set[str] = set()
    for key, node in graph.input_nodes.items():
        if node in referenced:
            kept.append(key)
        else:
            unread.add(node)
    if unread:
        remaining = [n for n in gd.node if n.name not in unread]
        del gd.node[:]
        gd.node.extend(remaining)
    return kept


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_onnx(
    graph: ModelGraph,
    path: str | Path,
    feeds: Mapping[str, Any],
    opset: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    force: bool = False,
    cleanup: bool = True,
) -> OnnxExportResult:
    """Write ``graph`` as an ONNX model, checked against TensorFlow on ``feeds``.

    Args:
        graph: a rebuilt graph (string-free; see :func:`find_onnx_blockers`).
        path: the ``.onnx`` file to write.
        feeds: sample inputs in the graph's contract (signature key -> array).
        opset: ONNX opset (default: tf2onnx's preferred one).
        tolerance: largest max-abs-diff accepted between TensorFlow and onnxruntime.
        force: replace an existing file.
        cleanup: run :func:`~recadvisor.model.onnx_optimize.optimize_onnx` on tf2onnx's output
            (the cleaned model is the one checked and written).

    Returns:
        An :class:`OnnxExportResult`.

    Raises:
        ExportError: strings remain (the message names the ops, the inputs and the plan entry
            that removes them), the ONNX packages are missing, conversion fails, or
            onnxruntime's outputs differ beyond ``tolerance`` (then nothing is written).
        OutputExistsError: ``path`` exists and ``force`` is false.
    """
    out_path = Path(path)
    if out_path.exists() and not force:
        raise OutputExistsError(f"'{out_path}' already exists; pass --force to replace it")
    blockers = find_onnx_blockers(graph)
    if blockers:
        raise ExportError(blockers_message(blockers))
    missing = [k for k in graph.signature.inputs if k not in feeds]
    if missing:
        raise ExportError(f"ONNX parity check needs sample values for inputs {missing}")
    tf2onnx, onnx, ort = _require_onnx()
    lowered_graph, lowered = lower_for_onnx(graph)
    lowered_crosses = any(op in CROSS_OPS for op in lowered)
    min_opset = max(
        CROSS_OPSET if lowered_crosses else 0,
        SEGMENT_OPSET if SCATTER_LOWERINGS & set(lowered) else 0,
    )
    gd, out_tensors = _with_named_outputs(lowered_graph)
    input_keys = list(graph.signature.inputs)
    onnx_keys = _drop_unread_inputs(gd, lowered_graph)
    output_keys = list(graph.output_tensors)
    # an output named like an input (a signature may return a feature it reads) gets a
    # ``:output`` suffix: ONNX names are unique, and readers strip what follows ``:``
    onnx_out = {k: f"{k}:output" if k in onnx_keys else k for k in output_keys}
    rename = {graph.input_tensors[k]: k for k in onnx_keys}
    rename.update({out_tensors[k]: onnx_out[k] for k in output_keys})
    tf_loader_log = logging.getLogger("tf2onnx")
    previous = tf_loader_log.level
    tf_loader_log.setLevel(logging.ERROR)
    try:
        model, _ = tf2onnx.convert.from_graph_def(
            gd,
            name=graph.signature.key,
            input_names=[graph.input_tensors[k] for k in onnx_keys],
            output_names=[out_tensors[k] for k in output_keys],
            opset=max(opset or 0, min_opset) if min_opset else opset,
            tensors_to_rename=rename,
        )
    except Exception as e:  # noqa: BLE001 - tf2onnx raises assorted types
        raise ExportError(
            f"tf2onnx could not convert '{graph.signature.key}': "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from e
    finally:
        tf_loader_log.setLevel(previous)
    cleanup_summary: dict[str, Any] = {}
    if cleanup:
        from recadvisor.model.onnx_optimize import optimize_onnx

        model, cleaned = optimize_onnx(model)
        cleanup_summary = cleaned.to_dict()
    data = model.SerializeToString()
    try:
        onnx.checker.check_model(model)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnx/onnxruntime raise assorted types
        ops = sorted({n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx")})
        hint = f" (unconverted ops: {', '.join(ops)})" if ops else ""
        raise ExportError(
            f"the converted ONNX model does not load in onnxruntime{hint}: {str(e).splitlines()[0]}"
        ) from e

    tf_out = GraphRunner(graph)({k: np.asarray(feeds[k]) for k in input_keys})
    model_inputs = [i.name for i in session.get_inputs()]
    ort_in = {k: v for k, v in ort_feeds(graph, feeds).items() if k in model_inputs}
    try:
        ort_run = session.run([onnx_out[k] for k in output_keys], ort_in)
        ort_out = dict(zip(output_keys, ort_run, strict=True))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
        raise ExportError(
            f"the converted ONNX model fails on the sample rows in onnxruntime: "
            f"{str(e).splitlines()[0]}; model.onnx not written"
        ) from e
    checked = compare_outputs(tf_out, ort_out, tolerance, outputs=output_keys)
    for out in checked.outputs:
        if not out.shape_match:
            raise ExportError(
                f"ONNX output '{out.key}' does not match TensorFlow's ({out.note}); "
                "model.onnx not written"
            )
    parity = {o.key: o.max_abs_diff for o in checked.outputs}
    worst = checked.max_abs_diff
    if not checked.passed:
        raise ExportError(
            f"onnxruntime differs from TensorFlow by {worst:.3g} > {tolerance:g} "
            f"({', '.join(f'{k}: {v:.3g}' for k, v in parity.items())}); model.onnx not written"
        )
    _write_atomic(out_path, data)
    opset_used = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    # the longest batch: per-request inputs are given once next to N candidate rows
    rows = max(
        (int(np.asarray(feeds[k]).shape[0]) for k in input_keys if np.ndim(feeds[k])), default=0
    )
    log.info("ONNX export: %s, max abs diff %.3g", out_path, worst)
    return OnnxExportResult(
        path=str(out_path),
        opset=int(opset_used),
        inputs=tuple(model_inputs),
        outputs=tuple(output_keys),
        lowered=lowered,
        parity=parity,
        max_abs_diff=worst,
        tolerance=tolerance,
        rows=rows,
        onnx_ops=dict(Counter(n.op_type for n in model.graph.node).most_common()),
        size_bytes=len(data),
        versions={
            "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
        },
        cleanup=cleanup_summary,
    )
