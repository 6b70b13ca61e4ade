"""Suite-wide policy: in CI (``CI=true``) a skipped test is a failure.

A test that skips because a package or program is missing would hide a missing install step, so
under CI every skip fails unless the test is marked ``optional_integration`` (an integration
README lists as optional, e.g. tensorflow-recommenders) or its reason is one of
``ALLOWED_SKIP_REASONS`` (facts of the machine that no install step changes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

ALLOWED_SKIP_REASONS = (
    "permissions do not bind root",  # chmod-based cases cannot fail for root
)


def in_ci() -> bool:
    """True when the suite runs under CI (``CI`` set to a true value)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "optional_integration: may skip in CI (an optional integration listed in README)",
    )


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    if item.get_closest_marker("optional_integration") is not None:
        return
    reason = _skip_reason(report)
    if any(reason.startswith(allowed) for allowed in ALLOWED_SKIP_REASONS):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped in CI, which hides a missing install step: {reason}"
