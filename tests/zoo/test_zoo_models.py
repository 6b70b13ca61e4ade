"""describe, analyze, ``rebuild --preset safe`` (exact) and ``--preset fast`` (string-free,
exact, exact ONNX) on zoo models built by the libraries.

The subset covers a Keras 3 export (``StringLookup`` with a padding mask over a multi-valued
history, ``IntegerLookup``, salted ``Hashing``, ``Discretization``, ``HashedCrossing``), a TF1
Session export (rank-1 inputs, feature-column sparse path with shared embeddings, a split tag
string, an int64 table, two heads) and DeepCTR's DIN (string history masked on ``"0"``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks.zoo.coverage import EXACT, _string_free
from recadvisor import api
from recadvisor.analysis.analyze import analyze
from tests.zoo.conftest import CI_SUBSET

# three library builds in subprocesses, then describe/analyze/rebuild/compare each: ~1.5-2 min
# on an idle 2-core box, several times that when the box is shared
pytestmark = pytest.mark.slow

#: What each model's graph must show (op types after freezing) and its signature.
EXPECTED: dict[str, dict[str, Any]] = {
    "keras3_preprocessing": {
        "ops": {"StringToHashBucketStrong", "LookupTableFindV2", "Bucketize", "SparseCross"},
        "string_inputs": {"hist_item_id", "user_id", "city", "device"},
        "outputs": {"output_0"},  # Keras 3 export names outputs by position
        "shapes": {"hist_item_id": [None, 5], "user_id": [None, 1]},
        "tables": 2,  # StringLookup (history) and IntegerLookup (shop)
    },
    "tf1_session": {
        "ops": {"StringToHashBucketFast", "LookupTableFindV2", "StringSplitV2", "GatherNd"},
        "string_inputs": {"user_id", "item_id", "hist_item_id", "tags"},
        "outputs": {"ctr", "ctcvr"},
        "shapes": {"user_id": [None], "hist_item_id": [None, 5], "shop_id": [None]},
        "tables": 4,  # item + history vocabularies (shared embedding), tags, the int64 shops
    },
    "deepctr_din": {
        "ops": {"StringToHashBucketFast", "NotEqual"},
        "string_inputs": {"user_id", "item_id", "category", "hist_item_id"},
        "outputs": {"prediction_layer"},
        "shapes": {"hist_item_id": [None, 5], "item_id": [None, 1]},
        "tables": 0,  # DeepCTR hashes every id
    },
}


@pytest.fixture(scope="session", params=CI_SUBSET)
def zoo_case(request: pytest.FixtureRequest, zoo_model) -> tuple[str, Path]:  # noqa: ANN001
    return request.param, zoo_model(request.param)


@pytest.fixture(scope="session")
def zoo_description(zoo_case: tuple[str, Path]) -> dict[str, Any]:
    return api.describe(zoo_case[1] / "saved_model").to_dict()


@pytest.fixture(scope="session")
def zoo_safe(zoo_case: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    name, folder = zoo_case
    out = tmp_path_factory.mktemp(f"{name}-safe") / "rebuilt"
    result = api.rebuild(folder / "saved_model", out, preset="safe", data=folder / "sample.parquet")
    return name, folder, out, result


def test_build_writes_model_sample_and_meta(
    zoo_case: tuple[str, Path], zoo_description: dict[str, Any]
) -> None:
    name, folder = zoo_case
    meta = json.loads((folder / "zoo.json").read_text())
    assert meta["name"] == name and meta["version"] and meta["patterns"]
    assert (folder / "saved_model" / "saved_model.pb").is_file()
    sample = pd.read_parquet(folder / "sample.parquet")
    assert len(sample) >= 256
    desc = zoo_description
    # sample.parquet holds every signature input, raw (strings stay strings)
    assert set(desc["inputs"]) <= set(sample.columns)
    for key in EXPECTED[name]["string_inputs"]:
        first = sample[key].iloc[0]
        values = list(first) if isinstance(first, np.ndarray | list) else [first]
        assert all(isinstance(v, str) for v in values), key


def test_describe_sees_the_library_graph(
    zoo_case: tuple[str, Path], zoo_description: dict[str, Any]
) -> None:
    name, _ = zoo_case
    expected = EXPECTED[name]
    desc = zoo_description
    assert expected["ops"] <= set(desc["op_counts"]), set(desc["op_counts"])
    strings = {k for k, v in desc["inputs"].items() if v["dtype"] == "string"}
    assert strings == expected["string_inputs"]
    assert set(desc["outputs"]) == expected["outputs"]
    for key, shape in expected["shapes"].items():
        assert desc["inputs"][key]["shape"] == shape, key
    assert len(desc["lookup_tables"]) == expected["tables"]


def test_analyze_profiles_and_names_string_features(zoo_case: tuple[str, Path]) -> None:
    name, folder = zoo_case
    result = analyze(
        folder / "saved_model",
        data=folder / "sample.parquet",
        batch_sizes=(1,),
        profile_calls=10,
    ).to_dict()
    assert result["model"]["run"]["detectors_failed"] == {}
    inputs = set(result["signature"]["inputs"])
    batch = result["profile"]["batches"]["1"]
    assert sum(batch["per_feature"].values()) == pytest.approx(1.0, abs=1e-6)
    string_findings = set()
    for finding in result["findings"]:
        assert set(finding["features"]) <= inputs, finding
        if finding["kind"] == "string_op":
            string_findings |= set(finding["features"])
    # every hashed or looked-up string input is charged with string work
    assert string_findings & EXPECTED[name]["string_inputs"]


def test_rebuild_safe_is_exact_and_drop_in(
    zoo_safe,  # noqa: ANN001
    zoo_description: dict[str, Any],
) -> None:
    name, folder, out, result = zoo_safe
    assert result.passed
    assert result.parity.max_abs_diff <= EXACT
    assert result.export_parity.max_abs_diff <= EXACT
    original = zoo_description
    rebuilt = api.describe(out / "saved_model").to_dict()
    assert rebuilt["inputs"] == original["inputs"]
    assert rebuilt["outputs"] == original["outputs"]
    assert rebuilt["node_count"] <= original["node_count"]
    # safe keeps the contract: the string stage is still there (that is fast's job)
    free, why = _string_free(result.graph)
    assert not free and "string input" in why


def test_rebuilt_model_answers_like_the_original_on_the_sample(zoo_safe) -> None:  # noqa: ANN001
    """An independent check of the parity rebuild reports: both SavedModels, reloaded, on the
    sample's rows through compare's own runner."""
    name, folder, out, _ = zoo_safe
    comparison = api.compare(
        folder / "saved_model",
        [out],
        data=folder / "sample.parquet",
        batch_sizes=(1, 8),
        requests=5,
        measure_memory=False,
    ).to_dict()
    rebuilt = comparison["models"][1]
    assert rebuilt["parity_passed"]
    assert max(rebuilt["parity"].values()) <= EXACT
    assert set(rebuilt["parity"]) == EXPECTED[name]["outputs"]


@pytest.fixture(scope="session", params=CI_SUBSET)
def zoo_fast(request: pytest.FixtureRequest, zoo_model, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    name = request.param
    folder = zoo_model(name)
    out = tmp_path_factory.mktemp(f"{name}-fast") / "rebuilt"
    result = api.rebuild(
        folder / "saved_model", out, preset="fast", data=folder / "sample.parquet", onnx=True
    )
    return name, folder, out, result


def test_rebuild_fast_is_string_free_and_exact_on_raw_rows(zoo_fast) -> None:  # noqa: ANN001
    """``fast`` moves every string op out of the library's graph; the client-side encoder
    (``recadvisor.encode_inputs``) plus the rebuilt SavedModel, and plus its ONNX file, answer
    like the original on raw sample rows."""
    from recadvisor.bench import OnnxRunner
    from recadvisor.encode import encode_inputs
    from recadvisor.model.load import load_model
    from recadvisor.model.runtime import run_loaded
    from recadvisor.verify import compare_outputs

    name, folder, out, result = zoo_fast
    assert result.passed
    free, why = _string_free(result.graph)
    assert free, why
    assert (out / "model.onnx").is_file(), result.to_dict()["notes"]
    assert result.to_dict()["onnx"]["max_abs_diff"] <= EXACT
    original = load_model(folder / "saved_model")
    feeds = api.load_data(folder / "sample.parquet", original.spec).feeds
    raw = {k: v[-40:] for k, v in feeds.items()}
    expected = run_loaded(original.function, original.spec.inputs, raw)
    encoded = encode_inputs(out, raw)
    rebuilt = load_model(out / "saved_model")
    served = run_loaded(rebuilt.function, rebuilt.spec.inputs, encoded)
    assert compare_outputs(expected, served).max_abs_diff <= EXACT
    onnx = OnnxRunner(out / "model.onnx")
    assert compare_outputs(expected, onnx.run(onnx.prepare(encoded))).max_abs_diff <= EXACT
