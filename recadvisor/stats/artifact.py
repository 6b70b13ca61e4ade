"""The stats artifact: ``DIR/stats.json`` (its schema, declared once here) and ``DIR/counts/``.

``stats.json`` is a :class:`StatsDoc`; ``schema_version`` changes whenever a key changes meaning.
``DIR/counts/values/<input>.parquet`` holds the exact ``(value, count)`` of every input (of the
elements for sequences; a null value is a null row), sorted by value; ``DIR/counts/rows/
<table>.parquet`` holds ``(row, hits)`` for every embedding row hit at least once, sorted by row.

:func:`write_stats` writes the document; :func:`load_stats` reads and checks it and returns a
:class:`LogStats`, the view ``analyze --stats`` and ``rebuild --stats`` decide from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from recadvisor.errors import DataError

SCHEMA_VERSION = 1
KIND = "recadvisor.stats"
STATS_FILE = "stats.json"
VALUES_DIR = "counts/values"
ROWS_DIR = "counts/rows"


class DataFileEntry(TypedDict):
    """One file read."""

    path: str
    size: int
    mtime: float


class DatasetFingerprint(TypedDict):
    """What was read, by which engine, when."""

    files: list[DataFileEntry]
    file_count: int
    total_bytes: int
    digest: str
    format: str
    partition_columns: list[str]
    rows: int
    engine: str
    engine_version: str
    spark_master: str | None
    memory_limit_bytes: int
    started_utc: str
    seconds: float


class LengthStats(TypedDict):
    """Lengths of a sequence input's lists (null lists left out)."""

    min: int | None
    max: int | None
    mean: float | None
    null_lists: int
    histogram: list[list[int]]  # [length, rows], up to MAX_HISTOGRAM lengths


class InputStats(TypedDict):
    """Statistics of one signature input."""

    input: str
    column: str
    dtype: str
    kind: str
    sequence: bool
    rows: int
    values: int  # non-null values (elements for sequences)
    nulls: int  # null values (null elements, plus null rows for scalars)
    pads: int  # values equal to the pad value ("" for strings, 0 for numbers)
    pad_value: Any
    distinct: int  # exact distinct non-null values (engine GROUP BY, no approximation)
    nan: int  # NaN values (floats), left out of min/max/quantiles
    min: Any
    max: Any
    quantiles: dict[str, Any] | None  # "p0".."p100": the value at rank ceil(q * n) (numbers)
    values_listed: list[list[Any]] | None  # [value, count] for every value when distinct <= FEW
    top_values: list[list[Any]]  # the most frequent values, [value, count]
    lengths: LengthStats | None
    counts_file: str


class TableInputStats(TypedDict):
    """One input's share of a table's hits."""

    input: str
    kind: str
    params: dict[str, Any]
    hits: int
    rows_hit: int
    not_a_row: int  # values whose id is not a row (a vocabulary default of -1, ids out of range)
    checked: bool | None  # the graph's own ids equal the encoder's on a sample of values


class TableStats(TypedDict):
    """Hits per row of one embedding table, after the model's id mapping."""

    table: str
    variable: str
    rows: int
    rows_hit: int
    hits: int
    inputs: list[TableInputStats]
    counts_file: str


class PerRequestCheck(TypedDict):
    """Whether ``input`` takes one value per value of the request key ``key``."""

    key: str
    input: str
    keys: int
    repeated_keys: int
    violating_keys: int
    violating_rows: int
    violation_rate: float  # violating_keys / repeated_keys (0 when no key repeats)
    per_request: bool  # no violation and at least MIN_REPEATED_KEYS repeated keys


class ModelRef(TypedDict):
    """The model the stats were computed for."""

    path: str
    signature: str
    fingerprint: str


class StatsDoc(TypedDict):
    """``stats.json``."""

    schema_version: int
    kind: str
    model: ModelRef
    dataset: DatasetFingerprint
    inputs: dict[str, InputStats]
    missing_inputs: list[str]
    tables: dict[str, TableStats]
    unmapped: list[dict[str, Any]]
    per_request: list[PerRequestCheck]
    notes: list[str]


def safe_file_name(name: str) -> str:
    """A file name for an input or table name (``/`` and odd characters become ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("._") or "unnamed"


def write_stats(directory: Path, doc: StatsDoc) -> Path:
    """Write ``stats.json`` into ``directory`` (an atomic output's temp folder).

    Args:
        directory: the folder.
        doc: the document.

    Returns:
        The file written.
    """
    path = directory / STATS_FILE
    path.write_text(json.dumps(doc, indent=1, allow_nan=False, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot write {type(value).__name__} to stats.json")


class LogStatsSummaryDict(TypedDict):
    """Where figures marked ``logs`` come from (``analysis.json``'s ``model.log_stats``)."""

    dir: str
    rows: int
    engine: str
    files: int
    total_bytes: int
    digest: str
    computed_utc: str


@dataclass(frozen=True)
class LogStats:
    """A stats artifact, read back (what ``analyze --stats`` / ``rebuild --stats`` decide from).

    Attributes:
        directory: the stats folder.
        doc: ``stats.json``.
    """

    directory: Path
    doc: StatsDoc

    @property
    def rows(self) -> int:
        """Rows of the logs."""
        return int(self.doc["dataset"]["rows"])

    def source(self) -> str:
        """``logs (N rows, engine)``: how figures from these stats are labelled."""
        return f"logs ({self.rows:,} rows, {self.doc['dataset']['engine']})"

    def summary(self) -> LogStatsSummaryDict:
        """Where figures marked ``logs`` come from (``analysis.json`` / ``rebuild.json``)."""
        ds = self.doc["dataset"]
        return {
            "dir": str(self.directory),
            "rows": ds["rows"],
            "engine": ds["engine"],
            "files": ds["file_count"],
            "total_bytes": ds["total_bytes"],
            "digest": ds["digest"],
            "computed_utc": ds["started_utc"],
        }

    def table(self, name: str, rows: int, inputs: Iterable[str] | None = None) -> TableStats | None:
        """The stats of embedding table ``name``, when they still describe it.

        Args:
            name: the table's ``Const`` node.
            rows: its row count now.
            inputs: the inputs whose ids index it now; they must be the ones the stats mapped
                (a table merged with another since is not described by either's stats).

        Returns:
            The table's stats, or ``None``.
        """
        t = self.doc["tables"].get(name)
        if t is None or int(t["rows"]) != int(rows):
            return None
        if inputs is not None and set(inputs) != {i["input"] for i in t["inputs"]}:
            return None
        return t

    def row_hits(
        self, name: str, rows: int, inputs: Iterable[str] | None = None
    ) -> np.ndarray | None:
        """Hits per row (an int64 array of ``rows``) of a table, or ``None`` (see :meth:`table`)."""
        t = self.table(name, rows, inputs)
        if t is None:
            return None
        import pyarrow.parquet as pq

        counts = pq.read_table(self.directory / t["counts_file"])
        hits = np.zeros(int(rows), dtype=np.int64)
        hits[counts.column("row").to_numpy()] = counts.column("hits").to_numpy()
        return hits

    def distinct_values(self, key: str) -> np.ndarray | None:
        """Every distinct non-null, non-NaN value of an input, sorted (``None`` if not computed)."""
        s = self.doc["inputs"].get(key)
        if s is None:
            return None
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        values = pq.read_table(self.directory / s["counts_file"]).column("value")
        values = pc.drop_null(values)
        arr = values.to_numpy(zero_copy_only=False)
        if arr.dtype.kind == "f":
            arr = arr[~np.isnan(arr)]
        return arr

    def per_request_inputs(self, key: str) -> list[str] | None:
        """Inputs the logs show to be per-request for request key ``key`` (``None``: unchecked)."""
        checks = [c for c in self.doc["per_request"] if c["key"] == key]
        if not checks:
            return None
        return [c["input"] for c in checks if c["per_request"]]


def load_stats(directory: str | Path, fingerprint: str | None = None) -> LogStats:
    """Read a stats folder written by ``recadvisor stats``.

    Args:
        directory: the folder (holding ``stats.json``).
        fingerprint: the model's graph fingerprint; the stats must have been computed for it.

    Returns:
        A :class:`LogStats`.

    Raises:
        DataError: the folder or file is missing, malformed, of another schema version, or made
            for another model.
    """
    d = Path(directory)
    path = d / STATS_FILE
    if not path.is_file():
        raise DataError(f"'{d}' holds no {STATS_FILE}; pass the --out folder of recadvisor stats")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"'{path}' is not valid JSON ({e}); re-run recadvisor stats") from e
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise DataError(f"'{path}' is not a recadvisor stats file")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise DataError(
            f"'{path}' has schema version {doc.get('schema_version')}, this recadvisor reads "
            f"{SCHEMA_VERSION}; re-run recadvisor stats"
        )
    made_for = doc.get("model", {}).get("fingerprint")
    if fingerprint is not None and made_for != fingerprint:
        raise DataError(
            f"'{path}' was computed for another model ({doc['model'].get('path')}, signature "
            f"'{doc['model'].get('signature')}'); re-run recadvisor stats for this one"
        )
    return LogStats(d, doc)  # type: ignore[arg-type]
