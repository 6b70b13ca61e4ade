"""One call from "a data file, or none" to feeds for a signature: :func:`load_feeds`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from recadvisor.data.coerce import labels, to_feeds
from recadvisor.data.readers import read_table
from recadvisor.data.synthesize import synthesize_feeds
from recadvisor.errors import DataError
from recadvisor.model.spec import SignatureSpec

logger = logging.getLogger(__name__)

#: Rows synthesized when no data file and no row count are given.
DEFAULT_SYNTHETIC_ROWS = 256
#: Columns read as labels when present (and not signature inputs).
DEFAULT_LABEL_COLUMNS: tuple[str, ...] = ("label", "click", "conversion", "ctr", "cvr", "target")


class FeedDict(TypedDict):
    """One feed's dtype (``string`` for text) and shape."""

    dtype: str
    shape: list[int]


class LabelDict(TypedDict):
    """One label column: dtype and how many labels are > 0 (null when not numeric)."""

    dtype: str
    positives: int | None


class LoadedDataDict(TypedDict):
    """``LoadedData.to_dict()`` (``analysis.json``'s ``model.data``)."""

    source: str
    path: str | None
    n_rows: int
    inputs: dict[str, FeedDict]
    labels: dict[str, LabelDict]
    columns: list[str]
    unused_columns: list[str]


@dataclass(frozen=True, eq=False)
class LoadedData:
    """Feeds for a signature, with where they came from.

    Attributes:
        feeds: ``{input key: array}`` fitting the signature (see :func:`to_feeds`).
        labels: ``{label column: array}`` for the label columns found (empty when synthetic).
        frame: the DataFrame read (all columns, labels included), or ``None`` when synthetic.
        source: ``"file"`` or ``"synthetic"``.
        n_rows: rows in every feed.
        path: the data file, or ``None`` when synthetic.
        unused_columns: frame columns that are neither inputs nor labels.
    """

    feeds: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    frame: pd.DataFrame | None
    source: str
    n_rows: int
    path: str | None = None
    unused_columns: tuple[str, ...] = field(default=())

    @property
    def is_synthetic(self) -> bool:
        """Whether the feeds were synthesized (data-driven advice is off)."""
        return self.source == "synthetic"

    def to_dict(self) -> LoadedDataDict:
        """JSON summary without the arrays: source, rows, each feed's dtype/shape, labels."""
        return {
            "source": self.source,
            "path": self.path,
            "n_rows": self.n_rows,
            "inputs": {
                key: {
                    "dtype": "string" if array.dtype == object else str(array.dtype),
                    "shape": list(array.shape),
                }
                for key, array in self.feeds.items()
            },
            "labels": {
                name: {"dtype": str(array.dtype), "positives": _positives(array)}
                for name, array in self.labels.items()
            },
            "columns": [] if self.frame is None else [str(c) for c in self.frame.columns],
            "unused_columns": list(self.unused_columns),
        }


def _positives(array: np.ndarray) -> int | None:
    """How many labels are > 0 (``None`` for non-numeric labels)."""
    if array.dtype.kind not in "biuf":
        return None
    return int(np.count_nonzero(array > 0))


def load_feeds(
    path: str | Path | None,
    spec: SignatureSpec,
    *,
    rows: int | None = None,
    seed: int = 0,
    vocabularies: Mapping[str, Sequence[Any]] | None = None,
    fmt: str | None = None,
    strict: bool = True,
    label_names: Sequence[str] = DEFAULT_LABEL_COLUMNS,
) -> LoadedData:
    """Feeds for a signature from a sample data file, or synthesized when there is none.

    Args:
        path: the sample data file (Parquet, CSV, JSONL, NPZ or TFRecord), or ``None`` to
            synthesize.
        spec: the signature to feed.
        rows: read at most this many rows from the file, or synthesize this many
            (default :data:`DEFAULT_SYNTHETIC_ROWS`).
        seed: seed for synthesized values (unused with a file).
        vocabularies: ``{input key: known values}`` to draw synthesized values from.
        fmt: file format override (see :func:`recadvisor.data.read_table`).
        strict: passed to :func:`recadvisor.data.to_feeds`.
        label_names: columns to return as labels when present and not signature inputs;
            columns named ``label_<something>`` are always labels.

    Returns:
        A :class:`LoadedData`.

    Raises:
        DataError: the file cannot be read or does not fit the signature.
    """
    if path is None:
        n_rows = DEFAULT_SYNTHETIC_ROWS if rows is None else rows
        feeds = synthesize_feeds(spec, n_rows, seed=seed, vocabularies=vocabularies)
        return LoadedData(feeds=feeds, labels={}, frame=None, source="synthetic", n_rows=n_rows)
    frame = read_table(path, fmt=fmt, limit=rows)
    try:
        feeds = to_feeds(frame, spec, strict=strict)
    except DataError as e:
        raise DataError(f"sample data file {path}: {e}") from e
    label_columns = [name for name in label_names if name not in spec.inputs]
    # per-output labels (``label_<output>``, e.g. ESMM's ``label_ctcvr``) are labels too
    label_columns += [
        str(c)
        for c in frame.columns
        if str(c).startswith("label_") and str(c) not in spec.inputs and str(c) not in label_columns
    ]
    found_labels = labels(frame, label_columns)
    used = set(spec.inputs) | set(found_labels)
    unused = tuple(str(c) for c in frame.columns if c not in used)
    logger.info(
        "sample data %s: %s rows, labels %s, unused columns %s",
        path,
        len(frame.index),
        list(found_labels) or "none",
        list(unused) or "none",
    )
    return LoadedData(
        feeds=feeds,
        labels=found_labels,
        frame=frame,
        source="file",
        n_rows=len(frame.index),
        path=str(path),
        unused_columns=unused,
    )
