"""The schema checker: exact keys, nested types, unions, and each artifact's declared schema."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import pytest

from recadvisor.schemas import (
    SchemaError,
    artifact_schemas,
    check_artifact,
    check_schema,
    schema_errors,
)


class Inner(TypedDict):
    name: str
    share: float | None


class Outer(TypedDict):
    version: int
    flag: bool
    kind: Literal["a", "b"]
    inner: Inner
    items: list[Inner]
    by_key: dict[str, list[int]]
    free: dict[str, Any]
    either: Inner | str


def _valid() -> dict[str, Any]:
    return {
        "version": 1,
        "flag": True,
        "kind": "a",
        "inner": {"name": "x", "share": None},
        "items": [{"name": "y", "share": 0.5}, {"name": "z", "share": 1}],
        "by_key": {"k": [1, 2]},
        "free": {"anything": [None, {"goes": 1}]},
        "either": "text",
    }


def test_a_matching_dict_has_no_errors() -> None:
    assert schema_errors(_valid(), Outer) == []
    check_schema(_valid(), Outer)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("flag"), "$: missing key(s) flag (Outer)"),
        (lambda d: d.update(extra=1), "$: unexpected key(s) extra (Outer)"),
        (lambda d: d["inner"].pop("share"), "$.inner: missing key(s) share (Inner)"),
        (lambda d: d["items"][1].update(label="l"), "$.items[1]: unexpected key(s) label"),
        (lambda d: d.update(version=True), "$.version: expected int, got bool"),
        (lambda d: d.update(version=1.5), "$.version: expected int, got float"),
        (lambda d: d.update(flag=1), "$.flag: expected bool, got int"),
        (lambda d: d.update(kind="c"), "$.kind: expected one of ['a', 'b'], got 'c'"),
        (lambda d: d["inner"].update(share="0.5"), "$.inner.share: expected float, got str"),
        (lambda d: d["by_key"].update(k=[1, "2"]), "$.by_key['k'][1]: expected int, got str"),
        (lambda d: d.update(items={}), "$.items: expected a list, got dict"),
        (lambda d: d.update(either={"name": 1, "share": None}), "$.either.name: expected str"),
    ],
)
def test_each_mismatch_is_reported_with_its_path(change: Any, expected: str) -> None:
    data = _valid()
    change(data)
    errors = schema_errors(data, Outer)
    assert any(e.startswith(expected) for e in errors), errors
    with pytest.raises(SchemaError, match="does not match its schema"):
        check_schema(data, Outer, "thing.json")


def test_every_artifact_has_one_versioned_schema() -> None:
    schemas = artifact_schemas()
    assert sorted(schemas) == [
        "analysis.json",
        "compare.json",
        "feature_contract.json",
        "plan.yaml",
        "rebuild.json",
    ]
    for artifact in schemas.values():
        assert artifact.version >= 1
        # every schema starts with its version and resolves down to JSON scalars
        assert schema_errors({}, artifact.schema)[0].startswith("$: missing key(s) schema_version")


def test_check_artifact_refuses_another_version() -> None:
    plan = {
        "schema_version": 99,
        "model": {"path": "m", "signature": "serving_default", "fingerprint": "f"},
        "preset": "safe",
        "rewrites": [],
    }
    with pytest.raises(SchemaError, match="schema_version 99"):
        check_artifact(plan, "plan.yaml")
    plan["schema_version"] = artifact_schemas()["plan.yaml"].version
    check_artifact(plan, "plan.yaml")
    plan["rewrites"] = [{"pass": "strip_control_deps", "enabled": True, "params": {}}]
    with pytest.raises(SchemaError, match=r"rewrites\[0\]: missing key\(s\) comment"):
        check_artifact(plan, "plan.yaml")
