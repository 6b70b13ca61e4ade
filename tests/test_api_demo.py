"""``api.demo``: the main job end to end on a tiny sample (slow: it trains, rebuilds, times)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from markupsafe import escape

from recadvisor import api
from recadvisor.report.index_view import best_exact
from recadvisor.schemas import check_artifact

ARTIFACTS = {
    "analysis/analysis.json": "analysis.json",
    "analysis/plan.yaml": "plan.yaml",
    "safe/rebuild.json": "rebuild.json",
    "safe/plan.yaml": "plan.yaml",
    "fast/rebuild.json": "rebuild.json",
    "fast/plan.yaml": "plan.yaml",
    "fast/feature_contract.json": "feature_contract.json",
    "compare/compare.json": "compare.json",
    "request/rebuild.json": "rebuild.json",
    "request/feature_contract.json": "feature_contract.json",
    "request-compare/compare.json": "compare.json",
}


@pytest.mark.slow
def test_demo_on_a_tiny_sample(tmp_path: Path) -> None:
    stages: list[str] = []
    result = api.demo(
        tmp_path / "models",
        tmp_path / "reports",
        rows=1500,
        requests=20,
        size="tiny",
        names=("dssm",),
        progress=lambda stage, done, total: stages.append(stage),
    )
    (model,) = result.models
    out = tmp_path / "reports" / "dssm"
    assert model.name == "dssm" and sorted(model.rebuilds) == ["fast", "request", "safe"]
    assert any(s.startswith("dssm: ") for s in stages)  # stages are named after the model
    for relative, artifact in ARTIFACTS.items():
        path = out / relative
        text = path.read_text(encoding="utf-8")
        check_artifact(
            yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text), artifact
        )
    comparison = json.loads((out / "compare" / "compare.json").read_text())
    assert comparison == json.loads(json.dumps(model.comparison.to_dict()))
    assert [m["label"] for m in comparison["models"]] == ["baseline", "safe", "fast", "fast.onnx"]
    for m in comparison["models"]:  # memory is measured now, in a child process per model
        assert m["memory"] is not None and m["memory"]["peak_rss_mb"] > 0, m["label"]
    assert all(m["parity_passed"] for m in comparison["models"][1:])
    assert result.index == tmp_path / "reports" / "index.html"
    html = result.index.read_text(encoding="utf-8")
    assert 'href="dssm/analysis/report.html"' in html and 'href="dssm/compare/compare.html"' in html
    # the index names the fastest exact variant, which timing decides (fast.onnx on a quiet box)
    best = best_exact(comparison)
    assert best is not None and best["label"] in html and "3 of 3 variants exact" in html
    onnx = comparison["models"][3]
    assert f"{onnx['ratio_vs_baseline']['1']:.2f}x" in html  # the best exact variant's gain
    top = model.analysis.to_dict()["findings"][0]["message"].split("`")[0]
    assert str(escape(top)) in html
    assert 'data-chart-for="chart-1"' in html
    # the per-request comparison: one user x 256 candidates, the request rebuild exact
    request = model.request_comparison.to_dict()
    assert request["batch_sizes"] == [256] and request["runtime"] in ("tf-c", "python")
    assert [m["label"] for m in request["models"]][:3] == ["baseline", "safe", "request"]
    assert all(m["parity_passed"] for m in request["models"][1:])
    assert 'href="dssm/request-compare/compare.html"' in html and "candidates/s" in html
