"""Render the HTML reports from the JSON dicts, with Jinja2 templates from ``templates/``.

Each report is one self-contained file: CSS and scripts inline, charts drawn by the plotly.js
bundle inlined once (only in reports that have charts), no CDN, no font or image fetched, so it
opens offline and prints. Autoescaping is on for every template: model-supplied names (nodes,
features, paths) are always shown as text.

Templates live in the repository's top-level ``templates/`` folder, the single source of truth.
``recadvisor/report/_templates`` is a symlink to it, listed as package data, so a built wheel
carries real copies and an editable install reads the folder itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from markupsafe import Markup, escape

from recadvisor.output import write_text_atomic
from recadvisor.report import charts, formatting
from recadvisor.report.analysis_view import analysis_view
from recadvisor.report.compare_view import comparison_view
from recadvisor.report.index_view import IndexEntry, index_view

log = logging.getLogger(__name__)

ANALYSIS_TEMPLATE = "analysis.html.j2"
COMPARE_TEMPLATE = "compare.html.j2"
INDEX_TEMPLATE = "index.html.j2"
_PACKAGED_TEMPLATES = Path(__file__).parent / "_templates"
_CHECKOUT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def templates_dir() -> Path:
    """The folder holding the report templates.

    The packaged copy (``recadvisor/report/_templates``: a symlink to ``templates/`` in a
    checkout, real files in a wheel) is preferred; a checkout without symlinks falls back to the
    top-level ``templates/``.

    Raises:
        FileNotFoundError: neither holds ``analysis.html.j2`` (a broken installation).
    """
    for candidate in (_PACKAGED_TEMPLATES, _CHECKOUT_TEMPLATES):
        if (candidate / ANALYSIS_TEMPLATE).is_file():
            return candidate
    raise FileNotFoundError(
        f"report templates not found in {_PACKAGED_TEMPLATES} or {_CHECKOUT_TEMPLATES}; "
        "reinstall recadvisor (pip install --force-reinstall recadvisor)"
    )


def code_spans(text: Any) -> Markup:
    """Escape ``text`` and show its `backticked` parts as ``<code>`` (messages use them)."""
    parts = str(escape(str(text))).split("`")
    if len(parts) < 3:
        return Markup("`".join(parts))  # noqa: S704 - every part was escaped above
    out = [parts[0]]
    for i in range(1, len(parts), 2):
        if i + 1 < len(parts):
            out.append(f"<code>{parts[i]}</code>{parts[i + 1]}")
        else:  # an unpaired backtick stays as typed
            out.append("`" + parts[i])
    return Markup("".join(out))  # noqa: S704 - every part was escaped above


def _na(value: Any) -> bool:
    return value is None or value == formatting.NOT_MEASURED


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the reports: autoescape on, number filters registered."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.ChainableUndefined,
    )
    env.filters.update(
        {
            "bytes": formatting.fmt_bytes,
            "ms": formatting.fmt_ms,
            "us": formatting.fmt_us,
            "pct": formatting.fmt_pct,
            "ratio": formatting.fmt_ratio,
            "num": formatting.fmt_num,
            "diff": formatting.fmt_diff,
            "label": formatting.key_label,
            "code": code_spans,
        }
    )
    env.tests["na"] = _na
    return env


def _page_context(title: str, view: Mapping[str, Any]) -> dict[str, Any]:
    """Context shared by every page; plotly.js is inlined only when the page has a chart."""
    has_chart = _has_chart(view)
    try:
        from importlib.metadata import version

        rec_version = version("recadvisor")
    except Exception:  # noqa: BLE001 - the version is decoration only
        rec_version = ""
    return {
        "page_title": title,
        "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "version": rec_version,
        "plotly_js": Markup(charts.plotly_js()) if has_chart else None,  # noqa: S704 - bundled lib
        "view": view,
    }


def _has_chart(value: Any) -> bool:
    if isinstance(value, charts.Chart):
        return True
    if isinstance(value, Mapping):
        return any(_has_chart(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_chart(v) for v in value)
    return False


def _write(template: str, context: Mapping[str, Any], out_path: Path) -> Path:
    html = environment().get_template(template).render(**context)
    write_text_atomic(out_path, html)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out_path, 0o666 & ~umask)  # a report is meant to be shared (mkstemp gives 0600)
    log.info("wrote %s (%d KiB)", out_path, len(html.encode("utf-8")) // 1024)
    return out_path


def _as_mapping(data: Any) -> Any:
    """A result object (``Analysis``, ``Comparison``, ``RebuildResult``) -> its ``to_dict()``."""
    return data.to_dict() if hasattr(data, "to_dict") and not isinstance(data, Mapping) else data


def _target(out_path: str | Path, default_name: str) -> Path:
    path = Path(out_path)
    return path / default_name if path.is_dir() else path


def render_analysis(analysis: Mapping[str, Any], out_path: str | Path) -> Path:
    """Write the analysis report (``report.html``) for an ``Analysis.to_dict()``.

    Args:
        analysis: the analysis dict (or the ``Analysis`` itself); missing sections are shown
            as "not measured".
        out_path: the HTML file to write (a directory gets ``report.html`` inside it).

    Returns:
        The path written.
    """
    view = analysis_view(_as_mapping(analysis))
    title = f"recadvisor analysis: {view['name']}"
    return _write(ANALYSIS_TEMPLATE, _page_context(title, view), _target(out_path, "report.html"))


def render_comparison(
    comparison: Mapping[str, Any], out_path: str | Path, rebuild: Mapping[str, Any] | None = None
) -> Path:
    """Write the comparison report (``compare.html``) for a ``Comparison.to_dict()``.

    Args:
        comparison: the comparison dict; missing parts are shown as "not measured".
        out_path: the HTML file to write (a directory gets ``compare.html`` inside it).
        rebuild: the ``rebuild.json`` dict, to list the passes applied, refused and rolled back.

    Returns:
        The path written.
    """
    view = comparison_view(_as_mapping(comparison), _as_mapping(rebuild))
    name = str(view["baseline"] or "models").rstrip("/").split("/")[-1]
    title = f"recadvisor comparison: {name}"
    return _write(COMPARE_TEMPLATE, _page_context(title, view), _target(out_path, "compare.html"))


def _relative_href(target: Any, base_dir: Path) -> str | None:
    """A link to a local report, relative to the index; ``None`` for anything non-local."""
    if not target:
        return None
    text = str(target)
    parts = urlsplit(text)
    if parts.scheme and len(parts.scheme) > 1:  # http:, javascript:, file: ... (not C:\\)
        return None
    path = Path(text)
    if path.is_absolute():
        try:
            rel = Path(_relpath(path, base_dir))
        except ValueError:  # another drive
            return None
    else:
        rel = path
    return "/".join(quote(p) for p in PurePosixPath(rel.as_posix()).parts)


def _relpath(path: Path, base: Path) -> str:
    return os.path.relpath(path.resolve(), base.resolve())


def render_index(entries: Sequence[IndexEntry], out_path: str | Path) -> Path:
    """Write ``reports/index.html``: what each model gained, then links to its reports.

    Args:
        entries: one :class:`~recadvisor.report.index_view.IndexEntry` per model: its name,
            ``analysis.json`` and ``compare.json`` dicts and the paths of its two HTML reports
            (absolute or relative to the index; non-local URLs are shown as text, not linked).
        out_path: the HTML file to write (a directory gets ``index.html`` inside it).

    Returns:
        The path written.
    """
    target = _target(out_path, "index.html")
    base = target.parent
    view = index_view(entries, lambda path: _relative_href(path, base))
    return _write(
        INDEX_TEMPLATE, _page_context("recadvisor: what the rebuilds gained", view), target
    )
