"""Tiny sample models, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from recadvisor.samples import SampleResult, build_samples

TINY_ROWS = 2000
SEED = 0


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder holding the three tiny samples built with :data:`SEED`."""
    return tmp_path_factory.mktemp("samples_a")


@pytest.fixture(scope="session")
def tiny_samples(tiny_root: Path) -> dict[str, SampleResult]:
    """The three samples (size tiny, 2000 rows, seed 0), by name."""
    results = build_samples(tiny_root, rows=TINY_ROWS, seed=SEED, size="tiny")
    return {r.name: r for r in results}


@pytest.fixture(scope="session")
def tiny_samples_again(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SampleResult]:
    """A second build with the same arguments, in another folder (for determinism checks)."""
    root = tmp_path_factory.mktemp("samples_b")
    results = build_samples(root, rows=TINY_ROWS, seed=SEED, size="tiny")
    return {r.name: r for r in results}
