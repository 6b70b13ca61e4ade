"""TF1 signature keys that are not valid TensorFlow names (``out"'&``, ``<script>...``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recadvisor import api
from recadvisor.errors import ExportError
from tests.reliability import models
from tests.reliability.conftest import RunCli

ODD_OUTPUT = f"out{models.QUOTES}"


@pytest.fixture(scope="module")
def odd_output_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid input key next to an output key that is not a valid op name."""
    return models.build_tf1_ranker(tmp_path_factory.mktemp("odd") / "model", "user", ODD_OUTPUT)


def test_analyze_profiles_a_model_with_odd_keys(tf1_dir: Path) -> None:
    result = api.analyze(tf1_dir, batch_sizes=(1,))
    assert result.to_dict()["signature"]["outputs"].keys() == {ODD_OUTPUT}


def test_rebuild_keeps_an_odd_output_key(odd_output_dir: Path, tmp_path: Path) -> None:
    result = api.rebuild(odd_output_dir, tmp_path / "out").to_dict()
    assert result["parity"]["final_vs_original"]["max_abs_diff"] <= 1e-6
    assert list(api.describe(tmp_path / "out" / "saved_model").signature["outputs"]) == [ODD_OUTPUT]


def test_an_input_key_tf2_cannot_carry_is_a_clear_export_error(
    tf1_dir: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    with pytest.raises(ExportError, match="cannot be kept in a TensorFlow 2 SavedModel"):
        api.rebuild(tf1_dir, tmp_path / "out")
    result = run_cli("rebuild", tf1_dir, "--out", tmp_path / "cli")
    assert result.exit_code == 9
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "cli").exists()


def test_an_input_key_that_is_no_op_name_but_a_valid_argument_is_kept(tmp_path: Path) -> None:
    """``user-id`` is not a TF op name, yet TF2 keeps it as a signature argument name."""
    model = models.build_tf1_ranker(tmp_path / "model", "user-id", "score")
    api.rebuild(model, tmp_path / "out")
    assert list(api.describe(tmp_path / "out" / "saved_model").signature["inputs"]) == ["user-id"]
