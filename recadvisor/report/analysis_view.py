"""The analysis report's view: an ``analysis.json`` dict (:class:`~recadvisor.analysis.analyze.
AnalysisDict`) turned into what ``templates/analysis.html.j2`` shows.

Every key is read as the schema names it: a renamed field raises ``KeyError`` here (and fails
the tests) instead of rendering as "not measured". Only the values the schema allows to be
``null`` (no profile, no sample data) or free-form (a finding's ``evidence``) are read
tolerantly. Embedding facts are merged from the inventory and the ``large_embedding`` findings'
evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import yaml

from recadvisor.report import charts
from recadvisor.report.charts import ChartIds
from recadvisor.report.formatting import (
    MAX_LIST_ITEMS,
    NOT_MEASURED,
    SEVERITY_ORDER,
    fields,
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

if TYPE_CHECKING:
    from recadvisor.advice import SuggestionDict
    from recadvisor.analysis.analyze import AnalysisDict, AnalysisModelDict, ProfileSectionDict
    from recadvisor.analysis.features import FeatureStatsDict
    from recadvisor.analysis.findings import FindingDict
    from recadvisor.analysis.inventory import ModelDescriptionDict
    from recadvisor.analysis.profile import OpTimingDict
    from recadvisor.model.spec import TensorDict
    from recadvisor.plan import PlanDict

MAX_OP_ROWS = 400
TOP_WINS = 5
LARGE = "large_embedding"  # the finding kind whose evidence describes one embedding table
# the shares of a batch when nothing was profiled (an op table with no rows)
_NO_ATTRIBUTION: dict[str, Any] = {"per_node_bucket": {}, "per_node_features": {}}


def _stage_of(op_type: str) -> str:
    from recadvisor.analysis.stages import stage_of

    return stage_of(op_type)


# --------------------------------------------------------------------------- analysis: profile
OTHER_OPS = "(smaller ops)"
NOT_LISTED = "(not listed)"


def _op_entry(data: OpTimingDict) -> dict[str, Any]:
    return {
        "node": data["node"],
        "op": data["op"],
        "runtime_ops": list(data["runtime_ops"]),
        "self_us": data["self_us"],
        "share": data["share"],
        "fused_nodes": list(data["fused_nodes"]),
        "stage": _stage_of(data["op"]),
    }


def profile_batches(profile: ProfileSectionDict) -> list[dict[str, Any]]:
    """The profile's batches, sorted by batch size.

    Returns:
        ``{"batch_size", "latency", "ops", "ops_listed_share", "mapped_us", "unmapped_us",
        "mapped_fraction"}`` per batch; an op is ``{"node", "op", "runtime_ops", "self_us",
        "share", "fused_nodes", "stage"}``, ``share`` its fraction of the mapped op time.
    """
    result = []
    for key, b in profile["batches"].items():
        latency = b["latency"]
        ops = [_op_entry(o) for o in b["top_ops"]]
        result.append(
            {
                "batch_size": int(key),
                "latency": {
                    "p50_ms": latency["p50_ms"],
                    "p90_ms": latency["p90_ms"],
                    "p99_ms": latency["p99_ms"],
                    "mean_ms": latency["mean_ms"],
                    "calls": latency["calls"],
                },
                "ops": ops,
                "ops_listed_share": sum(o["share"] for o in ops),
                "mapped_us": b["mapped_us"],
                "unmapped_us": b["unmapped_us"],
                "mapped_fraction": b["mapped_fraction"],
            }
        )
    return sorted(result, key=lambda b: b["batch_size"])


def attributions(profile: ProfileSectionDict) -> dict[int, dict[str, Any]]:
    """The cost attribution at each batch size: the shares of ``profile["batches"][bs]``."""
    return {int(key): dict(b) for key, b in profile["batches"].items()}


def _node_leaves(
    ops: Sequence[Mapping[str, Any]], attribution: Mapping[str, Any]
) -> list[tuple[tuple[str, ...], float]]:
    """Listed nodes charged as the attribution charged them: (feature, stage, op type)."""
    buckets = attribution["per_node_bucket"]
    node_feats = attribution["per_node_features"]
    leaves: list[tuple[tuple[str, ...], float]] = []
    for o in ops:
        share = o["share"]
        stage = o["stage"]
        feats = list(node_feats.get(o["node"], []))
        bucket = buckets.get(o["node"])
        if bucket is None:
            bucket = "(no feature)" if not feats else feats[0] if len(feats) == 1 else "(shared)"
        if bucket == "(split)" and feats:
            leaves += [((f, stage, o["op"]), share / len(feats)) for f in feats]
        else:
            leaves.append(((bucket, stage, o["op"]), share))
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
    per_feature_stage = attribution["per_feature_stage"]
    if per_feature_stage:
        for f, stages in per_feature_stage.items():
            for stage, share in stages.items():
                left = share - listed.get((f, stage), 0.0)
                if left > 1e-4:
                    rest.append(((f, stage, OTHER_OPS), left))
        return rest
    for f, share in attribution["per_feature"].items():
        left = share - listed.get((f,), 0.0)
        if left > 1e-4:
            rest.append(((f, NOT_LISTED, OTHER_OPS), left))
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
    if ops and (attribution["per_node_bucket"] or attribution["per_node_features"]):
        leaves = _node_leaves(ops, attribution)
        return ("feature", "stage", "op type"), leaves + _remainder_leaves(leaves, attribution)
    per_feature_op = attribution["per_feature_op_type"]
    if per_feature_op:
        return ("feature", "stage", "op type"), [
            ((f, _stage_of(op), op), s)
            for f, ops_ in per_feature_op.items()
            for op, s in ops_.items()
            if s
        ]
    if attribution["per_feature_stage"]:
        return ("feature", "stage"), [
            ((f, st), s)
            for f, stages in attribution["per_feature_stage"].items()
            for st, s in stages.items()
            if s
        ]
    if attribution["per_feature"]:
        return ("feature",), [((f,), s) for f, s in attribution["per_feature"].items() if s]
    if ops:
        return ("stage", "op type"), [((o["stage"], o["op"]), o["share"]) for o in ops]
    return (), []


def stage_shares(batch: Mapping[str, Any], attribution: Mapping[str, Any]) -> dict[str, float]:
    """Share of op time per stage: the attribution's ``per_stage``, else from the op types."""
    if attribution["per_stage"]:
        return dict(attribution["per_stage"])
    shares: dict[str, float] = {}
    for o in batch["ops"]:
        shares[o["stage"]] = shares.get(o["stage"], 0.0) + o["share"]
    return shares


def op_table(
    batches: Sequence[Mapping[str, Any]],
    attribution: Mapping[str, Any],
    ref_batch: int | None,
) -> dict[str, Any]:
    """The sortable per-op table: one row per profiled node, columns per batch size.

    Returns:
        ``{"batch_sizes", "rows", "truncated"}``; a row has node, op, kernels, fused nodes,
        stage, charged_to, features, ``us`` and ``share`` by batch size.
    """
    buckets = attribution["per_node_bucket"]
    node_feats = attribution["per_node_features"]
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
                    "stage": o["stage"],
                    "us": {},
                    "share": {},
                    "charged_to": buckets.get(o["node"]),
                    "features": list(node_feats.get(o["node"], [])),
                },
            )
            row["kernels"] = sorted(set(row["kernels"]) | set(o["runtime_ops"]) - {o["op"]})
            row["fused"] = sorted(set(row["fused"]) | set(o["fused_nodes"]))
            bs = b["batch_size"]
            row["us"][bs] = row["us"].get(bs, 0.0) + o["self_us"]
            row["share"][bs] = row["share"].get(bs, 0.0) + o["share"]
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
def signature_rows(specs: Mapping[str, TensorDict]) -> list[dict[str, str]]:
    """``{key: {dtype, shape}}`` -> table rows."""
    return [
        {"key": key, "dtype": spec["dtype"], "shape": fmt_shape(spec["shape"])}
        for key, spec in specs.items()
    ]


def op_count_rows(stored: Mapping[str, int], frozen: Mapping[str, int]) -> list[dict[str, Any]]:
    """Node counts by op type as stored and frozen, most frequent first."""
    rows = [
        {
            "op": op,
            "stored": stored.get(op, 0),
            "frozen": frozen.get(op, 0),
            "delta": frozen.get(op, 0) - stored.get(op, 0),
        }
        for op in set(stored) | set(frozen)
    ]
    return sorted(rows, key=lambda r: (-max(r["stored"], r["frozen"]), r["op"]))


def finding_view(data: FindingDict) -> dict[str, Any]:
    """One finding for the template (message, badges, features, nodes, evidence rows)."""
    kind = data["kind"]
    nodes = list(data["nodes"])
    return {
        "kind": kind,
        "kind_label": key_label(kind),
        "severity": data["severity"],
        "message": data["message"],
        "features": list(data["features"]),
        "nodes": nodes[:MAX_LIST_ITEMS],
        "nodes_more": max(0, len(nodes) - MAX_LIST_ITEMS),
        "evidence": fields(data["evidence"]),
        "detector": data["detector"],
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


def _savings_text(saving: Mapping[str, Any]) -> str | None:
    """``{"time_share": .12, "batch_size": 256, "bytes": 4096, ...}`` ->
    ``12.0% of op time at batch 256; 4.0 KiB of weights`` (``None`` when both are unknown)."""
    parts = []
    if saving["time_share"] is not None:
        at = f" at batch {saving['batch_size']}" if saving["batch_size"] else ""
        parts.append(f"{fmt_pct(saving['time_share'])} of op time{at}")
    if saving["bytes"]:
        parts.append(f"{fmt_bytes(saving['bytes'])} of weights")
    return "; ".join(parts) if parts else None


def _plan_yaml(value: Mapping[str, Any] | None) -> str | None:
    if value is None:
        return None
    return yaml.safe_dump(dict(value), sort_keys=False, default_flow_style=False).strip()


def suggestion_view(data: SuggestionDict, index: int) -> dict[str, Any]:
    """One suggestion for the template."""
    kind = data["kind"]
    saving = data["expected_saving"]
    by_batch_shares = {int(bs): v for bs, v in saving["time_share_by_batch"].items()}
    return {
        "anchor": f"suggestion-{index + 1}",
        "title": key_label(kind),
        "headline": data["message"],
        "message": data["message"],
        "kind": kind,
        "severity": data["severity"],
        "exactness": data["exactness"],
        "exactness_class": _exactness_class(data["exactness"]),
        "contract": "yes: clients must send new inputs"
        if data["changes_contract"]
        else "no: drop-in replacement",
        "savings": _savings_text(saving),
        "savings_by_batch": [(bs, fmt_pct(v)) for bs, v in sorted(by_batch_shares.items())],
        "plan_yaml": _plan_yaml(data["plan_entry"]),
        "training_code": data["training_side"] or None,
        "features": list(data["targets"]),
        "findings": [key_label(f) for f in data["finding_kinds"]],
        "details": [("tables", ", ".join(data["tables"]))] if data["tables"] else [],
    }


def _energy(singular_values: Sequence[float]) -> list[float]:
    squares = sorted((v * v for v in singular_values), reverse=True)
    total = sum(squares)
    if total <= 0:
        return []
    out, running = [], 0.0
    for sq in squares:
        running += sq
        out.append(running / total)
    return out


def embedding_views(
    inventory: ModelDescriptionDict, findings: Sequence[FindingDict]
) -> list[dict[str, Any]]:
    """The inventory's embedding tables, with the measurements of their ``large_embedding``
    finding (rows hit, cardinality, effective rank...) where one was made."""
    measured = {f["evidence"]["table"]: f["evidence"] for f in findings if f["kind"] == LARGE}
    views = []
    for t in inventory["embedding_tables"]:
        ev = measured.get(t["node"])
        views.append(
            {
                "name": t["variable"] or t["node"],
                "node": t["node"],
                "rows": t["rows"],
                "dim": t["dim"],
                "dtype": t["dtype"],
                "bytes": t["bytes"],
                "features": list(t["features"]),
                "rows_hit": None if ev is None else ev["rows_hit"],
                "rows_hit_source": None if ev is None else ev["rows_hit_source"],
                "hit_fraction": None if ev is None else ev["hit_fraction"],
                "unused_bytes": None if ev is None else ev["unused_bytes"],
                "cardinality": None if ev is None else ev["cardinality"],
                "rule_of_thumb_dim": None if ev is None else ev["rule_of_thumb_dim"],
                "dims_95": None if ev is None else ev["dims_95"],
                "dims_99": None if ev is None else ev["dims_99"],
                "time_share": None if ev is None else ev["time_share"],
                "issues": [] if ev is None else list(ev["issues"]),
                "energy": [] if ev is None else _energy(ev["singular_values"]),
            }
        )
    return sorted(views, key=lambda t: -t["bytes"])


def feature_views(stats: FeatureStatsDict | None) -> dict[str, Any] | None:
    """``feature_stats`` -> rows of the data-profile table plus relations (``None`` without
    sample data)."""
    if stats is None:
        return None
    rows = []
    for name, c in stats["columns"].items():
        lo, hi = c["numeric_min"], c["numeric_max"]
        lengths = c["list_length"]
        top = [f"{truncate(str(v), 40)} ({fmt_num(n)})" for v, n in c["top_values"][:5]]
        rows.append(
            {
                "name": name,
                "kind": c["kind"],
                "sequence": c["is_sequence"],
                "dtype": c["signature_dtype"],
                "rows": c["rows"],
                "distinct": c["distinct"],
                "null_share": c["null_share"],
                "range": None if lo is None or hi is None else f"{fmt_num(lo)} … {fmt_num(hi)}",
                "all_numeric": c["all_numeric"],
                "list_length": None
                if lengths is None
                else (
                    f"{fmt_num(lengths['min'])} / {fmt_num(lengths['mean'])} / "
                    f"{fmt_num(lengths['max'])}"
                ),
                "pad_share": c["pad_share"],
                "top_values": top,
            }
        )
    relations = [
        {
            "a": r["a"],
            "b": r["b"],
            "relation": key_label(r["relation"]),
            "detail": f"{fmt_num(r['distinct'])} distinct values",
        }
        for r in [*stats["identical"], *stats["one_to_one"]]
    ]
    relations += [
        {
            "a": r["a"],
            "b": r["b"],
            "relation": "shared values",
            "detail": f"{fmt_num(r['common'])} common, containment "
            f"{fmt_pct(r['containment'])}, Jaccard {fmt_pct(r['jaccard'])}",
        }
        for r in stats["overlaps"]
    ]
    return {"rows": stats["rows"], "columns": rows, "relations": relations}


def plan_view(plan: PlanDict) -> dict[str, Any]:
    """``plan.yaml``'s dict -> entries table and the YAML text."""
    entries = [
        {
            "name": e["pass"],
            "enabled": e["enabled"],
            "params": format_value("params", e["params"]) if e["params"] else "",
            "comment": e["comment"],
        }
        for e in plan["rewrites"]
    ]
    return {
        "preset": plan["preset"],
        "fingerprint": plan["model"]["fingerprint"],
        "entries": entries,
        "yaml": _plan_yaml(plan),
    }


# --------------------------------------------------------------------------- analysis view
def _headline(
    inventory: ModelDescriptionDict,
    batches: Sequence[Mapping[str, Any]],
    ref_attr: Mapping[str, Any] | None,
    ref_batch: int | None,
    findings: Sequence[Mapping[str, Any]],
    embeddings: Sequence[Mapping[str, Any]],
) -> list[dict[str, str]]:
    lat = [f"{fmt_ms(b['latency']['p50_ms'])} @ {b['batch_size']}" for b in batches]
    string_share = None
    if ref_attr is not None:
        ref = next(b for b in batches if b["batch_size"] == ref_batch)
        string_share = stage_shares(ref, ref_attr).get("string/lookup")
    emb_bytes = sum(t["bytes"] for t in embeddings)
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITY_ORDER}
    return [
        {"label": "p50 latency", "value": ", ".join(lat) if lat else NOT_MEASURED},
        {"label": "size on disk", "value": fmt_bytes(inventory["size_bytes"])},
        {
            "label": "nodes (frozen / stored)",
            "value": f"{fmt_num(inventory['node_count'])} / "
            f"{fmt_num(inventory['node_count_loaded'])}",
        },
        {
            "label": f"string/lookup share @ {ref_batch}" if ref_batch else "string/lookup share",
            "value": fmt_pct(string_share),
        },
        {
            "label": "embedding tables",
            "value": f"{len(embeddings)}, {fmt_bytes(emb_bytes)}" if embeddings else "none",
        },
        {
            "label": "findings",
            "value": ", ".join(f"{n} {s}" for s, n in counts.items() if n) if findings else "none",
        },
    ]


def model_name(path: str) -> str:
    """The name a report shows for a model path (the folder above ``saved_model``)."""
    parts = [p for p in path.rstrip("/").split("/") if p]
    if not parts:
        return path
    if parts[-1] == "saved_model" and len(parts) > 1:
        return parts[-2]
    return parts[-1]


def run_facts(model: AnalysisModelDict) -> tuple[list[tuple[str, str]], list[str]]:
    """``analysis["model"]``'s data and run records -> (label, value) rows and notes."""
    data, run = model["data"], model["run"]
    source = data["source"]
    text = f"{source} {data['path']}" if data["path"] and source != "synthetic" else source
    rows = [("sample data", f"{text}, {fmt_num(data['n_rows'])} rows")]
    if data["labels"]:
        rows.append(("labels", ", ".join(data["labels"])))
    if data["unused_columns"]:
        rows.append(("columns not used", ", ".join(data["unused_columns"])))
    rows += [
        ("preset", run["preset"]),
        ("batch sizes", format_value("batch_sizes", run["batch_sizes"])),
        ("profile calls", fmt_num(run["profile_calls"])),
    ]
    if "total" in run["timings_s"]:
        rows.append(("analysis time", f"{fmt_num(run['timings_s']['total'])} s"))
    logs = model["log_stats"]
    if logs is not None:
        rows.append(
            (
                "full-log statistics",
                f"{logs['dir']}: {fmt_num(logs['rows'])} rows in {fmt_num(logs['files'])} "
                f"files ({logs['engine']}); rows hit, cardinalities and per-request evidence "
                "come from them",
            )
        )
    rows.append(("fingerprint", model["fingerprint"]))
    notes = [f"detector {name} failed: {error}" for name, error in run["detectors_failed"].items()]
    return rows, notes + list(run["notes"])


def analysis_view(analysis: AnalysisDict) -> dict[str, Any]:
    """Everything ``analysis.html.j2`` shows, from an ``analysis.json`` dict.

    Args:
        analysis: the analysis (``profile`` and ``feature_stats`` may be ``null``).

    Returns:
        A dict of plain values and :class:`~recadvisor.report.charts.Chart` objects.
    """
    a = analysis
    ids = ChartIds()
    inventory = a["inventory"]
    profile = a["profile"]
    batches = profile_batches(profile) if profile is not None else []
    attrs = attributions(profile) if profile is not None else {}
    ref_batch = profile["reference_batch"] if profile is not None else None
    ref_attr = attrs[ref_batch] if ref_batch is not None else None
    batch_of = {b["batch_size"]: b for b in batches}

    findings = sorted(
        (finding_view(f) for f in a["findings"]), key=lambda f: severity_rank(f["severity"])
    )
    suggestions = [suggestion_view(s, i) for i, s in enumerate(a["suggestions"])]
    embeddings = embedding_views(inventory, a["findings"])
    op_rows = op_count_rows(inventory["op_counts_loaded"], inventory["op_counts"])
    model = a["model"]
    path = model["path"]
    run_rows, run_notes = run_facts(model)

    # cost breakdown: one sunburst per attribution (smallest and largest batch at most)
    sunbursts = []
    for bs in sorted({min(attrs), max(attrs)} if attrs else ()):
        levels, leaves = sunburst_leaves(batch_of[bs], attrs[bs])
        chart = charts.cost_sunburst(leaves, levels, ids, bs)
        if chart is not None:
            sunbursts.append(chart)
    per_feature = sorted(ref_attr["per_feature"].items(), key=lambda kv: -kv[1]) if ref_attr else []

    chart_map = {
        "op_counts": charts.op_counts_chart(op_rows, ids),
        "latency": charts.profile_latency_chart(
            [{"batch_size": b["batch_size"], **b["latency"]} for b in batches], ids
        ),
        "stages": charts.stage_share_chart(
            [(b["batch_size"], stage_shares(b, attrs[b["batch_size"]])) for b in batches], ids
        ),
        "rows_used": charts.rows_used_chart(embeddings, ids),
        "energy": charts.energy_chart(embeddings, ids),
    }
    features = feature_views(a["feature_stats"])
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
    run = model["run"]
    return {
        "name": model_name(path),
        "path": path,
        "signature": a["signature"]["key"],
        "source_format": model["source_format"],
        "available_signatures": list(model["available_signatures"]),
        "headline": _headline(inventory, batches, ref_attr, ref_batch, findings, embeddings),
        "wins": wins,
        "top_findings": findings[:TOP_WINS] if not wins else [],
        "inputs": signature_rows(a["signature"]["inputs"]),
        "outputs": signature_rows(a["signature"]["outputs"]),
        "has_inventory": True,
        "sizes": [
            ("size on disk", fmt_bytes(inventory["size_bytes"])),
            (
                "variables",
                f"{fmt_num(inventory['variable_count'])}, {fmt_bytes(inventory['variable_bytes'])}",
            ),
            ("nodes as stored (graph + functions)", fmt_num(inventory["node_count_loaded"])),
            ("nodes in the frozen serving graph", fmt_num(inventory["node_count"])),
            ("lookup tables", fmt_num(len(inventory["lookup_tables"]))),
        ],
        "op_rows": op_rows,
        "string_ops": [
            {"node": s["node"], "op": s["op"], "features": list(s["features"])}
            for s in inventory["string_ops"][:MAX_OP_ROWS]
        ],
        "lookup_tables": [fields(t) for t in inventory["lookup_tables"]],
        "unreachable": list(inventory["unreachable_nodes"]),
        "run": run_rows,
        "notes": list(inventory["notes"]) + run_notes,
        "profile": {
            "measured": bool(batches),
            "target": profile["target"] if profile is not None else None,
            "settings": [("calls", fmt_num(run["profile_calls"]))] if profile is not None else [],
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
            "per_feature": per_feature,
        },
        "sunbursts": sunbursts,
        "op_table": op_table(batches, ref_attr or _NO_ATTRIBUTION, ref_batch),
        "findings": findings,
        "suggestions": suggestions,
        "embeddings": embeddings,
        "features": features,
        "plan": plan_view(a["plan"]),
        "serving_settings": serving_settings_view(a["serving_settings"]),
        "charts": chart_map,
    }


def serving_settings_view(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The "Serving settings" section: one row per session setting, the best one first.

    Args:
        data: ``analysis.json``'s ``serving_settings``: :func:`recadvisor.serving.tuning.
            time_settings`'s dict, ``{"unavailable": reason}``, or ``None`` when not measured.

    Returns:
        ``{"rows", "best", "columns", "note", "unavailable"}`` or ``None``.
    """
    if data is None:
        return None
    if "unavailable" in data:
        return {"unavailable": data["unavailable"], "rows": []}
    workloads = list(data["workloads"])
    settings = data["settings"]
    columns = workloads + (list(settings[0]["throughput"]) if settings else [])
    rows = []
    for s in sorted(settings, key=lambda s: s["score"]):
        cells = [fmt_ms(s["latency"][w]["p50_ms"]) for w in workloads]
        cells += [f"{s['throughput'][k]['calls_per_s']:,.0f}/s" for k in columns[len(workloads) :]]
        rows.append(
            {
                "name": s["name"],
                "description": s["description"],
                "cells": cells,
                "score": s["score"],
                "flags": " ".join(s["serving_flags"]),
                "config": s["config_proto"] or "",
                "best": s["name"] == data["best"],
            }
        )
    return {
        "rows": rows,
        "best": data["best"],
        "columns": columns,
        "note": data["note"],
        "unavailable": None,
    }
