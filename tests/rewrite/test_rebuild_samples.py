"""Rebuilds of the tiny DSSM and DIN samples (API and CLI), mainly with per_request_dedup.

The pipeline checks per_request_dedup on sample requests (one row's user-side inputs next to
every row's candidates), the rebuilt model is checked against the original on such a request,
the client encodes a request with ``encode_inputs`` and the user-side sub-graph runs on one row.
Also: drop_unused_inputs on DSSM's never-read ``request_id`` and where ``model.onnx`` is recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recadvisor.cli import app
from recadvisor.encode import encode_inputs
from recadvisor.model.freeze import freeze
from recadvisor.model.graph import ModelGraph
from recadvisor.model.load import load_model
from recadvisor.model.runtime import GraphRunner, probe_tensors, run_loaded
from recadvisor.plan import PlanEntry, preset_plan, save_plan
from recadvisor.rebuild import RebuildResult, rebuild
from recadvisor.rewrite.encodings import broadcast_inputs, one_request_feeds
from recadvisor.samples import SampleResult, build_sample
from recadvisor.tfimport import import_tf

pytestmark = pytest.mark.slow  # builds and rebuilds the samples

ROWS = 800
CANDIDATES = 40


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SampleResult]:
    root = tmp_path_factory.mktemp("per_request_samples")
    return {n: build_sample(n, root, rows=ROWS, seed=0, size="tiny") for n in ("dssm", "din")}


def _dedup_plan(sample: SampleResult, path: Path) -> Path:
    graph = freeze(load_model(sample.model_dir))
    plan = preset_plan("fast", graph, model_path=sample.model_dir)
    save_plan(plan.with_entry(PlanEntry("per_request_dedup", True, {})), path)
    return path


@pytest.fixture(scope="module")
def dssm_rebuild(
    samples: dict[str, SampleResult], tmp_path_factory: pytest.TempPathFactory
) -> RebuildResult:
    tmp = tmp_path_factory.mktemp("dssm_dedup")
    plan = _dedup_plan(samples["dssm"], tmp / "plan.yaml")
    return rebuild(
        samples["dssm"].model_dir, tmp / "out", plan=plan, data=samples["dssm"].data_path, onnx=True
    )


def _raw_request(sample: SampleResult, requests: list[str], row: int) -> dict[str, np.ndarray]:
    """One request in the original contract: ``row``'s user side, CANDIDATES item rows."""
    from recadvisor.data import load_feeds

    spec = load_model(sample.model_dir).spec
    feeds = load_feeds(sample.data_path, spec, rows=CANDIDATES).feeds
    return one_request_feeds(
        {k: np.asarray(v)[:CANDIDATES] for k, v in feeds.items()}, requests, row
    )


def _user_side_runs_once(
    graph: ModelGraph, request: list[str], feeds: dict[str, np.ndarray]
) -> list[str]:
    """Gathers that read request inputs only; asserts each returns one row for N candidates."""
    gathers = [
        n.name
        for n in graph.graph_def.node
        if n.op in ("GatherV2", "ResourceGather")
        and graph.features_of_node.get(n.name, frozenset()) <= set(request)
        and graph.features_of_node.get(n.name)
    ]
    values = probe_tensors(graph, [f"{g}:0" for g in gathers], feeds)
    assert all(v.shape[0] == 1 for v in values.values()), {k: v.shape for k, v in values.items()}
    return gathers


def test_dssm_dedup_rebuild_is_exact(
    dssm_rebuild: RebuildResult, samples: dict[str, SampleResult]
) -> None:
    out = Path(dssm_rebuild.out_dir)
    report = json.loads((out / "rebuild.json").read_text())
    record = next(p for p in report["passes"]["passes"] if p["name"] == "per_request_dedup")
    assert record["status"] == "applied", record["reason"]
    assert record["parity"]["max_abs_diff"] <= 1e-5
    assert record["parity"]["rows"] == 3 * ROWS  # three sample requests checked
    assert report["parity"]["final_vs_original"]["max_abs_diff"] <= 1e-5
    assert report["parity"]["exported_vs_original"]["passed"] is True
    requests = broadcast_inputs(dssm_rebuild.pipeline.encodings)
    # by name, then by the data: a user's age, city and gender are the same on all its rows
    assert {"user_id", "hist_item_id", "age", "city", "gender"} <= set(requests)
    assert not {"item_id", "category", "price"} & set(requests)
    inputs = report["signature_after"]["inputs"]
    assert inputs["user_id"]["shape"] == [1] and inputs["hist_item_id"]["shape"] == [1, 20]
    assert inputs["item_id"]["shape"] == [None]
    contract = json.loads((out / "feature_contract.json").read_text())
    assert {e["input"] for e in contract["encodings"] if e["kind"] == "broadcast"} == set(requests)
    # the ONNX file is recorded where it ends up, relative to the output folder
    assert report["onnx"]["path"] == "model.onnx" and (out / "model.onnx").is_file()


@pytest.mark.parametrize("row", [0, 5])
def test_dssm_client_request_matches_original(
    dssm_rebuild: RebuildResult, samples: dict[str, SampleResult], row: int
) -> None:
    tf = import_tf()
    requests = broadcast_inputs(dssm_rebuild.pipeline.encodings)
    raw = _raw_request(samples["dssm"], requests, row)
    encoded = encode_inputs(dssm_rebuild.out_dir, raw)
    assert encoded["user_id"].shape == (1,) and encoded["item_id"].shape == (CANDIDATES,)
    original = load_model(samples["dssm"].model_dir)
    expected = run_loaded(original.function, original.spec.inputs, raw)
    rebuilt = tf.saved_model.load(dssm_rebuild.saved_model_dir)
    got = run_loaded(
        rebuilt.signatures["serving_default"], dssm_rebuild.graph.signature.inputs, encoded
    )
    assert got["score"].shape == (CANDIDATES,)
    assert float(np.max(np.abs(got["score"] - expected["score"]))) <= 1e-5
    gathers = _user_side_runs_once(dssm_rebuild.graph, requests, encoded)
    assert len(gathers) >= 3  # user id, hashed age, city, history: looked up for one row


def test_din_dedup_rebuild_through_the_cli(
    samples: dict[str, SampleResult], tmp_path: Path
) -> None:
    din = samples["din"]
    plan = _dedup_plan(din, tmp_path / "plan.yaml")
    out = tmp_path / "din"
    result = CliRunner().invoke(
        app,
        ["rebuild", din.model_dir, "--out", str(out), "--plan", str(plan), "--data", din.data_path],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "rebuild.json").read_text())
    record = next(p for p in report["passes"]["passes"] if p["name"] == "per_request_dedup")
    assert record["status"] == "applied", record["reason"]
    assert record["parity"]["max_abs_diff"] <= 1e-5
    assert report["parity"]["final_vs_original"]["max_abs_diff"] <= 1e-5
    assert report["signature_after"]["inputs"]["hist_item_id"]["shape"] == [1, 50]
    # DIN broadcasts the target item to tf.shape(history) (its own BroadcastTo): that Shape
    # now reads the broadcast history, so it is the candidates' batch; split_concat_matmul then
    # removes the broadcasts of the query it multiplies once per row
    ops = report["op_counts"]
    split = next(p for p in report["passes"]["passes"] if p["name"] == "split_concat_matmul")
    assert ops["final"]["BroadcastTo"] == (
        ops["frozen"]["BroadcastTo"]
        + record["stats"]["broadcasts"]
        - split["stats"]["broadcasts_removed"]
    )

    requests = record["stats"]["request_inputs"]
    raw = _raw_request(din, requests, 3)
    encoded = encode_inputs(out, raw)
    original = load_model(din.model_dir)
    expected = run_loaded(original.function, original.spec.inputs, raw)
    rebuilt_graph = freeze(load_model(out / "saved_model"))
    got = GraphRunner(rebuilt_graph)(encoded)
    assert float(np.max(np.abs(got["score"] - expected["score"]))) <= 1e-5
    _user_side_runs_once(rebuilt_graph, requests, encoded)


def test_unread_input_is_a_noted_no_op(dssm_rebuild: RebuildResult) -> None:
    record = dssm_rebuild.pipeline.record("drop_unused_inputs")
    assert record is not None and record.status == "applied", record
    assert record.stats["unread_inputs"] == ["request_id"] and record.stats["nodes_removed"] == 0
    assert record.nodes_before == record.nodes_after
    assert any("request_id" in n for n in record.notes)
    # drop-in for it: the rebuilt signature still takes request_id (one per request here)
    assert "request_id" in dssm_rebuild.graph.signature.inputs


def test_compare_times_a_per_request_rebuild_on_requests(
    dssm_rebuild: RebuildResult, samples: dict[str, SampleResult]
) -> None:
    """compare feeds every model one request (row 0's user side next to each batch of
    candidates): the dedup rebuild and its ONNX export match the original on those rows, and
    the memory probe feeds each model its own request shape (the ONNX file takes the user side
    as one row: it used to get 256 and fail)."""
    from recadvisor import api

    out = Path(dssm_rebuild.out_dir)
    comp = api.compare(
        samples["dssm"].model_dir,
        [out, out / "model.onnx"],
        data=samples["dssm"].data_path,
        batch_sizes=(1, 16),
        requests=5,
        measure_memory=True,
    )
    result = comp.to_dict()
    for model in result["models"]:
        assert model["memory"] is not None, model["label"]
        assert model["memory"]["peak_rss_mb"] > 0
    cands = [m for m in result["models"] if m["label"] != result["models"][0]["label"]]
    assert len(cands) == 2
    for model in cands:
        assert model["parity_passed"], model["parity"]
    assert any("once per request" in note for note in result["notes"])
