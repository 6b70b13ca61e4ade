"""reduce_embedding_dim: an embedding table replaced by its truncated SVD.

What it rewrites: an embedding table ``E`` (rows x d; a float ``Const`` read only by axis-0
gathers) with ``E = U S V^T``. It keeps the ``k`` leading singular values holding ``energy``
(default 0.99) of ``sum(S^2)`` (or the plan's ``dims``) and stores ``A = U_k S_k`` (rows x k).
Each gather then reads ``A`` and the projection ``V_k^T`` (k x d) goes where it costs nothing:

* folded into the next dense layer when the gathered rows (rank 2) reach ``MatMul(x, W)``
  directly or as one block of a last-axis ``ConcatV2`` that only ``MatMul``s read: the block's
  rows of ``W`` become ``V_k^T W_block`` (k rows), so the layer gets narrower, not wider;
* otherwise a small ``BatchMatMulV2(gathered, V_k^T)`` after the gather.

Gate: the pass runs the graph before and after on the sample and records the largest output
difference and, with binary labels, the AUC change in its stats. The pipeline enforces the plan
entry's ``max_abs_diff`` (default: this pass's ``tolerance``, 0.01) and ``max_auc_drop`` (default
0.001) and rolls the pass back beyond them; a caller passing those two params to ``apply``
directly gets the same limits enforced by the pass itself (it then refuses).

When it refuses: no table whose ``k`` is below ``max_ratio`` (default 0.75) of its width (no
gain) unless ``dims`` forces it; the gate fails; no sample data.

Exactness: lossy (exact up to float rounding when ``k`` equals the table's rank).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recadvisor.model.edits import (
    add_const,
    add_node,
    const_array,
    reserve_name,
    resolve_const,
    rewire,
    set_gather_params,
)
from recadvisor.model.graph import ModelGraph, canonical_tensor, is_control_input, node_name
from recadvisor.model.queries import IDENTITY_OPS, EmbeddingTable, describe_table, rewritable_tables
from recadvisor.model.runtime import probe_tensors
from recadvisor.rewrite.accuracy_gate import GatedTablePass
from recadvisor.rewrite.base import PassRefused, PassResult, RewriteContext

log = logging.getLogger(__name__)

DEFAULT_ENERGY = 0.99
DEFAULT_MAX_RATIO = 0.75


def truncated_svd(
    table: np.ndarray, energy: float, dims: int | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """``A`` (rows x k) and ``P`` (k x d) with ``A @ P ~= table``.

    Args:
        table: rows x d.
        energy: fraction of ``sum(S^2)`` to keep (ignored when ``dims`` is set).
        dims: an explicit ``k``.

    Returns:
        (A, P, kept energy fraction).
    """
    u, s, vt = np.linalg.svd(table.astype(np.float64), full_matrices=False)
    total = float(np.sum(s**2)) or 1.0
    cum = np.cumsum(s**2) / total
    k = int(dims) if dims else int(np.searchsorted(cum, energy - 1e-12) + 1)
    k = max(1, min(k, s.size))
    a = (u[:, :k] * s[:k]).astype(table.dtype)
    p = vt[:k].astype(table.dtype)
    return a, p, float(cum[k - 1])


def _data_readers(graph: ModelGraph, name: str) -> list[tuple[str, int]]:
    """(reader, position) of ``name:0`` looking through Identity nodes."""
    out: list[tuple[str, int]] = []
    for reader in dict.fromkeys(graph.consumers.get(name, [])):
        node = graph.nodes[reader]
        for pos, inp in enumerate(node.input):
            if is_control_input(inp) or canonical_tensor(inp) != name + ":0":
                continue
            if node.op in IDENTITY_OPS:
                out.extend(_data_readers(graph, reader))
            else:
                out.append((reader, pos))
    return out


def _data_inputs(node: Any) -> list[str]:
    return [i for i in node.input if not is_control_input(i)]


def _dense_weight(graph: ModelGraph, matmul: str) -> np.ndarray | None:
    node = graph.nodes[matmul]
    if node.op != "MatMul" or node.attr["transpose_a"].b or node.attr["transpose_b"].b:
        return None
    return resolve_const(graph, node.input[1])


@dataclass
class _Fold:
    """How one MatMul weight changes: per input row block, the projection folded into it."""

    matmul: str
    widths: list[int]
    projections: dict[int, np.ndarray] = field(default_factory=dict)  # block index -> P


class ReduceEmbeddingDimPass(GatedTablePass):
    """Embedding tables replaced by a truncated SVD (see the module docstring)."""

    name = "reduce_embedding_dim"

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Factor the embedding tables and fold the projections where the algebra allows.

        Args:
            graph: the current stage.
            params: ``energy`` (default 0.99), ``dims`` (explicit k), ``max_ratio`` (default
                0.75), ``tables`` (Const names), ``max_abs_diff``, ``max_auc_drop``.
            context: sample inputs and labels.

        Returns:
            The graph with smaller tables; stats give k, kept energy and where each projection
            went.
        """
        if not context.feeds:
            raise PassRefused("reduce_embedding_dim is lossy and needs sample data (--data)")
        energy = float(params.get("energy", DEFAULT_ENERGY))
        dims = params.get("dims")
        max_ratio = float(params.get("max_ratio", DEFAULT_MAX_RATIO))
        wanted = params.get("tables")
        candidates = [
            t
            for t in rewritable_tables(graph).values()
            if len(t.shape) == 2
            and t.shape[1] >= 2
            and t.dtype.startswith("float")
            and (not wanted or graph.names_table(wanted, t.const))
        ]
        factored: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        skipped: list[str] = []
        for t in candidates:
            a, p, kept = truncated_svd(const_array(graph.nodes[t.const]), energy, dims)
            k = a.shape[1]
            if not dims and k > max_ratio * t.shape[1]:
                skipped.append(
                    f"{describe_table(graph, t)}: needs {k} of {t.shape[1]} dims for "
                    f"{energy:g} of the energy"
                )
                continue
            factored[t.const] = (a, p, kept)
        if not factored:
            raise PassRefused(
                "reduce_embedding_dim: no table to reduce: "
                + ("; ".join(skipped) or "no float embedding table")
            )
        tables = {t.const: t for t in candidates if t.const in factored}
        folds, fold_of_gather = self._plan_folds(graph, tables, factored, context)

        gd = graph.copy_graph_def()
        by_name = {n.name: n for n in gd.node}
        names = set(by_name)
        old_params: set[str] = set()
        per_table: dict[str, Any] = {}
        bytes_before = bytes_after = 0
        for const, table in tables.items():
            a, p, kept = factored[const]
            a_name = reserve_name(names, f"{const}/svd_a")
            add_const(gd, a_name, a)
            p_name = None
            placements: list[str] = []
            for g in table.gathers:
                old_params.add(node_name(graph.nodes[g].input[0]))
                set_gather_params(gd, g, a_name, str(a.dtype))
                if g in fold_of_gather:
                    placements.append(f"folded into {fold_of_gather[g]}")
                    continue
                if p_name is None:
                    p_name = reserve_name(names, f"{const}/svd_p")
                    add_const(gd, p_name, p)
                proj = reserve_name(names, f"{g}/svd_project")
                rewire(gd, g, proj)
                add_node(
                    gd,
                    proj,
                    "BatchMatMulV2",
                    [g, p_name],
                    T=f"dtype:{a.dtype}",
                    adj_x=False,
                    adj_y=False,
                )
                placements.append("BatchMatMulV2 after the gather")
            size = a.nbytes + (p.nbytes if p_name else 0)
            bytes_before += table.nbytes
            bytes_after += size
            per_table[graph.table_name(const)] = {
                "table": describe_table(graph, table),
                "dims_before": table.shape[1],
                "dims_after": int(a.shape[1]),
                "energy_kept": round(kept, 6),
                "projection": placements,
                "bytes_before": table.nbytes,
                "bytes_after": int(size),
            }
        for fold in folds.values():
            node = by_name[fold.matmul]
            w = _dense_weight(graph, fold.matmul)
            assert w is not None  # checked while planning
            blocks, offset = [], 0
            for i, width in enumerate(fold.widths):
                block = w[offset : offset + width]
                offset += width
                blocks.append(fold.projections[i] @ block if i in fold.projections else block)
            w_new = np.concatenate(blocks).astype(w.dtype)
            w_name = reserve_name(names, f"{fold.matmul}/svd_folded_kernel")
            add_const(gd, w_name, w_new)
            old_params.add(node_name(node.input[1]))
            node.input[1] = w_name
        new_graph, gate = self.finish(graph, gd, old_params, params, context)
        notes = [
            f"{d['table']}: {d['dims_before']} -> {d['dims_after']} dims "
            f"({d['energy_kept']:.4f} of the energy); projection "
            f"{', '.join(sorted(set(d['projection'])))}"
            for d in per_table.values()
        ]
        notes += [f"left as is: {s}" for s in skipped]
        notes.append(gate.summary())
        stats = {
            "tables": per_table,
            "table_bytes_before": int(bytes_before),
            "table_bytes_after": int(bytes_after),
            "gate": gate.to_dict(),
        }
        log.info(
            "reduce_embedding_dim: %d tables, %d -> %d bytes",
            len(per_table),
            bytes_before,
            bytes_after,
        )
        return PassResult(self.name, new_graph, stats, (), tuple(notes))

    @staticmethod
    def _plan_folds(
        graph: ModelGraph,
        tables: Mapping[str, EmbeddingTable],
        factored: Mapping[str, tuple[np.ndarray, np.ndarray, float]],
        context: RewriteContext,
    ) -> tuple[dict[str, _Fold], dict[str, str]]:
        """Which gathers' projections fold into which MatMul weight."""
        gathers = {g: c for c, t in tables.items() for g in t.gathers}
        # (gather, concat or None, block position, matmuls)
        routes: list[tuple[str, str | None, int, list[str]]] = []
        probe: set[str] = set()
        for g in gathers:
            readers = _data_readers(graph, g)
            if len(readers) != 1:
                continue
            reader, pos = readers[0]
            node = graph.nodes[reader]
            if node.op == "MatMul" and pos == 0 and _dense_weight(graph, reader) is not None:
                routes.append((g, None, 0, [reader]))
                probe.add(g + ":0")
            elif node.op == "ConcatV2" and pos < len(_data_inputs(node)) - 1:
                axis = resolve_const(graph, _data_inputs(node)[-1])
                matmuls = _data_readers(graph, reader)
                if (
                    axis is None
                    or int(axis) not in (1, -1)
                    or not matmuls
                    or any(
                        graph.nodes[m].op != "MatMul" or p != 0 or _dense_weight(graph, m) is None
                        for m, p in matmuls
                    )
                ):
                    continue
                routes.append((g, reader, pos, [m for m, _ in matmuls]))
                probe.update(canonical_tensor(i) for i in _data_inputs(node)[:-1])
                probe.add(g + ":0")
        if not routes:
            return {}, {}
        sample = {k: np.asarray(v)[:2] for k, v in context.feeds.items()}
        shapes = {t: v.shape for t, v in probe_tensors(graph, probe, sample).items()}
        folds: dict[str, _Fold] = {}
        fold_of_gather: dict[str, str] = {}
        for g, concat, pos, matmuls in routes:
            if len(shapes.get(g + ":0", ())) != 2:
                continue
            if concat is None:
                widths = [shapes[g + ":0"][1]]
            else:
                parts = [
                    shapes.get(canonical_tensor(i)) for i in _data_inputs(graph.nodes[concat])[:-1]
                ]
                if any(s is None or len(s) != 2 for s in parts):
                    continue
                widths = [int(s[1]) for s in parts]
            _, p, _ = factored[gathers[g]]
            for m in matmuls:
                w = _dense_weight(graph, m)
                if w is None or w.shape[0] != sum(widths):
                    break
                fold = folds.setdefault(m, _Fold(m, widths))
                fold.projections[pos] = p
            else:
                fold_of_gather[g] = ", ".join(matmuls)
                continue
            for m in matmuls:  # a weight that did not match: undo this gather's folds
                if m in folds:
                    folds[m].projections.pop(pos, None)
        return {m: f for m, f in folds.items() if f.projections}, fold_of_gather
