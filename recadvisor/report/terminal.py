"""Terminal tables for ``compare`` and ``rebuild``, sized to the terminal.

Rows carry short labels (``baseline``, ``safe``, ``fast``, ``fast.onnx``); the paths they stand
for are listed once under the table. The table keeps the columns that fit the terminal's width,
most important first, and says where the rest is (the HTML report and the JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from recadvisor.report.formatting import fmt_bytes


@dataclass(frozen=True)
class Column:
    """One table column: its header, how a row's cell is computed, and whether it may wrap."""

    header: str
    cell: Callable[[dict[str, Any]], str]
    justify: str = "right"
    wrap: bool = False


def _fits(console: Console, table: Table) -> bool:
    """Whether ``table`` renders within the console's width without squeezing any column."""
    unbounded = console.options.update_width(10_000)
    width = Measurement.get(console, unbounded, table).maximum
    return width <= console.width


def fitted_table(
    console: Console,
    title: str,
    required: Sequence[Column],
    optional: Sequence[Column],
    rows: Sequence[dict[str, Any]],
) -> tuple[Table, list[Column]]:
    """Build a table with the ``required`` columns and as many ``optional`` ones (in order)
    as fit the console's width.

    Returns:
        (the table, the optional columns left out).
    """
    chosen: list[Column] = list(required)
    left_out: list[Column] = []
    for col in optional:
        trial = _build(title, [*chosen, col], rows)
        if _fits(console, trial):
            chosen.append(col)
        else:
            left_out.append(col)
    return _build(title, chosen, rows), left_out


def _build(title: str, columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> Table:
    table = Table(title=Text(title), box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for col in columns:
        table.add_column(
            col.header,
            justify=col.justify,  # type: ignore[arg-type]
            no_wrap=not col.wrap,
            overflow="fold" if col.wrap else "ellipsis",
        )
    for row in rows:
        table.add_row(*(Text(col.cell(row)) for col in columns))
    return table


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _parity(model: dict[str, Any]) -> str:
    if model["parity"] is None:
        return "-"
    worst = max(model["parity"].values()) if model["parity"] else float("nan")
    return f"{'ok' if model['parity_passed'] else 'FAIL'} {worst:.0e}"


def _auc(model: dict[str, Any]) -> str:
    return " ".join(f"{v['auc']:.4f}" for v in model["quality"].values() if "auc" in v) or "-"


def _memory(model: dict[str, Any]) -> str:
    memory = model["memory"]
    return "-" if not memory else f"{memory['peak_rss_mb']:.0f} MiB"


def comparison_renderables(comp: dict[str, Any], console: Console) -> list[RenderableType]:
    """The ``compare`` table (p50 and ratio per batch size, parity; then size, x floor, AUC,
    p99 and memory as the width allows), the paths behind the labels, and the notes.

    Args:
        comp: a ``compare.json`` dict.
        console: the console it will be printed on (its width decides the columns).

    Returns:
        Renderables to print in order.
    """
    sizes = comp["batch_sizes"]
    floor_row = {
        "label": "call floor",
        "latency": comp["floor"],
        "ratio_vs_baseline": {},
        "ratio_vs_floor": {str(b): 1.0 for b in sizes},
        "parity": None,
        "parity_passed": None,
        "size_bytes": None,
        "quality": {},
        "memory": None,
    }
    required = [Column("model", lambda m: m["label"], justify="left")]
    for bs in sizes:
        key = str(bs)
        required += [
            Column(f"ms @{bs}", lambda m, k=key: f"{m['latency'][k]['p50_ms']:.3f}"),
            Column(f"x @{bs}", lambda m, k=key: _ratio(m["ratio_vs_baseline"].get(k))),
        ]
    required.append(Column("parity", _parity, justify="left"))
    first = str(sizes[0])
    optional = [
        Column("size", lambda m: "-" if m["size_bytes"] is None else fmt_bytes(m["size_bytes"])),
        Column(f"x floor @{first}", lambda m: _ratio(m["ratio_vs_floor"].get(first))),
        Column("AUC", _auc, justify="left"),
        *(
            Column(f"p99 @{bs}", lambda m, k=str(bs): f"{m['latency'][k]['p99_ms']:.3f}")
            for bs in sizes
        ),
        Column("memory", _memory),
    ]
    title = (
        f"p50 ms and x baseline, {comp['requests']} interleaved calls per batch size "
        f"[{comp['signature']}]"
    )
    table, left_out = fitted_table(console, title, required, optional, [*comp["models"], floor_row])
    out: list[RenderableType] = [table]
    width = max(len(m["label"]) for m in comp["models"])
    for m in comp["models"]:
        line = f"  {m['label']:<{width}}  {m['path']}"
        if len(line) <= console.width:
            out.append(Text(line))
        else:  # the path on a line of its own rather than broken after the label
            out += [Text(f"  {m['label']}:"), Text(f"    {m['path']}", overflow="fold")]
    if left_out:
        out.append(
            Text(
                f"  not shown at this width: {', '.join(c.header for c in left_out)} "
                "(see compare.html / compare.json)"
            )
        )
    out += [Text(f"note: {note}") for note in comp["notes"]]
    return out


def _pass_detail(rec: dict[str, Any]) -> str:
    if rec.get("reason"):
        return str(rec["reason"])
    return ", ".join(
        f"{k} {v}"
        for k, v in rec.get("stats", {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v
    )


def rebuild_renderables(result: dict[str, Any], console: Console) -> list[RenderableType]:
    """The ``rebuild`` table (pass, status, nodes, seconds, and the detail wrapped in the
    remaining width), then parity, node counts and notes.

    Args:
        result: a ``rebuild.json`` dict.
        console: the console it will be printed on.

    Returns:
        Renderables to print in order.
    """
    model = result["model"]
    records = [r for r in result["passes"]["passes"] if r["status"] != "disabled"]
    required = [
        Column("pass", lambda r: r["name"], justify="left"),
        Column("status", lambda r: r["status"], justify="left"),
        Column("nodes", lambda r: f"{r['nodes_before']}->{r['nodes_after']}"),
        Column("s", lambda r: f"{r['seconds']:.1f}"),
        Column("detail", _pass_detail, justify="left", wrap=True),
    ]
    title = f"rebuild [{model['signature']}] -> {result['output']['dir']}"
    table, _ = fitted_table(console, title, required, [], records)
    out: list[RenderableType] = [table, Text(f"  model: {model['path']}")]
    parity = result["parity"]["exported_vs_original"] or {}
    if parity:
        verdict = "ok" if parity["passed"] else "FAILED"
        out.append(Text(f"parity of the exported model vs the original: {verdict}"))
        out.append(Text(f"  {parity['summary']}"))
    nodes = result["nodes"]
    if nodes:
        out.append(
            Text(
                f"nodes: {nodes['original']} stored, {nodes['frozen']} frozen, "
                f"{nodes['final']} rebuilt"
            )
        )
    out += [Text(f"note: {note}") for note in result["notes"]]
    return out
