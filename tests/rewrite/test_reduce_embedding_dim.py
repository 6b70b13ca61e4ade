"""reduce_embedding_dim: truncated SVD, the projection folded into the next dense layer."""

from __future__ import annotations

import pytest

from recadvisor.model.edits import resolve_const
from recadvisor.model.queries import rewritable_tables
from recadvisor.model.runtime import GraphRunner
from recadvisor.rewrite.base import PassRefused, PassResult
from recadvisor.rewrite.reduce_embedding_dim import ReduceEmbeddingDimPass
from tests.rewrite.fixtures_contract import ContractModel, hashing_ranker, max_abs_diff, two_tower


@pytest.fixture(scope="module")
def hranker() -> ContractModel:
    return hashing_ranker()


@pytest.fixture(scope="module")
def reduced(hranker: ContractModel) -> PassResult:
    return ReduceEmbeddingDimPass().apply(hranker.graph, {}, hranker.context())


def _first_kernel_rows(graph) -> int:
    matmuls = [n for n in graph.graph_def.node if n.op == "MatMul"]
    return max(resolve_const(graph, m.input[1]).shape[0] for m in matmuls)


def test_low_rank_table_drops_to_its_rank(hranker: ContractModel, reduced: PassResult) -> None:
    [(const, stats)] = reduced.stats["tables"].items()
    assert stats["dims_before"] == 16 and stats["dims_after"] == 3
    assert stats["energy_kept"] >= 0.99
    assert stats["projection"] == ["folded into StatefulPartitionedCall/MatMul"]
    assert any(t.shape == (500, 3) for t in rewritable_tables(reduced.graph).values())
    # the dense layer got narrower: 33 inputs -> 33 - 16 + 3
    assert _first_kernel_rows(hranker.graph) == 33
    assert _first_kernel_rows(reduced.graph) == 20
    assert reduced.graph.op_counts().get("BatchMatMulV2", 0) == 0
    assert reduced.stats["table_bytes_after"] < reduced.stats["table_bytes_before"] / 5


def test_output_close_and_gated(hranker: ContractModel, reduced: PassResult) -> None:
    diff = max_abs_diff(
        GraphRunner(reduced.graph)(hranker.feeds), hranker.run_original(hranker.feeds)
    )
    assert diff <= 1e-3
    assert reduced.stats["gate"]["auc_drop"] <= 0.001


def test_full_rank_is_exact_on_both_placements() -> None:
    model = two_tower()
    result = ReduceEmbeddingDimPass().apply(model.graph, {"dims": 8}, model.context(labels=False))
    placements = {
        d["table"].split(" (")[1]: d["projection"] for d in result.stats["tables"].values()
    }
    assert placements["hist_item_id)"] == ["BatchMatMulV2 after the gather"]  # [N,5,8] rows
    assert placements["item_id)"][0].startswith("folded into")
    assert result.graph.op_counts()["BatchMatMulV2"] == 1
    diff = max_abs_diff(GraphRunner(result.graph)(model.feeds), model.run_original(model.feeds))
    assert diff <= 1e-5


def test_refuses_without_gain_or_beyond_the_gate(hranker: ContractModel) -> None:
    model = two_tower()
    with pytest.raises(PassRefused, match="needs 8 of 8 dims"):
        ReduceEmbeddingDimPass().apply(model.graph, {}, model.context(labels=False))
    with pytest.raises(PassRefused, match="max_abs_diff"):
        ReduceEmbeddingDimPass().apply(
            hranker.graph, {"dims": 1, "max_abs_diff": 0.01}, hranker.context(labels=False)
        )
