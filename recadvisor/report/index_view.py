"""The landing page's view (``reports/index.html``): what each model gained.

Built from each model's ``compare.json`` and ``analysis.json`` dicts (their schema types,
read by exact key): the best exact variant (parity passed) with its p50 ratio to the baseline
per batch size, its size against the baseline's, its parity, the analysis' top three findings,
one chart across models, then the links to the full reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from recadvisor.report import charts
from recadvisor.report.charts import ChartIds
from recadvisor.report.formatting import severity_rank

if TYPE_CHECKING:
    from recadvisor.analysis.analyze import AnalysisDict
    from recadvisor.compare import ComparisonDict, ModelResultDict

TOP_FINDINGS = 3


class _IndexEntryRequired(TypedDict):
    name: str
    analysis: AnalysisDict
    comparison: ComparisonDict
    analysis_report: str
    compare_report: str


class IndexEntry(_IndexEntryRequired, total=False):
    """One model on the landing page.

    Attributes:
        name: the model's name (a folder name, e.g. ``dssm``).
        analysis: its ``analysis.json``.
        comparison: its ``compare.json`` (``models[0]`` is the baseline).
        analysis_report / compare_report: the HTML reports (absolute, or relative to the index).
        request_comparison: optional, a ``compare.json`` on ranking requests (``compare
            --request N``: one user x N candidates per call).
        request_report: its HTML report.
    """

    request_comparison: ComparisonDict
    request_report: str


def _geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.inf


def best_exact(comparison: ComparisonDict, kind: str | None = None) -> ModelResultDict | None:
    """The candidate whose parity passed with the lowest p50 ratios (geometric mean over the
    timed batch sizes), of one ``kind`` (``saved_model``, ``onnx``) when given; ``None`` when
    no candidate is exact."""
    batches = [str(bs) for bs in comparison["batch_sizes"]]
    exact = [
        m
        for m in comparison["models"][1:]
        if m["parity_passed"] is True and kind in (None, m["kind"])
    ]
    if not exact:
        return None
    return min(exact, key=lambda m: _geomean([m["ratio_vs_baseline"][b] for b in batches]))


def _worst_diff(model: ModelResultDict) -> float | None:
    parity = model["parity"]
    return max(parity.values()) if parity else None


def model_row(entry: IndexEntry, href: Callable[[str], str | None]) -> dict[str, Any]:
    """One model's figures for the page.

    Args:
        entry: the model's entry.
        href: turns a report path into a link relative to the index (``None``: not linked).

    Returns:
        ``{"name", "best", "variant", "ratios" (batch size -> ratio), "size_ratio", "size",
        "base_size", "parity", "exact_count", "candidates", "findings", "links"}``.
    """
    comparison, analysis = entry["comparison"], entry["analysis"]
    baseline = comparison["models"][0]
    request = entry.get("request_comparison")
    best = best_exact(comparison)
    best_tf = best_exact(comparison, "saved_model")
    findings = sorted(analysis["findings"], key=lambda f: severity_rank(f["severity"]))
    return {
        "name": entry["name"],
        "best": best is not None,
        "variant": best["label"] if best else None,
        "kind": best["kind"] if best else None,
        "ratios": {
            bs: best["ratio_vs_baseline"][str(bs)] if best else None
            for bs in comparison["batch_sizes"]
        },
        "saved_model": None
        if best_tf is None or best_tf is best
        else {
            "variant": best_tf["label"],
            "ratios": [
                (bs, best_tf["ratio_vs_baseline"][str(bs)]) for bs in comparison["batch_sizes"]
            ],
        },
        "base_p50": {
            bs: baseline["latency"][str(bs)]["p50_ms"] for bs in comparison["batch_sizes"]
        },
        "size_ratio": best["size_bytes"] / baseline["size_bytes"]
        if best and baseline["size_bytes"]
        else None,
        "size": best["size_bytes"] if best else None,
        "base_size": baseline["size_bytes"],
        "parity": _worst_diff(best) if best else None,
        "exact_count": sum(1 for m in comparison["models"][1:] if m["parity_passed"] is True),
        "candidates": len(comparison["models"]) - 1,
        "findings": [
            {"severity": f["severity"], "kind": f["kind"], "message": f["message"]}
            for f in findings[:TOP_FINDINGS]
        ],
        "finding_count": len(findings),
        "request": None if request is None else request_row(request),
        "links": [
            {
                "title": "analysis",
                "target": entry["analysis_report"],
                "href": href(entry["analysis_report"]),
            },
            {
                "title": "comparison",
                "target": entry["compare_report"],
                "href": href(entry["compare_report"]),
            },
            *(
                [
                    {
                        "title": "per-request comparison",
                        "target": entry["request_report"],
                        "href": href(entry["request_report"]),
                    }
                ]
                if "request_report" in entry
                else []
            ),
        ],
    }


def request_row(comparison: ComparisonDict) -> dict[str, Any] | None:
    """The best exact variant on ranking requests: its p50 ratio per request, the request
    size, and candidates scored per second against the baseline's (``None``: none exact)."""
    best = best_exact(comparison)
    if best is None:
        return None
    (size,) = comparison["batch_sizes"]
    figures = comparison["serving"]["request"]["models"]
    base = comparison["models"][0]["label"]
    return {
        "variant": best["label"],
        "kind": best["kind"],
        "candidates": size,
        "ratio": best["ratio_vs_baseline"][str(size)],
        "per_s": figures[best["label"]]["candidates_per_s"],
        "base_per_s": figures[base]["candidates_per_s"],
    }


def index_view(entries: Sequence[IndexEntry], href: Callable[[str], str | None]) -> dict[str, Any]:
    """Everything ``index.html.j2`` shows.

    Args:
        entries: one per model.
        href: report path -> link relative to the index, or ``None`` for a non-local target.

    Returns:
        ``{"rows", "batch_sizes", "charts": {"gains": Chart | None}}``.
    """
    rows = [model_row(e, href) for e in entries]
    batch_sizes = sorted({bs for e in entries for bs in e["comparison"]["batch_sizes"]})
    ids = ChartIds()
    return {
        "rows": rows,
        "batch_sizes": batch_sizes,
        "has_request": any("request_comparison" in e for e in entries),
        "charts": {"gains": charts.index_gain_chart(rows, batch_sizes, ids)},
    }
