"""Editing a frozen ``GraphDef``: names, constants, nodes, rewiring, deletion with cascade.

The one place graph edits live: the rewrite passes and the ONNX lowering use them. Functions
that edit take a ``GraphDef`` copy (``ModelGraph.copy_graph_def()``); nothing here mutates a
:class:`ModelGraph`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from recadvisor.errors import RewriteError
from recadvisor.model.graph import (
    ModelGraph,
    canonical_tensor,
    is_control_input,
    node_name,
    source_through,
)
from recadvisor.model.queries import IDENTITY_OPS
from recadvisor.tfimport import import_tf


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


def const_array(node: Any) -> np.ndarray:
    """The value of a ``Const`` NodeDef."""
    tf = import_tf()
    return tf.make_ndarray(node.attr["value"].tensor)


def source_through_identity(graph: ModelGraph | Mapping[str, Any], name: str) -> str:
    """Follow ``Identity`` nodes up from ``name``; returns the first non-Identity node name."""
    nodes = graph.nodes if isinstance(graph, ModelGraph) else graph
    return source_through(nodes, name, IDENTITY_OPS)


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


def set_gather_params(graph_def: Any, gather_name: str, new_params: str, params_dtype: str) -> None:
    """Point a gather at a new params tensor of dtype ``params_dtype``."""
    for n in graph_def.node:
        if n.name == gather_name:
            n.input[0] = input_tensor(new_params)
            n.attr["Tparams"].type = tf_dtype_enum(params_dtype)
            return
    raise RewriteError(f"internal: gather '{gather_name}' not found")


class NodeMaker:
    """Adds nodes named ``{base}/{prefix}{suffix}`` to a GraphDef (one rewritten node's
    helpers; ``prefix`` ``onnx_`` for the ONNX lowerings)."""

    def __init__(self, graph_def: Any, names: set[str], base: str, prefix: str = "onnx_") -> None:
        self.graph_def, self.names, self.base, self.prefix = graph_def, names, base, prefix

    def fresh(self, suffix: str) -> str:
        """A new node name under the base."""
        return reserve_name(self.names, f"{self.base}/{self.prefix}{suffix}")

    def strided(
        self,
        suffix: str,
        vector: str,
        begin: int,
        end: int,
        dtype: str = "int64",
        shrink: bool = False,
    ) -> str:
        """``vector[begin:end]`` of a 1-D ``dtype`` tensor (``end`` may count from the end), or
        with ``shrink`` the scalar ``vector[begin]`` (``end`` is then ``begin + 1``)."""
        return self.op(
            suffix,
            "StridedSlice",
            [
                vector,
                self.const("b", [begin], np.int32),
                self.const("e", [end], np.int32),
                self.const("s", [1], np.int32),
            ],
            T=f"dtype:{dtype}",
            Index="dtype:int32",
            shrink_axis_mask=int(shrink),
            begin_mask=0,
            end_mask=0,
            ellipsis_mask=0,
            new_axis_mask=0,
        )

    def const(self, suffix: str, value: Any, dtype: Any) -> str:
        """A ``Const`` holding ``value`` as ``dtype``."""
        name = self.fresh(suffix)
        add_const(self.graph_def, name, np.array(value, dtype))
        return name

    def op(self, suffix: str, kind: str, inputs: list[str], **attrs: Any) -> str:
        """A node of type ``kind`` (``attrs`` as :func:`add_node` takes them)."""
        name = self.fresh(suffix)
        add_node(self.graph_def, name, kind, inputs, **attrs)
        return name

    def i64(self, suffix: str, kind: str, inputs: list[str], **attrs: Any) -> str:
        """An int64 node with a ``T`` attribute (``Add``, ``Gather``'s params, ...)."""
        return self.op(suffix, kind, inputs, T="dtype:int64", **attrs)

    def cumsum(self, suffix: str, x: str, exclusive: bool) -> str:
        """The running sum of an int64 vector (``exclusive``: of the entries before each)."""
        axis = self.const("axis0", 0, np.int32)
        return self.i64(
            suffix, "Cumsum", [x, axis], Tidx="dtype:int32", exclusive=exclusive, reverse=False
        )
