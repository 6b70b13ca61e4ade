"""Inventory of a model: the classic ``describe_graph``, done right.

Counts nodes by op type as loaded (graph plus function library, as stored) and after freezing,
lists variables (read from the checkpoint index, nothing executed), embedding tables (constants or
variables feeding a gather, with rows x dim, bytes and the features indexing them), lookup tables,
string ops with the features they serve, and nodes no output needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from recadvisor.model.graph import STRING_OPS, TABLE_OPS, LookupTableDict, ModelGraph, node_name
from recadvisor.model.load import LoadedModel
from recadvisor.model.queries import embedding_tables
from recadvisor.model.spec import TensorDict
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)


class VariableDict(TypedDict):
    """``VariableInfo.to_dict()``."""

    name: str
    shape: list[int]
    dtype: str
    bytes: int


class EmbeddingTableDict(TypedDict):
    """``EmbeddingTableInfo.to_dict()``."""

    node: str
    variable: str
    rows: int
    dim: int
    dtype: str
    bytes: int
    gathers: list[str]
    features: list[str]


class StringOpDict(TypedDict):
    """``StringOpInfo.to_dict()``."""

    node: str
    op: str
    features: list[str]


class InventoryLookupTableDict(LookupTableDict):
    """A lookup table with the inputs whose values are looked up in it."""

    features: list[str]


class ModelDescriptionDict(TypedDict):
    """``ModelDescription.to_dict()``: ``describe --json`` and ``analysis.json``'s
    ``inventory``."""

    path: str
    source_format: str
    signature: str
    available_signatures: list[str]
    inputs: dict[str, TensorDict]
    outputs: dict[str, TensorDict]
    node_count: int
    op_counts: dict[str, int]
    node_count_loaded: int
    op_counts_loaded: dict[str, int]
    const_count: int
    identity_count: int
    variable_count: int
    variables: list[VariableDict]
    variable_bytes: int
    embedding_tables: list[EmbeddingTableDict]
    lookup_tables: list[InventoryLookupTableDict]
    string_ops: list[StringOpDict]
    unreachable_nodes: list[str]
    size_bytes: int
    notes: list[str]


@dataclass(frozen=True)
class VariableInfo:
    """One checkpointed variable."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    bytes: int

    def to_dict(self) -> VariableDict:
        """JSON form."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class EmbeddingTableInfo:
    """A constant (frozen variable) used as the params of a gather."""

    node: str
    variable: str
    rows: int
    dim: int
    dtype: str
    bytes: int
    gathers: tuple[str, ...]
    features: tuple[str, ...]

    def to_dict(self) -> EmbeddingTableDict:
        """JSON form."""
        return {
            "node": self.node,
            "variable": self.variable,
            "rows": self.rows,
            "dim": self.dim,
            "dtype": self.dtype,
            "bytes": self.bytes,
            "gathers": list(self.gathers),
            "features": list(self.features),
        }


@dataclass(frozen=True)
class StringOpInfo:
    """A string op (or string-keyed table lookup) and the features it serves."""

    node: str
    op: str
    features: tuple[str, ...]

    def to_dict(self) -> StringOpDict:
        """JSON form."""
        return {"node": self.node, "op": self.op, "features": list(self.features)}


@dataclass(frozen=True)
class ModelDescription:
    """Everything ``recadvisor describe`` shows; ``to_dict`` is the ``--json`` output."""

    path: str
    source_format: str
    signature: dict[str, Any]
    available_signatures: tuple[str, ...]
    node_count: int
    op_counts: dict[str, int]
    node_count_loaded: int
    op_counts_loaded: dict[str, int]
    variables: tuple[VariableInfo, ...]
    embedding_tables: tuple[EmbeddingTableInfo, ...]
    lookup_tables: tuple[InventoryLookupTableDict, ...]
    string_ops: tuple[StringOpInfo, ...]
    unreachable_nodes: tuple[str, ...]
    size_bytes: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> ModelDescriptionDict:
        """JSON form (a public interface: keys are documented in the README)."""
        return {
            "path": self.path,
            "source_format": self.source_format,
            "signature": self.signature["key"],
            "available_signatures": list(self.available_signatures),
            "inputs": self.signature["inputs"],
            "outputs": self.signature["outputs"],
            "node_count": self.node_count,
            "op_counts": dict(self.op_counts),
            "node_count_loaded": self.node_count_loaded,
            "op_counts_loaded": dict(self.op_counts_loaded),
            "const_count": self.op_counts.get("Const", 0),
            "identity_count": self.op_counts.get("Identity", 0),
            "variable_count": len(self.variables),
            "variables": [v.to_dict() for v in self.variables],
            "variable_bytes": sum(v.bytes for v in self.variables),
            "embedding_tables": [t.to_dict() for t in self.embedding_tables],
            "lookup_tables": list(self.lookup_tables),
            "string_ops": [s.to_dict() for s in self.string_ops],
            "unreachable_nodes": list(self.unreachable_nodes),
            "size_bytes": self.size_bytes,
            "notes": list(self.notes),
        }


def dir_size(path: str | Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def read_variables(model_dir: str | Path) -> list[VariableInfo]:
    """Variables from the SavedModel's checkpoint index (no graph execution).

    Returns:
        One entry per checkpointed tensor (TF2 names are object paths such as ``emb``).
    """
    tf = import_tf()
    prefix = Path(model_dir) / "variables" / "variables"
    if not Path(str(prefix) + ".index").is_file():
        return []
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except Exception as e:  # noqa: BLE001 - a damaged index only loses this section
        log.warning("cannot read variables of %s: %s", model_dir, e)
        return []
    dtypes = reader.get_variable_to_dtype_map()
    shapes = reader.get_variable_to_shape_map()
    result = []
    for name in sorted(shapes):
        if name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH") or "OPTIMIZER_SLOT" in name:
            continue
        dtype = dtypes[name]
        shape = tuple(int(d) for d in shapes[name])
        count = 1
        for d in shape:
            count *= d
        size = 0 if dtype == tf.string else count * dtype.size
        short = name.replace("/.ATTRIBUTES/VARIABLE_VALUE", "")
        result.append(VariableInfo(short, shape, dtype.name, size))
    return result


def find_embedding_tables(graph: ModelGraph) -> list[EmbeddingTableInfo]:
    """Constants of rank 2 read as the params of gather-like ops (the graph layer's
    :func:`~recadvisor.model.queries.embedding_tables`), largest first."""
    tables = [
        EmbeddingTableInfo(
            node=t.const,
            variable=graph.variable_names.get(t.const, t.const),
            rows=t.shape[0],
            dim=t.shape[1],
            dtype=t.dtype,
            bytes=t.nbytes,
            gathers=t.gathers,
            features=t.features,
        )
        for t in embedding_tables(graph).values()
        if len(t.shape) == 2
    ]
    return sorted(tables, key=lambda t: -t.bytes)


def find_string_ops(graph: ModelGraph) -> list[StringOpInfo]:
    """String ops and string-keyed table lookups, with the features they serve."""
    found = []
    for node in graph.graph_def.node:
        is_string = node.op in STRING_OPS
        if node.op in TABLE_OPS and node.op.startswith("LookupTableFind"):
            table = graph.tables.get(graph.table_of_node(node.name) or "")
            is_string = table is None or table.key_dtype == "string"
        if is_string:
            feats = graph.features_of_node.get(node.name, frozenset())
            found.append(StringOpInfo(node.name, node.op, tuple(sorted(feats))))
    return found


def _lookup_tables(graph: ModelGraph) -> list[InventoryLookupTableDict]:
    """Each lookup table's dict plus ``features``: the inputs whose values are looked up in it
    (the placeholder name TensorFlow gives a captured table, e.g. ``unknown_5``, says nothing)."""
    features: dict[str, set[str]] = {name: set() for name in graph.tables}
    of_node = graph.features_of_node
    for node in graph.graph_def.node:
        if node.op.startswith("LookupTableFind") and len(node.input) > 1:
            table = graph.table_of_node(node.name)
            if table is not None:
                features[table] |= of_node.get(node_name(node.input[1]), frozenset())
    return [
        {**table.to_dict(), "features": sorted(features[name])}
        for name, table in graph.tables.items()
    ]


def describe_model(loaded: LoadedModel, graph: ModelGraph) -> ModelDescription:
    """Build the inventory of a loaded and frozen model.

    Args:
        loaded: the loaded model (for the stored op counts and the path).
        graph: its frozen graph.

    Returns:
        A :class:`ModelDescription`.
    """
    reachable = graph.reachable_from_outputs(control=False)
    inputs = set(graph.input_nodes.values())
    unreachable = sorted(
        n.name
        for n in graph.graph_def.node
        if n.name not in reachable and n.name not in inputs and n.name not in graph.tables
    )
    notes = []
    unread = [k for k, n in graph.input_nodes.items() if not graph.consumers.get(n)]
    if unread:
        notes.append("inputs never read by the graph: " + ", ".join(sorted(unread)))
    loaded_counts = loaded.info.op_counts
    return ModelDescription(
        path=loaded.path,
        source_format=loaded.info.source_format,
        signature=graph.signature.to_dict(),
        available_signatures=tuple(sorted(loaded.info.signatures)),
        node_count=len(graph.graph_def.node),
        op_counts=graph.op_counts(),
        node_count_loaded=sum(loaded_counts.values()),
        op_counts_loaded=dict(loaded_counts),
        variables=tuple(read_variables(loaded.path)),
        embedding_tables=tuple(find_embedding_tables(graph)),
        lookup_tables=tuple(_lookup_tables(graph)),
        string_ops=tuple(find_string_ops(graph)),
        unreachable_nodes=tuple(unreachable),
        size_bytes=dir_size(loaded.path),
        notes=tuple(notes),
    )
