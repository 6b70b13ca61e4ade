"""Cost attribution per feature / op type / stage, and op type -> stage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from recadvisor.analysis.attribution import (
    NO_FEATURE,
    SHARED,
    attribute,
    used_features,
)
from recadvisor.analysis.profile import BatchProfile, OpTiming
from recadvisor.analysis.stages import (
    DENSE_MLP,
    EMBEDDING_GATHER,
    OTHER,
    STAGES,
    STRING_LOOKUP,
    stage_of,
    stage_of_node,
)
from recadvisor.bench import LatencySummary
from recadvisor.model.graph import ModelGraph
from recadvisor.model.spec import SignatureSpec, TensorInfo
from recadvisor.tfimport import import_tf

PREFIX = "StatefulPartitionedCall/"
FEATURES = ("age", "item_id", "price", "request_id")


def _batch(
    timings: dict[str, float], graph: ModelGraph, fused: dict[str, tuple[str, ...]] | None = None
) -> BatchProfile:
    """A hand-made BatchProfile over graph nodes with known times (microseconds per call)."""
    total = sum(timings.values())
    ops = tuple(
        OpTiming(
            node=n,
            op=graph.nodes[n].op,
            runtime_ops=(graph.nodes[n].op,),
            self_us=us,
            share=us / total,
            fused_nodes=(fused or {}).get(n, ()),
        )
        for n, us in timings.items()
    )
    return BatchProfile(8, LatencySummary(8, 1, 1.0, 1.0, 1.0, 1.0, 0.0), ops, unmapped_us=0.0)


# --------------------------------------------------------------------- on the real profile
def test_attribution_of_the_profile_sums_to_one(
    tiny_ranker_profile: Any, tiny_ranker_graph: Any
) -> None:
    for batch in tiny_ranker_profile.batches:
        attr = attribute(tiny_ranker_graph, batch)
        assert attr.batch_size == batch.batch_size
        assert set(FEATURES) | {SHARED, NO_FEATURE} == set(attr.per_feature)
        assert sum(attr.per_feature.values()) == pytest.approx(1.0, abs=1e-6)
        assert sum(attr.per_op_type.values()) == pytest.approx(1.0, abs=1e-6)
        assert sum(attr.per_stage.values()) == pytest.approx(1.0, abs=1e-6)
        assert tuple(attr.per_stage) == STAGES
        for stage in (STRING_LOOKUP, EMBEDDING_GATHER, DENSE_MLP):
            assert attr.per_stage[stage] > 0
        for who, share in attr.per_feature.items():
            assert sum(attr.per_feature_stage.get(who, {}).values()) == pytest.approx(share)
            assert sum(attr.per_feature_op_type.get(who, {}).values()) == pytest.approx(share)
        assert attr.mapped_fraction == pytest.approx(batch.mapped_fraction)
        json.dumps(attr.to_dict())


def test_attribution_gives_asstring_and_hash_to_the_int_feature(
    tiny_ranker_profile: Any, tiny_ranker_graph: Any
) -> None:
    batch = tiny_ranker_profile.for_batch(64)
    attr = attribute(tiny_ranker_graph, batch)
    hash_node = batch.timing_of(PREFIX + "StringToHashBucketFast")
    assert hash_node is not None and PREFIX + "AsString" in hash_node.fused_nodes
    assert attr.per_node_features[hash_node.node] == ["age"]
    assert attr.per_node_bucket[hash_node.node] == "age"
    assert attr.per_feature_op_type["age"]["StringToHashBucketFast"] == pytest.approx(
        hash_node.share
    )
    assert attr.per_feature_stage["age"][STRING_LOOKUP] == pytest.approx(hash_node.share)
    assert attr.per_feature_stage["age"][EMBEDDING_GATHER] > 0
    lookup = batch.timing_of(PREFIX + "None_Lookup/LookupTableFindV2")
    assert lookup is not None
    assert attr.per_feature_op_type["item_id"]["LookupTableFindV2"] == pytest.approx(lookup.share)
    # the MLP is fed by every used feature: shared, not charged to anyone
    assert set(attr.per_feature_op_type[SHARED]) >= {"MatMul"}
    assert "MatMul" not in attr.per_feature_op_type.get("age", {})
    # price only feeds the MLP; request_id is never read
    assert attr.per_feature["price"] == 0.0 and attr.per_feature["request_id"] == 0.0
    assert "feature 'age' costs" in attr.feature_summary("age")
    assert "StringToHashBucketFast" in attr.feature_summary("age", top=3)


# --------------------------------------------------------------------- the rules, exactly
def test_used_features_excludes_unread_inputs(tiny_ranker_graph: Any) -> None:
    assert used_features(tiny_ranker_graph) == {"age", "item_id", "price"}


def test_rules_on_known_times(tiny_ranker_graph: Any) -> None:
    timings = {
        PREFIX + "StringToHashBucketFast": 10.0,  # age
        PREFIX + "None_Lookup/LookupTableFindV2": 20.0,  # item_id
        PREFIX + "mul": 30.0,  # age x item_id interaction: 2 of the 3 used features
        PREFIX + "MatMul": 35.0,  # all used features
        PREFIX + "MatMul/ReadVariableOp": 5.0,  # a weight read: no feature
    }
    batch = _batch(timings, tiny_ranker_graph)

    split = attribute(tiny_ranker_graph, batch)  # 2 >= half of 3 used features: shared
    assert split.per_feature["age"] == pytest.approx(0.10)
    assert split.per_feature["item_id"] == pytest.approx(0.20)
    assert split.per_feature[SHARED] == pytest.approx(0.65)
    assert split.per_feature[NO_FEATURE] == pytest.approx(0.05)
    assert split.per_node_bucket[PREFIX + "mul"] == SHARED

    strict = attribute(tiny_ranker_graph, batch, shared_fraction=0.9)  # 2 < 3: split in two
    assert strict.per_feature["age"] == pytest.approx(0.10 + 0.15)
    assert strict.per_feature["item_id"] == pytest.approx(0.20 + 0.15)
    assert strict.per_feature[SHARED] == pytest.approx(0.35)
    assert strict.per_node_bucket[PREFIX + "mul"] == "(split)"

    exclusive = attribute(tiny_ranker_graph, batch, rule="exclusive", shared_fraction=0.9)
    assert exclusive.per_feature[SHARED] == pytest.approx(0.65)

    even = attribute(tiny_ranker_graph, batch, rule="even")
    assert even.per_feature[SHARED] == 0.0
    assert even.per_feature["price"] == pytest.approx(0.35 / 3)
    assert even.per_feature["age"] == pytest.approx(0.10 + 0.15 + 0.35 / 3)
    for attr in (split, strict, exclusive, even):
        assert sum(attr.per_feature.values()) == pytest.approx(1.0, abs=1e-9)
        assert attr.per_op_type["MatMul"] == pytest.approx(0.35)
        assert attr.per_stage[STRING_LOOKUP] == pytest.approx(0.30)
        assert attr.per_stage[DENSE_MLP] == pytest.approx(0.35)


def test_fused_nodes_widen_the_features(tiny_ranker_graph: Any) -> None:
    # a kernel charged to the hash node that also absorbed the concat would read every feature
    batch = _batch(
        {PREFIX + "StringToHashBucketFast": 1.0},
        tiny_ranker_graph,
        fused={PREFIX + "StringToHashBucketFast": (PREFIX + "concat",)},
    )
    attr = attribute(tiny_ranker_graph, batch)
    assert attr.per_node_features[PREFIX + "StringToHashBucketFast"] == ["age", "item_id", "price"]
    assert attr.per_feature[SHARED] == pytest.approx(1.0)


def test_empty_profile_and_bad_rule(tiny_ranker_graph: Any) -> None:
    empty = BatchProfile(1, LatencySummary(1, 1, 1.0, 1.0, 1.0, 1.0, 0.0), (), unmapped_us=0.0)
    attr = attribute(tiny_ranker_graph, empty)
    assert sum(attr.per_feature.values()) == 0.0 and attr.per_node_features == {}
    batch = _batch({PREFIX + "MatMul": 1.0}, tiny_ranker_graph)
    with pytest.raises(ValueError, match="unknown attribution rule 'bogus'"):
        attribute(tiny_ranker_graph, batch, rule="bogus")
    with pytest.raises(ValueError, match="shared_fraction"):
        attribute(tiny_ranker_graph, batch, shared_fraction=0.0)


# --------------------------------------------------------------------- stages
@pytest.mark.parametrize(
    ("op", "stage"),
    [
        ("AsString", STRING_LOOKUP),
        ("StringToHashBucketFast", STRING_LOOKUP),
        ("_TensorToHashBucketFast", STRING_LOOKUP),
        ("LookupTableFindV2", STRING_LOOKUP),
        ("Bucketize", STRING_LOOKUP),
        ("StringSplitV2", STRING_LOOKUP),
        ("GatherV2", EMBEDDING_GATHER),
        ("ResourceGather", EMBEDDING_GATHER),
        ("SparseSegmentMean", EMBEDDING_GATHER),
        ("SparseSegmentSumWithNumSegments", EMBEDDING_GATHER),
        ("MatMul", DENSE_MLP),
        ("BatchMatMulV2", DENSE_MLP),
        ("BiasAdd", DENSE_MLP),
        ("Relu", DENSE_MLP),
        ("Sigmoid", DENSE_MLP),
        ("Softmax", DENSE_MLP),
        ("_MklNativeFusedMatMul", DENSE_MLP),
        ("_MklMatMul", DENSE_MLP),
        ("_FusedConv2D", DENSE_MLP),
        ("ConcatV2", OTHER),
        ("Reshape", OTHER),
        ("AddV2", OTHER),
        ("Identity", OTHER),
        ("SomethingNew", OTHER),
    ],
)
def test_stage_of(op: str, stage: str) -> None:
    assert stage_of(op) == stage


@pytest.fixture(scope="module")
def stage_graph() -> ModelGraph:
    """A v1 graph with an embedding gather, a gather over activations, a string compare and a
    MatMul + Add bias."""
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 4], name="x")
        ids = v1.placeholder(tf.int64, [None], name="ids")
        word = v1.placeholder(tf.string, [None], name="word")
        table = tf.constant([[0.5] * 4] * 10, name="emb")
        emb = tf.gather(table, ids, name="emb_gather")
        picked = tf.gather(x, ids, name="row_gather")
        is_a = tf.cast(tf.equal(word, "a", name="is_a"), tf.float32)
        logits = tf.add(tf.matmul(emb + picked, tf.ones([4, 1]), name="mm"), 1.0, name="bias")
        out = tf.identity(tf.squeeze(logits, 1) * is_a, name="out")
    spec = SignatureSpec(
        "s",
        {k: TensorInfo(k, "float32", None) for k in ("x", "ids", "word")},
        {"out": TensorInfo("out", "float32", None)},
    )
    return ModelGraph(
        graph.as_graph_def(),
        spec,
        {"x": "x:0", "ids": "ids:0", "word": "word:0"},
        {"out": out.name},
    )


def test_stage_of_node_refines_by_neighbours(stage_graph: ModelGraph) -> None:
    assert stage_of_node(stage_graph, "emb_gather") == EMBEDDING_GATHER
    assert stage_of_node(stage_graph, "row_gather") == OTHER  # params are activations
    assert stage_of_node(stage_graph, "is_a") == STRING_LOOKUP  # string compare
    assert stage_of_node(stage_graph, "mm") == DENSE_MLP
    assert stage_of_node(stage_graph, "bias") == DENSE_MLP  # Add fed by a MatMul
    assert stage_of_node(stage_graph, "out") == OTHER
    assert stage_of_node(stage_graph, "no such node") == OTHER
