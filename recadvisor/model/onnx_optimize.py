"""Clean-up of the ONNX graph tf2onnx writes, before it is checked and saved.

tf2onnx converts op by op, so a recommender graph reaches onnxruntime with patterns that cost a
kernel launch each (~1 us at batch 1, where a whole model runs in 20-60 us) or a pass over the
batch at 256, and that onnxruntime's own optimizer does not remove because they are not
equivalent for every input, only for the graphs TensorFlow produced. The passes, in order:

1. ``restore_where``: tf2onnx writes ``SelectV2(c, a, b)`` as
   ``Cast(c) * a + b * Cast(Not(c))`` (a comment there says ``Where`` was slow in an old
   onnxruntime). That is 6 nodes, and wrong where ``a`` or ``b`` is inf or NaN
   (``0 * inf = NaN``). It becomes ``Where(c, a, b)``: TensorFlow's own semantics, exact.
2. ``drop_index_wrap``: Keras 3 embeddings compute ``where(i < 0, i + n, i)`` before the gather
   (Python-style negative indices; tf2onnx adds a ``Cast`` to float for the comparison). ONNX
   ``Gather`` takes indices in ``[-n, n)`` with that very meaning, so the gather reads ``i``
   directly when ``n`` is the table's row count; an index outside ``[-n, n)`` fails in both.
3. ``fold_gather_mask``: ``Where(i != k, Gather(T, i), v)`` (a padding mask beside an
   embedding lookup, e.g. Keras ``mask_zero`` before a masked mean) becomes ``Gather(T', i)``
   where row ``k`` of ``T'`` holds ``v``: the select picks ``v`` exactly where the index is
   ``k``. A table other nodes also read is copied (up to 16 MiB).
4. ``fold_casts``: ``Cast(Cast(x, T1), T2)`` -> ``Cast(x, T2)`` when ``T1`` holds every value of
   ``x``'s type (bool -> int32 -> float, int32 -> int64 -> ...), and a ``Cast`` to the type
   ``x`` already has is dropped. A cast that can change a value (int64 -> float -> int64)
   stays.
5. ``drop_noop_slices``: a ``Slice`` from 0 to the end with step 1 on every axis it names
   (tf2onnx writes one for ``x[:, :, None]``-style strided slices) is dropped, and an
   ``Unsqueeze`` followed by a ``Squeeze`` of the same axes cancels.
6. ``tensordot_to_matmul``: a Keras ``Dense`` as tf2onnx writes ``tf.tensordot`` (``Reshape``
   to ``[-1, K]``, ``MatMul``, ``Reshape`` back to a shape computed with ``Shape``, ``Cast``,
   ``Gather``, ``Concat``, ``Cast``) becomes one ``MatMul`` (broadcast over the leading axes;
   the same GEMM, exact): seven nodes less per dense layer, and a rank-2 input meets the next
   pass.
7. ``matmul_add_to_gemm``: ``MatMul(A, W) + b`` with ``A`` of rank 2 and ``W``, ``b``
   constants becomes one ``Gemm`` (onnxruntime then fuses a following ``Relu`` into it).
   onnxruntime does this itself only where its own shape inference proves the rank, which
   fails after a ``Concat`` of gathers. Float reassociation: the bias is added inside the GEMM.
8. ``batched_dot_to_reduce``: Keras ``Dot(axes=1)`` of two ``[N, K]`` towers (``Unsqueeze``,
   ``Unsqueeze``, a batch of N ``[1, K] x [K, 1]`` ``MatMul``s, ``Squeeze``) becomes
   ``ReduceSum(a * b, axis 1)``. Float reassociation.
9. ``outer_matmul_to_mul``: a ``MatMul`` whose contraction has length 1 (``[..., M, 1] x
   [..., 1, N]``: xDeepFM's CIN outer products, ``D * N`` tiny GEMMs) becomes a broadcasting
   ``Mul``. Exact (one product per output, no sum).
10. ``int_bucketize_to_gather``: the lowered ``Bucketize`` of an integer input (``N * len(b)``
    comparisons and a row count) becomes a gather over the bucket of every integer between the
    boundaries, the input clipped to that range. Exact.
11. ``drop_broadcast_tile``: a ``Tile`` that only feeds broadcasting arithmetic which would
    repeat its input the same way (a ``[N, T, 1]`` mask tiled to ``[N, T, D]`` before a
    ``Mul``) is bypassed. Exact.
    ``fold_multiplied_mask`` (run right after it): ``Gather(T, i) * Cast(m)`` with a bool
    sequence mask in the ids' layout plus a trailing 1 (DeepMatch's and DeepCTR's sequence
    pooling) becomes a gather from ``T`` with a zero row appended at ``Where(m, i, V)``: no
    ``[N, T, D]`` multiply. Exact up to the sign of a zero (the table must be finite).
12. ``drop_unit_reduce``: a ``ReduceSum`` over axes of length 1 becomes a ``Squeeze`` (or
    nothing with ``keepdims``). Exact.
13. ``fold_conv_channel_bias``: ``Add(Squeeze(Conv), b)`` with a per-channel constant ``b``
    (tf2onnx's ``conv1d`` + ``BiasAdd``) becomes the Conv's own bias. Exact.
14. ``conv1x1_to_matmul``: a 1x1 ``Conv`` of a ``Transpose`` whose channels are the source's
    last axis becomes ``Transpose(MatMul(source, W^T) + B)``: one GEMM instead of onnxruntime's
    blocked-layout reorders around a convolution (xDeepFM's CIN). Float reassociation.
15. ``split_stack_to_transpose``: a ``Split`` into unit pieces stacked again by ``Unsqueeze``
    + ``Concat`` on a new first axis (a ``tf.matmul`` of Python lists: xDeepFM's CIN) becomes
    one ``Transpose`` and one ``Unsqueeze``. Exact.
16. ``unsigned_mod``: ``x - (x / c) * c`` of unsigned integers (tf2onnx's ``FloorMod``: a
    cross's bucket, a fingerprint mod N) becomes one ``Mod``. Exact.
17. ``drop_identity_reshapes``: chains of ``Reshape`` (also through a ``Cast`` between them)
    become one, and a ``Reshape`` to the shape its input already has (``[N, 1]`` to
    ``[-1, 1]``, an ``[N, D]`` embedding to ``[-1, D]``) is dropped. Exact.
18. ``compare_integers_directly``: ``Less(Cast(x, float), c)`` of an integer ``x`` and a
    whole constant ``c`` the float type holds with its neighbours (``|c| <= 2^24``) compares
    ``x`` with an integer ``c`` (rounding keeps the order): one ``Cast`` less per comparison
    (a one-hot's negative-id check). Exact.
19. unused nodes and initializers are removed.

Each pass works on a copy and returns counts; :func:`optimize_onnx` runs them in order and the
caller (:func:`recadvisor.model.onnx_export.export_onnx`) checks parity on the result. A pass
that raises is skipped with a warning (``strict=True`` re-raises, for tests).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np

log = logging.getLogger(__name__)

# ONNX TensorProto element types (onnx.TensorProto.*), by name for readability
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, BOOL, FLOAT16, DOUBLE, UINT32, UINT64 = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    9,
    10,
    11,
    12,
    13,
)
# source type -> types that hold every value of it exactly
LOSSLESS_CASTS: dict[int, frozenset[int]] = {
    BOOL: frozenset(
        {FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, FLOAT16, DOUBLE, UINT32, UINT64}
    ),
    UINT8: frozenset({UINT16, INT16, INT32, INT64, FLOAT16, FLOAT, DOUBLE, UINT32, UINT64}),
    INT8: frozenset({INT16, INT32, INT64, FLOAT16, FLOAT, DOUBLE}),
    UINT16: frozenset({INT32, INT64, FLOAT, DOUBLE, UINT32, UINT64}),
    INT16: frozenset({INT32, INT64, FLOAT, DOUBLE}),
    UINT32: frozenset({INT64, DOUBLE, UINT64}),
    INT32: frozenset({INT64, DOUBLE}),
    FLOAT16: frozenset({FLOAT, DOUBLE}),
    FLOAT: frozenset({DOUBLE}),
}
INTEGER_TYPES = frozenset({UINT8, INT8, UINT16, INT16, INT32, INT64, UINT32, UINT64})
FLOAT_TYPES = frozenset({FLOAT, DOUBLE, FLOAT16})
# a padding mask is folded into a copy of a shared table only up to this size
MAX_TABLE_COPY_BYTES = 16 << 20
# a Slice end at or beyond this reads to the end of any axis tf2onnx writes it for
SLICE_TO_END = 1 << 30
# an integer Bucketize becomes a gather when its ids span at most this many values (4 MiB)
MAX_BUCKET_REMAP = 1 << 20


class OnnxCleanupDict(TypedDict):
    """:meth:`CleanupResult.to_dict` (``rebuild.json``'s ``onnx.cleanup``)."""

    nodes_before: int
    nodes_after: int
    rewrites: dict[str, int]
    ops_removed: dict[str, int]
    skipped: dict[str, str]


@dataclass(frozen=True)
class OnnxCleanupResult:
    """What :func:`optimize_onnx` did.

    Attributes:
        nodes_before / nodes_after: node counts.
        rewrites: pass name -> patterns rewritten.
        ops_removed: op type -> nodes removed (negative: added).
        skipped: pass name -> why it was skipped (it raised).
    """

    nodes_before: int
    nodes_after: int
    rewrites: dict[str, int] = field(default_factory=dict)
    ops_removed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> OnnxCleanupDict:
        """JSON form (``rebuild.json``'s ``onnx.cleanup``)."""
        return {
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "rewrites": dict(self.rewrites),
            "ops_removed": dict(self.ops_removed),
            "skipped": dict(self.skipped),
        }


def subgraph_reads(graph: Any) -> set[str]:
    """Every tensor name read inside the subgraphs (``If``/``Loop``/``Scan`` bodies) of
    ``graph``'s nodes, at any depth: outer tensors a body reads are not node inputs, so the
    passes treat them like graph outputs (kept, never bypassed)."""
    from onnx import AttributeProto

    names: set[str] = set()
    for node in graph.node:
        for attr in node.attribute:
            bodies = [attr.g] if attr.type == AttributeProto.GRAPH else []
            bodies += list(attr.graphs) if attr.type == AttributeProto.GRAPHS else []
            for body in bodies:
                names.update(i for n in body.node for i in n.input if i)
                names.update(o.name for o in body.output)
                names |= subgraph_reads(body)
    return names


class _GraphIndex:
    """Producers, consumers, constants and inferred types of one ONNX graph (read-only view)."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper, shape_inference

        self.graph = model.graph
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for node in self.graph.node:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                if inp:
                    self.consumers[inp].append(node)
        self.outputs = {o.name for o in self.graph.output} | subgraph_reads(self.graph)
        self.initializers = {i.name: i for i in self.graph.initializer}
        self._arrays: dict[str, np.ndarray] = {}
        self._numpy = numpy_helper
        try:
            inferred = shape_inference.infer_shapes(model, strict_mode=False)
            infos = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
        except Exception as e:  # noqa: BLE001 - shape inference is a hint, not a requirement
            log.debug("ONNX shape inference failed: %s", e)
            infos = [*self.graph.input, *self.graph.output]
        self.types: dict[str, int] = {}
        self.ranks: dict[str, int] = {}
        self.dims: dict[str, tuple[int | None, ...]] = {}  # None: not known statically
        for info in infos:
            tensor = info.type.tensor_type
            if tensor.elem_type:
                self.types[info.name] = tensor.elem_type
            if tensor.HasField("shape"):
                self.ranks[info.name] = len(tensor.shape.dim)
                self.dims[info.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim
                )
        for name, init in self.initializers.items():
            self.types[name] = init.data_type
            self.ranks[name] = len(init.dims)
            self.dims[name] = tuple(init.dims)
        for node in self.graph.node:
            if node.op_type == "Constant":
                value = self.const(node.output[0])
                if value is not None:
                    self.ranks[node.output[0]] = value.ndim

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer or ``Constant`` output, else None."""
        if name in self._arrays:
            return self._arrays[name]
        value = None
        if name in self.initializers:
            value = self._numpy.to_array(self.initializers[name])
        else:
            node = self.producer.get(name)
            if node is not None and node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        value = self._numpy.to_array(attr.t)
        if value is not None:
            self._arrays[name] = value
        return value

    def made_by(self, name: str, op_type: str) -> Any | None:
        """The node of type ``op_type`` producing ``name``, else None."""
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op_type else None


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _rewire(model: Any, old: str, new: str) -> None:
    """Every reader of tensor ``old`` reads ``new`` instead (graph outputs are kept by name)."""
    for node in model.graph.node:
        for i, inp in enumerate(node.input):
            if inp == old:
                node.input[i] = new


def _bypass(model: Any, index: _GraphIndex, node: Any, source: str) -> bool:
    """Make ``node``'s readers read ``source``; False when its output is a graph output."""
    out = node.output[0]
    if out in index.outputs:
        return False
    _rewire(model, out, source)
    return True


def _replace_nodes(model: Any, rewrite: Callable[[Any], list[Any] | None]) -> int:
    """Replace every node ``rewrite`` returns nodes for (None: keep it), in order (in place).

    Returns:
        Nodes replaced.
    """
    new_nodes: list[Any] = []
    count = 0
    for node in model.graph.node:
        replacement = rewrite(node)
        if replacement is None:
            new_nodes.append(node)
        else:
            new_nodes.extend(replacement)
            count += 1
    if count:
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
    return count


def _add_initializer(model: Any, index: _GraphIndex, base: str, value: np.ndarray) -> str:
    """A new initializer named after ``base``; returns its name."""
    from onnx import numpy_helper

    name = _fresh_name(index, base)
    model.graph.initializer.append(numpy_helper.from_array(value, name))
    index.initializers[name] = model.graph.initializer[-1]
    return name


# --------------------------------------------------------------------------- passes
def restore_where(model: Any) -> int:
    """``Cast(c) * a + b * Cast(Not(c))`` -> ``Where(c, a, b)`` (in place).

    Returns:
        Selects restored.
    """
    from onnx import helper

    index = _GraphIndex(model)

    def rewrite(node: Any) -> list[Any] | None:
        match = _match_arith_select(index, node)
        if match is None:
            return None
        return [helper.make_node("Where", list(match), list(node.output), name=node.name)]

    return _replace_nodes(model, rewrite)


def _mask_operand(index: _GraphIndex, mul: Any) -> tuple[str, str, int] | None:
    """(``c``, the other factor, the cast's type) of a ``Mul`` by ``Cast(c)``, ``c`` boolean."""
    for k in (0, 1):
        cast = index.made_by(mul.input[k], "Cast")
        if cast is not None and index.types.get(cast.input[0]) == BOOL:
            return cast.input[0], mul.input[1 - k], _attr(cast, "to")
    return None


def _match_arith_select(index: _GraphIndex, add: Any) -> tuple[str, str, str] | None:
    """(c, a, b) when ``add`` is ``Cast(c) * a + b * Cast(Not(c))`` in the Add's own type."""
    if add.op_type != "Add" or len(add.input) != 2:
        return None
    muls = [index.made_by(i, "Mul") for i in add.input]
    if muls[0] is None or muls[1] is None:
        return None
    first, second = _mask_operand(index, muls[0]), _mask_operand(index, muls[1])
    if first is None or second is None:
        return None
    dtype = index.types.get(add.output[0])
    if dtype is None or first[2] != dtype or second[2] != dtype:
        return None
    for (cond, a, _), (neg, b, _) in ((first, second), (second, first)):
        not_node = index.made_by(neg, "Not")
        if not_node is not None and not_node.input[0] == cond:
            return cond, a, b
    return None


def drop_index_wrap(model: Any) -> int:
    """``Gather(T, Where(i < 0, i + n, i))`` -> ``Gather(T, i)`` when ``n`` is ``T``'s size on
    the gathered axis (in place).

    Returns:
        Gathers rewired.
    """
    index = _GraphIndex(model)
    count = 0
    for node in model.graph.node:
        if node.op_type != "Gather":
            continue
        table = index.const(node.input[0])
        where = index.made_by(node.input[1], "Where")
        if table is None or where is None:
            continue
        axis = int(_attr(node, "axis", 0))
        rows = table.shape[axis] if table.ndim else None
        raw = _wrapped_index(index, where, rows)
        if raw is not None:
            node.input[1] = raw
            count += 1
    return count


def _wrapped_index(index: _GraphIndex, where: Any, rows: int | None) -> str | None:
    """``i`` when ``where`` is ``Where(i < 0, i + rows, i)`` on an integer ``i``."""
    cond, when_true, when_false = where.input
    less = index.made_by(cond, "Less")
    add = index.made_by(when_true, "Add")
    if less is None or add is None or rows is None:
        return None
    raw = when_false
    if index.types.get(raw) not in INTEGER_TYPES:
        return None
    zero = index.const(less.input[1])
    compared = less.input[0]
    cast = index.made_by(compared, "Cast")
    if cast is not None and cast.input[0] == raw and _attr(cast, "to") in FLOAT_TYPES:
        compared = raw  # the sign of an integer survives a cast to float
    if compared != raw or zero is None or zero.size != 1 or float(zero.reshape(-1)[0]) != 0.0:
        return None
    others = [i for i in add.input if i != raw]
    if len(others) != 1 or len(add.input) != 2:
        return None
    n = index.const(others[0])
    if n is None or n.size != 1 or int(n.reshape(-1)[0]) != rows:
        return None
    return raw


def fold_gather_mask(model: Any, max_copy_bytes: int = MAX_TABLE_COPY_BYTES) -> int:
    """``Where(i != k, Gather(T, i), v)`` -> ``Gather(T', i)`` with ``T'[k] = v`` (in place).

    A padding mask next to an embedding lookup (Keras ``mask_zero``, a masked mean over a
    history) selects the constant ``v`` exactly where the index is the padding id ``k``, so the
    table row ``k`` can hold ``v`` instead. When other nodes still read ``T``, ``T'`` is a copy,
    made only up to ``max_copy_bytes``.

    Returns:
        Masks folded into their tables.
    """
    from onnx import helper

    index = _GraphIndex(model)

    def rewrite(node: Any) -> list[Any] | None:
        fold = _gather_mask(index, node) if node.op_type == "Where" else None
        if fold is None:
            return None
        gather, table, k, v = fold
        shared = len(index.consumers.get(gather.input[0], [])) > 1
        if shared and table.nbytes > max_copy_bytes:
            return None
        masked = table.copy()
        masked[k] = v
        name = _add_initializer(model, index, f"{gather.input[0]}/masked_row_{k}", masked)
        ids = gather.input[1]
        return [helper.make_node("Gather", [name, ids], list(node.output), name=node.name, axis=0)]

    return _replace_nodes(model, rewrite)


def _fresh_name(index: _GraphIndex, base: str) -> str:
    name, i = base, 1
    while name in index.initializers or name in index.producer:
        name, i = f"{base}_{i}", i + 1
    return name


def _new_output(index: _GraphIndex, base: str, node: Any) -> str:
    """A fresh tensor name for an output the rewrite of ``node`` adds, reserved at once (so the
    next name made in the same pass differs)."""
    name = _fresh_name(index, base)
    index.producer[name] = node
    return name


def _gather_mask(index: _GraphIndex, where: Any) -> tuple[Any, np.ndarray, int, Any] | None:
    """(gather, table, k, v) when ``where`` is ``Where(Not(Equal(i, k)), Gather(T, i), v)``."""
    cond, picked, other = where.input
    gather = index.made_by(picked, "Gather")
    v = index.const(other)
    if gather is None or v is None or v.size != 1 or int(_attr(gather, "axis", 0)) != 0:
        return None
    table, ids = index.const(gather.input[0]), gather.input[1]
    ids_rank = index.ranks.get(ids)
    if table is None or table.ndim < 1 or ids_rank is None:
        return None
    unsqueeze = index.made_by(cond, "Unsqueeze")
    if unsqueeze is not None:
        axes = index.const(unsqueeze.input[1]) if len(unsqueeze.input) > 1 else None
        out_rank = ids_rank + (axes.size if axes is not None else 0)
        # only trailing axes: the mask then lines up with the ids and broadcasts over the row
        if axes is None or any(a % out_rank < ids_rank for a in axes.tolist()):
            return None
        if out_rank > ids_rank + table.ndim - 1:
            return None
        cond = unsqueeze.input[0]
    elif table.ndim != 1:
        return None
    not_node = index.made_by(cond, "Not")
    equal = index.made_by(not_node.input[0], "Equal") if not_node is not None else None
    if equal is None or ids not in equal.input:
        return None
    pad = index.const(equal.input[1] if equal.input[0] == ids else equal.input[0])
    if pad is None or pad.size != 1 or pad.dtype.kind not in "iu":
        return None
    k = int(pad.reshape(-1)[0])
    if not 0 <= k < table.shape[0] or np.dtype(v.dtype) != table.dtype:
        return None
    return gather, table, k, v.reshape(-1)[0]


def fold_multiplied_mask(model: Any, max_copy_bytes: int = MAX_TABLE_COPY_BYTES) -> int:
    """``Gather(T, i) * Reshape(Cast(m, float), s)`` -> ``Gather(T ++ [0], Where(m', i, V))``.

    A sequence mask multiplied into the embeddings of a history before its sum (DeepMatch's
    and DeepCTR's ``SequencePoolingLayer``: ``[N, T, D] * [N, T, 1]``) zeroes the rows where
    the bool ``m`` is false; reading an appended zero row ``V`` there gives the same rows (a
    product with 1.0 is the value, with 0.0 a zero: the table must be finite) without the
    ``[N, T, D]`` multiply. ``m'`` is ``m`` in the ids' layout: ``s`` must be the ids' shape
    (each dim equal, 1 or the leading -1) plus a trailing 1, so ``m'`` is ``Reshape(m,
    s[:-1])`` and broadcasts against the ids as the mask did against the rows (also a mask
    cast without a reshape, ``[.., 1]`` squeezed). The table with the zero row is a copy up to
    ``max_copy_bytes``. Exact up to the sign of a zero.

    Returns:
        Masks folded.
    """
    from onnx import helper

    index = _GraphIndex(model)

    def mask_layout(factor: str, ids: str, rank: int) -> tuple[str, np.ndarray] | None:
        """(the bool mask, its shape in the ids' layout) when ``factor`` is a 0/1 float mask
        shaped like the ids plus a trailing 1."""
        reshape = index.made_by(factor, "Reshape")
        if reshape is not None:
            shape = index.const(reshape.input[1])
            source = reshape.input[0]
        else:  # the mask's own dims, an unknown batch dim read as -1
            dims = index.dims.get(factor) or ()
            shape = np.asarray([-1 if d is None and i == 0 else d for i, d in enumerate(dims)])
            source = factor
        cast = index.made_by(source, "Cast")
        if cast is None or index.types.get(cast.input[0]) != BOOL or shape is None:
            return None
        dims = index.dims.get(ids)
        if dims is None or len(dims) != rank or shape.ndim != 1 or len(shape) != rank + 1:
            return None
        kept = shape[:-1].tolist()
        if shape[-1] != 1 or any(
            not (s == 1 or (s == d and d is not None) or (i == 0 and s == -1))
            for i, (s, d) in enumerate(zip(kept, dims, strict=True))
        ):
            return None
        return cast.input[0], np.asarray(kept, np.int64)

    def rewrite(node: Any) -> list[Any] | None:
        if node.op_type != "Mul":
            return None
        for rows, factor in (node.input, reversed(node.input)):
            gather = index.made_by(rows, "Gather")
            if gather is None or int(_attr(gather, "axis", 0)) != 0:
                continue
            table, ids = index.const(gather.input[0]), gather.input[1]
            rank = index.ranks.get(ids)
            if table is None or table.ndim != 2 or table.dtype.kind != "f" or rank is None:
                continue
            if len(index.consumers.get(rows, [])) != 1 or not np.isfinite(table).all():
                continue
            layout = mask_layout(factor, ids, rank)
            ids_dtype = {INT32: np.int32, INT64: np.int64}.get(index.types.get(ids, INT64))
            if layout is None or ids_dtype is None or table.nbytes > max_copy_bytes:
                continue
            mask, shape = layout
            padded = np.concatenate([table, np.zeros((1, table.shape[1]), table.dtype)])
            name = _add_initializer(model, index, f"{gather.input[0]}/zero_row", padded)
            zero_row = _add_initializer(
                model, index, f"{name}/index", np.array(table.shape[0], ids_dtype)
            )
            layout_shape = _add_initializer(model, index, f"{name}/mask_shape", shape)
            cond = _new_output(index, f"{node.name}/mask", node)
            safe = _new_output(index, f"{node.name}/ids", node)
            return [
                helper.make_node("Reshape", [mask, layout_shape], [cond], name=cond),
                helper.make_node("Where", [cond, ids, zero_row], [safe], name=safe),
                helper.make_node("Gather", [name, safe], list(node.output), name=node.name, axis=0),
            ]
        return None

    return _replace_nodes(model, rewrite)


def fold_casts(model: Any) -> int:
    """Cast chains through a lossless type folded; casts to the input's own type dropped.

    Returns:
        Casts removed or shortened.
    """
    index = _GraphIndex(model)
    count = 0
    for node in model.graph.node:
        if node.op_type != "Cast":
            continue
        to = _attr(node, "to")
        source = node.input[0]
        inner = index.made_by(source, "Cast")
        if inner is not None:
            origin = index.types.get(inner.input[0])
            middle = _attr(inner, "to")
            if origin is not None and (
                middle == origin or middle in LOSSLESS_CASTS.get(origin, ())
            ):
                node.input[0] = inner.input[0]
                source = inner.input[0]
                count += 1
        if index.types.get(source) == to and to is not None and _bypass(model, index, node, source):
            count += 1
    return count


def drop_noop_slices(model: Any) -> int:
    """Whole-axis ``Slice`` nodes and ``Unsqueeze`` -> ``Squeeze`` pairs on the same axes dropped.

    Returns:
        Nodes bypassed.
    """
    index = _GraphIndex(model)
    count = 0
    for node in model.graph.node:
        if node.op_type == "Slice" and _is_full_slice(index, node):
            count += _bypass(model, index, node, node.input[0])
        elif node.op_type == "Squeeze" and len(node.input) == 2:
            unsq = index.made_by(node.input[0], "Unsqueeze")
            if unsq is None or len(unsq.input) != 2:
                continue
            axes, back = index.const(node.input[1]), index.const(unsq.input[1])
            if axes is None or back is None or sorted(axes.tolist()) != sorted(back.tolist()):
                continue
            if any(a < 0 for a in axes.tolist()):  # negative axes count from different ranks
                continue
            count += _bypass(model, index, node, unsq.input[0])
    return count


def _is_full_slice(index: _GraphIndex, node: Any) -> bool:
    if len(node.input) < 3:
        return False
    starts, ends = index.const(node.input[1]), index.const(node.input[2])
    steps = index.const(node.input[4]) if len(node.input) > 4 and node.input[4] else None
    if starts is None or ends is None:
        return False
    if np.any(starts != 0) or np.any(ends < SLICE_TO_END):
        return False
    return steps is None or bool(np.all(steps == 1))


def tensordot_to_matmul(model: Any) -> int:
    """Keras ``Dense`` on a rank >= 2 input, as tf2onnx writes ``tf.tensordot``, -> ``MatMul``.

    ``Reshape(MatMul(Reshape(x, [-1, K]), W), Concat(Gather(Shape(x), [0 .. r-2]), [U]))``
    (with ``Cast``s on the shape) is ``MatMul(x, W)``: ONNX ``MatMul`` broadcasts a 2-D ``W``
    over ``x``'s leading axes, and onnxruntime runs it as the same ``[rows, K] x [K, U]`` GEMM,
    so it is exact. Seven nodes per dense layer go (DeepCTR's DNN and attention layers), and a
    rank-2 ``x`` then meets :func:`matmul_add_to_gemm`. ``x``'s last axis must be known to be
    ``K``.

    Returns:
        Dense layers rewritten.
    """
    from onnx import helper

    index = _GraphIndex(model)

    def rewrite(node: Any) -> list[Any] | None:
        match = _tensordot(index, node) if node.op_type == "Reshape" else None
        if match is None:
            return None
        return [helper.make_node("MatMul", list(match), list(node.output), name=node.name)]

    return _replace_nodes(model, rewrite)


def _through_int_casts(index: _GraphIndex, name: str) -> str:
    """Follow ``Cast`` nodes between integer types up from ``name`` (shape arithmetic)."""
    cast = index.made_by(name, "Cast")
    while cast is not None and index.types.get(cast.input[0]) in INTEGER_TYPES:
        if _attr(cast, "to") not in INTEGER_TYPES:
            break
        name = cast.input[0]
        cast = index.made_by(name, "Cast")
    return name


def _tensordot(index: _GraphIndex, reshape: Any) -> tuple[str, str] | None:
    """(x, W) when ``reshape`` ends tf2onnx's ``tf.tensordot(x, W, 1)`` on a rank >= 2 ``x``."""
    matmul = index.made_by(reshape.input[0], "MatMul")
    if matmul is None or matmul.output[0] in index.outputs:
        return None
    if len(index.consumers.get(matmul.output[0], [])) != 1:
        return None
    flat, weight = index.made_by(matmul.input[0], "Reshape"), index.const(matmul.input[1])
    if flat is None or weight is None or weight.ndim != 2:
        return None
    k, units = weight.shape
    x = flat.input[0]
    x_dims, flat_shape = index.dims.get(x), index.const(flat.input[1])
    if x_dims is None or len(x_dims) < 2 or x_dims[-1] != k:
        return None
    if flat_shape is None or flat_shape.reshape(-1).tolist() != [-1, k]:
        return None
    concat = index.made_by(_through_int_casts(index, reshape.input[1]), "Concat")
    if concat is None or int(_attr(concat, "axis", 0)) != 0 or len(concat.input) != 2:
        return None
    last = index.const(concat.input[1])
    gather = index.made_by(_through_int_casts(index, concat.input[0]), "Gather")
    if last is None or last.reshape(-1).tolist() != [units] or gather is None:
        return None
    kept = index.const(gather.input[1])
    if int(_attr(gather, "axis", 0)) != 0 or kept is None:
        return None
    if kept.reshape(-1).tolist() != list(range(len(x_dims) - 1)):
        return None
    shape = index.made_by(_through_int_casts(index, gather.input[0]), "Shape")
    if shape is None or shape.input[0] != x or shape.attribute:  # no start/end slicing
        return None
    return x, matmul.input[1]


def matmul_add_to_gemm(model: Any) -> int:
    """``Add(MatMul(A, W), b)`` -> ``Gemm(A, W, b)`` for rank-2 ``A`` and constant ``W``, ``b``.

    Returns:
        MatMuls fused.
    """
    from onnx import helper

    index = _GraphIndex(model)

    def rewrite(node: Any) -> list[Any] | None:
        gemm = _gemm_for(index, node) if node.op_type == "Add" and len(node.input) == 2 else None
        if gemm is None:
            return None
        # the MatMul, read by this Add only, is left unread and removed afterwards
        return [helper.make_node("Gemm", list(gemm), list(node.output), name=node.name)]

    return _replace_nodes(model, rewrite)


def _gemm_for(index: _GraphIndex, add: Any) -> tuple[str, str, str] | None:
    for k in (0, 1):
        matmul = index.made_by(add.input[k], "MatMul")
        if matmul is None:
            continue
        if len(index.consumers.get(matmul.output[0], [])) != 1 or matmul.output[0] in index.outputs:
            continue
        a, w = matmul.input
        weight, bias = index.const(w), index.const(add.input[1 - k])
        if weight is None or bias is None or weight.ndim != 2 or index.ranks.get(a) != 2:
            continue
        if index.types.get(a) != FLOAT or weight.dtype != np.float32 or bias.dtype != np.float32:
            continue
        if bias.shape not in ((weight.shape[1],), (1, weight.shape[1])):
            continue
        return a, w, add.input[1 - k]
    return None


def batched_dot_to_reduce(model: Any) -> int:
    """``Squeeze(MatMul(Unsqueeze(a, 1), Unsqueeze(b, 2)))`` -> ``ReduceSum(a * b, 1)`` (in place).

    Keras ``Dot(axes=1)`` on ``[N, K]`` towers is a batch of ``[1, K] x [K, 1]`` products,
    which onnxruntime runs as N tiny GEMMs; an elementwise product and a row sum compute the
    same dot products (float reassociation). Needs opset 13 (``ReduceSum`` axes as an input).

    Returns:
        Dot products rewritten.
    """
    from onnx import helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        return 0
    index = _GraphIndex(model)
    axes: list[str] = []  # one shared [1] initializer, made on the first match

    def rewrite(node: Any) -> list[Any] | None:
        match = _batched_dot(index, node) if node.op_type == "Squeeze" else None
        if match is None:
            return None
        a, b, keepdims = match
        if not axes:
            axes.append(_add_initializer(model, index, "onnx_cleanup/axis_1", np.array([1])))
        product = _new_output(index, f"{node.output[0]}/product", node)
        out = list(node.output)
        return [
            helper.make_node("Mul", [a, b], [product], name=f"{node.name}/product"),
            helper.make_node(
                "ReduceSum", [product, axes[0]], out, name=node.name, keepdims=keepdims
            ),
        ]

    return _replace_nodes(model, rewrite)


def _batched_dot(index: _GraphIndex, squeeze: Any) -> tuple[str, str, int] | None:
    """(a, b, keepdims) when ``squeeze`` ends a Keras ``Dot(axes=1)`` of two ``[N, K]`` tensors."""
    matmul = index.made_by(squeeze.input[0], "MatMul")
    if matmul is None or len(squeeze.input) < 2:
        return None
    if len(index.consumers.get(matmul.output[0], [])) != 1 or matmul.output[0] in index.outputs:
        return None
    left, right = (index.made_by(i, "Unsqueeze") for i in matmul.input)
    if left is None or right is None or len(left.input) < 2 or len(right.input) < 2:
        return None
    a, b = left.input[0], right.input[0]
    left_axes, right_axes = index.const(left.input[1]), index.const(right.input[1])
    squeezed = index.const(squeeze.input[1])
    if left_axes is None or right_axes is None or squeezed is None:
        return None
    if index.ranks.get(a) != 2 or index.ranks.get(b) != 2 or index.types.get(a) != FLOAT:
        return None
    if left_axes.tolist() != [1] or right_axes.tolist() != [2]:
        return None
    axes = sorted(int(x) % 3 for x in squeezed.reshape(-1).tolist())
    if axes in ([1], [2]):
        return a, b, 1
    if axes == [1, 2]:
        return a, b, 0
    return None


def outer_matmul_to_mul(model: Any) -> int:
    """``MatMul(A, B)`` with ``A [..., M, 1]`` and ``B [..., 1, N]`` -> ``Mul(A, B)`` (in place).

    A product over a contraction of length 1 is an outer product: each output is one
    ``a * b``, which a broadcasting ``Mul`` computes exactly (no sum, so no reassociation),
    while onnxruntime runs the ``MatMul`` as one tiny GEMM per batch entry. xDeepFM's CIN
    layer (``tf.matmul`` of ``D`` lists of ``[N, F, 1]`` and ``[N, 1, H]`` embedding columns)
    is ``D * N`` such GEMMs, most of its time at batch 256. Both inputs must have rank >= 2
    and the unit dimensions must be known statically (ONNX shape inference or constants).

    Returns:
        MatMuls rewritten.
    """
    from onnx import helper

    index = _GraphIndex(model)

    def rewrite(node: Any) -> list[Any] | None:
        if node.op_type != "MatMul" or not _is_outer_product(index, *node.input):
            return None
        return [helper.make_node("Mul", list(node.input), list(node.output), name=node.name)]

    return _replace_nodes(model, rewrite)


def _is_outer_product(index: _GraphIndex, a: str, b: str) -> bool:
    """Whether ``MatMul(a, b)`` contracts over a dimension of length 1 (both ranks >= 2)."""
    a_dims, b_dims = index.dims.get(a), index.dims.get(b)
    if a_dims is None or b_dims is None or len(a_dims) < 2 or len(b_dims) < 2:
        return False
    return a_dims[-1] == 1 and b_dims[-2] == 1 and index.types.get(a) == index.types.get(b)


def int_bucketize_to_gather(model: Any, max_span: int = MAX_BUCKET_REMAP) -> int:
    """The lowered ``Bucketize`` of an integer input -> a gather over a remap vector (in place).

    :func:`recadvisor.model.onnx_export.lower_for_onnx` writes ``Bucketize(x, b)`` as
    ``ReduceSum(Cast(Unsqueeze(Cast(x, float), -1) >= b, int), -1)``: ``N * len(b)``
    comparisons (875 boundaries on a DeepCTR ``numeric_as_string`` id: most of xDeepFM's
    time at batch 256). When ``x`` is an integer (an id bucketized on the values seen in the
    data), the bucket of every ``x`` between ``lo = ceil(min b) - 1`` (bucket 0) and
    ``hi = ceil(max b)`` (bucket ``len(b)``) is precomputed, cast to float exactly like the
    graph casts it, and the node becomes ``Gather(remap, Clip(x, lo, hi) - lo)``: exact, as
    rounding to float is monotone, every ``x`` below ``lo`` falls in bucket 0 and every ``x``
    above ``hi`` in the last. Refused when the span ``hi - lo + 1`` exceeds ``max_span``,
    for non-finite boundaries, and for integer types other than int32/int64.

    Returns:
        Bucketizes rewritten.
    """
    from onnx import helper

    index = _GraphIndex(model)

    def rewrite(node: Any) -> list[Any] | None:
        match = _int_bucketize(index, node) if node.op_type == "ReduceSum" else None
        if match is None:
            return None
        x, bounds, cmp_type, out_type = match
        remap = _bucket_remap(bounds, index.types[x], cmp_type, out_type, max_span)
        if remap is None:
            return None
        lo, hi, table = remap
        x_dtype = _NUMPY_INTS[index.types[x]]
        base = node.output[0]
        names = {
            key: _add_initializer(model, index, f"{base}/{key}", value)
            for key, value in (
                ("lo", np.array(lo, x_dtype)),
                ("hi", np.array(hi, x_dtype)),
                ("remap", table),
            )
        }
        clipped, offset = (_new_output(index, f"{base}/{k}", node) for k in ("clipped", "offset"))
        return [
            helper.make_node("Clip", [x, names["lo"], names["hi"]], [clipped], name=clipped),
            helper.make_node("Sub", [clipped, names["lo"]], [offset], name=offset),
            helper.make_node("Gather", [names["remap"], offset], [base], name=node.name, axis=0),
        ]

    return _replace_nodes(model, rewrite)


_NUMPY_INTS = {INT32: np.int32, INT64: np.int64}
_NUMPY_FLOATS = {FLOAT: np.float32, DOUBLE: np.float64}


def _last_axis(node: Any, index: _GraphIndex, rank: int | None) -> bool:
    """Whether a ``ReduceSum``/``Unsqueeze`` names exactly the last axis of its output (for an
    Unsqueeze) or input (for a ReduceSum) of rank ``rank``."""
    if len(node.input) > 1 and node.input[1]:
        axes = index.const(node.input[1])
        values = axes.reshape(-1).tolist() if axes is not None else None
    else:
        values = _attr(node, "axes")
        values = list(values) if values is not None else None
    if values is None or len(values) != 1 or rank is None:
        return False
    return values[0] in (-1, rank - 1)


def _int_bucketize(index: _GraphIndex, reduce: Any) -> tuple[str, np.ndarray, int, int] | None:
    """(x, boundaries, compare type, output type) when ``reduce`` ends the lowered
    ``Bucketize`` of an int32/int64 ``x``."""
    if int(_attr(reduce, "keepdims", 1)) != 0:
        return None
    count = index.made_by(reduce.input[0], "Cast")
    out_type = _attr(count, "to") if count is not None else None
    if out_type not in _NUMPY_INTS:
        return None
    ge = index.made_by(count.input[0], "GreaterOrEqual")
    if ge is None or len(index.consumers.get(ge.output[0], [])) != 1:
        return None
    unsqueeze, bounds = index.made_by(ge.input[0], "Unsqueeze"), index.const(ge.input[1])
    if unsqueeze is None or bounds is None or bounds.ndim != 1 or not bounds.size:
        return None
    as_float = index.made_by(unsqueeze.input[0], "Cast")
    if as_float is None:
        return None
    x, cmp_type = as_float.input[0], _attr(as_float, "to")
    rank = index.ranks.get(x)
    if index.types.get(x) not in _NUMPY_INTS or _NUMPY_FLOATS.get(cmp_type) != bounds.dtype:
        return None
    if rank is None or not _last_axis(unsqueeze, index, rank + 1):
        return None
    if not _last_axis(reduce, index, rank + 1):
        return None
    return x, bounds, cmp_type, out_type


def _bucket_remap(
    bounds: np.ndarray, x_type: int, cmp_type: int, out_type: int, max_span: int
) -> tuple[int, int, np.ndarray] | None:
    """(lo, hi, bucket of every integer in ``[lo, hi]``) or None (non-finite or too wide)."""
    if not np.all(np.isfinite(bounds)):
        return None
    info = np.iinfo(_NUMPY_INTS[x_type])
    lo = max(int(np.ceil(bounds.min())) - 1, int(info.min))
    hi = min(int(np.ceil(bounds.max())), int(info.max))
    if hi - lo + 1 > max_span:
        return None
    values = np.arange(lo, hi + 1, dtype=np.int64).astype(_NUMPY_INTS[x_type])
    as_float = values.astype(_NUMPY_FLOATS[cmp_type])
    table = np.sum(as_float[:, None] >= bounds[None, :], axis=1).astype(_NUMPY_INTS[out_type])
    # clipping is exact only if everything below lo / above hi falls in the end buckets
    if (lo > info.min and table[0] != 0) or (hi < info.max and table[-1] != bounds.size):
        return None
    return lo, hi, table


def fold_conv_channel_bias(model: Any) -> int:
    """``Add(Squeeze(Conv(X, W)), b)`` with ``b`` constant but along the channels -> the Conv's
    own bias input (in place).

    tf2onnx writes a TensorFlow ``conv1d`` + ``BiasAdd`` as ``Conv``, a ``Squeeze`` of the
    height axis and an ``Add`` of a ``[1, C, 1]`` constant (xDeepFM's CIN): a pass over the
    batch with a middle-axis broadcast. As the Conv's bias it is added to each output as the
    ``Add`` did (exact), and :func:`conv1x1_to_matmul` carries it along.

    Returns:
        Biases folded.
    """
    index = _GraphIndex(model)
    count = 0
    for node in model.graph.node:
        match = _conv_channel_bias(index, node) if node.op_type == "Add" else None
        if match is None:
            continue
        conv, squeezed, bias = match
        if not _bypass(model, index, node, squeezed):
            continue
        values = index.const(bias)
        channels = index.const(conv.input[1]).shape[0]
        vector = np.broadcast_to(values.reshape(-1), (channels,)).astype(values.dtype)
        conv.input.append(_add_initializer(model, index, f"{conv.output[0]}/bias", vector))
        count += 1
    return count


def _conv_channel_bias(index: _GraphIndex, add: Any) -> tuple[Any, str, str] | None:
    """(conv, squeezed tensor, bias tensor) when ``add`` adds a per-channel constant to
    ``Squeeze(Conv)``."""
    if len(add.input) != 2:
        return None
    for k in (0, 1):
        squeeze, bias = index.made_by(add.input[k], "Squeeze"), add.input[1 - k]
        values = index.const(bias)
        if squeeze is None or values is None or len(squeeze.input) != 2:
            continue
        conv = index.made_by(squeeze.input[0], "Conv")
        weight = index.const(conv.input[1]) if conv is not None else None
        axes = index.const(squeeze.input[1])
        if weight is None or len(conv.input) != 2 or axes is None:
            continue
        if any(len(index.consumers.get(t, [])) != 1 for t in (conv.output[0], squeeze.output[0])):
            continue
        rank = weight.ndim - len(axes.reshape(-1))  # the Squeeze output's rank
        if any(int(a) % weight.ndim < 2 for a in axes.reshape(-1).tolist()):
            continue  # the batch and channel axes must stay in place
        if values.ndim > rank or values.dtype != weight.dtype:
            continue
        full = values.reshape((1,) * (rank - values.ndim) + values.shape)
        if any(d != 1 for i, d in enumerate(full.shape) if i != 1):
            continue
        if full.shape[1] not in (1, weight.shape[0]):
            continue
        return conv, squeeze.output[0], bias
    return None


def conv1x1_to_matmul(model: Any) -> int:
    """``Conv(Transpose(Z, p), W)`` with a 1x1 kernel and channels from ``Z``'s last axis ->
    ``Transpose(MatMul(Z, W^T) + B, p)`` (in place).

    A 1x1 convolution is a product over the channels. When its input is a transpose whose
    channel axis is the source's last one (tf2onnx's NHWC -> NCHW transpose of a ``conv1d``),
    one GEMM on the untransposed source computes it; onnxruntime instead converts the Conv's
    input and output to its blocked layout (``ReorderInput``/``ReorderOutput``) around a
    convolution kernel. Only the smaller output is transposed. Stride, dilation 1, no padding,
    one group. Float reassociation (the channel sum may be ordered differently).

    Returns:
        Convolutions rewritten.
    """
    from onnx import helper

    index = _GraphIndex(model)

    def rewrite(node: Any) -> list[Any] | None:
        match = _pointwise_conv(index, node) if node.op_type == "Conv" else None
        if match is None:
            return None
        source, perm, weight = match
        out = node.output[0]
        kernel = weight.reshape(weight.shape[0], -1).T.copy()
        w_name = _add_initializer(model, index, f"{out}/weight_t", kernel)
        product = _new_output(index, f"{out}/matmul", node)
        nodes = [helper.make_node("MatMul", [source, w_name], [product], name=product)]
        if len(node.input) > 2 and node.input[2]:
            biased = _new_output(index, f"{out}/bias_add", node)
            nodes.append(helper.make_node("Add", [product, node.input[2]], [biased], name=biased))
            product = biased
        nodes.append(helper.make_node("Transpose", [product], [out], name=node.name, perm=perm))
        return nodes

    return _replace_nodes(model, rewrite)


def _pointwise_conv(index: _GraphIndex, conv: Any) -> tuple[str, list[int], np.ndarray] | None:
    """(Z, perm, W) when ``conv`` is a plain 1x1 convolution of ``Transpose(Z, perm)`` whose
    channel axis is ``Z``'s last."""
    weight = index.const(conv.input[1])
    transpose = index.made_by(conv.input[0], "Transpose")
    if weight is None or transpose is None or weight.ndim < 3:
        return None
    if any(d != 1 for d in weight.shape[2:]) or index.types.get(conv.input[0]) != FLOAT:
        return None
    if int(_attr(conv, "group", 1)) != 1:
        return None
    if _attr(conv, "auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
        return None
    for name in ("strides", "dilations"):
        if any(int(v) != 1 for v in _attr(conv, name, None) or ()):
            return None
    if any(int(v) != 0 for v in _attr(conv, "pads", None) or ()):
        return None
    perm = [int(p) for p in _attr(transpose, "perm", None) or ()]
    if len(perm) != weight.ndim or perm[1] != len(perm) - 1:
        return None
    if len(index.consumers.get(transpose.output[0], [])) != 1:
        return None
    if len(conv.input) > 2 and conv.input[2] and index.const(conv.input[2]) is None:
        return None
    return transpose.input[0], perm, weight


def split_stack_to_transpose(model: Any) -> int:
    """``Concat([Unsqueeze(s, 0) for s in Split(x, axis=a)], 0)`` with unit pieces ->
    ``Unsqueeze(Transpose(x, [a, 0, .., a-1, a+1, ..]), a + 1)`` (in place).

    ``tf.matmul`` of two Python lists of tensors (xDeepFM's CIN splits each ``[N, F, D]``
    layer into ``D`` columns and stacks them) reaches ONNX as a ``Split`` into ``D`` pieces,
    ``D`` ``Unsqueeze`` nodes and a ``Concat``; that stack is the input with the split axis
    moved to the front (and kept as a unit axis). Exact: values are only moved.

    Returns:
        Stacks rewritten.
    """
    from onnx import helper

    index = _GraphIndex(model)

    def rewrite(node: Any) -> list[Any] | None:
        match = _split_stack(index, node) if node.op_type == "Concat" else None
        if match is None:
            return None
        x, axis, rank = match
        perm = [axis, *(i for i in range(rank) if i != axis)]
        moved = _new_output(index, f"{node.output[0]}/moved", node)
        unit = _add_initializer(model, index, f"{node.output[0]}/axis", np.array([axis + 1]))
        return [
            helper.make_node("Transpose", [x], [moved], name=moved, perm=perm),
            helper.make_node("Unsqueeze", [moved, unit], list(node.output), name=node.name),
        ]

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return _replace_nodes(model, rewrite) if opset >= 13 else 0


def _split_stack(index: _GraphIndex, concat: Any) -> tuple[str, int, int] | None:
    """(x, split axis, rank of x) when ``concat`` stacks every unit piece of one ``Split``."""
    if int(_attr(concat, "axis", 0)) != 0 or len(concat.input) < 2:
        return None
    pieces = []
    for name in concat.input:
        unsqueeze = index.made_by(name, "Unsqueeze")
        if unsqueeze is None or len(unsqueeze.input) != 2:
            return None
        axes = index.const(unsqueeze.input[1])
        if axes is None or axes.reshape(-1).tolist() != [0]:
            return None
        if len(index.consumers.get(name, [])) != 1 or name in index.outputs:
            return None
        pieces.append(unsqueeze.input[0])
    split = index.producer.get(pieces[0])
    if split is None or split.op_type != "Split" or list(split.output) != pieces:
        return None
    x = split.input[0]
    dims = index.dims.get(x)
    if dims is None:
        return None
    axis = int(_attr(split, "axis", 0)) % len(dims)
    if dims[axis] != len(pieces):  # one piece per index: every piece has length 1
        return None
    return x, axis, len(dims)


BROADCASTING_OPS = frozenset({"Add", "Sub", "Mul", "Div"})


def drop_broadcast_tile(model: Any) -> int:
    """``Tile`` read only by broadcasting arithmetic that broadcasts it the same way: dropped.

    ``Mul(Tile(m, [1, 1, D]), e)`` with ``m`` of shape ``[N, T, 1]`` and ``e`` of
    ``[N, T, D]`` (a sequence mask tiled over the embedding width before a masked sum, as
    DeepMatch's pooling writes it) is ``Mul(m, e)``: the broadcast repeats ``m`` exactly as the
    tile did, without the ``[N, T, D]`` copy. Every tiled axis of ``m`` must have length 1 and
    every reader's other operand that axis's tiled length, statically. Exact.

    Returns:
        Tiles bypassed.
    """
    index = _GraphIndex(model)
    count = 0
    for node in model.graph.node:
        if node.op_type == "Tile" and _tile_is_broadcast(index, node):
            count += _bypass(model, index, node, node.input[0])
    return count


def _tile_is_broadcast(index: _GraphIndex, tile: Any) -> bool:
    """Whether every reader of ``tile`` broadcasts its input to the same shape."""
    reps, dims = index.const(tile.input[1]), index.dims.get(tile.input[0])
    readers = index.consumers.get(tile.output[0], [])
    if reps is None or dims is None or reps.size != len(dims) or not readers:
        return False
    tiled = {axis: int(r) for axis, r in enumerate(reps.tolist()) if r != 1}
    if any(dims[axis] != 1 for axis in tiled):
        return False
    for reader in readers:
        if reader.op_type not in BROADCASTING_OPS or len(reader.input) != 2:
            return False
        if reader.input[0] == reader.input[1]:
            return False
        other = index.dims.get(reader.input[1 if reader.input[0] == tile.output[0] else 0])
        if other is None or len(other) != len(dims):
            return False
        if any(other[axis] != times for axis, times in tiled.items()):
            return False
    return True


def drop_unit_reduce(model: Any) -> int:
    """``ReduceSum`` over axes of length 1 -> ``Squeeze`` of them (``keepdims=0``) or nothing.

    The sum of one value is that value (``-0.0`` becomes ``0.0``, equal), so the reduction
    (a pass over the batch, e.g. DeepMatch's sum over the single target item) only drops axes.
    The axes must be constant and their lengths known to be 1. Exact.

    Returns:
        Reductions rewritten.
    """
    from onnx import helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        return 0
    index = _GraphIndex(model)

    def rewrite(node: Any) -> list[Any] | None:
        if node.op_type != "ReduceSum" or len(node.input) != 2:
            return None
        dims, axes = index.dims.get(node.input[0]), index.const(node.input[1])
        if dims is None or axes is None or not axes.size:
            return None
        if any(dims[int(a) % len(dims)] != 1 for a in axes.reshape(-1).tolist()):
            return None
        if int(_attr(node, "keepdims", 1)):
            if node.output[0] in index.outputs:
                return None
            _rewire(model, node.output[0], node.input[0])
            return []
        return [helper.make_node("Squeeze", list(node.input), list(node.output), name=node.name)]

    return _replace_nodes(model, rewrite)


def unsigned_mod(model: Any) -> int:
    """``x - (x / c) * c`` of unsigned integers (tf2onnx's ``FloorMod``) -> ``Mod(x, c)``.

    Unsigned ``Div`` is floor division, so the difference is the remainder; onnxruntime's
    integer ``Mod`` (``fmod=0``) computes it exactly. Only unsigned types: for a negative
    signed ``x`` ``Div`` truncates and the two differ. Exact (a cross's bucket, a fingerprint
    mod N).

    Returns:
        Remainders rewritten.
    """
    from onnx import helper

    index = _GraphIndex(model)
    unsigned = {UINT8, UINT16, UINT32, UINT64}

    def rewrite(node: Any) -> list[Any] | None:
        if node.op_type != "Sub" or len(node.input) != 2:
            return None
        x = node.input[0]
        mul = index.made_by(node.input[1], "Mul")
        if mul is None or index.types.get(x) not in unsigned:
            return None
        for quotient, c in (mul.input, reversed(mul.input)):
            div = index.made_by(quotient, "Div")
            if div is not None and list(div.input) == [x, c] and index.const(c) is not None:
                return [helper.make_node("Mod", [x, c], list(node.output), name=node.name, fmod=0)]
        return None

    return _replace_nodes(model, rewrite)


_COMPARISONS = frozenset({"Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal"})
# the integers a float type holds without a gap (every one up to this magnitude)
_EXACT_INTEGERS = {FLOAT: 1 << 24, DOUBLE: 1 << 53}


def compare_integers_directly(model: Any) -> int:
    """``Less(Cast(x, float), c)`` (tf2onnx compares integers in float) -> ``Less(x, c')``.

    For an integer ``x`` and a constant ``c`` that is a whole number the float type holds with
    every integer around it (``|c| <= 2^24`` for float32), rounding ``x`` to float keeps its
    order against ``c``: ``x < c`` exactly when ``float(x) < c`` (likewise ``<=``, ``>``,
    ``>=``, ``==``). ``c`` becomes a constant of ``x``'s type. Exact (a one-hot's negative-id
    check: ``Cast`` + ``Less`` -> ``Less``).

    Returns:
        Comparisons rewritten.
    """
    from onnx import helper

    index = _GraphIndex(model)
    numpy_of = {INT32: np.int32, INT64: np.int64, UINT32: np.uint32, UINT64: np.uint64}

    def integer_operand(name: str) -> str | None:
        cast = index.made_by(name, "Cast")
        if cast is None or int(_attr(cast, "to", 0)) not in _EXACT_INTEGERS:
            return None
        return cast.input[0] if index.types.get(cast.input[0]) in numpy_of else None

    def rewrite(node: Any) -> list[Any] | None:
        if node.op_type not in _COMPARISONS or len(node.input) != 2:
            return None
        for pos in (0, 1):
            x, c = integer_operand(node.input[pos]), index.const(node.input[1 - pos])
            if x is None or c is None or c.size != 1:
                continue
            limit = _EXACT_INTEGERS[int(_attr(index.producer[node.input[pos]], "to"))]
            value = float(c.reshape(-1)[0])
            dtype = numpy_of[index.types[x]]
            info = np.iinfo(dtype)
            if value != int(value) or abs(value) > limit or not info.min <= value <= info.max:
                continue
            const = _add_initializer(model, index, f"{node.name}_c", np.array(int(value), dtype))
            inputs = [x, const] if pos == 0 else [const, x]
            return [helper.make_node(node.op_type, inputs, list(node.output), name=node.name)]
        return None

    return _replace_nodes(model, rewrite)


def drop_identity_reshapes(model: Any) -> int:
    """Reshapes that keep their input's shape, after merging chains of reshapes.

    ``Reshape(Reshape(x, a), b)`` -> ``Reshape(x, b)`` for a constant ``b`` without 0 (only the
    element count passes from one to the next); also through a ``Cast`` read only by the outer
    reshape (``Reshape(Cast(Reshape(x, a)), b)`` -> ``Reshape(Cast(x), b)``). Then a reshape to
    the shape its input already has (``b`` equal to the input's inferred dims, with at most one
    -1 where the dim is unknown: ``[N, 1]`` -> ``[-1, 1]``, a ``[N, D]`` embedding reshaped to
    ``[-1, D]``) is bypassed. Exact.

    Returns:
        Reshapes merged or dropped.
    """
    index = _GraphIndex(model)
    changed = 0

    def dims_of(name: str) -> tuple[int | None, ...] | None:
        cast = index.made_by(name, "Cast")
        return dims_of(cast.input[0]) if cast is not None else index.dims.get(name)

    for node in model.graph.node:
        shape = index.const(node.input[1]) if node.op_type == "Reshape" else None
        if shape is None or shape.ndim != 1 or (shape == 0).any() or (shape < -1).any():
            continue
        while True:
            source = node.input[0]
            cast = index.made_by(source, "Cast")
            if cast is not None and len(index.consumers.get(source, [])) == 1:
                inner = index.made_by(cast.input[0], "Reshape")
                if inner is None:
                    break
                cast.input[0] = inner.input[0]
                index.dims.pop(source, None)
            else:
                inner = index.made_by(source, "Reshape")
                if inner is None:
                    break
                node.input[0] = inner.input[0]
            changed += 1
        dims = dims_of(node.input[0])
        if dims is None or len(dims) != shape.size or int((shape == -1).sum()) > 1:
            continue
        if all(s == -1 or d == s for s, d in zip(shape.tolist(), dims, strict=True)):
            changed += int(_bypass(model, index, node, node.input[0]))
    return changed


def remove_unused(model: Any) -> int:
    """Nodes whose outputs nothing reads (graph outputs and what subgraphs read excepted) and
    unread initializers.

    Returns:
        Nodes removed.
    """
    needed = {o.name for o in model.graph.output} | subgraph_reads(model.graph)
    kept = []
    for node in reversed(list(model.graph.node)):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    removed = len(model.graph.node) - len(kept)
    if removed:
        del model.graph.node[:]
        model.graph.node.extend(reversed(kept))
    used = {i for n in model.graph.node for i in n.input} | needed
    inits = [i for i in model.graph.initializer if i.name in used]
    if len(inits) != len(model.graph.initializer):
        del model.graph.initializer[:]
        model.graph.initializer.extend(inits)
    return removed


# the order matters: Where must exist before the index-wrap and mask matches, the mask match
# needs the gather to read the raw ids (index wrap gone), and casts left unread by them are
# folded or dropped after them; a tensordot becomes a MatMul before MatMul + bias becomes Gemm
PASSES: tuple[tuple[str, Callable[[Any], int]], ...] = (
    ("restore_where", restore_where),
    ("drop_index_wrap", drop_index_wrap),
    ("fold_gather_mask", fold_gather_mask),
    ("fold_casts", fold_casts),
    ("drop_noop_slices", drop_noop_slices),
    ("tensordot_to_matmul", tensordot_to_matmul),
    ("matmul_add_to_gemm", matmul_add_to_gemm),
    ("batched_dot_to_reduce", batched_dot_to_reduce),
    ("outer_matmul_to_mul", outer_matmul_to_mul),
    ("int_bucketize_to_gather", int_bucketize_to_gather),
    ("drop_broadcast_tile", drop_broadcast_tile),
    ("fold_multiplied_mask", fold_multiplied_mask),
    ("drop_unit_reduce", drop_unit_reduce),
    ("fold_conv_channel_bias", fold_conv_channel_bias),
    ("conv1x1_to_matmul", conv1x1_to_matmul),
    ("split_stack_to_transpose", split_stack_to_transpose),
    ("unsigned_mod", unsigned_mod),
    ("drop_identity_reshapes", drop_identity_reshapes),
    ("compare_integers_directly", compare_integers_directly),
)


def optimize_onnx(
    model: Any, passes: Iterable[str] | None = None, strict: bool = False
) -> tuple[Any, OnnxCleanupResult]:
    """Run the clean-up passes on a copy of ``model``.

    Args:
        model: an ``onnx.ModelProto`` (not modified).
        passes: names from :data:`PASSES` to run (default: all, in their order).
        strict: re-raise a failing pass instead of skipping it.

    Returns:
        (the cleaned model, an :class:`OnnxCleanupResult`).
    """
    import onnx

    wanted = set(passes) if passes is not None else {name for name, _ in PASSES}
    unknown = wanted - {name for name, _ in PASSES}
    if unknown:
        raise ValueError(f"unknown ONNX clean-up passes: {sorted(unknown)}")
    cleaned = onnx.ModelProto()
    cleaned.CopyFrom(model)
    before = Counter(n.op_type for n in model.graph.node)
    rewrites: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for name, run in PASSES:
        if name not in wanted:
            continue
        attempt = onnx.ModelProto()
        attempt.CopyFrom(cleaned)
        try:
            changed = run(attempt)
            remove_unused(attempt)
        except Exception as e:  # noqa: BLE001 - a pass that fails is skipped, never fatal
            if strict:
                raise
            log.warning("ONNX clean-up pass %s skipped: %s", name, e)
            skipped[name] = f"{type(e).__name__}: {e}"
            continue
        if changed:
            rewrites[name] = changed
            cleaned = attempt
    remove_unused(cleaned)
    after = Counter(n.op_type for n in cleaned.graph.node)
    removed = {op: before[op] - after[op] for op in before | after if before[op] != after[op]}
    return cleaned, OnnxCleanupResult(
        nodes_before=sum(before.values()),
        nodes_after=sum(after.values()),
        rewrites=rewrites,
        ops_removed=dict(sorted(removed.items(), key=lambda kv: (-kv[1], kv[0]))),
        skipped=skipped,
    )
