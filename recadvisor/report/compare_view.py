"""The comparison report's view (``Comparison.to_dict()`` plus an optional ``rebuild.json``)
and the index page's rows.

The pass records of a rebuild are read from ``passes`` (or ``records``/``pipeline``/``stages``)
with the outcome under ``status`` (or ``outcome``/``result``, or boolean ``applied``/
``refused``/``rolled_back`` flags), normalized to applied / refused / rolled back / skipped /
disabled / failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from recadvisor.report import charts
from recadvisor.report.analysis_view import plan_view
from recadvisor.report.charts import ChartIds
from recadvisor.report.formatting import (
    NOT_MEASURED,
    as_dict,
    as_float,
    as_int,
    as_list,
    by_batch,
    fields,
    first_of,
    fmt_bytes,
    fmt_diff,
    format_value,
    key_label,
)


# --------------------------------------------------------------------------- comparison view
def _latency_summary(value: Any) -> dict[str, Any]:
    d = as_dict(value)
    out: dict[str, Any] = {
        k: as_float(d.get(k)) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "rows_per_s")
    }
    out["calls"] = as_int(d.get("calls"))
    out["samples_ms"] = [
        v for v in (as_float(x) for x in as_list(d.get("samples_ms"))) if v is not None
    ]
    return out


def model_view(data: Mapping[str, Any], index: int) -> dict[str, Any]:
    """One model of a comparison, with latency by integer batch size."""
    quality = {
        str(k): {m: as_float(v) for m, v in as_dict(q).items()}
        for k, q in as_dict(data.get("quality")).items()
    }
    parity = data.get("parity")
    return {
        "label": str(data.get("label") or data.get("path") or f"model {index + 1}"),
        "kind": str(data.get("kind") or ""),
        "path": str(data.get("path") or ""),
        "size_bytes": as_float(data.get("size_bytes")),
        "node_count": as_int(data.get("node_count")),
        "latency": {bs: _latency_summary(s) for bs, s in by_batch(data.get("latency")).items()},
        "ratio_vs_baseline": {
            bs: as_float(r) for bs, r in by_batch(data.get("ratio_vs_baseline")).items()
        },
        "ratio_vs_floor": {
            bs: as_float(r) for bs, r in by_batch(data.get("ratio_vs_floor")).items()
        },
        "parity": None if parity is None else {str(k): v for k, v in as_dict(parity).items()},
        "parity_passed": data.get("parity_passed"),
        "quality": quality,
        "memory": {str(k): as_float(v) for k, v in as_dict(data.get("memory")).items()} or None,
        "encoded_inputs": [str(e) for e in as_list(data.get("encoded_inputs"))],
        "onnx_profile": onnx_profile_view(data.get("onnx_profile")),
        "color": charts.color_for(index),
    }


ONNX_PROFILE_ROWS = 6


def _onnx_times(entries: Any, rows: int) -> list[dict[str, Any]]:
    return [
        {
            "name": str(e.get("name") or ""),
            "op_type": str(e.get("op_type") or ""),
            "nodes": as_int(e.get("nodes")),
            "us": as_float(e.get("us_per_call")),
            "share": as_float(e.get("share")),
        }
        for e in (as_dict(x) for x in as_list(entries)[:rows])
    ]


def onnx_profile_view(data: Any) -> list[dict[str, Any]]:
    """A model's ``onnx_profile`` as rows per batch size: top op types and nodes by share."""
    batches = by_batch(as_dict(data).get("batches"))
    return [
        {
            "batch_size": bs,
            "run_us": as_float(b.get("run_us")),
            "kernel_fraction": as_float(b.get("kernel_fraction")),
            "node_count": as_int(b.get("node_count")),
            "op_types": _onnx_times(b.get("per_op_type"), ONNX_PROFILE_ROWS),
            "top_nodes": _onnx_times(b.get("top_nodes"), ONNX_PROFILE_ROWS),
        }
        for bs, b in sorted((bs, as_dict(b)) for bs, b in batches.items())
    ]


_STATUS_ALIASES = {
    "applied": "applied",
    "ok": "applied",
    "success": "applied",
    "done": "applied",
    "changed": "applied",
    "refused": "refused",
    "not applicable": "refused",
    "rolled back": "rolled back",
    "rollback": "rolled back",
    "reverted": "rolled back",
    "rolledback": "rolled back",
    "skipped": "skipped",
    "disabled": "disabled",
    "failed": "failed",
    "error": "failed",
    "unchanged": "no change",
    "no change": "no change",
}
STATUS_CLASS = {
    "applied": "ok",
    "refused": "neutral",
    "rolled back": "bad",
    "failed": "bad",
    "skipped": "neutral",
    "disabled": "neutral",
    "no change": "neutral",
}


def _pass_status(d: Mapping[str, Any]) -> str:
    raw = first_of(d, "status", "outcome", "result", "state")
    if isinstance(raw, str):
        text = raw.lower().replace("_", " ").replace("-", " ").strip()
        return _STATUS_ALIASES.get(text, text)
    if d.get("rolled_back"):
        return "rolled back"
    if d.get("refused"):
        return "refused"
    if d.get("applied") is True:
        return "applied"
    if d.get("enabled") is False:
        return "disabled"
    return "unknown"


def pass_records(rebuild: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pipeline's per-pass records from a ``rebuild.json`` dict, normalized."""
    source: Any = None
    for key in ("passes", "records", "pipeline", "stages", "steps", "results"):
        value = rebuild.get(key)
        if isinstance(value, Mapping):
            value = first_of(value, "records", "passes", "stages") or [
                {"pass": k, **as_dict(v)} for k, v in value.items() if isinstance(v, Mapping)
            ]
        if as_list(value):
            source = value
            break
    records = []
    for item in as_list(source):
        d = as_dict(item)
        if not d:
            continue
        name = str(first_of(d, "pass", "name", "pass_name") or "?")
        parity = first_of(d, "max_abs_diff", "parity", "diff", "max_diff")
        parity_class = ""
        if isinstance(parity, Mapping):  # a verify.Parity dict: its number and verdict
            if parity.get("passed") is not None:
                parity_class = "ok" if parity["passed"] else "bad"
            parity = parity.get("max_abs_diff", parity)
        reason = first_of(d, "reason", "message", "error", "refused_reason", "why")
        changes = format_value("stats", as_dict(d.get("stats"))) if d.get("stats") else ""
        before, after = as_int(d.get("nodes_before")), as_int(d.get("nodes_after"))
        if before is not None and after is not None and before != after:
            changes = f"nodes {before} -> {after}" + (f"; {changes}" if changes else "")
        notes = [str(n) for n in as_list(d.get("notes"))]
        if d.get("gates"):
            notes.append("accuracy gates: " + format_value("gates", d["gates"]))
        lines = ([format_value("reason", reason)] if reason is not None else []) + notes
        records.append(
            {
                "name": name,
                "lines": lines,
                "status": _pass_status(d),
                "reason": None if reason is None else format_value("reason", reason),
                "exactness": d.get("exactness") or None,
                "parity": format_value("max_abs_diff", parity) if parity is not None else "",
                "parity_class": parity_class,
                "stats": changes,
                "notes": notes,
                "seconds": as_float(first_of(d, "seconds", "duration_s", "elapsed_s")),
            }
        )
    for r in records:
        r["status_class"] = STATUS_CLASS.get(r["status"], "neutral")
    return records


def rebuild_view(rebuild: Any) -> dict[str, Any] | None:
    """``rebuild.json`` -> pass table, counts by status and the other top-level facts."""
    r = as_dict(rebuild)
    if not r:
        return None
    records = pass_records(r)
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    skip = {
        "passes",
        "records",
        "pipeline",
        "stages",
        "steps",
        "results",
        "plan",
        "op_counts",
        "signature_after",
        "schema_version",
    }
    facts = [
        (key_label(k), format_value(str(k), v))
        for k, v in r.items()
        if k not in skip and not (isinstance(v, (list, Mapping)) and len(v) > 40)
    ]
    return {"passes": records, "counts": counts, "facts": facts, "plan": plan_view(r.get("plan"))}


def comparison_view(
    comparison: Mapping[str, Any], rebuild: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Everything ``compare.html.j2`` shows, from a ``Comparison.to_dict()``.

    Args:
        comparison: the comparison dict (any key may be missing).
        rebuild: an optional ``rebuild.json`` dict (passes applied/refused/rolled back).

    Returns:
        A dict of plain values and :class:`~recadvisor.report.charts.Chart` objects.
    """
    c = as_dict(comparison)
    ids = ChartIds()
    models = [
        model_view(as_dict(m), i)
        for i, m in enumerate(as_list(c.get("models")))
        if isinstance(m, Mapping)
    ]
    floor = {bs: _latency_summary(s) for bs, s in by_batch(c.get("floor")).items()}
    batch_sizes = [bs for bs in (as_int(b) for b in as_list(c.get("batch_sizes"))) if bs]
    if not batch_sizes:
        batch_sizes = sorted({bs for m in models for bs in m["latency"]} | set(floor))
    tolerance = as_float(c.get("tolerance"))
    baseline = next((m for m in models if m["parity"] is None), models[0] if models else None)

    summary = []
    for m in models:
        cells = []
        for bs in batch_sizes:
            lat = m["latency"].get(bs, {})
            ratio = m["ratio_vs_baseline"].get(bs)
            cells.append(
                {
                    "p50": lat.get("p50_ms"),
                    "ratio": ratio,
                    "class": ""
                    if ratio is None or m is baseline
                    else "ok"
                    if ratio < 0.95
                    else "bad"
                    if ratio > 1.05
                    else "",
                }
            )
        if m["parity"] is None:
            verdict, verdict_class = "baseline", "neutral"
        elif m["parity_passed"] is True:
            verdict, verdict_class = "match", "ok"
        elif m["parity_passed"] is False:
            verdict, verdict_class = "differs", "bad"
        else:
            verdict, verdict_class = NOT_MEASURED, "neutral"
        summary.append(
            {
                "label": m["label"],
                "kind": m["kind"],
                "color": m["color"],
                "size": fmt_bytes(m["size_bytes"]),
                "size_bytes": m["size_bytes"],
                "nodes": m["node_count"],
                "cells": cells,
                "floor": [m["ratio_vs_floor"].get(bs) for bs in batch_sizes],
                "verdict": verdict,
                "verdict_class": verdict_class,
                "encoded_inputs": m["encoded_inputs"],
            }
        )

    outputs: list[str] = []
    for m in models:
        for k in list((m["parity"] or {}).keys()) + list(m["quality"].keys()):
            if k not in outputs:
                outputs.append(k)
    candidates = [m for m in models if m is not baseline]
    parity_rows = []
    for out in outputs:
        cells = []
        for m in candidates:
            if m["parity"] is None or out not in m["parity"]:
                cells.append(
                    {
                        "text": "not returned" if m["parity"] is not None else NOT_MEASURED,
                        "class": "neutral",
                    }
                )
                continue
            diff = m["parity"][out]
            number = as_float(diff)
            ok = number is not None and (tolerance is None or number <= tolerance)
            cells.append({"text": fmt_diff(diff), "class": "ok" if ok else "bad"})
        parity_rows.append({"output": out, "cells": cells})
    quality_rows = []
    if any(m["quality"] for m in models):
        for out in outputs:
            base_q = (baseline or {}).get("quality", {}).get(out, {}) if baseline else {}
            cells = []
            for m in models:
                q = m["quality"].get(out)
                if not q:
                    cells.append(None)
                    continue
                auc, base_auc = q.get("auc"), base_q.get("auc")
                delta = None if auc is None or base_auc is None or m is baseline else auc - base_auc
                cells.append({"auc": auc, "logloss": q.get("logloss"), "delta": delta})
            if any(cells):
                quality_rows.append({"output": out, "cells": cells})

    memory_keys: list[str] = []
    for m in models:
        memory_keys += [k for k in (m["memory"] or {}) if k not in memory_keys]
    chart_map = {
        "latency": charts.compare_latency_chart(models, floor, batch_sizes, ids),
        "cdf": charts.compare_cdf_chart(models, floor, batch_sizes, ids),
        "throughput": charts.compare_throughput_chart(models, batch_sizes, ids),
        "floor": charts.compare_floor_chart(models, batch_sizes, ids),
        "size": charts.compare_size_chart(models, ids),
        "memory": charts.compare_memory_chart(models, ids),
    }
    machine = as_dict(c.get("machine"))
    return {
        "baseline": str(c.get("baseline") or (baseline or {}).get("path") or "") or None,
        "signature": c.get("signature"),
        "batch_sizes": batch_sizes,
        "requests": as_int(c.get("requests")),
        "rows": as_int(c.get("rows")),
        "tolerance": tolerance,
        "machine": fields(machine),
        "models": models,
        "summary": summary,
        "floor": [floor.get(bs, {}).get("p50_ms") for bs in batch_sizes],
        "has_floor": bool(floor),
        "candidates": [m["label"] for m in candidates],
        "parity_rows": parity_rows,
        "quality_models": [m["label"] for m in models],
        "quality_rows": quality_rows,
        "memory_keys": memory_keys,
        "memory_rows": [
            {"label": m["label"], "cells": [(m["memory"] or {}).get(k) for k in memory_keys]}
            for m in models
            if m["memory"]
        ],
        "onnx_profiles": [
            {"label": m["label"], "batches": m["onnx_profile"]} for m in models if m["onnx_profile"]
        ],
        "rebuild": rebuild_view(rebuild) if rebuild else None,
        "notes": [str(n) for n in as_list(c.get("notes"))],
        "charts": chart_map,
        "serving": serving_view(c.get("serving"), c.get("runtime")),
    }


def serving_view(data: Any, runtime: Any) -> dict[str, Any] | None:
    """The "Serving runtime" section: runtime, requests, concurrency, the ONNX call floor.

    Args:
        data: ``compare.json``'s ``serving`` (absent in older comparisons).
        runtime: ``compare.json``'s ``runtime``.

    Returns:
        The view, or ``None`` when there is nothing to show.
    """
    d = as_dict(data)
    if not d and not runtime:
        return None
    request = as_dict(d.get("request"))
    conc = as_dict(d.get("concurrency"))
    levels = sorted({as_int(n) for per in conc.values() for n in as_dict(per)} - {None})
    parity = [as_float(v) for v in as_dict(d.get("c_parity")).values()]
    return {
        "runtime": str(d.get("runtime") or runtime or "python"),
        "c_parity": max((p for p in parity if p is not None), default=None),
        "request_size": as_int(request.get("candidates")),
        "request_rows": [
            {
                "label": str(label),
                "p50_ms": as_float(as_dict(m).get("p50_ms")),
                "p99_ms": as_float(as_dict(m).get("p99_ms")),
                "per_s": as_float(as_dict(m).get("candidates_per_s")),
            }
            for label, m in as_dict(request.get("models")).items()
        ],
        "levels": levels,
        "concurrency_rows": [
            {
                "label": str(label),
                "cells": [as_dict(as_dict(per).get(str(n))) for n in levels],
            }
            for label, per in conc.items()
        ],
        "onnx_floor": {
            str(k): as_float(v) for k, v in as_dict(d.get("onnx_call_floor_ms")).items()
        },
    }


# --------------------------------------------------------------------------- index view
def index_view(
    entries: Sequence[Mapping[str, Any]], hrefs: Sequence[str | None]
) -> list[dict[str, Any]]:
    """Index rows: title, link (already made relative, or ``None``), kind, description, facts."""
    rows = []
    for entry, href in zip(entries, hrefs, strict=True):
        e = as_dict(entry)
        title = first_of(e, "title", "name", "label", "model") or href or "report"
        rows.append(
            {
                "title": str(title),
                "href": href,
                "target": str(first_of(e, "path", "href", "report") or ""),
                "kind": str(e.get("kind") or ""),
                "description": str(first_of(e, "description", "summary") or ""),
                "facts": fields(as_dict(first_of(e, "facts", "metrics"))),
            }
        )
    return rows
