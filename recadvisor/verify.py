"""Parity: run a baseline and a candidate on the same rows and compare them output by output.

The one owner of output comparison: the rewrite pipeline, the accuracy gate of the lossy passes,
the rebuilder, the ONNX export and ``compare`` all measure differences and AUCs here.

Float outputs are compared by absolute difference (NaN in the same place on both sides counts as
equal); integer, boolean and string outputs must be equal element for element. A candidate whose
output has another shape fails that output. The pipeline calls :func:`check_parity` after every
rewrite pass; the rebuilder calls it once more for the final model against the original one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

Runner = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]

DEFAULT_TOLERANCE = 1e-5


class OutputParityDict(TypedDict):
    """``OutputParity.to_dict()`` (``inf`` written as the string ``"inf"``)."""

    key: str
    dtype: str
    shape_match: bool
    max_abs_diff: float | str
    mean_abs_diff: float | str
    mismatches: int
    passed: bool
    note: str


class QualityDict(TypedDict):
    """AUC and log-loss of one output against its label column (``quality_metrics``)."""

    auc: float
    logloss: float
    label: str


class ParityDict(TypedDict):
    """``Parity.to_dict()``: the verdict, its one-line summary and each output's numbers."""

    passed: bool
    tolerance: float
    rows: int
    max_abs_diff: float | str
    summary: str
    outputs: dict[str, OutputParityDict]


@dataclass(frozen=True)
class OutputParity:
    """How one output of the candidate compares with the reference.

    Attributes:
        key: the signature output key.
        dtype: the reference output's numpy dtype name.
        shape_match: both outputs have the same shape.
        max_abs_diff: largest absolute difference (floats); for other dtypes 0.0 when equal and
            ``inf`` when any element differs. ``inf`` as well when the shapes differ or the
            output is missing from the candidate.
        mean_abs_diff: mean absolute difference (floats), else the fraction of differing elements.
        mismatches: number of elements outside the tolerance (or unequal).
        passed: ``shape_match`` and ``max_abs_diff <= tolerance``.
        note: why it failed when the numbers alone do not say (missing output, shape).
    """

    key: str
    dtype: str
    shape_match: bool
    max_abs_diff: float
    mean_abs_diff: float
    mismatches: int
    passed: bool
    note: str = ""

    def to_dict(self) -> OutputParityDict:
        """JSON form (``inf`` becomes the string ``"inf"``)."""
        return {
            "key": self.key,
            "dtype": self.dtype,
            "shape_match": self.shape_match,
            "max_abs_diff": _json_float(self.max_abs_diff),
            "mean_abs_diff": _json_float(self.mean_abs_diff),
            "mismatches": self.mismatches,
            "passed": self.passed,
            "note": self.note,
        }


@dataclass(frozen=True)
class Parity:
    """The comparison of every checked output.

    Attributes:
        outputs: per output key, in the reference's order.
        tolerance: the max abs diff allowed on float outputs.
        rows: number of sample rows compared (first dimension of the first input), 0 if unknown.
    """

    outputs: tuple[OutputParity, ...]
    tolerance: float
    rows: int = 0

    @property
    def passed(self) -> bool:
        """Every checked output passed (and at least one was checked)."""
        return bool(self.outputs) and all(o.passed for o in self.outputs)

    @property
    def max_abs_diff(self) -> float:
        """Largest max abs diff over the outputs (0.0 when there are none)."""
        return max((o.max_abs_diff for o in self.outputs), default=0.0)

    def worst(self) -> OutputParity | None:
        """The output with the largest difference (failed outputs first)."""
        if not self.outputs:
            return None
        return max(self.outputs, key=lambda o: (not o.passed, o.max_abs_diff))

    def summary(self) -> str:
        """One line, e.g. ``max abs diff 3e-02 on ctr > 1e-05``."""
        worst = self.worst()
        if worst is None:
            return "no outputs compared"
        if worst.note:
            return f"{worst.note} on {worst.key}"
        op = "<=" if worst.passed else ">"
        return f"max abs diff {worst.max_abs_diff:.3g} on {worst.key} {op} {self.tolerance:.3g}"

    def to_dict(self) -> ParityDict:
        """JSON form: overall verdict plus each output's numbers."""
        return {
            "passed": self.passed,
            "tolerance": self.tolerance,
            "rows": self.rows,
            "max_abs_diff": _json_float(self.max_abs_diff),
            "summary": self.summary(),
            "outputs": {o.key: o.to_dict() for o in self.outputs},
        }


def _json_float(value: float) -> float | str:
    return value if np.isfinite(value) else str(value)


def _mismatch(key: str, dtype: str, size: int, note: str) -> OutputParity:
    """An output that cannot be compared at all (missing, other shape): fails."""
    return OutputParity(key, dtype, False, float("inf"), float("inf"), size, False, note)


def _compare_one(
    key: str, ref: np.ndarray, cand: np.ndarray | None, tolerance: float
) -> OutputParity:
    ref = np.asarray(ref)
    dtype = ref.dtype.name
    if cand is None:
        return _mismatch(key, dtype, int(ref.size), "output missing from the candidate")
    cand = np.asarray(cand)
    if ref.shape != cand.shape:
        return _mismatch(
            key, dtype, int(ref.size), f"shape {list(cand.shape)} != {list(ref.shape)}"
        )
    if ref.size == 0:
        return OutputParity(key, dtype, True, 0.0, 0.0, 0, True)
    if np.issubdtype(ref.dtype, np.floating) or np.issubdtype(ref.dtype, np.complexfloating):
        ref64 = ref.astype(np.complex128 if np.iscomplexobj(ref) else np.float64)
        cand64 = cand.astype(ref64.dtype)
        both_nan = np.isnan(ref64) & np.isnan(cand64)
        same_inf = np.isinf(ref64) & (ref64 == cand64)
        diff = np.abs(ref64 - cand64)
        diff = np.where(both_nan | same_inf, 0.0, diff)
        diff = np.where(np.isnan(diff), np.inf, diff)
        max_diff = float(diff.max())
        return OutputParity(
            key,
            dtype,
            True,
            max_diff,
            float(diff.mean()),
            int((diff > tolerance).sum()),
            max_diff <= tolerance,
        )
    if ref.dtype == object or cand.dtype == object:
        ref_flat = [_as_bytes(v) for v in ref.ravel()]
        cand_flat = [_as_bytes(v) for v in cand.ravel()]
        unequal = int(sum(a != b for a, b in zip(ref_flat, cand_flat, strict=True)))
    else:
        unequal = int((ref != cand).sum())
    return OutputParity(
        key,
        dtype,
        True,
        0.0 if unequal == 0 else float("inf"),
        unequal / ref.size,
        unequal,
        unequal == 0,
    )


def _aligned(reference: np.ndarray | None, value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    if reference is None:
        return value
    ref = np.asarray(reference)
    if value.shape != ref.shape and value.size == ref.size:
        return value.reshape(ref.shape)
    return value


def _as_bytes(value: Any) -> Any:
    return value.encode("utf-8") if isinstance(value, str) else value


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    tolerance: float = DEFAULT_TOLERANCE,
    outputs: Iterable[str] | None = None,
    align_shapes: bool = False,
) -> Parity:
    """Compare two sets of outputs.

    Args:
        reference: output key -> array from the baseline.
        candidate: output key -> array from the candidate.
        tolerance: max abs diff allowed on float outputs.
        outputs: the keys to compare (default: every reference key). A key the candidate lacks
            fails.
        align_shapes: a candidate output with the reference's number of elements but another
            shape (``[N]`` vs ``[N, 1]``, as another runtime may declare it) is compared in
            the reference's shape instead of failing.

    Returns:
        A :class:`Parity`.
    """
    keys = list(reference) if outputs is None else list(outputs)
    if align_shapes:
        candidate = {k: _aligned(reference.get(k), v) for k, v in candidate.items()}
    rows = 0
    for value in reference.values():
        arr = np.asarray(value)
        rows = int(arr.shape[0]) if arr.ndim else 1
        break
    results = tuple(
        _compare_one(k, reference[k], candidate.get(k), tolerance)
        if k in reference
        else _mismatch(k, "unknown", 0, "output missing from the reference")
        for k in keys
    )
    return Parity(results, float(tolerance), rows)


def worst_of(parities: Sequence[Parity]) -> Parity:
    """One :class:`Parity` from several checks of the same outputs (e.g. one per request).

    Each output keeps its worst check (failed first, then the largest difference); rows add up.

    Args:
        parities: checks with the same tolerance.

    Returns:
        The combined :class:`Parity` (with no outputs, so not passed, when ``parities`` is
        empty).
    """
    if not parities:
        return Parity((), DEFAULT_TOLERANCE, 0)
    worst: dict[str, OutputParity] = {}
    for parity in parities:
        for out in parity.outputs:
            kept = worst.get(out.key)
            if kept is None or (not out.passed, out.max_abs_diff) > (
                not kept.passed,
                kept.max_abs_diff,
            ):
                worst[out.key] = out
    return Parity(tuple(worst.values()), parities[0].tolerance, sum(p.rows for p in parities))


def check_parity(
    baseline_runner: Runner,
    candidate_runner: Runner,
    feeds: Mapping[str, np.ndarray],
    candidate_feeds: Mapping[str, np.ndarray] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    outputs: Iterable[str] | None = None,
) -> Parity:
    """Run both models on the same rows and compare their outputs.

    Args:
        baseline_runner: callable feeds -> outputs (e.g. a
            :class:`~recadvisor.model.runtime.GraphRunner`).
        candidate_runner: the same for the candidate.
        feeds: inputs for the baseline.
        candidate_feeds: inputs for the candidate when its contract differs (encoded inputs);
            default ``feeds``.
        tolerance: max abs diff allowed on float outputs.
        outputs: output keys to compare (default: every candidate output).

    Returns:
        A :class:`Parity`.
    """
    reference = baseline_runner(feeds)
    candidate = candidate_runner(feeds if candidate_feeds is None else candidate_feeds)
    keys = list(candidate) if outputs is None else list(outputs)
    parity = compare_outputs(reference, candidate, tolerance, keys)
    first = next(iter(feeds.values()), None)
    rows = int(np.asarray(first).shape[0]) if first is not None and np.ndim(first) else 0
    return Parity(parity.outputs, parity.tolerance, rows)


@dataclass(frozen=True)
class AucChange:
    """AUC of one score output against binary labels, for the reference and the candidate."""

    before: float
    after: float

    @property
    def drop(self) -> float:
        """How much the candidate lost (negative: it gained)."""
        return self.before - self.after


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of ``scores`` against binary ``labels``; None when it is undefined (labels not
    binary, lengths differ, scores not numeric)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels).reshape(-1)
    s = np.asarray(scores).reshape(-1)
    if y.shape != s.shape or len(np.unique(y)) != 2 or not np.issubdtype(s.dtype, np.number):
        return None
    return float(roc_auc_score(y, s.astype(np.float64)))


def auc_changes(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
) -> dict[str, AucChange]:
    """AUC before and after for every float output with one value per labelled row.

    Args:
        reference: output key -> values of the baseline.
        candidate: the same for the candidate (keys it lacks are skipped).
        labels: binary labels, one per row, or None.

    Returns:
        output key -> :class:`AucChange` (empty without labels or without such outputs).
    """
    if labels is None:
        return {}
    changes: dict[str, AucChange] = {}
    for key, ref in reference.items():
        ref = np.asarray(ref)
        if key not in candidate or not np.issubdtype(ref.dtype, np.floating):
            continue
        before, after = auc(labels, ref), auc(labels, candidate[key])
        if before is not None and after is not None:
            changes[key] = AucChange(before, after)
    return changes


def quality_metrics(
    outputs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]
) -> dict[str, QualityDict]:
    """AUC and log-loss of each probability-like output against its label.

    The label for an output is ``label_<output>`` when present, else ``label``; outputs outside
    [0, 1] or without a binary label of the same length are left out.

    Args:
        outputs: output key -> values.
        labels: label name -> values.

    Returns:
        output key -> ``{"auc", "logloss", "label"}``.
    """
    from sklearn.metrics import log_loss

    result: dict[str, QualityDict] = {}
    for name, values in outputs.items():
        label_name = f"label_{name}" if f"label_{name}" in labels else "label"
        label = labels.get(label_name)
        if label is None:
            continue
        pred = np.asarray(values).reshape(-1)
        score = auc(label, pred)
        if score is None or pred.min() < 0 or pred.max() > 1:
            continue
        y = np.asarray(label).reshape(-1)
        clipped = np.clip(pred.astype(np.float64), 1e-7, 1 - 1e-7)
        result[name] = {
            "auc": score,
            "logloss": float(log_loss(y, clipped, labels=[0, 1])),
            "label": label_name,
        }
    return result
