"""rebuild -> compare through the real CLI on a tiny model (and compare's error path)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
from rich.console import Console
from typer.testing import CliRunner

from recadvisor.cli import app
from recadvisor.report.terminal import comparison_renderables, rebuild_renderables
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
    assert base["parity"] is None and base["label"] == "baseline" and cand["label"] == "rebuilt"
    assert cand["parity_passed"] is True and max(cand["parity"].values()) <= 1e-5
    assert set(cand["parity"]) == {"score", "logit"}
    assert len(cand["latency"]["1"]["samples_ms"]) == 10
    assert cand["quality"]["score"]["label"] == "label"
    assert cand["node_count"] < base["node_count"]
    assert (out / "compare.html").is_file()
    check_terminal_tables(json.loads((rebuilt / "rebuild.json").read_text()), comp, tf2_dir)

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


def _render(items: list[object], width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    for item in items:
        console.print(item)
    return console.export_text().splitlines()


def check_terminal_tables(rebuild: dict, comp: dict, baseline: Path) -> None:
    """The tables of a real rebuild and compare read well at 80 and 200 columns: no line is
    wider than the terminal, no label or header is cut, the paths are listed once below."""
    for width in (80, 200):
        console = Console(width=width, file=io.StringIO())
        lines = _render(comparison_renderables(comp, console), width)
        text = "\n".join(lines)
        assert max(len(line) for line in lines) <= width, text
        assert "…" not in text, text
        for header in ("model", "ms @1", "x @1", "ms @8", "x @8", "parity"):
            assert header in text, text
        rows = {line.split()[0] for line in lines if line.strip()}
        assert {"baseline", "rebuilt", "call"} <= rows, text
        assert sum(str(baseline) in line for line in lines) == 1, text
        header = next(line for line in lines if line.split()[:1] == ["model"]).split()
        assert ("AUC" in header and "memory" in header) == (width == 200), text
        assert ("not shown at this width" in text) == (width == 80), text

        lines = _render(rebuild_renderables(rebuild, console), width)
        text = "\n".join(lines)
        assert max(len(line) for line in lines) <= width, text
        assert "…" not in text, text
        for record in rebuild["passes"]["passes"]:
            if record["status"] != "disabled":
                assert record["name"] in text and record["status"] in text, text
