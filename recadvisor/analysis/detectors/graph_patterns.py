"""Graph patterns the detectors share: hashes, table lookups, embedding tables and their ids.

All functions read a frozen :class:`~recadvisor.model.graph.ModelGraph` without executing it,
except :func:`evaluate_tensors` / :func:`gather_ids`, which run the id sub-graph (hashing and
vocabulary lookups up to each gather's index tensor) on the sample feeds to learn which table
rows the data actually hits.

Tracing rules: walking from a tensor back to "its" signature input follows the first data input
through ops that keep the values (``Identity``, ``Reshape``, ``Squeeze``, ``ExpandDims``,
``Cast``...: :func:`recadvisor.model.queries.trace_back`). The embedding tables are the graph
layer's (:func:`recadvisor.model.queries.embedding_tables`), kept when float and of rank 1 or 2;
their ids come from a hash op, a vocabulary lookup or an integer input.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recadvisor.model.graph import ModelGraph, canonical_tensor, is_control_input, node_name
from recadvisor.model.queries import VALUE_PRESERVING_OPS, embedding_tables, trace_back
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)

HASH_OPS = frozenset(
    {
        "StringToHashBucketFast",
        "StringToHashBucketStrong",
        "StringToHashBucket",
        "_TensorToHashBucketFast",
    }
)
LOOKUP_FIND_OPS = frozenset({"LookupTableFindV2", "LookupTableFind"})
FLOAT_DTYPES = frozenset({"float32", "float16", "bfloat16", "float64"})


def data_inputs(node: Any) -> list[str]:
    """The data (non-control) input tensor names of a NodeDef."""
    return [i for i in node.input if not is_control_input(i)]


def input_key_of_node(graph: ModelGraph, name: str) -> str | None:
    """The signature input key whose placeholder is ``name``, else ``None``."""
    for key, placeholder in graph.input_nodes.items():
        if placeholder == name:
            return key
    return None


def source_input(graph: ModelGraph, tensor: str) -> str | None:
    """The signature input a tensor carries unchanged (through value-preserving ops), if any."""
    return input_key_of_node(graph, trace_back(graph, tensor))


def forward_through(
    graph: ModelGraph, name: str, through: frozenset[str] = VALUE_PRESERVING_OPS
) -> list[str]:
    """Consumers of ``name``, looking through value-preserving ops (which are not returned)."""
    result: list[str] = []
    stack, seen = [name], set()
    while stack:
        current = stack.pop()
        for consumer in graph.consumers.get(current, []):
            if consumer in seen:
                continue
            seen.add(consumer)
            node = graph.nodes[consumer]
            first = data_inputs(node)[:1]
            if node.op in through and first and node_name(first[0]) == current:
                stack.append(consumer)
            else:
                result.append(consumer)
    return sorted(result)


def dtype_name(enum_value: int) -> str:
    """TensorFlow dtype name of a DataType enum value."""
    tf = import_tf()
    try:
        return tf.dtypes.as_dtype(enum_value).name
    except TypeError:
        return "unknown"


@dataclass(frozen=True)
class HashOp:
    """A string-hash op and what it hashes.

    Attributes:
        node: the hash node.
        op: its op type.
        num_buckets: the bucket count attribute.
        feature: the signature input hashed (through value-preserving ops and AsString).
        hashed_tensor: the tensor hashed, after walking back through value-preserving ops.
        as_string: the ``AsString`` node in between, when a number is formatted then hashed.
    """

    node: str
    op: str
    num_buckets: int | None
    feature: str | None
    hashed_tensor: str
    as_string: str | None = None


def find_hash_ops(graph: ModelGraph) -> list[HashOp]:
    """Every string-hash node with the input it hashes."""
    result = []
    for node in graph.graph_def.node:
        if node.op not in HASH_OPS or not data_inputs(node):
            continue
        buckets = int(node.attr["num_buckets"].i) if "num_buckets" in node.attr else None
        src = trace_back(graph, data_inputs(node)[0])
        as_string = None
        src_node = graph.nodes.get(src)
        if src_node is not None and src_node.op == "AsString" and data_inputs(src_node):
            as_string = src
            src = trace_back(graph, data_inputs(src_node)[0])
        result.append(
            HashOp(
                node=node.name,
                op=node.op,
                num_buckets=buckets,
                feature=input_key_of_node(graph, src),
                hashed_tensor=src,
                as_string=as_string,
            )
        )
    return result


@dataclass(frozen=True)
class TableLookup:
    """A lookup-table find op.

    Attributes:
        node: the find node.
        table: the table placeholder it reads (``None`` if not traced).
        key_dtype / value_dtype: the table's dtypes (``unknown`` when the table is not known).
        feature: the signature input looked up (through value-preserving ops), if any.
        keys_tensor: the looked-up tensor, after walking back through value-preserving ops.
        size: table entries (0 when unknown).
        digest: the table's content digest (equal digests: identical tables).
    """

    node: str
    table: str | None
    key_dtype: str
    value_dtype: str
    feature: str | None
    keys_tensor: str
    size: int
    digest: str | None


def find_table_lookups(graph: ModelGraph) -> list[TableLookup]:
    """Every lookup-table find node with the table and the input it reads."""
    result = []
    for node in graph.graph_def.node:
        if node.op not in LOOKUP_FIND_OPS or len(data_inputs(node)) < 2:
            continue
        table_name = graph.table_of_node(node.name)
        table = graph.tables.get(table_name or "")
        keys_src = trace_back(graph, data_inputs(node)[1])
        key_dtype = (
            table.key_dtype
            if table is not None
            else (dtype_name(node.attr["Tin"].type) if "Tin" in node.attr else "unknown")
        )
        value_dtype = (
            table.value_dtype
            if table is not None
            else (dtype_name(node.attr["Tout"].type) if "Tout" in node.attr else "unknown")
        )
        result.append(
            TableLookup(
                node=node.name,
                table=table_name,
                key_dtype=key_dtype,
                value_dtype=value_dtype,
                feature=input_key_of_node(graph, keys_src),
                keys_tensor=keys_src,
                size=table.size if table is not None else 0,
                digest=table.content_digest() if table is not None else None,
            )
        )
    return result


@dataclass(frozen=True)
class GatherUse:
    """One gather reading an embedding table.

    Attributes:
        node: the gather node.
        op: its op type.
        indices: the index tensor name.
        features: signature inputs in the index tensor's ancestry.
        id_source: node producing the ids (hash, lookup, or input placeholder), after walking
            back through value-preserving ops.
        id_kind: ``hash``, ``vocabulary``, ``input`` or ``other``.
        num_buckets: bucket count when ``id_kind`` is ``hash``.
        vocabulary_digest: table digest when ``id_kind`` is ``vocabulary``.
        rows_evaluable: the index tensor holds row numbers (plain gather along axis 0).
    """

    node: str
    op: str
    indices: str
    features: frozenset[str]
    id_source: str
    id_kind: str
    num_buckets: int | None = None
    vocabulary_digest: str | None = None
    rows_evaluable: bool = True


@dataclass(frozen=True)
class EmbeddingTable:
    """A frozen embedding table (float ``Const``) and the gathers that read it.

    Attributes:
        node: the ``Const`` node.
        variable: the variable it was folded from (or the node name).
        rows / dim: shape (``dim`` is 1 for rank-1 tables such as per-id biases).
        dtype: element dtype name.
        bytes: size of the values.
        uses: the gathers reading it.
    """

    node: str
    variable: str
    rows: int
    dim: int
    dtype: str
    bytes: int
    uses: tuple[GatherUse, ...]

    @property
    def features(self) -> tuple[str, ...]:
        """Signature inputs whose ids index this table."""
        feats: set[str] = set()
        for use in self.uses:
            feats |= use.features
        return tuple(sorted(feats))

    @property
    def gather_nodes(self) -> tuple[str, ...]:
        """Names of the gathers reading the table."""
        return tuple(u.node for u in self.uses)

    def to_dict(self) -> dict[str, Any]:
        """JSON summary."""
        return {
            "node": self.node,
            "variable": self.variable,
            "rows": self.rows,
            "dim": self.dim,
            "dtype": self.dtype,
            "bytes": self.bytes,
            "features": list(self.features),
            "gathers": list(self.gather_nodes),
        }


def _id_kind(
    src: str, graph: ModelGraph, hashes: dict[str, HashOp], lookups: dict[str, TableLookup]
) -> tuple[str, int | None, str | None]:
    """(kind, bucket count, vocabulary digest) of the node making a gather's ids."""
    if src in hashes:
        return "hash", hashes[src].num_buckets, None
    if src in lookups:
        return "vocabulary", None, lookups[src].digest
    if input_key_of_node(graph, src) is not None:
        return "input", None, None
    return "other", None, None


def find_embedding_tables(graph: ModelGraph) -> list[EmbeddingTable]:
    """Float tables of rank 1 or 2 among the graph layer's
    :func:`~recadvisor.model.queries.embedding_tables`, largest first, each gather's ids
    classified (hash, vocabulary, input).

    The result is memoized on the graph object (like its ``cached_property`` index), since
    several detectors ask for it; a ``graph.replace(...)`` copy starts without it.
    """
    key = "_recadvisor_detector_tables"
    cached = graph.__dict__.get(key)
    if cached is not None:
        return cached
    hashes = {h.node: h for h in find_hash_ops(graph)}
    lookups = {t.node: t for t in find_table_lookups(graph)}
    tables = []
    for table in embedding_tables(graph).values():
        if table.dtype not in FLOAT_DTYPES or len(table.shape) not in (1, 2):
            continue
        uses = []
        for read in table.reads:
            kind, buckets, digest = _id_kind(read.id_source, graph, hashes, lookups)
            uses.append(
                GatherUse(
                    node=read.node,
                    op=read.op,
                    indices=read.indices,
                    features=read.features,
                    id_source=read.id_source,
                    id_kind=kind,
                    num_buckets=buckets,
                    vocabulary_digest=digest,
                    rows_evaluable=read.axis == 0,
                )
            )
        tables.append(
            EmbeddingTable(
                node=table.const,
                variable=graph.variable_names.get(table.const, table.const),
                rows=table.shape[0],
                dim=table.shape[1] if len(table.shape) == 2 else 1,
                dtype=table.dtype,
                bytes=table.nbytes,
                uses=tuple(uses),
            )
        )
    counts: dict[str, int] = {}
    for t in tables:
        counts[t.variable] = counts.get(t.variable, 0) + 1
    tables = [
        t if counts[t.variable] == 1 else dataclasses.replace(t, variable=t.node) for t in tables
    ]  # ambiguous variable names: name tables by their node
    tables.sort(key=lambda t: (-t.bytes, t.node))
    graph.__dict__[key] = tables  # cached like the graph's own cached properties
    return tables


def const_value(graph: ModelGraph, name: str) -> np.ndarray:
    """The numpy value of a ``Const`` node."""
    tf = import_tf()
    return tf.make_ndarray(graph.nodes[name].attr["value"].tensor)


def subgraph_for(graph: ModelGraph, tensors: Mapping[str, str]) -> ModelGraph:
    """A ModelGraph computing only ``tensors`` (alias -> tensor name) from the same inputs.

    Every signature input placeholder is kept (so the same feeds work); control inputs are
    dropped; only the lookup tables the sub-graph reads are kept.
    """
    keep = graph.ancestors([node_name(t) for t in tensors.values()], control=False)
    keep |= set(graph.input_nodes.values())
    graph_def = type(graph.graph_def)()
    graph_def.versions.CopyFrom(graph.graph_def.versions)
    graph_def.library.CopyFrom(graph.graph_def.library)
    for node in graph.graph_def.node:
        if node.name not in keep:
            continue
        new = graph_def.node.add()
        new.CopyFrom(node)
        del new.input[:]
        new.input.extend(data_inputs(node))
    return graph.replace(
        graph_def=graph_def,
        output_tensors={alias: canonical_tensor(t) for alias, t in tensors.items()},
        tables={k: v for k, v in graph.tables.items() if k in keep},
    )


def evaluate_tensors(
    graph: ModelGraph, tensors: Sequence[str], feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run the graph up to ``tensors`` on ``feeds``.

    Args:
        graph: the frozen graph.
        tensors: tensor names to compute.
        feeds: one array per signature input.

    Returns:
        Tensor name -> value.
    """
    from recadvisor.model.runtime import GraphRunner

    if not tensors:
        return {}
    aliases = {f"value_{i}": canonical_tensor(t) for i, t in enumerate(tensors)}
    runner = GraphRunner(subgraph_for(graph, aliases))
    out = runner(feeds)
    return {aliases[a]: out[a] for a in aliases}


def gather_ids(
    graph: ModelGraph, feeds: Mapping[str, np.ndarray] | None, cache: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """The row ids every embedding gather reads on ``feeds`` (gather node -> flat int array).

    Args:
        graph: the frozen graph.
        feeds: sample inputs (``None``: nothing is evaluated).
        cache: a dict to memoize the result in (e.g. ``DetectorContext.cache``).

    Returns:
        Gather node -> the distinct row ids it read (empty dict when evaluation fails or there
        are no feeds; the failure is logged).
    """
    if cache is not None and "gather_ids" in cache:
        return cache["gather_ids"]
    result: dict[str, np.ndarray] = {}
    if feeds is not None:
        wanted = {}
        for table in find_embedding_tables(graph):
            for use in table.uses:
                if use.rows_evaluable and use.op != "GatherNd":
                    wanted[use.node] = use.indices
        try:
            values = evaluate_tensors(graph, sorted(set(wanted.values())), feeds)
            result = {
                node: np.unique(np.asarray(values[canonical_tensor(t)]).reshape(-1))
                for node, t in wanted.items()
            }
        except Exception as e:  # noqa: BLE001 - evidence only; detectors go on without it
            log.warning("could not evaluate embedding ids on the sample data: %s", e)
            result = {}
    if cache is not None:
        cache["gather_ids"] = result
    return result


def table_rows_hit(table: EmbeddingTable, ids: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Distinct valid row ids of ``table`` read on the sample data, or ``None`` if unknown."""
    parts = [ids[u.node] for u in table.uses if u.node in ids]
    if not parts or len(parts) != len(table.uses):
        return None
    rows = np.unique(np.concatenate(parts).astype(np.int64))
    return rows[(rows >= 0) & (rows < table.rows)]


def input_vocabularies(graph: ModelGraph) -> dict[str, list[Any]]:
    """Signature input -> keys of the string table it is looked up in (for synthesizing data)."""
    vocab: dict[str, list[Any]] = {}
    for lookup in find_table_lookups(graph):
        if lookup.feature is None or lookup.table is None:
            continue
        table = graph.tables[lookup.table]
        keys = [
            k.decode("utf-8", "replace") if isinstance(k, bytes) else k for k in table.keys.tolist()
        ]
        vocab.setdefault(lookup.feature, keys)
    return vocab


def nodes_of_types(graph: ModelGraph, op_types: Iterable[str]) -> list[str]:
    """Names of nodes whose op is in ``op_types``."""
    wanted = set(op_types)
    return [n.name for n in graph.graph_def.node if n.op in wanted]
