"""``ModelGraph``: a frozen, self-contained serving graph and the index over it.

A ModelGraph is what every analysis reads and every rewrite pass produces. It holds:

* ``graph_def``: a frozen ``GraphDef`` (variables folded to ``Const`` nodes). Each lookup table
  the model used is a ``Placeholder`` of dtype ``resource``; its contents live in ``tables``.
* ``signature``: the serving signature (keys, dtypes, shapes) the graph implements.
* ``input_tensors`` / ``output_tensors``: signature key -> tensor name in ``graph_def``.

ModelGraphs are treated as immutable: passes copy the ``GraphDef`` and return a new object via
:meth:`ModelGraph.replace`. Nothing here imports TensorFlow at module import time.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypedDict

import numpy as np

from recadvisor.model.spec import SignatureSpec

# Ops that read or write lookup tables (their first input is the table handle).
TABLE_OPS = frozenset(
    {
        "LookupTableFindV2",
        "LookupTableFind",
        "LookupTableSizeV2",
        "LookupTableExportV2",
        "LookupTableImportV2",
        "LookupTableInsertV2",
    }
)
# Ops that create a lookup table resource in a TF1 graph.
TABLE_CREATE_OPS = frozenset(
    {
        "HashTableV2",
        "HashTable",
        "MutableHashTableV2",
        "MutableHashTableOfTensorsV2",
        "MutableDenseHashTableV2",
    }
)
GATHER_OPS = frozenset(
    {
        "GatherV2",
        "Gather",
        "ResourceGather",
        "GatherNd",
        "ResourceGatherNd",
        "SparseSegmentSum",
        "SparseSegmentMean",
        "SparseSegmentSqrtN",
        "SparseSegmentSumWithNumSegments",
        "SparseSegmentMeanWithNumSegments",
        "SparseSegmentSqrtNWithNumSegments",
        "EmbeddingLookupSparse",
    }
)
# Op types whose inputs or outputs are strings: the costly ones on CPU serving paths.
STRING_OPS = frozenset(
    {
        "AsString",
        "StringToHashBucketFast",
        "StringToHashBucketStrong",
        "StringToHashBucket",
        "_TensorToHashBucketFast",
        "StringSplit",
        "StringSplitV2",
        "StringToNumber",
        "RegexReplace",
        "StaticRegexReplace",
        "RegexFullMatch",
        "StaticRegexFullMatch",
        "StringJoin",
        "StringStrip",
        "StringLower",
        "StringUpper",
        "StringLength",
        "Substr",
        "StringFormat",
        "ReduceJoin",
        "UnicodeDecode",
        "UnicodeEncode",
        "Fingerprint",
        "DecodeBase64",
        "EncodeBase64",
    }
)
DTYPE_SIZES = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float64": 8,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "bool": 1,
    "complex64": 8,
    "complex128": 16,
}


def node_name(tensor_or_input: str) -> str:
    """Node name of a tensor name (``a/b:1`` -> ``a/b``) or control input (``^a`` -> ``a``)."""
    name = tensor_or_input[1:] if tensor_or_input.startswith("^") else tensor_or_input
    head, sep, tail = name.rpartition(":")
    return head if sep and tail.isdigit() else name


def canonical_tensor(name: str) -> str:
    """``node`` -> ``node:0``; ``node:1`` stays (control inputs are not tensors)."""
    head, sep, tail = name.rpartition(":")
    return name if sep and tail.isdigit() else name + ":0"


def is_control_input(inp: str) -> bool:
    """True for ``^name`` control inputs."""
    return inp.startswith("^")


def source_through(
    nodes: Mapping[str, Any], name: str, through_ops: Iterable[str], limit: int = 256
) -> str:
    """Follow pass-through nodes (e.g. ``Identity``) up their first input.

    Args:
        nodes: node name -> NodeDef.
        name: a node or tensor name to start from.
        through_ops: op types to walk through.
        limit: at most this many steps (guards against cycles).

    Returns:
        The name of the first node that is not a pass-through (or is missing / has no input).
    """
    ops = frozenset(through_ops)
    current = node_name(name)
    for _ in range(limit):
        node = nodes.get(current)
        if node is None or node.op not in ops or not node.input:
            return current
        current = node_name(node.input[0])
    return current


class LookupTableDict(TypedDict):
    """``LookupTable.to_dict()``: size, dtypes, a few keys and the default value."""

    placeholder: str
    key_dtype: str
    value_dtype: str
    size: int
    sample_keys: list[Any]
    default_value: Any
    origin: str


@dataclass(frozen=True)
class LookupTable:
    """Contents of one lookup table used by the graph.

    Attributes:
        placeholder: name of the ``Placeholder(dtype=resource)`` node standing for the table.
        key_dtype / value_dtype: TensorFlow dtype names.
        keys / values: the table contents, as exported by ``LookupTableExportV2``.
        default_value: the value the find op returns for a missing key, when it is constant.
        origin: short text on where the table came from (e.g. ``captured resource``).
    """

    placeholder: str
    key_dtype: str
    value_dtype: str
    keys: np.ndarray
    values: np.ndarray
    default_value: Any = None
    origin: str = ""

    @property
    def size(self) -> int:
        """Number of entries."""
        return int(self.keys.shape[0])

    def content_digest(self) -> str:
        """A digest of dtypes and contents: equal digests mean identical tables."""
        h = hashlib.sha256()
        h.update(f"{self.key_dtype}|{self.value_dtype}|".encode())
        order = np.argsort(
            self.keys.astype(str) if self.keys.dtype == object else self.keys, kind="stable"
        )
        for arr in (self.keys[order], self.values[order]):
            if arr.dtype == object:
                for v in arr:
                    b = v if isinstance(v, bytes) else str(v).encode()
                    h.update(len(b).to_bytes(4, "little") + b)
            else:
                h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]

    def to_dict(self, max_keys: int = 5) -> LookupTableDict:
        """Summary for JSON: size, dtypes, a few keys (decoded) and the default."""
        sample = [
            k.decode("utf-8", "replace")
            if isinstance(k, bytes)
            else k.item()
            if hasattr(k, "item")
            else k
            for k in self.keys[:max_keys]
        ]
        default = self.default_value
        if isinstance(default, bytes):
            default = default.decode("utf-8", "replace")
        elif hasattr(default, "item"):
            default = default.item()
        return {
            "placeholder": self.placeholder,
            "key_dtype": self.key_dtype,
            "value_dtype": self.value_dtype,
            "size": self.size,
            "sample_keys": sample,
            "default_value": default,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class ModelGraph:
    """A frozen serving graph plus everything needed to run and re-export it.

    Attributes:
        graph_def: frozen ``tf.compat.v1.GraphDef`` (treat as read-only; copy to edit).
        signature: the signature this graph serves.
        input_tensors: signature input key -> tensor name in ``graph_def``.
        output_tensors: signature output key -> tensor name in ``graph_def``.
        tables: lookup tables, keyed by the resource placeholder that stands for them.
        source: the SavedModel directory the graph came from.
        source_format: ``tf2`` (object-graph SavedModel) or ``tf1`` (session-style).
        variable_names: frozen ``Const`` node name -> the variable it was folded from.
    """

    graph_def: Any
    signature: SignatureSpec
    input_tensors: dict[str, str]
    output_tensors: dict[str, str]
    tables: dict[str, LookupTable] = field(default_factory=dict)
    source: str = ""
    source_format: str = "tf2"
    variable_names: dict[str, str] = field(default_factory=dict)

    def table_name(self, const: str) -> str:
        """The name a person knows a frozen table by: the variable it was folded from
        (``item_embedding``, not TensorFlow's capture name ``unknown_4``), with any suffix a
        pass added (``age_embedding/bucketized``); the node name when no variable is known.
        Variables with one name (every Keras ``Embedding`` holds ``embeddings``) are told apart
        by the features read through them (``embeddings[item_id]``)."""
        head, sep, tail = const.partition("/")
        if const in self._variable_labels:
            return self._variable_labels[const]
        if sep and head in self._variable_labels:
            return f"{self._variable_labels[head]}/{tail}"
        return const

    @cached_property
    def _variable_labels(self) -> dict[str, str]:
        """Frozen const -> a unique label from its variable name (see :meth:`table_name`)."""
        counts: dict[str, int] = defaultdict(int)
        for var in self.variable_names.values():
            counts[var] += 1
        labels: dict[str, str] = {}
        for const, var in self.variable_names.items():
            if counts[var] > 1:
                feats = sorted(
                    {f for reader in self._readers(const) for f in self.features_of_node[reader]}
                )
                var = f"{var}[{','.join(feats)}]" if feats else var
            labels[const] = var
        taken: dict[str, int] = defaultdict(int)
        for label in labels.values():
            taken[label] += 1
        return {c: (lab if taken[lab] == 1 else f"{lab}@{c}") for c, lab in labels.items()}

    def _readers(self, name: str) -> list[str]:
        """Nodes reading ``name``'s value, through Identity nodes."""
        from recadvisor.model.queries import walk_data_edges  # queries imports this module

        _, stopped = walk_data_edges(
            self, name, lambda node, _pos, _inp: node.op in ("Identity", "IdentityN")
        )
        return list(dict.fromkeys(reader for reader, _, _ in stopped))

    def names_table(self, names: Any, const: str) -> bool:
        """Whether a plan's list of tables names this one (by variable or node name)."""
        return const in names or self.table_name(const) in names

    def replace(self, **changes: Any) -> ModelGraph:
        """A new ModelGraph with some fields replaced (the index is rebuilt lazily)."""
        return dataclasses.replace(self, **changes)

    def copy_graph_def(self) -> Any:
        """A deep copy of ``graph_def`` for a pass to edit."""
        new = type(self.graph_def)()
        new.CopyFrom(self.graph_def)
        return new

    # ----------------------------------------------------------------- index
    @cached_property
    def nodes(self) -> dict[str, Any]:
        """Node name -> NodeDef."""
        return {n.name: n for n in self.graph_def.node}

    @cached_property
    def consumers(self) -> dict[str, list[str]]:
        """Node name -> names of nodes that read it through a data edge."""
        out: dict[str, list[str]] = defaultdict(list)
        for n in self.graph_def.node:
            for inp in n.input:
                if not is_control_input(inp):
                    out[node_name(inp)].append(n.name)
        return dict(out)

    @cached_property
    def input_nodes(self) -> dict[str, str]:
        """Signature input key -> placeholder node name."""
        return {k: node_name(t) for k, t in self.input_tensors.items()}

    @cached_property
    def output_nodes(self) -> dict[str, str]:
        """Signature output key -> node name."""
        return {k: node_name(t) for k, t in self.output_tensors.items()}

    def ancestors(self, names: Iterable[str], control: bool = True) -> set[str]:
        """All nodes that ``names`` depend on (including ``names``).

        Args:
            names: node names to start from.
            control: follow control edges (``^x``) too.
        """
        seen: set[str] = set()
        queue = deque(n for n in names if n in self.nodes)
        while queue:
            name = queue.popleft()
            if name in seen:
                continue
            seen.add(name)
            for inp in self.nodes[name].input:
                if not control and is_control_input(inp):
                    continue
                src = node_name(inp)
                if src in self.nodes and src not in seen:
                    queue.append(src)
        return seen

    def reachable_from_outputs(self, control: bool = True) -> set[str]:
        """Nodes any signature output depends on."""
        return self.ancestors(self.output_nodes.values(), control=control)

    def topological_order(self) -> list[str]:
        """Node names with every node after the nodes it reads."""
        indeg: dict[str, int] = {}
        children: dict[str, list[str]] = defaultdict(list)
        for n in self.graph_def.node:
            srcs = {node_name(i) for i in n.input if node_name(i) in self.nodes}
            indeg[n.name] = len(srcs)
            for s in srcs:
                children[s].append(n.name)
        queue = deque(sorted(k for k, d in indeg.items() if d == 0))
        order: list[str] = []
        while queue:
            name = queue.popleft()
            order.append(name)
            for c in children[name]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    queue.append(c)
        if len(order) != len(indeg):  # cycles (v1 while loops): append the rest as found
            order.extend(n for n in indeg if n not in set(order))
        return order

    @cached_property
    def features_of_node(self) -> dict[str, frozenset[str]]:
        """Node name -> signature input keys in its data ancestry (the attribution basis)."""
        key_of_placeholder = {v: k for k, v in self.input_nodes.items()}
        result: dict[str, frozenset[str]] = {}
        for name in self.topological_order():
            node = self.nodes[name]
            feats: set[str] = set()
            if name in key_of_placeholder:
                feats.add(key_of_placeholder[name])
            for inp in node.input:
                if is_control_input(inp):
                    continue
                feats |= result.get(node_name(inp), frozenset())
            result[name] = frozenset(feats)
        return result

    def table_of_node(self, name: str) -> str | None:
        """For a table op, the placeholder name of the table it reads (through Identity nodes)."""
        node = self.nodes.get(name)
        if node is None or not node.input:
            return None
        src = source_through(self.nodes, node.input[0], ("Identity", "IdentityN"), limit=64)
        return src if src in self.tables else None

    # ----------------------------------------------------------------- counts
    def op_counts(self) -> dict[str, int]:
        """Op type -> node count, most frequent first."""
        return dict(Counter(n.op for n in self.graph_def.node).most_common())

    def const_bytes(self, name: str) -> int:
        """Bytes of a ``Const`` node's value (0 for other nodes)."""
        node = self.nodes.get(name)
        if node is None or node.op != "Const":
            return 0
        tensor = node.attr["value"].tensor
        if tensor.tensor_content:
            return len(tensor.tensor_content)
        dims = [d.size for d in tensor.tensor_shape.dim]
        count = int(np.prod(dims)) if dims else 1
        return count * dtype_size(tensor.dtype)

    def fingerprint(self) -> str:
        """A stable digest of the graph structure and signature (not of the weights' values)."""
        h = hashlib.sha256()
        h.update(repr(sorted(self.signature.to_dict().items())).encode())
        for n in sorted(self.graph_def.node, key=lambda n: n.name):
            h.update(f"{n.name}|{n.op}|{','.join(n.input)}\n".encode())
        return h.hexdigest()[:16]


def dtype_size(dtype_enum: int) -> int:
    """Byte size of a ``DataType`` enum value (0 when variable-sized, e.g. string)."""
    from recadvisor.tfimport import import_tf

    tf = import_tf()
    dt = tf.dtypes.as_dtype(dtype_enum)
    return 0 if dt == tf.string or dt == tf.resource or dt == tf.variant else dt.size
