"""The Python API refuses unsafe models before running them, like the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from recadvisor import api
from recadvisor.errors import UnsafeModelError


@pytest.mark.parametrize("command", ["describe", "rebuild", "compare", "analyze"])
def test_api_refuses_unsafe_model_before_running_it(
    command: str, write_file_model: tuple[Path, Path], tmp_path: Path
) -> None:
    model, target = write_file_model
    calls = {
        "describe": lambda: api.describe(model),
        "rebuild": lambda: api.rebuild(model, tmp_path / "rebuilt"),
        "compare": lambda: api.compare(model, [model], requests=5, measure_memory=False),
        "analyze": lambda: api.analyze(model),
    }
    with pytest.raises(UnsafeModelError, match=rf"WriteFile.*--allow-unsafe-ops to {command}"):
        calls[command]()
    assert not target.exists()
    assert not (tmp_path / "rebuilt").exists()
