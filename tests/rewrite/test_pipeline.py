"""Pipeline: records per pass, rollback of a broken pass, failures, AUC gate; parity helpers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from recadvisor.errors import PlanError
from recadvisor.model.graph import ModelGraph
from recadvisor.model.runtime import GraphRunner
from recadvisor.plan import PlanEntry, preset_plan
from recadvisor.rewrite.base import (
    LOSSY,
    InputEncoding,
    PassRefused,
    PassResult,
    RewriteContext,
    RewritePass,
)
from recadvisor.rewrite.pipeline import run_pipeline
from recadvisor.tfimport import import_tf
from recadvisor.verify import compare_outputs
from tests.rewrite.conftest import TinyModel


class ScaleConstantPass(RewritePass):
    """Deliberately wrong: multiplies every float constant by ``factor``."""

    name = "scale_constants"

    def __init__(self, factor: float = 3.0, exactness: str = "exact") -> None:
        self.factor = factor
        self.exactness = exactness

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        tf = import_tf()
        graph_def = graph.copy_graph_def()
        for node in graph_def.node:
            if node.op == "Const" and node.attr["dtype"].type == tf.float32.as_datatype_enum:
                value = tf.make_ndarray(node.attr["value"].tensor) * self.factor
                node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        return PassResult(self.name, graph.replace(graph_def=graph_def), {"scaled": True})


class NegateLogitsPass(ScaleConstantPass):
    """Lossy and small in max abs diff terms but it reverses the ranking (AUC 1 -> 0)."""

    def __init__(self) -> None:
        super().__init__(-1.0, LOSSY)


class CrashingPass(RewritePass):
    name = "crash"

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        raise RuntimeError("boom")


class RefusingPass(RewritePass):
    name = "refuse"

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        raise PassRefused("not today")


class ContractPass(RewritePass):
    """Claims to change the contract of ``user`` (graph unchanged)."""

    name = "contract"
    changes_contract = True

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        enc = InputEncoding("user", "hash_bucket", "string", "int64", {"num_buckets": 30})
        return PassResult(self.name, graph, encodings=(enc,))


def _ctx(model: TinyModel, labels: np.ndarray | None = None) -> RewriteContext:
    return RewriteContext(model.feeds, model.feeds, labels)


def test_safe_plan(ranker: TinyModel) -> None:
    plan = preset_plan("safe", ranker.graph)
    result = run_pipeline(ranker.graph, plan, _ctx(ranker), strict=True)
    assert result.names("applied") == [
        "strip_control_deps",
        "drop_unused_inputs",
        "merge_duplicates",
        "grappler_optimize",
    ]
    assert len(result.records) == len(plan.rewrites)
    assert set(result.names("disabled")) == {e.pass_name for e in plan.rewrites if not e.enabled}
    for rec in result.records:
        if rec.status == "applied":
            assert rec.parity is not None and rec.parity.passed
            assert rec.nodes_after < rec.nodes_before and rec.seconds > 0
    assert result.graph.signature == ranker.graph.signature
    assert not result.contract_changed
    original = GraphRunner(ranker.graph)(ranker.feeds)
    final = GraphRunner(result.graph)(ranker.feeds)
    assert compare_outputs(original, final, 1e-5).passed
    assert len(result.graph.graph_def.node) < len(ranker.graph.graph_def.node) // 2
    json.dumps(result.to_dict())


def test_broken_pass_rolled_back(ranker: TinyModel) -> None:
    plan = preset_plan("safe", ranker.graph)
    result = run_pipeline(
        ranker.graph, plan, _ctx(ranker), passes={"merge_duplicates": ScaleConstantPass()}
    )
    rec = result.record("merge_duplicates")
    assert rec.status == "rolled_back"
    assert rec.reason.startswith("rolled back: max abs diff") and "> 1e-05" in rec.reason
    assert rec.parity is not None and not rec.parity.passed
    assert rec.nodes_after == rec.nodes_before
    # later passes still ran on the previous stage, and the result is still exact
    assert result.record("grappler_optimize").status == "applied"
    original = GraphRunner(ranker.graph)(ranker.feeds)
    assert compare_outputs(original, GraphRunner(result.graph)(ranker.feeds)).passed


def test_tolerance_override_keeps_it(ranker: TinyModel) -> None:
    plan = preset_plan("safe", ranker.graph).with_entry(
        PlanEntry("merge_duplicates", True, {"max_abs_diff": 1e9})
    )
    result = run_pipeline(
        ranker.graph, plan, _ctx(ranker), passes={"merge_duplicates": ScaleConstantPass(1.0001)}
    )
    assert result.record("merge_duplicates").status == "applied"
    assert result.record("merge_duplicates").tolerance == 1e9


def test_failed_and_refused(ranker: TinyModel) -> None:
    plan = preset_plan("safe", ranker.graph)
    passes = {"merge_duplicates": CrashingPass(), "drop_unused_inputs": RefusingPass()}
    result = run_pipeline(ranker.graph, plan, _ctx(ranker), passes=passes)
    failed = result.record("merge_duplicates")
    assert failed.status == "failed" and "RuntimeError" in failed.reason and "boom" in failed.reason
    assert result.record("drop_unused_inputs").status == "refused"
    assert result.record("drop_unused_inputs").reason == "not today"
    assert result.names("applied") == ["strip_control_deps", "grappler_optimize"]
    with pytest.raises(RuntimeError, match="boom"):
        run_pipeline(ranker.graph, plan, _ctx(ranker), strict=True, passes=passes)


def test_auc_gate(ranker: TinyModel) -> None:
    scores = GraphRunner(ranker.graph)(ranker.feeds)["ctr"].ravel()
    labels = (scores > np.median(scores)).astype(np.int64)
    plan = preset_plan("safe", ranker.graph).with_entry(
        PlanEntry("merge_duplicates", True, {"max_abs_diff": 1.0})
    )
    result = run_pipeline(
        ranker.graph, plan, _ctx(ranker, labels), passes={"merge_duplicates": NegateLogitsPass()}
    )
    rec = result.record("merge_duplicates")
    assert rec.status == "rolled_back" and "AUC on ctr fell by" in rec.reason
    assert rec.gates["ctr"]["auc_before"] == 1.0


class UnknownEncodingPass(ContractPass):
    """Changes the contract of ``user`` with an encoding the encoder does not know."""

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        enc = InputEncoding("user", "nope", "string", "int64", {})
        return PassResult(self.name, graph, encodings=(enc,))


def test_contract_change_the_encoder_cannot_compute(ranker: TinyModel) -> None:
    plan = preset_plan("safe", ranker.graph)
    result = run_pipeline(
        ranker.graph, plan, _ctx(ranker), passes={"merge_duplicates": UnknownEncodingPass()}
    )
    rec = result.record("merge_duplicates")
    assert rec.status == "failed" and "unknown encoding kind 'nope'" in rec.reason
    assert not result.encodings


def test_unknown_pass_name(ranker: TinyModel) -> None:
    plan = preset_plan("safe", ranker.graph).with_entry(PlanEntry("nope"))
    with pytest.raises(PlanError, match="unknown rewrite pass"):
        run_pipeline(ranker.graph, plan, _ctx(ranker))


def test_compare_outputs_rules() -> None:
    ref = {
        "f": np.array([1.0, np.nan, 3.0], np.float32),
        "i": np.array([1, 2]),
        "s": np.array([b"a", b"b"], dtype=object),
    }
    same = {
        "f": np.array([1.0, np.nan, 3.000001], np.float32),
        "i": np.array([1, 2]),
        "s": np.array(["a", "b"], dtype=object),
    }
    parity = compare_outputs(ref, same, 1e-5)
    assert parity.passed and parity.max_abs_diff < 1e-5
    worse = {
        "f": np.array([1.0, 0.0, 3.1], np.float32),
        "i": np.array([1, 3]),
        "s": np.array([b"a", b"c"], dtype=object),
    }
    parity = compare_outputs(ref, worse, 1e-5)
    assert not parity.passed
    assert {o.key: o.passed for o in parity.outputs} == {"f": False, "i": False, "s": False}
    shape = compare_outputs({"f": np.zeros((2, 1))}, {"f": np.zeros(2)})
    assert not shape.passed and "shape" in shape.summary()
    missing = compare_outputs({"f": np.zeros(2)}, {})
    assert not missing.passed and "missing" in missing.summary()
    json.dumps(parity.to_dict())
