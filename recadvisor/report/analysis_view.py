"""The analysis report's view: an ``Analysis.to_dict()`` turned into what
``templates/analysis.html.j2`` shows.

Every section is optional. The profile is ``Profile.to_dict()`` (per batch size: latency and
per-node op times); the attribution (``Attribution.to_dict()``) may sit in
``analysis["attribution"]``, in ``profile["attribution"]`` or be merged into ``profile``, as one
dict, a list, or a dict by batch size. Embedding facts are merged from the inventory, the
``large_embedding`` findings' evidence and an optional ``analysis["embeddings"]`` list.
Suggestions are read by meaning (title, exactness, contract change, expected savings, plan
entry, training-side code) under several plausible key names; other keys are shown as-is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from recadvisor.report import charts
from recadvisor.report.charts import ChartIds
from recadvisor.report.formatting import (
    MAX_LIST_ITEMS,
    NOT_MEASURED,
    SEVERITY_ORDER,
    as_dict,
    as_float,
    as_int,
    as_list,
    by_batch,
    fields,
    first_of,
    fmt_bytes,
    fmt_ms,
    fmt_num,
    fmt_pct,
    fmt_shape,
    fmt_us,
    format_value,
    key_label,
    severity_rank,
    truncate,
)

MAX_OP_ROWS = 400
TOP_WINS = 5


def _stage_of(op_type: str) -> str:
    from recadvisor.analysis.stages import stage_of

    return stage_of(op_type)


# --------------------------------------------------------------------------- analysis: profile
SHARE_KEYS = ("per_feature", "per_op_type", "per_stage")
OTHER_OPS = "(smaller ops)"
NOT_LISTED = "(not listed)"


def _batch_items(value: Any) -> list[tuple[int | None, dict[str, Any]]]:
    """``[{batch_size: 1, ...}]`` or ``{"1": {...}}`` -> ``[(1, {...})]``."""
    if isinstance(value, Mapping):
        return [(as_int(k), as_dict(v)) for k, v in value.items() if isinstance(v, Mapping)]
    return [(None, as_dict(v)) for v in as_list(value) if isinstance(v, Mapping)]


def _op_entry(data: Mapping[str, Any]) -> dict[str, Any] | None:
    if not data.get("node"):
        return None
    return {
        "node": str(data["node"]),
        "op": str(data.get("op") or "?"),
        "runtime_ops": [str(r) for r in as_list(data.get("runtime_ops"))],
        "self_us": as_float(data.get("self_us")) or 0.0,
        "share": as_float(data.get("share")),
        "fused_nodes": [str(n) for n in as_list(data.get("fused_nodes"))],
        "stage": data.get("stage"),
    }


def profile_batches(profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The profile's batches, normalized and sorted by batch size.

    Accepts ``Profile.to_dict()`` (``batches`` a list, ``ops`` per batch) and the
    ``analysis.json`` form (``batches`` keyed by batch size, ``top_ops`` per batch, latency
    possibly in ``profile["latency"][batch]``).

    Returns:
        ``{"batch_size", "latency", "ops", "ops_listed_share", "mapped_us", "unmapped_us",
        "mapped_fraction", "unmapped_ops"}`` per batch; an op is ``{"node", "op",
        "runtime_ops", "self_us", "share", "fused_nodes", "stage"}``; every op's ``share`` is
        its fraction of the mapped op time (computed when the profile does not give it).
    """
    latency_by_batch = by_batch(profile.get("latency"))
    result = []
    for key, b in _batch_items(profile.get("batches")):
        latency = as_dict(b.get("latency")) or as_dict(latency_by_batch.get(key))
        bs = key or as_int(b.get("batch_size")) or as_int(latency.get("batch_size"))
        if bs is None:
            continue
        ops = [
            o
            for o in (_op_entry(as_dict(x)) for x in as_list(first_of(b, "ops", "top_ops")))
            if o is not None
        ]
        mapped_us = as_float(b.get("mapped_us"))
        total = mapped_us if mapped_us else sum(o["self_us"] for o in ops)
        for o in ops:
            if o["share"] is None and total:
                o["share"] = o["self_us"] / total
        result.append(
            {
                "batch_size": bs,
                "latency": {
                    k: as_float(latency.get(k)) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")
                }
                | {"calls": as_int(latency.get("calls"))},
                "ops": ops,
                "ops_listed_share": sum(o["share"] or 0.0 for o in ops),
                "mapped_us": mapped_us,
                "unmapped_us": as_float(b.get("unmapped_us")),
                "mapped_fraction": as_float(b.get("mapped_fraction")),
                "unmapped_ops": as_dict(b.get("unmapped_ops")),
            }
        )
    return sorted(result, key=lambda b: b["batch_size"])


def _is_share_map(value: Any) -> bool:
    """``{"user_id": 0.3, ...}`` (shares), as opposed to ``{"256": {...}}`` (by batch)."""
    d = as_dict(value)
    return bool(d) and all(isinstance(v, (int, float)) or v is None for v in d.values())


def attributions(
    analysis: Mapping[str, Any], profile: Mapping[str, Any], default_batch: int | None
) -> dict[int, dict[str, Any]]:
    """The cost attribution at each batch size, from wherever the analysis put it.

    Sources, first found wins per batch size: ``analysis["attribution(s)"]`` and
    ``profile["attribution(s)"]`` (one ``Attribution.to_dict()``, a list, or a dict by batch
    size), the per-batch entries of ``profile["batches"]`` when they carry ``per_feature``/
    ``per_stage``/``per_op_type`` shares, ``profile["per_feature"][batch]`` and its siblings,
    and ``profile`` itself when the shares were merged into it.
    """
    found: dict[int, dict[str, Any]] = {}

    def add(candidate: Any, batch_hint: int | None) -> None:
        if isinstance(candidate, (list, tuple)):
            for item in candidate:
                add(item, None)
            return
        data = as_dict(candidate)
        if not data:
            return
        if any(_is_share_map(data.get(k)) for k in SHARE_KEYS):
            bs = as_int(data.get("batch_size")) or batch_hint or default_batch
            if bs is not None:
                found.setdefault(bs, data)
            return
        for key, item in data.items():  # {"256": {...}}
            if as_int(key) is not None and isinstance(item, Mapping):
                add(item, as_int(key))

    for source in (
        analysis.get("attribution"),
        analysis.get("attributions"),
        profile.get("attribution"),
        profile.get("attributions"),
    ):
        add(source, None)
    for key, item in _batch_items(profile.get("batches")):
        add(item, key or as_int(item.get("batch_size")))
    per_batch: dict[int, dict[str, Any]] = {}
    for share_key in (*SHARE_KEYS, "per_feature_stage", "per_feature_op_type"):
        value = profile.get(share_key)
        if isinstance(value, Mapping) and not _is_share_map(value):
            for bs, shares in by_batch(value).items():
                per_batch.setdefault(bs, {"batch_size": bs})[share_key] = shares
    for bs, item in per_batch.items():
        add(item, bs)
    add({k: v for k, v in profile.items() if k != "batches"}, None)
    return found


def _node_stage(op: Mapping[str, Any], attribution: Mapping[str, Any]) -> str:
    stage = op.get("stage") or as_dict(attribution.get("per_node_stage")).get(op["node"])
    return str(stage) if stage else _stage_of(op["op"])


def _node_leaves(
    ops: Sequence[Mapping[str, Any]], attribution: Mapping[str, Any]
) -> list[tuple[tuple[str, ...], float]]:
    """Listed nodes charged as the attribution charged them: (feature, stage, op type)."""
    buckets = as_dict(attribution.get("per_node_bucket"))
    node_feats = as_dict(attribution.get("per_node_features"))
    leaves: list[tuple[tuple[str, ...], float]] = []
    for o in ops:
        share = o["share"] or 0.0
        stage = _node_stage(o, attribution)
        feats = [str(f) for f in as_list(node_feats.get(o["node"]))]
        bucket = buckets.get(o["node"])
        if bucket is None:
            bucket = "(no feature)" if not feats else feats[0] if len(feats) == 1 else "(shared)"
        if bucket == "(split)" and feats:
            leaves += [((f, stage, o["op"]), share / len(feats)) for f in feats]
        else:
            leaves.append(((str(bucket), stage, o["op"]), share))
    return leaves


def _remainder_leaves(
    leaves: Sequence[tuple[tuple[str, ...], float]], attribution: Mapping[str, Any]
) -> list[tuple[tuple[str, ...], float]]:
    """What the listed nodes leave of each feature's (and stage's) share: ``(smaller ops)``."""
    listed: dict[tuple[str, ...], float] = {}
    for path, share in leaves:
        for depth in (1, 2):
            listed[path[:depth]] = listed.get(path[:depth], 0.0) + share
    rest = []
    per_feature_stage = as_dict(attribution.get("per_feature_stage"))
    if per_feature_stage:
        for f, stages in per_feature_stage.items():
            for stage, share in as_dict(stages).items():
                left = (as_float(share) or 0.0) - listed.get((str(f), str(stage)), 0.0)
                if left > 1e-4:
                    rest.append(((str(f), str(stage), OTHER_OPS), left))
        return rest
    for f, share in as_dict(attribution.get("per_feature")).items():
        left = (as_float(share) or 0.0) - listed.get((str(f),), 0.0)
        if left > 1e-4:
            rest.append(((str(f), NOT_LISTED, OTHER_OPS), left))
    return rest


def sunburst_leaves(
    batch: Mapping[str, Any] | None, attribution: Mapping[str, Any]
) -> tuple[tuple[str, ...], list[tuple[tuple[str, ...], float]]]:
    """The cost-breakdown leaves at one batch size, as detailed as the data allows.

    1. Per-node timings plus the attribution's ``per_node_bucket``/``per_node_features``: each
       listed node's share goes to feature -> stage -> op type exactly as the attribution
       charged it (a ``(split)`` node divided evenly among its features); what the listed nodes
       leave of each feature's ``per_feature_stage`` share becomes ``(smaller ops)``.
    2. ``per_feature_op_type``: feature -> stage of the op type -> op type.
    3. ``per_feature_stage``: feature -> stage.  4. ``per_feature``: feature only.
    5. No attribution: the listed ops as stage -> op type.

    Returns:
        ``(levels, leaves)``: level names (e.g. ``("feature", "stage", "op type")``) and
        ``(path, share)`` pairs, shares as fractions of the mapped op time.
    """
    ops = list(batch["ops"]) if batch else []
    has_nodes = bool(
        as_dict(attribution.get("per_node_bucket")) or as_dict(attribution.get("per_node_features"))
    )
    if ops and has_nodes:
        leaves = _node_leaves(ops, attribution)
        return ("feature", "stage", "op type"), leaves + _remainder_leaves(leaves, attribution)
    per_feature_op = as_dict(attribution.get("per_feature_op_type"))
    if per_feature_op:
        return ("feature", "stage", "op type"), [
            ((str(f), _stage_of(str(op)), str(op)), float(s))
            for f, ops_ in per_feature_op.items()
            for op, s in as_dict(ops_).items()
            if as_float(s)
        ]
    per_feature_stage = as_dict(attribution.get("per_feature_stage"))
    if per_feature_stage:
        return ("feature", "stage"), [
            ((str(f), str(st)), float(s))
            for f, stages in per_feature_stage.items()
            for st, s in as_dict(stages).items()
            if as_float(s)
        ]
    per_feature = as_dict(attribution.get("per_feature"))
    if per_feature:
        return ("feature",), [((str(f),), float(s)) for f, s in per_feature.items() if as_float(s)]
    if ops:
        return ("stage", "op type"), [
            ((_node_stage(o, attribution), o["op"]), o["share"] or 0.0) for o in ops
        ]
    return (), []


def stage_shares(
    batch: Mapping[str, Any], attribution: Mapping[str, Any] | None
) -> dict[str, float]:
    """Share of op time per stage: the attribution's ``per_stage``, else from the op types."""
    per_stage = as_dict((attribution or {}).get("per_stage"))
    if per_stage:
        return {str(k): float(v) for k, v in per_stage.items() if as_float(v) is not None}
    shares: dict[str, float] = {}
    for o in batch["ops"]:
        stage = _node_stage(o, attribution or {})
        shares[stage] = shares.get(stage, 0.0) + (o["share"] or 0.0)
    return shares


def op_table(
    batches: Sequence[Mapping[str, Any]],
    attribution: Mapping[str, Any] | None,
    ref_batch: int | None,
) -> dict[str, Any]:
    """The sortable per-op table: one row per profiled node, columns per batch size.

    Returns:
        ``{"batch_sizes", "rows", "truncated"}``; a row has node, op, kernels, fused nodes,
        stage, charged_to, features, ``us`` and ``share`` by batch size.
    """
    attribution = attribution or {}
    buckets = as_dict(attribution.get("per_node_bucket"))
    node_feats = as_dict(attribution.get("per_node_features"))
    rows: dict[str, dict[str, Any]] = {}
    for b in batches:
        for o in b["ops"]:
            row = rows.setdefault(
                o["node"],
                {
                    "node": o["node"],
                    "op": o["op"],
                    "kernels": [],
                    "fused": [],
                    "stage": _node_stage(o, attribution),
                    "us": {},
                    "share": {},
                    "charged_to": buckets.get(o["node"]),
                    "features": [str(f) for f in as_list(node_feats.get(o["node"]))],
                },
            )
            row["kernels"] = sorted(set(row["kernels"]) | set(o["runtime_ops"]) - {o["op"]})
            row["fused"] = sorted(set(row["fused"]) | set(o["fused_nodes"]))
            bs = b["batch_size"]
            row["us"][bs] = row["us"].get(bs, 0.0) + o["self_us"]
            row["share"][bs] = (row["share"].get(bs) or 0.0) + (o["share"] or 0.0)
    key_batch = (
        ref_batch if ref_batch is not None else (batches[-1]["batch_size"] if batches else None)
    )
    ordered = sorted(rows.values(), key=lambda r: (-r["us"].get(key_batch, 0.0), r["node"]))
    listed = [
        (b["batch_size"], len(b["ops"]), b["ops_listed_share"])
        for b in batches
        if b["ops"] and b["ops_listed_share"] < 0.995
    ]
    return {
        "batch_sizes": [b["batch_size"] for b in batches],
        "rows": ordered[:MAX_OP_ROWS],
        "truncated": max(0, len(ordered) - MAX_OP_ROWS),
        "partial": listed,
    }


# --------------------------------------------------------------------------- analysis: parts
def signature_rows(specs: Any) -> list[dict[str, str]]:
    """``{key: {dtype, shape}}`` (or a list of ``{key, dtype, shape}``) -> table rows."""
    rows = []
    items = (
        as_dict(specs).items()
        if isinstance(specs, Mapping)
        else ((as_dict(s).get("key") or as_dict(s).get("name"), s) for s in as_list(specs))
    )
    for key, spec in items:
        s = as_dict(spec)
        rows.append(
            {
                "key": str(key),
                "dtype": str(s.get("dtype") or "?"),
                "shape": fmt_shape(s.get("shape")),
            }
        )
    return rows


def op_count_rows(stored: Mapping[str, Any], frozen: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Node counts by op type as stored and frozen, most frequent first."""
    ops = set(stored) | set(frozen)
    rows = [
        {
            "op": str(op),
            "stored": as_int(stored.get(op)) if stored else None,
            "frozen": as_int(frozen.get(op)) if frozen else None,
        }
        for op in ops
    ]
    for r in rows:
        if r["stored"] is not None and r["frozen"] is not None:
            r["delta"] = r["frozen"] - r["stored"]
        else:
            r["delta"] = None
    return sorted(rows, key=lambda r: (-max(r["stored"] or 0, r["frozen"] or 0), r["op"]))


def finding_view(data: Mapping[str, Any]) -> dict[str, Any]:
    """One finding for the template (message, badges, features, nodes, evidence rows)."""
    kind = str(data.get("kind") or "finding")
    nodes = [str(n) for n in as_list(data.get("nodes"))]
    evidence = as_dict(data.get("evidence"))
    return {
        "kind": kind,
        "kind_label": key_label(kind),
        "severity": str(data.get("severity") or "info").lower(),
        "message": str(first_of(data, "message", "summary", "title") or kind),
        "features": [str(f) for f in as_list(data.get("features"))],
        "nodes": nodes[:MAX_LIST_ITEMS],
        "nodes_more": max(0, len(nodes) - MAX_LIST_ITEMS),
        "evidence": fields(evidence),
        "detector": str(data.get("detector") or ""),
        "extra": fields(
            data,
            skip=(
                "kind",
                "nodes",
                "evidence",
                "severity",
                "message",
                "features",
                "detector",
                "summary",
                "title",
            ),
        ),
    }


_SUGGESTION_KEYS = {
    "title": ("title", "summary", "action", "name"),
    "message": ("message", "description", "detail", "details", "why", "rationale"),
    "exactness": ("exactness", "exact"),
    "contract": ("changes_contract", "contract_change", "contract"),
    "savings": (
        "expected_saving",
        "expected_savings",
        "savings",
        "expected",
        "estimate",
        "impact",
        "gain",
    ),
    "plan": ("plan_entry", "plan", "rewrite"),
    "training": ("training_side", "training_code", "training_change", "training", "code"),
    "targets": ("targets", "features", "inputs"),
}


def _exactness_class(text: str) -> str:
    low = text.lower()
    if "lossy" in low:
        return "bad"
    if "range" in low:
        return "warn"
    if "exact" in low:
        return "ok"
    return "neutral"


def _contract_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes: clients must send new inputs" if value else "no: drop-in replacement"
    if isinstance(value, Mapping):
        return format_value("contract", value)
    if isinstance(value, (list, tuple)):
        return ("yes: " + format_value("contract", value)) if value else "no: drop-in replacement"
    return str(value)


def _savings_text(value: Any) -> str | None:
    """``{"time_share": .12, "batch_size": 256, "bytes": 4096}`` ->
    ``12.0% of op time at batch 256; 4.0 KiB of weights``."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{fmt_pct(value)} of op time" if value <= 1 else fmt_num(value)
    if not isinstance(value, Mapping):
        return format_value("savings", value)
    text = first_of(value, "text", "summary")
    if text:
        return str(text)
    parts = []
    share = as_float(first_of(value, "time_share", "latency_share", "share"))
    if share is not None:
        bs = as_int(value.get("batch_size"))
        parts.append(f"{fmt_pct(share)} of op time" + (f" at batch {bs}" if bs else ""))
    saved = as_float(first_of(value, "bytes", "bytes_saved"))
    if saved:
        parts.append(f"{fmt_bytes(saved)} of weights")
    known = {
        "text",
        "summary",
        "time_share",
        "latency_share",
        "share",
        "batch_size",
        "bytes",
        "bytes_saved",
        "time_share_by_batch",
    }
    parts += [
        f"{key_label(k)}: {format_value(str(k), v)}"
        for k, v in value.items()
        if k not in known and v is not None
    ]
    return "; ".join(parts) if parts else None


def _plan_yaml(value: Any) -> str | None:
    if value is None or value == {}:
        return None
    if isinstance(value, str):
        return value
    try:
        return yaml.safe_dump(value, sort_keys=False, default_flow_style=False).strip()
    except yaml.YAMLError:
        return str(value)


def _training(value: Any) -> tuple[str | None, str | None]:
    """``(code, note)`` from a string or ``{"code", "language", "text"}``."""
    if value is None:
        return None, None
    if isinstance(value, Mapping):
        code = first_of(value, "code", "snippet", "python")
        note = first_of(value, "text", "description", "note")
        return (str(code) if code else None), (str(note) if note else None)
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value), None
    return str(value), None


def suggestion_view(data: Mapping[str, Any], index: int) -> dict[str, Any]:
    """One suggestion for the template; unknown keys are kept as generic detail rows."""
    picked: dict[str, Any] = {}
    used: set[str] = set()
    for field_name, keys in _SUGGESTION_KEYS.items():
        for key in keys:
            if data.get(key) not in (None, "", [], {}):
                picked[field_name] = data[key]
                used.add(key)
                break
    used |= {k for keys in _SUGGESTION_KEYS.values() for k in keys if data.get(k) is None}
    exactness = picked.get("exactness")
    if isinstance(exactness, bool):
        exactness = "exact" if exactness else "lossy"
    code, note = _training(picked.get("training"))
    kind = str(data.get("kind") or "")
    message = str(picked["message"]) if picked.get("message") else None
    title = str(picked.get("title") or key_label(kind) or f"suggestion {index + 1}")
    saving = picked.get("savings")
    by_batch_shares = by_batch(as_dict(saving).get("time_share_by_batch"))
    used |= {"severity", "kind", "finding", "findings", "finding_kinds", "rank"}
    return {
        "anchor": f"suggestion-{index + 1}",
        "title": title,
        "headline": str(picked["title"]) if picked.get("title") else (message or title),
        "message": message,
        "kind": kind,
        "severity": str(data.get("severity") or "").lower() or None,
        "exactness": str(exactness) if exactness else None,
        "exactness_class": _exactness_class(str(exactness or "")),
        "contract": _contract_text(picked.get("contract")),
        "savings": _savings_text(saving),
        "savings_by_batch": [(bs, fmt_pct(v)) for bs, v in sorted(by_batch_shares.items())],
        "plan_yaml": _plan_yaml(picked.get("plan")),
        "training_code": code,
        "training_note": note,
        "features": [str(f) for f in as_list(picked.get("targets"))],
        "findings": [
            key_label(str(f))
            for f in as_list(first_of(data, "findings", "finding_kinds"))
            if not isinstance(f, Mapping)
        ],
        "details": fields(data, skip=used),
    }


def _energy(singular_values: Any) -> list[float]:
    values = [as_float(v) for v in as_list(singular_values)]
    squares = [v * v for v in values if v is not None]
    total = sum(squares)
    if total <= 0:
        return []
    out, running = [], 0.0
    for s in sorted(squares, reverse=True):
        running += s
        out.append(running / total)
    return out


def embedding_views(
    inventory: Mapping[str, Any], findings: Sequence[Mapping[str, Any]], extra: Any
) -> list[dict[str, Any]]:
    """Embedding tables merged from the inventory, ``large_embedding`` evidence and any
    ``analysis["embeddings"]`` list, keyed by the table's node name."""
    tables: dict[str, dict[str, Any]] = {}

    def merge(data: Mapping[str, Any]) -> None:
        key = first_of(data, "table", "node", "variable", "name")
        if key is None:
            return
        entry = tables.setdefault(str(key), {"node": str(key)})
        for k, v in data.items():
            if v is not None and (k not in entry or entry[k] in (None, [], "")):
                entry[k] = v

    for t in as_list(inventory.get("embedding_tables")):
        merge(as_dict(t))
    for f in findings:
        if f.get("kind") == "large_embedding":
            ev = as_dict(f.get("evidence"))
            if "table" not in ev and as_list(f.get("nodes")):
                ev["table"] = as_list(f.get("nodes"))[0]
            merge(ev)
    extra_items = as_dict(extra).values() if isinstance(extra, Mapping) else as_list(extra)
    for t in extra_items:
        merge(as_dict(t))
    views = []
    for entry in tables.values():
        energy = [e for e in (as_float(v) for v in as_list(entry.get("energy"))) if e is not None]
        energy = energy or _energy(entry.get("singular_values"))
        rows, rows_hit = as_int(entry.get("rows")), as_int(entry.get("rows_hit"))
        hit_fraction = as_float(entry.get("hit_fraction"))
        if hit_fraction is None and rows and rows_hit is not None:
            hit_fraction = rows_hit / rows
        views.append(
            {
                "name": str(entry.get("variable") or entry["node"]),
                "node": entry["node"],
                "rows": rows,
                "dim": as_int(entry.get("dim")),
                "dtype": entry.get("dtype"),
                "bytes": as_float(entry.get("bytes")),
                "features": [str(f) for f in as_list(entry.get("features"))],
                "rows_hit": rows_hit,
                "rows_hit_source": entry.get("rows_hit_source"),
                "hit_fraction": hit_fraction,
                "unused_bytes": as_float(entry.get("unused_bytes")),
                "cardinality": as_int(entry.get("cardinality")),
                "rule_of_thumb_dim": as_int(entry.get("rule_of_thumb_dim")),
                "dims_95": as_int(entry.get("dims_95")),
                "dims_99": as_int(entry.get("dims_99")),
                "time_share": as_float(entry.get("time_share")),
                "issues": [str(i) for i in as_list(entry.get("issues"))],
                "energy": energy,
            }
        )
    return sorted(views, key=lambda t: -(t["bytes"] or 0))


def feature_views(stats: Mapping[str, Any]) -> dict[str, Any] | None:
    """``FeatureStats.to_dict()`` -> rows of the data-profile table plus relations."""
    columns = stats.get("columns")
    items = (
        as_dict(columns).items()
        if isinstance(columns, Mapping)
        else ((as_dict(c).get("name"), c) for c in as_list(columns))
    )
    rows = []
    for name, col in items:
        c = as_dict(col)
        if name is None:
            continue
        lo, hi = as_float(c.get("numeric_min")), as_float(c.get("numeric_max"))
        lengths = as_dict(c.get("list_length"))
        top = []
        for pair in as_list(c.get("top_values"))[:5]:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                top.append(f"{truncate(str(pair[0]), 40)} ({fmt_num(pair[1])})")
            else:
                top.append(truncate(str(pair), 40))
        rows.append(
            {
                "name": str(name),
                "kind": str(c.get("kind") or "?"),
                "sequence": bool(c.get("is_sequence")),
                "dtype": c.get("signature_dtype"),
                "rows": as_int(c.get("rows")),
                "distinct": as_int(c.get("distinct")),
                "null_share": as_float(c.get("null_share")),
                "range": None if lo is None or hi is None else f"{fmt_num(lo)} … {fmt_num(hi)}",
                "all_numeric": bool(c.get("all_numeric")),
                "list_length": None
                if not lengths
                else (
                    f"{fmt_num(lengths.get('min'))} / {fmt_num(lengths.get('mean'))} / "
                    f"{fmt_num(lengths.get('max'))}"
                ),
                "pad_share": as_float(c.get("pad_share")),
                "top_values": top,
            }
        )
    if not rows:
        return None
    relations = []
    for key in ("identical", "one_to_one"):
        for r in as_list(stats.get(key)):
            d = as_dict(r)
            relations.append(
                {
                    "a": str(d.get("a")),
                    "b": str(d.get("b")),
                    "relation": key_label(str(d.get("relation") or key)),
                    "detail": f"{fmt_num(d.get('distinct'))} distinct values",
                }
            )
    for r in as_list(stats.get("overlaps")):
        d = as_dict(r)
        relations.append(
            {
                "a": str(d.get("a")),
                "b": str(d.get("b")),
                "relation": "shared values",
                "detail": f"{fmt_num(d.get('common'))} common, containment "
                f"{fmt_pct(d.get('containment'))}, Jaccard "
                f"{fmt_pct(d.get('jaccard'))}",
            }
        )
    return {"rows": as_int(stats.get("rows")), "columns": rows, "relations": relations}


def plan_view(plan: Any) -> dict[str, Any] | None:
    """``Plan.to_dict()`` -> entries table and the YAML text."""
    p = as_dict(plan)
    if not p:
        return None
    entries = []
    for e in as_list(first_of(p, "rewrites", "entries", "passes")):
        d = as_dict(e)
        entries.append(
            {
                "name": str(first_of(d, "pass", "name") or "?"),
                "enabled": d.get("enabled", True) is not False,
                "params": format_value("params", as_dict(d.get("params")))
                if d.get("params")
                else "",
                "comment": str(d.get("comment") or ""),
            }
        )
    model = as_dict(p.get("model"))
    return {
        "preset": p.get("preset"),
        "fingerprint": model.get("fingerprint"),
        "entries": entries,
        "yaml": _plan_yaml(p),
    }


# --------------------------------------------------------------------------- analysis view
def _headline(
    inventory: Mapping[str, Any],
    batches: Sequence[Mapping[str, Any]],
    ref_attr: Mapping[str, Any] | None,
    ref_batch: int | None,
    findings: Sequence[Mapping[str, Any]],
    embeddings: Sequence[Mapping[str, Any]],
) -> list[dict[str, str]]:
    cards = []
    lat = [
        f"{fmt_ms(b['latency']['p50_ms'])} @ {b['batch_size']}"
        for b in batches
        if b["latency"].get("p50_ms") is not None
    ]
    cards.append({"label": "p50 latency", "value": ", ".join(lat) if lat else NOT_MEASURED})
    cards.append({"label": "size on disk", "value": fmt_bytes(inventory.get("size_bytes"))})
    nodes = as_int(inventory.get("node_count"))
    stored = as_int(inventory.get("node_count_loaded"))
    cards.append(
        {
            "label": "nodes (frozen / stored)",
            "value": f"{fmt_num(nodes)} / {fmt_num(stored)}" if nodes is not None else NOT_MEASURED,
        }
    )
    string_share = as_dict((ref_attr or {}).get("per_stage")).get("string/lookup")
    if string_share is None and batches:
        ref = next((b for b in batches if b["batch_size"] == ref_batch), batches[-1])
        string_share = stage_shares(ref, ref_attr).get("string/lookup")
    cards.append(
        {
            "label": f"string/lookup share @ {ref_batch}" if ref_batch else "string/lookup share",
            "value": fmt_pct(string_share),
        }
    )
    emb_bytes = sum(t["bytes"] or 0 for t in embeddings)
    cards.append(
        {
            "label": "embedding tables",
            "value": f"{len(embeddings)}, {fmt_bytes(emb_bytes)}" if embeddings else NOT_MEASURED,
        }
    )
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITY_ORDER}
    cards.append(
        {
            "label": "findings",
            "value": ", ".join(f"{n} {s}" for s, n in counts.items() if n) if findings else "none",
        }
    )
    return cards


def _model_title(analysis: Mapping[str, Any], inventory: Mapping[str, Any]) -> tuple[str, str]:
    model = analysis.get("model")
    if isinstance(model, Mapping):
        path = first_of(model, "path", "name", "dir")
    else:
        path = model
    path = str(path or inventory.get("path") or "model")
    name = path.rstrip("/").split("/")[-1] or path
    if name == "saved_model" and "/" in path.rstrip("/"):
        name = path.rstrip("/").split("/")[-2]
    return name, path


def run_facts(model: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """``analysis["model"]``'s data and run records -> (label, value) rows and notes."""
    rows: list[tuple[str, str]] = []
    notes: list[str] = []
    data = as_dict(model.get("data"))
    if data:
        source = str(data.get("source") or "")
        where = data.get("path")
        text = f"{source} {where}" if where and source != "synthetic" else source or "?"
        if data.get("n_rows") is not None:
            text += f", {fmt_num(data.get('n_rows'))} rows"
        rows.append(("sample data", text))
        labels = as_dict(data.get("labels"))
        if labels:
            rows.append(("labels", ", ".join(str(k) for k in labels)))
        unused = as_list(data.get("unused_columns"))
        if unused:
            rows.append(("columns not used", ", ".join(str(c) for c in unused)))
    logs = as_dict(model.get("log_stats"))
    if logs:
        rows.append(
            (
                "full-log statistics",
                f"{logs.get('dir')}: {fmt_num(logs.get('rows'))} rows in "
                f"{fmt_num(logs.get('files'))} files ({logs.get('engine')}); rows hit, "
                "cardinalities and per-request evidence come from them",
            )
        )
    run = as_dict(model.get("run"))
    if run:
        for key in ("preset", "batch_sizes", "profile_calls"):
            if run.get(key) is not None:
                rows.append((key_label(key), format_value(key, run[key])))
        timings = as_dict(run.get("timings_s"))
        if timings.get("total") is not None:
            rows.append(("analysis time", f"{fmt_num(timings['total'])} s"))
        for name, error in as_dict(run.get("detectors_failed")).items():
            notes.append(f"detector {name} failed: {error}")
        notes += [str(n) for n in as_list(run.get("notes"))]
    if model.get("fingerprint"):
        rows.append(("fingerprint", str(model["fingerprint"])))
    return rows, notes


def analysis_view(analysis: Mapping[str, Any]) -> dict[str, Any]:
    """Everything ``analysis.html.j2`` shows, from an ``Analysis.to_dict()``.

    Args:
        analysis: the analysis dict (any section may be missing).

    Returns:
        A dict of plain values and :class:`~recadvisor.report.charts.Chart` objects.
    """
    a = as_dict(analysis)
    ids = ChartIds()
    inventory = as_dict(a.get("inventory"))
    profile = as_dict(a.get("profile"))
    batches = profile_batches(profile)
    default_batch = batches[-1]["batch_size"] if batches else None
    attrs = attributions(a, profile, default_batch)
    ref_batch = as_int(profile.get("reference_batch"))
    if ref_batch is None or (attrs and ref_batch not in attrs):
        ref_batch = max(attrs) if attrs else default_batch
    ref_attr = attrs.get(ref_batch) if ref_batch is not None else None
    batch_of = {b["batch_size"]: b for b in batches}

    raw_findings = [as_dict(f) for f in as_list(a.get("findings")) if isinstance(f, Mapping)]
    findings = sorted(
        (finding_view(f) for f in raw_findings), key=lambda f: severity_rank(f["severity"])
    )
    raw_suggestions = [as_dict(s) for s in as_list(a.get("suggestions")) if isinstance(s, Mapping)]
    if any(as_float(s.get("rank")) is not None for s in raw_suggestions):
        raw_suggestions.sort(key=lambda s: as_float(s.get("rank")) or math.inf)
    suggestions = [suggestion_view(s, i) for i, s in enumerate(raw_suggestions)]
    embeddings = embedding_views(inventory, raw_findings, a.get("embeddings"))

    signature = a.get("signature")
    sig_dict = as_dict(signature)
    inputs = signature_rows(inventory.get("inputs") or sig_dict.get("inputs"))
    outputs = signature_rows(inventory.get("outputs") or sig_dict.get("outputs"))
    op_rows = op_count_rows(
        as_dict(inventory.get("op_counts_loaded")), as_dict(inventory.get("op_counts"))
    )
    name, path = _model_title(a, inventory)
    model = as_dict(a.get("model"))
    run_rows, run_notes = run_facts(model)

    # cost breakdown: one sunburst per attribution (smallest and largest batch at most)
    sunbursts = []
    for bs in sorted({min(attrs), max(attrs)} if attrs else ()):
        levels, leaves = sunburst_leaves(batch_of.get(bs), attrs[bs])
        chart = charts.cost_sunburst(leaves, levels, ids, bs)
        if chart is not None:
            sunbursts.append(chart)
    if not sunbursts and batches:
        levels, leaves = sunburst_leaves(batches[-1], {})
        chart = charts.cost_sunburst(leaves, levels, ids, batches[-1]["batch_size"])
        if chart is not None:
            sunbursts.append(chart)
    per_feature = [
        (str(f), as_float(s) or 0.0)
        for f, s in as_dict((ref_attr or {}).get("per_feature")).items()
    ]
    per_feature.sort(key=lambda kv: -kv[1])

    chart_map = {
        "op_counts": charts.op_counts_chart(op_rows, ids),
        "latency": charts.profile_latency_chart(
            [{"batch_size": b["batch_size"], **b["latency"]} for b in batches], ids
        ),
        "stages": charts.stage_share_chart(
            [(b["batch_size"], stage_shares(b, attrs.get(b["batch_size"]))) for b in batches]
            or [(bs, stage_shares({"ops": []}, at)) for bs, at in sorted(attrs.items())],
            ids,
        ),
        "rows_used": charts.rows_used_chart(embeddings, ids),
        "energy": charts.energy_chart(embeddings, ids),
    }
    features = feature_views(as_dict(a.get("feature_stats")))
    chart_map["distinct"] = (
        charts.distinct_values_chart(features["columns"], ids) if features else None
    )

    wins = [
        {
            "title": s["headline"],
            "savings": s["savings"],
            "exactness": s["exactness"],
            "exactness_class": s["exactness_class"],
            "anchor": s["anchor"],
        }
        for s in suggestions[:TOP_WINS]
    ]
    return {
        "name": name,
        "path": path,
        "signature": str(
            sig_dict.get("key")
            or model.get("signature")
            or signature
            or inventory.get("signature")
            or ""
        )
        or None,
        "source_format": inventory.get("source_format") or model.get("source_format"),
        "available_signatures": [
            str(s)
            for s in as_list(
                inventory.get("available_signatures") or model.get("available_signatures")
            )
        ],
        "headline": _headline(inventory, batches, ref_attr, ref_batch, findings, embeddings),
        "wins": wins,
        "top_findings": findings[:TOP_WINS] if not wins else [],
        "inputs": inputs,
        "outputs": outputs,
        "has_inventory": bool(inventory),
        "sizes": [
            ("size on disk", fmt_bytes(inventory.get("size_bytes"))),
            (
                "variables",
                f"{fmt_num(inventory.get('variable_count'))}, "
                f"{fmt_bytes(inventory.get('variable_bytes'))}"
                if inventory.get("variable_count") is not None
                else NOT_MEASURED,
            ),
            ("nodes as stored (graph + functions)", fmt_num(inventory.get("node_count_loaded"))),
            ("nodes in the frozen serving graph", fmt_num(inventory.get("node_count"))),
            (
                "lookup tables",
                fmt_num(len(as_list(inventory.get("lookup_tables"))))
                if inventory
                else NOT_MEASURED,
            ),
        ],
        "op_rows": op_rows,
        "string_ops": [
            {
                "node": str(as_dict(s).get("node")),
                "op": str(as_dict(s).get("op")),
                "features": [str(f) for f in as_list(as_dict(s).get("features"))],
            }
            for s in as_list(inventory.get("string_ops"))[:MAX_OP_ROWS]
        ],
        "lookup_tables": [fields(as_dict(t)) for t in as_list(inventory.get("lookup_tables"))],
        "unreachable": [str(n) for n in as_list(inventory.get("unreachable_nodes"))],
        "run": run_rows,
        "notes": [str(n) for n in as_list(inventory.get("notes")) + as_list(a.get("notes"))]
        + run_notes,
        "profile": {
            "measured": bool(batches),
            "target": profile.get("target"),
            "settings": [
                (k, fmt_num(profile.get(k)))
                for k in ("warmup", "calls", "trace_calls")
                if profile.get(k) is not None
            ],
            "mapped": [
                (
                    b["batch_size"],
                    fmt_pct(b["mapped_fraction"]),
                    fmt_us(b["mapped_us"]),
                    fmt_us(b["unmapped_us"]),
                )
                for b in batches
            ],
            "ref_batch": ref_batch,
            "rule": (ref_attr or {}).get("rule"),
            "per_feature": per_feature,
        },
        "sunbursts": sunbursts,
        "op_table": op_table(batches, ref_attr, ref_batch),
        "findings": findings,
        "suggestions": suggestions,
        "embeddings": embeddings,
        "features": features,
        "plan": plan_view(a.get("plan")),
        "charts": chart_map,
        "extra_sections": fields(
            a,
            skip=(
                "model",
                "signature",
                "inventory",
                "profile",
                "feature_stats",
                "findings",
                "suggestions",
                "plan",
                "attribution",
                "attributions",
                "embeddings",
                "notes",
            ),
        ),
    }
