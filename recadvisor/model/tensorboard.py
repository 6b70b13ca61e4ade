"""Writing a frozen graph and summaries for TensorBoard (``describe``/``analyze --tensorboard``).

The graph goes to the Graphs tab; summaries are scalars and Markdown texts per step (the step is
a batch size for profiles). What to write is computed from the analysis dicts in
:mod:`recadvisor.report.tensorboard`; this module only writes. Open with
``tensorboard --logdir DIR`` (``pip install tensorboard``); writing needs only TensorFlow: the
summaries carry the scalars/text plugin metadata themselves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from recadvisor.model.graph import ModelGraph
from recadvisor.tfimport import import_tf

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/]")


class SummaryStep(TypedDict):
    """The summaries of one step: scalar tag -> value, text tag -> Markdown."""

    step: int
    scalars: dict[str, float]
    texts: dict[str, str]


def summary_tag(text: str) -> str:
    """A summary tag made of TensorBoard-safe characters."""
    return _TAG_UNSAFE.sub("_", text)


def _metadata(plugin: str) -> Any:
    """SummaryMetadata routing a summary to a TensorBoard plugin (``scalars`` or ``text``)."""
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin)
    )


def write_graph(graph: ModelGraph, logdir: str | Path) -> Path:
    """Write the frozen graph so TensorBoard's Graphs tab shows it.

    Args:
        graph: the frozen graph.
        logdir: the log directory (created; existing event files are kept).

    Returns:
        The log directory.
    """
    tf = import_tf()
    path = Path(logdir)
    path.mkdir(parents=True, exist_ok=True)
    writer = tf.summary.create_file_writer(str(path))
    with writer.as_default():
        tf.summary.graph(graph.graph_def)
    writer.flush()
    writer.close()
    return path


def write_summaries(logdir: str | Path, steps: Sequence[SummaryStep]) -> Path:
    """Write scalar and text summaries, one group per step.

    Args:
        logdir: the log directory (created; existing event files are kept).
        steps: what to write.

    Returns:
        The log directory.
    """
    tf = import_tf()
    path = Path(logdir)
    path.mkdir(parents=True, exist_ok=True)
    scalars, text = _metadata("scalars"), _metadata("text")
    writer = tf.summary.create_file_writer(str(path))
    try:
        with writer.as_default():
            for item in steps:
                for tag, value in item["scalars"].items():
                    tf.summary.write(
                        summary_tag(tag),
                        tf.constant(float(value), tf.float32),
                        step=item["step"],
                        metadata=scalars,
                    )
                for tag, markdown in item["texts"].items():
                    tf.summary.write(
                        summary_tag(tag), tf.constant(markdown), step=item["step"], metadata=text
                    )
        writer.flush()
    finally:
        writer.close()
    return path
