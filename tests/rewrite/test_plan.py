"""Plan file: presets, YAML round trip, and refusals (fingerprint, pass names, params, schema)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from recadvisor.errors import PlanError
from recadvisor.plan import (
    Plan,
    PlanEntry,
    check_plan_fits,
    load_plan,
    preset_plan,
    save_plan,
)
from recadvisor.rewrite.registry import PASS_NAMES
from tests.rewrite.conftest import TinyModel

SAFE = [
    "strip_control_deps",
    "drop_unused_inputs",
    "merge_duplicates",
    "split_concat_matmul",
    "grappler_optimize",
]


def _enabled(plan: Plan) -> list[str]:
    return [e.pass_name for e in plan.enabled_entries()]


def test_presets(ranker: TinyModel) -> None:
    safe = preset_plan("safe", ranker.graph)
    fast = preset_plan("fast", ranker.graph)
    small = preset_plan("small", ranker.graph)
    assert _enabled(safe) == SAFE
    assert set(_enabled(fast)) == set(SAFE) | {"numeric_bucketize", "ids_upstream"}
    assert set(_enabled(small)) > set(_enabled(fast))
    assert small.entry("quantize_embeddings").params == {"dtype": "int8"}
    for plan in (safe, fast, small):
        assert [e.pass_name for e in plan.rewrites] == list(PASS_NAMES)  # every pass listed
        assert plan.fingerprint == ranker.graph.fingerprint()
        assert plan.signature == "serving_default"
    assert safe.entry("prune_outputs").params == {"keep": ["ctr", "cvr"]}
    assert not safe.entry("prune_outputs").enabled
    with pytest.raises(PlanError, match="unknown preset"):
        preset_plan("turbo", ranker.graph)


def test_round_trip(ranker: TinyModel, tmp_path: Path) -> None:
    plan = preset_plan("safe", ranker.graph).with_entry(
        PlanEntry("prune_outputs", True, {"keep": ["ctr"]}, "served for ctr only")
    )
    path = save_plan(plan, tmp_path / "plan.yaml")
    text = path.read_text()
    assert text.startswith("# recadvisor rebuild plan") and "--plan THIS_FILE" in text
    loaded = load_plan(path)
    assert loaded == plan
    assert Plan.from_dict(plan.to_dict()) == plan
    assert _enabled(loaded) == ["strip_control_deps", "prune_outputs", *SAFE[1:]]
    check_plan_fits(loaded, ranker.graph)


def test_execution_order_ignores_file_order(ranker: TinyModel) -> None:
    plan = preset_plan("safe", ranker.graph)
    shuffled = dataclasses.replace(plan, rewrites=tuple(reversed(plan.rewrites)))
    assert _enabled(shuffled) == SAFE


def test_fingerprint_mismatch(ranker: TinyModel, tf1_ranker: TinyModel) -> None:
    plan = preset_plan("safe", tf1_ranker.graph)
    with pytest.raises(PlanError, match="was made for model fingerprint .* re-run analyze"):
        check_plan_fits(plan, ranker.graph)


def test_unknown_pass(ranker: TinyModel) -> None:
    plan = preset_plan("safe", ranker.graph).with_entry(PlanEntry("make_it_fast"))
    with pytest.raises(PlanError, match="unknown rewrite pass.*make_it_fast.*known passes"):
        check_plan_fits(plan, ranker.graph)


@pytest.mark.parametrize(
    "entry, match",
    [
        (PlanEntry("prune_outputs", True, {"keep": ["nope"]}), "nope"),
        (PlanEntry("strip_control_deps", True, {"level": 2}), "bad params"),
        (PlanEntry("merge_duplicates", True, {"max_abs_diff": -1}), "max_abs_diff"),
        (PlanEntry("grappler_optimize", True, {"fuse": "yes"}), "fuse"),
    ],
)
def test_bad_params(ranker: TinyModel, entry: PlanEntry, match: str) -> None:
    plan = preset_plan("safe", ranker.graph).with_entry(entry)
    with pytest.raises(PlanError, match=match):
        check_plan_fits(plan, ranker.graph)


def test_gate_params_are_allowed(ranker: TinyModel) -> None:
    plan = preset_plan("safe", ranker.graph).with_entry(
        PlanEntry("merge_duplicates", True, {"max_abs_diff": 1e-4})
    )
    check_plan_fits(plan, ranker.graph)


@pytest.mark.parametrize(
    "text, match",
    [
        ("schema_version: 2\nmodel: {fingerprint: x}\nrewrites: []\n", "schema_version 2"),
        ("schema_version: 1\nrewrites: []\n", "'model' must give"),
        ("schema_version: 1\nmodel: {fingerprint: x}\nrewrites: [{enabled: true}]\n", "no 'pass'"),
        (
            "schema_version: 1\nmodel: {fingerprint: x}\nrewrites:\n - {pass: a}\n - {pass: a}\n",
            "more than once",
        ),
        (
            "schema_version: 1\nmodel: {fingerprint: x}\nrewrites: [{pass: a, enabled: 3}]\n",
            "true or false",
        ),
        ("schema_version: [1\n", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(PlanError, match=match):
        load_plan(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="does not exist"):
        load_plan(tmp_path / "nope.yaml")
