"""Embedding tables: size, rows the data actually hits, effective rank, rule-of-thumb dim.

For every frozen embedding table (a float ``Const`` read by gathers) the detector measures:

* rows x dim, dtype and bytes, and the features whose ids index it;
* rows hit: the gathers' index tensors are computed on the sample feeds (the graph's own hashing
  and vocabulary lookups run, nothing is re-implemented), giving the distinct rows read; with
  full-log statistics (``analyze --stats``) the rows the logs hit instead (``rows_hit_source``
  says which, and how many rows);
* effective rank: singular values of the rows hit (of the whole table without data); the number
  of dims holding 95% / 99% of the energy (sum of squared singular values);
* the rule-of-thumb dim ``6 * cardinality ** 0.25`` for the feature's cardinality (distinct values
  in the data, else rows hit, else rows).

A ``large_embedding`` finding is made when the table is oversized for the ids seen (rows >= 2x
the cardinality and at least 64 spare rows), its dim is >= 2x the rule of thumb, its energy sits in
half its dims or fewer, or it is big (>= 16 MiB: a quantization candidate).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recadvisor.analysis.detectors.graph_patterns import (
    EmbeddingTable,
    const_value,
    find_embedding_tables,
    gather_ids,
    table_rows_hit,
)
from recadvisor.analysis.findings import (
    HIGH,
    LARGE_EMBEDDING,
    LOW,
    MEDIUM,
    DetectorContext,
    Finding,
    format_bytes,
    make_finding,
    severity_rank,
)

NAME = "embeddings"
BIG_TABLE_BYTES = 16 * 1024 * 1024
MIN_SPARE_ROWS = 64
SEVERE_HIT_FRACTION = 0.15


def energy_dims(matrix: np.ndarray, levels: tuple[float, ...] = (0.95, 0.99)) -> dict[str, Any]:
    """Singular-value energy of a matrix: dims needed for each energy level.

    Args:
        matrix: rows x dim.
        levels: energy fractions.

    Returns:
        ``{"dims_95": k, "dims_99": k, "singular_values": [...]}`` (keys follow ``levels``).
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        return {f"dims_{round(level * 100)}": None for level in levels} | {"singular_values": []}
    gram = a.T @ a  # dim x dim: its eigenvalues are the squared singular values
    eig = np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)
    total = float(eig.sum())
    result: dict[str, Any] = {"singular_values": np.sqrt(eig).round(6).tolist()}
    cumulative = np.cumsum(eig) / total if total > 0 else np.ones_like(eig)
    for level in levels:
        result[f"dims_{round(level * 100)}"] = int(np.searchsorted(cumulative, level - 1e-12) + 1)
    return result


def rule_of_thumb_dim(cardinality: int) -> int:
    """The common heuristic embedding size ``round(6 * cardinality ** 0.25)`` (at least 1)."""
    return max(1, int(round(6.0 * max(cardinality, 1) ** 0.25)))


def _cardinality(
    ctx: DetectorContext, table: EmbeddingTable, rows_hit: int | None
) -> tuple[int, str]:
    stats = ctx.feature_stats
    distinct = []
    if ctx.log_stats is not None:
        logged = ctx.log_stats.doc["inputs"]
        distinct = [int(logged[f]["distinct"]) for f in table.features if f in logged]
    elif stats is not None and not ctx.feeds_synthetic:
        distinct = [stats.columns[f].distinct for f in table.features if f in stats.columns]
    if distinct or rows_hit is not None:
        best = max(distinct + ([rows_hit] if rows_hit is not None else []))
        return int(best), "data"
    return table.rows, "table rows"


def describe_table(ctx: DetectorContext, table: EmbeddingTable) -> dict[str, Any]:
    """Measurements of one table (the evidence of its finding).

    Args:
        ctx: the detector context (feeds for rows hit, stats for cardinality).
        table: the table.

    Returns:
        A dict with rows, dim, bytes, rows_hit, hit_fraction, cardinality, rule_of_thumb_dim,
        dims_95, dims_99, singular_values, and the gathers' time share.
    """
    feeds = ctx.real_feeds
    log_hits = (
        ctx.log_stats.row_hits(table.node, table.rows, table.features)
        if ctx.log_stats is not None
        else None
    )
    if log_hits is not None:
        hit = np.flatnonzero(log_hits)
        source = ctx.log_stats.source()
    else:
        ids = gather_ids(ctx.graph, feeds, ctx.cache) if feeds is not None else {}
        hit = table_rows_hit(table, ids) if ids else None
        n = None if feeds is None or not feeds else len(next(iter(feeds.values())))
        source = None if hit is None else f"sample ({n:,} rows)"
    rows_hit = None if hit is None else int(len(hit))
    values = const_value(ctx.graph, table.node)
    values = values.reshape(values.shape[0], -1)
    basis = values[hit] if hit is not None and len(hit) >= 2 else values
    energy = (
        energy_dims(basis)
        if table.dim >= 2
        else {"dims_95": 1, "dims_99": 1, "singular_values": []}
    )
    cardinality, cardinality_source = _cardinality(ctx, table, rows_hit)
    bytes_per_row = table.bytes / table.rows if table.rows else 0.0
    return {
        "table": table.node,
        "variable": table.variable,
        "rows": table.rows,
        "dim": table.dim,
        "dtype": table.dtype,
        "bytes": table.bytes,
        "gathers": list(table.gather_nodes),
        "id_kinds": sorted({u.id_kind for u in table.uses}),
        "num_buckets": sorted({u.num_buckets for u in table.uses if u.num_buckets}),
        "rows_hit": rows_hit,
        "rows_hit_source": source,
        "hit_fraction": None if rows_hit is None or not table.rows else rows_hit / table.rows,
        "unused_bytes": None if rows_hit is None else int((table.rows - rows_hit) * bytes_per_row),
        "cardinality": cardinality,
        "cardinality_source": cardinality_source,
        "rule_of_thumb_dim": rule_of_thumb_dim(cardinality),
        "rank_basis": "rows hit" if basis is not values else "all rows",
        "dims_95": energy["dims_95"],
        "dims_99": energy["dims_99"],
        "singular_values": energy["singular_values"][:64],
        "time_share": ctx.time_share(table.gather_nodes),
        "time_share_by_batch": ctx.time_shares(table.gather_nodes),
    }


def _issues(ev: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(issue code, severity, text) for one table's evidence."""
    issues = []
    rows, dim, card = ev["rows"], ev["dim"], ev["cardinality"]
    if ev["rows_hit"] is not None and rows >= 2 * card and rows - card >= MIN_SPARE_ROWS:
        frac = ev["rows_hit"] / rows
        severe = frac <= SEVERE_HIT_FRACTION or (ev["unused_bytes"] or 0) >= 1024 * 1024
        issues.append(
            (
                "oversized",
                HIGH if severe else MEDIUM,
                f"only {ev['rows_hit']:,} of {rows:,} rows ({100 * frac:.1f}%) are hit by the "
                f"{ev['rows_hit_source'] or 'sample data'}",
            )
        )
    if dim >= 8 and dim >= 2 * ev["rule_of_thumb_dim"]:
        issues.append(
            (
                "dim_large",
                LOW,
                f"dim {dim} vs the rule of thumb {ev['rule_of_thumb_dim']} for {card:,} ids",
            )
        )
    if dim >= 8 and ev["dims_99"] is not None and ev["dims_99"] <= dim // 2:
        issues.append(
            (
                "low_rank",
                MEDIUM,
                f"99% of its energy lies in {ev['dims_99']} of {dim} dims (95%: {ev['dims_95']})",
            )
        )
    if ev["bytes"] >= BIG_TABLE_BYTES:
        issues.append(("big", MEDIUM, f"{format_bytes(ev['bytes'])} of weights"))
    return issues


def detect(ctx: DetectorContext) -> list[Finding]:
    """One ``large_embedding`` finding per table with a size issue."""
    findings = []
    for table in find_embedding_tables(ctx.graph):
        ev = describe_table(ctx, table)
        issues = _issues(ev)
        if not issues:
            continue
        ev["issues"] = [code for code, _, _ in issues]
        severity = min((sev for _, sev, _ in issues), key=severity_rank, default=LOW)
        feats = ", ".join(f"`{f}`" for f in table.features) or "no input"
        message = (
            f"embedding table `{table.variable}` ({table.rows:,} x {table.dim} "
            f"{table.dtype}, {format_bytes(table.bytes)}) read by {feats}: "
            + "; ".join(text for _, _, text in issues)
        )
        findings.append(
            make_finding(
                LARGE_EMBEDDING,
                table.features,
                (table.node, *table.gather_nodes),
                severity,
                message,
                ev,
                detector=NAME,
            )
        )
    return findings
