"""merge_duplicates: a feature hashed twice is hashed once, twin tables and constants merge."""

from __future__ import annotations

import numpy as np
import pytest

from recadvisor.model.graph import ModelGraph
from recadvisor.model.runtime import GraphRunner
from recadvisor.model.spec import SignatureSpec, TensorInfo
from recadvisor.rewrite.base import PassRefused
from recadvisor.tfimport import import_tf
from tests.rewrite.conftest import TinyModel, apply_pass, max_diff


def test_merges_hash_lookup_and_tables(ranker: TinyModel, ranker_stripped: ModelGraph) -> None:
    before = ranker_stripped
    result = apply_pass("merge_duplicates", before, ranker.feeds)
    after = result.graph
    assert before.op_counts()["StringToHashBucketFast"] == 2
    assert after.op_counts()["StringToHashBucketFast"] == 1
    assert result.stats["tables_merged"] == 1 and len(after.tables) == len(before.tables) - 1
    # the two item lookups went to twin tables: one lookup now
    assert after.op_counts()["LookupTableFindV2"] == before.op_counts()["LookupTableFindV2"] - 1
    assert result.stats["merged_by_op"]["StringToHashBucketFast"] == 1
    assert result.stats["nodes_merged"] == len(before.graph_def.node) - len(after.graph_def.node)
    assert max_diff(ranker.graph, after, ranker.feeds) == 0.0
    assert after.signature == before.signature


def test_merges_identical_large_constants(ranker: TinyModel, ranker_stripped: ModelGraph) -> None:
    """A copy of the embedding constant, read by one gather, is merged back (bytes saved)."""
    graph_def = ranker_stripped.copy_graph_def()
    nodes = {n.name: n for n in graph_def.node}
    gather = next(n for n in graph_def.node if n.op == "GatherV2")
    table = nodes[gather.input[0]]
    twin = graph_def.node.add()
    twin.CopyFrom(table)
    twin.name = table.name + "_twin"
    gather.input[0] = twin.name
    doubled = ranker_stripped.replace(graph_def=graph_def)
    result = apply_pass("merge_duplicates", doubled, ranker.feeds)
    assert twin.name not in result.graph.nodes
    assert result.stats["const_bytes_saved"] >= doubled.const_bytes(twin.name) > 0
    assert max_diff(ranker.graph, result.graph, ranker.feeds) == 0.0


def _hand_graph() -> ModelGraph:
    """Hashes with different bucket counts and two random ops: nothing may merge."""
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.string, [None], name="x")
        a = tf.strings.to_hash_bucket_fast(x, 10)
        b = tf.strings.to_hash_bucket_fast(x, 20)
        noise = tf.random.uniform([1]) + tf.random.uniform([1])
        y = tf.identity(tf.cast(a + b, tf.float32) + noise * 0.0, name="y")
    spec = SignatureSpec(
        "serving_default",
        {"x": TensorInfo("x", "string", (None,))},
        {"y": TensorInfo("y", "float32", (None,))},
    )
    return ModelGraph(graph.as_graph_def(), spec, {"x": x.name}, {"y": y.name})


def test_leaves_different_and_stateful_ops_alone() -> None:
    graph = _hand_graph()
    feeds = {"x": np.array(["a", "b", "c"], dtype=object)}
    result = apply_pass("merge_duplicates", graph, feeds)  # only the twin shape constants merge
    assert set(result.stats["merged_by_op"]) == {"Const"}
    counts = result.graph.op_counts()
    assert counts["StringToHashBucketFast"] == 2 and counts["RandomUniform"] == 2
    np.testing.assert_array_equal(
        GraphRunner(result.graph)(feeds)["y"], GraphRunner(graph)(feeds)["y"]
    )
    with pytest.raises(PassRefused, match="no duplicated"):
        apply_pass("merge_duplicates", result.graph, feeds)


def test_second_run_refused(ranker: TinyModel, ranker_stripped: ModelGraph) -> None:
    merged = apply_pass("merge_duplicates", ranker_stripped, ranker.feeds).graph
    with pytest.raises(PassRefused):
        apply_pass("merge_duplicates", merged, ranker.feeds)
