"""Duplicated features and duplicated work.

Reports, as ``duplicate_feature`` findings (``evidence["reason"]`` says which):

* ``hashed_twice``: one signature input hashed by two or more hash nodes (e.g. the deep and the
  linear part of a wide & deep model each hash ``city``); with the same op and bucket count the
  hashes compute identical ids and ``merge_duplicates`` keeps one (exact);
* ``looked_up_twice``: one input looked up in two tables with identical contents;

  (an input "hashed" or "looked up" is the one whose values reach the hash or lookup: directly,
  or as the only input the keys derive from, as when a feature column turns ``[N, 1]`` strings
  into a SparseTensor and looks up its values)
* ``identical_tables``: lookup tables with identical contents, or embedding constants with
  identical values, held twice;
* ``identical_columns`` / ``one_to_one_columns`` (data): two inputs carrying the same information
  (same values row by row, or a bijection between their values), from the feature statistics.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

from recadvisor.analysis.detectors.graph_patterns import (
    const_value,
    find_embedding_tables,
    find_hash_ops,
    find_table_lookups,
)
from recadvisor.analysis.findings import (
    DUPLICATE_FEATURE,
    LOW,
    MEDIUM,
    DetectorContext,
    Finding,
    format_bytes,
    make_finding,
    share_text,
)
from recadvisor.model.graph import ModelGraph, node_name

NAME = "duplicates"


def keyed_feature(graph: ModelGraph, direct: str | None, keys_tensor: str) -> str | None:
    """The signature input whose values a hash or lookup reads.

    Args:
        graph: the frozen graph.
        direct: the input read as is (``HashOp.feature`` / ``TableLookup.feature``), if any.
        keys_tensor: the tensor hashed or looked up.

    Returns:
        ``direct`` when set, else the only signature input ``keys_tensor`` derives from (e.g. the
        values of a feature column's SparseTensor), else ``None``.
    """
    if direct is not None:
        return direct
    features = graph.features_of_node.get(node_name(keys_tensor), frozenset())
    return next(iter(features)) if len(features) == 1 else None


def _hashed_twice(ctx: DetectorContext) -> list[Finding]:
    graph = ctx.graph
    live = graph.reachable_from_outputs(control=False)
    by_feature = defaultdict(list)
    for h in find_hash_ops(graph):
        feature = keyed_feature(graph, h.feature, h.hashed_tensor)
        if feature is not None and h.node in live:
            by_feature[feature].append(h)
    findings = []
    bs = ctx.reference_batch
    for feature, hashes in sorted(by_feature.items()):
        if len(hashes) < 2:
            continue
        groups = defaultdict(list)
        for h in hashes:
            groups[(h.op, h.num_buckets, h.as_string is not None)].append(h.node)
        mergeable = {key: nodes for key, nodes in groups.items() if len(nodes) > 1}
        nodes = [h.node for h in hashes] + [h.as_string for h in hashes if h.as_string]
        extra = [n for ns in mergeable.values() for n in sorted(ns)[1:]]
        extra_share = ctx.time_share(extra) if extra else None
        buckets = sorted({h.num_buckets for h in hashes if h.num_buckets is not None})
        if mergeable:
            text = (
                f"`{feature}` is hashed {len(hashes)} times ({hashes[0].op}, "
                f"{'/'.join(map(str, buckets))} buckets): {len(extra)} hash(es) compute "
                f"ids already computed ({share_text(extra_share, bs)})"
            )
            severity = MEDIUM
        else:
            text = (
                f"`{feature}` is hashed {len(hashes)} times with different bucket counts "
                f"({'/'.join(map(str, buckets))}): duplicated string work that a single "
                "upstream id cannot replace"
            )
            severity = LOW
        findings.append(
            make_finding(
                DUPLICATE_FEATURE,
                [feature],
                nodes,
                severity,
                text,
                evidence={
                    "reason": "hashed_twice",
                    "hash_nodes": [h.node for h in hashes],
                    "num_buckets": [h.num_buckets for h in hashes],
                    "mergeable": bool(mergeable),
                    "redundant_nodes": extra,
                    "time_share": extra_share,
                    "time_share_by_batch": ctx.time_shares(extra) if extra else {},
                },
                detector=NAME,
            )
        )
    return findings


def _lookup_duplicates(ctx: DetectorContext) -> list[Finding]:
    graph = ctx.graph
    findings = []
    lookups = [t for t in find_table_lookups(graph) if t.digest is not None]
    feature_of = {t.node: keyed_feature(graph, t.feature, t.keys_tensor) for t in lookups}
    by_feature_digest = defaultdict(list)
    for t in lookups:
        if feature_of[t.node] is not None:
            by_feature_digest[(feature_of[t.node], t.digest)].append(t)
    for (feature, _digest), found in sorted(by_feature_digest.items()):
        if len(found) < 2:
            continue
        findings.append(
            make_finding(
                DUPLICATE_FEATURE,
                [feature],
                [t.node for t in found],
                MEDIUM,
                f"`{feature}` is looked up {len(found)} times in tables with identical contents "
                f"({found[0].size:,} entries)",
                evidence={
                    "reason": "looked_up_twice",
                    "lookup_nodes": [t.node for t in found],
                    "tables": sorted({t.table for t in found if t.table}),
                    "mergeable": True,
                },
                detector=NAME,
            )
        )
    by_digest = defaultdict(set)
    features_of = defaultdict(set)
    for t in lookups:
        if t.table:
            by_digest[t.digest].add(t.table)
            if feature_of[t.node]:
                features_of[t.digest].add(feature_of[t.node])
    for digest, tables in sorted(by_digest.items()):
        if len(tables) < 2:
            continue
        size = graph.tables[next(iter(tables))].size
        findings.append(
            make_finding(
                DUPLICATE_FEATURE,
                features_of[digest],
                tables,
                MEDIUM,
                f"{len(tables)} lookup tables hold identical contents ({size:,} entries each)"
                + (
                    f", read by {', '.join(f'`{f}`' for f in sorted(features_of[digest]))}"
                    if features_of[digest]
                    else ""
                ),
                evidence={
                    "reason": "identical_tables",
                    "table_kind": "lookup",
                    "tables": sorted(tables),
                    "entries": size,
                    "mergeable": True,
                },
                detector=NAME,
            )
        )
    return findings


def _embedding_duplicates(ctx: DetectorContext) -> list[Finding]:
    by_digest = defaultdict(list)
    for table in find_embedding_tables(ctx.graph):
        value = np.ascontiguousarray(const_value(ctx.graph, table.node))
        digest = hashlib.sha256(
            f"{value.dtype}|{value.shape}|".encode() + value.tobytes()
        ).hexdigest()
        by_digest[digest].append(table)
    findings = []
    for tables in by_digest.values():
        if len(tables) < 2:
            continue
        feats = sorted({f for t in tables for f in t.features})
        findings.append(
            make_finding(
                DUPLICATE_FEATURE,
                feats,
                [t.node for t in tables],
                MEDIUM,
                f"{len(tables)} embedding tables hold identical values ({tables[0].rows:,} x "
                f"{tables[0].dim}, {format_bytes(tables[0].bytes)} each)",
                evidence={
                    "reason": "identical_tables",
                    "table_kind": "embedding",
                    "tables": [t.node for t in tables],
                    "bytes_saved": tables[0].bytes * (len(tables) - 1),
                    "mergeable": True,
                },
                detector=NAME,
            )
        )
    return findings


def _data_duplicates(ctx: DetectorContext) -> list[Finding]:
    stats = ctx.feature_stats
    if stats is None or ctx.feeds_synthetic:
        return []
    inputs = ctx.graph.signature.inputs
    findings = []
    for rel in list(stats.identical) + list(stats.one_to_one):
        if rel.a not in inputs or rel.b not in inputs:
            continue
        if rel.relation == "identical":
            text = (
                f"inputs `{rel.a}` and `{rel.b}` carry identical values in all "
                f"{stats.rows:,} sample rows"
            )
        else:
            text = (
                f"inputs `{rel.a}` and `{rel.b}` map one-to-one in the sample data "
                f"({rel.distinct:,} distinct values): one of them is redundant"
            )
        findings.append(
            make_finding(
                DUPLICATE_FEATURE,
                [rel.a, rel.b],
                [],
                LOW,
                text,
                evidence={
                    "reason": f"{rel.relation}_columns",
                    "distinct": rel.distinct,
                    "rows": stats.rows,
                    "mergeable": False,
                },
                detector=NAME,
            )
        )
    return findings


def detect(ctx: DetectorContext) -> list[Finding]:
    """``duplicate_feature`` findings from the graph (hashes, tables) and the data."""
    return (
        _hashed_twice(ctx)
        + _lookup_duplicates(ctx)
        + _embedding_duplicates(ctx)
        + _data_duplicates(ctx)
    )
