"""The public Python API; the CLI is a thin layer over these functions.

TensorFlow is imported only when a function runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recadvisor.analysis.inventory import ModelDescription


def describe(model_dir: str | Path, signature: str | None = None,
             tensorboard_dir: str | Path | None = None) -> ModelDescription:
    """Load, freeze and describe a SavedModel.

    Args:
        model_dir: the SavedModel directory.
        signature: signature key (default ``serving_default`` or the only one).
        tensorboard_dir: when given, also write the frozen graph there for TensorBoard.

    Returns:
        The :class:`~recadvisor.analysis.inventory.ModelDescription`.
    """
    from recadvisor.analysis.inventory import describe_model, write_tensorboard_graph
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model

    loaded = load_model(model_dir, signature)
    graph = freeze(loaded)
    if tensorboard_dir is not None:
        write_tensorboard_graph(graph, tensorboard_dir)
    return describe_model(loaded, graph)
