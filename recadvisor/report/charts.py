"""Plotly figures for the HTML reports.

Each builder takes plain, already-normalized Python data (see
:mod:`recadvisor.report.analysis_view` and :mod:`recadvisor.report.compare_view`) and returns a
:class:`Chart`, or ``None`` when there is nothing to draw (the template then says "not
measured"). A chart carries its figure as JSON that is safe to embed in a
``<script type="application/json">`` element; the page draws it with the plotly.js bundle that
:func:`plotly_js` inlines once per report (no CDN, no network).

Every text that comes from a model (node, feature, op, table and model names) goes through
:func:`plot_text`: plotly renders a subset of HTML in labels, so names are entity-escaped and a
node named ``<b>x</b>`` or ``<script>`` shows as typed.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# One color per model/series, stable across the charts of a report.
PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#E45756",
    "#72B7B2",
    "#B279A2",
    "#FF9DA6",
    "#9D755D",
    "#BAB0AC",
    "#EECA3B",
)
PERCENTILE_COLORS = {"p50": "#4C78A8", "p90": "#F58518", "p99": "#E45756"}
STAGE_COLORS = {
    "string/lookup": "#E45756",
    "embedding gather": "#F58518",
    "dense/MLP": "#4C78A8",
    "other": "#BAB0AC",
}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
# plotly config: no logo link, no cloud export; charts resize with the page.
PLOT_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "displayModeBar": "hover",
    "modeBarButtonsToRemove": ["sendDataToCloud", "select2d", "lasso2d"],
}
MAX_CDF_POINTS = 2000


@dataclass(frozen=True)
class Chart:
    """One figure ready for a template.

    Attributes:
        chart_id: the id of the ``<div>`` the figure is drawn into (unique in a report).
        title: heading shown above the chart.
        figure_json: ``{"data", "layout", "config"}`` as JSON with ``<``, ``>`` and ``&``
            escaped, safe inside a ``<script>`` element.
        height: figure height in pixels (the div reserves it before plotly runs).
        caption: one sentence under the chart saying how to read it.
    """

    chart_id: str
    title: str
    figure_json: str
    height: int
    caption: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the figure decoded)."""
        return {
            "chart_id": self.chart_id,
            "title": self.title,
            "height": self.height,
            "caption": self.caption,
            "figure": json.loads(self.figure_json),
        }


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped with the ``plotly`` package, safe inside ``<script>``."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


def plot_text(value: Any) -> str:
    """A model-supplied name as plotly label text (entities escaped, shown as typed)."""
    return html.escape(str(value), quote=False)


def script_safe_json(data: Any) -> str:
    """JSON that can sit inside ``<script type="application/json">`` without ending it early."""
    from plotly.utils import PlotlyJSONEncoder

    text = json.dumps(data, cls=PlotlyJSONEncoder, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


class ChartIds:
    """Hands out ``chart-1``, ``chart-2``... so every figure in one report has its own id."""

    def __init__(self, prefix: str = "chart") -> None:
        self._prefix = prefix
        self._next = 0

    def next(self) -> str:
        """The next unused id."""
        self._next += 1
        return f"{self._prefix}-{self._next}"


def _finish(
    fig: Any, ids: ChartIds, title: str, height: int, caption: str = "", panels: bool = False
) -> Chart:
    """Apply the report style and serialize. ``panels``: subplots with titles (legend higher)."""
    fig.update_layout(
        template="plotly_white",
        height=height,
        autosize=True,
        margin={"l": 60, "r": 20, "t": 80 if panels else 40, "b": 50},
        font={"family": FONT, "size": 12},
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.12 if panels else 1.02,
            "xanchor": "left",
            "x": 0,
        },
        hoverlabel={"namelength": -1},
    )
    spec = fig.to_plotly_json()
    payload = {
        "data": spec.get("data", []),
        "layout": spec.get("layout", {}),
        "config": PLOT_CONFIG,
    }
    return Chart(ids.next(), title, script_safe_json(_finite(payload)), height, caption)


def _finite(value: Any) -> Any:
    """NaN/inf -> None, recursively (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    return value


def _axis_type(values: Sequence[Any]) -> str:
    """``log`` when positive values span more than two decades, else ``linear``."""
    positive = [float(v) for v in values if isinstance(v, (int, float)) and v > 0]
    if len(positive) >= 2 and max(positive) / min(positive) > 100:
        return "log"
    return "linear"


def color_for(index: int) -> str:
    """The palette color of the ``index``-th series."""
    return PALETTE[index % len(PALETTE)]


# --------------------------------------------------------------------------- analysis charts
def op_counts_chart(
    rows: Sequence[Mapping[str, Any]], ids: ChartIds, top: int = 18
) -> Chart | None:
    """Node counts by op type, as stored vs after freezing (horizontal grouped bars).

    Args:
        rows: ``{"op", "stored", "frozen"}`` (counts may be ``None``), most frequent first.
        ids: the report's chart id source.
        top: op types shown.
    """
    import plotly.graph_objects as go

    rows = [r for r in rows if (r.get("stored") or 0) or (r.get("frozen") or 0)][:top]
    if not rows:
        return None
    rows = list(reversed(rows))  # largest at the top of a horizontal bar chart
    labels = [plot_text(r["op"]) for r in rows]
    fig = go.Figure()
    if any(r.get("stored") is not None for r in rows):
        fig.add_bar(
            y=labels,
            x=[r.get("stored") or 0 for r in rows],
            orientation="h",
            name="as stored (graph + functions)",
            marker_color=PALETTE[8],
        )
    if any(r.get("frozen") is not None for r in rows):
        fig.add_bar(
            y=labels,
            x=[r.get("frozen") or 0 for r in rows],
            orientation="h",
            name="frozen serving graph",
            marker_color=PALETTE[0],
        )
    fig.update_layout(barmode="group", xaxis_title="nodes", yaxis={"automargin": True})
    height = 90 + 12 * len(rows) * max(1, len(fig.data))
    return _finish(
        fig,
        ids,
        f"Nodes by op type (top {len(rows)})",
        max(260, min(height, 900)),
        "Stored counts include every function in the SavedModel; the frozen graph "
        "is what the serving signature runs.",
    )


def cost_sunburst(
    leaves: Sequence[tuple[tuple[str, ...], float]],
    levels: Sequence[str],
    ids: ChartIds,
    batch_size: int,
) -> Chart | None:
    """Op time as feature -> stage -> op type (a sunburst; click a ring to zoom).

    Args:
        leaves: ``(path, share)`` with one path element per level and shares of the mapped op
            time (from :func:`recadvisor.report.analysis_view.sunburst_leaves`).
        levels: the level names, e.g. ``("feature", "stage", "op type")``.
        ids: the report's chart id source.
        batch_size: the batch size the shares were measured at (for the title).
    """
    import plotly.graph_objects as go

    totals: dict[tuple[str, ...], float] = {}
    for path, share in leaves:
        if share is None or share <= 0 or not path:
            continue
        for depth in range(1, len(path) + 1):
            totals[path[:depth]] = totals.get(path[:depth], 0.0) + float(share)
    if not totals:
        return None
    stage_level = list(levels).index("stage") if "stage" in levels else None
    roots = sorted({p[0] for p in totals}, key=lambda r: -totals[(r,)])
    root_color = {r: color_for(i) for i, r in enumerate(roots)}
    order = sorted(totals, key=lambda p: (roots.index(p[0]), len(p), -totals[p], p))
    index = {path: f"n{i}" for i, path in enumerate(order)}
    ids_, labels, parents, values, colors = [], [], [], [], []
    for path in order:
        ids_.append(index[path])
        labels.append(plot_text(path[-1]))
        parents.append("" if len(path) == 1 else index[path[:-1]])
        values.append(100.0 * totals[path])
        if stage_level is not None and len(path) > stage_level:
            colors.append(STAGE_COLORS.get(path[stage_level], PALETTE[9]))
        else:
            colors.append(root_color[path[0]])
    fig = go.Figure(
        go.Sunburst(
            ids=ids_,
            labels=labels,
            parents=parents,
            values=values,
            branchvalues="total",
            marker={"colors": colors, "line": {"color": "#fff", "width": 1}},
            hovertemplate="%{label}<br>%{value:.1f}% of op time<extra></extra>",
            insidetextorientation="radial",
            maxdepth=len(levels) or None,
        )
    )
    fig.update_layout(margin={"l": 10, "r": 10, "t": 30, "b": 10})
    rings = " -> ".join(levels)
    return _finish(
        fig,
        ids,
        f"Where the op time goes at batch {batch_size}",
        480,
        f"Rings from the center: {rings}. Shares of the op time mapped to graph "
        "nodes; click a segment to zoom in, click the center to zoom out.",
    )


def stage_share_chart(
    rows: Sequence[tuple[int, Mapping[str, float]]], ids: ChartIds
) -> Chart | None:
    """Share of op time per serving stage at each batch size (stacked horizontal bars).

    Args:
        rows: ``(batch_size, {stage: share})``.
        ids: the report's chart id source.
    """
    import plotly.graph_objects as go

    rows = [(bs, shares) for bs, shares in rows if shares and sum(shares.values()) > 0]
    if not rows:
        return None
    stages = list(STAGE_COLORS)
    for _, shares in rows:
        stages += [s for s in shares if s not in stages]
    fig = go.Figure()
    y = [f"batch {bs}" for bs, _ in rows]
    for stage in stages:
        fig.add_bar(
            y=y,
            x=[100.0 * float(shares.get(stage, 0.0)) for _, shares in rows],
            orientation="h",
            name=plot_text(stage),
            marker_color=STAGE_COLORS.get(stage, PALETTE[9]),
            hovertemplate="%{y}: %{x:.1f}%<extra>" + plot_text(stage) + "</extra>",
        )
    fig.update_layout(
        barmode="stack",
        xaxis={"title": "% of op time", "range": [0, 100]},
        yaxis={"autorange": "reversed"},
    )
    return _finish(fig, ids, "Op time by serving stage", 120 + 45 * len(rows))


def profile_latency_chart(rows: Sequence[Mapping[str, Any]], ids: ChartIds) -> Chart | None:
    """End-to-end latency percentiles per batch size (grouped bars).

    Args:
        rows: ``{"batch_size", "p50_ms", "p90_ms", "p99_ms"}``.
        ids: the report's chart id source.
    """
    import plotly.graph_objects as go

    rows = [r for r in rows if r.get("p50_ms") is not None]
    if not rows:
        return None
    x = [f"batch {r['batch_size']}" for r in rows]
    fig = go.Figure()
    for pct in ("p50", "p90", "p99"):
        fig.add_bar(
            x=x,
            y=[r.get(f"{pct}_ms") for r in rows],
            name=pct,
            marker_color=PERCENTILE_COLORS[pct],
            hovertemplate="%{x}: %{y:.3f} ms<extra>" + pct + "</extra>",
        )
    fig.update_layout(barmode="group", yaxis_title="ms per call")
    return _finish(
        fig,
        ids,
        "Latency of the original model",
        320,
        "Measured without the profiler, one call at a time after warm-up.",
    )


def energy_chart(tables: Sequence[Mapping[str, Any]], ids: ChartIds) -> Chart | None:
    """Cumulative singular-value energy per embedding table (lines).

    Args:
        tables: ``{"name", "energy": [cumulative fraction for 1..k dims]}``.
        ids: the report's chart id source.
    """
    import plotly.graph_objects as go

    tables = [t for t in tables if t.get("energy")]
    if not tables:
        return None
    fig = go.Figure()
    for i, t in enumerate(tables):
        energy = list(t["energy"])
        fig.add_scatter(
            x=list(range(1, len(energy) + 1)),
            y=[100.0 * e for e in energy],
            mode="lines+markers",
            name=plot_text(t["name"]),
            line={"color": color_for(i)},
            hovertemplate="%{x} dims: %{y:.1f}%<extra>" + plot_text(t["name"]) + "</extra>",
        )
    fig.add_hline(
        y=99,
        line_dash="dot",
        line_color="#888",
        annotation_text="99%",
        annotation_position="bottom right",
    )
    fig.update_layout(
        xaxis_title="dimensions kept", yaxis={"title": "% of energy", "range": [0, 101]}
    )
    return _finish(
        fig,
        ids,
        "Singular-value energy per table",
        340,
        "How much of each table's energy (sum of squared singular values) the first "
        "k dimensions hold; a curve reaching 99% early means the dim could shrink.",
    )


def rows_used_chart(tables: Sequence[Mapping[str, Any]], ids: ChartIds) -> Chart | None:
    """Rows per embedding table vs rows the sample data hits (grouped bars, log scale).

    Args:
        tables: ``{"name", "rows", "rows_hit"}``.
        ids: the report's chart id source.
    """
    import plotly.graph_objects as go

    tables = [t for t in tables if t.get("rows")]
    if not tables or all(t.get("rows_hit") is None for t in tables):
        return None
    names = [plot_text(t["name"]) for t in tables]
    fig = go.Figure()
    fig.add_bar(x=names, y=[t["rows"] for t in tables], name="rows", marker_color=PALETTE[8])
    fig.add_bar(
        x=names,
        y=[t.get("rows_hit") for t in tables],
        name="rows hit by the data",
        marker_color=PALETTE[0],
    )
    values = [t["rows"] for t in tables] + [t.get("rows_hit") for t in tables]
    fig.update_layout(
        barmode="group",
        yaxis={"title": "rows", "type": _axis_type(values)},
        xaxis={"automargin": True},
    )
    return _finish(fig, ids, "Rows used per table", 340)


def distinct_values_chart(columns: Sequence[Mapping[str, Any]], ids: ChartIds) -> Chart | None:
    """Distinct values per feature column (bars, log scale).

    Args:
        columns: ``{"name", "distinct"}``.
        ids: the report's chart id source.
    """
    import plotly.graph_objects as go

    columns = [c for c in columns if c.get("distinct")]
    if not columns:
        return None
    fig = go.Figure(
        go.Bar(
            x=[plot_text(c["name"]) for c in columns],
            y=[c["distinct"] for c in columns],
            marker_color=PALETTE[0],
            hovertemplate="%{x}: %{y:,} distinct<extra></extra>",
        )
    )
    fig.update_layout(
        yaxis={"title": "distinct values", "type": _axis_type([c["distinct"] for c in columns])},
        xaxis={"automargin": True},
    )
    return _finish(fig, ids, "Distinct values per feature", 320)


# --------------------------------------------------------------------------- comparison charts
def _subplot_titles(batch_sizes: Sequence[int]) -> list[str]:
    return [f"batch {bs}" for bs in batch_sizes]


def compare_latency_chart(
    models: Sequence[Mapping[str, Any]],
    floor: Mapping[int, Any],
    batch_sizes: Sequence[int],
    ids: ChartIds,
) -> Chart | None:
    """p50/p90/p99 bars per model, one panel per batch size, the call floor as a dotted line.

    Args:
        models: ``{"label", "latency": {batch: {"p50_ms", "p90_ms", "p99_ms"}}}``.
        floor: batch -> ``{"p50_ms"...}`` of the trivial signature.
        batch_sizes: panels, in order.
        ids: the report's chart id source.
    """
    from plotly.subplots import make_subplots

    batch_sizes = [
        bs
        for bs in batch_sizes
        if any(m["latency"].get(bs, {}).get("p50_ms") is not None for m in models)
    ]
    if not batch_sizes or not models:
        return None
    fig = make_subplots(
        rows=1,
        cols=len(batch_sizes),
        subplot_titles=_subplot_titles(batch_sizes),
        horizontal_spacing=0.06,
    )
    labels = [plot_text(m["label"]) for m in models]
    for col, bs in enumerate(batch_sizes, start=1):
        for pct in ("p50", "p90", "p99"):
            fig.add_bar(
                x=labels,
                y=[m["latency"].get(bs, {}).get(f"{pct}_ms") for m in models],
                name=pct,
                legendgroup=pct,
                showlegend=col == 1,
                marker_color=PERCENTILE_COLORS[pct],
                row=1,
                col=col,
                hovertemplate="%{x}: %{y:.3f} ms<extra>" + pct + "</extra>",
            )
        floor_p50 = (floor.get(bs) or {}).get("p50_ms")
        if floor_p50 is not None:
            fig.add_hline(
                y=floor_p50,
                line_dash="dot",
                line_color="#555",
                row=1,
                col=col,
                annotation_text="call floor",
                annotation_position="top left",
                annotation_font_size=10,
            )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="ms per call", row=1, col=1)
    fig.update_xaxes(automargin=True, tickangle=-20)
    return _finish(
        fig,
        ids,
        "Latency per batch size",
        430,
        "Bars: p50/p90/p99 of single calls, models interleaved; dotted line: the p50 "
        "of a trivial signature with the same inputs (the call floor).",
        panels=True,
    )


def _cdf_points(samples: Sequence[float]) -> tuple[list[float], list[float]]:
    values = sorted(float(v) for v in samples if v is not None)
    n = len(values)
    if n > MAX_CDF_POINTS:  # keep the shape, drop points: evenly spaced ranks
        step = n / MAX_CDF_POINTS
        idx = sorted({min(n - 1, int(i * step)) for i in range(MAX_CDF_POINTS)} | {n - 1})
    else:
        idx = list(range(n))
    return [values[i] for i in idx], [(i + 1) / n for i in idx]


def compare_cdf_chart(
    models: Sequence[Mapping[str, Any]],
    floor: Mapping[int, Any],
    batch_sizes: Sequence[int],
    ids: ChartIds,
) -> Chart | None:
    """Latency CDF per model, one panel per batch size.

    Uses every timed call (``samples_ms``) when the comparison kept them, else the p50/p90/p99
    points (drawn dashed, and said so in the legend).

    Args:
        models: ``{"label", "latency": {batch: {"samples_ms" or p50/p90/p99}}}``.
        floor: batch -> the call floor's latency summary.
        batch_sizes: panels, in order.
        ids: the report's chart id source.
    """
    from plotly.subplots import make_subplots

    series = [(m["label"], m["latency"]) for m in models]
    series.append(("(call floor)", {bs: floor.get(bs) or {} for bs in batch_sizes}))
    batch_sizes = [
        bs
        for bs in batch_sizes
        if any(
            lat.get(bs, {}).get("p50_ms") is not None or lat.get(bs, {}).get("samples_ms")
            for _, lat in series
        )
    ]
    if not batch_sizes or not models:
        return None
    fig = make_subplots(
        rows=1,
        cols=len(batch_sizes),
        subplot_titles=_subplot_titles(batch_sizes),
        horizontal_spacing=0.06,
        shared_yaxes=True,
    )
    only_points = False
    for i, (label, latency) in enumerate(series):
        is_floor = i == len(series) - 1
        color = "#555" if is_floor else color_for(i)
        for col, bs in enumerate(batch_sizes, start=1):
            summary = latency.get(bs) or {}
            samples = summary.get("samples_ms") or []
            if samples:
                x, y = _cdf_points(samples)
                dash = "dot" if is_floor else "solid"
                mode = "lines"
            else:
                pts = [
                    (summary.get(f"{p}_ms"), q)
                    for p, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
                ]
                pts = [(v, q) for v, q in pts if v is not None]
                if not pts:
                    continue
                x, y = [v for v, _ in pts], [q for _, q in pts]
                dash, mode = "dash", "lines+markers"
                only_points = True
            fig.add_scatter(
                x=x,
                y=y,
                mode=mode,
                name=plot_text(label),
                legendgroup=f"m{i}",
                showlegend=col == 1,
                row=1,
                col=col,
                line={"color": color, "dash": dash, "shape": "hv"},
                hovertemplate="%{x:.3f} ms: %{y:.1%} of calls<extra>"
                + plot_text(label)
                + "</extra>",
            )
    fig.update_yaxes(range=[0, 1.01], tickformat=".0%")
    fig.update_yaxes(title_text="calls at or below", row=1, col=1)
    fig.update_xaxes(title_text="ms per call")
    caption = "Share of calls at or below each latency."
    if only_points:
        caption += " Dashed lines join only the p50/p90/p99 points (the raw samples were not kept)."
    return _finish(fig, ids, "Latency distribution (CDF)", 400, caption, panels=True)


def compare_throughput_chart(
    models: Sequence[Mapping[str, Any]], batch_sizes: Sequence[int], ids: ChartIds
) -> Chart | None:
    """Rows per second at the p50 latency, per batch size (grouped bars, log scale).

    Args:
        models: ``{"label", "latency": {batch: {"rows_per_s"}}}``.
        batch_sizes: groups, in order.
        ids: the report's chart id source.
    """
    import plotly.graph_objects as go

    if not any(m["latency"].get(bs, {}).get("rows_per_s") for m in models for bs in batch_sizes):
        return None
    fig = go.Figure()
    x = [f"batch {bs}" for bs in batch_sizes]
    for i, m in enumerate(models):
        fig.add_bar(
            x=x,
            y=[m["latency"].get(bs, {}).get("rows_per_s") for bs in batch_sizes],
            name=plot_text(m["label"]),
            marker_color=color_for(i),
            hovertemplate="%{x}: %{y:,.0f} rows/s<extra>" + plot_text(m["label"]) + "</extra>",
        )
    values = [m["latency"].get(bs, {}).get("rows_per_s") for m in models for bs in batch_sizes]
    fig.update_layout(
        barmode="group", yaxis={"title": "rows per second", "type": _axis_type(values)}
    )
    return _finish(fig, ids, "Throughput", 340, "Batch size divided by the p50 latency.")


def compare_floor_chart(
    models: Sequence[Mapping[str, Any]], batch_sizes: Sequence[int], ids: ChartIds
) -> Chart | None:
    """p50 as a multiple of the call floor, per model and batch size.

    Args:
        models: ``{"label", "ratio_vs_floor": {batch: ratio}}``.
        batch_sizes: groups, in order.
        ids: the report's chart id source.
    """
    import plotly.graph_objects as go

    if not any(m["ratio_vs_floor"].get(bs) is not None for m in models for bs in batch_sizes):
        return None
    fig = go.Figure()
    x = [f"batch {bs}" for bs in batch_sizes]
    for i, m in enumerate(models):
        fig.add_bar(
            x=x,
            y=[m["ratio_vs_floor"].get(bs) for bs in batch_sizes],
            name=plot_text(m["label"]),
            marker_color=color_for(i),
            hovertemplate="%{x}: %{y:.2f}x the floor<extra>" + plot_text(m["label"]) + "</extra>",
        )
    fig.add_hline(
        y=1.0,
        line_dash="dot",
        line_color="#555",
        annotation_text="call floor",
        annotation_position="top left",
    )
    fig.update_layout(
        barmode="group", yaxis={"title": "p50 / call-floor p50", "rangemode": "tozero"}
    )
    return _finish(
        fig,
        ids,
        "Distance to the call floor",
        340,
        "1.0 means the model costs no more than an empty call with the same inputs: "
        "no graph rewrite can go lower in TensorFlow-from-Python.",
    )


def compare_size_chart(models: Sequence[Mapping[str, Any]], ids: ChartIds) -> Chart | None:
    """Size on disk and node count per model (two panels).

    Args:
        models: ``{"label", "size_bytes", "node_count"}``.
        ids: the report's chart id source.
    """
    from plotly.subplots import make_subplots

    has_size = any(m.get("size_bytes") for m in models)
    has_nodes = any(m.get("node_count") for m in models)
    if not models or not (has_size or has_nodes):
        return None
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=["size on disk (MiB)", "nodes"], horizontal_spacing=0.1
    )
    labels = [plot_text(m["label"]) for m in models]
    colors = [color_for(i) for i in range(len(models))]
    fig.add_bar(
        x=labels,
        y=[
            (m.get("size_bytes") or 0) / 2**20 if m.get("size_bytes") is not None else None
            for m in models
        ],
        marker_color=colors,
        showlegend=False,
        row=1,
        col=1,
        hovertemplate="%{x}: %{y:.2f} MiB<extra></extra>",
    )
    fig.add_bar(
        x=labels,
        y=[m.get("node_count") for m in models],
        marker_color=colors,
        showlegend=False,
        row=1,
        col=2,
        hovertemplate="%{x}: %{y} nodes<extra></extra>",
    )
    fig.update_xaxes(automargin=True, tickangle=-20)
    return _finish(fig, ids, "Size and node count", 360, panels=True)


def compare_memory_chart(models: Sequence[Mapping[str, Any]], ids: ChartIds) -> Chart | None:
    """Memory per model (grouped bars per measured figure).

    Args:
        models: ``{"label", "memory": {name: MiB}}``.
        ids: the report's chart id source.
    """
    import plotly.graph_objects as go

    keys: list[str] = []
    for m in models:
        for k, v in (m.get("memory") or {}).items():
            if isinstance(v, (int, float)) and k not in keys:
                keys.append(k)
    if not keys:
        return None
    fig = go.Figure()
    labels = [plot_text(m["label"]) for m in models]
    for i, k in enumerate(keys):
        fig.add_bar(
            x=labels,
            y=[(m.get("memory") or {}).get(k) for m in models],
            name=plot_text(k.replace("_mb", "").replace("_", " ")),
            marker_color=color_for(i),
            hovertemplate="%{x}: %{y:.1f} MiB<extra></extra>",
        )
    fig.update_layout(
        barmode="group", yaxis_title="MiB", xaxis={"automargin": True, "tickangle": -20}
    )
    return _finish(
        fig,
        ids,
        "Memory",
        340,
        "Resident memory of a fresh process that loads the model and serves calls.",
    )


def index_gain_chart(
    rows: Sequence[Mapping[str, Any]], batch_sizes: Sequence[int], ids: ChartIds
) -> Chart | None:
    """The landing page's chart: each model's best exact variant, p50 vs its baseline, per
    batch size (grouped bars, one group per model; below 1.0 is faster).

    Args:
        rows: ``{"name", "variant", "ratios": {batch: ratio or None}}`` per model.
        batch_sizes: one bar series per batch size.
        ids: the page's chart id source.
    """
    import plotly.graph_objects as go

    if not any(r["ratios"].get(bs) is not None for r in rows for bs in batch_sizes):
        return None
    fig = go.Figure()
    names = [plot_text(r["name"]) for r in rows]
    for i, bs in enumerate(batch_sizes):
        fig.add_bar(
            x=names,
            y=[r["ratios"].get(bs) for r in rows],
            name=f"batch {bs}",
            marker_color=color_for(i),
            customdata=[plot_text(r["variant"] or "no exact variant") for r in rows],
            hovertemplate="%{x} (%{customdata}): %{y:.2f}x the baseline p50<extra>batch "
            + str(bs)
            + "</extra>",
        )
    fig.add_hline(
        y=1.0,
        line_dash="dot",
        line_color="#555",
        annotation_text="baseline",
        annotation_position="top left",
    )
    values = [r["ratios"].get(bs) for r in rows for bs in batch_sizes]
    fig.update_layout(
        barmode="group", yaxis={"title": "p50 / baseline p50", "type": _axis_type(values)}
    )
    return _finish(
        fig,
        ids,
        "Best exact variant vs baseline",
        320,
        "p50 latency of each model's fastest variant whose outputs match the baseline, as a "
        "fraction of the baseline's p50 (lower is faster).",
    )
