"""string_ops detector: string work per feature, with its cost."""

from __future__ import annotations

from recadvisor.analysis.detectors import string_ops
from recadvisor.analysis.findings import HIGH, LOW, STRING_OP
from tests.analysis.detectors.conftest import make_profile


def _by_feature(findings):
    return {f.features: f for f in findings if f.kind == STRING_OP}


def test_every_string_feature_is_reported_with_its_ops(ranker):
    found = _by_feature(string_ops.detect(ranker.context()))
    assert set(found) == {
        ("user_id",),
        ("age",),
        ("city",),
        ("hist_item_id",),
        ("item_id",),
        ("category",),
    }
    assert found[("age",)].evidence["op_types"] == {"AsString": 1, "StringToHashBucketFast": 1}
    assert found[("city",)].evidence["op_types"] == {"StringToHashBucketFast": 2}
    assert found[("city",)].evidence["num_buckets"] == [50]
    # the padding mask is a string comparison
    assert found[("hist_item_id",)].evidence["op_types"]["NotEqual"] == 1
    assert found[("category",)].evidence["op_types"] == {"LookupTableFindV2": 2}
    assert found[("category",)].evidence["vocabulary_sizes"] == [10]
    # no profile: low severity, no share
    assert all(f.severity == LOW and f.evidence["time_share"] is None for f in found.values())
    assert "not profiled" in found[("age",)].message


def test_unused_input_has_no_string_op(ranker):
    found = _by_feature(string_ops.detect(ranker.context()))
    assert ("request_id",) not in found


def test_cost_comes_from_the_profile(ranker):
    graph = ranker.graph
    age = _by_feature(string_ops.detect(ranker.context()))[("age",)]
    hash_node = age.evidence["hashes"][0]
    other = next(n for n in graph.nodes if graph.nodes[n].op == "MatMul")
    profile = make_profile(graph, {hash_node: 30.0, other: 70.0})
    found = _by_feature(string_ops.detect(ranker.context(profile=profile)))
    age = found[("age",)]
    assert abs(age.evidence["time_share"] - 0.3) < 1e-9
    assert age.evidence["time_share_by_batch"] == {1: 0.3, 64: 0.3}
    assert age.evidence["time_us_by_batch"][64] == 30.0
    assert age.severity == HIGH
    assert "30.0% of op time at batch 64" in age.message
    assert found[("user_id",)].evidence["time_share"] == 0.0


def test_no_string_ops_no_findings(clean, multitask):
    assert string_ops.detect(clean.context()) == []
    assert string_ops.detect(multitask.context()) == []
