"""prune_outputs: keep one head, its nodes only; refuse keep-all; bad params are plan errors."""

from __future__ import annotations

import pytest

from recadvisor.errors import PlanError
from recadvisor.model.graph import ModelGraph
from recadvisor.rewrite.base import PassRefused
from recadvisor.rewrite.registry import get_pass
from tests.rewrite.conftest import TinyModel, apply_pass, max_diff


def test_keeps_one_head(ranker: TinyModel, ranker_stripped: ModelGraph) -> None:
    result = apply_pass("prune_outputs", ranker_stripped, ranker.feeds, {"keep": ["ctr"]})
    pruned = result.graph
    assert list(pruned.output_tensors) == ["ctr"]
    assert list(pruned.signature.outputs) == ["ctr"]
    assert pruned.signature.inputs == ranker.graph.signature.inputs  # inputs untouched
    assert result.stats["outputs_dropped"] == ["cvr"]
    before, after = ranker_stripped.op_counts(), pruned.op_counts()
    assert before["Sigmoid"] == 2 and after["Sigmoid"] == 1
    assert after["MatMul"] == before["MatMul"] - 1
    assert result.stats["nodes_removed"] == len(ranker_stripped.graph_def.node) - len(
        pruned.graph_def.node
    )
    assert max_diff(ranker.graph, pruned, ranker.feeds) == 0.0


def test_notes_control_dependencies_without_strip(ranker: TinyModel) -> None:
    result = apply_pass("prune_outputs", ranker.graph, ranker.feeds, {"keep": ["cvr"]})
    assert any("strip_control_deps" in n for n in result.notes)


def test_refuses_keep_all(ranker: TinyModel, ranker_stripped: ModelGraph) -> None:
    with pytest.raises(PassRefused, match="every output"):
        apply_pass("prune_outputs", ranker_stripped, ranker.feeds, {"keep": ["ctr", "cvr"]})


@pytest.mark.parametrize(
    "params, match",
    [
        ({}, "needs params.keep"),
        ({"keep": []}, "needs params.keep"),
        ({"keep": ["ctr", "nope"]}, "nope"),
        ({"keep": ["ctr"], "extra": 1}, "unknown params"),
    ],
)
def test_bad_params(ranker_stripped: ModelGraph, params: dict, match: str) -> None:
    with pytest.raises(PlanError, match=match):
        get_pass("prune_outputs").check_params(params, ranker_stripped)
