"""``analyze`` on models built the way third-party code builds them (not our sample builders).

Keras 3 DeepFM (``model.export``), tf-keras wide & deep on feature columns (``model.save``), and
a TensorFlow Recommenders retrieval index when TFRS is installed (it is optional: the test is
skipped without it). Each must analyze with no crash, shares that add up, and findings that
name the right features.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recadvisor.analysis.analyze import ANALYSIS_KEYS, analyze
from tests.external import models

pytestmark = pytest.mark.slow  # builds and analyzes third-party exports

BATCH_SIZES = (1, 16)


@pytest.fixture(scope="session")
def external_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("external")
    frame = models.sample_frame()
    frame.to_parquet(root / "clicks.parquet")
    # TFRS's query tower reads the request hour as a string, as its tutorials do
    tfrs = frame[["user_id", "hour"]].assign(hour=frame["hour"].astype(str))
    tfrs.to_parquet(root / "tfrs.parquet")
    return root


def _analyze(model_dir: Path, data: Path) -> dict[str, Any]:
    result = analyze(model_dir, data=data, batch_sizes=BATCH_SIZES, profile_calls=10)
    return json.loads(json.dumps(result.to_dict()))


@pytest.fixture(scope="session")
def deepfm(external_root: Path) -> dict[str, Any]:
    model_dir = models.build_keras3_deepfm(external_root / "deepfm")
    return _analyze(model_dir, external_root / "clicks.parquet")


@pytest.fixture(scope="session")
def wide_deep(external_root: Path) -> dict[str, Any]:
    model_dir = models.build_tf_keras_wide_deep(external_root / "wide_deep")
    return _analyze(model_dir, external_root / "clicks.parquet")


@pytest.fixture(scope="session")
def tfrs_index(external_root: Path) -> dict[str, Any]:
    if not models.tfrs_available():
        pytest.skip("tensorflow-recommenders is not installed (optional)")
    model_dir = models.build_tfrs_retrieval(external_root / "tfrs")
    return _analyze(model_dir, external_root / "tfrs.parquet")


def _found(analysis: dict[str, Any]) -> set[tuple[str, frozenset[str]]]:
    return {(f["kind"], frozenset(f["features"])) for f in analysis["findings"]}


def _check_sound(analysis: dict[str, Any]) -> None:
    """What every analysis must satisfy: keys, shares adding up, findings naming inputs."""
    assert tuple(analysis) == ANALYSIS_KEYS
    assert analysis["model"]["run"]["detectors_failed"] == {}
    inputs = set(analysis["signature"]["inputs"])
    profile = analysis["profile"]
    for bs in map(str, BATCH_SIZES):
        batch = profile["batches"][bs]
        assert batch["mapped_fraction"] >= 0.9
        for key in ("per_feature", "per_op_type", "per_stage"):
            assert sum(batch[key].values()) == pytest.approx(1.0, abs=1e-6), (bs, key)
        assert set(batch["per_feature"]) >= inputs
    for finding in analysis["findings"]:
        assert set(finding["features"]) <= inputs, finding
        assert finding["message"]


def test_keras3_deepfm(deepfm: dict[str, Any]) -> None:
    _check_sound(deepfm)
    assert {"serve", "serving_default"} <= set(deepfm["model"]["available_signatures"])
    found = _found(deepfm)
    for feature in ("user_id", "item_id", "category", "hour"):
        assert ("string_op", frozenset({feature})) in found, feature
    # IntegerLookup and Discretization do no string work
    assert not {f for k, f in found if k == "string_op"} & {
        frozenset({"shop_id"}),
        frozenset({"price"}),
    }
    # Keras hashes integers through their string form: numbers as strings, 24 distinct hours
    hour = next(f for f in deepfm["findings"] if f["kind"] == "numeric_as_string")
    assert hour["features"] == ["hour"]
    assert ("large_embedding", frozenset({"user_id"})) in found  # 1000 buckets, ~150 users
    suggested = {(s["kind"], tuple(s["targets"])) for s in deepfm["suggestions"]}
    assert ("ids_upstream", ("item_id",)) in suggested
    assert ("numeric_bucketize", ("hour",)) in suggested


def test_tf_keras_wide_and_deep_feature_columns(wide_deep: dict[str, Any]) -> None:
    _check_sound(wide_deep)
    found = _found(wide_deep)
    # the category vocabulary is built twice (wide one-hot and deep embedding column), and
    # looked up through a SparseTensor, not the input itself
    reasons = {
        f["evidence"]["reason"]
        for f in wide_deep["findings"]
        if f["kind"] == "duplicate_feature" and f["features"] == ["category"]
    }
    assert {"looked_up_twice", "identical_tables"} <= reasons
    assert ("unused_input", frozenset({"item_id"})) in found
    assert ("string_op", frozenset({"user_id"})) in found
    # the crossed column (category x bucketized age) is string work charged to both inputs
    cross = [
        f
        for f in wide_deep["findings"]
        if f["kind"] == "string_op" and set(f["features"]) == {"age", "category"}
    ]
    assert cross and "SparseCross" in cross[0]["evidence"]["op_types"]
    assert all(
        "age" not in s["targets"] for s in wide_deep["suggestions"] if s["kind"] == "ids_upstream"
    )
    for bs in map(str, BATCH_SIZES):
        assert wide_deep["profile"]["per_op_type"][bs].get("SparseCross", 0) > 0


@pytest.mark.optional_integration  # README: tensorflow-recommenders is optional
def test_tfrs_retrieval_index(tfrs_index: dict[str, Any]) -> None:
    _check_sound(tfrs_index)
    assert set(tfrs_index["signature"]["outputs"]) == {"output_1", "output_2"}
    found = _found(tfrs_index)
    assert ("string_op", frozenset({"user_id"})) in found
    assert ("string_op", frozenset({"hour"})) in found
    # the hour column holds only numbers, yet travels as a string
    assert ("numeric_as_string", frozenset({"hour"})) in found
    # top-k scores alone do not need the candidate-id gather
    assert any(f["kind"] == "unused_output" for f in tfrs_index["findings"])


def test_analyze_writes_the_report_for_a_third_party_export(
    external_root: Path, deepfm: dict[str, Any]
) -> None:
    """The public API end to end on the Keras 3 export: analysis.json, plan.yaml, report.html."""
    from recadvisor.api import analyze as api_analyze

    out = external_root / "deepfm-report"
    api_analyze(
        external_root / "deepfm",
        data=external_root / "clicks.parquet",
        out_dir=out,
        batch_sizes=BATCH_SIZES,
    )
    written = json.loads((out / "analysis.json").read_text())
    assert {f["kind"] for f in written["findings"]} == {f["kind"] for f in deepfm["findings"]}
    assert "fingerprint" in (out / "plan.yaml").read_text()
    assert "user_id" in (out / "report.html").read_text()
