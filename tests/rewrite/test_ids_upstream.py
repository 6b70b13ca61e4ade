"""ids_upstream: string / numeric-as-string inputs become int64 ids computed by the encoder."""

from __future__ import annotations

import pytest

from recadvisor.model.load import load_model
from recadvisor.model.runtime import GraphRunner, export_saved_model, run_loaded
from recadvisor.rewrite.base import PassRefused, PassResult, RewriteContext
from recadvisor.rewrite.encodings import encode_feeds
from recadvisor.rewrite.ids_upstream import IdsUpstreamPass
from recadvisor.rewrite.registry import get_pass
from tests.rewrite.fixtures_contract import (
    ContractModel,
    double_hash,
    hashing_ranker,
    max_abs_diff,
    ranker_feeds,
    two_tower,
)

GONE = ("StringToHashBucketFast", "AsString", "LookupTableFindV2", "_TensorToHashBucketFast")


@pytest.fixture(scope="module")
def hranker() -> ContractModel:
    return hashing_ranker()


@pytest.fixture(scope="module")
def upstream(hranker: ContractModel) -> PassResult:
    return IdsUpstreamPass().apply(hranker.graph, {}, hranker.context(labels=False))


def test_registry_resolves_the_pass() -> None:
    assert isinstance(get_pass("ids_upstream"), IdsUpstreamPass)


def test_parity_on_sample_and_fresh_rows(hranker: ContractModel, upstream: PassResult) -> None:
    runner = GraphRunner(upstream.graph)
    for feeds in (hranker.feeds, ranker_feeds(64, seed=11)):
        encoded = encode_feeds(upstream.encodings, feeds)
        assert max_abs_diff(runner(encoded), hranker.run_original(feeds)) <= 1e-5


def test_string_ops_and_the_vocabulary_table_are_gone(
    hranker: ContractModel, upstream: PassResult
) -> None:
    before, after = hranker.graph.op_counts(), upstream.graph.op_counts()
    assert before["StringToHashBucketFast"] == 3 and before["LookupTableFindV2"] == 1
    for op in GONE:
        assert after.get(op, 0) == 0, op
    assert upstream.graph.tables == {}
    assert upstream.stats["string_ops_after"] == 0
    assert upstream.stats["tables_removed"] == 1
    string_nodes = [
        n.name
        for n in upstream.graph.graph_def.node
        if n.op == "Placeholder" and n.attr["dtype"].type == 7
    ]
    assert string_nodes == []


def test_contract_and_encodings(upstream: PassResult) -> None:
    inputs = upstream.graph.signature.inputs
    assert {k: (v.dtype, v.shape) for k, v in inputs.items()} == {
        "user_id": ("int64", (None,)),
        "item_id": ("int64", (None, 1)),
        "age": ("int64", (None, 1)),
        "category": ("int64", (None,)),
        "price": ("float32", (None, 1)),
    }
    kinds = {e.input_key: (e.kind, e.source_dtype) for e in upstream.encodings}
    assert kinds == {
        "user_id": ("hash_bucket", "string"),
        "item_id": ("hash_bucket", "string"),
        "age": ("as_string_hash_bucket", "int64"),
        "category": ("vocabulary", "string"),
    }
    params = {e.input_key: e.params for e in upstream.encodings}
    assert params["user_id"] == {"num_buckets": 1000}
    assert params["category"]["default_value"] == 5
    assert sorted(params["category"]["keys"]) == ["books", "games", "garden", "music", "toys"]


def test_rewritten_graph_exports_and_serves(
    tmp_path, hranker: ContractModel, upstream: PassResult
) -> None:
    out = export_saved_model(upstream.graph, tmp_path / "sm")
    loaded = load_model(out)
    assert loaded.spec.inputs["user_id"].dtype == "int64"
    encoded = encode_feeds(upstream.encodings, hranker.feeds)
    served = run_loaded(loaded.function, loaded.spec.inputs, encoded)
    assert max_abs_diff(served, hranker.run_original(hranker.feeds)) <= 1e-5


def test_inputs_param_limits_the_rewrite(hranker: ContractModel) -> None:
    result = IdsUpstreamPass().apply(
        hranker.graph, {"inputs": ["user_id"]}, hranker.context(labels=False)
    )
    assert [e.input_key for e in result.encodings] == ["user_id"]
    assert result.graph.op_counts()["StringToHashBucketFast"] == 2
    assert result.graph.signature.inputs["item_id"].dtype == "string"
    encoded = encode_feeds(result.encodings, hranker.feeds)
    assert (
        max_abs_diff(GraphRunner(result.graph)(encoded), hranker.run_original(hranker.feeds))
        <= 1e-5
    )


def test_refuses_two_bucket_counts_and_numbers_read_as_numbers() -> None:
    model = double_hash()
    with pytest.raises(PassRefused) as info:
        IdsUpstreamPass().apply(model.graph, {}, model.context(labels=False))
    message = str(info.value)
    assert "StringToHashBucketFast(100) and StringToHashBucketFast(1000)" in message
    assert "cannot become one int64 input" in message
    assert "also read as a number" in message


def test_refuses_a_graph_without_hashing(hranker: ContractModel, upstream: PassResult) -> None:
    encoded = encode_feeds(upstream.encodings, hranker.feeds)
    with pytest.raises(PassRefused, match="nothing to move upstream"):
        IdsUpstreamPass().apply(upstream.graph, {}, RewriteContext(encoded, hranker.feeds))


def test_tf1_model_strings_move_upstream(tf1_ranker) -> None:
    result = IdsUpstreamPass().apply(
        tf1_ranker.graph, {}, RewriteContext(tf1_ranker.feeds, tf1_ranker.feeds)
    )
    after = result.graph.op_counts()
    assert all(after.get(op, 0) == 0 for op in GONE)
    original = GraphRunner(tf1_ranker.graph)(tf1_ranker.feeds)
    rebuilt = GraphRunner(result.graph)(encode_feeds(result.encodings, tf1_ranker.feeds))
    assert max_abs_diff(rebuilt, original) <= 1e-5


def test_padding_mask_compares_reserved_ids() -> None:
    """``hist != ""`` (a padding mask) keeps working: "" is sent as -1, hashed back in-graph."""
    model = two_tower()
    result = IdsUpstreamPass().apply(model.graph, {}, model.context(labels=False))
    hist = next(e for e in result.encodings if e.input_key == "hist_item_id")
    assert hist.params == {"num_buckets": 500, "reserved": {"": -1}}
    assert "'' is sent as -1" in " ".join(result.notes)
    assert result.stats["string_ops_after"] == 0
    not_equal = [n for n in result.graph.graph_def.node if n.op == "NotEqual"]
    assert len(not_equal) == 1 and not_equal[0].attr["T"].type == 9  # int64 now
    encoded = encode_feeds(result.encodings, model.feeds)
    assert (encoded["hist_item_id"] == -1).sum() == (model.feeds["hist_item_id"] == "").sum() > 0
    assert max_abs_diff(GraphRunner(result.graph)(encoded), model.run_original(model.feeds)) <= 1e-5
