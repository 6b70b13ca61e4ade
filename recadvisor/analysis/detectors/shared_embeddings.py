"""Shared-embedding candidates: two tables indexed by one id space.

Two different embedding tables, read by different features, are a candidate when

* their ids come from the same id space in the graph: hashes with the same bucket count, or
  vocabulary lookups into tables with the same (or mostly the same) keys, or the same integer
  input range; and
* the features' values overlap in the sample data (containment ``|A & B| / min(|A|, |B|)`` >=
  0.3; e.g. ``hist_item_id`` holds the same item ids as ``item_id``), or, without data, their
  names match once sequence prefixes/suffixes are stripped (``hist_item_id`` ~ ``item_id``).
  Integer ids of unrelated inputs overlap by construction (both count from 0), so for integer
  inputs the names must match too.

Features with strongly overlapping values (>= 0.5) but different id spaces are reported too, at
low severity: sharing them needs retraining, not a rewrite. Tables already shared (one ``Const``
read by both features, as in DIN's item table) are not candidates.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np

from recadvisor.analysis.detectors.graph_patterns import EmbeddingTable, find_embedding_tables
from recadvisor.analysis.findings import (
    LOW,
    MEDIUM,
    SHARED_EMBEDDING_CANDIDATE,
    DetectorContext,
    Finding,
    format_bytes,
    make_finding,
)

NAME = "shared_embeddings"
MIN_CONTAINMENT = 0.3
MIN_CONTAINMENT_OTHER_SPACE = 0.5
MIN_VOCAB_JACCARD = 0.5
_SEQUENCE_AFFIXES = re.compile(
    r"^(hist|his|history|seq|click|clicked|behavior|behaviour|recent|last|target|cand|"
    r"candidate)_+|_+(hist|history|seq|sequence|list|ids?_list)$"
)


def canonical_name(feature: str) -> str:
    """``hist_item_id`` -> ``item_id``: a feature name without sequence prefixes/suffixes."""
    name = feature.lower()
    for _ in range(3):
        stripped = _SEQUENCE_AFFIXES.sub("", name)
        if stripped == name:
            break
        name = stripped
    return name


def _id_spaces(ctx: DetectorContext, table: EmbeddingTable) -> set[tuple[Any, ...]]:
    spaces: set[tuple[Any, ...]] = set()
    for use in table.uses:
        if use.id_kind == "hash":
            spaces.add(("hash", use.num_buckets))
        elif use.id_kind == "vocabulary":
            spaces.add(("vocabulary", use.id_source))
        elif use.id_kind == "input":
            spaces.add(("input", table.rows))
    return spaces


def _vocab_jaccard(ctx: DetectorContext, lookup_a: str, lookup_b: str) -> float:
    graph = ctx.graph
    ta = graph.tables.get(graph.table_of_node(lookup_a) or "")
    tb = graph.tables.get(graph.table_of_node(lookup_b) or "")
    if ta is None or tb is None:
        return 0.0
    if ta.content_digest() == tb.content_digest():
        return 1.0
    ka, kb = set(ta.keys.tolist()), set(tb.keys.tolist())
    union = len(ka | kb)
    return len(ka & kb) / union if union else 0.0


def same_id_space(ctx: DetectorContext, a: EmbeddingTable, b: EmbeddingTable) -> str | None:
    """Why two tables share an id space (``"hash buckets 1000"``...), or ``None``."""
    sa, sb = _id_spaces(ctx, a), _id_spaces(ctx, b)
    for space in sorted(sa & sb, key=str):
        if space[0] == "hash":
            return f"both hashed into {space[1]} buckets"
        if space[0] == "input":
            return f"both indexed by integer inputs into {space[1]} rows"
    for x, y in itertools.product(sa, sb):
        if x[0] == y[0] == "vocabulary" and _vocab_jaccard(ctx, x[1], y[1]) >= MIN_VOCAB_JACCARD:
            return "vocabulary lookups with the same keys"
    return None


def _value_set(ctx: DetectorContext, feature: str) -> set[Any] | None:
    key = f"value_set:{feature}"
    if key not in ctx.cache:
        feeds = ctx.real_feeds
        values = None
        if feeds is not None and feature in feeds:
            flat = np.asarray(feeds[feature]).reshape(-1)
            values = {
                v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in flat.tolist()
            } - {""}
        ctx.cache[key] = values
    return ctx.cache[key]


def _is_string(ctx: DetectorContext, feature: str) -> bool:
    spec = ctx.graph.signature.inputs.get(feature)
    return spec is not None and spec.dtype == "string"


def value_containment(ctx: DetectorContext, a: str, b: str) -> float | None:
    """Containment of the two features' value sets (``None`` without real data)."""
    if ctx.feeds_synthetic:
        return None
    stats = ctx.feature_stats
    if stats is not None and a in stats.columns and b in stats.columns:
        ov = stats.overlap(a, b)
        return 0.0 if ov is None else ov.containment
    va, vb = _value_set(ctx, a), _value_set(ctx, b)
    if va is None or vb is None:
        return None
    smaller = min(len(va), len(vb))
    return len(va & vb) / smaller if smaller else 0.0


def detect(ctx: DetectorContext) -> list[Finding]:
    """One ``shared_embedding_candidate`` finding per pair of tables over one id space."""
    tables = [t for t in find_embedding_tables(ctx.graph) if t.features]
    findings = []
    for a, b in itertools.combinations(tables, 2):
        fa, fb = set(a.features), set(b.features)
        if fa & fb:
            continue  # one feature read twice (e.g. wide & deep): duplicates' business
        space = same_id_space(ctx, a, b)
        pairs = [(x, y) for x in sorted(fa) for y in sorted(fb)]
        overlaps = [(value_containment(ctx, x, y), x, y) for x, y in pairs]
        names_match = any(canonical_name(x) == canonical_name(y) for x, y in pairs)
        # integer ids of unrelated inputs overlap by construction (0..N): only string values,
        # or inputs whose names match, make a value overlap meaningful
        known = [
            o
            for o in overlaps
            if o[0] is not None and (names_match or _is_string(ctx, o[1]) and _is_string(ctx, o[2]))
        ]
        best = max(known, default=None, key=lambda o: o[0])
        if space is not None and space.startswith("both indexed by integer") and not names_match:
            continue
        evidence: dict[str, Any] = {
            "tables": [a.node, b.node],
            "variables": [a.variable, b.variable],
            "shapes": [[a.rows, a.dim], [b.rows, b.dim]],
            "same_id_space": space,
            "value_containment": None if best is None else best[0],
            "names_match": names_match,
            "same_shape": (a.rows, a.dim) == (b.rows, b.dim),
            "table_features": [list(a.features), list(b.features)],
            "bytes_saved": min(a.bytes, b.bytes),
        }
        if space is not None:
            if best is not None:
                if best[0] < MIN_CONTAINMENT:
                    continue
                severity = MEDIUM if best[0] >= 0.5 else LOW
                why = f"{100 * best[0]:.0f}% of the smaller id set appears in both"
            elif names_match:
                severity = LOW
                why = "their names match (no sample data to compare values)"
            else:
                continue
            evidence["rewrite"] = evidence["same_shape"]
            if not evidence["same_shape"]:
                why += f" (shapes differ: {a.rows}x{a.dim} vs {b.rows}x{b.dim})"
        elif best is not None and best[0] >= MIN_CONTAINMENT_OTHER_SPACE and a.dim == b.dim:
            severity = LOW
            why = (
                f"{100 * best[0]:.0f}% of the smaller id set appears in both, but the ids "
                "are encoded differently (sharing needs retraining)"
            )
            evidence["rewrite"] = False
        else:
            continue
        feats = sorted(fa | fb)
        message = (
            f"tables `{a.variable}` ({a.rows:,} x {a.dim}) and `{b.variable}` ({b.rows:,} x "
            f"{b.dim}) for {', '.join(f'`{f}`' for f in feats)} look like one id space: "
            f"{space or 'different encodings'}; {why}; sharing saves "
            f"{format_bytes(min(a.bytes, b.bytes))}"
        )
        findings.append(
            make_finding(
                SHARED_EMBEDDING_CANDIDATE,
                feats,
                (a.node, b.node, *a.gather_nodes, *b.gather_nodes),
                severity,
                message,
                evidence,
                detector=NAME,
            )
        )
    return findings
