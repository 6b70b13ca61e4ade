"""numeric_bucketize: AsString + hash on a number -> Bucketize + gather from a smaller table."""

from __future__ import annotations

import numpy as np
import pytest

from recadvisor.model.edits import const_array
from recadvisor.model.queries import rewritable_tables
from recadvisor.model.runtime import GraphRunner
from recadvisor.rewrite.base import PassRefused, PassResult
from recadvisor.rewrite.encodings import encode_feeds
from recadvisor.rewrite.ids_upstream import IdsUpstreamPass
from recadvisor.rewrite.numeric_bucketize import NumericBucketizePass
from tests.rewrite.fixtures_contract import (
    ContractModel,
    cast_ids,
    double_hash,
    hashing_ranker,
    max_abs_diff,
    two_tower,
)


@pytest.fixture(scope="module")
def hranker() -> ContractModel:
    return hashing_ranker()


@pytest.fixture(scope="module")
def clamped(hranker: ContractModel) -> PassResult:
    return NumericBucketizePass().apply(hranker.graph, {}, hranker.context(labels=False))


def _with_ages(model: ContractModel, ages: list[int]) -> dict[str, np.ndarray]:
    feeds = {k: v[: len(ages)] for k, v in model.feeds.items()}
    feeds["age"] = np.array(ages, np.int64).reshape(-1, 1)
    return feeds


def _age_rows(graph) -> int:
    tables = rewritable_tables(graph)
    [age] = [t for t in tables.values() if t.shape[1] == 4 and t.shape[0] != 6]
    return age.shape[0]


def test_exact_on_sample(hranker: ContractModel, clamped: PassResult) -> None:
    out = GraphRunner(clamped.graph)(hranker.feeds)
    assert max_abs_diff(out, hranker.run_original(hranker.feeds)) <= 1e-5


def test_structure_string_ops_gone_and_table_shrunk(
    hranker: ContractModel, clamped: PassResult
) -> None:
    ops = clamped.graph.op_counts()
    assert ops.get("AsString", 0) == 0
    assert ops["Bucketize"] == 1
    assert ops["StringToHashBucketFast"] == hranker.graph.op_counts()["StringToHashBucketFast"] - 1
    assert _age_rows(hranker.graph) == 100
    stats = clamped.stats["inputs"]["age"]
    # 53 ages (18..70); adjacent ages hashed to one row share it, so at most 53 rows
    assert stats["values"] == 53 and stats["min"] == 18 and stats["max"] == 70
    assert _age_rows(clamped.graph) == stats["rows_after"] <= 53
    assert clamped.stats["table_bytes_after"] < clamped.stats["table_bytes_before"]
    assert clamped.graph.signature == hranker.graph.signature
    assert clamped.encodings == ()
    # the ids were sliced ([:, 0]) before the gather: the slice now carries int32 buckets
    [bucketize] = [n for n in clamped.graph.graph_def.node if n.op == "Bucketize"]
    [reader] = clamped.graph.consumers[bucketize.name]
    assert clamped.graph.nodes[reader].op == "StridedSlice"


def test_notes_state_range_and_clamp(hranker: ContractModel, clamped: PassResult) -> None:
    [note] = clamped.notes
    assert "every integer in [18, 70] (53 values)" in note and "nearest kept value" in note
    runner = GraphRunner(clamped.graph)
    inside = _with_ages(hranker, [18, 40, 70])
    assert max_abs_diff(runner(inside), hranker.run_original(inside)) <= 1e-5
    outside = runner(_with_ages(hranker, [3, 200]))["logit"]
    edges = runner(_with_ages(hranker, [18, 70]))["logit"]
    assert np.allclose(outside, edges, atol=1e-6)  # 3 reads the row of 18, 200 the row of 70


def test_fallback_row_outside_the_range(hranker: ContractModel) -> None:
    result = NumericBucketizePass().apply(
        hranker.graph,
        {"out_of_range": "fallback_row", "fallback": "zeros"},
        hranker.context(labels=False),
    )
    assert result.stats["inputs"]["age"]["out_of_range"] == "fallback_row"
    runner = GraphRunner(result.graph)
    inside = _with_ages(hranker, [18, 55, 70])
    assert max_abs_diff(runner(inside), hranker.run_original(inside)) <= 1e-5
    # every bucket outside 18..70 reads an all-zero row
    tables = rewritable_tables(result.graph)
    [age] = [t for t in tables.values() if t.shape[1] == 4 and t.shape[0] != 6]
    table = const_array(result.graph.nodes[age.const])
    assert np.all(table[0] == 0) and np.all(table[-1] == 0)
    assert "fallback row" in result.notes[0]


def test_chains_with_ids_upstream_into_a_string_free_graph(
    hranker: ContractModel, clamped: PassResult
) -> None:
    up = IdsUpstreamPass().apply(clamped.graph, {}, hranker.context(labels=False))
    assert "age" not in {e.input_key for e in up.encodings}  # age stays a plain number
    assert up.stats["string_ops_after"] == 0
    encoded = encode_feeds(up.encodings, hranker.feeds)
    assert max_abs_diff(GraphRunner(up.graph)(encoded), hranker.run_original(hranker.feeds)) <= 1e-5


def test_works_when_the_number_is_also_read_as_a_number() -> None:
    model = double_hash()
    result = NumericBucketizePass().apply(model.graph, {}, model.context(labels=False))
    assert result.graph.op_counts().get("AsString", 0) == 0
    assert (
        max_abs_diff(GraphRunner(result.graph)(model.feeds), model.run_original(model.feeds))
        <= 1e-5
    )


def test_refuses_without_numeric_hashing() -> None:
    model = two_tower()
    with pytest.raises(PassRefused, match="no numeric input is formatted"):
        NumericBucketizePass().apply(model.graph, {}, model.context(labels=False))


def test_refuses_values_float32_boundaries_cannot_separate(hranker: ContractModel) -> None:
    with pytest.raises(PassRefused, match="beyond 2\\*\\*24"):
        NumericBucketizePass().apply(
            hranker.graph, {"values": [1, 2**25]}, hranker.context(labels=False)
        )
    with pytest.raises(PassRefused, match="out_of_range"):
        NumericBucketizePass().apply(
            hranker.graph, {"out_of_range": "wrap"}, hranker.context(labels=False)
        )


def test_ids_cast_and_measured_are_rewritten_an_offset_is_not() -> None:
    model = cast_ids()
    result = NumericBucketizePass().apply(model.graph, {}, model.context(labels=False))
    assert list(result.stats["inputs"]) == ["age"]
    # age: the Reshape to tf.shape(ids)[:1] and the cast to int32 now carry int32 buckets
    before, after = model.graph.op_counts(), result.graph.op_counts()
    assert after["Bucketize"] == 1 and after["Cast"] == before["Cast"]
    assert after["AsString"] == before["AsString"] - 1 == 1
    assert result.stats["inputs"]["age"]["rows_after"] <= 53
    # year: ids + 1 reads the hash ids as numbers, so it keeps its string ops
    assert any(n.startswith("left as is: year:") and "AddV2" in n for n in result.notes)
    out = GraphRunner(result.graph)(model.feeds)
    assert max_abs_diff(out, model.run_original(model.feeds)) <= 1e-5
