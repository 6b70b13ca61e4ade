"""per_request_dedup: user-side inputs given once, the user tower run once and broadcast."""

from __future__ import annotations

import numpy as np
import pytest

from recadvisor.errors import DataError
from recadvisor.model.runtime import GraphRunner
from recadvisor.rewrite.base import PassRefused, PassResult, RewriteContext
from recadvisor.rewrite.encodings import encode_feeds
from recadvisor.rewrite.ids_upstream import IdsUpstreamPass
from recadvisor.rewrite.per_request_dedup import (
    PerRequestDedupPass,
    detect_request_inputs,
    one_request_feeds,
)
from tests.rewrite.fixtures_contract import ContractModel, batch_reduce, max_abs_diff, two_tower

REQUEST = ["hist_item_id", "user_age", "user_id"]


@pytest.fixture(scope="module")
def tower() -> ContractModel:
    return two_tower()


@pytest.fixture(scope="module")
def dedup(tower: ContractModel) -> PassResult:
    return PerRequestDedupPass().apply(tower.graph, {}, tower.context(labels=False))


def test_detects_request_inputs_by_name() -> None:
    keys = ["user_id", "user_age", "hist_item_id", "item_id", "item_price", "uid", "query_text"]
    assert detect_request_inputs(keys) == [
        "user_id",
        "user_age",
        "hist_item_id",
        "uid",
        "query_text",
    ]


def test_contract_request_inputs_take_one_row(tower: ContractModel, dedup: PassResult) -> None:
    inputs = dedup.graph.signature.inputs
    assert inputs["user_id"].shape == (1,) and inputs["hist_item_id"].shape == (1, 5)
    assert inputs["user_age"].shape == (1, 1) and inputs["item_id"].shape == (None,)
    assert sorted(e.input_key for e in dedup.encodings) == REQUEST
    assert {e.kind for e in dedup.encodings} == {"broadcast"}
    assert dedup.stats["candidate_inputs"] == ["item_id", "item_price"]
    assert dedup.graph.op_counts()["BroadcastTo"] == dedup.stats["broadcasts"] >= 1


@pytest.mark.parametrize("row", [0, 17, 255])
def test_exact_for_a_request(tower: ContractModel, dedup: PassResult, row: int) -> None:
    request = one_request_feeds(tower.feeds, REQUEST, row=row)
    encoded = encode_feeds(dedup.encodings, request)
    assert encoded["user_id"].shape == (1,) and encoded["item_id"].shape == (256,)
    out = GraphRunner(dedup.graph)(encoded)
    assert out["user_vec"].shape == (256, 8)  # request-side output broadcast back
    assert max_abs_diff(out, tower.run_original(request)) <= 1e-5


def test_encoder_refuses_rows_of_different_users(tower: ContractModel, dedup: PassResult) -> None:
    with pytest.raises(DataError, match="one request at a time"):
        encode_feeds(dedup.encodings, tower.feeds)


def test_chains_after_ids_upstream(tower: ContractModel) -> None:
    up = IdsUpstreamPass().apply(tower.graph, {}, tower.context(labels=False))
    encoded = encode_feeds(up.encodings, tower.feeds)
    dd = PerRequestDedupPass().apply(
        up.graph, {"request_inputs": REQUEST}, RewriteContext(encoded, tower.feeds)
    )
    request = one_request_feeds(tower.feeds, REQUEST, row=3)
    feeds = encode_feeds(up.encodings + dd.encodings, request)
    assert feeds["user_id"].dtype == np.int64 and feeds["user_id"].shape == (1,)
    assert max_abs_diff(GraphRunner(dd.graph)(feeds), tower.run_original(request)) <= 1e-5


def test_refuses_a_request_side_reduced_over_the_batch() -> None:
    model = batch_reduce()
    with pytest.raises(PassRefused, match="not batch-major"):
        PerRequestDedupPass().apply(model.graph, {}, model.context(labels=False))


def test_refuses_bad_splits(tower: ContractModel) -> None:
    ctx = tower.context(labels=False)
    with pytest.raises(PassRefused, match="cannot split"):
        PerRequestDedupPass().apply(tower.graph, {"request_inputs": list(tower.feeds)}, ctx)
    with pytest.raises(PassRefused, match="not signature inputs"):
        PerRequestDedupPass().apply(tower.graph, {"request_inputs": ["nope"]}, ctx)
    with pytest.raises(PassRefused, match="at least 2 rows"):
        one_row = {k: v[:1] for k, v in tower.feeds.items()}
        PerRequestDedupPass().apply(tower.graph, {}, RewriteContext(one_row, one_row))
