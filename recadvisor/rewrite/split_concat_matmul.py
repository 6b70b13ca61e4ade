"""split_concat_matmul: a dense layer over a last-axis concat split into per-part MatMuls (exact).

What it rewrites: ``MatMul(ConcatV2([x_1 .. x_n], axis=-1), W)`` with a ``Const`` weight ``W``,
directly or through the ``Reshape(concat, [-1, width])`` a dense layer puts before its MatMul on
a rank-3 input (DIN's attention MLP over ``[B, L, 4d]``). Since ``concat(x) @ W = sum_i x_i @
W_i`` (``W_i`` the row block of ``W`` that multiplies ``x_i``), the layer can be computed from
the parts, which pays off in two cases:

* a part that is a sum or difference of two other parts (DIN's ``q - k`` next to ``q`` and
  ``k``) is folded into their weights: ``q @ W_1 + k @ W_2 + (q - k) @ W_3 = q @ (W_1 + W_3) +
  k @ (W_2 - W_3)``, one product fewer;
* a part that is a ``BroadcastTo`` / ``Tile`` of a smaller tensor over the leading axes (DIN's
  target item repeated over the history positions) is multiplied *before* the broadcast, once
  per row instead of once per position, and the ``[B, 1, h]`` product is broadcast in the sum.
  When the MatMul's only reader adds a ``Const`` bias, the bias joins that per-row term too.
  Other binary readers of a ``BroadcastTo(x, Shape(t))`` whose second operand is ``t`` (DIN's
  ``q * k``) then read ``x`` and broadcast it themselves, so the broadcast goes away.

The products read the parts (reshaped to ``[-1, width]`` when the concat has rank > 2), their
sum replaces the MatMul's (or the bias add's) output, and the concat, the folded ``Sub``/``Add``
and the old weight are deleted when nothing else reads them. On the DIN sample the attention
layer's input width per position drops from 192 to 96.

Option ``per_row_weights`` (default false): on a rank-3 concat, a part ``x * k`` (``x`` the
per-row query, ``k`` another part) is folded into ``k``'s weight per row, ``k @ (W_k + x[...,
None] * W_xk)`` with ``BatchMatMulV2`` (DIN: width per position 96 -> 48, ``q * k`` gone). It is
much faster on onnxruntime at every batch size and on TensorFlow at batch 256, but oneDNN's
``BatchMatMulV2`` adds ~0.07 ms to a TensorFlow call at batch 1, so no preset turns it on.

When it refuses (per layer; the pass refuses when no layer is rewritten): the MatMul transposes
an operand, its weight is not a rank-2 ``Const``, the concat is not on the last axis, a part's
width is not static, the concat or the Reshape has other readers, or the split would not reduce
the work per position (no part folded and none computed per row: splitting alone only adds ops).
Per-row terms of a rank > 2 concat need static non-batch dimensions, else the part stays per
position.

Exactness: exact up to float reassociation (folded weights are summed in float64 and rounded
once); the pipeline checks it against the previous stage with the default 1e-5 tolerance.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recadvisor.errors import PlanError
from recadvisor.model.edits import (
    add_const,
    add_node,
    protected_nodes,
    remove_nodes,
    reserve_name,
    resolve_const,
    rewire,
)
from recadvisor.model.graph import ModelGraph, canonical_tensor, is_control_input, node_name
from recadvisor.model.queries import Shape, static_shapes
from recadvisor.rewrite.base import EXACT, PassRefused, PassResult, RewriteContext, RewritePass
from recadvisor.rewrite.drop_unused_inputs import drop_stale_colocation

log = logging.getLogger(__name__)

_LINEAR_OPS = {"Sub": -1.0, "AddV2": 1.0, "Add": 1.0}
_BROADCAST_OPS = frozenset({"BroadcastTo", "Tile"})
_BIAS_OPS = frozenset({"AddV2", "Add", "BiasAdd"})
_BROADCASTING_BINARY_OPS = frozenset({"Mul", "AddV2", "Add", "Sub"})
NOT_A_CONCAT = "its input is not a ConcatV2 (or a Reshape of one)"


@dataclass(frozen=True)
class _Term:
    """One product of the split layer: ``tensor @ weight``.

    Attributes:
        tensor: the concat part multiplied (or, for ``a +/- b`` folds, one of its operands).
        weight: its row block of the layer's weight, with folded parts added in.
        row_source: the smaller tensor ``tensor`` broadcasts, multiplied instead (once per
            row); None for a product per position.
        row_shape: ``row_source``'s static shape.
        scale: ``(x, V)`` when the product ``(x * tensor) @ V`` is folded in: the weight
            becomes ``weight + x[..., None] * V`` per row (``x`` is ``[B, 1, w]``), multiplied
            with ``BatchMatMulV2`` (the ``per_row_weights`` option).
    """

    tensor: str
    weight: np.ndarray
    row_source: str | None = None
    row_shape: Shape = ()
    scale: tuple[str, np.ndarray] | None = None

    @property
    def per_row(self) -> bool:
        """Whether the product is computed before the broadcast."""
        return self.row_source is not None


@dataclass(frozen=True)
class _Split:
    """How one layer is rewritten.

    Attributes:
        matmul: the MatMul node.
        replaced: the tensor the sum replaces (the MatMul's output, or its bias add's).
        bias: the folded bias (None when the bias add stays).
        terms: the products.
        out_shape: the concat's static shape with the last dimension set to the layer's width.
        width_before / width_after: input width multiplied per position before and after.
    """

    matmul: str
    replaced: str
    bias: np.ndarray | None
    terms: tuple[_Term, ...]
    out_shape: Shape
    width_before: int
    width_after: int


def _data_inputs(node: Any) -> list[str]:
    return [i for i in node.input if not is_control_input(i)]


def _only_reader(graph: ModelGraph, name: str, reader: str) -> bool:
    """Whether ``reader`` is the one node reading ``name`` (and ``name`` is no output)."""
    readers = set(graph.consumers.get(name, []))
    return readers == {reader} and name not in graph.output_nodes.values()


def _axis(graph: ModelGraph, concat: Any, rank: int) -> int | None:
    value = resolve_const(graph, concat.input[-1])
    if value is None or value.ndim != 0:
        return None
    axis = int(value)
    return axis + rank if axis < 0 else axis


def _per_row_source(
    graph: ModelGraph, shapes: Mapping[str, Shape | None], tensor: str, width: int
) -> str | None:
    """The tensor a part broadcasts over its leading axes, when its product can broadcast too.

    ``BroadcastTo(x, shape)`` or ``Tile(x, multiples)`` of an ``x`` of the same rank whose last
    dimension is the part's width (the broadcast leaves the multiplied axis alone); ``Tile``
    only repeats axes where ``x`` has size 1 (so the repeat is a broadcast).
    """
    if not tensor.endswith(":0"):
        return None
    node = graph.nodes[node_name(tensor)]
    if node.op not in _BROADCAST_OPS:
        return None
    source = canonical_tensor(node.input[0])
    small, big = shapes.get(node_name(source)), shapes.get(node.name)
    if not source.endswith(":0") or small is None or big is None or len(small) != len(big):
        return None
    if small[-1] != width or any(d is None for d in small[1:]):
        return None
    if node.op == "Tile":
        multiples = resolve_const(graph, node.input[1])
        if multiples is None or multiples.shape != (len(small),) or int(multiples[-1]) != 1:
            return None
        if any(int(m) != 1 and d != 1 for m, d in zip(multiples, small, strict=True)):
            return None
    return source


def _fold_parts(
    graph: ModelGraph, parts: Sequence[str], blocks: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """Tensor -> float64 weight, with ``a +/- b`` parts folded into ``a`` and ``b``.

    A part is folded only when both its operands are themselves parts of the concat, of the
    same width (so the fold removes a product instead of adding one).
    """
    width_of = {p: b.shape[0] for p, b in zip(parts, blocks, strict=True)}
    weights: dict[str, np.ndarray] = {}
    for part, block in zip(parts, blocks, strict=True):
        node = graph.nodes[node_name(part)]
        operands = [canonical_tensor(i) for i in _data_inputs(node)]
        sign = _LINEAR_OPS.get(node.op)
        foldable = (
            part.endswith(":0")
            and sign is not None
            and len(operands) == 2
            and all(width_of.get(o) == block.shape[0] for o in operands)
        )
        targets = [(operands[0], 1.0), (operands[1], sign)] if foldable else [(part, 1.0)]
        for tensor, coeff in targets:
            weights.setdefault(tensor, np.zeros(block.shape, np.float64))
            weights[tensor] += coeff * block.astype(np.float64)
    return weights


def _bias_of(graph: ModelGraph, matmul: str, width: int) -> tuple[str, np.ndarray] | None:
    """(the bias add, its ``[width]`` Const bias) when it is the MatMul's only reader."""
    readers = set(graph.consumers.get(matmul, []))
    if len(readers) != 1 or matmul in graph.output_nodes.values():
        return None
    (reader,) = readers
    node = graph.nodes[reader]
    inputs = _data_inputs(node)
    if node.op not in _BIAS_OPS or len(inputs) != 2 or canonical_tensor(inputs[0]) != matmul + ":0":
        return None
    if node.op == "BiasAdd" and node.attr["data_format"].s not in (b"", b"NHWC"):
        return None
    bias = resolve_const(graph, inputs[1])
    if bias is None or bias.shape != (width,):
        return None
    return reader, bias


def _fold_scaled_products(graph: ModelGraph, terms: list[_Term]) -> list[_Term]:
    """Fold ``(x * b) @ V`` into ``b``'s term as a per-row weight, ``x`` a broadcast ``[B, 1, w]``.

    ``(x * b) @ V + b @ W = b @ (W + x[..., None] * V)``: one per-position product instead of
    two and no ``x * b``. Applies when the product's operands are a per-row part (broadcast
    over the rank-3 concat's middle axis) and another per-position part of the same width.
    """
    kept = {t.tensor: t for t in terms}
    for term in terms:
        node = graph.nodes[node_name(term.tensor)]
        operands = [canonical_tensor(i) for i in _data_inputs(node)]
        if term.per_row or node.op != "Mul" or len(set(operands)) != 2:
            continue
        for a, b in (operands, operands[::-1]):
            row, other = kept.get(a), kept.get(b)
            if (
                row is not None
                and other is not None
                and row.per_row
                and not other.per_row
                and other.scale is None
                and len(row.row_shape) == 3
                and row.row_shape[1] == 1
                and other.weight.shape == term.weight.shape
            ):
                del kept[term.tensor]
                kept[b] = _Term(b, other.weight, scale=(row.row_source, term.weight))  # type: ignore[arg-type]
                break
    return list(kept.values())


def _plan_split(
    graph: ModelGraph,
    shapes: Mapping[str, Shape | None],
    matmul: Any,
    per_row_weights: bool = False,
) -> tuple[_Split | None, str]:
    """How to split one MatMul, or (None, why not)."""
    if matmul.attr["transpose_a"].b or matmul.attr["transpose_b"].b:
        return None, "transposed operand"
    weight = resolve_const(graph, matmul.input[1])
    if weight is None or weight.ndim != 2 or weight.dtype.kind != "f":
        return None, "weight is not a rank-2 float Const"
    if not canonical_tensor(matmul.input[0]).endswith(":0"):
        return None, NOT_A_CONCAT
    src = graph.nodes[node_name(matmul.input[0])]
    flat = src.op == "Reshape"
    if flat and not canonical_tensor(src.input[0]).endswith(":0"):
        return None, NOT_A_CONCAT
    concat = graph.nodes[node_name(src.input[0])] if flat else src
    if concat.op != "ConcatV2":
        return None, NOT_A_CONCAT
    if flat:
        target = resolve_const(graph, src.input[1])
        if target is None or target.shape != (2,) or int(target[1]) != weight.shape[0]:
            return None, "the Reshape before the MatMul is not to [-1, width]"
        if not _only_reader(graph, src.name, matmul.name):
            return None, "the Reshape has other readers"
    if not _only_reader(graph, concat.name, src.name if flat else matmul.name):
        return None, "the concat has other readers"
    concat_shape = shapes.get(concat.name)
    if concat_shape is None or len(concat_shape) < 2 or (len(concat_shape) != 2 and not flat):
        return None, "the concat's rank is unknown or not 2"
    if _axis(graph, concat, len(concat_shape)) != len(concat_shape) - 1:
        return None, "the concat is not on the last axis"
    parts = [canonical_tensor(i) for i in _data_inputs(concat)[:-1]]
    part_shapes = [shapes.get(node_name(p)) if p.endswith(":0") else None for p in parts]
    if any(s is None or len(s) != len(concat_shape) or s[-1] is None for s in part_shapes):
        return None, "a part's width is not static"
    widths = [int(s[-1]) for s in part_shapes]  # type: ignore[index]
    if sum(widths) != weight.shape[0]:
        return None, "the parts' widths do not add up to the weight's rows"
    offsets = np.cumsum([0, *widths])
    blocks = [weight[offsets[i] : offsets[i + 1]] for i in range(len(parts))]
    folded = _fold_parts(graph, parts, blocks)
    out_shape = (*concat_shape[:-1], int(weight.shape[1]))
    can_broadcast = len(concat_shape) == 2 or all(d is not None for d in concat_shape[1:-1])
    terms = []
    for tensor, w in folded.items():
        source = _per_row_source(graph, shapes, tensor, w.shape[0]) if can_broadcast else None
        row_shape = shapes[node_name(source)] if source else ()
        terms.append(_Term(tensor, w, source, row_shape or ()))
    if all(t.per_row for t in terms):  # the sum must keep the full shape: no broadcast
        terms = [_Term(t.tensor, t.weight) for t in terms]
    if per_row_weights and len(concat_shape) == 3:
        terms = _fold_scaled_products(graph, terms)
    width_after = sum(t.weight.shape[0] for t in terms if not t.per_row)
    if width_after >= weight.shape[0]:
        return None, "no part folds or broadcasts (splitting alone would only add ops)"
    bias = _bias_of(graph, matmul.name, weight.shape[1]) if any(t.per_row for t in terms) else None
    replaced = (bias[0] if bias else matmul.name) + ":0"
    dtype = weight.dtype
    terms = [
        _Term(
            t.tensor,
            t.weight.astype(dtype),
            t.row_source,
            t.row_shape,
            None if t.scale is None else (t.scale[0], t.scale[1].astype(dtype)),
        )
        for t in terms
    ]
    split = _Split(
        matmul=matmul.name,
        replaced=replaced,
        bias=None if bias is None else bias[1],
        terms=tuple(terms),
        out_shape=out_shape,
        width_before=int(weight.shape[0]),
        width_after=int(width_after),
    )
    return split, ""


def _emit(graph_def: Any, names: set[str], split: _Split, dtype_attr: Any) -> str:
    """Append the products and their sum; returns the tensor that replaces ``split.replaced``.

    Every product is a rank-2 ``MatMul``: rank > 2 parts are reshaped to ``[-1, w]`` first (as
    the dense layer did; ``BatchMatMulV2`` with a rank-2 weight costs TensorFlow 0.04-0.1 ms more
    per DIN call at batch 1). Per-row products are reshaped to ``[-1, 1.., h]`` and the per-position
    sum to the concat's shape so that they broadcast, then the total goes back to ``[-1, h]``.
    """
    prefix = split.matmul + "/split"
    rank = len(split.out_shape)
    h = split.out_shape[-1]

    def node(base: str, op: str, inputs: list[str], **attrs: Any) -> str:
        name = reserve_name(names, f"{prefix}/{base}")
        add_node(graph_def, name, op, inputs, **attrs)
        graph_def.node[-1].attr["T"].CopyFrom(dtype_attr)
        return name

    def const(base: str, value: np.ndarray) -> str:
        name = reserve_name(names, f"{prefix}/{base}")
        add_const(graph_def, name, value)
        return name

    def reshape(base: str, x: str, shape: Sequence[int | None]) -> str:
        target = const(f"{base}_shape", np.array([-1, *shape[1:]], np.int32))
        return node(base, "Reshape", [x, target], Tshape="dtype:int32")

    def product(i: int, term: _Term) -> str:
        x = term.row_source or term.tensor
        if rank > 2:
            x = reshape(f"flat_{i}", x, (None, term.weight.shape[0]))
        w = const(f"weight_{i}", term.weight)
        out = node(f"matmul_{i}", "MatMul", [x, w], transpose_a=False, transpose_b=False)
        if term.per_row and rank > 2:
            out = reshape(f"rows_{i}", out, (*term.row_shape[:-1], h))
        return out

    def scaled_product(i: int, term: _Term) -> str:
        source, scale = term.scale  # type: ignore[misc]
        column = reshape(f"column_{i}", source, (None, scale.shape[0], 1))
        weights = node(f"row_weight_{i}", "Mul", [column, const(f"scale_{i}", scale)])
        weights = node(f"row_weight_sum_{i}", "AddV2", [weights, const(f"weight_{i}", term.weight)])
        return node(
            f"matmul_{i}", "BatchMatMulV2", [term.tensor, weights], adj_x=False, adj_y=False
        )

    def add_all(base: str, tensors: list[str]) -> str:
        total = tensors[0]
        for k, other in enumerate(tensors[1:]):
            total = node(f"{base}_{k}", "AddV2", [total, other])
        return total

    flat = [product(i, t) for i, t in enumerate(split.terms) if not t.per_row and not t.scale]
    full = [scaled_product(i, t) for i, t in enumerate(split.terms) if t.scale]
    rows = [product(i, t) for i, t in enumerate(split.terms) if t.per_row]
    if not rows and not full:
        return add_all("sum", flat)
    if flat:
        full.append(reshape("unflat", add_all("sum", flat), split.out_shape))
    total = add_all("full_sum", full)
    if rows:
        row_total = add_all("row_sum", rows)
        if split.bias is not None:
            row_total = node("row_bias", "AddV2", [row_total, const("bias", split.bias)])
        total = node("broadcast_sum", "AddV2", [total, row_total])
    return reshape("reflat", total, (None, h))


def _bypass_broadcasts(graph_def: Any, splits: Sequence[_Split]) -> list[str]:
    """Let the other readers of a hoisted ``BroadcastTo(x, Shape(t))`` read ``x`` itself.

    DIN's ``q * k`` multiplies the broadcast query by the keys ``k`` whose shape it was broadcast
    to: ``Mul(x, k)`` broadcasts ``x`` the same way without materializing it. Only binary ops
    whose other operand is that very ``t`` are changed (the result shape is then ``t``'s). Runs
    after the split layers are deleted, so their concats no longer count as readers.

    Returns:
        The ``BroadcastTo`` nodes now read by nothing.
    """
    by_name = {n.name: n for n in graph_def.node}
    bypassed = []
    for term in (t for s in splits for t in s.terms if t.per_row):
        broadcast = by_name.get(node_name(term.tensor))
        if broadcast is None or broadcast.op != "BroadcastTo":
            continue
        shape = by_name.get(node_name(broadcast.input[1]))
        if shape is None or shape.op != "Shape" or not broadcast.input[1].endswith(("", ":0")):
            continue
        target = canonical_tensor(shape.input[0])
        still_read = False
        for reader in graph_def.node:
            inputs = [canonical_tensor(i) for i in reader.input if not is_control_input(i)]
            if term.tensor not in inputs:
                continue
            if (
                reader.op in _BROADCASTING_BINARY_OPS
                and len(inputs) == 2
                and sorted(inputs) == sorted([term.tensor, target])
            ):
                pos = inputs.index(term.tensor)
                reader.input[pos] = term.row_source  # type: ignore[assignment]
            else:
                still_read = True
        if not still_read:
            bypassed.append(broadcast.name)
    return bypassed


class SplitConcatMatMulPass(RewritePass):
    """Split dense layers over concats where folding or broadcasting saves work."""

    name = "split_concat_matmul"
    exactness = EXACT
    changes_contract = False

    def check_params(self, params: Mapping[str, Any], graph: ModelGraph) -> None:
        """Only ``per_row_weights`` (bool) is accepted.

        Raises:
            PlanError: unknown params or a non-boolean ``per_row_weights``.
        """
        extra = set(params) - {"per_row_weights"}
        if extra:
            raise PlanError(
                f"split_concat_matmul: unknown params {sorted(extra)}; it takes 'per_row_weights'"
            )
        if not isinstance(params.get("per_row_weights", False), bool):
            raise PlanError("split_concat_matmul: params.per_row_weights must be true or false")

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Split every MatMul over a last-axis concat whose split reduces the work.

        Args:
            graph: the current stage (never mutated).
            params: ``per_row_weights`` (default false): also fold ``(x * k) @ V`` into ``k``'s
                weight per row (see the module docstring).
            context: unused (the pass needs no sample data).

        Returns:
            The rewritten graph; stats give the layers split and the input width multiplied
            per position before and after.

        Raises:
            PassRefused: no layer qualifies (the reasons are listed).
        """
        self.check_params(params, graph)
        matmuls = [n for n in graph.graph_def.node if n.op == "MatMul"]
        if not matmuls:
            raise PassRefused("split_concat_matmul: the graph has no MatMul")
        shapes = static_shapes(graph)
        splits: list[_Split] = []
        skipped: list[str] = []
        for matmul in matmuls:
            if node_name(matmul.input[0]) not in graph.nodes:
                continue
            split, why = _plan_split(
                graph, shapes, matmul, bool(params.get("per_row_weights", False))
            )
            if split is not None:
                splits.append(split)
            elif why != NOT_A_CONCAT:
                skipped.append(f"{matmul.name}: {why}")
        if not splits:
            shown = "; ".join(skipped[:5]) + ("; ..." if len(skipped) > 5 else "")
            raise PassRefused(
                "split_concat_matmul: no MatMul over a last-axis concat where splitting saves "
                "work" + (f" ({shown})" if skipped else " (no MatMul reads a ConcatV2)")
            )

        graph_def = graph.copy_graph_def()
        names = {n.name for n in graph_def.node}
        # emit every layer before rewiring any, so a layer whose part is another layer's
        # output reads the new sum as well
        sums = [_emit(graph_def, names, s, graph.nodes[s.matmul].attr["T"]) for s in splits]
        for split, new in zip(splits, sums, strict=True):
            rewire(graph_def, split.replaced, new)
        remove_nodes(graph_def, {node_name(s.replaced) for s in splits}, protected_nodes(graph))
        unread_broadcasts = _bypass_broadcasts(graph_def, splits)
        remove_nodes(graph_def, unread_broadcasts, protected_nodes(graph))
        drop_stale_colocation(graph_def)

        layers = [
            {
                "matmul": s.matmul,
                "width_before": s.width_before,
                "width_after": s.width_after,
                "per_row_terms": sum(t.per_row for t in s.terms),
                "bias_folded": s.bias is not None,
            }
            for s in splits
        ]
        stats = {
            "layers_split": len(splits),
            "layers": layers,
            "layers_left": len(skipped),
            "broadcasts_removed": graph.op_counts().get("BroadcastTo", 0)
            - sum(n.op == "BroadcastTo" for n in graph_def.node),
        }
        notes = tuple(
            f"{s.matmul}: input width per position {s.width_before} -> {s.width_after}"
            for s in splits
        )
        for line in skipped:
            log.debug("split_concat_matmul left %s", line)
        return PassResult(self.name, graph.replace(graph_def=graph_def), stats, notes=notes)
