"""The aggregations of ``recadvisor stats``, defined once and rendered for each engine's SQL.

Every statistic comes from four query shapes; each engine runs the same rendered SQL over a view
named ``data`` (its own reader of the log files), and only the few spellings that differ between
DuckDB and Spark SQL live in a :class:`Dialect` (identifier quotes, the list functions, type
names). Nothing else is engine-specific: the results come back as Arrow batches of one schema and
are reduced by the same Python code, so both engines give the same numbers.

* :class:`RowCount`: ``rows`` of the dataset.
* :class:`ValueCounts`: exact ``(value, count)`` of one input, nulls included, sorted by value
  (nulls first); for a sequence input, of its elements. Distinct counts, null / pad counts,
  min / max, quantiles, the values themselves and the embedding-row hits are all read from it.
* :class:`LengthCounts`: ``(length, count)`` of a sequence input (a null list has length null).
* :class:`FunctionalDependency`: for a request key (``user_id``) and other inputs: how many key
  values repeat and, per input, on how many of those (and on how many rows) the input takes more
  than one value (null counts as a value; ``MIN <> MAX`` decides, so each key holds O(1) state).

Values of an input are read the way ``analyze --data`` fits a column to the signature
(:mod:`recadvisor.data.coerce`): a string input takes string columns and integer columns
(written in decimal); integer inputs take integer and bool columns; float inputs take float and
integer columns (as float64); bool inputs take bool columns. CSV is read as text: numeric inputs
parse it, and a value that does not parse is a type mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from recadvisor.errors import DataError

STRING = "string"
INT = "int"
FLOAT = "float"
BOOL = "bool"
KINDS = (STRING, INT, FLOAT, BOOL)

#: Arrow type of a value of each kind in every result (both engines are cast to it).
ARROW_TYPES: dict[str, pa.DataType] = {
    STRING: pa.string(),
    INT: pa.int64(),
    FLOAT: pa.float64(),
    BOOL: pa.bool_(),
}
#: source kinds each input kind accepts (see the module docstring)
ACCEPTS: dict[str, tuple[str, ...]] = {
    STRING: (STRING, INT),
    INT: (INT, BOOL),
    FLOAT: (FLOAT, INT),
    BOOL: (BOOL,),
}


@dataclass(frozen=True)
class Dialect:
    """The spellings that differ between the engines' SQL.

    Attributes:
        name: engine name.
        quote: identifier quote character.
        explode: the function turning a list into one row per element.
        length: the function giving a list's length.
        types: kind -> SQL type name used in casts.
    """

    name: str
    quote: str
    explode: str
    length: str
    types: dict[str, str]

    def ident(self, name: str) -> str:
        """A quoted identifier."""
        q = self.quote
        return q + name.replace(q, q + q) + q

    def cast(self, expr: str, kind: str, safe: bool = False) -> str:
        """``CAST(expr AS type)``; ``TRY_CAST`` (null when it does not parse) when ``safe``."""
        return f"{'TRY_CAST' if safe else 'CAST'}({expr} AS {self.types[kind]})"


DUCKDB = Dialect(
    "duckdb",
    '"',
    "unnest",
    "len",
    {STRING: "VARCHAR", INT: "BIGINT", FLOAT: "DOUBLE", BOOL: "BOOLEAN"},
)
SPARK = Dialect(
    "spark",
    "`",
    "explode",
    "size",
    {STRING: "STRING", INT: "BIGINT", FLOAT: "DOUBLE", BOOL: "BOOLEAN"},
)


@dataclass(frozen=True)
class InputColumn:
    """How one signature input is read from the data.

    Attributes:
        input: the signature input key.
        column: the data column feeding it (the same name, as in ``analyze --data``).
        kind: the input's kind (``string``, ``int``, ``float``, ``bool``).
        source: the column's kind as the engine reads it (``string`` for CSV).
        sequence: the input takes a list per row (the column holds lists).
        text: the column is text that a numeric input must parse (CSV).
    """

    input: str
    column: str
    kind: str
    source: str
    sequence: bool
    text: bool = False

    def value_expr(self, d: Dialect, expr: str | None = None) -> str:
        """SQL for one value (an element for sequences, given as ``expr``) as the input reads it."""
        x = expr if expr is not None else d.ident(self.column)
        if self.text and self.kind != STRING:
            return d.cast(x, self.kind, safe=True)
        if self.source == self.kind and self.kind != FLOAT:
            return x
        return d.cast(x, self.kind)

    def unparsed_sql(self, d: Dialect) -> str | None:
        """For text read by a numeric input: SQL counting values that do not parse (else None)."""
        if not (self.text and self.kind != STRING):
            return None
        col = d.ident(self.column)
        return (
            f"SELECT COUNT(*) AS bad FROM data WHERE {col} IS NOT NULL AND "
            f"{d.cast(col, self.kind, safe=True)} IS NULL"
        )


def check_column(
    info_kind: str, sequence: bool, key: str, source: tuple[str, bool], text: bool = False
) -> None:
    """Refuse a column whose type does not fit the input (a one-line :class:`DataError`).

    Args:
        info_kind: the input's kind.
        sequence: the input takes a list per row.
        key: the input key (named in the message).
        source: the column's (kind, holds lists) as the engine reads it.
        text: the data is CSV, read as text (numbers are parsed and checked later).
    """
    kind, is_list = source
    what = f"{'list of ' if is_list else ''}{kind}"
    need = f"{'list of ' if sequence else ''}{info_kind}"
    if is_list != sequence:
        raise DataError(
            f"column '{key}' holds {what} values but input '{key}' takes {need} values; "
            "write sequences as list columns (Parquet lists, JSON arrays) and one value per row "
            "otherwise"
        )
    if kind not in ACCEPTS[info_kind] and not (text and kind == STRING):
        raise DataError(
            f"column '{key}' holds {what} values but input '{key}' takes {need} values; "
            "fix the column type upstream (text is never read as a number)"
        )


# ------------------------------------------------------------------------------- aggregations


@dataclass(frozen=True)
class RowCount:
    """The number of rows."""

    def sql(self, d: Dialect) -> str:
        """The query (one row, column ``rows``)."""
        return "SELECT COUNT(*) AS rows FROM data"

    def schema(self) -> pa.Schema:
        """The result's schema."""
        return pa.schema([("rows", pa.int64())])


@dataclass(frozen=True)
class ValueCounts:
    """Exact ``(value, count)`` of an input (of its elements for sequences), sorted by value."""

    column: InputColumn

    def sql(self, d: Dialect) -> str:
        """The query (columns ``value``, ``count``; nulls first)."""
        c = self.column
        if c.sequence:
            value = c.value_expr(d, "e")
            source = f"(SELECT {d.explode}({d.ident(c.column)}) AS e FROM data) t"
        else:
            value = c.value_expr(d)
            source = "data"
        return (
            f"SELECT {value} AS value, COUNT(*) AS count FROM {source} "
            f"GROUP BY {value} ORDER BY value NULLS FIRST"
        )

    def schema(self) -> pa.Schema:
        """The result's schema."""
        return pa.schema([("value", ARROW_TYPES[self.column.kind]), ("count", pa.int64())])


@dataclass(frozen=True)
class LengthCounts:
    """``(length, count)`` of a sequence input, sorted by length (null lists first)."""

    column: InputColumn

    def sql(self, d: Dialect) -> str:
        """The query (columns ``length``, ``count``)."""
        col = d.ident(self.column.column)
        length = f"CASE WHEN {col} IS NULL THEN NULL ELSE {d.length}({col}) END"
        return (
            f"SELECT {length} AS length, COUNT(*) AS count FROM data "
            f"GROUP BY {length} ORDER BY length NULLS FIRST"
        )

    def schema(self) -> pa.Schema:
        """The result's schema."""
        return pa.schema([("length", pa.int64()), ("count", pa.int64())])


@dataclass(frozen=True)
class FunctionalDependency:
    """Whether each of ``others`` takes one value per value of ``key`` (see the module doc)."""

    key: InputColumn
    others: tuple[InputColumn, ...]

    def sql(self, d: Dialect) -> str:
        """The query (one row: ``keys``, ``repeated_keys``, ``violating_keys_i``,
        ``violating_rows_i`` per other input ``i``)."""
        inner = [f"{self.key.value_expr(d)} AS k", "COUNT(*) AS n"]
        outer = [
            "COUNT(*) AS keys",
            "SUM(CASE WHEN n > 1 THEN 1 ELSE 0 END) AS repeated_keys",
        ]
        for i, other in enumerate(self.others):
            col = d.ident(other.column)
            # more than one value (null counts as one) <=> min <> max, or nulls beside values:
            # O(1) state per key, unlike COUNT(DISTINCT)
            inner.append(
                f"CASE WHEN MIN({col}) <> MAX({col}) OR (COUNT({col}) > 0 AND "
                f"COUNT({col}) < COUNT(*)) THEN 1 ELSE 0 END AS v{i}"
            )
            outer.append(
                f"SUM(CASE WHEN n > 1 AND v{i} = 1 THEN 1 ELSE 0 END) AS violating_keys_{i}"
            )
            outer.append(
                f"SUM(CASE WHEN n > 1 AND v{i} = 1 THEN n ELSE 0 END) AS violating_rows_{i}"
            )
        return (
            f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM data "
            f"GROUP BY {self.key.value_expr(d)}) t"
        )

    def schema(self) -> pa.Schema:
        """The result's schema."""
        fields = [("keys", pa.int64()), ("repeated_keys", pa.int64())]
        for i in range(len(self.others)):
            fields += [(f"violating_keys_{i}", pa.int64()), (f"violating_rows_{i}", pa.int64())]
        return pa.schema(fields)


Aggregation = RowCount | ValueCounts | LengthCounts | FunctionalDependency
