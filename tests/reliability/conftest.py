"""Session fixtures for the reliability tests: tiny models, data and plan files, a CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from recadvisor.cli import app
from tests.reliability import models

RunCli = Callable[..., Result]


@pytest.fixture(scope="session")
def ranker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.build_ranker(tmp_path_factory.mktemp("ranker") / "model")


@pytest.fixture(scope="session")
def ranker_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sample.parquet"
    models.ranker_frame().to_parquet(path)
    return path


@pytest.fixture(scope="session")
def tf1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.build_tf1_ranker(
        tmp_path_factory.mktemp("tf1") / "model", models.XSS, f"out{models.QUOTES}"
    )


@pytest.fixture(scope="session")
def write_file_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model dir, the file the model writes when it runs: absent until then)."""
    root = tmp_path_factory.mktemp("unsafe")
    target = root / "written_by_model.txt"
    return models.build_write_file(root / "model", target), target


@pytest.fixture(scope="session")
def plans(
    ranker_dir: Path, tf1_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Plan files: ``safe`` (fits the ranker), ``other_model``, ``unknown_pass``, ``bad_param``."""
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model
    from recadvisor.plan import PlanEntry, preset_plan, save_plan

    root = tmp_path_factory.mktemp("plans")
    safe = preset_plan("safe", freeze(load_model(ranker_dir)), model_path=str(ranker_dir))
    return {
        "safe": save_plan(safe, root / "safe.yaml"),
        "other_model": save_plan(
            preset_plan("safe", freeze(load_model(tf1_dir))), root / "other.yaml"
        ),
        "unknown_pass": save_plan(
            safe.with_entry(PlanEntry("make_it_fast")), root / "unknown.yaml"
        ),
        "bad_param": save_plan(
            safe.with_entry(PlanEntry("strip_control_deps", True, {"level": 2})), root / "bad.yaml"
        ),
        "rollback": save_plan(
            safe.with_entry(
                PlanEntry(
                    "quantize_embeddings",
                    True,
                    {"dtype": "int8", "min_bytes": 0, "max_abs_diff": 1e-12},
                )
            ),
            root / "rollback.yaml",
        ),
    }


@pytest.fixture(scope="session")
def run_cli() -> RunCli:
    """``run_cli(*args, env=None)``: the real CLI in process; stdout and stderr kept apart."""
    runner = CliRunner()

    def invoke(*args: object, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, [str(a) for a in args], env=env)

    return invoke
