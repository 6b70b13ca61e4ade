"""What every zoo builder does after building: a short quiet training run and ``sample.parquet``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

SAMPLE_FILE = "sample.parquet"
SAVED_MODEL_DIR = "saved_model"


def fit_quietly(model: Any, x: Any, y: Any, epochs: int = 1, batch_size: int = 128) -> None:
    """A few steps of training (weights move off their initial values; seconds, not accuracy).

    Args:
        model: a compiled Keras model (Keras 2 or 3).
        x: its inputs.
        y: its labels.
        epochs: passes over the data.
        batch_size: rows per step.
    """
    import numpy as np
    import tensorflow as tf

    def as_tensor(value: Any) -> Any:
        # Keras 3's fit refuses numpy string arrays; a string tf.Tensor works in both Kerases
        if isinstance(value, np.ndarray) and value.dtype.kind in "OUS":
            return tf.constant(value.astype(str).astype(object))
        return value

    x = {k: as_tensor(v) for k, v in x.items()} if isinstance(x, dict) else as_tensor(x)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)


def finish(out: Path, frame: pd.DataFrame, inputs: Sequence[str], labels: Sequence[str]) -> Path:
    """Write the raw inputs (and label columns) the model was trained on as ``sample.parquet``.

    List cells (histories) are written as lists; the columns are named like the signature's
    inputs so ``recadvisor --data`` reads them directly.

    Args:
        out: the model's folder (holding ``saved_model/``).
        frame: the training log.
        inputs: the signature's input names (columns of ``frame``).
        labels: label columns to keep (``label`` / ``label_<output>``).

    Returns:
        The parquet file's path.
    """
    missing = [c for c in [*inputs, *labels] if c not in frame.columns]
    if missing:
        raise KeyError(f"sample columns missing from the log: {missing}")
    path = out / SAMPLE_FILE
    frame[list(dict.fromkeys([*inputs, *labels]))].to_parquet(path, index=False)
    return path
