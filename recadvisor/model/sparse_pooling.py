"""Feature-column embedding pooling as a dense masked reduction (an ONNX lowering).

Every feature column's ``embedding_column`` (and ``tf.nn.safe_embedding_lookup_sparse`` in
TF1 code) pools ids that ``to_sparse_input`` took from a dense tensor ``x``::

    indices = Where(NotEqual(x, ignore));  values = f(GatherNd(x, indices))
    SparseReshape(...) onto [R, C]              # R rows of C consecutive entries of x
    keep = Where(values >= 0)                   # _prune_invalid_ids
    ids, rows, empty = SparseFillEmptyRows(indices[keep], values[keep], [R, C], 0)
    pooled = SparseSegmentMean(params, ids, rows[:, 0])    # Sum / SqrtN; maybe via Unique
    out = Select(empty, 0, pooled)

where ``f`` is the ids' element-wise transforms (a hash's ``mod``, a lowered vocabulary or
integer table, a mask sentinel mapped back). Entry by entry that is the dense masked reduction

    valid = NotEqual(x, ignore) & (f(x) >= 0)
    rows = Gather(params ++ [zero row], where(valid, f(x), V))    # V: the zero row's index
    out = Reshape(Sum(rows, C axes) / max(Sum(valid, C axes), 1), [-1, D])

(``sqrt`` of the count for SqrtN, no division for Sum; an empty row sums to 0, as the
``Select`` makes it), with the C axes the trailing axes of ``x`` whose product is ``C``. The
reshapes are followed symbolically (each dimension a product of ``x``'s axes), so ``[N, K]``
ids pooled per row (``C = K``) and a sequence column's ``[N, T]`` ids reshaped to ``[N, T, 1]``
then ``[N * T, 1]`` (``C = 1``: no reduction) are both recognised. tf2onnx turns the sparse form
into ~65 ONNX nodes per column (``NonZero``, ``GatherND``, ``ScatterND``, the fill's padding
and sorting); the dense form is ~12, and the same sums up to float reassociation. A
client-split string's ``[N, longest row]`` form is a row of ``x`` per row too, and the
column's final reshape to ``x``'s unpooled axes + ``[D]`` is skipped (the dense form has that
shape).

A sequence column's length, ``SegmentMax(indices[:, c] + 1, indices[:, 0])`` over the same
kind of indices (:class:`SequenceLength`), becomes the per-row maximum of ``position_c + 1``
where the mask holds, cut to ``max present row + 1`` rows like the segment op.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from recadvisor.model.edits import (
    NodeMaker,
    canonical_tensor,
    protected_nodes,
    remove_if_unread,
    resolve_const,
    rewire,
)
from recadvisor.model.graph import ModelGraph, is_control_input, node_name
from recadvisor.model.queries import IDENTITY_OPS, static_shapes, tensor_through

POOLING_OPS = frozenset({"SparseSegmentSum", "SparseSegmentMean", "SparseSegmentSqrtN"})
# Element-wise ops an id transform may use between GatherNd(x, indices) and the pooled ids
# (scalar constants beside them broadcast the same way over [M] values and over x).
ELEMENTWISE_ID_OPS = frozenset(
    {
        "Identity",
        "Cast",
        "Equal",
        "NotEqual",
        "Less",
        "LessEqual",
        "Greater",
        "GreaterEqual",
        "SelectV2",
        "Add",
        "AddV2",
        "Sub",
        "Mul",
        "FloorMod",
        "FloorDiv",
        "Minimum",
        "Maximum",
        "Neg",
        "Abs",
        "LogicalAnd",
        "LogicalOr",
        "LogicalNot",
        "BitwiseAnd",
        "BitwiseOr",
        "BitwiseXor",
        "LeftShift",
        "RightShift",
        "Bucketize",
    }
)
TABLE_FIND = "LookupTableFindV2"
_THROUGH = IDENTITY_OPS | {"Cast"}

# One dimension of a shape vector, symbolically: (constant factor, x's axes multiplied in).
_Dim = tuple[int, tuple[int, ...]]


@dataclass(frozen=True)
class SparsePooling:
    """One ``safe_embedding_lookup_sparse`` over ids taken from a dense tensor.

    Attributes:
        select: the ``Select`` node whose output is the pooled ``[R, D]`` tensor.
        combiner: ``SparseSegmentSum``, ``SparseSegmentMean`` or ``SparseSegmentSqrtN``.
        params: the embedding table tensor (``[V, D]``).
        dim: ``D``.
        float_dtype: the table's dtype name.
        ids_dtype: the ids' dtype name.
        mask: ``NotEqual(x, ignore)``, the entries ``to_sparse_input`` kept.
        x: the dense ids tensor.
        gather_nd: the ``GatherNd(x, Where(mask))`` node.
        values: the pooled ids before pruning (``f(GatherNd(...))``).
        chain: the nodes of ``f``, in graph order.
        pooled_axes: the axes of ``x`` pooled into one row (empty: one entry per row).
        one_per_row: the pooled axes have static size 1 (an ``[N, 1]`` column): a row pools
            one entry or none, so every combiner is the plain sum.
        restoring: readers of ``select`` that reshape it to ``x``'s unpooled axes + ``[D]``.
    """

    select: str
    combiner: str
    params: str
    dim: int
    float_dtype: str
    ids_dtype: str
    mask: str
    x: str
    gather_nd: str
    values: str
    chain: tuple[str, ...]
    pooled_axes: tuple[int, ...]
    one_per_row: bool = False
    restoring: tuple[str, ...] = ()


def _dtype(node: Any, attr: str) -> str:
    from recadvisor.tfimport import import_tf

    return import_tf().dtypes.as_dtype(node.attr[attr].type).name


def _times(a: _Dim, b: _Dim) -> _Dim:
    return a[0] * b[0], tuple(sorted(a[1] + b[1]))


def _const_ints(graph: ModelGraph, tensor: str) -> np.ndarray | None:
    value = resolve_const(graph, tensor)
    if value is None or value.dtype.kind not in "iu":
        return None
    return np.asarray(value).astype(np.int64)


class _ShapeAlgebra:
    """Evaluates small shape computations (``Shape``, slices, ``Prod``, ``Pack``...) as
    products of ``x``'s axes. A vector is a list of dims, a scalar one dim."""

    def __init__(self, graph: ModelGraph, x: str, rank: int) -> None:
        self.graph, self.x, self.rank = graph, x, rank
        self.known: dict[str, list[_Dim]] = {}
        self.opaques: dict[str, int] = {}
        self.tensor_shapes: dict[str, list[_Dim]] = {}  # Shape(t) of tensors other than x

    def opaque(self, tensor: str) -> _Dim:
        """An unknown scalar as a dimension: a negative pseudo-axis, the same for one tensor."""
        token = self.opaques.setdefault(canonical_tensor(tensor), -1 - len(self.opaques))
        return 1, (token,)

    def vector(self, tensor: str) -> list[_Dim] | None:
        value = self.value(tensor)
        return value if isinstance(value, list) else None

    def value(self, tensor: str, depth: int = 0) -> list[_Dim] | _Dim | None:  # noqa: C901, PLR0911, PLR0912
        tensor = tensor_through(self.graph, tensor, _THROUGH)
        if tensor in self.known:
            return self.known[tensor]
        node = self.graph.nodes.get(node_name(tensor))
        if node is None or depth > 32 or not tensor.endswith(":0"):
            return None
        ints = _const_ints(self.graph, tensor)
        if ints is not None:
            if ints.ndim == 0:
                return int(ints), ()
            return [(int(v), ()) for v in ints.ravel()] if ints.ndim == 1 else None
        args = [i for i in node.input if not is_control_input(i)]
        if node.op == "Shape":
            of = canonical_tensor(tensor_through(self.graph, args[0]))
            if of != self.x:
                return self.tensor_shapes.get(of)
            return [(1, (axis,)) for axis in range(self.rank)]
        if node.op == "Pack":
            if node.attr["axis"].i != 0:
                return None
            parts = [self.value(i, depth + 1) for i in args]
            if any(isinstance(p, list) for p in parts):
                return None
            # a packed scalar the algebra cannot read is an opaque dimension of its own
            pairs = zip(parts, args, strict=True)
            return [p if p is not None else self.opaque(i) for p, i in pairs]  # type: ignore[misc]
        if node.op == "ConcatV2":
            pieces = [self.value(i, depth + 1) for i in args[:-1]]
            if not all(isinstance(p, list) for p in pieces):
                return None
            return [d for p in pieces for d in p]  # type: ignore[union-attr]
        source = self.value(args[0], depth + 1) if args else None
        if not isinstance(source, list):
            return None
        if node.op == "Prod":
            axis = _const_ints(self.graph, args[1])
            if axis is None or axis.ravel().tolist() != [0]:
                return None
            product: _Dim = (1, ())
            for d in source:
                product = _times(product, d)
            return [product] if node.attr["keep_dims"].b else product
        if node.op == "GatherV2":
            index, axis = _const_ints(self.graph, args[1]), _const_ints(self.graph, args[2])
            if index is None or axis is None or int(axis) != 0 or node.attr["batch_dims"].i:
                return None
            picked = [source[int(i)] for i in index.ravel() if -len(source) <= i < len(source)]
            if len(picked) != index.size:
                return None
            return picked[0] if index.ndim == 0 else picked
        if node.op == "Slice":
            begin, size = _const_ints(self.graph, args[1]), _const_ints(self.graph, args[2])
            if begin is None or size is None or begin.size != 1 or size.size != 1:
                return None
            start = int(begin[0])
            stop = len(source) if int(size[0]) < 0 else start + int(size[0])
            return source[start:stop] if 0 <= start <= stop <= len(source) else None
        if node.op == "StridedSlice":
            return self._strided(node, args, source)
        return None

    def _strided(self, node: Any, args: list[str], source: list[_Dim]) -> list[_Dim] | _Dim | None:
        begin, end, stride = (_const_ints(self.graph, i) for i in args[1:4])
        if begin is None or end is None or stride is None or begin.size != 1 or stride[0] != 1:
            return None
        if node.attr["ellipsis_mask"].i or node.attr["new_axis_mask"].i:
            return None
        n = len(source)
        start = 0 if node.attr["begin_mask"].i & 1 else int(begin[0])
        start = start + n if start < 0 else start
        if node.attr["shrink_axis_mask"].i & 1:
            return source[start] if 0 <= start < n else None
        stop = n if node.attr["end_mask"].i & 1 else int(end[0])
        stop = stop + n if stop < 0 else stop
        return source[start:stop] if 0 <= start <= stop <= n else None

    def reshaped(self, shape: list[_Dim], new_shape: list[_Dim]) -> list[_Dim] | None:
        """``SparseReshape``'s output shape: ``new_shape`` with a ``-1`` inferred."""
        total: _Dim = (1, ())
        for d in shape:
            total = _times(total, d)
        inferred = [i for i, d in enumerate(new_shape) if d == (-1, ())]
        if len(inferred) > 1 or any(d[0] < 0 for i, d in enumerate(new_shape) if i not in inferred):
            return None
        if not inferred:
            return new_shape
        known: _Dim = (1, ())
        for i, d in enumerate(new_shape):
            if i != inferred[0]:
                known = _times(known, d)
        rest = list(total[1])
        for axis in known[1]:
            if axis not in rest:
                return None
            rest.remove(axis)
        if known[0] == 0 or total[0] % known[0]:
            return None
        out = list(new_shape)
        out[inferred[0]] = (total[0] // known[0], tuple(rest))
        return out


def _node(graph: ModelGraph, tensor: str, op: str | frozenset[str]) -> Any:
    node = graph.nodes.get(node_name(tensor_through(graph, tensor)))
    ops = frozenset({op}) if isinstance(op, str) else op
    return node if node is not None and node.op in ops else None


def _is_zero(graph: ModelGraph, tensor: str) -> bool:
    value = resolve_const(graph, tensor)
    return value is not None and value.size == 1 and float(value.ravel()[0]) == 0.0


def _index_column(graph: ModelGraph, tensor: str) -> tuple[str, int] | None:
    """``(indices, c)`` when ``tensor`` is ``indices[:, c]`` (a shrinking ``StridedSlice``)."""
    node = _node(graph, tensor, "StridedSlice")
    if node is None:
        return None
    begin, end, stride = (_const_ints(graph, i) for i in node.input[1:4])
    if begin is None or end is None or stride is None or begin.size != 2:
        return None
    other_masks = node.attr["ellipsis_mask"].i or node.attr["new_axis_mask"].i
    c = int(begin[1])
    column = begin[0] == 0 and end.tolist() == [0, c + 1] and stride.tolist() == [1, 1]
    full_rows = node.attr["begin_mask"].i & 1 == 1 and node.attr["end_mask"].i & 1 == 1
    if not column or node.attr["shrink_axis_mask"].i != 2 or other_masks or not full_rows:
        return None
    return canonical_tensor(tensor_through(graph, node.input[0])), c


def _row_ids(graph: ModelGraph, tensor: str, fill: str) -> bool:
    """Whether ``tensor`` is ``fill_indices[:, 0]``."""
    return _index_column(graph, tensor) == (f"{fill}:0", 0)


def _pooled_params(graph: ModelGraph, segment: Any, fill: str) -> str | None:
    """The table a pooling reads at the fill's ids: directly, or through ``Unique`` and a
    gather of the unique rows (``embedding_lookup_sparse`` on a variable)."""
    ids = canonical_tensor(tensor_through(graph, segment.input[1]))
    if ids == f"{fill}:1":
        return segment.input[0]
    unique = graph.nodes.get(node_name(ids))
    if unique is None or unique.op != "Unique" or not ids.endswith(":1"):
        return None
    if canonical_tensor(tensor_through(graph, unique.input[0])) != f"{fill}:1":
        return None
    gather = _node(graph, segment.input[0], "GatherV2")
    if gather is None or canonical_tensor(tensor_through(graph, gather.input[1])) != (
        f"{unique.name}:0"
    ):
        return None
    axis = _const_ints(graph, gather.input[2])
    return gather.input[0] if axis is not None and int(axis) == 0 else None


def _select_reader(graph: ModelGraph, fill: Any) -> tuple[Any, Any] | None:
    """The ``Select(Tile(Reshape(empty_rows)), ZerosLike(pooled), pooled)`` after a fill, and
    the pooling node."""
    for reshape_name in graph.consumers.get(fill.name, []):
        reshape = graph.nodes[reshape_name]
        if reshape.op != "Reshape" or canonical_tensor(reshape.input[0]) != f"{fill.name}:2":
            continue
        for tile_name in graph.consumers.get(reshape_name, []):
            tile = graph.nodes[tile_name]
            if tile.op != "Tile":
                continue
            for select_name in graph.consumers.get(tile_name, []):
                select = graph.nodes[select_name]
                if select.op not in ("Select", "SelectV2") or node_name(select.input[0]) != (
                    tile_name
                ):
                    continue
                segment = _node(graph, select.input[2], POOLING_OPS)
                zeros = _node(graph, select.input[1], "ZerosLike")
                if segment is None or zeros is None:
                    continue
                if node_name(tensor_through(graph, zeros.input[0])) != segment.name:
                    continue
                if _row_ids(graph, segment.input[2], fill.name):
                    return select, segment
    return None


def _sparse_origin(
    graph: ModelGraph, indices: str, shape: str
) -> tuple[Any, list[Any], str, str] | None:
    """Follow ``(indices, shape)`` back through ``SparseReshape`` nodes to
    ``(Where(NotEqual(x, ignore)), shape)``: (the mask node, the reshapes outer first, x, the
    origin's shape tensor)."""
    reshapes: list[Any] = []
    for _ in range(8):
        node = graph.nodes.get(node_name(tensor_through(graph, indices)))
        if node is None:
            return None
        if node.op == "SparseReshape":
            same = canonical_tensor(tensor_through(graph, shape, _THROUGH)) == f"{node.name}:1"
            if not same or canonical_tensor(tensor_through(graph, indices)) != f"{node.name}:0":
                return None
            reshapes.append(node)
            indices, shape = node.input[0], node.input[1]
            continue
        mask = _node(graph, node.input[0], "NotEqual") if node.op == "Where" else None
        if mask is None:
            return None
        x = canonical_tensor(tensor_through(graph, mask.input[0]))
        ignore = resolve_const(graph, mask.input[1])
        if ignore is None or ignore.size != 1:
            return None
        return mask, reshapes[::-1], x, shape
    return None


def _pooled_axes(
    graph: ModelGraph, x: str, rank: int, origin_shape: str, reshapes: list[Any]
) -> tuple[tuple[int, ...], _ShapeAlgebra] | None:
    """The axes of ``x`` that one row of the pooled ``[R, C]`` sparse tensor covers (and the
    algebra that followed the shapes).

    The origin's shape is ``Shape(x)``, or, for a 2-D ``x``, ``[N, w]`` with a width the graph
    computes (a client-split string's longest row): then every reshape must keep the shape as
    it is, and a row is a row of ``x``.
    """
    algebra = _ShapeAlgebra(graph, x, rank)
    full = [(1, (axis,)) for axis in range(rank)]
    shape = algebra.vector(origin_shape)
    computed_width = (
        shape is not None
        and rank == 2
        and len(shape) == 2
        and shape[0] == full[0]
        and shape[1][0] == 1
        and len(shape[1][1]) == 1
        and shape[1][1][0] < 0
    )
    if shape != full and not computed_width:
        return None
    for reshape in reshapes:
        new_shape = algebra.vector(reshape.input[2])
        reshaped = algebra.reshaped(shape, new_shape) if new_shape is not None else None
        if reshaped is None or (computed_width and reshaped != shape):
            return None
        shape = reshaped
        algebra.known[f"{reshape.name}:1"] = shape
    if computed_width:
        return (1,), algebra
    if shape is None or len(shape) != 2 or any(d[0] != 1 for d in shape):
        return None
    rows, columns = shape[0][1], shape[1][1]
    split = len(rows)
    if rows != tuple(range(split)) or columns != tuple(range(split, rank)):
        return None
    return columns, algebra


def _restoring_reshapes(
    graph: ModelGraph,
    algebra: _ShapeAlgebra,
    select: str,
    rank: int,
    pooled_axes: tuple[int, ...],
    dim: int,
) -> tuple[str, ...]:
    """The readers of the pooled ``[R, D]`` that reshape it to ``x``'s unpooled axes + ``[D]``
    (``safe_embedding_lookup_sparse``'s last step): the dense form has that shape already."""
    kept = tuple(a for a in range(rank) if a not in pooled_axes)
    algebra.tensor_shapes[f"{select}:0"] = [(1, kept), (dim, ())]
    natural = [(1, (a,)) for a in kept] + [(dim, ())]
    found = []
    for reader in graph.consumers.get(select, []):
        node = graph.nodes[reader]
        if node.op != "Reshape" or canonical_tensor(node.input[0]) != f"{select}:0":
            continue
        if algebra.vector(node.input[1]) == natural:
            found.append(reader)
    return tuple(found)


def _id_chain(graph: ModelGraph, gather_nd: str, values: str) -> list[str] | None:
    """The element-wise nodes from ``GatherNd``'s output to ``values`` (graph order), or None
    when anything else is on the way or beside it (only scalar constants, and a table's
    handle and constant default, may feed it from outside)."""
    target = node_name(values)
    if canonical_tensor(values) == f"{gather_nd}:0":
        return []
    ahead = graph.ancestors([target], control=False)
    chain: set[str] = set()
    frontier = [gather_nd]
    while frontier:
        current = frontier.pop()
        for reader in graph.consumers.get(current, []):
            if reader in ahead and reader not in chain:
                chain.add(reader)
                frontier.append(reader)
    if target not in chain or not values.endswith(":0"):
        return None
    inside = chain | {gather_nd}
    for name in chain:
        node = graph.nodes[name]
        if node.op not in ELEMENTWISE_ID_OPS and node.op != TABLE_FIND:
            return None
        for pos, inp in enumerate(node.input):
            if is_control_input(inp):
                continue
            if node_name(inp) in inside:
                if not canonical_tensor(inp).endswith(":0"):
                    return None
                continue
            if node.op == TABLE_FIND and pos == 0:
                continue  # the table handle
            value = resolve_const(graph, inp)
            if value is None or value.size != 1 or value.ndim > 1:
                return None
    order = {name: i for i, name in enumerate(graph.topological_order())}
    return sorted(chain, key=order.__getitem__)


def _match(
    graph: ModelGraph, fill: Any, shapes: dict[str, tuple[int | None, ...] | None]
) -> SparsePooling | None:
    if len(fill.input) < 4 or not _is_zero(graph, fill.input[3]):
        return None
    index_gather = _node(graph, fill.input[0], "GatherV2")
    value_gather = _node(graph, fill.input[1], "GatherV2")
    if index_gather is None or value_gather is None:
        return None
    keep = canonical_tensor(tensor_through(graph, index_gather.input[1]))
    if canonical_tensor(tensor_through(graph, value_gather.input[1])) != keep:
        return None
    if not all(_is_zero(graph, g.input[2]) for g in (index_gather, value_gather)):
        return None
    values = canonical_tensor(tensor_through(graph, value_gather.input[0]))
    flat = _node(graph, keep, "Reshape")
    where = _node(graph, flat.input[0], "Where") if flat is not None else None
    nonneg = _node(graph, where.input[0], "GreaterEqual") if where is not None else None
    if nonneg is None or canonical_tensor(tensor_through(graph, nonneg.input[0])) != values:
        return None
    if not _is_zero(graph, nonneg.input[1]):
        return None
    reader = _select_reader(graph, fill)
    origin = _sparse_origin(graph, index_gather.input[0], fill.input[2])
    if reader is None or origin is None:
        return None
    select, segment = reader
    mask, reshapes, x, origin_shape = origin
    params = _pooled_params(graph, segment, fill.name)
    static = shapes.get(node_name(x)) if x.endswith(":0") else None
    rank = len(static) if static is not None else None
    if params is None or not rank:
        return None
    axes = _pooled_axes(graph, x, rank, origin_shape, reshapes)
    if axes is None:
        return None
    columns, algebra = axes
    gather_nd = _gather_nd_of(graph, x, mask)
    chain = _id_chain(graph, gather_nd, values) if gather_nd is not None else None
    dim = _table_dim(graph, params)
    if gather_nd is None or chain is None or dim is None:
        return None
    return SparsePooling(
        select=select.name,
        combiner=segment.op,
        params=params,
        dim=dim,
        float_dtype=_dtype(segment, "T"),
        ids_dtype=_dtype(fill, "T"),
        mask=f"{mask.name}:0",
        x=x,
        gather_nd=gather_nd,
        values=values,
        chain=tuple(chain),
        pooled_axes=columns,
        one_per_row=all(static[a] == 1 for a in columns),
        restoring=_restoring_reshapes(graph, algebra, select.name, rank, columns, dim),
    )


def _gather_nd_of(graph: ModelGraph, x: str, mask: Any) -> str | None:
    """The ``GatherNd(x, Where(mask))`` node (``to_sparse_input``'s values)."""
    for where_name in graph.consumers.get(mask.name, []):
        if graph.nodes[where_name].op != "Where":
            continue
        for reader in graph.consumers.get(where_name, []):
            node = graph.nodes[reader]
            if node.op != "GatherNd":
                continue
            if canonical_tensor(tensor_through(graph, node.input[0])) != x:
                continue
            if canonical_tensor(node.input[1]) == f"{where_name}:0":
                return node.name
    return None


def _table_dim(graph: ModelGraph, params: str) -> int | None:
    """``D`` of a ``[V, D]`` constant table (through identities)."""
    value = graph.nodes.get(node_name(tensor_through(graph, params)))
    if value is None or value.op != "Const":
        return None
    dims = [d.size for d in value.attr["value"].tensor.tensor_shape.dim]
    return dims[1] if len(dims) == 2 and dims[1] > 0 else None


class _StaticShapes:
    """The static shapes of one graph, computed on first use (a TensorFlow import of the
    graph), so the finders that share one compute them once, and only when needed."""

    def __init__(self, graph: ModelGraph) -> None:
        self._graph = graph

    @cached_property
    def shapes(self) -> dict[str, tuple[int | None, ...] | None]:
        return static_shapes(self._graph)

    def rank(self, tensor: str) -> int | None:
        """The static rank of ``tensor`` (a node's output 0), or None."""
        static = self.shapes.get(node_name(tensor)) if tensor.endswith(":0") else None
        return None if static is None else len(static)


def find_sparse_poolings(
    graph: ModelGraph, static: _StaticShapes | None = None
) -> list[SparsePooling]:
    """Every embedding pooling of ``graph`` the dense form can replace (see the module doc)."""
    fills = [n for n in graph.graph_def.node if n.op == "SparseFillEmptyRows"]
    if not fills:
        return []
    shapes = (static or _StaticShapes(graph)).shapes
    found = []
    for fill in fills:
        match = _match(graph, fill, shapes)
        if match is not None:
            found.append(match)
    return found


def _ignored_value(graph: ModelGraph, mask: str) -> int | None:
    """``ignore`` when ``mask`` is ``NotEqual(x, ignore)`` of integer ids (a constant scalar)."""
    node = graph.nodes.get(node_name(mask))
    if node is None or node.op != "NotEqual":
        return None
    value = resolve_const(graph, node.input[1])
    if value is None or value.size != 1 or value.dtype.kind not in "iu":
        return None
    return int(value.ravel()[0])


def _restores_ignored(graph: ModelGraph, node: Any, ignore: int | None) -> bool:
    """Whether ``node`` is ``SelectV2(Equal(v, ignore), c, v)``: it maps the value the mask
    drops and passes every other one through (an identity under the mask)."""
    if ignore is None or node.op != "SelectV2":
        return False
    equal = graph.nodes.get(node_name(node.input[0]))
    if equal is None or equal.op != "Equal":
        return False
    value = resolve_const(graph, equal.input[1])
    same = canonical_tensor(equal.input[0]) == canonical_tensor(node.input[2])
    return same and value is not None and value.size == 1 and int(value.ravel()[0]) == ignore


@dataclass(frozen=True)
class _DenseChain:
    """The part of ``f`` (the ids' transforms) that the dense form copies (:func:`_dense_chain`).

    Attributes:
        copied: the chain nodes to copy, in chain order.
        through: each left-out select's output -> the tensor it passes through.
    """

    copied: tuple[str, ...]
    through: dict[str, str]

    def source(self, tensor: str) -> str:
        """``tensor``, or what it passes through when a left-out select makes it."""
        tensor = canonical_tensor(tensor)
        while tensor in self.through:
            tensor = self.through[tensor]
        return tensor


def _dense_chain(graph: ModelGraph, chain: tuple[str, ...], values: str, mask: str) -> _DenseChain:
    """The part of ``f`` (the ids' transforms ``chain``) that the dense form copies: with the
    ``mask`` that selects where ``f(x)`` is read, the selects that only restore the masked-out
    value (an ids_upstream reserved id's) are left out, and the nodes only they read."""
    ignore = _ignored_value(graph, mask)
    skipped = {name for name in chain if _restores_ignored(graph, graph.nodes[name], ignore)}
    through = {f"{name}:0": canonical_tensor(graph.nodes[name].input[2]) for name in skipped}
    needed, frontier = set(), [node_name(values)]
    while frontier:  # the chain nodes values reads, looking through the skipped selects
        name = frontier.pop()
        if name in needed or name not in chain:
            continue
        if name in skipped:
            frontier.append(node_name(through[f"{name}:0"]))
            continue
        needed.add(name)
        frontier.extend(node_name(i) for i in graph.nodes[name].input if not is_control_input(i))
    return _DenseChain(tuple(name for name in chain if name in needed), through)


def _clone_chain(
    make: NodeMaker, graph: ModelGraph, gather_nd: str, x: str, dense: _DenseChain, values: str
) -> str:
    """Copy the ``dense`` part of ``f`` (from ``GatherNd``'s output to ``values``) onto the
    dense ids ``x``; returns the dense ``f(x)``."""
    mapped = {f"{gather_nd}:0": x}

    def tensor(name: str) -> str:
        name = dense.source(name)
        return mapped.get(name, name)

    for name in dense.copied:
        copy = make.graph_def.node.add()
        copy.CopyFrom(graph.nodes[name])
        copy.name = make.fresh("dense_" + name.rsplit("/", 1)[-1])
        for pos, inp in enumerate(copy.input):
            if not is_control_input(inp):
                copy.input[pos] = tensor(inp)
        mapped[f"{name}:0"] = copy.name
    return tensor(values)


_SCALAR_OPS: dict[str, Any] = {
    "Equal": np.equal,
    "NotEqual": np.not_equal,
    "Less": np.less,
    "LessEqual": np.less_equal,
    "Greater": np.greater,
    "GreaterEqual": np.greater_equal,
    "AddV2": np.add,
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "FloorMod": np.mod,
    "Maximum": np.maximum,
    "Minimum": np.minimum,
    "LogicalAnd": np.logical_and,
    "LogicalOr": np.logical_or,
}


def _dense_chain_at(
    graph: ModelGraph, gather_nd: str, dense: _DenseChain, values: str, x: int
) -> int | None:
    """The ``dense`` part of ``f`` applied to one integer id, computed here from the chain's
    constants and tables; None when the chain holds an op this does not evaluate."""
    known: dict[str, Any] = {f"{gather_nd}:0": np.int64(x)}

    def value(name: str) -> Any:
        name = dense.source(name)
        if name in known:
            return known[name]
        const = resolve_const(graph, name)
        return None if const is None or const.size != 1 else const.reshape(())

    with np.errstate(all="ignore"):  # int64 wrap-around, as TensorFlow's
        for name in dense.copied:
            node = graph.nodes[name]
            args = [value(i) for i in node.input if not is_control_input(i)]
            if node.op == TABLE_FIND:
                table = graph.tables.get(graph.table_of_node(name) or "")
                if table is None or args[1] is None or args[2] is None:
                    return None
                hit = np.flatnonzero(np.asarray(table.keys) == args[1])
                known[f"{name}:0"] = table.values[hit[0]] if hit.size else args[2]
                continue
            if any(a is None for a in args):
                return None
            if node.op == "Identity":
                known[f"{name}:0"] = args[0]
            elif node.op == "Cast":  # int64 -> uint64 keeps the bits, as TensorFlow's
                known[f"{name}:0"] = np.asarray(args[0]).astype(_dtype(node, "DstT"))
            elif node.op == "SelectV2":
                known[f"{name}:0"] = args[1] if bool(args[0]) else args[2]
            elif node.op in _SCALAR_OPS:
                known[f"{name}:0"] = _SCALAR_OPS[node.op](*args)
            else:
                return None
    result = value(values)
    return None if result is None or np.asarray(result).dtype.kind not in "iu" else int(result)


@dataclass(frozen=True)
class DenseScatter:
    """``SparseToDense(indices, shape, values, default)`` of a sparse tensor ``to_sparse_input``
    took from ``x`` unreshaped (an ``indicator_column``'s ids): ``where(mask, f(x), default)``.

    Attributes:
        node: the ``SparseToDense`` node.
        mask / x / gather_nd / values / chain: as in :class:`SparsePooling`.
        default: the default value tensor.
        dtype: the values' dtype name.
    """

    node: str
    mask: str
    x: str
    gather_nd: str
    values: str
    chain: tuple[str, ...]
    default: str
    dtype: str


def find_dense_scatters(
    graph: ModelGraph, static: _StaticShapes | None = None
) -> list[DenseScatter]:
    """Every :class:`DenseScatter` of ``graph``."""
    static = static or _StaticShapes(graph)
    found = []
    for node in graph.graph_def.node:
        if node.op != "SparseToDense" or len(node.input) < 4:
            continue
        origin = _sparse_origin(graph, node.input[0], node.input[1])
        if origin is None or origin[1]:
            continue
        mask, _, x, origin_shape = origin
        rank = static.rank(x)
        if not rank or _ShapeAlgebra(graph, x, rank).vector(origin_shape) != [
            (1, (axis,)) for axis in range(rank)
        ]:
            continue
        values = canonical_tensor(tensor_through(graph, node.input[2]))
        gather_nd = _gather_nd_of(graph, x, mask)
        chain = _id_chain(graph, gather_nd, values) if gather_nd is not None else None
        default = resolve_const(graph, node.input[3])
        if chain is None or default is None or default.size != 1:
            continue
        found.append(
            DenseScatter(
                node.name,
                f"{mask.name}:0",
                x,
                gather_nd,
                values,
                tuple(chain),
                node.input[3],
                _dtype(node, "T"),
            )
        )
    return found


def _one_hot_alike(graph: ModelGraph, scatter: DenseScatter, dense: str) -> bool:
    """Whether ``where(mask, dense, default)`` one-hots like ``dense``: every reader is a
    ``OneHot`` of it, ``dense`` is ``x`` itself and the ignored value and the default are
    both negative (a row of zeros either way)."""
    ignore = _ignored_value(graph, scatter.mask)
    default = resolve_const(graph, scatter.default)
    if dense != scatter.x or ignore is None or ignore >= 0 or default is None:
        return False
    readers = [graph.nodes[r] for r in graph.consumers.get(scatter.node, [])]
    return (
        int(default.ravel()[0]) < 0
        and bool(readers)
        and all(
            r.op == "OneHot"
            and canonical_tensor(r.input[0]) == f"{scatter.node}:0"
            and all(node_name(i) != scatter.node for i in r.input[1:])
            for r in readers
        )
    )


def fuse_sparse_poolings(graph: ModelGraph) -> tuple[ModelGraph, dict[str, int]]:
    """Replace each pooling :func:`find_sparse_poolings` finds by its dense form (its readers
    read the new ``[R, D]`` tensor) and each :class:`SequenceLength` by its dense form; the
    sparse nodes only they needed go, with the control edges an output ``NoOp`` kept to them
    (a variable gather's).

    Returns:
        (the new graph, replacements by kind: ``SparseSegmentPooling``, ``SegmentMax``).
    """
    graph_def = graph.copy_graph_def()
    names = {n.name for n in graph_def.node}
    fused: list[str] = []
    bypassed: list[str] = []
    counts: Counter[str] = Counter()
    padded_tables: dict[str, tuple[str, int]] = {}  # table -> (it with a zero row, that row)
    static = _StaticShapes(graph)  # shared by the three finders
    for pooling in find_sparse_poolings(graph, static):
        make = NodeMaker(graph_def, names, pooling.select)
        t, ids = f"dtype:{pooling.float_dtype}", f"dtype:{pooling.ids_dtype}"
        i32 = "dtype:int32"
        dense = _dense_chain(graph, pooling.chain, pooling.values, pooling.mask)
        dense_ids = _clone_chain(make, graph, pooling.gather_nd, pooling.x, dense, pooling.values)
        zero_id = make.const("zero_id", 0, np.dtype(pooling.ids_dtype))
        valid = make.op("nonneg", "GreaterEqual", [dense_ids, zero_id], T=ids)
        ignore = _ignored_value(graph, pooling.mask)
        at_ignored = None
        if ignore is not None:
            at_ignored = _dense_chain_at(graph, pooling.gather_nd, dense, pooling.values, ignore)
        if at_ignored is None or at_ignored >= 0:  # else f(x) >= 0 implies the mask
            valid = make.op("valid", "LogicalAnd", [pooling.mask, valid])
        # an invalid entry reads an appended zero row: no mask multiply over [..., D]
        padded, zero_row = padded_tables.get(pooling.params, ("", 0))
        if not padded:
            table = resolve_const(graph, pooling.params)
            zero_row = int(table.shape[0])
            padded = make.const("padded_table", np.concatenate([table, table[:1] * 0]), table.dtype)
            padded_tables[pooling.params] = (padded, zero_row)
        zero_row_id = make.const("zero_row", zero_row, np.dtype(pooling.ids_dtype))
        safe = make.op("safe_ids", "SelectV2", [valid, dense_ids, zero_row_id], T=ids)
        pooled = make.op(
            "rows",
            "GatherV2",
            [padded, safe, make.const("axis0", 0, np.int32)],
            Tparams=t,
            Tindices=ids,
            Taxis=i32,
            batch_dims=0,
        )
        last = make.const("last", -1, np.int32)
        if pooling.pooled_axes:
            axes = make.const("pooled_axes", list(pooling.pooled_axes), np.int32)
            pooled = make.op("sums", "Sum", [pooled, axes], T=t, Tidx=i32, keep_dims=False)
            if pooling.combiner != "SparseSegmentSum" and not pooling.one_per_row:
                weight = make.op(
                    "weight", "Cast", [valid], SrcT="dtype:bool", DstT=t, Truncate=False
                )
                count = make.op("count", "Sum", [weight, axes], T=t, Tidx=i32, keep_dims=False)
                one = make.const("one", 1, np.dtype(pooling.float_dtype))
                denom = make.op("denom", "Maximum", [count, one], T=t)
                if pooling.combiner == "SparseSegmentSqrtN":
                    denom = make.op("sqrt_denom", "Sqrt", [denom], T=t)
                wide = make.op("denom_col", "ExpandDims", [denom, last], T=t, Tdim=i32)
                pooled = make.op("pooled", "RealDiv", [pooled, wide], T=t)
        shape = make.const("out_shape", [-1, pooling.dim], np.int32)
        out = make.op("dense_pooled", "Reshape", [pooled, shape], T=t, Tshape=i32)
        rewire(graph_def, pooling.select, out)
        for reshape in pooling.restoring:  # already in that shape: skip both reshapes
            rewire(graph_def, reshape, pooled)
        fused.append(pooling.select)
        bypassed.extend(pooling.restoring)
        counts["SparseSegmentPooling"] += 1
    for scatter in find_dense_scatters(graph, static):
        make = NodeMaker(graph_def, names, scatter.node)
        kept = _dense_chain(graph, scatter.chain, scatter.values, scatter.mask)
        dense = _clone_chain(make, graph, scatter.gather_nd, scatter.x, kept, scatter.values)
        t = f"dtype:{scatter.dtype}"
        if _one_hot_alike(graph, scatter, dense):
            out = dense
        else:
            out = make.op("dense", "SelectV2", [scatter.mask, dense, scatter.default], T=t)
        rewire(graph_def, scatter.node, out)
        fused.append(scatter.node)
        counts["SparseToDense"] += 1
    for node in graph.graph_def.node:  # a bucketized column's indicator: its values, one a row
        if node.op == "SparseToDense" and every_row_once(graph, node.input[0], node.input[1]):
            make = NodeMaker(graph_def, names, node.name)
            column = make.const("column", [-1, 1], np.int32)
            attrs = {"T": f"dtype:{_dtype(node, 'T')}", "Tshape": "dtype:int32"}
            rows = bucket_values(make, graph, node.input[2])
            out = make.op("rows", "Reshape", [rows, column], **attrs)
            rewire(graph_def, node.name, out)
            fused.append(node.name)
            counts["SparseToDense"] += 1
    for length in find_sequence_lengths(graph, static):
        out = _lower_sequence_length(NodeMaker(graph_def, names, length.node), length)
        rewire(graph_def, length.node, out)
        make = NodeMaker(graph_def, names, length.node)
        for reshape, ones in length.reshapes:  # its shape output, without the reshape
            x_type = f"dtype:{length.x_dtype}"
            shape = make.op("x_shape", "Shape", [length.x], T=x_type, out_type="dtype:int64")
            ones_tensor = make.const("ones", [1] * ones, np.int64)
            axis0 = make.const("axis0", 0, np.int32)
            attrs = {"T": "dtype:int64", "Tidx": "dtype:int32", "N": 2}
            full = make.op("shape", "ConcatV2", [shape, ones_tensor, axis0], **attrs)
            rewire(graph_def, f"{reshape}:1", full)
        fused.append(length.node)
        counts["SegmentMax"] += 1
    if not fused:
        return graph, {}
    region = graph.ancestors(fused, control=False)
    result = graph.replace(graph_def=graph_def)
    dead = region - result.ancestors(result.output_nodes.values(), control=False)
    for node in graph_def.node:
        kept = [i for i in node.input if not (is_control_input(i) and node_name(i) in dead)]
        if len(kept) != len(node.input):
            del node.input[:]
            node.input.extend(kept)
    remove_if_unread(graph_def, dead | set(bypassed), protected_nodes(graph))
    return graph.replace(graph_def=graph_def), dict(counts)


@dataclass(frozen=True)
class SequenceLength:
    """A ``SegmentMax(indices[:, c] + 1, indices[:, 0])`` over the indices of a sparse tensor
    taken from a dense ``x`` (a sequence feature column's length: the last present position
    of each row, + 1).

    Attributes:
        node: the ``SegmentMax`` node.
        mask: ``NotEqual(x, ignore)``.
        x: the dense ids.
        rank: ``x``'s rank.
        column: ``c``, an axis of ``x``.
        dtype: the segment max's dtype name (int32 or int64).
        x_dtype: ``x``'s dtype name.
        reshapes: the ``SparseReshape`` nodes on the way, each with the count of 1s its output
            shape appends to ``Shape(x)``.
    """

    node: str
    mask: str
    x: str
    rank: int
    column: int
    dtype: str
    x_dtype: str
    reshapes: tuple[tuple[str, int], ...] = ()


def _plus_one(graph: ModelGraph, tensor: str) -> str | None:
    """``t`` when ``tensor`` is ``t + 1`` (a constant 1 or ``Fill(Shape(t), 1)``)."""
    node = _node(graph, tensor, frozenset({"Add", "AddV2"}))
    if node is None:
        return None
    t, one = node.input[0], node.input[1]
    value = resolve_const(graph, one)
    if value is None:
        fill = _node(graph, one, "Fill")
        shape = _node(graph, fill.input[0], "Shape") if fill is not None else None
        if shape is None or canonical_tensor(tensor_through(graph, shape.input[0])) != (
            canonical_tensor(tensor_through(graph, t))
        ):
            return None
        value = resolve_const(graph, fill.input[1])
    if value is None or value.size != 1 or int(value.ravel()[0]) != 1:
        return None
    return t


def _appended_ones(
    graph: ModelGraph, x: str, rank: int, origin_shape: str, reshapes: list[Any]
) -> tuple[tuple[str, int], ...] | None:
    """When every reshape only appends dimensions of 1 to ``Shape(x)`` (the first ``rank``
    index columns stay ``x``'s coordinates): each reshape with how many 1s its output shape
    has after ``Shape(x)``; else None."""
    algebra = _ShapeAlgebra(graph, x, rank)
    full = [(1, (axis,)) for axis in range(rank)]
    shape = algebra.vector(origin_shape) if reshapes else full
    if shape != full:
        return None
    out = []
    for reshape in reshapes:
        new_shape = algebra.vector(reshape.input[2])
        reshaped = algebra.reshaped(shape, new_shape) if new_shape is not None else None
        if (
            reshaped is None
            or reshaped[:rank] != full
            or any(d != (1, ()) for d in reshaped[rank:])
        ):
            return None
        shape = reshaped
        algebra.known[f"{reshape.name}:1"] = shape
        out.append((reshape.name, len(reshaped) - rank))
    return tuple(out)


def find_sequence_lengths(
    graph: ModelGraph, static: _StaticShapes | None = None
) -> list[SequenceLength]:
    """Every :class:`SequenceLength` of ``graph``."""
    static = static or _StaticShapes(graph)
    found = []
    for node in graph.graph_def.node:
        if node.op != "SegmentMax":
            continue
        rows = _index_column(graph, node.input[1])
        data = _plus_one(graph, node.input[0])
        column = _index_column(graph, data) if data is not None else None
        if rows is None or column is None or rows[1] != 0 or column[0] != rows[0]:
            continue
        indices = graph.nodes.get(node_name(rows[0]))
        shape = f"{indices.name}:1" if indices is not None else ""
        origin = _sparse_origin(graph, rows[0], shape) if indices is not None else None
        if origin is None:
            continue
        mask, reshapes, x, origin_shape = origin
        rank = static.rank(x)
        if not rank or not 0 < column[1] < rank:
            continue
        ones = _appended_ones(graph, x, rank, origin_shape, reshapes)
        if ones is None:
            continue
        dtype = _dtype(node, "T")
        if dtype not in ("int32", "int64"):
            continue
        found.append(
            SequenceLength(
                node.name, f"{mask.name}:0", x, rank, column[1], dtype, _dtype(mask, "T"), ones
            )
        )
    return found


def _lower_sequence_length(make: NodeMaker, length: SequenceLength) -> str:
    """``SegmentMax(indices[:, c] + 1, rows)`` from the mask: per row of ``x`` the largest
    ``position_c + 1`` where the mask holds (0 where it never does), cut to ``max present row
    + 1`` rows like the segment op."""
    t, i32 = f"dtype:{length.dtype}", "dtype:int32"
    np_t = np.dtype(length.dtype)
    axis0 = make.const("axis0", 0, np.int32)
    zero, one = make.const("zero", 0, np_t), make.const("one", 1, np_t)
    shape = make.op("x_shape", "Shape", [length.x], T=f"dtype:{length.x_dtype}", out_type=t)

    def element(suffix: str, vector: str, index: int) -> str:
        return make.strided(suffix, vector, index, index + 1, dtype=length.dtype, shrink=True)

    width = element("width", shape, length.column)
    positions = make.op(
        "positions", "Range", [one, make.op("end", "AddV2", [width, one], T=t), one], Tidx=t
    )
    grid = [1] * length.rank
    grid[length.column] = -1
    along = make.op(
        "along", "Reshape", [positions, make.const("grid", grid, np.int32)], T=t, Tshape=i32
    )
    present = make.op("present", "SelectV2", [length.mask, along, zero], T=t)
    others = make.const("others", list(range(1, length.rank)), np.int32)
    per_row = make.op("per_row", "Max", [present, others], T=t, Tidx=i32, keep_dims=False)
    hit = make.op("hit", "Cast", [length.mask], SrcT="dtype:bool", DstT=t, Truncate=False)
    any_hit = make.op("any_hit", "Max", [hit, others], T=t, Tidx=i32, keep_dims=False)
    n = element("n", shape, 0)
    row_numbers = make.op(
        "row_numbers", "Range", [one, make.op("n1", "AddV2", [n, one], T=t), one], Tidx=t
    )
    last = make.op("last_rows", "Mul", [row_numbers, any_hit], T=t)
    padded = make.op(
        "padded", "ConcatV2", [last, make.const("none", [0], np_t), axis0], T=t, Tidx=i32, N=2
    )
    count = make.op("count", "Max", [padded, axis0], T=t, Tidx=i32, keep_dims=True)
    return make.op(
        "lengths",
        "Slice",
        [per_row, make.const("begin", [0], np_t), count],
        T=t,
        Index=t,
    )


def _built_in_order(graph: ModelGraph, indices: str) -> bool:
    """Whether sparse ``indices`` are row-major by construction: a ``Where``, or computed from
    shapes only (a bucketized column's ``[range(N), 0]`` grid) with no signature input read
    for its values."""
    node = graph.nodes.get(node_name(tensor_through(graph, indices)))
    if node is None:
        return False
    if node.op == "Where":
        return True
    frontier, seen = [node.name], set()
    while frontier:
        current = graph.nodes[frontier.pop()]
        if current.name in seen:
            continue
        seen.add(current.name)
        if current.op == "Placeholder":
            return False
        if current.op in ("Shape", "Size", "Rank"):
            continue
        frontier.extend(node_name(i) for i in current.input if not is_control_input(i))
    return True


def one_per_row_cross(
    graph: ModelGraph, node: Any, shapes: dict[str, tuple[int | None, ...] | None]
) -> bool:
    """Whether every sparse column of the ``SparseCross`` ``node`` is ``[N, 1]`` (at most one
    value per row) with row-major indices, and every dense column ``[N, 1]`` (``shapes``: the
    static shapes, :func:`~recadvisor.model.queries.static_shapes`)."""
    n_sparse = len(node.attr["sparse_types"].list.type)
    inputs = [i for i in node.input if not is_control_input(i)]
    if not n_sparse:
        return False
    algebra = _ShapeAlgebra(graph, "", 0)
    for k in range(n_sparse):
        shape_tensor = tensor_through(graph, inputs[2 * n_sparse + k], _THROUGH)
        shape_node = graph.nodes.get(node_name(shape_tensor))
        if shape_node is not None and shape_node.op == "Shape":
            static = shapes.get(node_name(tensor_through(graph, shape_node.input[0])))
            width_one = static is not None and len(static) == 2 and static[1] == 1
        else:
            vector = algebra.vector(shape_tensor)
            width_one = vector is not None and len(vector) == 2 and vector[1] == (1, ())
        if not width_one or not _built_in_order(graph, inputs[k]):
            return False
    for dense in inputs[3 * n_sparse :]:
        static = shapes.get(node_name(tensor_through(graph, dense)))
        if static is None or len(static) != 2 or static[1] != 1:
            return False
    return True


@dataclass(frozen=True)
class DenseColumn:
    """A sparse tensor ``to_sparse_input`` took from an ``[N, 1]`` tensor ``x`` unreshaped, as a
    value and a presence per row (see :func:`dense_column`)."""

    mask: str
    x: str
    gather_nd: str
    values: str
    chain: tuple[str, ...]


def dense_column(
    graph: ModelGraph,
    indices: str,
    values: str,
    shape: str,
    shapes: dict[str, tuple[int | None, ...] | None],
) -> DenseColumn | None:
    """``(indices, values, shape)`` as :class:`DenseColumn` when they are
    ``Where(NotEqual(x, ignore))``, ``f(GatherNd(x, ...))`` and ``Shape(x)`` of an ``[N, 1]``
    ``x`` (``shapes``: the static shapes), ``f`` holding no table lookup; else None."""
    origin = _sparse_origin(graph, indices, shape)
    if origin is None or origin[1]:
        return None
    mask, _, x, origin_shape = origin
    static = shapes.get(node_name(x)) if x.endswith(":0") else None
    if static is None or len(static) != 2 or static[1] != 1:
        return None
    if _ShapeAlgebra(graph, x, 2).vector(origin_shape) != [(1, (0,)), (1, (1,))]:
        return None
    values = canonical_tensor(tensor_through(graph, values))
    gather_nd = _gather_nd_of(graph, x, mask)
    chain = _id_chain(graph, gather_nd, values) if gather_nd is not None else None
    # a copied table lookup would come too late for the lowering that runs this
    if gather_nd is None or chain is None or any(graph.nodes[c].op == TABLE_FIND for c in chain):
        return None
    return DenseColumn(f"{mask.name}:0", x, gather_nd, values, tuple(chain))


def emit_dense_column(make: NodeMaker, graph: ModelGraph, column: DenseColumn) -> tuple[str, str]:
    """Add the nodes of a :class:`DenseColumn`'s ``[N, 1]`` value (``f(x)``; any value where
    absent) and ``[N]`` presence (the mask); returns (value, presence)."""
    kept = _dense_chain(graph, column.chain, column.values, column.mask)
    dense = _clone_chain(make, graph, column.gather_nd, column.x, kept, column.values)
    flat = make.const("flat", [-1], np.int32)
    present = make.op(
        "dense_present", "Reshape", [column.mask, flat], T="dtype:bool", Tshape="dtype:int32"
    )
    return dense, present


def _range_limit(graph: ModelGraph, tensor: str) -> str | None:
    """``n`` when ``tensor`` is ``Range(0, n, 1)``, possibly reshaped to a column and back."""
    through = _THROUGH | {"Reshape", "ExpandDims"}
    node = graph.nodes.get(node_name(tensor_through(graph, tensor, through)))
    if node is None or node.op != "Range":
        return None
    start, delta = (
        resolve_const(graph, tensor_through(graph, i, _THROUGH))
        for i in (node.input[0], node.input[2])
    )
    if start is None or delta is None or int(start) != 0 or int(delta) != 1:
        return None
    return canonical_tensor(tensor_through(graph, node.input[1], _THROUGH))


def _zero_tile(graph: ModelGraph, node: Any) -> bool:
    """Whether ``node`` is a ``Tile`` of the constant ``[0]`` (zeros, however many)."""
    if node is None or node.op != "Tile":
        return False
    zero = resolve_const(graph, node.input[0])
    return zero is not None and zero.shape == (1,) and int(zero[0]) == 0


def _repeated_zero(graph: ModelGraph, tensor: str, n: str) -> bool:
    """Whether ``tensor`` is ``Tile([0], [n])`` (a zero per row)."""
    node = graph.nodes.get(node_name(tensor_through(graph, tensor)))
    if not _zero_tile(graph, node):
        return False
    multiples = graph.nodes.get(node_name(tensor_through(graph, node.input[1], _THROUGH)))
    if multiples is None or multiples.op not in ("ExpandDims", "Pack"):
        return False
    if multiples.op == "ExpandDims" and resolve_const(graph, multiples.input[1]) is None:
        return False
    return canonical_tensor(tensor_through(graph, multiples.input[0], _THROUGH)) == n


def _is_zeros(graph: ModelGraph, tensor: str) -> bool:
    """Whether ``tensor`` is ``Tile`` of a constant ``[0]`` (zeros), or such zeros times a
    constant."""
    node = graph.nodes.get(node_name(tensor_through(graph, tensor, _THROUGH)))
    if node is not None and node.op == "Mul":
        scales = [resolve_const(graph, i) for i in node.input[:2]]
        return any(
            scale is not None and scale.size == 1 and _is_zeros(graph, other)
            for scale, other in zip(scales, reversed(node.input[:2]), strict=True)
        )
    return _zero_tile(graph, node)


def bucket_values(make: NodeMaker, graph: ModelGraph, values: str) -> str:
    """The values of an :func:`every_row_once` sparse tensor without their column offset: a
    bucketized column adds ``(len(boundaries) + 1) * Tile(range(width), [n])`` to its
    flattened buckets, which for a one-column input is ``+ 0`` per row (same length: a value
    per row). A ``Cast`` after the sum is re-added on the buckets. Returns ``values`` when it
    is not that sum."""
    node = graph.nodes.get(node_name(tensor_through(graph, values)))
    if node is None or not canonical_tensor(values).endswith(":0"):
        return values
    if node.op == "Cast":
        inner = bucket_values(make, graph, node.input[0])
        if inner == node.input[0]:
            return values
        src, dst = (f"dtype:{_dtype(node, attr)}" for attr in ("SrcT", "DstT"))
        return make.op("buckets", "Cast", [inner], SrcT=src, DstT=dst, Truncate=False)
    if node.op not in ("Add", "AddV2"):
        return values
    for kept, zeros in (node.input[:2], reversed(node.input[:2])):
        if _is_zeros(graph, zeros) and graph.nodes.get(node_name(kept)) is not None:
            return canonical_tensor(kept)
    return values


def every_row_once(graph: ModelGraph, indices: str, shape: str) -> bool:
    """Whether a sparse tensor's ``indices`` are ``(i, 0)`` for every row ``i < n`` in order and
    its shape ``[n, 1]``: a bucketized column's sparse form of a one-column input
    (``Transpose(Pack(Range(0, n), Tile([0], [n])))``). Its values are then one per row."""
    node = graph.nodes.get(node_name(tensor_through(graph, indices, _THROUGH)))
    if node is None or node.op != "Transpose":
        return False
    perm = resolve_const(graph, node.input[1])
    pack = graph.nodes.get(node_name(tensor_through(graph, node.input[0])))
    if perm is None or perm.tolist() != [1, 0] or pack is None or pack.op != "Pack":
        return False
    if pack.attr["axis"].i != 0 or len(pack.input) != 2:
        return False
    n = _range_limit(graph, pack.input[0])
    if n is None or not _repeated_zero(graph, pack.input[1], n):
        return False
    dims = graph.nodes.get(node_name(tensor_through(graph, shape, _THROUGH)))
    if dims is None or dims.op != "Pack" or len(dims.input) != 2 or dims.attr["axis"].i != 0:
        return False
    one = resolve_const(graph, dims.input[1])
    same_rows = canonical_tensor(tensor_through(graph, dims.input[0], _THROUGH)) == n
    return same_rows and one is not None and int(one) == 1
