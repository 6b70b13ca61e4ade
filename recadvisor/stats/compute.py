"""``recadvisor stats``: feature statistics of a model's inputs over the full logs.

:func:`compute_stats` resolves the log files, loads and freezes the model, starts an engine
(:mod:`recadvisor.stats.engines`), runs the aggregations of :mod:`recadvisor.stats.queries` and
reduces their sorted, exact results in one streaming pass each:

1. ``RowCount``; an empty dataset is refused.
2. Per input: ``LengthCounts`` for sequences, then ``ValueCounts``, streamed into
   ``counts/values/<input>.parquet`` while rows, nulls, pads, distinct, NaN, min / max, the most
   frequent values, the full value list when short and the embedding-row hits (the values mapped
   by :mod:`recadvisor.stats.idmap`, weighted by their counts) accumulate. Numeric quantiles are
   read back from the written file once the number of values is known.
3. Per scalar request key (``user_id``...): one ``FunctionalDependency`` over the other scalar
   inputs.
4. The id mappings are checked against the graph on a sample of the values seen.

Memory stays bounded: the engine spills beyond its limit, results arrive in batches, and Python
holds one int64 hit counter per embedding row plus one batch.
"""

from __future__ import annotations

import heapq
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recadvisor.errors import DataError, EngineError
from recadvisor.stats.artifact import (
    KIND,
    ROWS_DIR,
    SCHEMA_VERSION,
    VALUES_DIR,
    DatasetFingerprint,
    InputStats,
    LengthStats,
    PerRequestCheck,
    StatsDoc,
    TableInputStats,
    TableStats,
    safe_file_name,
    write_stats,
)
from recadvisor.stats.dataset import Dataset, resolve_dataset
from recadvisor.stats.engines import ENGINES, DuckDBEngine, SparkEngine, parse_memory
from recadvisor.stats.idmap import CHECK_VALUES, RowMapping, check_mappings, row_mappings
from recadvisor.stats.queries import (
    BOOL,
    FLOAT,
    INT,
    STRING,
    FunctionalDependency,
    InputColumn,
    LengthCounts,
    RowCount,
    ValueCounts,
    check_column,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
DEFAULT_MEMORY_LIMIT = "2GiB"
#: inputs with at most this many distinct values list them all in stats.json
FEW_VALUES = 64
TOP_VALUES = 10
MAX_HISTOGRAM = 1000
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
STRING_PAD = ""
NUMBER_PAD = 0


def input_kind(dtype: str) -> str | None:
    """The value kind of a signature dtype (``None`` for dtypes data cannot feed)."""
    if dtype == "string":
        return STRING
    if dtype == "bool":
        return BOOL
    if dtype.startswith(("int", "uint")):
        return INT
    if dtype.startswith(("float", "bfloat")) or dtype in ("half", "double"):
        return FLOAT
    return None


@dataclass
class _Summary:
    """Streaming reduction of one input's sorted ``(value, count)`` batches."""

    kind: str
    pad: Any
    nulls: int = 0
    values: int = 0
    distinct: int = 0
    pads: int = 0
    nan: int = 0
    first: Any = None
    last: Any = None
    listed: list[list[Any]] = field(default_factory=list)
    top: list[tuple[int, int, Any]] = field(default_factory=list)
    sample: list[Any] = field(default_factory=list)

    def add(self, values: pa.Array, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fold one batch in; return its non-null, non-NaN (values, counts) as numpy."""
        valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
        self.nulls += int(counts[~valid].sum())
        vals = pc.drop_null(values).to_numpy(zero_copy_only=False)
        cnts = counts[valid]
        if self.kind == FLOAT and len(vals):
            nan = np.isnan(vals)
            self.nan += int(cnts[nan].sum())
            vals, cnts = vals[~nan], cnts[~nan]
        self.values += int(cnts.sum())
        self.distinct += len(vals)
        if len(vals) == 0:
            return vals, cnts
        self.pads += int(cnts[vals == self.pad].sum()) if self.kind != BOOL else 0
        if self.first is None:
            self.first = vals[0]
        self.last = vals[-1]
        if len(self.listed) <= FEW_VALUES:
            head = slice(0, FEW_VALUES + 1)
            pairs = zip(vals[head].tolist(), cnts[head].tolist(), strict=True)
            self.listed.extend([v, c] for v, c in pairs)
        if len(self.sample) < CHECK_VALUES:
            self.sample.extend(vals[: CHECK_VALUES - len(self.sample)].tolist())
        # most frequent first, ties to the value that comes first in sort order: the same
        # whatever the batch boundaries of the engine
        offset = self.distinct - len(vals)
        best = np.lexsort((np.arange(len(vals)), -cnts))[:TOP_VALUES]
        for i in best.tolist():
            item = (int(cnts[i]), -(offset + i), _plain(vals[i]))
            if len(self.top) < TOP_VALUES:
                heapq.heappush(self.top, item)
            elif item[:2] > self.top[0][:2]:
                heapq.heapreplace(self.top, item)
        return vals, cnts

    def top_values(self) -> list[list[Any]]:
        """The most frequent values, most frequent first (ties: in sort order)."""
        return [[v, c] for c, _, v in sorted(self.top, reverse=True)]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _quantiles(path: Path, n: int) -> dict[str, Any] | None:
    """The value at rank ``ceil(q * n)`` (at least 1) for each of :data:`QUANTILES`."""
    if n <= 0:
        return None
    targets = [(q, max(1, math.ceil(q * n))) for q in QUANTILES]
    out: dict[str, Any] = {}
    seen = 0
    pending = list(targets)
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
        values = batch.column(0)
        counts = batch.column(1).to_numpy()
        valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
        vals = pc.drop_null(values).to_numpy(zero_copy_only=False)
        cnts = counts[valid]
        if vals.dtype.kind == "f":
            keep = ~np.isnan(vals)
            vals, cnts = vals[keep], cnts[keep]
        if not len(vals):
            continue
        cum = seen + np.cumsum(cnts)
        while pending and pending[0][1] <= cum[-1]:
            q, rank = pending.pop(0)
            out[f"p{round(q * 100):g}"] = _plain(vals[int(np.searchsorted(cum, rank))])
        seen = int(cum[-1])
        if not pending:
            break
    return out


@dataclass
class _TableHits:
    mapping: RowMapping
    hits: np.ndarray
    not_a_row: int = 0


def _stream(engine: Any, agg: Any) -> Iterator[pa.RecordBatch]:
    return engine.batches(agg.sql(engine.dialect), agg.schema())


def _length_stats(engine: Any, column: InputColumn) -> LengthStats:
    hist: list[list[int]] = []
    null_lists = 0
    total = rows = 0
    lo = hi = None
    for batch in _stream(engine, LengthCounts(column)):
        for length, count in zip(
            batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
        ):
            if length is None:
                null_lists += count
                continue
            lo = length if lo is None else lo
            hi = length
            rows += count
            total += length * count
            if len(hist) < MAX_HISTOGRAM:
                hist.append([length, count])
    return {
        "min": lo,
        "max": hi,
        "mean": total / rows if rows else None,
        "null_lists": null_lists,
        "histogram": hist,
    }


def _input_stats(
    engine: Any,
    column: InputColumn,
    dtype: str,
    rows: int,
    out_dir: Path,
    tables: dict[str, _TableHits],
) -> tuple[InputStats, list[Any]]:
    lengths = _length_stats(engine, column) if column.sequence else None
    agg = ValueCounts(column)
    rel = f"{VALUES_DIR}/{safe_file_name(column.input)}.parquet"
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pad = STRING_PAD if column.kind == STRING else NUMBER_PAD
    summary = _Summary(column.kind, pad)
    mine = [t for t in tables.values() if t.mapping.input == column.input]
    with pq.ParquetWriter(path, agg.schema()) as writer:
        for batch in _stream(engine, agg):
            writer.write_batch(batch)
            vals, cnts = summary.add(batch.column(0), batch.column(1).to_numpy())
            if not len(vals):
                continue
            for t in mine:
                ids = t.mapping.rows_of(vals)
                ok = ids >= 0
                t.not_a_row += int(cnts[~ok].sum())
                t.hits += np.bincount(ids[ok], weights=cnts[ok], minlength=len(t.hits)).astype(
                    np.int64
                )
    numeric = column.kind in (INT, FLOAT)
    stats: InputStats = {
        "input": column.input,
        "column": column.column,
        "dtype": dtype,
        "kind": column.kind,
        "sequence": column.sequence,
        "rows": rows,
        "values": summary.values,
        "nulls": summary.nulls,
        "pads": summary.pads,
        "pad_value": pad,
        "distinct": summary.distinct,
        "nan": summary.nan,
        "min": _plain(summary.first),
        "max": _plain(summary.last),
        "quantiles": _quantiles(path, summary.values) if numeric else None,
        "values_listed": summary.listed if summary.distinct <= FEW_VALUES else None,
        "top_values": summary.top_values(),
        "lengths": lengths,
        "counts_file": rel,
    }
    return stats, summary.sample


def request_keys(columns: dict[str, InputColumn]) -> list[str]:
    """The inputs named like a request key (``user_id``...; as ``per_request_dedup`` finds them),
    scalar ones only: a history list is per-request, not the request's key."""
    from recadvisor.rewrite.per_request_dedup import detect_request_inputs

    return [k for k in detect_request_inputs(list(columns)) if not columns[k].sequence]


def _per_request(
    engine: Any, columns: dict[str, InputColumn], progress: Callable[[str], None]
) -> list[PerRequestCheck]:
    from recadvisor.rewrite.per_request_dedup import MIN_REPEATED_GROUPS

    seeds = request_keys(columns)
    checks: list[PerRequestCheck] = []
    for seed in seeds:
        # scalar inputs only: a list (a history) changes between requests, and comparing
        # lists per key costs more than the rest of the statistics together
        others = tuple(c for k, c in columns.items() if k not in seeds and not c.sequence)
        progress(f"per-request check on {seed}")
        if not others:
            continue
        agg = FunctionalDependency(columns[seed], others)
        row = next((b.to_pylist()[0] for b in _stream(engine, agg) if b.num_rows), None) or {}
        keys = int(row.get("keys") or 0)
        repeated = int(row.get("repeated_keys") or 0)
        for i, other in enumerate(others):
            bad = int(row.get(f"violating_keys_{i}") or 0)
            checks.append(
                {
                    "key": seed,
                    "input": other.input,
                    "keys": keys,
                    "repeated_keys": repeated,
                    "violating_keys": bad,
                    "violating_rows": int(row.get(f"violating_rows_{i}") or 0),
                    "violation_rate": bad / repeated if repeated else 0.0,
                    "per_request": bad == 0 and repeated >= MIN_REPEATED_GROUPS,
                }
            )
    return checks


def _columns(
    spec: Any, found: dict[str, tuple[str, bool]], text: bool, notes: list[str]
) -> tuple[dict[str, InputColumn], list[str]]:
    columns: dict[str, InputColumn] = {}
    missing: list[str] = []
    for key, info in spec.inputs.items():
        kind = input_kind(info.dtype)
        if kind is None:
            notes.append(f"input '{key}' ({info.dtype}) is not computed: no data type feeds it")
            continue
        if key not in found:
            missing.append(key)
            continue
        rank = None if info.shape is None else len(info.shape)
        if rank is not None and rank > 2:
            notes.append(f"input '{key}' has rank {rank}; only ranks 1 and 2 are computed")
            continue
        source = found[key]
        if rank is None:
            sequence = source[1]
        else:
            sequence = rank == 2 and info.shape[1] != 1
        check_column(kind, sequence, key, source, text)
        columns[key] = InputColumn(key, key, kind, source[0], sequence, text=text)
    if not columns:
        raise DataError(
            f"the data has no column named like an input of signature '{spec.key}' "
            f"(inputs: {', '.join(spec.inputs)}; columns: {', '.join(list(found)[:20])})"
        )
    return columns, missing


def compute_stats(
    model_dir: str | Path,
    data: list[str],
    out_dir: str | Path,
    *,
    signature: str | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
    force: bool = False,
    allow_unsafe_ops: bool = False,
    check: bool = True,
    progress: ProgressCallback | None = None,
) -> StatsDoc:
    """Compute the statistics of a model's inputs over log files and write ``out_dir``.

    Args:
        model_dir: the SavedModel directory.
        data: files, folders or globs (Parquet, CSV or JSON Lines; hive partitions).
        out_dir: the stats folder to write atomically (``stats.json`` and ``counts/``).
        signature: signature key.
        engine: ``duckdb`` (default) or ``spark``.
        spark_master: Spark master URL (``local[2]``, ``yarn``, ``spark://host:7077``); ``None``
            uses the session ``spark-submit`` started, else ``local[*]``.
        memory_limit: DuckDB's memory limit / Spark's local driver memory (e.g. ``2GiB``).
        threads: DuckDB threads (default: the CPU count).
        force: replace an existing ``out_dir``.
        allow_unsafe_ops: load a model holding file/network/Python ops.
        check: compare the id mappings with the graph's own ids on a sample of the values.
        progress: ``progress(stage, done, total)`` callback.

    Returns:
        The ``stats.json`` document written.

    Raises:
        DataError: unreadable or missing data, a column type that does not fit its input, an
            empty dataset.
        EngineError: the engine cannot start (pyspark / Java missing, Spark master unreachable).
        OutputExistsError: ``out_dir`` exists and ``force`` is false.
    """
    from recadvisor.api import refuse_unsafe_models
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model
    from recadvisor.output import atomic_output_dir, check_output_dir

    if engine not in ENGINES:
        raise EngineError(f"unknown engine '{engine}'; use {' or '.join(ENGINES)}")
    limit = parse_memory(memory_limit)
    dataset = resolve_dataset(list(data))
    check_output_dir(out_dir, force)
    refuse_unsafe_models([model_dir], allow_unsafe_ops, "stats")
    graph = freeze(load_model(model_dir, signature))
    started = time.time()
    spill = tempfile.mkdtemp(prefix="recadvisor-stats-spill-")
    try:
        runner = _open_engine(engine, dataset, spark_master, limit, spill, threads)
        try:
            with atomic_output_dir(out_dir, force) as tmp:
                doc = _run(runner, graph, dataset, Path(tmp), check, progress)
                doc["model"] = {
                    "path": str(model_dir),
                    "signature": graph.signature.key,
                    "fingerprint": graph.fingerprint(),
                }
                doc["dataset"].update(
                    {
                        "engine": runner.name,
                        "engine_version": runner.version,
                        "spark_master": getattr(runner, "master", None),
                        "memory_limit_bytes": limit,
                        "started_utc": datetime.fromtimestamp(started, timezone.utc).isoformat(),
                        "seconds": round(time.time() - started, 3),
                    }
                )
                write_stats(Path(tmp), doc)
        finally:
            runner.close()
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return doc


def _open_engine(
    engine: str,
    dataset: Dataset,
    master: str | None,
    limit: int,
    spill: str,
    threads: int | None,
) -> Any:
    if engine == "spark":
        return SparkEngine(dataset, master, limit, spill)
    if master is not None:
        raise EngineError("--spark-master is only used with --engine spark")
    return DuckDBEngine(dataset, limit, spill, threads)


def _run(
    engine: Any,
    graph: Any,
    dataset: Dataset,
    out: Path,
    check: bool,
    progress: ProgressCallback | None,
) -> StatsDoc:
    notes: list[str] = []
    columns, missing = _columns(graph.signature, engine.columns(), dataset.format == "csv", notes)
    mappings, unmapped = row_mappings(graph)
    mappings = [m for m in mappings if m.input in columns]
    total_steps = 1 + len(columns) + len(request_keys(columns)) + 1
    done = 0

    def step(label: str) -> None:
        nonlocal done
        if progress is not None:
            progress(label, done, total_steps)
        done += 1

    step("counting rows")
    rows = int(next(b.column(0)[0].as_py() for b in _stream(engine, RowCount())))
    if rows == 0:
        raise DataError(
            f"the dataset ({len(dataset.files)} files) holds no rows; pass the log files"
        )
    for column in columns.values():
        sql = column.unparsed_sql(engine.dialect)
        if sql is None:
            continue
        bad = next(
            b.column(0)[0].as_py() for b in engine.batches(sql, pa.schema([("bad", pa.int64())]))
        )
        if bad:
            raise DataError(
                f"column '{column.column}' holds {bad} text values that are not "
                f"{column.kind} numbers, which input '{column.input}' takes"
            )
    tables = {
        f"{m.table}\0{m.input}": _TableHits(m, np.zeros(m.rows, dtype=np.int64)) for m in mappings
    }
    inputs: dict[str, InputStats] = {}
    samples: dict[str, np.ndarray] = {}
    for key, column in columns.items():
        step(f"counting values of {key}")
        inputs[key], sample = _input_stats(
            engine, column, graph.signature.inputs[key].dtype, rows, out, tables
        )
        samples[key] = np.asarray(sample, dtype=object if column.kind == STRING else None)
    per_request = _per_request(engine, columns, step)
    step("checking id mappings against the graph")
    checked = check_mappings(graph, mappings, samples) if check else {}
    table_docs = _table_docs(tables, checked, out)
    for m in mappings:
        if checked.get((m.table, m.input)) is False:
            notes.append(
                f"the {m.kind} id map of '{m.input}' differs from the graph's own ids on "
                f"table {m.table}: its row hits are not trustworthy; report this"
            )
    if progress is not None:
        progress("done", total_steps, total_steps)
    fingerprint: DatasetFingerprint = {
        "files": [{"path": f.path, "size": f.size, "mtime": f.mtime} for f in dataset.files],
        "file_count": len(dataset.files),
        "total_bytes": dataset.total_bytes,
        "digest": dataset.digest(),
        "format": dataset.format,
        "partition_columns": list(dataset.partition_columns),
        "rows": rows,
        "engine": "",
        "engine_version": "",
        "spark_master": None,
        "memory_limit_bytes": 0,
        "started_utc": "",
        "seconds": 0.0,
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "model": {"path": "", "signature": "", "fingerprint": ""},
        "dataset": fingerprint,
        "inputs": inputs,
        "missing_inputs": missing,
        "tables": table_docs,
        "unmapped": [u for u in unmapped if set(u["inputs"]) & set(columns)],
        "per_request": per_request,
        "notes": notes,
    }


def _table_docs(
    tables: dict[str, _TableHits], checked: dict[tuple[str, str], bool | None], out: Path
) -> dict[str, TableStats]:
    grouped: dict[str, list[_TableHits]] = {}
    for t in tables.values():
        grouped.setdefault(t.mapping.table, []).append(t)
    docs: dict[str, TableStats] = {}
    for name, parts in sorted(grouped.items()):
        first = parts[0].mapping
        total = np.sum([p.hits for p in parts], axis=0)
        hit_rows = np.flatnonzero(total)
        rel = f"{ROWS_DIR}/{safe_file_name(name)}.parquet"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            pa.table({"row": pa.array(hit_rows, pa.int64()), "hits": pa.array(total[hit_rows])}),
            out / rel,
        )
        per_input: list[TableInputStats] = []
        for p in sorted(parts, key=lambda p: p.mapping.input):
            desc = p.mapping.describe()
            per_input.append(
                {
                    "input": desc["input"],
                    "kind": desc["kind"],
                    "params": desc["params"],
                    "hits": int(p.hits.sum()),
                    "rows_hit": int(np.count_nonzero(p.hits)),
                    "not_a_row": p.not_a_row,
                    "checked": checked.get((name, p.mapping.input)),
                }
            )
        docs[name] = {
            "table": name,
            "variable": first.variable,
            "rows": first.rows,
            "rows_hit": int(len(hit_rows)),
            "hits": int(total.sum()),
            "inputs": per_input,
            "counts_file": rel,
        }
    return docs
