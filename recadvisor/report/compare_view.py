"""The comparison report's view: a ``compare.json`` dict (:class:`~recadvisor.compare.
ComparisonDict`) plus an optional ``rebuild.json`` dict (:class:`~recadvisor.rebuild.RebuildDict`).

Both are read by their schema's exact keys: a renamed field raises ``KeyError`` here (and fails
the tests) instead of rendering as "not measured".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from recadvisor.report import charts
from recadvisor.report.charts import ChartIds
from recadvisor.report.formatting import (
    NOT_MEASURED,
    fields,
    fmt_bytes,
    fmt_diff,
    format_value,
    key_label,
)

if TYPE_CHECKING:
    from recadvisor.analysis.onnx_profile import OnnxNodeTimeDict, OnnxProfileDict
    from recadvisor.bench import LatencySummaryDict
    from recadvisor.compare import ComparisonDict, ModelResultDict
    from recadvisor.rebuild import RebuildDict
    from recadvisor.rewrite.pipeline import PassRecordDict


# --------------------------------------------------------------------------- comparison view
def _latency_summary(d: LatencySummaryDict) -> dict[str, Any]:
    return {
        "p50_ms": d["p50_ms"],
        "p90_ms": d["p90_ms"],
        "p99_ms": d["p99_ms"],
        "mean_ms": d["mean_ms"],
        "rows_per_s": d["rows_per_s"],
        "calls": d["calls"],
        "samples_ms": list(d["samples_ms"]),
    }


def _by_batch(values: Mapping[str, Any]) -> dict[int, Any]:
    """``{"1": x, "256": y}`` (JSON keys are strings) -> ``{1: x, 256: y}``."""
    return {int(bs): v for bs, v in values.items()}


def model_view(data: ModelResultDict, index: int) -> dict[str, Any]:
    """One model of a comparison, with figures by integer batch size."""
    return {
        "label": data["label"],
        "kind": data["kind"],
        "path": data["path"],
        "size_bytes": data["size_bytes"],
        "node_count": data["node_count"],
        "latency": {bs: _latency_summary(s) for bs, s in _by_batch(data["latency"]).items()},
        "ratio_vs_baseline": _by_batch(data["ratio_vs_baseline"]),
        "ratio_vs_floor": _by_batch(data["ratio_vs_floor"]),
        "parity": data["parity"],
        "parity_passed": data["parity_passed"],
        "quality": data["quality"],
        "memory": data["memory"],
        "encoded_inputs": list(data["encoded_inputs"]),
        "onnx_profile": onnx_profile_view(data["onnx_profile"]),
        "color": charts.color_for(index),
    }


ONNX_PROFILE_ROWS = 6


def _onnx_times(entries: list[OnnxNodeTimeDict], rows: int) -> list[dict[str, Any]]:
    return [
        {
            "name": e["name"],
            "op_type": e["op_type"],
            "nodes": e["nodes"],
            "us": e["us_per_call"],
            "share": e["share"],
        }
        for e in entries[:rows]
    ]


def onnx_profile_view(data: OnnxProfileDict | None) -> list[dict[str, Any]]:
    """A model's ``onnx_profile`` as rows per batch size: top op types and nodes by share."""
    if data is None:
        return []
    return [
        {
            "batch_size": bs,
            "run_us": b["run_us"],
            "kernel_fraction": b["kernel_fraction"],
            "node_count": b["node_count"],
            "op_types": _onnx_times(b["per_op_type"], ONNX_PROFILE_ROWS),
            "top_nodes": _onnx_times(b["top_nodes"], ONNX_PROFILE_ROWS),
        }
        for bs, b in sorted(_by_batch(data["batches"]).items())
    ]


# pipeline status -> (label, css class)
STATUS_LABELS = {
    "applied": ("applied", "ok"),
    "refused": ("refused", "neutral"),
    "rolled_back": ("rolled back", "bad"),
    "failed": ("failed", "bad"),
    "disabled": ("disabled", "neutral"),
}


def pass_record_view(d: PassRecordDict) -> dict[str, Any]:
    """One pipeline record of ``rebuild.json`` for the pass table."""
    parity = d["parity"]
    changes = format_value("stats", d["stats"]) if d["stats"] else ""
    if d["nodes_before"] != d["nodes_after"]:
        changes = f"nodes {d['nodes_before']} -> {d['nodes_after']}" + (
            f"; {changes}" if changes else ""
        )
    notes = list(d["notes"])
    if d["gates"]:
        notes.append("accuracy gates: " + format_value("gates", d["gates"]))
    status, status_class = STATUS_LABELS[d["status"]]
    return {
        "name": d["name"],
        "lines": ([d["reason"]] if d["reason"] else []) + notes,
        "status": status,
        "status_class": status_class,
        "reason": d["reason"] or None,
        "exactness": d["exactness"] or None,
        "parity": "" if parity is None else format_value("max_abs_diff", parity["max_abs_diff"]),
        "parity_class": "" if parity is None else ("ok" if parity["passed"] else "bad"),
        "stats": changes,
        "notes": notes,
        "seconds": d["seconds"],
    }


def pass_records(rebuild: RebuildDict) -> list[dict[str, Any]]:
    """The pipeline's per-pass records of a ``rebuild.json`` dict, for the pass table."""
    return [pass_record_view(r) for r in rebuild["passes"]["passes"]]


def rebuild_view(rebuild: RebuildDict) -> dict[str, Any]:
    """``rebuild.json`` -> pass table, counts by status and the main facts."""
    records = pass_records(rebuild)
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    parity = rebuild["parity"]
    nodes = rebuild["nodes"]
    facts = [
        ("model", rebuild["model"]["path"]),
        ("signature", rebuild["model"]["signature"]),
        ("output", rebuild["output"]["dir"]),
        ("preset", rebuild["plan"]["preset"]),
        ("passed", format_value("passed", rebuild["passed"])),
        ("parity of the exported model", parity["exported_vs_original"]["summary"]),
        (
            "nodes",
            f"{nodes['original']} stored, {nodes['frozen']} frozen, {nodes['final']} rebuilt",
        ),
        ("size", fmt_bytes(rebuild["sizes"]["saved_model_bytes"])),
        ("sample data", f"{rebuild['data']['source']}, {rebuild['data']['rows']} rows"),
        *((key_label("note"), n) for n in rebuild["notes"]),
    ]
    return {"passes": records, "counts": counts, "facts": facts}


def comparison_view(
    comparison: ComparisonDict, rebuild: RebuildDict | None = None
) -> dict[str, Any]:
    """Everything ``compare.html.j2`` shows, from a ``compare.json`` dict.

    Args:
        comparison: the comparison (``models[0]`` is the baseline).
        rebuild: an optional ``rebuild.json`` dict (passes applied/refused/rolled back).

    Returns:
        A dict of plain values and :class:`~recadvisor.report.charts.Chart` objects.
    """
    c = comparison
    ids = ChartIds()
    models = [model_view(m, i) for i, m in enumerate(c["models"])]
    floor = {bs: _latency_summary(s) for bs, s in _by_batch(c["floor"]).items()}
    batch_sizes = list(c["batch_sizes"])
    tolerance = c["tolerance"]
    baseline = models[0] if models else None

    summary = []
    for m in models:
        cells = []
        for bs in batch_sizes:
            lat = m["latency"][bs]
            ratio = m["ratio_vs_baseline"][bs]
            cells.append(
                {
                    "p50": lat["p50_ms"],
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
                "floor": [m["ratio_vs_floor"][bs] for bs in batch_sizes],
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
            cells.append({"text": fmt_diff(diff), "class": "ok" if diff <= tolerance else "bad"})
        parity_rows.append({"output": out, "cells": cells})
    quality_rows = []
    if any(m["quality"] for m in models):
        for out in outputs:
            base_q = baseline["quality"].get(out) if baseline else None
            cells = []
            for m in models:
                q = m["quality"].get(out)
                if not q:
                    cells.append(None)
                    continue
                delta = None if base_q is None or m is baseline else q["auc"] - base_q["auc"]
                cells.append({"auc": q["auc"], "logloss": q["logloss"], "delta": delta})
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
    return {
        "baseline": c["baseline"],
        "signature": c["signature"],
        "batch_sizes": batch_sizes,
        "requests": c["requests"],
        "rows": c["rows"],
        "tolerance": tolerance,
        "machine": fields(c["machine"]),
        "models": models,
        "summary": summary,
        "floor": [floor[bs]["p50_ms"] for bs in batch_sizes],
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
        "notes": list(c["notes"]),
        "charts": chart_map,
        "serving": serving_view(c["serving"], c["runtime"]),
    }


def serving_view(data: dict[str, Any], runtime: str) -> dict[str, Any] | None:
    """The "Serving runtime" section: runtime, requests, concurrency, the ONNX call floor.

    Args:
        data: ``compare.json``'s ``serving`` (``request``, ``concurrency``, ``c_parity`` and
            ``onnx_call_floor_ms`` only when measured).
        runtime: ``compare.json``'s ``runtime``.

    Returns:
        The view, or ``None`` when there is nothing to show.
    """
    if not data and runtime == "python":
        return None
    request = data.get("request") or {"candidates": None, "models": {}}
    conc = data.get("concurrency") or {}
    levels = sorted({int(n) for per in conc.values() for n in per})
    parity = list((data.get("c_parity") or {}).values())
    return {
        "runtime": data.get("runtime", runtime),
        "c_parity": max(parity, default=None),
        "request_size": request["candidates"],
        "request_rows": [
            {
                "label": label,
                "p50_ms": m["p50_ms"],
                "p99_ms": m["p99_ms"],
                "per_s": m["candidates_per_s"],
            }
            for label, m in request["models"].items()
        ],
        "levels": levels,
        "concurrency_rows": [
            {"label": label, "cells": [per.get(str(n), {}) for n in levels]}
            for label, per in conc.items()
        ],
        "onnx_floor": dict(data.get("onnx_call_floor_ms") or {}),
    }
