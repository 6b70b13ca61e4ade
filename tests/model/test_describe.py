"""describe: the inventory content and the CLI around it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recadvisor import api
from recadvisor.cli import app

runner = CliRunner()


def test_describe_tf2_content(tf2_dir: Path, tmp_path: Path) -> None:
    desc = api.describe(tf2_dir, tensorboard_dir=tmp_path / "tb").to_dict()
    for key in (
        "signature",
        "inputs",
        "outputs",
        "node_count",
        "op_counts",
        "variables",
        "embedding_tables",
        "lookup_tables",
        "string_ops",
    ):
        assert key in desc
    assert desc["signature"] == "serving_default"
    assert desc["inputs"]["age"] == {"dtype": "int64", "shape": [None, 1]}
    tables = {(t["rows"], t["dim"]): t for t in desc["embedding_tables"]}
    assert tables[(500, 8)]["features"] == ["user_id"]
    assert tables[(100, 8)]["features"] == ["age"]
    string_ops = {(s["op"], tuple(s["features"])) for s in desc["string_ops"]}
    assert ("AsString", ("age",)) in string_ops
    assert ("StringToHashBucketFast", ("user_id",)) in string_ops
    assert ("LookupTableFindV2", ("category",)) in string_ops
    assert desc["lookup_tables"][0]["size"] == 4
    assert desc["lookup_tables"][0]["features"] == ["category"]
    assert {v["name"] for v in desc["variables"]} >= {"user_emb", "kernel", "bias"}
    assert any("request_id" in note for note in desc["notes"])
    assert desc["op_counts_loaded"].get("StatefulPartitionedCall", 0) >= 1
    assert "StatefulPartitionedCall" not in desc["op_counts"]
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_describe_tf1_and_keras(tf1_dir: Path, keras3_dir: Path) -> None:
    tf1 = api.describe(tf1_dir).to_dict()
    assert tf1["source_format"] == "tf1"
    assert [(t["rows"], t["dim"]) for t in tf1["embedding_tables"]] == [(20, 4)]
    k3 = api.describe(keras3_dir).to_dict()
    assert set(k3["available_signatures"]) >= {"serve", "serving_default"}
    assert k3["lookup_tables"] and k3["string_ops"]


def test_cli_describe_json(tf2_dir: Path) -> None:
    result = runner.invoke(app, ["describe", str(tf2_dir), "--json", "-s", "user_vector"])
    assert result.exit_code == 0, result.output
    desc = json.loads(result.stdout)
    assert desc["signature"] == "user_vector"
    assert list(desc["outputs"]) == ["vec"]


def test_cli_describe_table(tf2_dir: Path) -> None:
    result = runner.invoke(app, ["describe", str(tf2_dir)])
    assert result.exit_code == 0, result.output
    assert "Embedding tables" in result.stdout and "AsString" in result.stdout


def test_cli_errors_are_one_line(tf2_dir: Path, tmp_path: Path) -> None:
    cases = [
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(tf2_dir), "--signature", "nope"], "available: serving_default, user_vector"),
        ([str(tmp_path)], "not a SavedModel"),
    ]
    for args, text in cases:
        result = runner.invoke(app, ["describe", *args])
        assert result.exit_code == 2, result.output
        assert text in result.stderr
        assert "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # runs real subprocesses
def test_cli_subprocess_end_to_end(tf2_dir: Path) -> None:
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "recadvisor.cli", "describe", str(tf2_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["node_count"] > 10
    bad = subprocess.run(
        [sys.executable, "-m", "recadvisor.cli", "describe", "/nonexistent/model"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: model directory '/nonexistent/model' does not exist"


def test_help_is_fast() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, recadvisor.cli; assert 'tensorflow' not in sys.modules",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
