"""Zoo models for the CI subset, built once per test session by the libraries' own code.

Each model is built in its own subprocess (``python -m benchmarks.zoo.build``), exactly as
``benchmarks/zoo.py`` builds it, into a session temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.zoo.build import build_in_subprocess
from benchmarks.zoo.registry import by_name

#: The CI subset: three libraries / APIs and most of the zoo's patterns (see test_zoo_models).
CI_SUBSET = ("keras3_preprocessing", "tf1_session", "deepctr_din")


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder the CI subset is built into."""
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def zoo_model(zoo_root: Path):  # noqa: ANN201 - a fixture factory
    """``zoo_model(name)`` -> the built model's folder (built on first use, once per session).

    A build that fails fails the test with the builder's last error line (a missing zoo
    package, e.g. ``deepctr``, is such a failure: install ``.[zoo]``)."""
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            result = build_in_subprocess(by_name(name), zoo_root)
            assert result["ok"], f"building zoo model {name} failed: {result.get('error')}"
            built[name] = zoo_root / name
        return built[name]

    return get
