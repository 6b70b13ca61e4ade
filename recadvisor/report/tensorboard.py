"""``analyze --tensorboard DIR``: what the per-op profile shows in TensorBoard.

Computed from the ``profile`` dict of ``analysis.json`` (this module reads dicts only; the
writing, and the frozen graph for the Graphs tab, is :mod:`recadvisor.model.tensorboard`):

* per batch size (the summary step is the batch size): latency p50/p90/p99/mean as scalars
  (``latency/p50_ms``...), op time per serving stage and per op type (``stage_share/...``,
  ``op_type_us/...``) so the Scalars tab plots them against the batch size, and a Markdown table
  of the most expensive nodes as a text summary (``profile/top_ops``, Text tab).

"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from recadvisor.report.analysis_view import attributions, profile_batches, stage_shares
from recadvisor.report.formatting import fmt_ms, fmt_pct, fmt_us

if TYPE_CHECKING:
    from recadvisor.analysis.analyze import ProfileSectionDict
    from recadvisor.model.tensorboard import SummaryStep

TOP_OPS = 30


def _cell(text: Any) -> str:
    """Markdown table cell: pipes escaped, one line."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def top_ops_markdown(batch: Mapping[str, Any], top: int = TOP_OPS) -> str:
    """A Markdown table of a batch's most expensive nodes (as TensorBoard's Text tab shows).

    Args:
        batch: one entry of :func:`recadvisor.report.analysis_view.profile_batches`.
        top: rows shown.

    Returns:
        The Markdown text.
    """
    lat = batch["latency"]
    lines = [
        f"**batch {batch['batch_size']}**: p50 {fmt_ms(lat['p50_ms'])}, "
        f"p90 {fmt_ms(lat['p90_ms'])}, p99 {fmt_ms(lat['p99_ms'])}; op time summed "
        "over threads under the profiler (ranks costs, it is not latency).",
        "",
        "| # | node | op type | kernels | µs / call | share |",
        "|---:|---|---|---|---:|---:|",
    ]
    ops = sorted(batch["ops"], key=lambda o: -o["self_us"])[:top]
    for i, o in enumerate(ops, start=1):
        kernels = ", ".join(k for k in o["runtime_ops"] if k != o["op"]) or "-"
        lines.append(
            f"| {i} | {_cell(o['node'])} | {_cell(o['op'])} | {_cell(kernels)} | "
            f"{fmt_us(o['self_us'])} | {fmt_pct(o['share'])} |"
        )
    if not ops:
        lines.append("| | no per-op times recorded | | | | |")
    return "\n".join(lines)


def profile_summaries(profile: ProfileSectionDict | None, top: int = TOP_OPS) -> list[SummaryStep]:
    """The TensorBoard summaries of a profile, one step per batch size.

    Args:
        profile: the ``profile`` section of ``analysis.json``; ``None`` gives no summaries.
        top: nodes listed per batch size in the text summary.

    Returns:
        Per batch size: latency p50/p90/p99/mean (``latency/p50_ms``...), op time per serving
        stage and per op type (``stage_share/...``, ``op_type_us/...``), and a Markdown table of
        the most expensive nodes (``profile/top_ops``).
    """
    if profile is None:
        return []
    batches = profile_batches(profile)
    attrs = attributions(profile)
    steps = []
    for batch in batches:
        step = int(batch["batch_size"])
        scalars: dict[str, float] = {
            f"latency/{key}": value
            for key, value in batch["latency"].items()
            if key.endswith("_ms") and value is not None
        }
        for stage, share in stage_shares(batch, attrs[step]).items():
            scalars[f"stage_share/{stage}"] = share
        for o in batch["ops"]:
            key = f"op_type_us/{o['op']}"
            scalars[key] = scalars.get(key, 0.0) + o["self_us"]
        texts = {"profile/top_ops": top_ops_markdown(batch, top)}
        steps.append({"step": step, "scalars": scalars, "texts": texts})
    return steps
