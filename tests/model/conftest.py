from __future__ import annotations

from pathlib import Path

import pytest

from tests.model import builders


@pytest.fixture(scope="session")
def tf2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return builders.build_tf2_module(tmp_path_factory.mktemp("tf2") / "model")


@pytest.fixture(scope="session")
def tf1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return builders.build_tf1_estimator_style(tmp_path_factory.mktemp("tf1") / "model")


@pytest.fixture(scope="session")
def keras3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return builders.build_keras3_export(tmp_path_factory.mktemp("keras3") / "model")
