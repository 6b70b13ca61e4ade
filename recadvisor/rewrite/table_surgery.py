"""Embedding-table surgery for the passes, over the graph layer's edits and queries.

Frozen graphs read a variable through a chain of ``Identity`` nodes (``Func/.../input/_3``,
``ReadVariableOp``) ending at a ``Const``; an embedding table is such a ``Const`` (rank 2, float)
whose every reader is a gather along axis 0. These helpers find those tables, pick fallback rows
and run a graph to read intermediate tensors on sample inputs ("probing"). The generic edits
(constants, nodes, rewiring, deletion with cascade) live in :mod:`recadvisor.model.edits` and the
pass-through walks in :mod:`recadvisor.model.queries`; both are re-exported here for the passes.

Nothing here mutates a :class:`ModelGraph`: functions that edit take a ``GraphDef`` copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recadvisor.errors import RewriteError
from recadvisor.model.edits import (  # noqa: F401 - re-exported for the passes
    add_cast,
    add_const,
    add_gather,
    add_node,
    canonical_tensor,
    const_array,
    data_consumers,
    dtype_name,
    input_tensor,
    protected_nodes,
    remove_if_unread,
    remove_nodes,
    reserve_name,
    resolve_const,
    rewire,
    source_through_identity,
    surviving_tables,
    tf_dtype_enum,
    unique_name,
)
from recadvisor.model.graph import ModelGraph
from recadvisor.model.queries import (  # noqa: F401 - re-exported for the passes
    IDENTITY_OPS,
    RESHAPE_OPS,
    SHAPE_READERS,
    SLICE_OPS,
    walk_data_edges,
    walk_passthrough,
)

log = logging.getLogger(__name__)

GATHER_V2_OPS = frozenset({"GatherV2", "Gather", "ResourceGather"})


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
    seen, stopped = walk_data_edges(graph, name, lambda node, _pos, _inp: node.op in IDENTITY_OPS)
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
