"""unused detector: unused inputs and per-output cost."""

from __future__ import annotations

from recadvisor.analysis.detectors import unused
from recadvisor.analysis.findings import OUTPUT_COST, UNUSED_INPUT, UNUSED_OUTPUT
from tests.analysis.detectors.conftest import make_profile


def test_unused_input(ranker):
    findings = [f for f in unused.detect(ranker.context()) if f.kind == UNUSED_INPUT]
    assert [f.features for f in findings] == [("request_id",)]
    assert findings[0].evidence["dtype"] == "string"


def test_score_and_logit_differ_too_little_to_report(ranker):
    kinds = [f.kind for f in unused.detect(ranker.context())]
    assert UNUSED_OUTPUT not in kinds and kinds.count(OUTPUT_COST) == 1


def test_per_output_cost_multitask(multitask):
    graph = multitask.graph
    findings = unused.detect(multitask.context())
    cost = next(f for f in findings if f.kind == OUTPUT_COST)
    outputs = cost.evidence["outputs"]
    assert outputs["ctr"]["nodes"] < outputs["ctcvr"]["nodes"]
    assert outputs["cvr"]["nodes"] < outputs["ctcvr"]["nodes"]
    prunable = {f.evidence["keep"][0]: f for f in findings if f.kind == UNUSED_OUTPUT}
    assert set(prunable) == {"ctr", "cvr"}  # ctcvr needs both towers: nothing to prune
    ctr = prunable["ctr"]
    assert ctr.evidence["drop"] == ["ctcvr", "cvr"]
    assert ctr.evidence["weight_bytes_saved"] >= (9 * 16 + 16) * 4  # the CVR tower's weights
    # with a profile, the skipped share is the CVR tower's time
    cvr_matmuls = [n for n in ctr.nodes if graph.nodes[n].op == "MatMul"]
    all_matmuls = [n for n in graph.nodes if graph.nodes[n].op == "MatMul"]
    assert len(cvr_matmuls) == 2 and len(all_matmuls) == 4
    profile = make_profile(graph, {n: 10.0 for n in all_matmuls})
    again = {
        f.evidence["keep"][0]: f
        for f in unused.detect(multitask.context(profile=profile))
        if f.kind == UNUSED_OUTPUT
    }
    assert abs(again["ctr"].evidence["time_share"] - 0.5) < 1e-9
    assert again["ctr"].severity == "medium"


def test_clean_model_has_nothing_unused(clean):
    assert unused.detect(clean.context()) == []
