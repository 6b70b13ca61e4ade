"""The analyzer's detectors: one module each, run in one explicit order.

Each detector module exposes ``NAME`` and ``detect(ctx: DetectorContext) -> list[Finding]``. The
order below is the order findings appear in (before sorting by severity): the unsafe-op scan
first (it needs no execution), then the string stage (the costliest and the gate to
onnxruntime), tables, duplicated work, sharing, unused parts and per-request structure.

A detector that crashes on an unexpected graph is logged and skipped (its name is recorded in
``DetectorRun.failed``); tests run with ``strict=True`` so crashes surface.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from recadvisor.analysis.detectors import (
    duplicates,
    embeddings,
    numeric_as_string,
    per_request,
    shared_embeddings,
    string_ops,
    unsafe_ops,
    unused,
)
from recadvisor.analysis.detectors.unsafe_ops import find_unsafe_ops, refuse_unsafe
from recadvisor.analysis.findings import DetectorContext, Finding, severity_rank

log = logging.getLogger(__name__)

DETECTORS: tuple[ModuleType, ...] = (
    unsafe_ops,  # stored graph + function library, no execution
    string_ops,  # string stage per feature, with its cost
    numeric_as_string,  # AsString on numbers, Bucketize boundaries from data
    embeddings,  # table sizes, rows hit, effective rank
    duplicates,  # same input hashed twice, identical tables / columns
    shared_embeddings,  # two tables, one id space
    unused,  # unused inputs, per-output cost
    per_request,  # request-side sub-graph (user tower)
)
DETECTOR_NAMES: tuple[str, ...] = tuple(m.NAME for m in DETECTORS)


@dataclass(frozen=True)
class DetectorRun:
    """The findings of a detector run and the detectors that failed.

    Attributes:
        findings: all findings, most severe first (stable within a severity).
        failed: detector name -> error text, for detectors that crashed.
    """

    findings: tuple[Finding, ...]
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"findings": [f.to_dict() for f in self.findings], "failed": dict(self.failed)}


def run_all_detectors(
    ctx: DetectorContext,
    names: Sequence[str] | None = None,
    strict: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> DetectorRun:
    """Run detectors in order.

    Args:
        ctx: the detector context.
        names: a subset of :data:`DETECTOR_NAMES` (default: all).
        strict: re-raise a detector's exception instead of logging and skipping it.
        progress: called as ``progress(detector_name, done, total)`` before each detector.

    Returns:
        A :class:`DetectorRun`.
    """
    selected = [m for m in DETECTORS if names is None or m.NAME in names]
    unknown = set(names or ()) - set(DETECTOR_NAMES)
    if unknown:
        raise ValueError(f"unknown detectors {sorted(unknown)}; known: {DETECTOR_NAMES}")
    findings: list[Finding] = []
    failed: dict[str, str] = {}
    for i, module in enumerate(selected):
        if progress is not None:
            progress(module.NAME, i, len(selected))
        try:
            findings.extend(module.detect(ctx))
        except Exception as e:  # noqa: BLE001 - one broken detector must not sink the analysis
            if strict:
                raise
            log.warning("detector %s failed: %s", module.NAME, e)
            failed[module.NAME] = f"{type(e).__name__}: {e}"
    if progress is not None:
        progress("done", len(selected), len(selected))
    ordered = sorted(findings, key=lambda f: severity_rank(f.severity))
    return DetectorRun(tuple(ordered), failed)


def run_detectors(
    ctx: DetectorContext, names: Sequence[str] | None = None, strict: bool = False
) -> list[Finding]:
    """Run the detectors and return their findings, most severe first.

    Args:
        ctx: the detector context.
        names: a subset of :data:`DETECTOR_NAMES` (default: all).
        strict: re-raise a detector's exception (tests) instead of logging and skipping it.

    Returns:
        The findings.
    """
    return list(run_all_detectors(ctx, names, strict).findings)


__all__ = [
    "DETECTORS",
    "DETECTOR_NAMES",
    "DetectorRun",
    "find_unsafe_ops",
    "refuse_unsafe",
    "run_all_detectors",
    "run_detectors",
]
