"""From findings to suggestions, and from suggestions to a rebuild plan.

:func:`advise` turns each :class:`~recadvisor.analysis.findings.Finding` into zero or more
:class:`Suggestion` objects: what to do (a rewrite pass and its parameters, or a training-side
change only), what it saves (share of op time from the profile, bytes), how exact it is
(``exact``, ``exact-in-range``, ``lossy``; ``retrain`` for changes only training can make),
whether it changes the serving contract, and the change a modeller could make in training
instead (a Keras snippet with the numbers filled in).

Finding -> pass:

==========================  =========================================================
numeric_as_string           numeric_bucketize (exact-in-range, same signature)
string_op (string inputs)   ids_upstream (exact, inputs become int64 ids)
duplicate_feature           merge_duplicates (exact) when the duplicate is mergeable
shared_embedding_candidate  share_embeddings (lossy, gated)
large_embedding             prune_embedding_rows / reduce_embedding_dim /
                            quantize_embeddings (lossy, gated)
unused_output               prune_outputs (exact, drops outputs: never enabled for you)
per_request_feature         per_request_dedup (exact, one request row: never enabled for you)
unused_input                drop_unused_inputs (exact, same signature)
unsafe_op                   none: re-export the model without the op
==========================  =========================================================

An exact suggestion names only the targets its pass's own matcher accepts
(:mod:`recadvisor.rewrite.matchers`: ``ids_upstream``, ``merge_duplicates``,
``drop_unused_inputs``); each refused target gets a ``<pass>_refused`` suggestion (no pass,
``retrain``) whose message gives the matcher's reason.

:func:`build_plan` starts from :func:`recadvisor.plan.preset_plan` and fills each pass's entry
with the suggestions' parameters and a comment. A pass stays enabled only when the preset allows
its exactness and contract change (``safe``: exact and drop-in; ``fast``: + exact-in-range and
contract changes; ``small``: + lossy), whether or not the preset lists it; targeted passes the
analysis found nothing for are disabled. ``prune_outputs`` and ``per_request_dedup`` depend on how
the model is served, which the model cannot tell, so they are written disabled with the numbers
in the comment.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from recadvisor.analysis.findings import (
    DUPLICATE_FEATURE,
    LARGE_EMBEDDING,
    NUMERIC_AS_STRING,
    PER_REQUEST_FEATURE,
    SHARED_EMBEDDING_CANDIDATE,
    STRING_OP,
    UNSAFE_OP,
    UNUSED_INPUT,
    UNUSED_OUTPUT,
    Finding,
    format_bytes,
    severity_rank,
    to_jsonable,
)
from recadvisor.model.graph import ModelGraph
from recadvisor.rewrite.base import EXACT, EXACT_IN_RANGE, LOSSY

if TYPE_CHECKING:
    from recadvisor.plan import Plan

RETRAIN = "retrain"
PRESET_EXACTNESS = {
    "safe": (EXACT,),
    "fast": (EXACT, EXACT_IN_RANGE),
    "small": (EXACT, EXACT_IN_RANGE, LOSSY),
    "request": (EXACT, EXACT_IN_RANGE),
}
PRESET_CONTRACT_CHANGES = {"safe": False, "fast": True, "small": True, "request": True}
# passes a preset enables by name although no analysis turns them on by itself
PRESET_ENABLES = {"request": frozenset({"per_request_dedup"})}
# passes that depend on how the model is served: written disabled, a person enables them
NEVER_AUTO_ENABLED = frozenset({"prune_outputs", "per_request_dedup"})
# passes that only make sense with a target from the analysis; disabled when nothing was found
TARGETED_PASSES = frozenset(
    {
        "numeric_bucketize",
        "ids_upstream",
        "share_embeddings",
        "reduce_embedding_dim",
        "prune_embedding_rows",
        "per_request_dedup",
    }
)
INT8_SIZE_RATIO = 0.28  # int8 rows + one float32 scale per row, for typical dims
MAX_SNIPPET_VALUES = 64


# a suggestion's plan entry (``pass`` is a Python keyword, hence the functional form)
SuggestedEntryDict = TypedDict("SuggestedEntryDict", {"pass": str, "params": dict[str, Any]})


class ExpectedSavingDict(TypedDict):
    """What a suggestion is expected to save: op-time share at ``batch_size`` (and per
    profiled batch size, string keys) and weight bytes; null when unknown."""

    time_share: float | None
    time_share_by_batch: dict[str, float]
    batch_size: int | None
    bytes: int | None


class SuggestionDict(TypedDict):
    """``Suggestion.to_dict()``: an ``analysis.json`` ``suggestions`` entry."""

    kind: str
    targets: list[str]
    message: str
    plan_entry: SuggestedEntryDict | None
    exactness: str
    changes_contract: bool
    expected_saving: ExpectedSavingDict
    training_side: str
    severity: str
    finding_kinds: list[str]
    tables: list[str]


@dataclass(frozen=True)
class Suggestion:
    """One thing to do about one or more findings.

    Attributes:
        kind: what to do: the pass name when a rewrite does it, else a training-side action
            (``remove_unsafe_op``, ``drop_redundant_input``, ``retrain_shared_embedding``...).
        targets: the inputs, outputs or tables it acts on.
        message: one sentence with the expected saving.
        pass_name: the rewrite pass, or ``None`` for training-side-only suggestions.
        params: the plan parameters for ``pass_name``.
        exactness: ``exact``, ``exact-in-range``, ``lossy``, or ``retrain`` (no rewrite).
        changes_contract: the rebuilt model's inputs/outputs differ from the original's.
        expected_time_share: share of op time removed at ``batch_size`` (``None``: unknown).
        expected_time_share_by_batch: the same per profiled batch size.
        expected_bytes_saved: weight bytes saved (``None``: unknown or none).
        training_side: the change a modeller could make in training instead (code snippet).
        severity: the most severe source finding's severity.
        finding_kinds: the kinds of the findings behind it.
        batch_size: the reference batch size of ``expected_time_share``.
        tables: frozen ``Const`` names of the embedding tables it touches (plan conflicts).
    """

    kind: str
    targets: tuple[str, ...]
    message: str
    pass_name: str | None
    params: dict[str, Any] = field(default_factory=dict)
    exactness: str = EXACT
    changes_contract: bool = False
    expected_time_share: float | None = None
    expected_time_share_by_batch: dict[int, float] = field(default_factory=dict)
    expected_bytes_saved: int | None = None
    training_side: str = ""
    severity: str = "low"
    finding_kinds: tuple[str, ...] = ()
    batch_size: int | None = None
    tables: tuple[str, ...] = ()

    @property
    def plan_entry(self) -> SuggestedEntryDict | None:
        """``{"pass": ..., "params": ...}`` or ``None`` without a pass."""
        if self.pass_name is None:
            return None
        return {"pass": self.pass_name, "params": to_jsonable(self.params)}

    def to_dict(self) -> SuggestionDict:
        """JSON form (an ``analysis.json`` ``suggestions`` entry)."""
        return to_jsonable(
            {
                "kind": self.kind,
                "targets": list(self.targets),
                "message": self.message,
                "plan_entry": self.plan_entry,
                "exactness": self.exactness,
                "changes_contract": self.changes_contract,
                "expected_saving": {
                    "time_share": self.expected_time_share,
                    "time_share_by_batch": self.expected_time_share_by_batch,
                    "batch_size": self.batch_size,
                    "bytes": self.expected_bytes_saved,
                },
                "training_side": self.training_side,
                "severity": self.severity,
                "finding_kinds": list(self.finding_kinds),
                "tables": list(self.tables),
            }
        )


def _reference_batch(attribution: Any, profile: Any) -> int | None:
    if attribution is not None:
        return int(attribution.batch_size)
    if profile is not None and getattr(profile, "batches", None):
        return max(int(b.batch_size) for b in profile.batches)
    return None


def _shares(finding: Finding, key: str = "time_share_by_batch") -> dict[int, float]:
    raw = finding.evidence.get(key) or {}
    return {int(k): float(v) for k, v in raw.items() if v is not None}


def _pct(share: float | None) -> str:
    return "unknown time" if share is None else f"{100 * share:.1f}% of op time"


def _ticks(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _values_text(values: Sequence[Any]) -> str:
    shown = list(values[:MAX_SNIPPET_VALUES])
    more = len(values) - len(shown)
    return (
        "[" + ", ".join(str(v) for v in shown) + (f", ...  # {more} more" if more > 0 else "") + "]"
    )


class _Advisor:
    """Holds the shared context while findings are turned into suggestions."""

    def __init__(self, graph: ModelGraph, attribution: Any, profile: Any) -> None:
        self.graph = graph
        self.attribution = attribution
        self.bs = _reference_batch(attribution, profile)
        self.verdicts: dict[tuple[str, str], str | None] = {}
        self.pass_view: ModelGraph | None = None

    def share(self, by_batch: dict[int, float], fallback: float | None = None) -> float | None:
        if self.bs is not None and self.bs in by_batch:
            return by_batch[self.bs]
        return fallback

    def feature_share(self, feature: str) -> float | None:
        if self.attribution is None:
            return None
        return float(self.attribution.per_feature.get(feature, 0.0))

    def suggest(self, f: Finding, **fields: Any) -> Suggestion:
        """A :class:`Suggestion` about ``f``: its severity, kind and the reference batch size.

        Args:
            f: the finding behind the suggestion.
            **fields: the other :class:`Suggestion` fields (``kind``, ``targets``...).

        Returns:
            The suggestion.
        """
        return Suggestion(
            severity=f.severity, finding_kinds=(f.kind,), batch_size=self.bs, **fields
        )

    # ------------------------------------------------------------------ per finding kind
    def numeric_as_string(self, f: Finding) -> list[Suggestion]:
        ev = f.evidence
        feature = f.features[0]
        if ev.get("source") == "data":
            values = ev.get("boundaries") or []
            return [
                self.suggest(
                    f,
                    kind="send_numbers",
                    targets=f.features,
                    pass_name=None,
                    exactness=RETRAIN,
                    changes_contract=True,
                    message=(
                        f"send `{feature}` as a number and bucketize it in the model "
                        f"({ev.get('n_distinct')} distinct values) instead of a string"
                    ),
                    training_side=(
                        f"{feature} = tf.strings.to_number({feature})  # in the input pipeline\n"
                        f"x = tf.keras.layers.Discretization(bin_boundaries={_values_text(values)})"
                        f"({feature})"
                    ),
                )
            ]
        by_batch = _shares(f)
        share = self.share(by_batch, ev.get("time_share"))
        rows, n, dim = ev.get("table_rows"), ev.get("n_distinct"), ev.get("table_dim")
        saved = None
        if rows and n and dim and rows > n + 1:
            saved = int((rows - n - 1) * dim * 4)
        boundaries = ev.get("boundaries")
        exact_for = ev.get("exact_for", "the values seen when rebuilding")
        n_buckets = len(boundaries) + 1 if boundaries is not None else None
        snippet = (
            f"# `{feature}` as a number: one bucket per observed value\n"
            f"ids = tf.keras.layers.Discretization(bin_boundaries="
            f"{_values_text(boundaries or [])})({feature})\n"
            f"emb = tf.keras.layers.Embedding({n_buckets or 'len(bin_boundaries) + 1'}, "
            f"{dim or 'dim'})(ids)"
        )
        return [
            self.suggest(
                f,
                kind="numeric_bucketize",
                targets=f.features,
                pass_name="numeric_bucketize",
                params={"inputs": [feature], "out_of_range": "clamp"},
                exactness=EXACT_IN_RANGE,
                changes_contract=False,
                expected_time_share=share,
                expected_time_share_by_batch=by_batch,
                expected_bytes_saved=saved,
                message=(
                    f"replace AsString + hash of `{feature}` by Bucketize"
                    + (f" over {n} values" if n else "")
                    + f": removes {_pct(share)}"
                    + (f" and shrinks its table {rows:,} -> {n + 1} rows" if saved else "")
                    + f"; exact for {exact_for}; outside the range values clamp to the end "
                    "buckets"
                ),
                training_side=snippet,
            )
        ]

    def refused_targets(self, pass_name: str, targets: Sequence[str]) -> dict[str, str] | None:
        """Which of ``targets`` the pass's own matcher refuses, with its reasons.

        Asks :func:`recadvisor.rewrite.matchers.refusals` on the graph as the pass will see it
        (once per pass and target), so an exact suggestion is made only for targets the rebuild
        will rewrite.

        Returns:
            Target -> reason for the refused ones (empty: all accepted); None when the pass has
            no matcher.
        """
        from recadvisor.rewrite.matchers import MATCHERS, pipeline_view, refusals

        if pass_name not in MATCHERS:
            return None
        if self.pass_view is None:
            self.pass_view = pipeline_view(self.graph)
        todo = [t for t in targets if (pass_name, t) not in self.verdicts]
        if todo:
            found = refusals(pass_name, self.pass_view, todo) or {}
            self.verdicts.update({(pass_name, t): found.get(t) for t in todo})
        return {t: why for t in targets if (why := self.verdicts[(pass_name, t)]) is not None}

    def refused_suggestion(self, s: Suggestion, target: str, why: str) -> Suggestion:
        """``<pass>_refused``: the rebuild will not do ``s`` for ``target`` (the matcher's
        reason), so it is left to retraining."""
        return dataclasses.replace(
            s,
            kind=f"{s.pass_name}_refused",
            targets=(target,),
            pass_name=None,
            params={},
            exactness=RETRAIN,
            expected_time_share=None,
            expected_time_share_by_batch={},
            expected_bytes_saved=None,
            message=(
                f"{s.pass_name} cannot rewrite `{target}` in the rebuild ({why}): make the "
                "change when retraining"
            ),
        )

    def agree_with_passes(self, suggestions: Sequence[Suggestion]) -> list[Suggestion]:
        """Keep an exact suggestion only for the targets its pass's matcher accepts.

        Refused targets leave the suggestion (and its ``targets_param`` list) and each gets a
        :meth:`refused_suggestion`; a suggestion left with no target is dropped.
        """
        from recadvisor.rewrite.matchers import MATCHERS

        out: list[Suggestion] = []
        for s in suggestions:
            refused = (
                self.refused_targets(s.pass_name, s.targets)
                if s.pass_name is not None and s.exactness == EXACT
                else None
            )
            if not refused:
                out.append(s)
                continue
            out.extend(self.refused_suggestion(s, t, why) for t, why in refused.items())
            accepted = tuple(t for t in s.targets if t not in refused)
            if not accepted:
                continue
            key = MATCHERS[s.pass_name].targets_param
            params = dict(s.params)
            if key is not None:
                params[key] = [t for t in params.get(key, []) if t not in refused]
            out.append(dataclasses.replace(s, targets=accepted, params=params))
        return out

    def string_op(self, f: Finding) -> list[Suggestion]:
        string_inputs = [
            x
            for x in f.features
            if self.graph.signature.inputs.get(x) is not None
            and self.graph.signature.inputs[x].dtype == "string"
        ]
        if not string_inputs:
            return []  # numeric inputs: numeric_as_string's suggestion covers them
        ev = f.evidence
        by_batch = _shares(f)
        share = self.share(by_batch, ev.get("time_share"))
        refused = self.refused_targets("ids_upstream", string_inputs) or {}
        accepted = [x for x in string_inputs if x not in refused]
        upstream = self.suggest(
            f,
            kind="ids_upstream",
            targets=tuple(string_inputs),
            pass_name="ids_upstream",
            exactness=EXACT,
            changes_contract=True,
            message="",
            training_side=(
                "# compute the ids in the feature pipeline and feed int64 ids to the model"
            ),
        )
        out = [self.refused_suggestion(upstream, x, why) for x, why in refused.items()]
        if not accepted:
            return out
        buckets = ev.get("num_buckets") or []
        vocab = ev.get("vocabulary_sizes") or []
        lines = []
        for x in accepted:
            if buckets:
                lines.append(
                    f"{x}_id = tf.strings.to_hash_bucket_fast({x}, {buckets[0]})"
                    "  # in the feature pipeline (FarmHash Fingerprint64 mod N)"
                )
            elif vocab:
                lines.append(
                    f"{x}_id = tf.keras.layers.StringLookup(vocabulary=...)({x})"
                    "  # in the input pipeline, not the serving graph"
                )
        lines.append("# the model then takes int64 ids: tf.keras.layers.Embedding(N, dim)(ids)")
        return [
            self.suggest(
                f,
                kind="ids_upstream",
                targets=tuple(accepted),
                pass_name="ids_upstream",
                params={"inputs": accepted},
                exactness=EXACT,
                changes_contract=True,
                expected_time_share=share,
                expected_time_share_by_batch=by_batch,
                message=(
                    f"compute the ids of {_ticks(accepted)} upstream (int64 inputs, "
                    f"exact): removes {_pct(share)} of string work and opens the way to "
                    "onnxruntime"
                ),
                training_side="\n".join(lines),
            ),
            *out,
        ]

    def duplicate_feature(self, f: Finding) -> list[Suggestion]:
        ev = f.evidence
        reason = ev.get("reason", "")
        if ev.get("mergeable"):
            by_batch = _shares(f)
            share = self.share(by_batch, ev.get("time_share"))
            saved = ev.get("bytes_saved")
            what = {
                "hashed_twice": "hash once",
                "looked_up_twice": "look up once",
                "identical_tables": "keep one copy of the identical tables",
            }.get(reason, "merge the duplicates")
            return [
                self.suggest(
                    f,
                    kind="merge_duplicates",
                    targets=f.features or tuple(ev.get("tables", [])),
                    pass_name="merge_duplicates",
                    params={},
                    exactness=EXACT,
                    changes_contract=False,
                    expected_time_share=share,
                    expected_time_share_by_batch=by_batch,
                    expected_bytes_saved=saved,
                    message=(
                        f"{what} ({_ticks(f.features) or 'tables'}): saves {_pct(share)}"
                        + (f" and {format_bytes(saved)}" if saved else "")
                        + ", exact"
                    ),
                    training_side=(
                        f"# compute the ids of {_ticks(f.features)} once and feed them to "
                        "every part of the model that needs them"
                    ),
                )
            ]
        if reason in ("identical_columns", "one_to_one_columns"):
            a, b = f.features[0], f.features[-1]
            return [
                self.suggest(
                    f,
                    kind="drop_redundant_input",
                    targets=f.features,
                    pass_name=None,
                    exactness=RETRAIN,
                    changes_contract=True,
                    message=(
                        f"`{a}` and `{b}` carry the same information in the sample data: keep "
                        "one of them when retraining"
                    ),
                    training_side=f"# drop `{b}` from the model's features and keep `{a}`",
                )
            ]
        return []

    def shared_embedding(self, f: Finding) -> list[Suggestion]:
        ev = f.evidence
        saved = ev.get("bytes_saved")
        feats = f.features
        snippet = "shared = tf.keras.layers.Embedding(num_ids, dim)\n" + "\n".join(
            f"{x}_emb = shared({x}_ids)" for x in feats
        )
        table_features = ev.get("table_features") or []
        if ev.get("rewrite") and len(table_features) == 2 and all(table_features):
            # the pass names each group by one feature per table (each must read one table)
            group = [table_features[0][0], table_features[1][0]]
            return [
                self.suggest(
                    f,
                    kind="share_embeddings",
                    targets=feats,
                    pass_name="share_embeddings",
                    params={"features": [group], "keep": "mean"},
                    tables=tuple(ev.get("tables", [])),
                    exactness=LOSSY,
                    changes_contract=False,
                    expected_bytes_saved=saved,
                    message=(
                        f"share one embedding table between {_ticks(feats)}: saves "
                        f"{format_bytes(saved or 0)}; lossy, checked by the accuracy gate"
                    ),
                    training_side=snippet,
                )
            ]
        return [
            self.suggest(
                f,
                kind="retrain_shared_embedding",
                targets=feats,
                pass_name=None,
                exactness=RETRAIN,
                changes_contract=False,
                expected_bytes_saved=saved,
                message=(
                    f"{_ticks(feats)} draw from one id space but are encoded differently: "
                    f"share their embedding when retraining (saves {format_bytes(saved or 0)})"
                ),
                training_side=snippet,
            )
        ]

    def large_embedding(self, f: Finding) -> list[Suggestion]:
        ev = f.evidence
        issues = set(ev.get("issues", []))
        table = ev.get("table")
        name = ev.get("variable") or table
        target = (str(name),)
        rows, dim, size = ev.get("rows"), ev.get("dim"), ev.get("bytes") or 0
        out = []
        if "oversized" in issues:
            saved = ev.get("unused_bytes")
            card = ev.get("cardinality")
            out.append(
                self.suggest(
                    f,
                    kind="prune_embedding_rows",
                    targets=target,
                    tables=(table,),
                    pass_name="prune_embedding_rows",
                    params={"tables": [str(name)]},
                    exactness=LOSSY,
                    changes_contract=False,
                    expected_bytes_saved=saved,
                    message=(
                        f"keep the {ev.get('rows_hit'):,} rows of `{name}` the data hits "
                        f"(of {rows:,}): saves {format_bytes(saved or 0)}; ids never seen fall "
                        "back to one row (lossy for them, checked by the accuracy gate)"
                    ),
                    training_side=(
                        f"# size the table to the ids that occur (~{card:,}):\n"
                        f"tf.keras.layers.Embedding(input_dim={max(card or 1, 1) * 2}, "
                        f"output_dim={dim})  # or Hashing(num_bins=...) with fewer bins"
                    ),
                )
            )
        if issues & {"low_rank", "dim_large"} and dim:
            new_dim = ev.get("dims_99") if "low_rank" in issues else ev.get("rule_of_thumb_dim")
            new_dim = max(1, min(int(new_dim or dim), dim))
            saved = int(rows * (dim - new_dim) * (size / (rows * dim))) if rows else None
            out.append(
                self.suggest(
                    f,
                    kind="reduce_embedding_dim",
                    targets=target,
                    tables=(table,),
                    pass_name="reduce_embedding_dim",
                    params={"tables": [str(name)], "energy": 0.99},
                    exactness=LOSSY,
                    changes_contract=False,
                    expected_bytes_saved=saved,
                    message=(
                        f"shrink `{name}` from {dim} to ~{new_dim} dims (truncated SVD keeping "
                        f"99% of the energy): saves ~{format_bytes(saved or 0)}; lossy, gated"
                    ),
                    training_side=f"tf.keras.layers.Embedding({rows}, {new_dim})",
                )
            )
        if "big" in issues:
            saved = int(size * (1 - INT8_SIZE_RATIO))
            out.append(
                self.suggest(
                    f,
                    kind="quantize_embeddings",
                    targets=target,
                    tables=(table,),
                    pass_name="quantize_embeddings",
                    params={"dtype": "int8", "tables": [str(name)]},
                    exactness=LOSSY,
                    changes_contract=False,
                    expected_bytes_saved=saved,
                    message=(
                        f"store `{name}` ({format_bytes(size)}) as int8 rows with a per-row "
                        f"scale: saves ~{format_bytes(saved)}; lossy, gated (fp16 halves it)"
                    ),
                    training_side=(
                        "# train with quantization-aware embeddings or export fp16 weights"
                    ),
                )
            )
        return out

    def unused_output(self, f: Finding) -> list[Suggestion]:
        ev = f.evidence
        keep = list(ev.get("keep") or [])
        if not keep:
            return []
        by_batch = _shares(f)
        share = self.share(by_batch, ev.get("time_share"))
        saved = ev.get("weight_bytes_saved")
        return [
            self.suggest(
                f,
                kind="prune_outputs",
                targets=tuple(keep),
                pass_name="prune_outputs",
                params={"keep": keep},
                exactness=EXACT,
                changes_contract=True,
                expected_time_share=share,
                expected_time_share_by_batch=by_batch,
                expected_bytes_saved=saved,
                message=(
                    f"if clients read only {_ticks(keep)}, prune the other outputs: saves "
                    f"{_pct(share)}"
                    + (f" and {format_bytes(saved)}" if saved else "")
                    + " (drops outputs from the signature)"
                ),
                training_side="# export a serving signature that returns only " + ", ".join(keep),
            )
        ]

    def per_request(self, f: Finding) -> list[Suggestion]:
        ev = f.evidence
        request = list(ev.get("request_inputs") or [])
        if not request:
            return []
        by_batch = {int(k): float(v) for k, v in (ev.get("max_saving_by_batch") or {}).items()}
        share = self.share(by_batch)
        return [
            self.suggest(
                f,
                kind="per_request_dedup",
                targets=tuple(request),
                pass_name="per_request_dedup",
                params={"request_inputs": request},
                exactness=EXACT,
                changes_contract=True,
                expected_time_share=share,
                expected_time_share_by_batch=by_batch,
                message=(
                    f"compute the {_ticks(request)} sub-graph once per request: saves up to "
                    f"{_pct(share)}"
                    + (f" at batch {self.bs}" if self.bs else "")
                    + " (clients send those inputs once: a contract change)"
                ),
                training_side=(
                    "# export a user tower and a candidate tower separately and cache "
                    "the user vector per request"
                ),
            )
        ]

    def unused_input(self, f: Finding) -> list[Suggestion]:
        if not f.evidence.get("dead_consumers"):
            return [
                self.suggest(
                    f,
                    kind="remove_from_signature",
                    targets=f.features,
                    pass_name=None,
                    exactness=EXACT,
                    changes_contract=True,
                    message=(
                        f"nothing reads {_ticks(f.features)}: clients can stop sending it once "
                        "the signature no longer declares it"
                    ),
                    training_side=f"# remove {_ticks(f.features)} from the serving signature",
                )
            ]
        return [
            self.suggest(
                f,
                kind="drop_unused_inputs",
                targets=f.features,
                pass_name="drop_unused_inputs",
                params={},
                exactness=EXACT,
                changes_contract=False,
                message=(
                    f"{_ticks(f.features)} is never read: its dead sub-graph is removed; the "
                    "signature still accepts it (clients can stop sending it later)"
                ),
                training_side=f"# remove {_ticks(f.features)} from the serving signature",
            )
        ]

    def unsafe_op(self, f: Finding) -> list[Suggestion]:
        op = f.evidence.get("op", "the op")
        return [
            self.suggest(
                f,
                kind="remove_unsafe_op",
                targets=(str(op),),
                pass_name=None,
                exactness=RETRAIN,
                changes_contract=False,
                message=f"re-export the model without {op} ({f.evidence.get('reason', '')})",
                training_side=f"# keep {op} out of the serving function (do file/Python work "
                "outside the exported graph)",
            )
        ]


def advise(
    findings: Sequence[Finding],
    graph: ModelGraph,
    attribution: Any = None,
    preset: str = "safe",
    *,
    profile: Any = None,
) -> list[Suggestion]:
    """Turn findings into suggestions, biggest expected saving first.

    Args:
        findings: the detectors' findings.
        graph: the frozen graph they are about.
        attribution: the per-feature attribution at the reference batch size (or ``None``).
        preset: the preset the plan will be built for (suggestions are listed whatever the
            preset; :func:`build_plan` decides what is enabled).
        profile: the profile (for the reference batch size when there is no attribution).

    Returns:
        The suggestions, sorted by time saving, then bytes, then severity.
    """
    if preset not in PRESET_EXACTNESS:
        from recadvisor.errors import PlanError

        raise PlanError(f"unknown preset '{preset}'; choose one of: {', '.join(PRESET_EXACTNESS)}")
    advisor = _Advisor(graph, attribution, profile)
    handlers = {
        NUMERIC_AS_STRING: advisor.numeric_as_string,
        STRING_OP: advisor.string_op,
        DUPLICATE_FEATURE: advisor.duplicate_feature,
        SHARED_EMBEDDING_CANDIDATE: advisor.shared_embedding,
        LARGE_EMBEDDING: advisor.large_embedding,
        UNUSED_OUTPUT: advisor.unused_output,
        PER_REQUEST_FEATURE: advisor.per_request,
        UNUSED_INPUT: advisor.unused_input,
        UNSAFE_OP: advisor.unsafe_op,
    }
    suggestions: list[Suggestion] = []
    for finding in findings:
        handler = handlers.get(finding.kind)
        if handler is not None:
            suggestions.extend(handler(finding))
    suggestions = advisor.agree_with_passes(suggestions)
    ranked = sorted(
        suggestions,
        key=lambda s: (
            -(s.expected_time_share or 0.0),
            -(s.expected_bytes_saved or 0),
            severity_rank(s.severity),
        ),
    )
    return _drop_repeats(ranked)


def _drop_repeats(suggestions: Sequence[Suggestion]) -> list[Suggestion]:
    """Keep the first of suggestions that would do the same thing (same kind, targets, pass and
    parameters): two findings about one feature (e.g. hashed twice *and* looked up twice) must
    not give two identical plan lines.

    Args:
        suggestions: ranked suggestions.

    Returns:
        The suggestions, each distinct action once, in the same order.
    """
    seen: set[tuple[Any, ...]] = set()
    kept: list[Suggestion] = []
    for s in suggestions:
        key = (s.kind, s.targets, s.pass_name, json.dumps(s.params, sort_keys=True, default=str))
        if key not in seen:
            seen.add(key)
            kept.append(s)
    return kept


def _allowed(pass_name: str, exactness: str, changes_contract: bool, preset: str) -> bool:
    if pass_name in NEVER_AUTO_ENABLED and pass_name not in PRESET_ENABLES.get(preset, ()):
        return False
    if exactness not in PRESET_EXACTNESS[preset]:
        return False
    return PRESET_CONTRACT_CHANGES[preset] or not changes_contract


def _merge_params(pass_name: str, group: Sequence[Suggestion]) -> dict[str, Any]:
    """One entry's params from several suggestions for the same pass."""
    if pass_name in ("numeric_bucketize", "ids_upstream"):
        inputs = sorted({x for s in group for x in s.params.get("inputs", [])})
        merged = {k: v for s in group for k, v in s.params.items() if k != "inputs"}
        return {"inputs": inputs, **merged}
    if pass_name in ("prune_embedding_rows", "reduce_embedding_dim", "quantize_embeddings"):
        tables = sorted({t for s in group for t in s.params.get("tables", [])})
        merged = {k: v for s in group for k, v in s.params.items() if k != "tables"}
        return {**merged, "tables": tables}
    if pass_name == "share_embeddings":
        groups = [g for s in group for g in s.params.get("features", [])]
        return {"features": groups, "keep": "mean"}
    if pass_name == "prune_outputs":
        best = max(group, key=lambda s: s.expected_time_share or 0.0)
        return dict(best.params)
    if pass_name == "per_request_dedup":
        request = sorted({x for s in group for x in s.params.get("request_inputs", [])})
        return {"request_inputs": request}
    return {}


def _comment(pass_name: str, group: Sequence[Suggestion], enabled: bool, preset: str) -> str:
    if pass_name == "prune_outputs":  # alternatives, not a sum
        options = "; ".join(
            f"keep {', '.join(s.targets)}: saves {_pct(s.expected_time_share)}" for s in group
        )
        return (
            f"{group[0].exactness}, drops outputs; {options}; disabled: set keep to the "
            "outputs clients read, then enable"
        )
    share = sum(s.expected_time_share or 0.0 for s in group)
    saved = sum(s.expected_bytes_saved or 0 for s in group)
    targets = sorted({t for s in group for t in s.targets})
    parts = [
        f"{group[0].exactness}; targets: {', '.join(targets[:8])}"
        + ("..." if len(targets) > 8 else "")
    ]
    if share:
        parts.append(
            f"saves ~{100 * share:.1f}% of op time"
            + (f" at batch {group[0].batch_size}" if group[0].batch_size else "")
        )
    if saved:
        parts.append(f"~{format_bytes(saved)}")
    if pass_name == "numeric_bucketize":
        parts.append("exact inside the observed range, clamped outside")
    if not enabled:
        if pass_name in NEVER_AUTO_ENABLED:
            parts.append("disabled: enable only if it matches how the model is served")
        else:
            parts.append(f"disabled in preset '{preset}'")
    return "; ".join(parts)


def _resolve_table_conflicts(groups: dict[str, list[Suggestion]], preset: str) -> dict[str, str]:
    """Keep row pruning and dim reduction off the tables that are to be shared.

    The registry runs ``prune_embedding_rows`` (and ``reduce_embedding_dim``) before
    ``share_embeddings``; a pruned table no longer has its partner's shape, so sharing would be
    refused. Sharing drops a whole table, which beats pruning it, so when sharing is enabled in
    this preset the shared tables leave the other table passes' lists.

    Returns:
        Pass name -> a note for passes left with no table.
    """
    shared = {
        t
        for s in groups.get("share_embeddings", [])
        if _allowed("share_embeddings", s.exactness, s.changes_contract, preset)
        for t in s.tables
    }
    notes: dict[str, str] = {}
    if not shared:
        return notes
    for name in ("prune_embedding_rows", "reduce_embedding_dim"):
        if name not in groups:
            continue
        kept = [s for s in groups[name] if not set(s.tables) & shared]
        if kept:
            groups[name] = kept
        else:
            groups.pop(name)
            notes[name] = "its tables are shared by share_embeddings instead"
    return notes


def build_plan(
    suggestions: Sequence[Suggestion],
    graph: ModelGraph,
    preset: str = "safe",
    *,
    model_path: str | Path | None = None,
) -> Plan:
    """Build the rebuild plan for ``preset`` with the suggestions' parameters.

    Args:
        suggestions: from :func:`advise`.
        graph: the frozen model (for the fingerprint and the preset's defaults).
        preset: ``safe``, ``fast`` or ``small``.
        model_path: recorded in the plan (default: ``graph.source``).

    Returns:
        A :class:`recadvisor.plan.Plan` listing every pass; enabled entries run on rebuild.
    """
    from recadvisor.plan import PlanEntry, preset_plan

    plan = preset_plan(preset, graph, model_path=model_path)
    groups: dict[str, list[Suggestion]] = defaultdict(list)
    for s in suggestions:
        if s.pass_name is not None:
            groups[s.pass_name].append(s)
    conflicts = _resolve_table_conflicts(groups, preset)
    for entry in plan.rewrites:
        group = groups.get(entry.pass_name)
        if not group:
            why = conflicts.get(entry.pass_name)
            if why is None and entry.pass_name in TARGETED_PASSES and entry.enabled:
                why = "analyze found nothing for this pass"
            if why is not None:
                plan = plan.with_entry(
                    PlanEntry(entry.pass_name, False, entry.params, f"disabled: {why}")
                )
            continue
        # a pass the analysis has targets for runs when the preset allows its exactness and
        # contract change, even if the preset does not list it (e.g. share_embeddings: small)
        enabled = all(
            _allowed(entry.pass_name, s.exactness, s.changes_contract, preset) for s in group
        )
        params = {**entry.params, **_merge_params(entry.pass_name, group)}
        plan = plan.with_entry(
            PlanEntry(
                entry.pass_name, enabled, params, _comment(entry.pass_name, group, enabled, preset)
            )
        )
    return plan
