"""On zoo models: every exact suggestion whose pass is in ``fast`` is applied by
``rebuild --preset fast`` to (at least) the suggestion's targets (benchmarks/zoo/agreement.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.zoo.agreement import check_model
from tests.zoo.conftest import CI_SUBSET

# analyze (no profile) and a fast rebuild per model: ~1 min each on a shared 2-core box
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", CI_SUBSET)
def test_exact_suggestions_are_applied_by_fast(
    name: str,
    zoo_model,  # noqa: ANN001 - the conftest fixture factory
    tmp_path: Path,
) -> None:
    row = check_model(zoo_model(name), tmp_path)
    assert row["exact"], f"{name}: no exact suggestion for a fast pass"
    not_applied = [item for item in row["exact"] if not item["applied"]]
    assert not_applied == [], not_applied
    for refused in row["refused"]:
        assert "cannot rewrite" in refused["message"] and "(" in refused["message"]
