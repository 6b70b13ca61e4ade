"""A plain reference for the stats tests: pyarrow for the values, the graph itself for the rows.

Nothing here shares code with ``recadvisor.stats`` beyond reading files: value counts come from
``pyarrow`` group-bys, quantiles from a sorted numpy array, and the embedding rows from running
the model's own gather indices on every log row.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


def read_logs(root: Path) -> pa.Table:
    """The whole hive-partitioned dataset in memory."""
    return ds.dataset(root, format="parquet", partitioning="hive").to_table()


def values_of(table: pa.Table, name: str) -> pa.Array:
    """One column's values (a list column's elements), as one array."""
    col = table.column(name).combine_chunks()
    if pa.types.is_list(col.type):
        col = pc.list_flatten(col)
    if pa.types.is_floating(col.type):
        col = col.cast(pa.float64())
    return col


def value_counts(values: pa.Array) -> list[tuple[Any, int]]:
    """(value, count) sorted by value, null first (NaN last)."""
    grouped = pa.table({"v": values}).group_by("v").aggregate([([], "count_all")])
    pairs = list(zip(grouped.column("v").to_pylist(), grouped.column(1).to_pylist(), strict=True))

    def key(p: tuple[Any, int]) -> tuple[int, Any]:
        v = p[0]
        if v is None:
            return (0, 0)
        if isinstance(v, float) and math.isnan(v):
            return (2, 0)
        return (1, v.encode() if isinstance(v, str) else v)

    return sorted(pairs, key=key)


def summary(values: pa.Array, pad: Any) -> dict[str, Any]:
    """nulls, nan, values, distinct, pads, min, max and quantiles (ranks ceil(q*n))."""
    present = pc.drop_null(values).to_numpy(zero_copy_only=False)
    nulls = len(values) - len(present)
    nan = 0
    if present.dtype.kind == "f":
        nan = int(np.isnan(present).sum())
        present = present[~np.isnan(present)]
    ordered = np.sort(present) if present.dtype.kind != "O" else sorted(present, key=str.encode)
    n = len(ordered)
    out = {
        "nulls": nulls,
        "nan": nan,
        "values": n,
        "distinct": len(set(np.asarray(present).tolist())),
        "pads": int(sum(1 for v in present.tolist() if v == pad)),
        "min": ordered[0].item() if hasattr(ordered[0], "item") else ordered[0],
        "max": ordered[-1].item() if hasattr(ordered[-1], "item") else ordered[-1],
    }
    if present.dtype.kind in "if":
        out["quantiles"] = {
            f"p{round(q * 100):g}": ordered[max(1, math.ceil(q * n)) - 1].item() for q in QUANTILES
        }
    return out


def row_hits(model_dir: Path, table: pa.Table) -> dict[str, np.ndarray]:
    """Embedding table node -> hits per row, from the graph's own gather indices on every row."""
    from recadvisor.analysis.detectors.graph_patterns import evaluate_tensors, find_embedding_tables
    from recadvisor.data import to_feeds
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model

    graph = freeze(load_model(model_dir))
    feeds = to_feeds(table.to_pandas(), graph.signature, strict=False)
    tables = find_embedding_tables(graph)
    tensors = sorted({u.indices for t in tables for u in t.uses})
    ids = evaluate_tensors(graph, tensors, feeds)
    hits = {}
    for t in tables:
        rows = np.concatenate([np.asarray(ids[u.indices]).reshape(-1) for u in t.uses])
        hits[t.node] = np.bincount(rows.astype(np.int64), minlength=t.rows)
    return hits
