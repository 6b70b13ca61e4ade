"""analyze() end to end: the three tiny samples, unsafe models, no data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recadvisor.analysis.analyze import ANALYSIS_KEYS, analyze
from recadvisor.errors import UnsafeModelError
from tests.analysis.detectors import models

pytestmark = pytest.mark.slow  # analyzes the samples

SAMPLES = ("dssm", "esmm", "din")


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    from recadvisor.samples.build import build_sample

    root = tmp_path_factory.mktemp("samples")
    for name in SAMPLES:
        build_sample(name, root, rows=2000, seed=0, size="tiny")
    return root


@pytest.fixture(scope="module")
def analyses(sample_root):
    return {
        name: analyze(
            sample_root / name / "saved_model",
            data=sample_root / name / "sample.parquet",
            batch_sizes=(1, 32),
            profile_calls=10,
            preset="fast",
        )
        for name in SAMPLES
    }


@pytest.mark.parametrize("name", SAMPLES)
def test_every_planted_flaw_is_found(name, sample_root, analyses):
    flaws = json.loads((sample_root / name / "flaws.json").read_text())
    flaws = flaws["flaws"] if isinstance(flaws, dict) else flaws
    analysis = analyses[name]
    found = {(f.kind, frozenset(f.features)) for f in analysis.findings}
    for flaw in flaws:
        assert (flaw["kind"], frozenset(flaw["features"])) in found, flaw


@pytest.mark.parametrize("name", SAMPLES)
def test_analysis_json(name, analyses):
    data = json.loads(json.dumps(analyses[name].to_dict()))
    assert tuple(data) == ANALYSIS_KEYS
    profile = data["profile"]
    assert profile["batch_sizes"] == [1, 32]
    for bs in ("1", "32"):
        assert sum(profile["per_feature"][bs].values()) == pytest.approx(1.0, abs=1e-6)
        assert sum(profile["per_op_type"][bs].values()) == pytest.approx(1.0, abs=1e-6)
        assert profile["latency"][bs]["p50_ms"] > 0
        # the report's 3-ring sunburst (feature -> stage -> op type) reads these
        batch = profile["batches"][bs]
        assert batch["per_feature_op_type"] == profile["per_feature_op_type"][bs]
        for feature, share in profile["per_feature"][bs].items():
            by_op = batch["per_feature_op_type"].get(feature, {})
            assert sum(by_op.values()) == pytest.approx(share, abs=1e-9), feature
        top_nodes = {op["node"] for op in batch["top_ops"]}
        assert top_nodes <= set(batch["per_node_bucket"]) <= set(batch["per_node_features"])
    assert data["feature_stats"]["rows"] == 2000
    assert data["model"]["data"]["source"] == "file"
    assert data["model"]["run"]["detectors_failed"] == {}
    assert data["plan"]["model"]["fingerprint"] == data["model"]["fingerprint"]
    for finding in data["findings"]:
        assert {"kind", "features", "severity", "message", "evidence"} <= set(finding)
    assert all(s["expected_saving"]["batch_size"] == 32 for s in data["suggestions"])


def test_esmm_output_costs(analyses):
    analysis = analyses["esmm"]
    keeps = {f.evidence["keep"][0] for f in analysis.findings_of("unused_output")}
    assert {"ctr", "cvr"} <= keeps and "ctcvr" not in keeps
    plan = analysis.plan
    assert plan.entry("numeric_bucketize").enabled and plan.entry("ids_upstream").enabled
    assert not plan.entry("prune_outputs").enabled


def test_without_data_advice_is_structural(sample_root):
    analysis = analyze(sample_root / "dssm" / "saved_model", profile=False)
    assert analysis.feature_stats is None and analysis.profile is None
    assert analysis.model["data"]["source"] == "synthetic" and analysis.notes
    kinds = {f.kind for f in analysis.findings}
    assert {"numeric_as_string", "duplicate_feature", "unused_input", "string_op"} <= kinds
    # rows hit on synthesized inputs mean nothing: no oversized-table claim
    assert not any(
        "oversized" in f.evidence.get("issues", ()) for f in analysis.findings_of("large_embedding")
    )
    assert analysis.to_dict()["profile"] is None


def test_unsafe_model_is_refused_before_running(tmp_path):
    data = tmp_path / "secret.txt"
    data.write_text("hello")
    model = models.build_read_file(tmp_path / "model", data)
    with pytest.raises(UnsafeModelError, match="ReadFile"):
        analyze(model, profile=False)
    analysis = analyze(model, profile=False, allow_unsafe_ops=True)
    assert [f.evidence["op"] for f in analysis.findings_of("unsafe_op")] == ["ReadFile"]
    assert analysis.model["run"]["unsafe_ops"] == ["ReadFile"]


def test_tf1_export_with_progress(tmp_path):
    from tests.model.builders import build_tf1_estimator_style

    calls = []
    analysis = analyze(
        build_tf1_estimator_style(tmp_path / "tf1"),
        batch_sizes=(1, 8),
        profile_calls=10,
        progress=lambda what, done, total: calls.append(what),
    )
    assert analysis.model["source_format"] == "tf1"
    assert {"unsafe_ops", "per_request", "done"} <= set(calls)
    assert [f.features for f in analysis.findings_of("string_op")] == [("cat",)]
    assert analysis.plan.entry("ids_upstream").params["inputs"] == ["cat"]
    assert json.dumps(analysis.to_dict())
