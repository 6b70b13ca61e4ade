"""Read sample data files into a pandas DataFrame: one row per example, one column per feature.

Supported formats, chosen by file extension or by ``fmt=``:

- Parquet (``.parquet``, ``.pq``): list columns arrive as cells holding numpy arrays.
- CSV (``.csv``, ``.csv.gz``): read as text, then a column becomes ``int64`` when every value is a
  plain integer that prints back identically, ``float64`` when every value parses as a number and
  none is a zero-padded integer (so ``"007"`` stays the string ``"007"``), and stays text
  otherwise. A column whose every value is a
  JSON list (``["a", "b"]``) becomes a list column. Only empty fields count as missing (``"NA"`` is
  a string). Space-separated sequences (``"a b c"``) stay text; :func:`recadvisor.data.to_feeds`
  splits them when the signature wants a sequence.
- JSON Lines (``.jsonl``, ``.json``, optionally ``.gz``): one JSON object per line; a ``.json`` file
  may also hold one JSON array of objects. JSON arrays become list cells.
- NPZ (``.npz``): one array per column, all with the same first dimension; an ``[N]`` or ``[N,1]``
  array becomes a scalar column, ``[N,L,...]`` a column of per-row arrays. Pickled (object)
  arrays are refused; save strings as numpy unicode or bytes arrays.
- TFRecord of ``tf.train.Example`` (``.tfrecord``, ``.tfrecords``, ``.tfr``, optionally ``.gz``):
  ``bytes_list`` values become ``str`` (``bytes`` when not UTF-8), ``int64_list`` ints and
  ``float_list`` floats; a length-1 list becomes a scalar, any other length stays a list. A feature
  absent from an example is a missing value. Columns come in sorted name order.

Every failure a user can cause (missing file, wrong format, corrupt content, no rows) raises
:class:`recadvisor.errors.DataError` with a one-line message naming the file and the fix.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recadvisor.errors import DataError

logger = logging.getLogger(__name__)

#: Canonical format names, in the order they are listed in messages.
SUPPORTED_FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl", "npz", "tfrecord")

_FORMAT_ALIASES: dict[str, str] = {
    "parquet": "parquet",
    "pq": "parquet",
    "csv": "csv",
    "jsonl": "jsonl",
    "json": "jsonl",
    "ndjson": "jsonl",
    "npz": "npz",
    "tfrecord": "tfrecord",
    "tfrecords": "tfrecord",
    "tfr": "tfrecord",
}

#: Formats that may carry a trailing ``.gz``.
_GZIP_FORMATS = frozenset({"csv", "jsonl", "tfrecord"})

_INT_TEXT = re.compile(r"0|-?[1-9][0-9]*")
_ZERO_PADDED_INT_TEXT = re.compile(r"[+-]?0[0-9]+")
_MESSAGE_CHARS = 200


def detect_format(path: str | Path, fmt: str | None = None) -> tuple[str, bool]:
    """Decide how to read ``path``.

    Args:
        path: the sample data file.
        fmt: an explicit format name (``parquet``, ``csv``, ``jsonl``/``json``, ``npz``,
            ``tfrecord``) that overrides the extension.

    Returns:
        ``(format, gzipped)``: the canonical format name and whether the file is gzip-compressed
        (a ``.gz`` suffix).

    Raises:
        DataError: the format is unknown, or the extension names none and no ``fmt`` was given.
    """
    path = Path(path)
    suffixes = [s.lower().lstrip(".") for s in path.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == "gz"
    if fmt is not None:
        canonical = _FORMAT_ALIASES.get(fmt.lower().lstrip("."))
        if canonical is None:
            raise DataError(
                f"unknown data format '{fmt}'; use one of: {', '.join(SUPPORTED_FORMATS)}"
            )
    else:
        ext = suffixes[-2] if gzipped and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
        canonical = _FORMAT_ALIASES.get(ext)
        if canonical is None:
            raise DataError(
                f"cannot tell the format of sample data file {path} from its extension; rename it "
                f"to .parquet, .csv, .jsonl, .npz or .tfrecord, or pass the format explicitly"
            )
    if gzipped and canonical not in _GZIP_FORMATS:
        raise DataError(
            f"sample data file {path} is gzip-compressed {canonical}, which is not supported; "
            f"decompress it first"
        )
    return canonical, gzipped


def read_table(path: str | Path, fmt: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """Read a sample data file into a DataFrame.

    Args:
        path: the file to read (see the module docstring for formats).
        fmt: format override; by default the extension decides.
        limit: read at most this many rows (the first ones); ``None`` reads all.

    Returns:
        A DataFrame with a fresh ``RangeIndex``, one column per feature; sequence features are
        columns of lists (or numpy arrays for Parquet/NPZ).

    Raises:
        DataError: the file is missing, is a directory, has an unknown format, cannot be parsed
            as that format, or holds no rows.
    """
    path = Path(path)
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
        raise DataError(f"row limit must be a positive integer, got {limit!r}")
    if not path.exists():
        raise DataError(f"sample data file not found: {path}; check the path")
    if path.is_dir():
        raise DataError(f"sample data path {path} is a directory; pass one data file")
    canonical, gzipped = detect_format(path, fmt)
    reader = _READERS[canonical]
    try:
        frame = reader(path, gzipped, limit)
    except DataError:
        raise
    except Exception as e:  # any parser failure on user data is a DataError
        raise DataError(
            f"cannot read sample data file {path} as {canonical}: {_one_line(e)}; "
            f"check that the file is a valid {canonical} file or pass the right format"
        ) from e
    if len(frame.index) == 0 or len(frame.columns) == 0:
        raise DataError(f"sample data file {path} holds no rows; pass a file with examples")
    if limit is not None and len(frame.index) > limit:
        frame = frame.iloc[:limit]
    frame = frame.reset_index(drop=True)
    logger.info(
        "read %s rows x %s columns from %s (%s)",
        len(frame.index),
        len(frame.columns),
        path,
        canonical,
    )
    return frame


def _one_line(error: BaseException) -> str:
    """An exception as one short line of text."""
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) > _MESSAGE_CHARS:
        text = text[: _MESSAGE_CHARS - 3] + "..."
    return text


# --------------------------------------------------------------------------------------- Parquet


def _read_parquet(path: Path, gzipped: bool, limit: int | None) -> pd.DataFrame:
    """Parquet via pyarrow, stopping after ``limit`` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as parquet_file:
        if limit is None:
            table = parquet_file.read()
        else:
            batches: list[pa.RecordBatch] = []
            n = 0
            for batch in parquet_file.iter_batches(batch_size=min(limit, 65536)):
                batches.append(batch)
                n += batch.num_rows
                if n >= limit:
                    break
            table = pa.Table.from_batches(batches, schema=parquet_file.schema_arrow)
            table = table.slice(0, limit)
    return table.to_pandas()


# ------------------------------------------------------------------------------------------- CSV


def _read_csv(path: Path, gzipped: bool, limit: int | None) -> pd.DataFrame:
    """CSV read as text, then column types inferred conservatively (see module docstring)."""
    try:
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            nrows=limit,
            compression="gzip" if gzipped else None,
            encoding="utf-8",
        )
    except pd.errors.EmptyDataError as e:
        raise DataError(f"sample data file {path} is empty; pass a CSV with a header row") from e
    return pd.DataFrame({name: _infer_text_column(frame[name]) for name in frame.columns})


def _infer_text_column(column: pd.Series) -> pd.Series:
    """Turn a text column into ints, floats or lists when every value allows it exactly."""
    values = column.to_numpy(dtype=object)
    present = [v for v in values if isinstance(v, str)]
    if not present:
        return column
    if all(_INT_TEXT.fullmatch(v) for v in present):
        ints = [int(v) for v in present]
        if all(-(2**63) <= v < 2**63 for v in ints):
            if len(present) == len(values):
                return pd.Series(np.array(ints, dtype=np.int64), name=column.name)
            return pd.Series(
                [float(v) if isinstance(v, str) else np.nan for v in values],
                dtype=np.float64,
                name=column.name,
            )
        return column
    lists = _decode_json_lists(present)
    if lists is not None:
        it = iter(lists)
        return pd.Series(
            [next(it) if isinstance(v, str) else None for v in values],
            dtype=object,
            name=column.name,
        )
    if any(_ZERO_PADDED_INT_TEXT.fullmatch(v) for v in present):
        return column  # "007" is an id, not the number 7
    try:
        for v in present:
            float(v)
    except ValueError:
        return column
    return pd.Series(
        [float(v) if isinstance(v, str) else np.nan for v in values],
        dtype=np.float64,
        name=column.name,
    )


def _decode_json_lists(texts: list[str]) -> list[list[Any]] | None:
    """Decode every text as a JSON list, or return ``None`` when any one is not."""
    decoded: list[list[Any]] = []
    for text in texts:
        stripped = text.strip()
        if not (stripped.startswith("[") and stripped.endswith("]")):
            return None
        try:
            value = json.loads(stripped)
        except ValueError:
            return None
        if not isinstance(value, list):
            return None
        decoded.append(value)
    return decoded


# ------------------------------------------------------------------------------------ JSON Lines


def _read_jsonl(path: Path, gzipped: bool, limit: int | None) -> pd.DataFrame:
    """JSON Lines, or a single JSON array of objects."""
    opener: Callable[..., Any] = gzip.open if gzipped else open
    with opener(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            document = json.loads(stripped)
        except ValueError as e:
            raise DataError(
                f"sample data file {path} is not valid JSON ({_one_line(e)}); write one JSON "
                f"object per line (JSON Lines) or one array of objects"
            ) from e
        if not isinstance(document, list):
            raise DataError(f"sample data file {path} is not a JSON array of objects")
        records = document[:limit] if limit is not None else document
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise DataError(
                    f"item {i} of the JSON array in {path} is a {type(record).__name__}, not an "
                    f"object; each example must be an object of feature: value"
                )
    else:
        records = []
        for line_number, line in enumerate(io.StringIO(text), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as e:
                raise DataError(
                    f"line {line_number} of {path} is not valid JSON ({_one_line(e)}); write one "
                    f"JSON object per line"
                ) from e
            if not isinstance(record, dict):
                raise DataError(
                    f"line {line_number} of {path} is a JSON {type(record).__name__}, not an "
                    f"object; write one object of feature: value per line"
                )
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
    return _frame_from_records(records)


def _frame_from_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Build a frame from per-example dicts, keeping list values as list cells."""
    columns: dict[str, list[Any]] = {}
    for i, record in enumerate(records):
        for name, value in record.items():
            if name not in columns:
                columns[name] = [None] * i
            columns[name].append(value)
        for values in columns.values():
            if len(values) < i + 1:
                values.append(None)
    return pd.DataFrame({name: _series_from_values(values) for name, values in columns.items()})


def _series_from_values(values: list[Any]) -> pd.Series:
    """A Series from Python values; list cells stay lists (pandas would try to expand them)."""
    if any(isinstance(v, (list, tuple, dict, np.ndarray)) for v in values):
        cells = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            cells[i] = v  # element-wise: pandas and numpy would unpack lists otherwise
        return pd.Series(cells, dtype=object)
    return pd.Series(values)


# ------------------------------------------------------------------------------------------- NPZ


def _read_npz(path: Path, gzipped: bool, limit: int | None) -> pd.DataFrame:
    """NPZ: one array per column, sharing the first dimension."""
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(
            f"sample data file {path} is a single .npy array, not an .npz archive; save one "
            f"array per feature with numpy.savez"
        )
    with loaded as archive:
        arrays = {}
        for name in archive.files:
            try:
                arrays[name] = archive[name]
            except ValueError as e:
                raise DataError(
                    f"array '{name}' in {path} is a pickled object array, which is not loaded for "
                    f"safety; save strings as numpy unicode or bytes arrays"
                ) from e
    if not arrays:
        raise DataError(f"sample data file {path} holds no arrays; pass one array per feature")
    lengths = {}
    for name, array in arrays.items():
        if array.ndim == 0:
            raise DataError(
                f"array '{name}' in {path} is a scalar; each array needs one row per example"
            )
        lengths[name] = array.shape[0]
    if len(set(lengths.values())) > 1:
        found = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise DataError(
            f"arrays in {path} have different numbers of rows ({found}); each array needs one "
            f"row per example"
        )
    columns = {}
    for name, array in arrays.items():
        if limit is not None:
            array = array[:limit]
        columns[name] = _npz_column(array)
    return pd.DataFrame(columns)


def _npz_column(array: np.ndarray) -> pd.Series:
    """One NPZ array as a column: scalars for [N] and [N,1], per-row arrays otherwise."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 1:
        if array.dtype.kind in "US":
            return pd.Series(array.tolist(), dtype=object)
        return pd.Series(array)
    cells = np.empty(array.shape[0], dtype=object)
    for i in range(array.shape[0]):
        row = array[i]
        cells[i] = np.array(row.tolist(), dtype=object) if array.dtype.kind in "US" else row
    return pd.Series(cells, dtype=object)


# -------------------------------------------------------------------------------------- TFRecord


def _read_tfrecord(path: Path, gzipped: bool, limit: int | None) -> pd.DataFrame:
    """TFRecord of serialized ``tf.train.Example`` protos."""
    from recadvisor.tfimport import import_tf

    tf = import_tf()
    dataset = tf.data.TFRecordDataset(str(path), compression_type="GZIP" if gzipped else "")
    if limit is not None:
        dataset = dataset.take(limit)
    records: list[dict[str, Any]] = []
    try:
        for index, serialized in enumerate(dataset.as_numpy_iterator()):
            example = tf.train.Example()
            try:
                example.ParseFromString(serialized)
            except Exception as e:  # protobuf raises its own DecodeError
                raise DataError(
                    f"record {index} of {path} is not a tf.train.Example ({_one_line(e)}); write "
                    f"serialized tf.train.Example protos"
                ) from e
            records.append(_example_to_record(example))
    except tf.errors.OpError as e:
        raise DataError(
            f"cannot read TFRecord file {path}: {_one_line(e.message)}; check that it is an "
            f"uncompressed TFRecord file (or named .gz when gzip-compressed)"
        ) from e
    return _frame_from_records(records)


def _example_to_record(example: Any) -> dict[str, Any]:
    """One ``tf.train.Example`` as ``{feature: scalar or list}``."""
    record: dict[str, Any] = {}
    for name, feature in sorted(example.features.feature.items()):  # map order is random
        kind = feature.WhichOneof("kind")
        if kind == "bytes_list":
            values: list[Any] = [_decode_bytes(v) for v in feature.bytes_list.value]
        elif kind == "int64_list":
            values = list(feature.int64_list.value)
        elif kind == "float_list":
            values = list(feature.float_list.value)
        else:
            values = []
        record[name] = values[0] if len(values) == 1 else values
    return record


def _decode_bytes(value: bytes) -> str | bytes:
    """UTF-8 text as ``str``, anything else kept as ``bytes``."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


_READERS: dict[str, Callable[[Path, bool, int | None], pd.DataFrame]] = {
    "parquet": _read_parquet,
    "csv": _read_csv,
    "jsonl": _read_jsonl,
    "npz": _read_npz,
    "tfrecord": _read_tfrecord,
}
