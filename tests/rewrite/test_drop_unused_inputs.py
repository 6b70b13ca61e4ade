"""drop_unused_inputs: the never-read input's sub-graph goes, its placeholder stays."""

from __future__ import annotations

import numpy as np
import pytest

from recadvisor.model.graph import ModelGraph
from recadvisor.model.runtime import GraphRunner
from recadvisor.rewrite.base import PassRefused
from tests.rewrite.conftest import TinyModel, apply_pass, max_diff


def test_drops_unread_input_subgraph(ranker: TinyModel, ranker_stripped: ModelGraph) -> None:
    result = apply_pass("drop_unused_inputs", ranker_stripped, ranker.feeds)
    after = result.graph
    assert result.stats["unread_inputs"] == ["unused"]
    assert result.stats["tables_removed"] == 1 and len(after.tables) == 2
    assert ranker_stripped.op_counts()["LookupTableFindV2"] == 3
    assert after.op_counts()["LookupTableFindV2"] == 2
    # drop-in: same signature, the placeholder is still there, unconnected
    assert after.signature == ranker.graph.signature
    assert after.input_nodes["unused"] in after.nodes
    assert not after.consumers.get(after.input_nodes["unused"])
    assert max_diff(ranker.graph, after, ranker.feeds) == 0.0
    other = dict(ranker.feeds, unused=np.array(["y"] * len(ranker.feeds["user"]), dtype=object))
    runner = GraphRunner(after)
    np.testing.assert_array_equal(runner(other)["ctr"], runner(ranker.feeds)["ctr"])


def test_control_edges_keep_everything_alive(ranker: TinyModel) -> None:
    with pytest.raises(PassRefused, match="nothing to drop"):
        apply_pass("drop_unused_inputs", ranker.graph, ranker.feeds)


def test_refuses_when_everything_is_used(tf1_ranker: TinyModel) -> None:
    with pytest.raises(PassRefused):
        apply_pass("drop_unused_inputs", tf1_ranker.graph, tf1_ranker.feeds)
