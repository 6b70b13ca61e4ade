"""Atomic output directories: write to a temp dir beside the target, then rename into place."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recadvisor.errors import OutputExistsError, OutputWriteError, RecAdvisorError


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
    if not probe.is_dir():
        raise OutputExistsError(
            f"cannot write under '{probe}': it is a file, not a folder; choose another --out"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputExistsError(f"cannot write to '{probe}': permission denied")
    return p


# errno values that mean "the output cannot be written here", not a bug
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)
# the same conditions as TensorFlow's file system reports them (not as OSError)
_WRITE_ERROR_TEXTS = ("No space left on device", "Disk quota exceeded", "Read-only file system")


def write_failure(error: BaseException) -> str | None:
    """Why writing failed, when ``error`` means the output location cannot take the files.

    Args:
        error: an exception raised while writing output.

    Returns:
        A short reason (e.g. ``No space left on device``), or ``None`` for any other error.
    """
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        return error.strerror or os.strerror(error.errno)
    text = str(error)
    return next((t for t in _WRITE_ERROR_TEXTS if t in text), None)


def _created_parents(path: Path) -> list[Path]:
    """The missing ancestors of ``path``, deepest first (what ``mkdir(parents=True)`` creates)."""
    missing = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def _remove_empty(dirs: list[Path]) -> None:
    for d in dirs:  # deepest first
        try:
            d.rmdir()
        except OSError:
            return


@contextmanager
def atomic_output_dir(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temp directory that replaces ``path`` only when the block succeeds.

    On any error (Ctrl-C included) the temp directory and any parent folders created for it
    are removed and ``path`` is untouched.

    Args:
        path: the final directory.
        force: replace an existing ``path``.

    Raises:
        OutputExistsError: see :func:`check_output_dir`.
        OutputWriteError: the files could not be written (disk full, read-only file system).
    """
    final = check_output_dir(path, force)
    created = _created_parents(final.absolute())
    tmp: Path | None = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        yield tmp
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.rename(final, old / "x")
            try:
                os.rename(tmp, final)
            except BaseException:
                os.rename(old / "x", final)  # put the previous output back
                old.rmdir()
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    except BaseException as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        reason = None if isinstance(e, RecAdvisorError) else write_failure(e)
        if reason is not None:
            way_out = "free space or " if "space" in reason or "quota" in reason else ""
            raise OutputWriteError(
                f"cannot write output '{final}': {reason}; nothing was written; {way_out}"
                "choose another --out"
            ) from e
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
