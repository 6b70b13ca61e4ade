"""Check an artifact's dict against its schema: the ``TypedDict`` declared next to its writer.

Each artifact recadvisor writes has one versioned schema, declared once in code beside the
function that writes it, as ``TypedDict`` classes describing exactly the JSON (or YAML) written:

* ``analysis.json``: ``AnalysisDict`` in ``recadvisor/analysis/analyze.py``;
* ``rebuild.json``: ``RebuildDict`` in ``recadvisor/rebuild.py``;
* ``compare.json``: ``ComparisonDict`` in ``recadvisor/compare.py``;
* ``feature_contract.json``: ``FeatureContractDict`` in ``recadvisor/rewrite/encodings.py``;
* ``plan.yaml``: ``PlanDict`` in ``recadvisor/plan.py``.

:func:`artifact_schemas` maps each file name to its schema and version. :func:`schema_errors`
walks a value and its schema together: every ``TypedDict`` key must be present and no other
key may be (so a renamed field is caught where it is written, not where a report reads it);
``list[T]``, ``dict[str, T]``, unions, ``Literal`` and the JSON scalars are checked
recursively; ``Any`` accepts anything (free-form evidence, pass statistics, parameters).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

from recadvisor.errors import RecAdvisorError

MAX_ERRORS = 20


class SchemaError(RecAdvisorError):
    """A dict does not match its artifact's schema (a bug in the writer or a stale file)."""

    exit_code = 1


@dataclass(frozen=True)
class ArtifactSchema:
    """One artifact's schema.

    Attributes:
        file: the artifact's file name.
        schema: the ``TypedDict`` describing its top level.
        version: the ``schema_version`` it carries.
    """

    file: str
    schema: type
    version: int


def _hints(typed_dict: type) -> dict[str, Any]:
    return typing.get_type_hints(typed_dict)


def _is_typed_dict(tp: Any) -> bool:
    return isinstance(tp, type) and typing.is_typeddict(tp)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check(value: Any, tp: Any, where: str, errors: list[str]) -> None:
    """Append to ``errors`` every place where ``value`` does not match ``tp``."""
    if len(errors) >= MAX_ERRORS or tp is Any:
        return
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is None or tp is type(None):
        if value is not None:
            errors.append(f"{where}: expected null, got {_type_name(value)}")
        return
    if origin is Union or origin is types.UnionType:
        trials: list[list[str]] = []
        for alternative in args:
            trial: list[str] = []
            _check(value, alternative, where, trial)
            if not trial:
                return
            trials.append(trial)
        # report the alternative that got furthest (fewest problems)
        errors.extend(min(trials, key=len))
        return
    if origin is Literal:
        if value not in args:
            errors.append(f"{where}: expected one of {list(args)}, got {value!r}")
        return
    if _is_typed_dict(tp):
        if not isinstance(value, Mapping):
            errors.append(f"{where}: expected an object ({tp.__name__}), got {_type_name(value)}")
            return
        hints = _hints(tp)
        missing = [k for k in hints if k not in value]
        extra = [str(k) for k in value if k not in hints]
        if missing:
            errors.append(f"{where}: missing key(s) {', '.join(missing)} ({tp.__name__})")
        if extra:
            errors.append(f"{where}: unexpected key(s) {', '.join(extra)} ({tp.__name__})")
        for key, sub in hints.items():
            if key in value:
                _check(value[key], sub, f"{where}.{key}", errors)
        return
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            errors.append(f"{where}: expected a list, got {_type_name(value)}")
            return
        item = args[0] if args else Any
        for i, element in enumerate(value):
            _check(element, item, f"{where}[{i}]", errors)
        return
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            errors.append(f"{where}: expected an object, got {_type_name(value)}")
            return
        key_tp, value_tp = args if args else (Any, Any)
        for key, element in value.items():
            _check(key, key_tp, f"{where}<key {key!r}>", errors)
            _check(element, value_tp, f"{where}[{key!r}]", errors)
        return
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp in (str, bool):
        ok = isinstance(value, tp)
    else:
        raise TypeError(f"{where}: unsupported schema type {tp!r}")
    if not ok:
        errors.append(f"{where}: expected {tp.__name__}, got {_type_name(value)} {value!r:.60}")


def schema_errors(value: Any, schema: Any, where: str = "$") -> list[str]:
    """Every mismatch between ``value`` and ``schema`` (at most :data:`MAX_ERRORS`).

    Args:
        value: a dict as written (or read back from JSON/YAML).
        schema: a ``TypedDict`` class or any supported type (``list[T]``, ``dict[str, T]``,
            ``T | None``, ``Literal[...]``, ``int``, ``float``, ``str``, ``bool``, ``Any``).
        where: the path prefix used in messages.

    Returns:
        Messages such as ``$.models[1]: missing key(s) parity (ModelResultDict)``; empty when
        the value matches.
    """
    errors: list[str] = []
    _check(value, schema, where, errors)
    return errors


def check_schema(value: Any, schema: Any, what: str = "value") -> None:
    """Raise when ``value`` does not match ``schema`` exactly.

    Args:
        value: the dict to check.
        schema: its ``TypedDict``.
        what: what it is, for the message (e.g. ``rebuild.json``).

    Raises:
        SchemaError: listing the mismatches.
    """
    errors = schema_errors(value, schema)
    if errors:
        raise SchemaError(f"{what} does not match its schema: " + "; ".join(errors))


def artifact_schemas() -> dict[str, ArtifactSchema]:
    """The five artifacts' schemas, by file name (imports their writers' modules).

    Returns:
        ``{"analysis.json": ArtifactSchema(...), ...}``.
    """
    from recadvisor.analysis.analyze import ANALYSIS_SCHEMA_VERSION, AnalysisDict
    from recadvisor.compare import COMPARE_SCHEMA_VERSION, ComparisonDict
    from recadvisor.plan import SCHEMA_VERSION as PLAN_SCHEMA_VERSION
    from recadvisor.plan import PlanDict
    from recadvisor.rebuild import REBUILD_SCHEMA_VERSION, RebuildDict
    from recadvisor.rewrite.encodings import CONTRACT_SCHEMA_VERSION, FeatureContractDict

    found = [
        ArtifactSchema("analysis.json", AnalysisDict, ANALYSIS_SCHEMA_VERSION),
        ArtifactSchema("rebuild.json", RebuildDict, REBUILD_SCHEMA_VERSION),
        ArtifactSchema("compare.json", ComparisonDict, COMPARE_SCHEMA_VERSION),
        ArtifactSchema("feature_contract.json", FeatureContractDict, CONTRACT_SCHEMA_VERSION),
        ArtifactSchema("plan.yaml", PlanDict, PLAN_SCHEMA_VERSION),
    ]
    return {a.file: a for a in found}


def check_artifact(value: Any, file: str) -> None:
    """Check a written artifact (read back as a dict) against its schema and version.

    Args:
        value: the artifact's content.
        file: its file name (a key of :func:`artifact_schemas`).

    Raises:
        SchemaError: it does not match, or carries another ``schema_version``.
    """
    artifact = artifact_schemas()[file]
    check_schema(value, artifact.schema, file)
    if value["schema_version"] != artifact.version:
        raise SchemaError(
            f"{file} has schema_version {value['schema_version']!r}; expected {artifact.version}"
        )
