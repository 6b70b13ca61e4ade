"""Match a sample-data frame to a signature: one numpy array per input, of its dtype and shape.

The column named like a signature input feeds that input; other columns (labels, ids) are ignored.

Shapes:

- ``[N]`` and ``[N,1]`` take one value per row; a list cell of length 1 counts as one value.
- ``[N,L]`` takes a sequence per row: a list/array cell, or a text cell that holds a JSON list
  (``'["a", "b"]'``) or whitespace-separated tokens (``"a b"``); a single value is a sequence of
  one. When the signature fixes ``L`` every row must hold exactly ``L`` values; when ``L`` is
  unknown, ragged rows are padded at the end to the longest row (at least 1) with
  :data:`STRING_PAD` (``""``) for strings and :data:`NUMBER_PAD` (``0``) for numbers.
- Rank 3 and above take nested lists/arrays of one shape; unknown rank takes ``[N]`` for scalar
  columns and ``[N,L]`` (padded) for list columns.

Dtypes (exact conversions only unless ``strict=False``):

- strings: ``str`` and ``bytes`` are kept as they are; numbers become ``str(value)`` (ints as
  integers). String arrays are numpy ``object`` arrays of Python ``str``/``bytes``, never
  fixed-width ``|S``/``<U`` arrays (onnxruntime silently corrupts those).
- integers: ints (range-checked), bools, and floats with no fractional part.
- floats: floats, bools, and ints that the float type represents exactly; NaN is a valid float.
- bool: bools, and 0/1 numbers.
- Text never becomes a number (it would hide a wrong column), except the tokens of a text
  sequence cell for a numeric sequence input.

Missing values (``None``/NaN) are refused for string, integer and bool inputs.

``strict=False`` relaxes three things, each logged once per column as a warning: rows of the
wrong length for a fixed ``L`` are padded/truncated, missing values become the pad value, and ints
that the float type cannot represent exactly are rounded. Every other mismatch still raises.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recadvisor.errors import DataError
from recadvisor.model.spec import SignatureSpec, TensorInfo

logger = logging.getLogger(__name__)

#: Pad value for ragged string sequences.
STRING_PAD = ""
#: Pad value for ragged numeric sequences.
NUMBER_PAD = 0
#: Default sequence-dimension width is the longest row, but never below this.
MIN_SEQUENCE_WIDTH = 1

_NUMPY_DTYPES: dict[str, type[np.generic]] = {
    "bool": np.bool_,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "float16": np.float16,
    "half": np.float16,
    "float32": np.float32,
    "float": np.float32,
    "float64": np.float64,
    "double": np.float64,
}

#: Bits of mantissa: ints up to 2**bits convert to the float type exactly.
_FLOAT_EXACT_BITS = {np.dtype(np.float16): 11, np.dtype(np.float32): 24, np.dtype(np.float64): 53}

_MAX_NAMES_SHOWN = 20


@dataclass(frozen=True)
class _Target:
    """What one signature input needs: its kind (string/int/float/bool) and numpy dtype."""

    info: TensorInfo
    kind: str
    np_dtype: np.dtype

    @property
    def key(self) -> str:
        return self.info.key

    def describe(self) -> str:
        """``int64 [N,1]``: dtype and shape as messages show them."""
        return f"{self.info.dtype} {self.info.shape_str()}"

    @property
    def pad(self) -> Any:
        return STRING_PAD if self.kind == "string" else NUMBER_PAD


def _target_of(info: TensorInfo) -> _Target:
    """The :class:`_Target` of a signature input, or a DataError for dtypes data cannot feed."""
    if info.dtype == "string":
        return _Target(info, "string", np.dtype(object))
    np_type = _NUMPY_DTYPES.get(info.dtype)
    if np_type is None:
        raise DataError(
            f"input '{info.key}' has dtype {info.dtype}, which cannot be fed from sample data; "
            f"supported: string, bool, int8..int64, uint8..uint64, float16/32/64"
        )
    dtype = np.dtype(np_type)
    kind = {"b": "bool", "i": "int", "u": "int", "f": "float"}[dtype.kind]
    return _Target(info, kind, dtype)


def _mismatch(column: str, target: _Target, found: str, fix: str = "") -> DataError:
    """One-line error naming the column, what the input needs and what was found."""
    message = f"column '{column}' does not fit input '{target.key}' ({target.describe()}): {found}"
    if fix:
        message += f"; {fix}"
    return DataError(message)


def _names_preview(names: Iterable[Any]) -> str:
    """Comma-separated names, cut after a few with a count of the rest."""
    names = [str(n) for n in names]
    shown = ", ".join(names[:_MAX_NAMES_SHOWN])
    if len(names) > _MAX_NAMES_SHOWN:
        shown += f", ... ({len(names) - _MAX_NAMES_SHOWN} more)"
    return shown or "(none)"


def _value_preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------------- public API


def to_feeds(
    df: pd.DataFrame, spec: SignatureSpec, *, strict: bool = True
) -> dict[str, np.ndarray]:
    """Turn the frame's columns into feeds for the signature's inputs.

    Args:
        df: sample data, one row per example; the column named like each input feeds it. Extra
            columns are ignored.
        spec: the signature to feed.
        strict: when ``False``, pad/truncate sequences to a fixed length, fill missing values
            with the pad value and round ints the float type cannot hold exactly, logging a
            warning per column; every other mismatch raises either way.

    Returns:
        ``{input key: array}`` in the signature's input order; every array has ``len(df)`` rows,
        the input's numpy dtype (``object`` holding ``str``/``bytes`` for strings) and a shape
        matching the input's static shape.

    Raises:
        DataError: the frame is empty, has duplicate column names, lacks columns for some inputs
            (all listed at once), or a column cannot be converted exactly (the message names the
            column, the input's dtype/shape and the offending value and row).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"to_feeds expects a pandas DataFrame, got {type(df).__name__}")
    if len(df.index) == 0:
        raise DataError("sample data has no rows; pass a file with at least one example")
    duplicated = df.columns[df.columns.duplicated()]
    if len(duplicated):
        raise DataError(
            f"sample data has duplicate columns: {_names_preview(dict.fromkeys(duplicated))}; "
            f"give each column a unique name"
        )
    missing = [key for key in spec.inputs if key not in df.columns]
    if missing:
        raise DataError(
            f"data is missing columns for inputs: {', '.join(missing)}; "
            f"columns found: {_names_preview(df.columns)}"
        )
    targets = {key: _target_of(info) for key, info in spec.inputs.items()}
    return {
        key: _coerce_column(df[key], target, str(key), strict) for key, target in targets.items()
    }


def labels(df: pd.DataFrame, names: Sequence[str] = ("label",)) -> dict[str, np.ndarray]:
    """The label columns present in the frame, as numpy arrays.

    Args:
        df: sample data.
        names: label column names to look for; absent ones are skipped.

    Returns:
        ``{name: array}`` for each present name, in ``names`` order; numeric columns keep their
        numpy dtype, other columns become ``object`` arrays.
    """
    found: dict[str, np.ndarray] = {}
    for name in names:
        if name in df.columns and name not in found:
            column = df[name]
            if isinstance(column, pd.DataFrame):  # duplicate column names
                column = column.iloc[:, 0]
            found[name] = _column_array(column)
    return found


def batches(
    feeds: Mapping[str, np.ndarray], batch_size: int, *, n_batches: int | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Cut feeds into batches of exactly ``batch_size`` rows, cycling through the rows.

    Batch ``b`` holds rows ``b*batch_size ...`` modulo the row count, so when ``batch_size``
    exceeds the rows they repeat, and the last batch wraps around to the first rows.

    Args:
        feeds: ``{input: array}`` sharing the first dimension (as :func:`to_feeds` returns).
        batch_size: rows per batch (at least 1).
        n_batches: how many batches to yield; by default enough to cover every row once
            (``ceil(rows / batch_size)``).

    Returns:
        An iterator of ``{input: array}`` with ``batch_size`` rows each (views when contiguous).

    Raises:
        ValueError: ``batch_size`` or ``n_batches`` is not positive, feeds is empty, or the
            arrays disagree on the row count.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n_batches is not None and n_batches < 0:
        raise ValueError(f"n_batches must be >= 0, got {n_batches}")
    n_rows = feeds_row_count(feeds)
    if n_batches is None:
        n_batches = math.ceil(n_rows / batch_size)
    return _iter_batches(dict(feeds), n_rows, batch_size, n_batches)


def feeds_row_count(feeds: Mapping[str, np.ndarray]) -> int:
    """The shared first dimension of the feed arrays.

    Args:
        feeds: ``{input: array}``.

    Returns:
        The number of rows.

    Raises:
        ValueError: feeds is empty, holds a scalar, or the arrays disagree on the row count.
    """
    if not feeds:
        raise ValueError("feeds is empty; nothing to batch")
    counts = {}
    for key, array in feeds.items():
        if np.ndim(array) == 0:
            raise ValueError(f"feed '{key}' is a scalar; feeds need a batch dimension")
        counts[key] = len(array)
    if len(set(counts.values())) != 1:
        raise ValueError(f"feeds disagree on the number of rows: {counts}")
    n_rows = next(iter(counts.values()))
    if n_rows == 0:
        raise ValueError("feeds have no rows")
    return n_rows


def _iter_batches(
    feeds: dict[str, np.ndarray], n_rows: int, batch_size: int, n_batches: int
) -> Iterator[dict[str, np.ndarray]]:
    for b in range(n_batches):
        start = (b * batch_size) % n_rows
        if start + batch_size <= n_rows:
            yield {key: array[start : start + batch_size] for key, array in feeds.items()}
        else:
            rows = (start + np.arange(batch_size)) % n_rows
            yield {key: np.take(array, rows, axis=0) for key, array in feeds.items()}


# ------------------------------------------------------------------------------ column → array


def _column_array(column: pd.Series) -> np.ndarray:
    """A column as a 1-D numpy array: numeric dtype when it has no missing values, else object."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype):
        return column.to_numpy() if dtype.kind in "biuf" else column.to_numpy(dtype=object)
    numpy_dtype = getattr(dtype, "numpy_dtype", None)  # nullable Int64/boolean, pyarrow types
    if (
        numpy_dtype is not None
        and np.dtype(numpy_dtype).kind in "biuf"
        and not bool(column.isna().any())
    ):
        return column.to_numpy(dtype=numpy_dtype)
    return column.to_numpy(dtype=object)


def _coerce_column(column: pd.Series, target: _Target, name: str, strict: bool) -> np.ndarray:
    """One column to the input's dtype and shape."""
    cells = _column_array(column)
    shape = target.info.shape
    if shape is None:
        if cells.dtype == object and any(_is_sequence(c) for c in cells):
            return _sequence_rows(cells, target, name, None, strict)
        return _scalar_rows(cells, target, name, strict)
    if len(shape) == 0:
        raise _mismatch(
            name,
            target,
            "the input is a scalar with no batch dimension",
            "sample data can only feed inputs with a batch dimension",
        )
    if len(shape) == 1:
        return _scalar_rows(cells, target, name, strict)
    if len(shape) == 2 and shape[1] == 1:
        return _scalar_rows(cells, target, name, strict).reshape(-1, 1)
    if len(shape) == 2:
        return _sequence_rows(cells, target, name, shape[1], strict)
    return _tensor_rows(cells, target, name, strict)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim > 0)


def _scalar_rows(cells: np.ndarray, target: _Target, name: str, strict: bool) -> np.ndarray:
    """One value per row: unwrap length-1 list cells and convert."""
    if cells.dtype != object:
        return _convert(cells, target, name, _row_locator, strict)
    values = np.empty(len(cells), dtype=object)
    for i, cell in enumerate(cells):
        if _is_sequence(cell):
            if len(cell) != 1:
                raise _mismatch(
                    name,
                    target,
                    f"row {i} holds a list of {len(cell)} values but the input takes one per row",
                    "pass one value per row or fix the signature's shape",
                )
            cell = cell[0]
        values[i] = cell
    return _convert(values, target, name, _row_locator, strict)


def _row_locator(index: int) -> str:
    return f"row {index}"


def _sequence_rows(
    cells: np.ndarray, target: _Target, name: str, length: int | None, strict: bool
) -> np.ndarray:
    """A sequence per row, checked against (or padded to) the sequence length."""
    sequences: list[Sequence[Any]] = []
    missing_rows: list[int] = []
    if cells.dtype != object:  # one number per row: sequences of one (numeric fast path)
        sequences = list(cells.reshape(-1, 1))
    for i, cell in enumerate(cells if cells.dtype == object else ()):
        if _is_sequence(cell):
            sequences.append(cell)
        elif _is_missing(cell):
            missing_rows.append(i)
            sequences.append([])
        elif isinstance(cell, (str, bytes)):
            sequences.append(_split_text(cell, target, name, i))
        else:
            sequences.append([cell])
    if missing_rows:
        _missing_values(name, target, missing_rows, len(cells), strict)
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    if length is None:
        width = max(int(lengths.max()), MIN_SEQUENCE_WIDTH)
    else:
        width = length
        wrong = np.flatnonzero(lengths != length)
        if len(wrong):
            row = int(wrong[0])
            if strict:
                raise _mismatch(
                    name,
                    target,
                    f"row {row} holds {lengths[row]} values but the input needs exactly {length} "
                    f"({len(wrong)} rows differ)",
                    "pad or truncate the sequences upstream, or pass strict=False",
                )
            logger.warning(
                "column '%s': %s rows do not hold %s values; padding with %r / truncating",
                name,
                len(wrong),
                length,
                target.pad,
            )
            sequences = [s[:length] for s in sequences]
            lengths = np.minimum(lengths, length)
    flat = _flatten(sequences)
    offsets = np.concatenate([[0], np.cumsum(lengths)])

    def locate(index: int) -> str:
        row = int(np.searchsorted(offsets, index, side="right")) - 1
        return f"row {row}, item {index - offsets[row]}"

    converted = _convert(flat, target, name, locate, strict)
    out = np.full((len(sequences), width), target.pad, dtype=target.np_dtype)
    out[np.arange(width)[None, :] < lengths[:, None]] = converted
    return out


def _flatten(sequences: list[Sequence[Any]]) -> np.ndarray:
    """Concatenate per-row sequences; numeric numpy rows stay numeric (fast path)."""
    if sequences and all(
        isinstance(s, np.ndarray) and s.ndim == 1 and s.dtype.kind in "biuf" for s in sequences
    ):
        return np.concatenate(sequences)  # type: ignore[arg-type]
    total = sum(len(s) for s in sequences)
    return np.fromiter(itertools.chain.from_iterable(sequences), dtype=object, count=total)


def _split_text(cell: str | bytes, target: _Target, name: str, row: int) -> list[Any]:
    """A text cell for a sequence input: a JSON list, or whitespace-separated tokens."""
    text = cell.decode("utf-8", errors="replace") if isinstance(cell, bytes) else cell
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            decoded = json.loads(stripped)
        except ValueError:
            decoded = None
        if isinstance(decoded, list):
            return decoded
    if target.kind == "string":
        return cell.split()  # bytes cells give bytes tokens
    tokens: list[Any] = []
    for token in text.split():
        try:
            tokens.append(int(token) if target.kind in ("int", "bool") else float(token))
        except ValueError:
            try:
                tokens.append(float(token))
            except ValueError:
                raise _mismatch(
                    name,
                    target,
                    f"row {row} holds text {_value_preview(cell)} whose token "
                    f"{_value_preview(token)} is not a number",
                    "check that this is the right column",
                ) from None
    return tokens


def _tensor_rows(cells: np.ndarray, target: _Target, name: str, strict: bool) -> np.ndarray:
    """Rank >= 3: each row a nested list/array of one shape matching the input's inner dims."""
    inner = tuple(target.info.shape[1:])  # type: ignore[index]
    rows: list[np.ndarray] = []
    row_shape: tuple[int, ...] | None = None
    for i, cell in enumerate(cells):
        if not _is_sequence(cell) and _is_missing(cell):
            _missing_values(name, target, [i], len(cells), True)
        try:
            array = np.array(_nested_list(cell), dtype=object)
        except ValueError as e:
            raise _mismatch(
                name, target, f"row {i} holds ragged nested lists", "every row needs one shape"
            ) from e
        fits = array.ndim == len(inner) and all(
            d is None or d == a for d, a in zip(inner, array.shape, strict=True)
        )
        if not fits or (row_shape is not None and array.shape != row_shape):
            raise _mismatch(
                name,
                target,
                f"row {i} holds values of shape {list(array.shape)}",
                "every row needs one nested list of the input's inner shape",
            )
        row_shape = array.shape
        rows.append(array.reshape(-1))
    assert row_shape is not None
    flat = np.concatenate(rows) if rows else np.empty(0, dtype=object)
    size = int(np.prod(row_shape))

    def locate(index: int) -> str:
        return f"row {index // size if size else 0}"

    converted = _convert(flat, target, name, locate, strict)
    return converted.reshape((len(cells), *row_shape))


def _nested_list(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_nested_list(v) for v in value] if value.dtype == object else value.tolist()
    if isinstance(value, (list, tuple)):
        return [_nested_list(v) for v in value]
    return value


def _missing_values(name: str, target: _Target, rows: list[int], n_rows: int, strict: bool) -> None:
    """Raise (strict) or warn about missing values in a column."""
    if strict:
        raise _mismatch(
            name,
            target,
            f"{len(rows)} of {n_rows} rows are missing (NaN/None), first at row {rows[0]}",
            "fill or drop those rows, or pass strict=False to use the pad value",
        )
    logger.warning("column '%s': %s missing values replaced by %r", name, len(rows), target.pad)


# ----------------------------------------------------------------------------- value conversion


def _convert(
    values: np.ndarray,
    target: _Target,
    name: str,
    locate: Callable[[int], str],
    strict: bool,
) -> np.ndarray:
    """A 1-D array of values to the target dtype, exactly (see the module docstring)."""
    if values.dtype != object:
        return _convert_numeric(values, target, name, locate, strict)
    return _convert_objects(values, target, name, locate, strict)


def _convert_numeric(
    values: np.ndarray,
    target: _Target,
    name: str,
    locate: Callable[[int], str],
    strict: bool,
) -> np.ndarray:
    """Vectorized conversion of a numeric numpy array."""
    kind = values.dtype.kind
    if kind not in "biuf":
        return _convert_objects(values.astype(object), target, name, locate, strict)
    nan = np.flatnonzero(np.isnan(values)) if kind == "f" else np.empty(0, dtype=np.int64)
    if len(nan) and target.kind != "float":
        _missing_values(name, target, nan.tolist(), len(values), strict)
    if target.kind == "string":
        out = np.empty(len(values), dtype=object)
        out[:] = [_number_text(v) for v in values.tolist()]
        return out
    if len(nan) and target.kind != "float":
        values = np.where(np.isnan(values), target.pad, values)
    if target.kind == "bool":
        bad = np.flatnonzero((values != 0) & (values != 1))
        if len(bad):
            i = int(bad[0])
            raise _mismatch(
                name, target, f"{values[i].item()!r} at {locate(i)} is not a bool (0/1)"
            )
        return values.astype(np.bool_)
    if target.kind == "int":
        if kind == "f":
            bad = np.flatnonzero(~np.isfinite(values) | (values != np.trunc(values)))
            if len(bad):
                i = int(bad[0])
                raise _mismatch(
                    name,
                    target,
                    f"{values[i].item()!r} at {locate(i)} has a fractional part",
                    "check that this is the right column",
                )
        _check_int_range(values, target, name, locate)
        return values.astype(target.np_dtype)
    # float target
    converted = values.astype(target.np_dtype)
    if kind in "iu":
        _check_exact_float(values, converted, target, name, locate, strict)
    return converted


def _check_int_range(
    values: np.ndarray, target: _Target, name: str, locate: Callable[[int], str]
) -> None:
    if len(values) == 0:
        return
    info = np.iinfo(target.np_dtype)
    low, high = values.min(), values.max()
    if values.dtype.kind == "f":
        low, high = float(low), float(high)
    else:
        low, high = int(low), int(high)
    if low < info.min or high > info.max:
        i = int(np.argmin(values)) if low < info.min else int(np.argmax(values))
        raise _mismatch(
            name,
            target,
            f"{values[i].item()!r} at {locate(i)} is outside the {target.info.dtype} range "
            f"[{info.min}, {info.max}]",
        )


def _check_exact_float(
    ints: np.ndarray,
    floats: np.ndarray,
    target: _Target,
    name: str,
    locate: Callable[[int], str],
    strict: bool,
) -> None:
    """Ints converted to floats must round-trip exactly (else raise, or warn when not strict)."""
    limit = 2 ** _FLOAT_EXACT_BITS[target.np_dtype]
    candidates = np.flatnonzero((ints > limit) | (ints < -limit))
    for i in candidates.tolist():
        value = int(ints[i])
        if not math.isfinite(float(floats[i])) or int(floats[i]) != value:
            if strict:
                raise _mismatch(
                    name,
                    target,
                    f"int {value} at {locate(i)} is not exactly representable as "
                    f"{target.info.dtype}",
                    "pass strict=False to round such values",
                )
            logger.warning(
                "column '%s': ints such as %s rounded to %s", name, value, target.info.dtype
            )
            return


def _number_text(value: Any) -> str:
    """A number as the string input sees it: ints without a decimal point."""
    if isinstance(value, float) and math.isnan(value):
        return STRING_PAD
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(float(value))


def _convert_objects(
    values: np.ndarray,
    target: _Target,
    name: str,
    locate: Callable[[int], str],
    strict: bool,
) -> np.ndarray:
    """Element-wise conversion of an object array (mixed Python/numpy scalars)."""
    missing: list[int] = []
    out: list[Any] = []
    for i, value in enumerate(values):
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        if _is_missing(value):
            missing.append(i)
            out.append(math.nan if target.kind == "float" else target.pad)
            continue
        out.append(_convert_one(value, target, name, locate, i))
    if missing and target.kind != "float":
        _missing_values(name, target, missing, len(values), strict)
    if target.kind == "string":
        array = np.empty(len(out), dtype=object)
        array[:] = out
        return array
    if target.kind == "int":
        ints = np.array(out, dtype=object)
        if len(out):
            info = np.iinfo(target.np_dtype)
            for i, value in enumerate(out):
                if not info.min <= value <= info.max:
                    raise _mismatch(
                        name,
                        target,
                        f"{value!r} at {locate(i)} is outside the {target.info.dtype} range "
                        f"[{info.min}, {info.max}]",
                    )
        return ints.astype(target.np_dtype)
    if target.kind == "bool":
        return np.array(out, dtype=np.bool_)
    # float target: ints must round-trip; floats are converted as numpy does
    converted = np.array([float(v) for v in out], dtype=target.np_dtype)
    int_positions = [i for i, v in enumerate(out) if isinstance(v, int)]
    if int_positions:
        ints = np.array([out[i] for i in int_positions], dtype=object)
        limit = 2 ** _FLOAT_EXACT_BITS[target.np_dtype]
        for j, value in zip(int_positions, ints.tolist(), strict=True):
            if abs(value) > limit and (
                not math.isfinite(float(converted[j])) or int(converted[j]) != value
            ):
                if strict:
                    raise _mismatch(
                        name,
                        target,
                        f"int {value} at {locate(j)} is not exactly representable as "
                        f"{target.info.dtype}",
                        "pass strict=False to round such values",
                    )
                logger.warning(
                    "column '%s': ints such as %s rounded to %s", name, value, target.info.dtype
                )
                break
    return converted


def _convert_one(
    value: Any, target: _Target, name: str, locate: Callable[[int], str], index: int
) -> Any:
    """One non-missing scalar as a Python value of the target kind (or a DataError)."""
    if isinstance(value, (str, bytes, np.str_, np.bytes_)):
        if target.kind == "string":
            return str(value) if isinstance(value, str) else bytes(value)
        raise _mismatch(
            name,
            target,
            f"text {_value_preview(value)} at {locate(index)}",
            "text is not converted to numbers; check that this is the right column",
        )
    if isinstance(value, (bool, np.bool_)):
        if target.kind == "string":
            return str(bool(value))
        if target.kind == "float":
            return float(value)
        return int(value) if target.kind == "int" else bool(value)
    if isinstance(value, (int, np.integer)):
        value = int(value)
        if target.kind == "string":
            return str(value)
        if target.kind == "bool":
            if value not in (0, 1):
                raise _mismatch(name, target, f"{value} at {locate(index)} is not a bool (0/1)")
            return bool(value)
        return value
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if target.kind == "string":
            return str(value)
        if target.kind == "float":
            return value
        if not math.isfinite(value) or value != math.trunc(value):
            raise _mismatch(
                name,
                target,
                f"{value!r} at {locate(index)} has a fractional part",
                "check that this is the right column",
            )
        if target.kind == "bool":
            if value not in (0.0, 1.0):
                raise _mismatch(name, target, f"{value} at {locate(index)} is not a bool (0/1)")
            return bool(value)
        return int(value)
    what = "a list" if _is_sequence(value) else f"a {type(value).__name__}"
    raise _mismatch(
        name,
        target,
        f"{locate(index)} holds {what} ({_value_preview(value)})",
        "pass plain values of the input's type",
    )
