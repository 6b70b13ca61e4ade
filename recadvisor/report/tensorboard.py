"""``analyze --tensorboard DIR``: the frozen graph and the per-op profile for TensorBoard.

Writes, in one log directory:

* the frozen serving graph (Graphs tab), via
  :func:`recadvisor.analysis.inventory.write_tensorboard_graph`;
* per batch size (the summary step is the batch size): latency p50/p90/p99/mean as scalars
  (``latency/p50_ms``...), op time per serving stage and per op type (``stage_share/...``,
  ``op_type_us/...``) so the Scalars tab plots them against the batch size, and a Markdown table
  of the most expensive nodes as a text summary (``profile/top_ops``, Text tab).

Open with ``tensorboard --logdir DIR`` (``pip install tensorboard``). Writing needs only
TensorFlow: the summaries are written with ``tf.summary.write`` and the scalars/text plugin
metadata, so the ``tensorboard`` package is not required to produce them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recadvisor.report.analysis_view import attributions, profile_batches, stage_shares
from recadvisor.report.formatting import fmt_ms, fmt_pct, fmt_us
from recadvisor.tfimport import import_tf

if TYPE_CHECKING:
    from recadvisor.analysis.analyze import ProfileSectionDict
    from recadvisor.model.graph import ModelGraph

log = logging.getLogger(__name__)

TOP_OPS = 30
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/]")


def _tag(text: str) -> str:
    """A summary tag made of TensorBoard-safe characters."""
    return _TAG_UNSAFE.sub("_", text)


def _metadata(plugin: str) -> Any:
    """SummaryMetadata routing a summary to a TensorBoard plugin (``scalars`` or ``text``)."""
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin)
    )


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


def write_profile(
    graph: ModelGraph, profile: ProfileSectionDict | None, logdir: str | Path, top: int = TOP_OPS
) -> Path:
    """Write the frozen graph and the per-op profile as TensorBoard summaries.

    Args:
        graph: the frozen ModelGraph (shown in the Graphs tab).
        profile: the ``profile`` section of ``analysis.json``; ``None`` writes the graph only.
        logdir: the log directory (created; existing event files are kept).
        top: nodes listed per batch size in the text summary.

    Returns:
        The log directory.
    """
    from recadvisor.analysis.inventory import write_tensorboard_graph

    path = write_tensorboard_graph(graph, logdir)
    if profile is None:
        log.info("no profile to write to %s: graph only", path)
        return path
    batches = profile_batches(profile)
    attrs = attributions(profile)
    tf = import_tf()
    scalars, text = _metadata("scalars"), _metadata("text")

    def scalar(tag: str, value: float, step: int) -> None:
        tf.summary.write(
            _tag(tag), tf.constant(float(value), tf.float32), step=step, metadata=scalars
        )

    writer = tf.summary.create_file_writer(str(path))
    try:
        with writer.as_default():
            for batch in batches:
                step = int(batch["batch_size"])
                for key, value in batch["latency"].items():
                    if key.endswith("_ms") and value is not None:
                        scalar(f"latency/{key}", value, step)
                for stage, share in stage_shares(batch, attrs[step]).items():
                    scalar(f"stage_share/{stage}", share, step)
                per_op_type: dict[str, float] = {}
                for o in batch["ops"]:
                    per_op_type[o["op"]] = per_op_type.get(o["op"], 0.0) + o["self_us"]
                for op_type, micros in per_op_type.items():
                    scalar(f"op_type_us/{op_type}", micros, step)
                tf.summary.write(
                    "profile/top_ops",
                    tf.constant(top_ops_markdown(batch, top)),
                    step=step,
                    metadata=text,
                )
        writer.flush()
    finally:
        writer.close()
    log.info("wrote the graph and the profile of %d batch sizes to %s", len(batches), path)
    return path
