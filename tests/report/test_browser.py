"""Open the generated reports in headless Chromium (DevTools protocol).

Each report (analysis, comparison and the index page) must load with no console error, no
uncaught exception and no network request, draw every chart (plotly adds ``.js-plotly-plot``
and ``svg.main-svg``), keep model-supplied ``<script>`` names inert, and sort its tables.
Screenshots go to ``test-artifacts/``.
Skipped when Chromium (``apt-get install chromium``) is missing, which fails under CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recadvisor.report import render_analysis, render_comparison, render_index
from tests.report import fixtures
from tests.report.browser import PageRun, find_chromium, open_report

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.slow,  # starts Chromium for every report
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium not installed (apt-get install chromium)"
    ),
]

XSS_PROBE = "window.__xss === undefined ? null : window.__xss"
PAYLOAD_SHOWN = f"document.body.innerText.includes({fixtures.XSS!r})"
SORT_OP_TABLE = """(() => {
  const table = document.getElementById('op-table');
  const header = table.tHead.rows[0].cells[4];   // "µs @1"
  const first = () => table.tBodies[0].rows[0].cells[0].firstChild.textContent.trim();
  header.click(); const ascending = first();
  header.click(); const descending = first();
  return [ascending, descending, header.getAttribute('aria-sort')];
})()"""


def check_clean(run: PageRun, min_charts: int) -> None:
    assert run.errors == [], run.errors
    assert run.network_requests == [], run.network_requests
    assert any(u.startswith("file:") for u in run.requests)  # the monitor saw the page load
    assert run.charts["specs"] >= min_charts
    assert run.charts["drawn"] == run.charts["specs"] == run.charts["plots"], run.charts
    assert run.screenshot is not None and run.screenshot.stat().st_size > 10_000


def test_analysis_report_in_browser(tmp_path: Path, artifacts_dir: Path) -> None:
    out = render_analysis(fixtures.analysis_dict(), tmp_path / "report.html")
    run = open_report(
        out,
        screenshot=artifacts_dir / "report_analysis.png",
        pdf=artifacts_dir / "report_analysis.pdf",
        evaluate={"xss": XSS_PROBE, "shown": PAYLOAD_SHOWN, "sort": SORT_OP_TABLE},
        chromium=CHROMIUM,
    )
    check_clean(run, min_charts=7)
    assert run.pdf_pages is not None and run.pdf_pages >= 3  # prints, on several A4 pages
    assert run.values["xss"] is None  # no injected script or handler ran
    assert run.values["shown"] is True  # ...and the name is visible as text
    ascending, descending, state = run.values["sort"]
    assert (ascending, descending, state) == ("score", fixtures.EVIL_NODE, "descending")


def test_comparison_report_in_browser(tmp_path: Path, artifacts_dir: Path) -> None:
    out = render_comparison(
        fixtures.comparison_dict(), tmp_path / "compare.html", rebuild=fixtures.rebuild_dict()
    )
    run = open_report(
        out,
        screenshot=artifacts_dir / "report_compare.png",
        evaluate={"xss": XSS_PROBE, "shown": PAYLOAD_SHOWN},
        chromium=CHROMIUM,
    )
    check_clean(run, min_charts=6)
    assert run.values == {"xss": None, "shown": True}


def test_real_analysis_report_in_browser(
    tmp_path: Path, artifacts_dir: Path, real_analysis: dict
) -> None:
    out = render_analysis(real_analysis, tmp_path / "report.html")
    run = open_report(out, screenshot=artifacts_dir / "report_real_analysis.png", chromium=CHROMIUM)
    check_clean(run, min_charts=5)


def test_index_page_in_browser(tmp_path: Path, artifacts_dir: Path) -> None:
    """The landing page: its chart across models drawn offline, names kept inert, the gains
    table sortable."""
    index = render_index(fixtures.index_entries(), tmp_path / "index.html")
    sort_gains = """(() => {
      const table = document.getElementById('gains-table');
      const header = table.tHead.rows[0].cells[2];   // "p50 vs baseline @1"
      header.click();
      return header.getAttribute('aria-sort');
    })()"""
    run = open_report(
        index,
        screenshot=artifacts_dir / "report_index.png",
        evaluate={"xss": XSS_PROBE, "shown": PAYLOAD_SHOWN, "sort": sort_gains},
        chromium=CHROMIUM,
    )
    check_clean(run, min_charts=1)
    assert run.values["xss"] is None and run.values["shown"] is True
    assert run.values["sort"] in ("ascending", "descending")


def test_the_monitor_catches_requests_and_errors(tmp_path: Path) -> None:
    """The checks above can fail: a page that fetches and logs an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">'
        '<img src="http://127.0.0.1:9/pixel.png">'
        '<script>console.error("boom"); undefinedFunction();</script>'
    )
    run = open_report(page, chromium=CHROMIUM)
    assert run.network_requests == ["http://127.0.0.1:9/pixel.png"]
    assert any("boom" in e for e in run.console_errors)
    assert any("undefinedFunction" in e for e in run.exceptions)


def test_real_comparison_report_in_browser(
    tmp_path: Path, artifacts_dir: Path, real_comparison: tuple[dict, dict]
) -> None:
    comparison, rebuild = real_comparison
    out = render_comparison(comparison, tmp_path / "compare.html", rebuild=rebuild)
    run = open_report(out, screenshot=artifacts_dir / "report_real_compare.png", chromium=CHROMIUM)
    check_clean(run, min_charts=5)
