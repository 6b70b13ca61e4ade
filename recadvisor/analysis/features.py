"""Statistics of the sample data, per column and between columns (pandas).

:func:`compute_feature_stats` reads a DataFrame with one column per signature input (list cells for
sequence features) and computes what the detectors need:

* per column: value kind, whether it is a sequence, distinct count, top values, null share,
  numeric range, whether every value of a string column parses as a number (numbers served as
  strings), list lengths and padding share for sequences;
* between columns: identical columns and one-to-one mapped columns (the same feature sent twice
  under two names, e.g. ``city`` and ``city_code``), and the value overlap between id-like columns
  (two inputs drawing from one id space: the basis of shared-embedding advice).

Padding in sequences (``""`` elements) and nulls are left out of distinct counts and overlaps;
an empty string in a scalar column counts as a value.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from recadvisor.analysis.findings import to_jsonable
from recadvisor.model.spec import SignatureSpec

log = logging.getLogger(__name__)

STRING = "string"
INT = "int"
FLOAT = "float"
BOOL = "bool"
OTHER = "other"
PAD_VALUES = ("", b"")
# columns with more distinct values than this are not compared for one-to-one mappings
MAX_PAIR_COLUMNS = 64


class ListLengthDict(TypedDict):
    """Lengths of a sequence column's lists."""

    min: int | None
    max: int | None
    mean: float | None


class ColumnStatsDict(TypedDict):
    """``ColumnStats.to_dict()`` (``top_values``: ``[value, count]`` pairs)."""

    name: str
    kind: str
    is_sequence: bool
    rows: int
    values: int
    distinct: int
    null_share: float | None
    top_values: list[list[Any]]
    numeric_min: float | None
    numeric_max: float | None
    all_numeric: bool
    list_length: ListLengthDict | None
    pad_share: float | None
    signature_dtype: str | None


class ColumnRelationDict(TypedDict):
    """``ColumnRelation.to_dict()``."""

    a: str
    b: str
    relation: str
    distinct: int


class ValueOverlapDict(TypedDict):
    """``ValueOverlap.to_dict()``."""

    a: str
    b: str
    distinct_a: int
    distinct_b: int
    common: int
    jaccard: float
    containment: float


class FeatureStatsDict(TypedDict):
    """``FeatureStats.to_dict()``: ``analysis.json``'s ``feature_stats``."""

    rows: int
    columns: dict[str, ColumnStatsDict]
    identical: list[ColumnRelationDict]
    one_to_one: list[ColumnRelationDict]
    overlaps: list[ValueOverlapDict]


@dataclass(frozen=True)
class ColumnStats:
    """Statistics of one data column.

    Attributes:
        name: column name (the signature input key when it matches one).
        kind: value kind: ``string``, ``int``, ``float``, ``bool`` or ``other``.
        is_sequence: cells are lists (a sequence feature); values below are over list elements.
        rows: number of rows.
        values: number of values counted (list elements for sequences, padding excluded).
        distinct: number of distinct values (sequence padding and nulls excluded).
        null_share: share of rows that are null (NaN/None).
        top_values: the most frequent values with their counts.
        numeric_min / numeric_max: range of numeric values (or of string values that all parse
            as numbers); ``None`` otherwise.
        all_numeric: for strings: every non-empty value parses as a number.
        list_length_min / list_length_max / list_length_mean: sequence lengths.
        pad_share: for sequences: share of list elements that are padding.
        signature_dtype: the signature input's dtype, when the column is an input.
    """

    name: str
    kind: str
    is_sequence: bool
    rows: int
    values: int
    distinct: int
    null_share: float
    top_values: tuple[tuple[Any, int], ...]
    numeric_min: float | None = None
    numeric_max: float | None = None
    all_numeric: bool = False
    list_length_min: int | None = None
    list_length_max: int | None = None
    list_length_mean: float | None = None
    pad_share: float | None = None
    signature_dtype: str | None = None

    @property
    def is_id_like(self) -> bool:
        """String or integer values with more than one distinct value."""
        return self.kind in (STRING, INT) and self.distinct > 1

    def to_dict(self) -> ColumnStatsDict:
        """JSON form."""
        return to_jsonable(
            {
                "name": self.name,
                "kind": self.kind,
                "is_sequence": self.is_sequence,
                "rows": self.rows,
                "values": self.values,
                "distinct": self.distinct,
                "null_share": self.null_share,
                "top_values": [[v, c] for v, c in self.top_values],
                "numeric_min": self.numeric_min,
                "numeric_max": self.numeric_max,
                "all_numeric": self.all_numeric,
                "list_length": None
                if not self.is_sequence
                else {
                    "min": self.list_length_min,
                    "max": self.list_length_max,
                    "mean": self.list_length_mean,
                },
                "pad_share": self.pad_share,
                "signature_dtype": self.signature_dtype,
            }
        )


@dataclass(frozen=True)
class ColumnRelation:
    """Two columns carrying the same information.

    Attributes:
        a / b: column names (``a < b``).
        relation: ``identical`` (same values row by row) or ``one_to_one`` (each value of ``a``
            always comes with the same value of ``b`` and vice versa).
        distinct: distinct values (pairs) involved.
    """

    a: str
    b: str
    relation: str
    distinct: int

    def to_dict(self) -> ColumnRelationDict:
        """JSON form."""
        return {"a": self.a, "b": self.b, "relation": self.relation, "distinct": self.distinct}


@dataclass(frozen=True)
class ValueOverlap:
    """Shared values between two id-like columns.

    Attributes:
        a / b: column names (``a < b``).
        distinct_a / distinct_b: distinct values in each.
        common: distinct values in both.
        jaccard: ``common / |a | b|``.
        containment: ``common / min(|a|, |b|)`` (1.0 when one id set lies inside the other).
    """

    a: str
    b: str
    distinct_a: int
    distinct_b: int
    common: int
    jaccard: float
    containment: float

    def to_dict(self) -> ValueOverlapDict:
        """JSON form."""
        return {
            "a": self.a,
            "b": self.b,
            "distinct_a": self.distinct_a,
            "distinct_b": self.distinct_b,
            "common": self.common,
            "jaccard": round(self.jaccard, 6),
            "containment": round(self.containment, 6),
        }


@dataclass(frozen=True)
class FeatureStats:
    """Statistics of the sample data.

    Attributes:
        rows: number of rows.
        columns: column name -> :class:`ColumnStats`.
        identical: pairs of identical columns.
        one_to_one: pairs of one-to-one mapped (but not identical) columns.
        overlaps: value overlaps between id-like columns (only pairs sharing a value).
    """

    rows: int
    columns: dict[str, ColumnStats] = field(default_factory=dict)
    identical: tuple[ColumnRelation, ...] = ()
    one_to_one: tuple[ColumnRelation, ...] = ()
    overlaps: tuple[ValueOverlap, ...] = ()

    def column(self, name: str) -> ColumnStats | None:
        """Stats of one column, or ``None``."""
        return self.columns.get(name)

    def overlap(self, a: str, b: str) -> ValueOverlap | None:
        """The value overlap between two columns (either order), or ``None`` if none shared."""
        for ov in self.overlaps:
            if {ov.a, ov.b} == {a, b}:
                return ov
        return None

    def to_dict(self) -> FeatureStatsDict:
        """JSON form (``analysis.json`` key ``feature_stats``)."""
        return {
            "rows": self.rows,
            "columns": {k: v.to_dict() for k, v in self.columns.items()},
            "identical": [r.to_dict() for r in self.identical],
            "one_to_one": [r.to_dict() for r in self.one_to_one],
            "overlaps": [o.to_dict() for o in self.overlaps],
        }


def _is_list_cell(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _normalize(value: Any) -> Any:
    """bytes -> str, numpy scalars -> Python scalars (so values compare across columns)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _kind_of(values: pd.Series) -> str:
    non_null = values.dropna()
    if non_null.empty:
        return OTHER
    if pd.api.types.is_bool_dtype(non_null):
        return BOOL
    if pd.api.types.is_integer_dtype(non_null):
        return INT
    if pd.api.types.is_float_dtype(non_null):
        return FLOAT
    sample = non_null.iloc[: min(len(non_null), 1000)]
    if all(isinstance(v, (str, bytes)) for v in sample):
        return STRING
    if all(isinstance(v, (bool, np.bool_)) for v in sample):
        return BOOL
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in sample):
        return INT
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in sample):
        return FLOAT
    return OTHER


def _flatten(column: pd.Series) -> tuple[pd.Series, np.ndarray, int]:
    """Sequence column -> (element series without padding, list lengths, padding count)."""
    lengths = np.array([len(v) if _is_list_cell(v) else 0 for v in column], dtype=np.int64)
    flat = column.explode(ignore_index=True).dropna()
    flat = flat.map(_normalize)
    is_pad = flat.isin(PAD_VALUES)
    return flat[~is_pad], lengths, int(is_pad.sum())


def _column_stats(
    name: str, column: pd.Series, top_k: int, signature_dtype: str | None
) -> tuple[ColumnStats, pd.Series]:
    rows = len(column)
    null_mask = column.isna()  # list cells are never null here, only None/NaN cells
    null_share = float(null_mask.mean()) if rows else 0.0
    non_null = column[~null_mask]
    is_sequence = bool(len(non_null)) and bool(non_null.map(_is_list_cell).all())
    list_min = list_max = None
    list_mean = pad_share = None
    if is_sequence:
        values, lengths, pads = _flatten(non_null)
        if len(lengths):
            list_min, list_max = int(lengths.min()), int(lengths.max())
            list_mean = float(lengths.mean())
        total = len(values) + pads
        pad_share = pads / total if total else 0.0
        values = values.infer_objects()
    else:
        values = non_null.map(_normalize) if _is_text_dtype(non_null) else non_null
    kind = _kind_of(values)
    counts = values.value_counts(sort=True) if len(values) else pd.Series(dtype=np.int64)
    top = tuple((_normalize(v), int(c)) for v, c in counts.head(top_k).items())
    numeric_min = numeric_max = None
    all_numeric = False
    if kind in (INT, FLOAT) and len(values):
        numbers = values.to_numpy(dtype=np.float64)
        numeric_min, numeric_max = float(np.min(numbers)), float(np.max(numbers))
    elif kind == STRING and len(counts):
        parsed = pd.to_numeric(pd.Series(counts.index, dtype=object).map(str), errors="coerce")
        if parsed.notna().all():
            all_numeric = True
            numeric_min, numeric_max = float(parsed.min()), float(parsed.max())
    stats = ColumnStats(
        name=name,
        kind=kind,
        is_sequence=is_sequence,
        rows=rows,
        values=int(len(values)),
        distinct=int(len(counts)),
        null_share=null_share,
        top_values=top,
        numeric_min=numeric_min,
        numeric_max=numeric_max,
        all_numeric=all_numeric,
        list_length_min=list_min,
        list_length_max=list_max,
        list_length_mean=list_mean,
        pad_share=pad_share,
        signature_dtype=signature_dtype,
    )
    return stats, values


def _is_text_dtype(column: pd.Series) -> bool:
    """Object or pandas string dtype (pandas 3 infers ``str`` for text columns)."""
    return pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)


def _scalar_key(column: pd.Series) -> pd.Series:
    """A hashable, comparable view of a scalar column (bytes decoded, NaN kept as a value)."""
    if _is_text_dtype(column):
        return column.map(_normalize).astype(str).where(column.notna(), "<null>")
    return column


def _relations(
    frame: pd.DataFrame, names: Sequence[str], stats: dict[str, ColumnStats]
) -> tuple[list[ColumnRelation], list[ColumnRelation]]:
    identical: list[ColumnRelation] = []
    one_to_one: list[ColumnRelation] = []
    candidates = [
        n
        for n in names
        if not stats[n].is_sequence and stats[n].distinct > 1 and stats[n].distinct < stats[n].rows
    ]
    if len(candidates) > MAX_PAIR_COLUMNS:
        log.info(
            "comparing only the first %s of %s columns for one-to-one mappings",
            MAX_PAIR_COLUMNS,
            len(candidates),
        )
        candidates = candidates[:MAX_PAIR_COLUMNS]
    keys = {n: _scalar_key(frame[n]) for n in candidates}
    codes = {n: pd.factorize(keys[n], use_na_sentinel=False)[0] for n in candidates}
    n_codes = {n: int(codes[n].max()) + 1 if len(codes[n]) else 0 for n in candidates}
    for a, b in itertools.combinations(sorted(candidates), 2):
        if n_codes[a] != n_codes[b]:
            continue  # a bijection needs equal distinct counts
        ka, kb = keys[a], keys[b]
        if ka.dtype == kb.dtype and ka.reset_index(drop=True).equals(kb.reset_index(drop=True)):
            identical.append(ColumnRelation(a, b, "identical", n_codes[a]))
            continue
        pair_codes = codes[a].astype(np.int64) * n_codes[b] + codes[b]
        if len(np.unique(pair_codes)) == n_codes[a]:
            one_to_one.append(ColumnRelation(a, b, "one_to_one", n_codes[a]))
    return identical, one_to_one


def _overlaps(values: dict[str, pd.Series], stats: dict[str, ColumnStats]) -> list[ValueOverlap]:
    id_cols = sorted(n for n, s in stats.items() if s.is_id_like)
    sets = {}
    for n in id_cols:
        v = values[n]
        sets[n] = (
            set(v.astype(str).unique())
            if stats[n].kind == STRING
            else set(v.astype(np.int64).unique().tolist())
        )
    result = []
    for a, b in itertools.combinations(id_cols, 2):
        if stats[a].kind != stats[b].kind:
            continue
        common = len(sets[a] & sets[b])
        if common == 0:
            continue
        union = len(sets[a] | sets[b])
        smaller = min(len(sets[a]), len(sets[b]))
        result.append(
            ValueOverlap(
                a=a,
                b=b,
                distinct_a=len(sets[a]),
                distinct_b=len(sets[b]),
                common=common,
                jaccard=common / union if union else 0.0,
                containment=common / smaller if smaller else 0.0,
            )
        )
    return result


def compute_feature_stats(
    frame: pd.DataFrame,
    spec: SignatureSpec | None = None,
    *,
    columns: Iterable[str] | None = None,
    top_k: int = 10,
) -> FeatureStats:
    """Compute :class:`FeatureStats` for a sample DataFrame.

    Args:
        frame: one column per feature; list cells for sequence features.
        spec: the signature; when given, only its input columns present in ``frame`` are
            described (labels and other extra columns are left out) and each column records
            its signature dtype.
        columns: explicit column names to describe (overrides ``spec``'s selection).
        top_k: how many most frequent values to keep per column.

    Returns:
        The statistics.
    """
    if columns is not None:
        names = [c for c in columns if c in frame.columns]
    elif spec is not None:
        names = [k for k in spec.inputs if k in frame.columns]
    else:
        names = [str(c) for c in frame.columns]
    stats: dict[str, ColumnStats] = {}
    values: dict[str, pd.Series] = {}
    for name in names:
        dtype = spec.inputs[name].dtype if spec is not None and name in spec.inputs else None
        stats[name], values[name] = _column_stats(name, frame[name], top_k, dtype)
    identical, one_to_one = _relations(frame, names, stats)
    return FeatureStats(
        rows=int(len(frame)),
        columns=stats,
        identical=tuple(identical),
        one_to_one=tuple(one_to_one),
        overlaps=tuple(_overlaps(values, stats)),
    )
