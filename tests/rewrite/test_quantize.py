"""quantize_embeddings: fp16 tables, int8 tables with a per-row scale, and the accuracy gate."""

from __future__ import annotations

import numpy as np
import pytest

from recadvisor.model.queries import rewritable_tables
from recadvisor.model.runtime import GraphRunner
from recadvisor.rewrite.base import PassRefused, PassResult, RewriteContext
from recadvisor.rewrite.quantize_embeddings import QuantizeEmbeddingsPass, quantize_int8
from tests.rewrite.fixtures_contract import ContractModel, hashing_ranker, max_abs_diff


@pytest.fixture(scope="module")
def hranker() -> ContractModel:
    return hashing_ranker()


@pytest.fixture(scope="module")
def context(hranker: ContractModel) -> RewriteContext:
    return hranker.context()


@pytest.fixture(scope="module")
def fp16(hranker: ContractModel, context: RewriteContext) -> PassResult:
    return QuantizeEmbeddingsPass().apply(hranker.graph, {"dtype": "fp16"}, context)


@pytest.fixture(scope="module")
def int8(hranker: ContractModel, context: RewriteContext) -> PassResult:
    return QuantizeEmbeddingsPass().apply(hranker.graph, {"dtype": "int8"}, context)


def test_fp16_halves_table_bytes(hranker: ContractModel, fp16: PassResult) -> None:
    assert fp16.stats["table_bytes_after"] * 2 == fp16.stats["table_bytes_before"]
    tables = rewritable_tables(fp16.graph)
    assert len(tables) == 4 and {t.dtype for t in tables.values()} == {"float16"}
    assert fp16.graph.op_counts()["Cast"] == 4  # one dequantizing cast per gather
    diff = max_abs_diff(GraphRunner(fp16.graph)(hranker.feeds), hranker.run_original(hranker.feeds))
    assert 0 < diff <= 1e-3
    assert fp16.stats["gate"]["max_abs_diff"] == pytest.approx(diff, abs=1e-6)


def test_int8_is_under_0_3x_with_per_row_scale(hranker: ContractModel, int8: PassResult) -> None:
    per_table = int8.stats["tables"]
    [item] = [d for d in per_table.values() if d["shape"] == [500, 16]]
    assert item["bytes_after"] <= 0.3 * item["bytes_before"]
    assert int8.stats["size_ratio"] <= 0.3
    tables = rewritable_tables(int8.graph).values()
    assert {t.dtype for t in tables if t.shape[1] > 1} == {"int8"}
    assert {t.dtype for t in tables if t.shape[1] == 1} == {"float16"}  # the per-row scales
    ops = int8.graph.op_counts()
    assert ops["GatherV2"] == 8 and ops["Mul"] == 4  # table gather + scale gather, dequantize
    diff = max_abs_diff(GraphRunner(int8.graph)(hranker.feeds), hranker.run_original(hranker.feeds))
    assert 1e-5 < diff <= 1e-2
    gate = int8.stats["gate"]
    assert gate["auc_drop"] <= 0.001 and "score" in gate["auc_before"]


def test_quantize_int8_round_trip_error_is_half_a_step() -> None:
    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 16)).astype(np.float32)
    table[3] = 0.0
    q, scale = quantize_int8(table)
    assert q.dtype == np.int8 and scale.shape == (50, 1)
    err = np.abs(q.astype(np.float32) * scale.astype(np.float32) - table)
    assert np.all(err <= scale.astype(np.float32) * 0.5 + 1e-3 * np.abs(table))
    assert np.all(q[3] == 0)
    _, scale32 = quantize_int8(table, "float32")
    assert scale32.dtype == np.float32


def test_gate_refuses_beyond_max_abs_diff(hranker: ContractModel, context: RewriteContext) -> None:
    with pytest.raises(PassRefused, match="max_abs_diff"):
        QuantizeEmbeddingsPass().apply(
            hranker.graph, {"dtype": "int8", "max_abs_diff": 1e-6}, context
        )


def test_gate_refuses_an_auc_drop(hranker: ContractModel, context: RewriteContext) -> None:
    with pytest.raises(PassRefused, match="AUC"):
        QuantizeEmbeddingsPass().apply(
            hranker.graph, {"dtype": "int8", "max_abs_diff": None, "max_auc_drop": -1.0}, context
        )


def test_refuses_without_tables_or_data(hranker: ContractModel, context: RewriteContext) -> None:
    with pytest.raises(PassRefused, match="no float embedding table"):
        QuantizeEmbeddingsPass().apply(hranker.graph, {"min_bytes": 10**9}, context)
    with pytest.raises(PassRefused, match="needs sample data"):
        QuantizeEmbeddingsPass().apply(hranker.graph, {}, RewriteContext({}, {}))
    with pytest.raises(PassRefused, match="fp16 or int8"):
        QuantizeEmbeddingsPass().apply(hranker.graph, {"dtype": "int4"}, context)
