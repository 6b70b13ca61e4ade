"""The detector registry: order, strictness, JSON."""

from __future__ import annotations

import json

import pytest

from recadvisor.analysis.detectors import (
    DETECTOR_NAMES,
    run_all_detectors,
    run_detectors,
)
from recadvisor.analysis.findings import FINDING_KINDS, SEVERITIES, severity_rank


def test_registry_order():
    assert DETECTOR_NAMES == (
        "unsafe_ops",
        "string_ops",
        "numeric_as_string",
        "embeddings",
        "duplicates",
        "shared_embeddings",
        "unused",
        "per_request",
    )


def test_clean_model_has_no_findings(clean):
    assert run_detectors(clean.context(), strict=True) == []


def test_ranker_findings_sorted_and_serializable(ranker):
    calls = []
    run = run_all_detectors(
        ranker.context(), strict=True, progress=lambda name, i, n: calls.append((name, i, n))
    )
    assert not run.failed and calls[0] == ("unsafe_ops", 0, 8) and calls[-1] == ("done", 8, 8)
    ranks = [severity_rank(f.severity) for f in run.findings]
    assert ranks == sorted(ranks)
    assert {f.kind for f in run.findings} <= set(FINDING_KINDS)
    assert {f.severity for f in run.findings} <= set(SEVERITIES)
    text = json.dumps(run.to_dict())
    assert "numeric_as_string" in text and "shared_embedding_candidate" in text


def test_a_crashing_detector_is_skipped_unless_strict(ranker, monkeypatch):
    from recadvisor.analysis.detectors import embeddings

    def boom(ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(embeddings, "detect", boom)
    run = run_all_detectors(ranker.context())
    assert run.failed == {"embeddings": "RuntimeError: boom"}
    assert run.findings  # the others still ran
    with pytest.raises(RuntimeError):
        run_detectors(ranker.context(), strict=True)
    with pytest.raises(ValueError, match="unknown detectors"):
        run_detectors(ranker.context(), names=["nope"])
