"""GraphDef editing primitives shared by the contract-changing and embedding-table passes.

Frozen graphs read a variable through a chain of ``Identity`` nodes (``Func/.../input/_3``,
``ReadVariableOp``) ending at a ``Const``; an embedding table is such a ``Const`` (rank 2, float)
whose every reader is a gather along axis 0. These helpers find those tables, read and write
constants, rewire tensors, delete nodes (cascading to producers nobody reads any more) and run a
graph to read intermediate tensors on sample inputs ("probing").

Nothing here mutates a :class:`ModelGraph`: functions that edit take a ``GraphDef`` copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recadvisor.errors import RewriteError
from recadvisor.model.graph import ModelGraph, is_control_input, node_name, source_through
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)

# Ops that pass a tensor through unchanged (value and, for Identity, shape).
IDENTITY_OPS = frozenset({"Identity", "Snapshot", "StopGradient", "PreventGradient"})
# Ops that change only the shape of a tensor, never its values' order or meaning.
RESHAPE_OPS = frozenset({"Reshape", "Squeeze", "ExpandDims"})
GATHER_V2_OPS = frozenset({"GatherV2", "Gather", "ResourceGather"})
# Ops that select some of a tensor's values without changing them.
SLICE_OPS = frozenset({"StridedSlice", "Slice"})
# Ops that read only a tensor's shape.
SHAPE_READERS = frozenset({"Shape", "Size", "Rank", "ShapeN"})


def canonical_tensor(name: str) -> str:
    """``node`` -> ``node:0``; ``node:1`` stays (control inputs are not tensors)."""
    head, sep, tail = name.rpartition(":")
    return name if sep and tail.isdigit() else name + ":0"


def input_tensor(name: str) -> str:
    """Tensor name as GraphDef inputs spell it (``node`` for output 0)."""
    return name[:-2] if name.endswith(":0") else name


def unique_name(existing: Iterable[str] | set[str], base: str) -> str:
    """``base`` or ``base_1``, ``base_2``... whichever is not in ``existing``."""
    taken = existing if isinstance(existing, set) else set(existing)
    if base not in taken:
        return base
    i = 1
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"


def reserve_name(names: set[str], base: str) -> str:
    """:func:`unique_name` of ``base`` in ``names``, added to ``names`` so it is not reused."""
    name = unique_name(names, base)
    names.add(name)
    return name


def tf_dtype_enum(dtype: str | np.dtype | type) -> int:
    """TensorFlow ``DataType`` enum of a dtype name or numpy dtype."""
    tf = import_tf()
    return tf.dtypes.as_dtype(dtype).as_datatype_enum


def dtype_name(enum: int) -> str:
    """Dtype name (``int64``) of a ``DataType`` enum."""
    tf = import_tf()
    return tf.dtypes.as_dtype(enum).name


def add_node(graph_def: Any, name: str, op: str, inputs: Iterable[str] = (), **attrs: Any) -> Any:
    """Append a node; ``attrs`` values are dtypes (``dtype:int64``), ints, floats, bools, lists.

    Args:
        graph_def: the GraphDef to extend.
        name: node name (must be unique; see :func:`unique_name`).
        op: op type.
        inputs: input tensor names.
        **attrs: attribute values. A string ``"dtype:NAME"`` sets a type attr; a list of floats
            sets a float list; an ``AttrValue`` is copied as is.

    Returns:
        The new NodeDef.
    """
    node = graph_def.node.add()
    node.name = name
    node.op = op
    node.input.extend(input_tensor(i) for i in inputs)
    for key, value in attrs.items():
        attr = node.attr[key]
        if isinstance(value, str) and value.startswith("dtype:"):
            attr.type = tf_dtype_enum(value[6:])
        elif isinstance(value, bool):
            attr.b = value
        elif isinstance(value, int):
            attr.i = value
        elif isinstance(value, float):
            attr.f = value
        elif isinstance(value, (list, tuple)):
            attr.list.SetInParent()
            if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                attr.list.i.extend(value)
            else:
                attr.list.f.extend(float(v) for v in value)
        elif isinstance(value, str):
            attr.s = value.encode()
        else:
            attr.CopyFrom(value)
    return node


def add_const(graph_def: Any, name: str, value: np.ndarray) -> Any:
    """Append a ``Const`` node holding ``value`` (its numpy dtype)."""
    tf = import_tf()
    node = graph_def.node.add()
    node.name = name
    node.op = "Const"
    arr = np.asarray(value)
    node.attr["dtype"].type = tf_dtype_enum(arr.dtype)
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr))
    return node


def add_table_consts(
    graph_def: Any, names: set[str], prefix: str, arrays: Mapping[str, np.ndarray]
) -> tuple[list[str], str]:
    """Append one ``Const`` per array and an int32 axis-0 ``Const`` for the gathers reading them.

    Args:
        graph_def: the GraphDef to append to.
        names: node names in use; the new names are added.
        prefix: the new nodes are named ``prefix/<key>`` and ``prefix/axis`` (made unique).
        arrays: name suffix -> value, in the order the nodes are appended.

    Returns:
        (the new Const names in the order of ``arrays``, the axis Const name).
    """
    const_names = [unique_name(names, f"{prefix}/{suffix}") for suffix in arrays]
    axis = unique_name(names, f"{prefix}/axis")
    names.update((*const_names, axis))
    for name, value in zip(const_names, arrays.values(), strict=True):
        add_const(graph_def, name, value)
    add_const(graph_def, axis, np.array(0, np.int32))
    return const_names, axis


def const_array(node: Any) -> np.ndarray:
    """The value of a ``Const`` NodeDef."""
    tf = import_tf()
    return tf.make_ndarray(node.attr["value"].tensor)


def source_through_identity(graph: ModelGraph | Mapping[str, Any], name: str) -> str:
    """Follow ``Identity`` nodes up from ``name``; returns the first non-Identity node name."""
    nodes = graph.nodes if isinstance(graph, ModelGraph) else graph
    return source_through(nodes, name, IDENTITY_OPS)


def fallback_row(
    table: np.ndarray, how: str, pass_name: str, mean_of: np.ndarray | None = None
) -> np.ndarray:
    """The one row that ids outside a rewritten (smaller) table read.

    Args:
        table: the original table.
        how: ``zeros``, or ``mean`` (of ``mean_of`` when it has rows, else of the whole table).
        pass_name: for the refusal message.
        mean_of: the rows to average, e.g. the rows a pruning pass dropped.

    Returns:
        One row (shape ``table.shape[1:]``, the table's dtype).

    Raises:
        PassRefused: ``how`` is neither ``mean`` nor ``zeros``.
    """
    from recadvisor.rewrite.base import PassRefused

    if how == "zeros":
        return np.zeros(table.shape[1:], table.dtype)
    if how == "mean":
        rows = mean_of if mean_of is not None and mean_of.shape[0] else table
        return rows.mean(axis=0).astype(table.dtype)
    raise PassRefused(f"{pass_name}: fallback must be 'mean' or 'zeros', got '{how}'")


def resolve_const(graph: ModelGraph | Mapping[str, Any], tensor: str) -> np.ndarray | None:
    """Value of ``tensor`` when it is a ``Const`` (possibly behind Identity nodes), else None."""
    nodes = graph.nodes if isinstance(graph, ModelGraph) else graph
    src = nodes.get(source_through_identity(graph, tensor))
    if src is None or src.op != "Const":
        return None
    return const_array(src)


def data_consumers(graph_def: Any) -> dict[str, list[tuple[str, int]]]:
    """Tensor (``node:k``) -> [(consumer node, input position)] over data edges."""
    out: dict[str, list[tuple[str, int]]] = {}
    for n in graph_def.node:
        for pos, inp in enumerate(n.input):
            if not is_control_input(inp):
                out.setdefault(canonical_tensor(inp), []).append((n.name, pos))
    return out


def rewire(graph_def: Any, old: str, new: str, skip: Iterable[str] = ()) -> int:
    """Point every data input reading tensor ``old`` at tensor ``new``.

    Args:
        graph_def: the GraphDef to edit.
        old / new: tensor names.
        skip: consumer node names left alone.

    Returns:
        How many inputs changed.
    """
    old_c, new_i, skipped, count = canonical_tensor(old), input_tensor(new), set(skip), 0
    for n in graph_def.node:
        if n.name in skipped:
            continue
        for pos, inp in enumerate(n.input):
            if not is_control_input(inp) and canonical_tensor(inp) == old_c:
                n.input[pos] = new_i
                count += 1
    return count


def remove_nodes(graph_def: Any, names: Iterable[str], protected: Iterable[str] = ()) -> set[str]:
    """Delete nodes, then every producer left with no reader at all (cascading).

    Control inputs on deleted nodes are dropped. Signature placeholders and output nodes belong
    in ``protected`` so they are never cascaded away.

    Args:
        graph_def: the GraphDef to edit.
        names: nodes to delete; none may still have data readers outside the set.
        protected: nodes never deleted by the cascade.

    Returns:
        The names deleted.

    Raises:
        RewriteError: a node to delete is still read through a data edge.
    """
    doomed = set(names)
    keep = set(protected)
    by_name = {n.name: n for n in graph_def.node}
    readers: dict[str, set[str]] = {}
    for n in graph_def.node:
        for inp in n.input:
            readers.setdefault(node_name(inp), set()).add(n.name)
    for name in doomed:
        for reader in readers.get(name, set()) - doomed:
            node = by_name[reader]
            if any(not is_control_input(i) and node_name(i) == name for i in node.input):
                raise RewriteError(
                    f"internal: node '{name}' is deleted while '{reader}' still reads it"
                )
    frontier = list(doomed)
    while frontier:
        name = frontier.pop()
        node = by_name.get(name)
        if node is None:
            continue
        for inp in node.input:
            src = node_name(inp)
            if src in doomed or src in keep or src not in by_name:
                continue
            remaining = readers.get(src, set()) - doomed
            if not remaining:
                doomed.add(src)
                frontier.append(src)
    kept = [n for n in graph_def.node if n.name not in doomed]
    for n in kept:
        cleaned = [i for i in n.input if node_name(i) not in doomed]
        if len(cleaned) != len(n.input):
            if any(not is_control_input(i) and node_name(i) in doomed for i in n.input):
                raise RewriteError(f"internal: '{n.name}' reads a deleted node")
            del n.input[:]
            n.input.extend(cleaned)
    del graph_def.node[:]
    graph_def.node.extend(kept)
    return doomed


def remove_if_unread(
    graph_def: Any, names: Iterable[str], protected: Iterable[str] = ()
) -> set[str]:
    """Delete those of ``names`` nobody reads any more (cascading like :func:`remove_nodes`).

    Args:
        graph_def: the GraphDef to edit.
        names: candidate nodes (e.g. the old params of gathers that now read a new table).
        protected: nodes never deleted.

    Returns:
        The names deleted.
    """
    read = {node_name(i) for n in graph_def.node for i in n.input}
    keep = set(protected)
    unread = {n for n in names if n not in read and n not in keep}
    return remove_nodes(graph_def, unread, keep) if unread else set()


def protected_nodes(graph: ModelGraph) -> set[str]:
    """Signature input placeholders and output nodes (never cascaded away)."""
    return set(graph.input_nodes.values()) | set(graph.output_nodes.values())


def surviving_tables(graph: ModelGraph, graph_def: Any) -> dict[str, Any]:
    """``graph.tables`` restricted to placeholders still present in ``graph_def``."""
    present = {n.name for n in graph_def.node}
    return {k: v for k, v in graph.tables.items() if k in present}


def _walk_data_edges(
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


def _reads_later_output(inp: str) -> bool:
    """Whether an input string names an output other than 0 (``x:1``)."""
    return inp.rpartition(":")[2].isdigit() and not inp.endswith(":0")


def walk_passthrough(
    graph: ModelGraph, start: str, extra_ops: frozenset[str] = frozenset()
) -> tuple[set[str], set[str], list[tuple[str, int]]]:
    """Follow a tensor through Identity/Reshape-like nodes that keep its values.

    Args:
        graph: the graph.
        start: the node whose output 0 is followed (e.g. an input placeholder).
        extra_ops: more op types to follow through their input 0 (e.g. slicing).

    Returns:
        (pass-through nodes, ``Shape``-like readers, terminal (reader, input position) pairs).
    """
    chain: set[str] = set()

    def follow(node: Any, pos: int, inp: str) -> bool:
        keeps_values = node.op in IDENTITY_OPS or node.op in RESHAPE_OPS or node.op in extra_ops
        if _reads_later_output(inp) or node.op in SHAPE_READERS or pos != 0 or not keeps_values:
            return False
        chain.add(node.name)
        return True

    _, stopped = _walk_data_edges(graph, start, follow)
    shape_readers = {
        reader
        for reader, _, inp in stopped
        if not _reads_later_output(inp) and graph.nodes[reader].op in SHAPE_READERS
    }
    terminals = [
        (reader, pos)
        for reader, pos, inp in stopped
        if _reads_later_output(inp) or graph.nodes[reader].op not in SHAPE_READERS
    ]
    return chain, shape_readers, terminals


# --------------------------------------------------------------------------- embedding tables
@dataclass(frozen=True)
class EmbeddingTable:
    """A ``Const`` read only by gathers along axis 0.

    Attributes:
        const: the Const node name.
        shape: the table's shape (rows, dim...).
        dtype: numpy dtype name.
        gathers: gather node names reading it (through Identity nodes).
        nbytes: size of the table's values.
    """

    const: str
    shape: tuple[int, ...]
    dtype: str
    gathers: tuple[str, ...]
    nbytes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "const": self.const,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "gathers": list(self.gathers),
            "bytes": self.nbytes,
        }


def table_features(graph: ModelGraph, table: EmbeddingTable) -> list[str]:
    """Signature inputs whose ids reach the table's gathers."""
    feats: set[str] = set()
    for g in table.gathers:
        feats |= graph.features_of_node.get(graph.nodes[g].input[1].split(":")[0], frozenset())
    return sorted(feats)


def describe_table(graph: ModelGraph, table: EmbeddingTable) -> str:
    """``name [rows x dim] (features)`` for notes and messages (the variable's name)."""
    feats = table_features(graph, table)
    shape = "x".join(str(d) for d in table.shape)
    return f"{graph.table_name(table.const)} [{shape}]" + (
        f" ({', '.join(feats)})" if feats else ""
    )


def gather_axis(graph: ModelGraph, gather: Any) -> int | None:
    """Constant axis of a gather node (0 for ``Gather``/``ResourceGather``), else None."""
    if gather.op in ("Gather", "ResourceGather"):
        return 0
    if gather.attr["batch_dims"].i != 0 or len(gather.input) < 3:
        return None
    axis = resolve_const(graph, gather.input[2])
    return None if axis is None or axis.ndim != 0 else int(axis)


def _readers_through_identity(graph: ModelGraph, name: str) -> list[tuple[str, int]] | None:
    """(reader, position) of ``name``'s value, looking through Identity chains.

    Returns None when a control edge or a non-Identity/non-reader use makes that unclear.
    """
    seen, stopped = _walk_data_edges(graph, name, lambda node, _pos, _inp: node.op in IDENTITY_OPS)
    result = [(reader, pos) for reader, pos, _ in stopped]
    if set(graph.output_nodes.values()) & seen:
        return None
    return result


def find_embedding_tables(graph: ModelGraph, min_rows: int = 2) -> dict[str, EmbeddingTable]:
    """Every float ``Const`` of rank >= 2 read only as the params of axis-0 gathers.

    Args:
        graph: the graph to search.
        min_rows: smallest table considered.

    Returns:
        Const node name -> :class:`EmbeddingTable`, in graph order.
    """
    tables: dict[str, EmbeddingTable] = {}
    for node in graph.graph_def.node:
        if node.op != "Const":
            continue
        dims = [d.size for d in node.attr["value"].tensor.tensor_shape.dim]
        if len(dims) < 2 or dims[0] < min_rows:
            continue
        if dtype_name(node.attr["dtype"].type) not in ("float32", "float16", "float64", "int8"):
            continue
        readers = _readers_through_identity(graph, node.name)
        if not readers:
            continue
        ok = all(
            graph.nodes[r].op in GATHER_V2_OPS
            and pos == 0
            and gather_axis(graph, graph.nodes[r]) == 0
            for r, pos in readers
        )
        if not ok:
            continue
        tables[node.name] = EmbeddingTable(
            const=node.name,
            shape=tuple(int(d) for d in dims),
            dtype=dtype_name(node.attr["dtype"].type),
            gathers=tuple(sorted({r for r, _ in readers})),
            nbytes=graph.const_bytes(node.name),
        )
    return tables


def set_gather_params(graph_def: Any, gather_name: str, new_params: str, params_dtype: str) -> None:
    """Point a gather at a new params tensor of dtype ``params_dtype``."""
    for n in graph_def.node:
        if n.name == gather_name:
            n.input[0] = input_tensor(new_params)
            n.attr["Tparams"].type = tf_dtype_enum(params_dtype)
            return
    raise RewriteError(f"internal: gather '{gather_name}' not found")


def add_gather(
    graph_def: Any,
    name: str,
    params: str,
    indices: str,
    params_dtype: str,
    indices_dtype: str,
    axis_const: str,
) -> Any:
    """Append ``GatherV2(params, indices, axis_const)``."""
    return add_node(
        graph_def,
        name,
        "GatherV2",
        [params, indices, axis_const],
        Tparams=f"dtype:{params_dtype}",
        Tindices=f"dtype:{indices_dtype}",
        Taxis="dtype:int32",
        batch_dims=0,
    )


def add_cast(graph_def: Any, name: str, x: str, src_dtype: str, dst_dtype: str) -> Any:
    """Append ``Cast(x)`` from ``src_dtype`` to ``dst_dtype`` (dtype names, no truncation)."""
    return add_node(
        graph_def,
        name,
        "Cast",
        [x],
        SrcT=f"dtype:{src_dtype}",
        DstT=f"dtype:{dst_dtype}",
        Truncate=False,
    )


# --------------------------------------------------------------------------- probing
def probe_tensors(
    graph: ModelGraph, tensors: Iterable[str], feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``feeds`` and return the values of intermediate ``tensors``.

    Args:
        graph: the graph.
        tensors: tensor names (``node:k``).
        feeds: inputs in the graph's contract.

    Returns:
        tensor name -> numpy value.
    """
    from recadvisor.model.runtime import GraphRunner

    names = [canonical_tensor(t) for t in dict.fromkeys(tensors)]
    if not names:
        return {}
    keys = {f"probe_{i}": t for i, t in enumerate(names)}
    probe = graph.replace(output_tensors=dict(keys))
    outs = GraphRunner(probe)({k: feeds[k] for k in graph.signature.inputs})
    return {keys[k]: v for k, v in outs.items()}
