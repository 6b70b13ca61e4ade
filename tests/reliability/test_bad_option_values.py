"""Option values checked inside a command (batch sizes, devices) are usage errors, as Click
reports them for every other bad option: exit 2 and the reason, not an "internal error"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.conftest import RunCli


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("--batch-sizes", "1,x", "positive integers"),
        ("--devices", "tpu", "unknown device(s) tpu"),
    ],
)
def test_bad_option_value_is_a_usage_error(
    ranker_dir: Path, run_cli: RunCli, option: str, value: str, reason: str
) -> None:
    result = run_cli("compare", ranker_dir, ranker_dir, option, value, "--no-memory")
    assert result.exit_code == 2
    assert reason in result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
