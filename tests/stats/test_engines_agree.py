"""DuckDB, Spark (local mode) and a plain pyarrow + graph reference give identical statistics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from recadvisor.stats import load_stats
from tests.stats import reference
from tests.stats.logs import AGE_FLIPS, ROWS_PER_DAY

ENGINE_FIELDS = ("engine", "engine_version", "spark_master", "memory_limit_bytes")
RUN_FIELDS = ("started_utc", "seconds")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _pairs(path: Path) -> list[tuple[Any, int]]:
    t = pq.read_table(path)
    return list(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))


def test_duckdb_matches_the_reference(duckdb_stats: Path, logs_dir: Path, ranker_dir: Path) -> None:
    stats = load_stats(duckdb_stats)
    doc = stats.doc
    logs = reference.read_logs(logs_dir)
    assert doc["dataset"]["rows"] == logs.num_rows == 2 * ROWS_PER_DAY
    assert doc["dataset"]["file_count"] == 4 and doc["dataset"]["partition_columns"] == ["day"]
    assert sorted(doc["inputs"]) == sorted(
        ["user_id", "item", "hist", "age", "cat_code", "price", "segment"]
    )
    for key, s in doc["inputs"].items():
        values = reference.values_of(logs, key)
        expected_pairs = reference.value_counts(values)
        got_pairs = _pairs(duckdb_stats / s["counts_file"])
        assert len(got_pairs) == len(expected_pairs), key
        assert all(
            _same(g[0], e[0]) and g[1] == e[1]
            for g, e in zip(got_pairs, expected_pairs, strict=True)
        ), key
        pad = "" if s["kind"] == "string" else 0
        expected = reference.summary(values, pad)
        for field, value in expected.items():
            assert (
                s[field] == pytest.approx(value) if field == "quantiles" else s[field] == value
            ), (
                key,
                field,
            )
    # the planted facts, as a second check on the reference itself
    assert doc["inputs"]["price"]["nulls"] > 0 and doc["inputs"]["price"]["nan"] > 0
    assert doc["inputs"]["hist"]["pads"] > 0 and doc["inputs"]["hist"]["lengths"]["max"] == 4
    assert doc["inputs"]["item"]["values_listed"] is not None  # 8 values: all listed
    hits = reference.row_hits(ranker_dir, logs)
    assert set(doc["tables"]) == set(hits)
    for name, table in doc["tables"].items():
        got = stats.row_hits(name, table["rows"])
        np.testing.assert_array_equal(got, hits[name], err_msg=name)
        assert table["rows_hit"] == int(np.count_nonzero(hits[name]))
        assert all(i["checked"] is True for i in table["inputs"])
    kinds = {i["input"]: i["kind"] for t in doc["tables"].values() for i in t["inputs"]}
    assert kinds == {
        "user_id": "hash_bucket",
        "item": "vocabulary",
        "hist": "hash_bucket",
        "age": "as_string_hash_bucket",
        "cat_code": "identity",
    }


def test_per_request_checks_match_pandas(duckdb_stats: Path, logs_dir: Path) -> None:
    frame = reference.read_logs(logs_dir).to_pandas()
    doc = load_stats(duckdb_stats).doc
    checks = {(c["key"], c["input"]): c for c in doc["per_request"]}
    sizes = frame.groupby("user_id").size()
    repeated = sizes[sizes > 1].index
    for other in ("age", "segment", "item"):
        distinct = frame.groupby("user_id")[other].nunique()
        bad = distinct[(distinct > 1) & distinct.index.isin(repeated)]
        c = checks[("user_id", other)]
        assert (c["keys"], c["repeated_keys"]) == (len(sizes), len(repeated))
        assert c["violating_keys"] == len(bad), other
        assert c["violating_rows"] == int(sizes[bad.index].sum())
    assert checks[("user_id", "segment")]["per_request"] is True
    assert 0 < checks[("user_id", "age")]["violating_keys"] <= AGE_FLIPS
    assert load_stats(duckdb_stats).per_request_inputs("user_id") == ["segment"]


def _without_engine(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    for field in ENGINE_FIELDS + RUN_FIELDS:
        doc["dataset"].pop(field)
    return doc


@pytest.mark.slow  # starts a JVM: 20-130 s on the shared 2-core box
def test_spark_matches_duckdb(spark_stats: Path, duckdb_stats: Path) -> None:
    spark = json.loads((spark_stats / "stats.json").read_text())
    duck = json.loads((duckdb_stats / "stats.json").read_text())
    assert spark["dataset"]["engine"] == "spark" and duck["dataset"]["engine"] == "duckdb"
    assert spark["dataset"]["spark_master"] == "local[2]"
    assert _without_engine(spark) == _without_engine(duck)
    files = sorted(
        p.relative_to(duckdb_stats) for p in (duckdb_stats / "counts").rglob("*.parquet")
    )
    assert files == sorted(
        p.relative_to(spark_stats) for p in (spark_stats / "counts").rglob("*.parquet")
    )
    for rel in files:
        a, b = _pairs(spark_stats / rel), _pairs(duckdb_stats / rel)
        assert len(a) == len(b) and all(
            _same(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b, strict=True)
        ), rel  # NaN values compare equal here
