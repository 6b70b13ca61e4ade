"""The rebuild plan: which rewrite passes to run, with which parameters, on which model.

A plan is a small YAML file the user can edit::

    schema_version: 1
    model: {path: models/esmm, signature: serving_default, fingerprint: 3f2a...}
    preset: safe
    rewrites:            # in any order; the pipeline runs them in registry order
      - pass: prune_outputs
        enabled: true
        params: {keep: [ctr]}
        comment: "ESMM served for ctr only: the CVR tower is never evaluated"

It is fingerprinted to the frozen model (:meth:`ModelGraph.fingerprint`), so a plan made for one
model is refused on another. Presets give a starting plan:

* ``safe``: exact rewrites, same signature (drop-in).
* ``fast``: ``safe`` + exact rewrites that change the input contract (numbers bucketized inside
  the observed range, string ids computed upstream).
* ``small``: ``fast`` + lossy size reductions (int8 embeddings, unused rows pruned), each gated
  by a parity / accuracy check.

Every preset plan lists every known pass, the ones outside the preset with ``enabled: false``,
so the file shows what else could be switched on. The analyzer builds plans with
:func:`preset_plan` and :meth:`Plan.with_entry`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from recadvisor.errors import PlanError
from recadvisor.output import write_text_atomic
from recadvisor.rewrite.registry import PASS_NAMES, PASS_ORDER

if TYPE_CHECKING:
    from recadvisor.model.graph import ModelGraph


SCHEMA_VERSION = 1
PRESETS = ("safe", "fast", "small", "request")
# params every entry may carry; the pipeline reads them, the pass never sees them
GATE_PARAMS = frozenset({"max_abs_diff", "max_auc_drop"})

# preset -> pass name -> (params, comment); passes not listed are written disabled
_SAFE: dict[str, tuple[dict[str, Any], str]] = {
    "strip_control_deps": ({}, "exact: drop TF2 automatic control dependencies"),
    "drop_unused_inputs": ({}, "exact: remove work no output needs; the signature is unchanged"),
    "merge_duplicates": ({}, "exact: compute identical nodes, constants and tables once"),
    "split_concat_matmul": ({}, "exact: dense layers over concats split, folded, per row"),
    "grappler_optimize": ({}, "exact: constant folding, arithmetic and MatMul fusion"),
}
_FAST = {
    **_SAFE,
    "numeric_bucketize": ({}, "exact inside the observed value range; changes the graph only"),
    "ids_upstream": ({}, "exact; inputs become int64 ids: see feature_contract.json"),
}
_SMALL = {
    **_FAST,
    "quantize_embeddings": ({"dtype": "int8"}, "lossy, gated: int8 rows with per-row scale"),
    "prune_embedding_rows": ({}, "lossy for ids unseen in the sample data, gated"),
}
# fast + per-request inputs sent once: changes the batch contract (one user row next to N
# candidate rows), which is how ranking services call a model; see feature_contract.json
_REQUEST = {
    **_FAST,
    "per_request_dedup": (
        {},
        "exact; changes the batch contract: per-request inputs sent once per request",
    ),
}
PRESET_PASSES: dict[str, dict[str, tuple[dict[str, Any], str]]] = {
    "safe": _SAFE,
    "fast": _FAST,
    "small": _SMALL,
    "request": _REQUEST,
}

_HEADER = """\
# recadvisor rebuild plan (schema_version {version}).
#
# Edit freely, then run:  recadvisor rebuild MODEL --out DIR --plan THIS_FILE
# - rewrites: one entry per pass; set enabled: false to skip one. The order here does not
#   matter: passes always run in the registry order (recadvisor/rewrite/registry.py).
# - params: the pass's parameters (see each pass's docstring).
# - every applied pass is checked against the previous stage on sample inputs and rolled
#   back when outputs differ beyond its tolerance (params.max_abs_diff overrides it).
# - model.fingerprint ties this plan to one model: re-run analyze after retraining.
"""


# ``PlanEntry.to_dict()``: one ``rewrites`` entry of ``plan.yaml`` (the functional form, as
# ``pass`` is a Python keyword)
PlanEntryDict = TypedDict(
    "PlanEntryDict",
    {"pass": str, "enabled": bool, "params": dict[str, Any], "comment": str},
)


class PlanModelDict(TypedDict):
    """The model a plan was made for (``model`` in ``plan.yaml``)."""

    path: str
    signature: str
    fingerprint: str


class PlanDict(TypedDict):
    """``plan.yaml`` (schema :data:`SCHEMA_VERSION`): ``Plan.to_dict()``."""

    schema_version: int
    model: PlanModelDict
    preset: str
    rewrites: list[PlanEntryDict]


@dataclass(frozen=True)
class PlanEntry:
    """One rewrite pass in a plan.

    Attributes:
        pass_name: a registry pass name (``pass`` in the file).
        enabled: run it or not.
        params: the pass's parameters.
        comment: why it is there (shown in reports).
    """

    pass_name: str
    enabled: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    comment: str = ""

    def to_dict(self) -> PlanEntryDict:
        """File form: ``{pass, enabled, params, comment}`` (``comment`` may be empty)."""
        return {
            "pass": self.pass_name,
            "enabled": self.enabled,
            "params": _plain(self.params),
            "comment": self.comment,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "plan") -> PlanEntry:
        """Inverse of :meth:`to_dict`.

        Raises:
            PlanError: not a mapping, no ``pass``, or fields of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise PlanError(f"{where}: each rewrites entry must be a mapping with a 'pass' key")
        name = data.get("pass")
        if not isinstance(name, str) or not name:
            raise PlanError(
                f"{where}: a rewrites entry has no 'pass' name; known passes: "
                f"{', '.join(PASS_NAMES)}"
            )
        unknown = set(data) - {"pass", "enabled", "params", "comment"}
        if unknown:
            raise PlanError(
                f"{where}: entry '{name}' has unknown keys {sorted(unknown, key=str)}; "
                "allowed: pass, enabled, params, comment"
            )
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise PlanError(f"{where}: entry '{name}': enabled must be true or false")
        params = data.get("params") or {}
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise PlanError(f"{where}: entry '{name}': params must be a mapping of names to values")
        comment = data.get("comment") or ""
        return cls(name, enabled, dict(params), str(comment))


@dataclass(frozen=True)
class Plan:
    """What to rebuild and how.

    Attributes:
        model_path: the SavedModel the plan was made for.
        signature: its signature key.
        fingerprint: ``ModelGraph.fingerprint()`` of the frozen signature.
        preset: the preset it started from (``custom`` when hand-made).
        rewrites: the entries, in file order.
        schema_version: the file format version.
    """

    model_path: str
    signature: str
    fingerprint: str
    preset: str = "custom"
    rewrites: tuple[PlanEntry, ...] = ()
    schema_version: int = SCHEMA_VERSION

    def entry(self, pass_name: str) -> PlanEntry | None:
        """The entry for a pass, if the plan has one."""
        return next((e for e in self.rewrites if e.pass_name == pass_name), None)

    def enabled_entries(self) -> list[PlanEntry]:
        """Enabled entries in registry (execution) order."""
        rank = {name: i for i, name in enumerate(PASS_NAMES)}
        return sorted(
            (e for e in self.rewrites if e.enabled), key=lambda e: rank.get(e.pass_name, len(rank))
        )

    def with_entry(self, entry: PlanEntry) -> Plan:
        """A copy with ``entry`` replacing the entry of the same pass (or appended)."""
        rewrites = [e for e in self.rewrites if e.pass_name != entry.pass_name]
        index = next(
            (i for i, e in enumerate(self.rewrites) if e.pass_name == entry.pass_name),
            len(rewrites),
        )
        rewrites.insert(index, entry)
        return dataclasses.replace(self, rewrites=tuple(rewrites))

    def to_dict(self) -> PlanDict:
        """File form (see the module docstring; schema :class:`PlanDict`)."""
        return {
            "schema_version": self.schema_version,
            "model": {
                "path": self.model_path,
                "signature": self.signature,
                "fingerprint": self.fingerprint,
            },
            "preset": self.preset,
            "rewrites": [e.to_dict() for e in self.rewrites],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "plan") -> Plan:
        """Inverse of :meth:`to_dict`.

        Raises:
            PlanError: wrong schema version or malformed fields.
        """
        if not isinstance(data, Mapping):
            raise PlanError(
                f"{where}: a plan must be a mapping with schema_version, model and rewrites"
            )
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise PlanError(
                f"{where}: schema_version {version!r} is not supported (expected "
                f"{SCHEMA_VERSION}); re-run analyze to write a new plan"
            )
        model = data.get("model")
        if not isinstance(model, Mapping) or not model.get("fingerprint"):
            raise PlanError(
                f"{where}: 'model' must give path, signature and fingerprint; re-run "
                "analyze to write a new plan"
            )
        rewrites = data.get("rewrites") or []
        if not isinstance(rewrites, Sequence) or isinstance(rewrites, (str, bytes)):
            raise PlanError(f"{where}: 'rewrites' must be a list of entries")
        entries = tuple(PlanEntry.from_dict(e, where) for e in rewrites)
        names = [e.pass_name for e in entries]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise PlanError(
                f"{where}: pass(es) {', '.join(dupes)} listed more than once; keep one "
                "entry per pass"
            )
        return cls(
            model_path=str(model.get("path", "")),
            signature=str(model.get("signature", "")),
            fingerprint=str(model["fingerprint"]),
            preset=str(data.get("preset", "custom")),
            rewrites=entries,
            schema_version=SCHEMA_VERSION,
        )


def _plain(value: Any) -> Any:
    """Numpy scalars/arrays and tuples -> plain YAML/JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def load_plan(path: str | Path) -> Plan:
    """Read a plan file (YAML, or JSON which is YAML too).

    Args:
        path: the plan file.

    Returns:
        The :class:`Plan` (structure checked; call :func:`check_plan_fits` against the model).

    Raises:
        PlanError: missing or unreadable file, invalid YAML, wrong schema.
    """
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise PlanError(
            f"plan file '{p}' does not exist; write one with `recadvisor analyze MODEL`"
        ) from e
    except (OSError, UnicodeDecodeError) as e:
        raise PlanError(f"cannot read plan file '{p}': {e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PlanError(f"plan file '{p}' is not valid YAML{where}; fix or regenerate it") from e
    return Plan.from_dict(data, where=f"plan file '{p}'")


def save_plan(plan: Plan, path: str | Path) -> Path:
    """Write a plan as YAML with an explanatory header comment (atomically).

    Args:
        plan: the plan.
        path: the file to write.

    Returns:
        The path written.
    """
    import yaml

    data = plan.to_dict()
    options = {"sort_keys": False, "default_flow_style": None, "width": 100}
    body = yaml.safe_dump(data, allow_unicode=True, **options)
    if yaml.safe_load(body) != data:  # U+0085, U+2028... written raw read back as line breaks
        body = yaml.safe_dump(data, allow_unicode=False, **options)
    write_text_atomic(path, _HEADER.format(version=plan.schema_version) + body)
    return Path(path)


def preset_plan(
    preset: str,
    graph: ModelGraph,
    *,
    model_path: str | Path | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> Plan:
    """The plan a preset stands for, fingerprinted to ``graph``.

    Args:
        preset: ``safe``, ``fast`` or ``small``.
        graph: the frozen model the plan is for.
        model_path: recorded in the plan (default: ``graph.source``).
        params: per pass name, parameters overriding the preset's (e.g. from the analyzer).

    Returns:
        A :class:`Plan` listing every registry pass, enabled when the preset includes it.

    Raises:
        PlanError: unknown preset.
    """
    if preset not in PRESET_PASSES:
        raise PlanError(f"unknown preset '{preset}'; choose one of: {', '.join(PRESETS)}")
    chosen = PRESET_PASSES[preset]
    overrides = params or {}
    entries = []
    for entry in PASS_ORDER:
        if entry.name in chosen:
            base_params, comment = chosen[entry.name]
            enabled = True
        elif entry.name == "prune_outputs":
            base_params = {"keep": sorted(graph.output_tensors)}
            comment = "contract change: list only the outputs you serve, then enable"
            enabled = False
        else:
            base_params, comment, enabled = {}, f"not in preset '{preset}'", False
        merged = {**base_params, **dict(overrides.get(entry.name, {}))}
        entries.append(PlanEntry(entry.name, enabled, merged, comment))
    return Plan(
        model_path=str(model_path if model_path is not None else graph.source),
        signature=graph.signature.key,
        fingerprint=graph.fingerprint(),
        preset=preset,
        rewrites=tuple(entries),
    )


def check_plan_fits(plan: Plan, graph: ModelGraph) -> None:
    """Refuse a plan that was not made for this model or names unknown passes / bad params.

    A pass class may define ``check_params(self, params, graph)`` raising :class:`PlanError`
    (or ``ValueError``/``TypeError``) for parameters it cannot use; it is called for every
    enabled entry whose pass module imports, with the params minus :data:`GATE_PARAMS`
    (``max_abs_diff``, ``max_auc_drop``: read by the pipeline, valid on every entry).

    Args:
        plan: the plan.
        graph: the frozen model it will run on.

    Raises:
        PlanError: schema version, fingerprint or signature mismatch, unknown pass, bad params.
    """
    if plan.schema_version != SCHEMA_VERSION:
        raise PlanError(
            f"plan schema_version {plan.schema_version} is not supported (expected "
            f"{SCHEMA_VERSION}); re-run analyze"
        )
    actual = graph.fingerprint()
    if plan.fingerprint != actual:
        made_for = f" ('{plan.model_path}')" if plan.model_path else ""
        raise PlanError(
            f"plan.yaml was made for model fingerprint {plan.fingerprint}{made_for}, "
            f"this model is {actual}; re-run analyze on this model"
        )
    if plan.signature and plan.signature != graph.signature.key:
        raise PlanError(
            f"plan is for signature '{plan.signature}' but the model was loaded with "
            f"'{graph.signature.key}'; pass --signature {plan.signature}"
        )
    unknown = [e.pass_name for e in plan.rewrites if e.pass_name not in PASS_NAMES]
    if unknown:
        raise PlanError(
            f"plan names unknown rewrite pass(es) {', '.join(unknown)}; known passes: "
            f"{', '.join(PASS_NAMES)}"
        )
    for entry in plan.enabled_entries():
        _check_entry_params(entry, graph)


def pass_params(entry: PlanEntry) -> dict[str, Any]:
    """The entry's params without the pipeline's gate params (what the pass receives)."""
    return {k: v for k, v in entry.params.items() if k not in GATE_PARAMS}


def _check_gate_params(entry: PlanEntry) -> None:
    for key in GATE_PARAMS & set(entry.params):
        value = entry.params[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise PlanError(
                f"plan entry '{entry.pass_name}': params.{key} must be a number >= 0, got {value!r}"
            )


def _check_entry_params(entry: PlanEntry, graph: ModelGraph) -> None:
    _check_gate_params(entry)
    spec = next(e for e in PASS_ORDER if e.name == entry.pass_name)
    module = importlib.import_module(spec.module)
    pass_cls = getattr(module, spec.cls, None)
    checker = getattr(pass_cls, "check_params", None) if pass_cls is not None else None
    if checker is None:
        return
    try:
        checker(pass_cls(), pass_params(entry), graph)
    except PlanError:
        raise
    except (ValueError, TypeError, KeyError) as e:
        raise PlanError(f"plan entry '{entry.pass_name}': bad params {entry.params}: {e}") from e
