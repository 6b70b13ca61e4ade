"""Serving settings timed on the model (each in its own C process) and reported by analyze."""

from __future__ import annotations

from pathlib import Path

import pytest

from recadvisor import api
from recadvisor.plan import PRESET_PASSES, PRESETS
from recadvisor.report import render_analysis
from recadvisor.serving.tuning import time_settings
from tests.report import fixtures
from tests.serving.conftest import ServingModel


@pytest.fixture(scope="module")
def measured(two_tower: ServingModel) -> dict:
    return time_settings(
        str(two_tower.path),
        two_tower.feeds,
        request_size=16,
        request_inputs=["user_id", "user_age"],
        names=("caller_thread", "intra1"),
        requests=20,
        rounds=1,
        seconds=0.15,
    )


@pytest.mark.slow
def test_every_setting_is_timed_on_every_workload(measured: dict) -> None:
    assert measured["workloads"] == ["batch 1", "request 16"]
    names = [s["name"] for s in measured["settings"]]
    assert names == ["default", "caller_thread", "intra1"]  # default first: the reference
    for s in measured["settings"]:
        assert set(s["latency"]) == {"batch 1", "request 16"}
        assert all(
            v["calls"] == 20 and v["p99_ms"] >= v["p50_ms"] > 0 for v in s["latency"].values()
        )
        assert set(s["throughput"]) == {
            "batch 1 x1",
            "batch 1 x2",
            "request 16 x1",
            "request 16 x2",
        }
        for t in s["throughput"].values():
            assert t["calls_per_s"] > 0 and t["p99_ms"] >= t["p50_ms"] > 0
        assert s["score"] > 0 and len(s["ratio_vs_default"]) == 6


@pytest.mark.slow
def test_best_is_the_lowest_score_and_default_is_one(measured: dict) -> None:
    by_name = {s["name"]: s for s in measured["settings"]}
    assert by_name["default"]["score"] == pytest.approx(1.0)
    assert set(by_name["default"]["ratio_vs_default"].values()) == {1.0}
    best = min(measured["settings"], key=lambda s: s["score"])
    assert measured["best"] == best["name"] and measured["gain"] == best["ratio_vs_default"]
    caller = by_name["caller_thread"]
    assert caller["config_proto"] == "inter_op_parallelism_threads: -1"
    assert "--tensorflow_inter_op_parallelism=-1" in caller["serving_flags"]


@pytest.mark.slow
def test_report_has_a_serving_settings_section(measured: dict, tmp_path: Path) -> None:
    html = render_analysis(
        {**fixtures.analysis_dict(), "serving_settings": measured}, tmp_path / "r.html"
    ).read_text()
    assert 'id="serving-settings"' in html
    assert "inter_op_parallelism_threads: -1" in html and "request 16 x2" in html
    missing = {**fixtures.analysis_dict(), "serving_settings": {"unavailable": "no C compiler"}}
    html = render_analysis(missing, tmp_path / "m.html").read_text()
    assert "Serving settings: not measured (no C compiler)" in html
    plain = render_analysis(fixtures.analysis_dict(), tmp_path / "e.html").read_text()
    assert 'id="serving-settings"' not in plain


def test_analyze_says_when_the_c_runtime_is_missing(
    two_tower: ServingModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECADVISOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler-recadvisor")
    result = api.analyze(two_tower.path, data=two_tower.data, serving_settings=True)
    section = result.to_dict()["serving_settings"]
    assert "no C compiler" in section["unavailable"]
    assert api.analyze(two_tower.path, data=two_tower.data).to_dict()["serving_settings"] is None


def test_request_preset_is_fast_plus_per_request_dedup() -> None:
    assert "request" in PRESETS
    request, fast = PRESET_PASSES["request"], PRESET_PASSES["fast"]
    assert set(request) == set(fast) | {"per_request_dedup"}
    assert "batch contract" in request["per_request_dedup"][1]


def test_analyze_request_preset_enables_per_request_dedup(two_tower: ServingModel) -> None:
    plan = api.analyze(two_tower.path, data=two_tower.data, preset="request").plan
    entry = next(e for e in plan.rewrites if e.pass_name == "per_request_dedup")
    assert entry.enabled and set(entry.params["request_inputs"]) >= {"user_id"}
    safe = api.analyze(two_tower.path, data=two_tower.data, preset="safe").plan
    assert not next(e for e in safe.rewrites if e.pass_name == "per_request_dedup").enabled
