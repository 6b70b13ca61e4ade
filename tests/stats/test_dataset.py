"""DATA arguments -> files: folders, globs, hive partitions, URIs, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from recadvisor.errors import DataError, EngineError
from recadvisor.stats.dataset import file_format, resolve_dataset
from recadvisor.stats.engines import DuckDBEngine, check_spark_master, parse_memory
from recadvisor.stats.queries import DUCKDB, SPARK, InputColumn, ValueCounts


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folders_globs_and_hive_partitions(tmp_path: Path) -> None:
    for day in (1, 2):
        _touch(tmp_path / "logs" / f"day={day}" / "part-0.parquet")
    _touch(tmp_path / "logs" / "_SUCCESS")
    _touch(tmp_path / "logs" / "day=1" / ".part-0.parquet.crc")
    folder = resolve_dataset([str(tmp_path / "logs")])
    assert [Path(p).parent.name for p in folder.paths] == ["day=1", "day=2"]
    assert folder.format == "parquet" and folder.partition_columns == ("day",)
    assert folder.root == str(tmp_path / "logs")
    one_day = resolve_dataset([str(tmp_path / "logs" / "day=1" / "*.parquet")])
    assert one_day.partition_columns == ("day",)  # a partition folder is never the root
    assert folder.digest() != one_day.digest()


def test_file_formats() -> None:
    assert file_format("a.csv.gz") == "csv" and file_format("a.ndjson") == "jsonl"
    assert file_format("a.parquet.gz") is None and file_format("_SUCCESS") is None


def test_refusals(tmp_path: Path) -> None:
    _touch(tmp_path / "a.parquet")
    _touch(tmp_path / "b.csv")
    with pytest.raises(DataError, match="mixes formats"):
        resolve_dataset([str(tmp_path)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .parquet"):
        resolve_dataset([str(tmp_path / "empty")])
    with pytest.raises(DataError, match="not both"):
        resolve_dataset([str(tmp_path / "a.parquet"), "hdfs://nn/logs"])


def test_uris_are_for_spark_only(tmp_path: Path) -> None:
    remote = resolve_dataset(["hdfs://namenode/logs/day=1", "hdfs://namenode/logs/day=2"])
    assert remote.remote and remote.format == "parquet" and remote.root is None
    with pytest.raises(EngineError, match="--engine spark"):
        DuckDBEngine(remote, 2**28, str(tmp_path))


def test_engine_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("YARN_CONF_DIR", raising=False)
    assert parse_memory("2GiB") == 2 * 2**30 and parse_memory("512MB") == 512 * 2**20
    check_spark_master("local[2]")
    with pytest.raises(EngineError, match="HADOOP_CONF_DIR"):
        check_spark_master("yarn")


def test_one_spec_renders_for_both_engines() -> None:
    seq = InputColumn("hist", "hist", "string", "string", sequence=True)
    duck, spark = ValueCounts(seq).sql(DUCKDB), ValueCounts(seq).sql(SPARK)
    assert 'unnest("hist")' in duck and "explode(`hist`)" in spark
    assert duck.replace('"', "`").replace("unnest", "explode") == spark
    as_text = InputColumn("age", "age", "string", "int", sequence=False)
    assert "CAST(`age` AS STRING)" in ValueCounts(as_text).sql(SPARK)
