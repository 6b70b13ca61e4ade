"""``recadvisor stats`` through the CLI: a full run, CSV input, and every kind of bad input
(one line on stderr, the documented exit code, no output folder left behind)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from recadvisor.cli import app
from tests.stats.logs import log_table


def _run(cli: CliRunner, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["stats", *args])
    return result.exit_code, result.stdout, result.stderr


def _one_line_error(stderr: str, *parts: str) -> None:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    assert "Traceback" not in stderr


def test_cli_writes_stats_and_refuses_to_overwrite(
    cli: CliRunner, ranker_dir: Path, logs_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "stats"
    code, stdout, stderr = _run(
        cli, str(ranker_dir), str(logs_dir / "day=*" / "*.parquet"), "--out", str(out)
    )
    assert code == 0, stderr
    assert "wrote" in stdout and "one value per user_id: segment" in stdout
    doc = json.loads((out / "stats.json").read_text())
    assert doc["schema_version"] == 1 and doc["dataset"]["rows"] == 3000
    assert doc["dataset"]["file_count"] == 4 and doc["dataset"]["engine"] == "duckdb"
    assert (out / "counts" / "values" / "user_id.parquet").is_file()
    code, _, stderr = _run(cli, str(ranker_dir), str(logs_dir), "--out", str(out))
    assert code == 6
    _one_line_error(stderr, "--force")


def test_csv_logs_give_the_parquet_counts(
    cli: CliRunner, ranker_dir: Path, duckdb_stats: Path, logs_dir: Path, tmp_path: Path
) -> None:
    tables = [log_table(day) for day in (1, 2)]
    scalar = [c for c in tables[0].column_names if c not in ("hist", "price")]
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    for day, table in zip((1, 2), tables, strict=True):
        pcsv.write_csv(table.select(scalar), csv_dir / f"day{day}.csv")
    out = tmp_path / "stats"
    code, _, stderr = _run(cli, str(ranker_dir), str(csv_dir), "--out", str(out))
    assert code == 0, stderr
    doc = json.loads((out / "stats.json").read_text())
    assert doc["dataset"]["format"] == "csv"
    assert sorted(doc["missing_inputs"]) == ["hist", "price"]
    for key in ("user_id", "item", "age", "cat_code", "segment"):
        csv_counts = pq.read_table(out / doc["inputs"][key]["counts_file"])
        parquet_counts = pq.read_table(duckdb_stats / "counts" / "values" / f"{key}.parquet")
        assert csv_counts.equals(parquet_counts), key


def _bad_logs(tmp_path: Path, kind: str) -> Path:
    table = log_table(1, rows=50)
    path = tmp_path / f"{kind}.parquet"
    if kind == "corrupt":
        path.write_bytes(b"PAR1 this is not parquet at all")
    elif kind == "wrong_type":
        pq.write_table(table.set_column(0, "user_id", pa.array([1.5] * 50)), path)
    elif kind == "empty":
        pq.write_table(table.slice(0, 0), path)
    elif kind == "no_inputs":
        pq.write_table(pa.table({"something": [1, 2]}), path)
    elif kind == "csv_text_number":
        path = tmp_path / "bad.csv"
        path.write_text("user_id,age\nu1,30\nu2,thirty\n")
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("corrupt", "cannot read the data"),
        ("wrong_type", "column 'user_id' holds float values but input 'user_id' takes string"),
        ("empty", "holds no rows"),
        ("no_inputs", "no column named like an input"),
        ("csv_text_number", "column 'age' holds 1 text values that are not int numbers"),
    ],
)
def test_bad_data_exits_4_and_leaves_nothing(
    cli: CliRunner, ranker_dir: Path, tmp_path: Path, kind: str, message: str
) -> None:
    out = tmp_path / "out" / "stats"
    code, _, stderr = _run(cli, str(ranker_dir), str(_bad_logs(tmp_path, kind)), "--out", str(out))
    assert code == 4, stderr
    _one_line_error(stderr, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("missing.parquet", "data path not found"),
        ("nothing-*.parquet", "matches no file"),
        ("notes.txt", "cannot tell the format"),
    ],
)
def test_missing_data_exits_4(
    cli: CliRunner, ranker_dir: Path, tmp_path: Path, data: str, message: str
) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    out = tmp_path / "stats"
    code, _, stderr = _run(cli, str(ranker_dir), str(tmp_path / data), "--out", str(out))
    assert code == 4
    _one_line_error(stderr, message)
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--engine", "spark", "--spark-master", "spark://127.0.0.1:1"], 11, "cannot be reached"),
        (["--engine", "spark", "--spark-master", "mesos://x"], 11, "not a Spark master URL"),
        (["--spark-master", "local[2]"], 11, "only used with --engine spark"),
        (["--engine", "flink"], 11, "unknown engine 'flink'"),
        (["--memory-limit", "lots"], 11, "not a size"),
    ],
)
def test_engine_problems_exit_11(
    cli: CliRunner,
    ranker_dir: Path,
    logs_dir: Path,
    tmp_path: Path,
    args: list[str],
    code: int,
    message: str,
) -> None:
    out = tmp_path / "stats"
    result, _, stderr = _run(cli, str(ranker_dir), str(logs_dir), "--out", str(out), *args)
    assert result == code, stderr
    _one_line_error(stderr, message)
    assert not out.exists()


@pytest.mark.slow  # a full rebuild with the small preset (~30-60 s on the shared box)
def test_rebuild_cli_prunes_with_the_logs(
    cli: CliRunner, ranker_dir: Path, logs_dir: Path, duckdb_stats: Path, tmp_path: Path
) -> None:
    sample = tmp_path / "sample.parquet"
    pq.write_table(log_table(1, rows=60), sample)
    out = tmp_path / "rebuilt"
    result = cli.invoke(
        app,
        [
            "rebuild", str(ranker_dir), "--preset", "small", "--data", str(sample),
            "--stats", str(duckdb_stats), "--out", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads((out / "rebuild.json").read_text())
    assert doc["data"]["log_stats"]["rows"] == 3000
    text = json.dumps(doc)
    assert "hit >= 1x in the logs (3,000 rows, duckdb)" in text
    assert "covering 100% of" in text
