"""A minimal HTML page for a JSON payload, used when the report package is unavailable."""

from __future__ import annotations

import html
import json
from pathlib import Path


def render_json_page(title: str, payload: dict, path: Path) -> Path:
    """Write ``payload`` as escaped, pretty-printed JSON inside a small HTML page."""
    body = html.escape(json.dumps(payload, indent=2, default=str))
    path.write_text(
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><pre>{body}</pre>",
        encoding="utf-8",
    )
    return path
