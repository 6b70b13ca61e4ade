"""The log files ``recadvisor stats`` reads: DATA arguments resolved to one list of files.

A DATA argument is a file, a folder (every data file below it, hidden files and Spark/Hadoop
markers such as ``_SUCCESS`` left out), or a glob (``logs/day=*/*.parquet``, ``**`` recursive).
All files must share one format: Parquet (``.parquet``, ``.pq``), CSV (``.csv``, ``.csv.gz``) or
JSON Lines (``.jsonl``, ``.json``, ``.ndjson``, optionally ``.gz``). Folders named ``key=value``
between a common root and the files are hive partitions: both engines read ``key`` as a column.

A URI with a scheme (``hdfs://``, ``s3a://``, ``gs://``, ``abfs://``...) is passed to Spark as it
is (``--engine spark`` only; its format comes from its extension, Parquet otherwise): the
fingerprint then lists the URIs without sizes.

Every problem a user can cause (a missing path, a glob matching nothing, an unreadable file,
mixed formats) is a :class:`~recadvisor.errors.DataError`, raised before any engine starts.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from recadvisor.data.readers import _FORMAT_ALIASES
from recadvisor.errors import DataError

#: extension (lower case, without ``.gz``) -> format the engines read (the sample readers' names)
FORMATS: dict[str, str] = {
    ext: fmt for ext, fmt in _FORMAT_ALIASES.items() if fmt in ("parquet", "csv", "jsonl")
}
_GZIP_OK = frozenset({"csv", "jsonl"})
_GLOB_CHARS = frozenset("*?[")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class DataFile:
    """One file of the dataset.

    Attributes:
        path: absolute path.
        size: bytes.
        mtime: modification time (seconds since the epoch).
    """

    path: str
    size: int
    mtime: float


@dataclass(frozen=True)
class Dataset:
    """The resolved DATA arguments.

    Attributes:
        files: every data file, sorted by path.
        format: ``parquet``, ``csv`` or ``jsonl``.
        root: the deepest folder holding every file (the base of hive partitions), or ``None``
            for a single file.
        partition_columns: hive partition keys found in the paths below ``root``.
        remote: the files are URIs only Spark reads (sizes unknown: 0).
    """

    files: tuple[DataFile, ...]
    format: str
    root: str | None
    partition_columns: tuple[str, ...]
    remote: bool = False

    @property
    def paths(self) -> list[str]:
        """The file paths."""
        return [f.path for f in self.files]

    @property
    def total_bytes(self) -> int:
        """Sum of the file sizes."""
        return sum(f.size for f in self.files)

    def digest(self) -> str:
        """SHA-256 over (path, size, mtime) of every file: changes when any file does."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{f.path}\0{f.size}\0{f.mtime:.6f}\n".encode())
        return h.hexdigest()


def file_format(path: str | Path) -> str | None:
    """The format of a data file from its name, or ``None`` when it is not a data file."""
    name = Path(path).name.lower()
    if name.startswith((".", "_")):
        return None
    parts = name.split(".")
    if len(parts) < 2:
        return None
    gz = parts[-1] == "gz"
    ext = parts[-2] if gz and len(parts) > 2 else parts[-1]
    fmt = FORMATS.get(ext)
    if fmt is None or (gz and fmt not in _GZIP_OK):
        return None
    return fmt


def _files_under(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        found.extend(Path(dirpath) / n for n in filenames if file_format(n) is not None)
    return found


def _expand(arg: str) -> list[Path]:
    if any(c in arg for c in _GLOB_CHARS):
        matches = sorted(glob.glob(arg, recursive=True))
        if not matches:
            raise DataError(f"data pattern '{arg}' matches no file; check the pattern")
        files: list[Path] = []
        for m in matches:
            p = Path(m)
            files.extend(_files_under(p) if p.is_dir() else [p] if file_format(p) else [])
        return files
    p = Path(arg)
    if not p.exists():
        raise DataError(f"data path not found: {arg}; check the path")
    if p.is_dir():
        files = _files_under(p)
        if not files:
            raise DataError(
                f"data folder '{arg}' holds no .parquet, .csv or .jsonl file; pass the folder "
                "of the logs"
            )
        return files
    if file_format(p) is None:
        raise DataError(
            f"cannot tell the format of data file {arg} from its name; rename it to .parquet, "
            ".csv or .jsonl"
        )
    return [p]


def _partition_columns(root: Path, files: list[Path]) -> tuple[str, ...]:
    keys: dict[str, None] = {}
    for f in files:
        for part in f.parent.relative_to(root).parts:
            if "=" in part:
                keys.setdefault(part.split("=", 1)[0], None)
    return tuple(keys)


def resolve_dataset(args: list[str] | tuple[str, ...]) -> Dataset:
    """Resolve DATA arguments (files, folders, globs) to a :class:`Dataset`.

    Args:
        args: the DATA arguments.

    Returns:
        The dataset.

    Raises:
        DataError: no argument, a missing path, a glob matching nothing, a folder without data
            files, an unreadable file, or files of more than one format.
    """
    if not args:
        raise DataError("no data given; pass the log files, folders or globs")
    uris = [str(a) for a in args if _URI.match(str(a))]
    if uris:
        if len(uris) != len(args):
            raise DataError("pass either local paths or URIs (hdfs://, s3a://...), not both")
        formats = sorted({file_format(u.rstrip("/")) or "parquet" for u in uris})
        if len(formats) > 1:
            raise DataError(f"the data mixes formats ({', '.join(formats)}); pass one format")
        return Dataset(
            files=tuple(DataFile(u, 0, 0.0) for u in uris),
            format=formats[0],
            root=None,
            partition_columns=(),
            remote=True,
        )
    paths: dict[Path, None] = {}
    for arg in args:
        for p in _expand(str(arg)):
            paths.setdefault(p.absolute(), None)
    files = sorted(paths)
    if not files:
        raise DataError(f"no data file found in {', '.join(map(str, args))}")
    formats = sorted({file_format(p) or "" for p in files})
    if len(formats) > 1:
        raise DataError(f"the data mixes formats ({', '.join(formats)}); pass files of one format")
    entries = []
    for p in files:
        if not os.access(p, os.R_OK):
            raise DataError(f"data file {p} is not readable (permission denied)")
        st = p.stat()
        entries.append(DataFile(str(p), int(st.st_size), float(st.st_mtime)))
    root = Path(os.path.commonpath([str(p.parent) for p in files]))
    while "=" in root.name:  # a partition folder is never the root: its key stays a column
        root = root.parent
    return Dataset(
        files=tuple(entries),
        format=formats[0],
        root=str(root),
        partition_columns=_partition_columns(root, files),
    )
