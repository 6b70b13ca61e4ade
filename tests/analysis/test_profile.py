"""Per-op profile: trace reading, name mapping, fusions, latency, and the real thing on a tiny
model (TF2 signature and TF1 frozen graph)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recadvisor.analysis.profile import (
    TARGET_FROZEN,
    TARGET_SIGNATURE,
    BatchProfile,
    RuntimeNameMapper,
    RuntimeOpTime,
    attribute_runtime_times,
    fresh_function_instance,
    profile_model,
    read_xplane_op_times,
    trace_warmup_calls,
)
from recadvisor.errors import DataError
from tests.analysis.conftest import tiny_ranker_feeds

PREFIX = "StatefulPartitionedCall/"


def _timing_by_op(batch: BatchProfile, op: str) -> list[Any]:
    return [t for t in batch.ops if t.op == op]


# --------------------------------------------------------------------- the real profile
def test_profile_finds_string_ops_gathers_and_mlp(
    tiny_ranker_profile: Any, tiny_ranker_graph: Any
) -> None:
    profile = tiny_ranker_profile
    assert profile.target == TARGET_SIGNATURE
    assert profile.batch_sizes == (1, 64)
    for batch in profile.batches:
        assert all(t.node in tiny_ranker_graph.nodes for t in batch.ops)
        hashes = _timing_by_op(batch, "StringToHashBucketFast")
        assert len(hashes) == 1 and hashes[0].self_us > 0
        # Grappler runs AsString + hash as one kernel; it is charged to the hash node
        assert "_TensorToHashBucketFast" in hashes[0].runtime_ops
        assert hashes[0].fused_nodes == (PREFIX + "AsString",)
        assert len(_timing_by_op(batch, "LookupTableFindV2")) == 1
        assert len(_timing_by_op(batch, "GatherV2")) == 2
        matmuls = _timing_by_op(batch, "MatMul")
        assert {t.node for t in matmuls} == {PREFIX + "MatMul", PREFIX + "MatMul_1"}
        assert all(t.self_us > 0 for t in matmuls)
        # no node appears twice, fused nodes do not get their own row
        nodes = [t.node for t in batch.ops]
        assert len(nodes) == len(set(nodes))
        fused = {n for t in batch.ops for n in t.fused_nodes}
        assert not fused & set(nodes)


def test_profile_shares_sum_to_one_and_time_is_mapped(tiny_ranker_profile: Any) -> None:
    for batch in tiny_ranker_profile.batches:
        assert sum(t.share for t in batch.ops) == pytest.approx(1.0, abs=1e-6)
        assert batch.mapped_fraction >= 0.9
        assert batch.mapped_us == pytest.approx(sum(t.self_us for t in batch.ops))
        assert batch.trace_calls == 5
        shares = [t.share for t in batch.ops]
        assert shares == sorted(shares, reverse=True)


def test_profile_latency_is_ordered(tiny_ranker_profile: Any) -> None:
    for batch in tiny_ranker_profile.batches:
        lat = batch.latency
        assert lat.batch_size == batch.batch_size and lat.calls == 20
        assert 0 < lat.p50_ms <= lat.p90_ms <= lat.p99_ms
        assert lat.mean_ms > 0


def test_profile_to_dict_and_for_batch(tiny_ranker_profile: Any) -> None:
    data = json.loads(json.dumps(tiny_ranker_profile.to_dict()))
    assert data["target"] == TARGET_SIGNATURE and data["signature"] == "serving_default"
    assert [b["batch_size"] for b in data["batches"]] == [1, 64]
    first = data["batches"][0]
    assert {"latency", "ops", "unmapped_us", "mapped_fraction"} <= set(first)
    assert {"node", "op", "runtime_ops", "self_us", "share", "fused_nodes"} <= set(first["ops"][0])
    assert tiny_ranker_profile.for_batch(64).batch_size == 64
    with pytest.raises(KeyError, match="batch size 7"):
        tiny_ranker_profile.for_batch(7)


# Ops that do no work of their own at run time (folded, aliased or fed).
NON_COMPUTE_OPS = frozenset({"Const", "Placeholder", "Identity", "IdentityN", "NoOp"})


def test_profile_of_a_warmed_up_model_records_cheap_kernels(
    tiny_ranker: Any, tiny_ranker_graph: Any
) -> None:
    """After ~90 calls TensorFlow's executor treats cheap kernels as inexpensive and the trace
    no longer records them (batch 1 then showed 4-6 of DIN's ~50 kernels); the trace runs on a
    fresh function instance so that every compute node is still timed."""
    feeds = tiny_ranker_feeds(16)
    warm = {k: v[:1] for k, v in feeds.items()}
    for _ in range(150):  # a model already serving: every kernel's cost estimate has decayed
        tiny_ranker.function(**warm)
    graph = tiny_ranker_graph
    needed = graph.ancestors(graph.output_nodes.values())
    compute = {n for n in needed if graph.nodes[n].op not in NON_COMPUTE_OPS}
    profile = profile_model(tiny_ranker, graph, feeds, (1,), warmup=3, calls=5, trace_calls=5)
    batch = profile.batches[0]
    covered = {t.node for t in batch.ops} | {n for t in batch.ops for n in t.fused_nodes}
    assert len(compute & covered) >= 0.8 * len(compute), sorted(compute - covered)
    assert {"StringToHashBucketFast", "LookupTableFindV2", "GatherV2", "ConcatV2"} <= {
        t.op for t in batch.ops
    }


def test_fresh_function_instance_tags_calls_and_restores_the_options() -> None:
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    options = context.context().function_call_options
    before = options.config_proto_serialized
    with pytest.raises(RuntimeError, match="inside"):
        with fresh_function_instance("recadvisor-test-tag"):
            inside = config_pb2.ConfigProto.FromString(options.config_proto_serialized)
            assert inside.experimental.session_metadata.name == "recadvisor-test-tag"
            inside.experimental.ClearField("session_metadata")
            assert inside == config_pb2.ConfigProto.FromString(before)  # nothing else changed
            raise RuntimeError("inside")
    # byte for byte: the warmed-up instance is found again under the same key
    assert options.config_proto_serialized == before


def test_profile_reports_progress(tiny_ranker: Any, tiny_ranker_graph: Any) -> None:
    seen: list[tuple[str, int, int]] = []
    profile_model(
        tiny_ranker,
        tiny_ranker_graph,
        tiny_ranker_feeds(8),
        (2,),
        warmup=1,
        calls=3,
        trace_calls=2,
        progress=lambda d, c, t: seen.append((d, c, t)),
    )
    # 1 warm-up + 3 timed + 1 call building the fresh instance for the trace + 2 traced
    assert seen[-1][1] == seen[-1][2] == 1 + 3 + trace_warmup_calls(1) + 2 == 7
    assert any("batch 2" in d and "trac" in d for d, _, _ in seen)
    done = [c for _, c, _ in seen]
    assert done == sorted(done)


def test_profile_tf1_runs_the_frozen_graph(tmp_path: Path) -> None:
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model
    from tests.model import builders

    path = builders.build_tf1_estimator_style(tmp_path / "tf1")
    loaded = load_model(path)
    assert loaded.function is None
    graph = freeze(loaded)
    profile = profile_model(
        loaded, graph, builders.tf1_feeds(8), (4,), warmup=2, calls=5, trace_calls=3
    )
    assert profile.target == TARGET_FROZEN
    batch = profile.batches[0]
    assert batch.mapped_fraction >= 0.9
    assert sum(t.share for t in batch.ops) == pytest.approx(1.0, abs=1e-6)
    assert {"LookupTableFindV2", "GatherV2", "MatMul"} <= {t.op for t in batch.ops}


# --------------------------------------------------------------------- bad feeds
def test_profile_rejects_missing_inputs_all_at_once(
    tiny_ranker: Any, tiny_ranker_graph: Any
) -> None:
    feeds = tiny_ranker_feeds(4)
    del feeds["age"], feeds["price"]
    with pytest.raises(DataError, match=r"\['age', 'price'\]"):
        profile_model(tiny_ranker, tiny_ranker_graph, feeds, (1,), warmup=0, calls=1, trace_calls=1)


def test_profile_rejects_ragged_and_mistyped_feeds(
    tiny_ranker: Any, tiny_ranker_graph: Any
) -> None:
    ragged = tiny_ranker_feeds(4)
    ragged["price"] = ragged["price"][:2]
    with pytest.raises(DataError, match="row counts"):
        profile_model(
            tiny_ranker, tiny_ranker_graph, ragged, (1,), warmup=0, calls=1, trace_calls=1
        )
    mistyped = tiny_ranker_feeds(4)
    mistyped["age"] = np.array([["x"]] * 4, dtype=object)
    with pytest.raises(DataError, match="'age'.*int64"):
        profile_model(
            tiny_ranker, tiny_ranker_graph, mistyped, (1,), warmup=0, calls=1, trace_calls=1
        )


def test_profile_rejects_bad_settings(tiny_ranker: Any, tiny_ranker_graph: Any) -> None:
    with pytest.raises(ValueError, match="batch sizes"):
        profile_model(tiny_ranker, tiny_ranker_graph, tiny_ranker_feeds(4), (0,))
    with pytest.raises(ValueError, match="calls"):
        profile_model(tiny_ranker, tiny_ranker_graph, tiny_ranker_feeds(4), (1,), calls=0)


# --------------------------------------------------------------------- xplane reading
def _xspace_file(path: Path) -> Path:
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    plane = space.planes.add()
    plane.name = "/host:CPU"
    for md_id, name, display in [
        (1, "outer/call:PartitionedCall", "PartitionedCall"),
        (2, "outer/inner/MatMul:_MklMatMul", "_MklMatMul"),
        (3, "ExecutorState::Process", ""),
        (4, "EagerLocalExecute: __inference_f_12", ""),
    ]:
        plane.event_metadata[md_id].id = md_id
        plane.event_metadata[md_id].name = name
        plane.event_metadata[md_id].display_name = display
    line = plane.lines.add()
    for md_id, offset, duration in [
        (3, 0, 500),
        (1, 10, 100),
        (2, 20, 30),
        (2, 60, 10),
        (4, 0, 1000),
        (2, 300, 50),
    ]:
        event = line.events.add()
        event.metadata_id, event.offset_ps, event.duration_ps = md_id, offset, duration
    other = plane.lines.add()  # another thread
    event = other.events.add()
    event.metadata_id, event.offset_ps, event.duration_ps = 2, 15, 25
    out = path / "host.xplane.pb"
    out.write_bytes(space.SerializeToString())
    return out


def test_read_xplane_takes_kernel_self_time(tmp_path: Path) -> None:
    times = {(t.name, t.op): t for t in read_xplane_op_times(_xspace_file(tmp_path))}
    assert set(times) == {("outer/call", "PartitionedCall"), ("outer/inner/MatMul", "_MklMatMul")}
    # the call op's nested kernels (30 + 10) are not its own time
    assert times[("outer/call", "PartitionedCall")].self_ps == 60
    matmul = times[("outer/inner/MatMul", "_MklMatMul")]
    assert matmul.self_ps == 30 + 10 + 50 + 25 and matmul.events == 4


# --------------------------------------------------------------------- name mapping
def test_mapper_exact_prefix_grappler_and_suffix(tiny_ranker_graph: Any) -> None:
    mapper = RuntimeNameMapper(tiny_ranker_graph, strip_prefixes=("model/",))
    assert mapper.map(PREFIX + "MatMul", "_MklMatMul") == PREFIX + "MatMul"
    assert mapper.map("model/" + PREFIX + "concat", "ConcatV2") == PREFIX + "concat"
    # Grappler renames: rule prefix in an optimizer scope, folded suffix
    assert mapper.map(PREFIX + "ArithmeticOptimizer/AddOpsRewrite_mul", "Mul") == PREFIX + "mul"
    assert mapper.map(PREFIX + "concat-folded-1", "ConcatV2") == PREFIX + "concat"
    # runtime name longer (extra outer scope) and shorter (scope dropped) than the graph's
    assert mapper.map("outer_1/" + PREFIX + "Gather_1", "ResourceGather") == PREFIX + "Gather_1"
    assert mapper.map("None_Lookup/LookupTableFindV2", "LookupTableFindV2") == (
        PREFIX + "None_Lookup/LookupTableFindV2"
    )


def test_mapper_refuses_unknown_incompatible_and_ambiguous(tiny_ranker_graph: Any) -> None:
    mapper = RuntimeNameMapper(tiny_ranker_graph)
    assert mapper.map("nothing/like/this", "MatMul") is None
    # a suffix hit with an incompatible op type is not taken
    assert mapper.map("outer/" + PREFIX + "concat", "MatMul") is None

    from recadvisor.model.graph import ModelGraph
    from recadvisor.model.spec import SignatureSpec
    from recadvisor.tfimport import import_tf

    graph_def = import_tf().compat.v1.GraphDef()
    for name in ("user_tower/dense/MatMul", "item_tower/dense/MatMul"):
        node = graph_def.node.add()
        node.name, node.op = name, "MatMul"
    two_towers = ModelGraph(graph_def, SignatureSpec("s"), {}, {})
    # "dense/MatMul" ends two graph names: ambiguous, not guessed
    assert RuntimeNameMapper(two_towers).map("x/dense/MatMul", "MatMul") is None
    assert RuntimeNameMapper(two_towers).map("x/item_tower/dense/MatMul", "MatMul") == (
        "item_tower/dense/MatMul"
    )


def test_fused_kernels_are_charged_to_the_nodes_they_replace(tiny_ranker_graph: Any) -> None:
    op_times = [
        RuntimeOpTime(PREFIX + "Relu", "_MklNativeFusedMatMul", 8_000_000, 2),
        RuntimeOpTime(PREFIX + "StringToHashBucketFast", "_TensorToHashBucketFast", 2_000_000, 2),
        RuntimeOpTime("not/in/graph", "Foo", 1_000_000, 2),
    ]
    ops, unmapped_us, unmapped_ops = attribute_runtime_times(tiny_ranker_graph, op_times, calls=2)
    by_node = {t.node: t for t in ops}
    assert set(by_node) == {PREFIX + "MatMul", PREFIX + "StringToHashBucketFast"}
    matmul = by_node[PREFIX + "MatMul"]
    assert matmul.op == "MatMul" and matmul.self_us == pytest.approx(4.0)
    assert matmul.fused_nodes == (PREFIX + "add", PREFIX + "Relu")
    assert matmul.share == pytest.approx(0.8)
    assert by_node[PREFIX + "StringToHashBucketFast"].fused_nodes == (PREFIX + "AsString",)
    assert unmapped_us == pytest.approx(0.5)
    assert unmapped_ops == {"not/in/graph:Foo": pytest.approx(0.5)}


def test_fused_kernel_named_after_its_matmul_claims_the_untimed_tail(
    tiny_ranker_graph: Any,
) -> None:
    op_times = [RuntimeOpTime(PREFIX + "MatMul_1", "_FusedMatMul", 3_000_000, 1)]
    ops, _, _ = attribute_runtime_times(tiny_ranker_graph, op_times, calls=1)
    assert ops[0].node == PREFIX + "MatMul_1"
    assert ops[0].fused_nodes == (PREFIX + "add_1", PREFIX + "Sigmoid")
    # a tail op that ran on its own keeps its own row and is not claimed
    op_times.append(RuntimeOpTime(PREFIX + "Sigmoid", "Sigmoid", 1_000_000, 1))
    ops, _, _ = attribute_runtime_times(tiny_ranker_graph, op_times, calls=1)
    by_node = {t.node: t for t in ops}
    assert by_node[PREFIX + "MatMul_1"].fused_nodes == (PREFIX + "add_1",)
    assert by_node[PREFIX + "Sigmoid"].self_us == pytest.approx(1.0)


def test_fused_kernel_over_a_reshaped_dense_is_charged_to_its_matmul() -> None:
    """A Keras Dense on a 3-D input is Reshape -> MatMul -> AddV2 -> Reshape -> Relu in the frozen
    graph; Grappler fuses MatMul + AddV2 + Relu into one kernel named after the Relu."""
    from recadvisor.model.graph import ModelGraph
    from recadvisor.model.spec import SignatureSpec
    from recadvisor.tfimport import import_tf

    graph_def = import_tf().compat.v1.GraphDef()
    for name, op, inputs in (
        ("x", "Placeholder", []),
        ("w", "Const", []),
        ("b", "Const", []),
        ("shape", "Const", []),
        ("flat", "Reshape", ["x", "shape"]),
        ("MatMul", "MatMul", ["flat", "w"]),
        ("add", "AddV2", ["MatMul", "b"]),
        ("back", "Reshape", ["add", "shape"]),
        ("Relu", "Relu", ["back"]),
    ):
        node = graph_def.node.add()
        node.name, node.op = name, op
        node.input.extend(inputs)
    graph = ModelGraph(graph_def, SignatureSpec("s"), {}, {})
    op_times = [
        RuntimeOpTime("Relu", "_MklNativeFusedMatMul", 6_000_000, 2),
        RuntimeOpTime("back", "Reshape", 1_000_000, 2),
    ]
    ops, unmapped_us, _ = attribute_runtime_times(graph, op_times, calls=2)
    by_node = {t.node: t for t in ops}
    assert set(by_node) == {"MatMul", "back"}
    assert by_node["MatMul"].op == "MatMul" and by_node["MatMul"].self_us == pytest.approx(3.0)
    assert by_node["MatMul"].fused_nodes == ("add", "Relu")  # the Reshape ran on its own
    assert unmapped_us == 0
