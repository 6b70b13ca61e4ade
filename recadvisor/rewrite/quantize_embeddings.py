"""quantize_embeddings: embedding tables stored as float16, or int8 with a per-row scale.

What it rewrites: every float ``Const`` read only by axis-0 gathers (an embedding table) of at
least ``min_bytes``, or the plan's ``tables``:

* ``dtype: fp16``: the table becomes float16; each gather is followed by ``Cast`` back to the
  table's dtype. Half the bytes.
* ``dtype: int8``: each row is scaled by ``max(|row|) / 127`` and rounded to int8; the scales
  (float32, one per row) are a second small table. Each gather becomes
  ``Cast(Gather(q, ids)) * Cast(Gather(scale, ids))``: the dequantization happens after the
  gather, on the few rows a request touches. Scales are stored as float16 (``scale_dtype``) when
  that is exact to 1e-3 relative, else float32: 0.28x the bytes for 16-dim float32 rows.

Gate: the pass runs the graph before and after on the sample and records the largest output
difference and, with binary labels, the AUC change in its stats. The pipeline enforces the plan
entry's ``max_abs_diff`` (default: this pass's ``tolerance``, 0.01) and ``max_auc_drop`` (default
0.001) and rolls the pass back beyond them; a caller passing those two params to ``apply``
directly gets the same limits enforced by the pass itself (it then refuses).

When it refuses: no embedding table (a table also read by something other than a gather stays
float); the accuracy gate fails; no sample data.

Exactness: lossy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from recadvisor.model.edits import (
    add_cast,
    add_const,
    add_gather,
    add_node,
    add_table_consts,
    const_array,
    dtype_name,
    reserve_name,
    rewire,
    set_gather_params,
    unique_name,
)
from recadvisor.model.graph import ModelGraph
from recadvisor.model.queries import EmbeddingTable, describe_table, rewritable_tables
from recadvisor.rewrite.accuracy_gate import GatedTablePass
from recadvisor.rewrite.base import PassRefused, PassResult, RewriteContext

log = logging.getLogger(__name__)

FLOAT_TABLE_DTYPES = ("float32", "float64")


def quantize_int8(table: np.ndarray, scale_dtype: str = "float16") -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8 quantization.

    Args:
        table: float array (rows, ...).
        scale_dtype: ``float16`` (used only when every scale survives it to 1e-3 relative,
            otherwise float32) or ``float32``.

    Returns:
        (int8 values, scales shaped (rows, 1, ...)) with ``values * scales ~= table``.
    """
    axes = tuple(range(1, table.ndim))
    peak = np.max(np.abs(table), axis=axes, keepdims=True).astype(np.float32)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    if scale_dtype == "float16":
        with np.errstate(over="ignore", under="ignore"):
            half = scale.astype(np.float16)
        rel = np.abs(half.astype(np.float32) - scale) / scale
        if np.all(np.isfinite(half)) and np.all(half > 0) and float(rel.max()) <= 1e-3:
            scale = half
    q = np.clip(np.rint(table / scale.astype(np.float32)), -127, 127).astype(np.int8)
    return q, scale


def _select_tables(graph: ModelGraph, params: Mapping[str, Any]) -> list[EmbeddingTable]:
    tables = rewritable_tables(graph)
    wanted = params.get("tables")
    min_bytes = int(params.get("min_bytes", 0))
    chosen = [
        t
        for t in tables.values()
        if t.dtype in FLOAT_TABLE_DTYPES
        and t.nbytes >= min_bytes
        and (not wanted or graph.names_table(wanted, t.const))
    ]
    if not chosen:
        raise PassRefused(
            "quantize_embeddings: no float embedding table (a constant read only by gathers) "
            f"of at least {min_bytes} bytes"
        )
    return chosen


class QuantizeEmbeddingsPass(GatedTablePass):
    """Embedding tables in float16 or int8 + per-row scale (see the module docstring)."""

    name = "quantize_embeddings"

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Quantize the embedding tables.

        Args:
            graph: the current stage.
            params: ``dtype`` (``fp16`` | ``int8``), ``scale_dtype`` (int8: ``float16`` |
                ``float32``), ``min_bytes``, ``tables`` (Const names), ``max_abs_diff``,
                ``max_auc_drop``.
            context: sample inputs and labels for the gate.

        Returns:
            The graph with quantized tables; stats hold bytes before/after and the gate result.
        """
        dtype = str(params.get("dtype", "fp16")).lower()
        if dtype not in ("fp16", "int8"):
            raise PassRefused(f"quantize_embeddings: dtype must be fp16 or int8, got '{dtype}'")
        tables = _select_tables(graph, params)
        gd = graph.copy_graph_def()
        names = {n.name for n in gd.node}
        bytes_before = bytes_after = 0
        per_table: dict[str, Any] = {}
        for table in tables:
            value = const_array(graph.nodes[table.const])
            out_dtype = table.dtype
            if dtype == "fp16":
                stored = value.astype(np.float16)
                new_name = reserve_name(names, f"{table.const}/fp16")
                add_const(gd, new_name, stored)
                size = stored.nbytes
                for gname in table.gathers:
                    set_gather_params(gd, gname, new_name, "float16")
                    cast = reserve_name(names, f"{gname}/dequantize")
                    rewire(gd, gname, cast)
                    add_cast(gd, cast, gname, "float16", out_dtype)
            else:
                q, scale = quantize_int8(value, str(params.get("scale_dtype", "float16")))
                scale_dtype = str(scale.dtype)
                (q_name, s_name), axis = add_table_consts(
                    gd, names, table.const, {"int8": q, "scale": scale}
                )
                size = q.nbytes + scale.nbytes
                for gname in table.gathers:
                    gather = graph.nodes[gname]
                    ids = gather.input[1]
                    ids_dtype = gather.attr["Tindices"].type
                    set_gather_params(gd, gname, q_name, "int8")
                    cast = unique_name(names, f"{gname}/dequantize")
                    g_scale = unique_name(names, f"{gname}/scale")
                    mul = unique_name(names, f"{gname}/scaled")
                    names.update((cast, g_scale, mul))
                    rewire(gd, gname, mul)
                    add_cast(gd, cast, gname, "int8", out_dtype)
                    add_gather(gd, g_scale, s_name, ids, scale_dtype, dtype_name(ids_dtype), axis)
                    scaled = g_scale
                    if out_dtype != scale_dtype:
                        scaled = reserve_name(names, f"{gname}/scale_cast")
                        add_cast(gd, scaled, g_scale, scale_dtype, out_dtype)
                    add_node(gd, mul, "Mul", [cast, scaled], T=f"dtype:{out_dtype}")
            bytes_before += table.nbytes
            bytes_after += size
            per_table[graph.table_name(table.const)] = {
                "table": describe_table(graph, table),
                "shape": list(table.shape),
                "bytes_before": table.nbytes,
                "bytes_after": int(size),
                "gathers": len(table.gathers),
            }
        old_params = {graph.nodes[g].input[0].split(":")[0] for t in tables for g in t.gathers}
        new_graph, gate = self.finish(graph, gd, old_params, params, context)
        ratio = bytes_after / bytes_before if bytes_before else 1.0
        stats = {
            "dtype": dtype,
            "tables": per_table,
            "table_bytes_before": int(bytes_before),
            "table_bytes_after": int(bytes_after),
            "size_ratio": round(ratio, 4),
            "gate": gate.to_dict(),
        }
        note = (
            f"{len(tables)} embedding tables stored as {dtype}: {bytes_before} -> "
            f"{bytes_after} bytes ({ratio:.2f}x); {gate.summary()}"
        )
        if gate.auc_before:
            note += f", AUC drop {gate.auc_drop:.5f}"
        log.info("quantize_embeddings: %s", note)
        return PassResult(self.name, new_graph, stats, (), (note,))
