"""Graph queries the layers share: pass-through ops, walks from an input, an input's sub-graph.

One definition of "an op that passes values through" for the detectors, the rewrite passes and
the ONNX lowering (``model/`` imports neither ``rewrite/`` nor ``analysis/``; they import this):

* :data:`IDENTITY_OPS`, :data:`RESHAPE_OPS`, :data:`SLICE_OPS`, :data:`SHAPE_READERS`: the
  building blocks;
* :data:`VALUE_SELECTING_OPS`: ops that select or repeat a tensor's values through their first
  input (the feature-column sparse path gathers the non-ignored values with ``GatherNd``);
* :data:`VALUE_PRESERVING_OPS` / :data:`ID_PRESERVING_OPS`: followed when tracing a tensor back
  to the node that produced its values (ids back to their hash or lookup);
* :data:`CROSS_OPS`: hashed feature crosses;
* :data:`READ_THROUGH_OPS`: what stands between a weight and its readers in a frozen graph;
* :func:`walk_passthrough` (input -> the readers that end its pass-through chain, i.e. the
  transforms that turn it into ids), :func:`walk_data_edges`, :func:`input_subgraph`;
* :func:`embedding_tables`: every constant read as the params of a gather, with each gather, its
  ids tensor, the inputs feeding it and the node that makes the ids (hash, lookup, input);
  :func:`rewritable_tables` narrows them to the tables a pass can edit in place.
* :func:`static_shapes`: TensorFlow's static shape of every node's first output;
  :func:`shape_element` / :func:`sparse_reshape_to_own_2d`: which element of a shape vector a
  scalar reads, and a ``SparseReshape`` of 2-D ids onto their own shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from recadvisor.model.graph import (
    GATHER_OPS,
    ModelGraph,
    canonical_tensor,
    is_control_input,
    node_name,
    source_through,
)
from recadvisor.tfimport import import_tf

Shape = tuple[int | None, ...]

# Ops that pass a tensor through unchanged (value and, for Identity, shape).
IDENTITY_OPS = frozenset({"Identity", "Snapshot", "StopGradient", "PreventGradient"})
# Ops that change only the shape of a tensor, never its values' order or meaning.
RESHAPE_OPS = frozenset({"Reshape", "Squeeze", "ExpandDims"})
# Ops that select some of a tensor's values without changing them.
SLICE_OPS = frozenset({"StridedSlice", "Slice"})
# Ops that read only a tensor's shape.
SHAPE_READERS = frozenset({"Shape", "Size", "Rank", "ShapeN"})
# Ops that select or repeat a tensor's values (through input 0) without changing them.
VALUE_SELECTING_OPS = SLICE_OPS | frozenset({"GatherNd", "GatherV2", "Tile", "Transpose"})
# Ops that pass values through unchanged up to shape/dtype: followed when tracing sources.
VALUE_PRESERVING_OPS = (
    IDENTITY_OPS
    | RESHAPE_OPS
    | frozenset({"IdentityN", "EnsureShape", "CheckNumerics", "Cast", "ReadVariableOp"})
)
# Ops that select or rearrange ids without changing them: followed from a gather's indices back
# to the hash / lookup that produced them.
ID_PRESERVING_OPS = (
    VALUE_PRESERVING_OPS
    | SLICE_OPS
    | frozenset({"Tile", "Transpose", "BroadcastTo", "Unpack", "SplitV", "ReverseV2"})
)
# Hashed feature crosses (Keras HashedCrossing, feature columns' crossed_column).
CROSS_OPS = frozenset({"SparseCross", "SparseCrossHashed", "SparseCrossV2"})
# Ops between a weight (variable or frozen Const) and its readers that change nothing, not even
# the shape: a gather reading a table through only these can be pointed at a new table.
READ_THROUGH_OPS = IDENTITY_OPS | frozenset({"IdentityN", "ReadVariableOp"})
# Gathers whose indices are row numbers of their params along axis 0 (when ``axis`` is 0).
ROW_GATHER_OPS = frozenset({"GatherV2", "Gather", "ResourceGather"})
# Dtypes of the tables the rewrite passes edit in place (int8: a quantized table).
REWRITABLE_TABLE_DTYPES = frozenset({"float32", "float16", "float64", "int8"})


def walk_data_edges(
    graph: ModelGraph, start: str, follow: Callable[[Any, int, str], bool]
) -> tuple[set[str], list[tuple[str, int, str]]]:
    """Walk the data edges leaving ``start``, going on through the readers ``follow`` accepts.

    Args:
        graph: the graph.
        start: the node whose outputs are followed.
        follow: ``follow(reader_node, input_position, input_string)``: whether the walk goes on
            through this reader.

    Returns:
        (the nodes visited, ``start`` included; the edges not followed as (reader, input
        position, input string), in walk order).
    """
    stopped: list[tuple[str, int, str]] = []
    frontier = [start]
    seen: set[str] = set()
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        for reader in dict.fromkeys(graph.consumers.get(current, [])):
            node = graph.nodes[reader]
            for pos, inp in enumerate(node.input):
                if is_control_input(inp) or node_name(inp) != current:
                    continue
                if follow(node, pos, inp):
                    frontier.append(reader)
                else:
                    stopped.append((reader, pos, inp))
    return seen, stopped


def reads_later_output(inp: str) -> bool:
    """Whether an input string names an output other than 0 (``x:1``)."""
    return inp.rpartition(":")[2].isdigit() and not inp.endswith(":0")


def walk_passthrough(
    graph: ModelGraph, start: str, extra_ops: frozenset[str] = frozenset()
) -> tuple[set[str], set[str], list[tuple[str, int]]]:
    """Follow a tensor through Identity/Reshape-like nodes that keep its values.

    This is the "input -> transforms" query: the terminals are the readers that transform the
    input (a hash, a lookup, a cross, a comparison, or a plain numeric use).

    Args:
        graph: the graph.
        start: the node whose output 0 is followed (e.g. an input placeholder).
        extra_ops: more op types to follow through their input 0 (e.g.
            :data:`VALUE_SELECTING_OPS`).

    Returns:
        (pass-through nodes, ``Shape``-like readers, terminal (reader, input position) pairs).
    """
    chain: set[str] = set()

    def follow(node: Any, pos: int, inp: str) -> bool:
        keeps_values = node.op in IDENTITY_OPS or node.op in RESHAPE_OPS or node.op in extra_ops
        if reads_later_output(inp) or node.op in SHAPE_READERS or pos != 0 or not keeps_values:
            return False
        chain.add(node.name)
        return True

    _, stopped = walk_data_edges(graph, start, follow)
    shape_readers = {
        reader
        for reader, _, inp in stopped
        if not reads_later_output(inp) and graph.nodes[reader].op in SHAPE_READERS
    }
    terminals = [
        (reader, pos)
        for reader, pos, inp in stopped
        if reads_later_output(inp) or graph.nodes[reader].op not in SHAPE_READERS
    ]
    return chain, shape_readers, terminals


def input_subgraph(graph: ModelGraph, key: str) -> set[str]:
    """The nodes whose data ancestry holds signature input ``key`` (its sub-graph).

    Args:
        graph: the graph.
        key: a signature input key.

    Returns:
        Node names, the input's placeholder included.
    """
    return {name for name, feats in graph.features_of_node.items() if key in feats}


def trace_back(
    graph: ModelGraph, tensor: str, through: frozenset[str] = VALUE_PRESERVING_OPS
) -> str:
    """Follow a tensor up through ``through`` ops (first data input) to the node making its values.

    Args:
        graph: the graph.
        tensor: a tensor (or node) name.
        through: op types to walk through.

    Returns:
        The first node that is not one of ``through`` (or a missing node's name).
    """
    return source_through(graph.nodes, tensor, through)


def gather_axis(graph: ModelGraph, gather: Any) -> int | None:
    """The constant axis a gather-like node reads its params along (None: not a row gather).

    ``Gather``, ``ResourceGather`` and the sparse segment reductions read rows (0); ``GatherNd``
    reads index tuples (None); ``GatherV2`` reads along its ``axis`` input when it is a constant
    and ``batch_dims`` is 0.
    """
    if gather.op in ("GatherNd", "ResourceGatherNd"):
        return None
    if gather.op != "GatherV2":
        return 0
    if gather.attr["batch_dims"].i != 0:
        return None
    inputs = [i for i in gather.input if not is_control_input(i)]
    if len(inputs) < 3:
        return 0
    src = graph.nodes.get(trace_back(graph, inputs[2]))
    if src is None or src.op != "Const":
        return None
    axis = np.asarray(import_tf().make_ndarray(src.attr["value"].tensor)).reshape(-1)
    return int(axis[0]) if axis.size == 1 else None


def _const_value(graph: ModelGraph, tensor: str) -> np.ndarray | None:
    """A constant's value (through Identity), else None."""
    src = graph.nodes.get(trace_back(graph, tensor, IDENTITY_OPS))
    if src is None or src.op != "Const":
        return None
    return np.asarray(import_tf().make_ndarray(src.attr["value"].tensor))


def _const_ints(graph: ModelGraph, tensor: str) -> list[int] | None:
    """A constant integer tensor's values as a flat list, else None."""
    value = _const_value(graph, tensor)
    if value is None or value.dtype.kind not in "iu":
        return None
    return [int(v) for v in value.reshape(-1)]


def tensor_through(graph: ModelGraph, tensor: str, through: frozenset[str] = IDENTITY_OPS) -> str:
    """``tensor`` as ``node:i``, followed up through ``through`` ops' first input (unlike
    :func:`trace_back`, the output index is kept)."""
    current = canonical_tensor(tensor)
    for _ in range(256):
        node = graph.nodes.get(node_name(current))
        if node is None or node.op not in through or not node.input:
            break
        current = canonical_tensor(node.input[0])
    return current


def shape_element(graph: ModelGraph, tensor: str, shape: str) -> int | None:
    """Which element of the shape vector ``shape`` the scalar ``tensor`` is (through Identity
    and Cast): ``shape[k]`` by ``GatherV2`` or a shrinking ``StridedSlice``, or element 0 as
    ``Prod(Slice(shape, [0], [1]))``; else None."""
    through = IDENTITY_OPS | {"Cast"}
    shape = tensor_through(graph, shape, through)
    node = graph.nodes.get(node_name(tensor_through(graph, tensor, through)))
    if node is None or len(node.input) < 2:
        return None
    if node.op == "Prod" and _const_ints(graph, node.input[1]) == [0]:
        part = graph.nodes.get(node_name(tensor_through(graph, node.input[0], through)))
        if part is None or part.op != "Slice" or len(part.input) < 3:
            return None
        begin, size = (_const_ints(graph, i) for i in part.input[1:3])
        same = tensor_through(graph, part.input[0], through) == shape
        return 0 if same and begin == [0] and size == [1] and not node.attr["keep_dims"].b else None
    if tensor_through(graph, node.input[0], through) != shape:
        return None
    if node.op == "GatherV2" and len(node.input) >= 3:
        k = _const_value(graph, node.input[1])
        scalar = k is not None and k.ndim == 0 and k.dtype.kind in "iu"
        if not scalar or node.attr["batch_dims"].i != 0 or _const_ints(graph, node.input[2]) != [0]:
            return None
        return int(k)
    if node.op == "StridedSlice" and node.attr["shrink_axis_mask"].i == 1:
        begin, end, stride = (_const_ints(graph, i) for i in node.input[1:4])
        masks = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask")
        if any(node.attr[m].i for m in masks) or stride != [1] or not begin or len(begin) != 1:
            return None
        return begin[0] if end == [begin[0] + 1] else None
    return None


def sparse_reshape_to_own_2d(graph: ModelGraph, node: Any) -> bool:
    """Whether ``SparseReshape(indices, shape, new_shape)`` has ``new_shape = [shape[0],
    shape[1]]``, each read from its own ``shape`` input (:func:`shape_element`), as
    ``safe_embedding_lookup_sparse`` flattens the leading dimensions of 2-D ids: when ``shape``
    has two elements, it returns its inputs unchanged."""
    if node.op != "SparseReshape" or len(node.input) < 3:
        return False
    pack = graph.nodes.get(node_name(tensor_through(graph, node.input[2], IDENTITY_OPS | {"Cast"})))
    if pack is None or pack.op != "Pack" or int(pack.attr["N"].i) != 2:
        return False
    return [shape_element(graph, i, node.input[1]) for i in pack.input[:2]] == [0, 1]


@dataclass(frozen=True)
class TableGather:
    """One gather reading an embedding table.

    Attributes:
        node: the gather node.
        op: its op type.
        indices: its ids tensor (``node:k``).
        axis: the axis it reads along (:func:`gather_axis`; 0 for row reads).
        direct: it reads the table through :data:`READ_THROUGH_OPS` only (no Reshape or Cast).
        features: signature inputs in the ids' ancestry.
        id_source: the node that makes the ids (a hash, a lookup, a cross or the input itself),
            found by walking back from ``indices`` through :data:`ID_PRESERVING_OPS`.
    """

    node: str
    op: str
    indices: str
    axis: int | None
    direct: bool
    features: frozenset[str]
    id_source: str


@dataclass(frozen=True)
class EmbeddingTable:
    """A ``Const`` read as the params of gathers (through value-preserving ops).

    Attributes:
        const: the Const node name.
        shape: its shape (rows, dim...).
        dtype: its numpy dtype name.
        nbytes: size of its values.
        reads: the gathers reading it, by node name.
        other_readers: (reader, input position) of the uses that are not a gather's params.
        reaches_output: the table's value (or a reshape of it) is a signature output.
    """

    const: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    reads: tuple[TableGather, ...]
    other_readers: tuple[tuple[str, int], ...] = ()
    reaches_output: bool = False

    @property
    def gathers(self) -> tuple[str, ...]:
        """The gather node names, sorted."""
        return tuple(g.node for g in self.reads)

    @property
    def features(self) -> tuple[str, ...]:
        """Signature inputs whose ids index this table, sorted."""
        return tuple(sorted(frozenset().union(*(g.features for g in self.reads))))

    @property
    def rewritable(self) -> bool:
        """Whether passes may replace the table in place: rank >= 2, a float (or int8) dtype,
        read only by direct row gathers along axis 0 and never an output."""
        return (
            len(self.shape) >= 2
            and self.dtype in REWRITABLE_TABLE_DTYPES
            and not self.other_readers
            and not self.reaches_output
            and all(g.direct and g.op in ROW_GATHER_OPS and g.axis == 0 for g in self.reads)
        )


def _const_dtype(node: Any) -> str:
    try:
        return import_tf().dtypes.as_dtype(node.attr["dtype"].type).name
    except TypeError:
        return "unknown"


def _table_of(graph: ModelGraph, const: str, gathers: list[str]) -> EmbeddingTable:
    """The :class:`EmbeddingTable` of ``const``, read as params by ``gathers`` (graph order)."""
    node = graph.nodes[const]
    reads = []
    for name in sorted(gathers):
        gather = graph.nodes[name]
        chain = []
        current = node_name(gather.input[0])
        while current != const:
            chain.append(graph.nodes[current].op)
            current = node_name(graph.nodes[current].input[0])
        indices = gather.input[1]
        reads.append(
            TableGather(
                node=name,
                op=gather.op,
                indices=canonical_tensor(indices),
                axis=gather_axis(graph, gather),
                direct=all(op in READ_THROUGH_OPS for op in chain),
                features=graph.features_of_node.get(node_name(indices), frozenset()),
                id_source=trace_back(graph, indices, ID_PRESERVING_OPS),
            )
        )
    seen, stopped = walk_data_edges(
        graph, const, lambda n, pos, _inp: pos == 0 and n.op in VALUE_PRESERVING_OPS
    )
    others = tuple(
        (reader, pos) for reader, pos, _ in stopped if not (pos == 0 and reader in gathers)
    )
    tensor = node.attr["value"].tensor
    shape = tuple(int(d.size) for d in tensor.tensor_shape.dim)
    return EmbeddingTable(
        const=const,
        shape=shape,
        dtype=_const_dtype(node),
        nbytes=graph.const_bytes(const),
        reads=tuple(reads),
        other_readers=others,
        reaches_output=bool(set(graph.output_nodes.values()) & seen),
    )


def embedding_tables(graph: ModelGraph) -> dict[str, EmbeddingTable]:
    """Every ``Const`` read as the params of a gather-like op (:data:`GATHER_OPS`).

    The params are followed up through :data:`VALUE_PRESERVING_OPS`; whatever the rank or dtype
    (callers filter: the inventory lists rank-2 tables, the detectors float tables of rank 1 or
    2, the passes :attr:`EmbeddingTable.rewritable` ones). Memoized on the graph object like its
    ``cached_property`` index (a ``graph.replace(...)`` copy starts without it).

    Args:
        graph: the graph.

    Returns:
        Const node name -> :class:`EmbeddingTable`, in the order their first gather appears.
    """
    key = "_recadvisor_embedding_tables"
    cached = graph.__dict__.get(key)
    if cached is not None:
        return cached
    readers: dict[str, list[str]] = {}
    for node in graph.graph_def.node:
        data = [i for i in node.input if not is_control_input(i)]
        if node.op not in GATHER_OPS or len(data) < 2:
            continue
        src = trace_back(graph, data[0])
        if src in graph.nodes and graph.nodes[src].op == "Const":
            readers.setdefault(src, []).append(node.name)
    tables = {const: _table_of(graph, const, gathers) for const, gathers in readers.items()}
    graph.__dict__[key] = tables
    return tables


def rewritable_tables(graph: ModelGraph, min_rows: int = 2) -> dict[str, EmbeddingTable]:
    """The :attr:`EmbeddingTable.rewritable` tables of at least ``min_rows`` rows, graph order.

    Args:
        graph: the graph to search.
        min_rows: smallest table considered.

    Returns:
        Const node name -> :class:`EmbeddingTable`.
    """
    found = embedding_tables(graph)
    return {
        node.name: found[node.name]
        for node in graph.graph_def.node
        if node.name in found
        and found[node.name].rewritable
        and found[node.name].shape[0] >= min_rows
    }


def describe_table(graph: ModelGraph, table: EmbeddingTable) -> str:
    """``name [rows x dim] (features)`` for notes and messages (the variable's name)."""
    feats = table.features
    shape = "x".join(str(d) for d in table.shape)
    return f"{graph.table_name(table.const)} [{shape}]" + (
        f" ({', '.join(feats)})" if feats else ""
    )


def static_shapes(graph: ModelGraph) -> dict[str, Shape | None]:
    """Static shape of every node's output 0 (``None`` when the rank is unknown).

    The frozen graph is imported into a scratch ``tf.Graph``, whose shape inference reads the
    placeholders' declared shapes and the constants.
    """
    tf = import_tf()
    with tf.Graph().as_default() as scratch:
        tf.graph_util.import_graph_def(graph.graph_def, name="")
    shapes: dict[str, Shape | None] = {}
    for op in scratch.get_operations():
        if not op.outputs:
            continue
        shape = op.outputs[0].shape
        shapes[op.name] = None if shape.rank is None else tuple(shape.as_list())
    return shapes
