"""The zoo's registry and coverage table, without building anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.zoo.build import build_in_subprocess, last_error_line
from benchmarks.zoo.registry import PATTERNS, ZOO, ZooModel, by_name

ROOT = Path(__file__).resolve().parents[2]


def test_zoo_meets_the_issue_minimums() -> None:
    assert len(ZOO) >= 12
    assert len({m.library for m in ZOO}) >= 5
    assert len({m.name for m in ZOO}) == len(ZOO)
    covered = {p for m in ZOO for p in m.patterns}
    assert covered == set(PATTERNS), set(PATTERNS) - covered
    for model in ZOO:
        module, func = model.builder.split(":")
        assert (ROOT / "benchmarks" / "zoo" / f"{module}.py").is_file(), model.builder
        assert func.startswith("build_")


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="known: deepctr_deepfm"):
        by_name("no_such_model")


def test_failed_build_is_a_result_not_a_crash(tmp_path: Path) -> None:
    bogus = ZooModel("bogus", "none", None, "deepctr_models:build_nothing", "-", ())
    result = build_in_subprocess(bogus, tmp_path)
    assert not result["ok"]
    assert "bogus" in result["error"]  # by_name refuses it in the child: one line, named
    assert not (tmp_path / "bogus").exists()


def test_last_error_line_picks_the_exception() -> None:
    stderr = "Traceback:\n  File x\nValueError: bad shape\n\nsome trailing log\n"
    assert last_error_line(stderr) == "ValueError: bad shape"
    assert last_error_line("") == "no output"


def _zoo_script():  # noqa: ANN202
    """benchmarks/zoo.py loaded as a module (its name clashes with the benchmarks.zoo package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("zoo_script", ROOT / "benchmarks" / "zoo.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_table_cells_say_why_a_step_failed() -> None:
    zoo = _zoo_script()
    report = {
        "date": "2026-12-03 08:00 UTC",
        "recadvisor_commit": "abc",
        "versions": {"tensorflow": "2.21.0"},
        "machine": {"cpu": "AMD EPYC", "cores": 2},
        "batch_sizes": [1, 256],
        "requests": 10,
        "models": {
            "ok_model": {
                "library": "Lib",
                "version": "1.0",
                "patterns": ["rank1"],
                "build": {"ok": True},
                "result": {
                    "describe": {"ok": True},
                    "analyze": {"ok": False, "error": "ValueError: no | pipes\nsecond line"},
                    "safe": {"ok": True, "exact": True, "max_abs_diff": 0.0},
                    "fast": {
                        "ok": True,
                        "exact": True,
                        "max_abs_diff": 1e-7,
                        "string_free": False,
                        "string_left": "string inputs user_id; StringToHashBucketFast x1",
                        "onnx": {"exported": False, "reason": "the graph still has strings"},
                    },
                    "compare": {
                        "ok": True,
                        "safe": {"ok": True, "ratio": {"1": 0.9, "256": 0.8}},
                        "fast": {"ok": False, "error": "RuntimeError: boom"},
                    },
                },
            },
            "broken_build": {
                "library": "Lib",
                "patterns": [],
                "build": {"ok": False, "error": "ImportError: no module named deepctr"},
                "result": {},
            },
        },
    }
    table = zoo.markdown(report)
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}
    ok = rows["ok_model"].split(" | ")
    assert ok[4] == "fails: ValueError: no / pipes" and ok[5].startswith("yes")
    assert ok[6].startswith("no: string inputs user_id")
    assert ok[7] == "no: the graph still has strings"
    assert ok[8:10] == ["0.90", "0.80"]
    assert ok[10] == "fails: RuntimeError: boom" and ok[12].startswith("-")
    assert "build fails: ImportError: no module named deepctr" in rows["broken_build"]
    assert "AMD EPYC, 2 cores" in table.splitlines()[0]
    header = table.splitlines()[2]
    assert rows["broken_build"].count("|") == header.count("|")


def test_advice_gaps_name_what_fast_left() -> None:
    zoo = _zoo_script()
    analyze = {
        "ok": True,
        "exact_suggestions": [
            {"kind": "ids_upstream", "targets": ["user_id"]},
            {"kind": "ids_upstream", "targets": ["hist"]},
            {"kind": "merge_duplicates", "targets": ["city"]},
        ],
    }
    fast = {
        "ok": True,
        "encoded_inputs": ["user_id"],
        "ids_upstream": {
            "status": "applied",
            "reason": "",
            "notes": ["left in the graph: input 'hist' is also read as a string by NotEqual 'a/b'"],
        },
    }
    report = {"models": {"m": {"result": {"analyze": analyze, "fast": fast}}}}
    assert zoo.advice_gaps(report) == {
        "m": "hist (read as a string by NotEqual); advised: hist, user_id"
    }
    fast["encoded_inputs"] = ["user_id", "hist"]
    assert zoo.advice_gaps(report) == {}


def test_bad_option_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "zoo.py"), "--only", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no zoo model 'nope'" in proc.stderr
