"""Numeric features served as strings, with data-driven ``Bucketize`` boundaries.

Graph side: an ``AsString`` node formatting a numeric signature input (through value-preserving
ops), usually followed by ``StringToHashBucketFast`` and a gather into an embedding table: the
classic "age hashed as a string" pattern. Data side: a string input whose every value parses as a
number and that has few distinct values (<= 256).

Boundaries come from the sample values: the exact distinct values when there are at most 256 of
them (one ``Bucketize`` bucket per observed value, so the rewrite reproduces the hashed embedding
row of every observed value), else scikit-learn ``KBinsDiscretizer`` quantile edges (an
approximation). The evidence states the range in which a ``Bucketize`` rewrite is exact:

* integer values forming a contiguous range: every integer in ``[min, max]``;
* otherwise: exactly the observed values; an unobserved value inside the range falls in the
  bucket of the observed value just below it;
* outside ``[min, max]``: clamped to the first/last bucket or sent to a fallback row (a choice of
  the rewrite, ``out_of_range``).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from recadvisor.analysis.detectors.graph_patterns import (
    data_inputs,
    find_embedding_tables,
    find_hash_ops,
    find_table_lookups,
    forward_through,
    gather_ids,
    source_input,
)
from recadvisor.analysis.findings import (
    HIGH,
    LOW,
    MEDIUM,
    NUMERIC_AS_STRING,
    DetectorContext,
    Finding,
    make_finding,
    share_text,
)
from recadvisor.model.graph import ModelGraph

log = logging.getLogger(__name__)

NAME = "numeric_as_string"
MAX_EXACT_VALUES = 256
QUANTILE_BINS = 64
NUMERIC_DTYPES = frozenset(
    {
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "bool",
    }
)


def value_boundaries(
    values: np.ndarray, max_exact: int = MAX_EXACT_VALUES, n_bins: int = QUANTILE_BINS
) -> dict[str, Any]:
    """Bucketize boundaries for numeric sample values and the range where they are exact.

    Args:
        values: the observed values (any shape; NaN/inf ignored).
        max_exact: up to this many distinct values, every value gets its own bucket.
        n_bins: quantile bins (``KBinsDiscretizer``) beyond that.

    Returns:
        A dict with ``method`` (``distinct`` | ``quantile``), ``boundaries`` (sorted, for
        ``tf.raw_ops.Bucketize``/``Discretization``), ``values`` (the distinct values when
        ``distinct``), ``n_distinct``, ``min``, ``max``, ``integral``, ``contiguous`` and
        ``exact_for`` (a sentence).
    """
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return {
            "method": "none",
            "boundaries": [],
            "values": [],
            "n_distinct": 0,
            "min": None,
            "max": None,
            "integral": False,
            "contiguous": False,
            "exact_for": "nothing (no finite values in the sample)",
        }
    distinct = np.unique(flat)
    lo, hi = float(distinct[0]), float(distinct[-1])
    integral = bool(np.all(np.floor(distinct) == distinct))
    contiguous = integral and int(hi - lo) + 1 == len(distinct)

    def num(x: float) -> int | float:
        return int(x) if integral else float(x)

    if len(distinct) <= max_exact:
        if contiguous:
            exact_for = f"every integer in [{num(lo)}, {num(hi)}]"
        else:
            exact_for = (
                f"the {len(distinct)} observed values in [{num(lo)}, {num(hi)}]; other "
                "values inside the range share the bucket of the value just below"
            )
        return {
            "method": "distinct",
            "boundaries": [num(v) for v in distinct[1:]],
            "values": [num(v) for v in distinct],
            "n_distinct": int(len(distinct)),
            "min": num(lo),
            "max": num(hi),
            "integral": integral,
            "contiguous": contiguous,
            "exact_for": exact_for,
        }
    from sklearn.preprocessing import KBinsDiscretizer

    bins = min(n_bins, len(distinct))
    disc = KBinsDiscretizer(n_bins=bins, encode="ordinal", strategy="quantile", subsample=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "bins whose width are too small" on skewed data
        disc.fit(flat.reshape(-1, 1))
    edges = np.unique(np.asarray(disc.bin_edges_[0], dtype=np.float64)[1:-1])
    return {
        "method": "quantile",
        "boundaries": [float(e) for e in edges],
        "values": [],
        "n_distinct": int(len(distinct)),
        "min": num(lo),
        "max": num(hi),
        "integral": integral,
        "contiguous": contiguous,
        "exact_for": (
            f"no value: {len(distinct)} distinct values are merged into "
            f"{len(edges) + 1} quantile buckets (lossy)"
        ),
    }


def _downstream_of_as_string(graph: ModelGraph, as_string: str) -> dict[str, Any]:
    """Hash/lookup nodes after an AsString and the embedding tables their ids index."""
    consumers = forward_through(graph, as_string)
    hashes = {h.node: h for h in find_hash_ops(graph)}
    lookups = {t.node: t for t in find_table_lookups(graph)}
    hash_nodes = [c for c in consumers if c in hashes]
    lookup_nodes = [c for c in consumers if c in lookups]
    tables = []
    for table in find_embedding_tables(graph):
        for use in table.uses:
            if use.id_source in hash_nodes or use.id_source in lookup_nodes:
                tables.append((table, use))
    return {
        "hash_nodes": hash_nodes,
        "lookup_nodes": lookup_nodes,
        "num_buckets": sorted(
            {hashes[h].num_buckets for h in hash_nodes if hashes[h].num_buckets is not None}
        ),
        "vocabulary_sizes": sorted({lookups[t].size for t in lookup_nodes}),
        "tables": tables,
    }


def _graph_findings(ctx: DetectorContext) -> tuple[list[Finding], set[str]]:
    graph = ctx.graph
    live = graph.reachable_from_outputs(control=False)
    feeds = ctx.real_feeds
    ids = gather_ids(graph, feeds, ctx.cache) if feeds is not None else {}
    by_feature: dict[str, list[str]] = {}
    for node in graph.graph_def.node:
        if node.op != "AsString" or node.name not in live or not data_inputs(node):
            continue
        feature = source_input(graph, data_inputs(node)[0])
        if feature is None or graph.signature.inputs[feature].dtype not in NUMERIC_DTYPES:
            continue
        by_feature.setdefault(feature, []).append(node.name)
    findings = []
    bs = ctx.reference_batch
    for feature, as_strings in sorted(by_feature.items()):
        down = {
            "hash_nodes": [],
            "lookup_nodes": [],
            "num_buckets": [],
            "vocabulary_sizes": [],
            "tables": [],
        }
        for a in as_strings:
            part = _downstream_of_as_string(graph, a)
            for key in down:
                down[key] = list(down[key]) + list(part[key])
        nodes = as_strings + down["hash_nodes"] + down["lookup_nodes"]
        share = ctx.time_share(nodes)
        table_rows = max((t.rows for t, _ in down["tables"]), default=None)
        rows_used = None
        used = [ids[u.node] for _, u in down["tables"] if u.node in ids]
        if used:
            rows_used = int(len(np.unique(np.concatenate(used))))
        evidence: dict[str, Any] = {
            "source": "graph",
            "input_dtype": graph.signature.inputs[feature].dtype,
            "as_string_nodes": as_strings,
            "hash_nodes": down["hash_nodes"],
            "lookup_nodes": down["lookup_nodes"],
            "num_buckets": down["num_buckets"],
            "vocabulary_sizes": down["vocabulary_sizes"],
            "tables": sorted({t.node for t, _ in down["tables"]}),
            "table_rows": table_rows,
            "table_dim": max((t.dim for t, _ in down["tables"]), default=None),
            "rows_used": rows_used,
            "time_share": share,
            "time_share_by_batch": ctx.time_shares(nodes),
        }
        severity = MEDIUM
        detail = ""
        if feeds is not None and feature in feeds:
            bounds = value_boundaries(np.asarray(feeds[feature]))
            evidence.update(bounds)
            n = bounds["n_distinct"]
            if table_rows is not None and n and table_rows >= 2 * n:
                severity = HIGH
            detail = f"; the data has {n} distinct values in [{bounds['min']}, {bounds['max']}]" + (
                f" for a {table_rows}-row table" if table_rows else ""
            )
            if rows_used is not None:
                evidence["hash_collisions"] = max(0, n - rows_used)
        else:
            detail = "; no sample data, so no boundaries were computed"
        if share is not None and share >= 0.05:
            severity = HIGH
        hashed = (
            f"hashed into {', '.join(map(str, down['num_buckets']))} buckets"
            if down["num_buckets"]
            else "looked up as strings"
        )
        message = (
            f"numeric input `{feature}` ({evidence['input_dtype']}) is formatted with "
            f"AsString and {hashed} ({share_text(share, bs)}){detail}"
        )
        findings.append(
            make_finding(
                NUMERIC_AS_STRING, [feature], nodes, severity, message, evidence, detector=NAME
            )
        )
    return findings, set(by_feature)


def _data_findings(ctx: DetectorContext, already: set[str]) -> list[Finding]:
    stats = ctx.feature_stats
    if stats is None or ctx.feeds_synthetic:
        return []
    findings = []
    for name, col in sorted(stats.columns.items()):
        spec = ctx.graph.signature.inputs.get(name)
        if name in already or spec is None or spec.dtype != "string" or not col.all_numeric:
            continue
        if col.distinct > MAX_EXACT_VALUES or col.distinct < 2:
            continue  # many distinct numbers: ids written as digits, not a numeric feature
        evidence: dict[str, Any] = {
            "source": "data",
            "input_dtype": "string",
            "n_distinct": col.distinct,
            "min": col.numeric_min,
            "max": col.numeric_max,
        }
        if ctx.real_feeds is not None and name in ctx.real_feeds:
            texts = [
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in np.asarray(ctx.real_feeds[name]).reshape(-1).tolist()
            ]
            evidence.update(value_boundaries(np.array([float(t) for t in texts if t != ""])))
        else:
            evidence["top_values"] = [float(v) for v, _ in col.top_values]
        message = (
            f"string input `{name}` holds only numbers in the data ({col.distinct} "
            f"distinct values in [{col.numeric_min:g}, {col.numeric_max:g}]): a numeric "
            "input with Bucketize would avoid string handling"
        )
        findings.append(
            make_finding(NUMERIC_AS_STRING, [name], [], LOW, message, evidence, detector=NAME)
        )
    return findings


def detect(ctx: DetectorContext) -> list[Finding]:
    """``numeric_as_string`` findings from the graph (AsString on numbers) and from the data."""
    findings, seen = _graph_findings(ctx)
    return findings + _data_findings(ctx, seen)
