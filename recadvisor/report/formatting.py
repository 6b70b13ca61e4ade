"""Number formatting for the report views.

The views read the artifacts' dicts by their schemas' exact keys (see :mod:`recadvisor.schemas`);
what is left to tolerate is values: ``as_float("nan")`` is ``None``, and a ``None`` (a figure
the schema allows to be unknown) prints as "not measured". The ``fmt_*`` functions are also the
Jinja filters of the templates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

NOT_MEASURED = "not measured"
SEVERITY_ORDER = ("high", "medium", "low", "info")
MAX_LIST_ITEMS = 12
MAX_TEXT = 400


# --------------------------------------------------------------------------- small helpers
def as_float(value: Any) -> float | None:
    """A finite float, or ``None`` (bools, NaN, inf and non-numbers give ``None``)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt_bytes(value: Any) -> str:
    """``1536`` -> ``1.5 KiB``."""
    number = as_float(value)
    if number is None:
        return NOT_MEASURED
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(number) < 1024 or unit == "GiB":
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return f"{number:.1f} GiB"


def fmt_ms(value: Any) -> str:
    """Milliseconds with 3 significant digits (``0.234 ms``)."""
    number = as_float(value)
    if number is None:
        return NOT_MEASURED
    if number >= 100:
        return f"{number:,.0f} ms"
    return f"{number:.3g} ms"


def fmt_us(value: Any) -> str:
    """Microseconds (``12.3 µs``)."""
    number = as_float(value)
    if number is None:
        return NOT_MEASURED
    return f"{number:,.0f} µs" if number >= 100 else f"{number:.3g} µs"


def fmt_pct(value: Any, digits: int = 1) -> str:
    """A fraction as a percentage (``0.071`` -> ``7.1%``)."""
    number = as_float(value)
    if number is None:
        return NOT_MEASURED
    return f"{100.0 * number:.{digits}f}%"


def fmt_ratio(value: Any) -> str:
    """A ratio as ``0.64x``."""
    number = as_float(value)
    return NOT_MEASURED if number is None else f"{number:.2f}x"


def fmt_num(value: Any) -> str:
    """Integers with thousands separators, floats with 4 significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    number = as_float(value)
    if number is None:
        return NOT_MEASURED if value is None else str(value)
    if number == int(number) and abs(number) < 1e15:
        return f"{int(number):,}"
    if abs(number) >= 1e4:
        return f"{number:,.0f}"
    return f"{number:.4g}"


def fmt_diff(value: Any) -> str:
    """A max abs difference (``3.0e-07``)."""
    number = as_float(value)
    if number is None:
        return "inf" if value == float("inf") else NOT_MEASURED
    return "0" if number == 0 else f"{number:.1e}"


def fmt_shape(shape: Any) -> str:
    """``[None, 1]`` -> ``[N,1]``; unknown rank -> ``?``."""
    if not isinstance(shape, (list, tuple)):
        return "?"
    return "[" + ",".join("N" if d is None or d == -1 else str(d) for d in shape) + "]"


def truncate(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_value(key: str, value: Any, depth: int = 0) -> str:
    """Format any evidence value for a table cell, guided by its key's name.

    Keys naming ``bytes`` print as sizes, ``share``/``fraction`` as percentages, ``_ms`` and
    ``_us`` as times; lists are cut after a dozen items; nested dicts become ``k: v`` lists.

    Args:
        key: the value's key (its name picks the unit).
        value: any JSON value.
        depth: nesting level (deeper levels are summarized).

    Returns:
        Plain text (the template escapes it).
    """
    name = key.lower()
    if value is None:
        return NOT_MEASURED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if "bytes" in name:
            return fmt_bytes(value)
        if "diff" in name or name == "parity":
            return fmt_diff(value)
        if any(w in name for w in ("share", "fraction", "containment", "jaccard")):
            return fmt_pct(value)
        if name.endswith("_ms"):
            return fmt_ms(value)
        if name.endswith("_us"):
            return fmt_us(value)
        return fmt_num(value)
    if isinstance(value, str):
        return truncate(value)
    if isinstance(value, Mapping):
        if isinstance(value.get("summary"), str):  # e.g. a parity check's one-line verdict
            return truncate(value["summary"])
        if depth >= 2:
            return truncate("{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}")
        parts = []
        for k, v in list(value.items())[:MAX_LIST_ITEMS]:
            # batch-size keys ("256") take the unit of their parent key
            child = str(k) if not str(k).lstrip("-").isdigit() else key
            parts.append(f"{k}: {format_value(child, v, depth + 1)}")
        more = len(value) - MAX_LIST_ITEMS
        return truncate(", ".join(parts) + (f", … (+{more} more)" if more > 0 else ""))
    if isinstance(value, (list, tuple)):
        items = [format_value(key, v, depth + 1) for v in list(value)[:MAX_LIST_ITEMS]]
        more = len(value) - MAX_LIST_ITEMS
        return (
            truncate(", ".join(items) + (f", … (+{more} more)" if more > 0 else ""))
            if items
            else "none"
        )
    return truncate(str(value))


def key_label(key: str) -> str:
    """``rows_hit`` -> ``rows hit``."""
    return str(key).replace("_", " ")


def fields(data: Mapping[str, Any], skip: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(label, formatted value)`` for each key of ``data`` not in ``skip``."""
    skipped = set(skip)
    return [(key_label(k), format_value(str(k), v)) for k, v in data.items() if k not in skipped]


def severity_rank(severity: Any) -> int:
    """0 for ``high`` ... 3 for ``info``, 4 for anything else."""
    text = str(severity).lower()
    return SEVERITY_ORDER.index(text) if text in SEVERITY_ORDER else len(SEVERITY_ORDER)
