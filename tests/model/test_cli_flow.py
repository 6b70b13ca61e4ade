"""rebuild -> compare through the real CLI on a tiny model (and compare's error path)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from recadvisor.cli import app
from tests.model import builders

runner = CliRunner()


def test_rebuild_then_compare(tf2_dir: Path, tmp_path: Path) -> None:
    feeds = builders.tf2_feeds(32)
    frame = pd.DataFrame({k: list(v.reshape(len(v), -1)[:, 0]) for k, v in feeds.items()})
    frame["label"] = [i % 2 for i in range(len(frame))]
    data = tmp_path / "sample.parquet"
    frame.to_parquet(data)

    rebuilt = tmp_path / "rebuilt"
    result = runner.invoke(
        app, ["rebuild", str(tf2_dir), "--out", str(rebuilt), "--data", str(data)]
    )
    assert result.exit_code == 0, result.output
    assert (rebuilt / "saved_model" / "saved_model.pb").is_file()

    out = tmp_path / "cmp"
    result = runner.invoke(
        app,
        [
            "compare",
            str(tf2_dir),
            str(rebuilt),
            "--data",
            str(data),
            "--batch-sizes",
            "1,8",
            "--requests",
            "10",
            "--no-memory",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    comp = json.loads((out / "compare.json").read_text())
    assert comp["batch_sizes"] == [1, 8]
    assert set(comp["floor"]) == {"1", "8"}
    base, cand = comp["models"]
    assert base["parity"] is None and cand["label"] == "rebuilt"
    assert cand["parity_passed"] is True and max(cand["parity"].values()) <= 1e-5
    assert set(cand["parity"]) == {"score", "logit"}
    assert len(cand["latency"]["1"]["samples_ms"]) == 10
    assert cand["quality"]["score"]["label"] == "label"
    assert cand["node_count"] < base["node_count"]
    assert (out / "compare.html").is_file()

    again = runner.invoke(
        app, ["compare", str(tf2_dir), str(rebuilt), "--data", str(data), "--out", str(out)]
    )
    assert again.exit_code == 6 and "--force" in again.stderr


def test_compare_missing_candidate(tf2_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "compare",
            str(tf2_dir),
            str(tmp_path / "nope"),
            "--requests",
            "5",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.output
