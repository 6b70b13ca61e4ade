"""Session fixtures for the stats tests: the tiny ranker, its logs, stats on each engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recadvisor.stats import compute_stats
from tests.stats.logs import build_ranker, write_logs


@pytest.fixture(scope="session")
def ranker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_ranker(tmp_path_factory.mktemp("stats_ranker") / "model")


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logs(tmp_path_factory.mktemp("stats_logs") / "logs")


@pytest.fixture(scope="session")
def duckdb_stats(
    ranker_dir: Path, logs_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("stats_out") / "duckdb"
    compute_stats(ranker_dir, [str(logs_dir)], out, memory_limit="256MiB", threads=2)
    return out


@pytest.fixture(scope="session")
def spark_session() -> Iterator[object]:
    """One local[2] Spark session for the whole run."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("recadvisor-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    yield spark
    spark.stop()


@pytest.fixture(scope="session")
def spark_stats(
    spark_session: object,
    ranker_dir: Path,
    logs_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    out = tmp_path_factory.mktemp("stats_out") / "spark"
    compute_stats(
        ranker_dir,
        [str(logs_dir)],
        out,
        engine="spark",
        spark_master="local[2]",
        memory_limit="1GiB",
    )
    return out


@pytest.fixture()
def cli() -> CliRunner:
    return CliRunner()
