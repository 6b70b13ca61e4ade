"""The artifacts analyze, rebuild and compare really write match their schemas exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from recadvisor.schemas import artifact_schemas, check_artifact, schema_errors

WRITTEN = [
    ("analysis/analysis.json", "analysis.json"),
    ("analysis/plan.yaml", "plan.yaml"),
    ("fast/rebuild.json", "rebuild.json"),
    ("fast/plan.yaml", "plan.yaml"),
    ("fast/feature_contract.json", "feature_contract.json"),
    ("compare/compare.json", "compare.json"),
]


def read_artifact(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)


@pytest.mark.parametrize(("relative", "artifact"), WRITTEN)
def test_written_artifact_matches_its_schema(
    written_artifacts: Path, relative: str, artifact: str
) -> None:
    data = read_artifact(written_artifacts / relative)
    assert schema_errors(data, artifact_schemas()[artifact].schema) == []
    check_artifact(data, artifact)


def test_the_schema_catches_drift_in_a_real_artifact(written_artifacts: Path) -> None:
    """The check is exact on real files too: one key renamed deep inside is reported."""
    data = read_artifact(written_artifacts / "fast" / "rebuild.json")
    record = data["passes"]["passes"][0]
    record["pass"] = record.pop("name")
    errors = schema_errors(data, artifact_schemas()["rebuild.json"].schema)
    assert errors == [
        "$.passes.passes[0]: missing key(s) name (PassRecordDict)",
        "$.passes.passes[0]: unexpected key(s) pass (PassRecordDict)",
    ]


def test_real_artifacts_cover_the_optional_branches(written_artifacts: Path) -> None:
    """The tiny ranker's fast rebuild exports ONNX and changes the contract, so the schema's
    ``onnx`` record and ``feature_contract.json`` are exercised, not just their null forms."""
    rebuild = read_artifact(written_artifacts / "fast" / "rebuild.json")
    assert rebuild["onnx"]["exported"] is True and rebuild["sizes"]["onnx_bytes"] > 0
    contract = read_artifact(written_artifacts / "fast" / "feature_contract.json")
    assert {e["kind"] for e in contract["encodings"]} >= {"hash_bucket"}
    comparison = read_artifact(written_artifacts / "compare" / "compare.json")
    assert [m["kind"] for m in comparison["models"]] == ["saved_model", "saved_model", "onnx"]
    analysis = read_artifact(written_artifacts / "analysis" / "analysis.json")
    assert analysis["profile"] is not None and analysis["feature_stats"] is not None
