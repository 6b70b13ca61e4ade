"""Atomic output directories: write to a temp dir beside the target, then rename into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recadvisor.errors import OutputExistsError


def check_output_dir(path: str | Path, force: bool) -> Path:
    """Refuse an existing output without ``force`` and an unwritable parent, before any work.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false, or its parent is not writable.
    """
    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError(f"output '{p}' already exists; pass --force to replace it")
    if p.exists() and not p.is_dir():
        raise OutputExistsError(f"output '{p}' exists and is not a directory")
    parent = p.resolve().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputExistsError(f"cannot write to '{probe}': permission denied")
    return p


@contextmanager
def atomic_output_dir(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temp directory that replaces ``path`` only when the block succeeds.

    On any error (Ctrl-C included) the temp directory is removed and ``path`` is untouched.

    Args:
        path: the final directory.
        force: replace an existing ``path``.

    Raises:
        OutputExistsError: see :func:`check_output_dir`.
    """
    final = check_output_dir(path, force)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.rename(final, old / "x")
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file via a temp file and rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
