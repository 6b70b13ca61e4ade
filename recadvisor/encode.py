"""Encode raw inputs for a rebuilt model whose input contract changed.

A rebuild that moves string hashing upstream (``ids_upstream``) or sends per-request inputs once
(``per_request_dedup``) writes ``feature_contract.json`` next to the rebuilt SavedModel. The
functions here read it and compute the new inputs exactly as the original TensorFlow graph did:

* :func:`encode_inputs` (``recadvisor.encode_inputs``): a dict of raw values -> a dict of numpy
  arrays to feed the rebuilt signature;
* :func:`encode_file` (``recadvisor encode REBUILT_DIR --data F --out G``): a Parquet / CSV /
  JSONL / NPZ / TFRecord file -> a Parquet or NPZ file of model inputs (other columns, e.g.
  labels, pass through).

No TensorFlow is needed: hashing is our own FarmHash Fingerprint64.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recadvisor.errors import DataError, OutputExistsError, PlanError
from recadvisor.model.spec import SignatureSpec, TensorInfo
from recadvisor.rewrite.base import InputEncoding
from recadvisor.rewrite.encodings import CONTRACT_FILE, encode_feeds, read_feature_contract

log = logging.getLogger(__name__)

OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}
_NUMERIC_DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    }
)


@dataclass(frozen=True)
class FeatureContract:
    """``feature_contract.json`` parsed.

    Attributes:
        encodings: the encodings, in the order they apply.
        signature: the rebuilt model's signature (what the encoded inputs must match), if stored.
        raw_signature: the signature clients' raw data follows (the original model's).
    """

    encodings: tuple[InputEncoding, ...]
    signature: SignatureSpec | None
    raw_signature: SignatureSpec | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "encodings": [e.to_dict() for e in self.encodings],
            "signature": None if self.signature is None else self.signature.to_dict(),
            "raw_signature": None if self.raw_signature is None else self.raw_signature.to_dict(),
        }


@dataclass(frozen=True)
class EncodeFileResult:
    """What :func:`encode_file` wrote.

    Attributes:
        out_path: the written file.
        format: ``parquet`` or ``npz``.
        rows: rows read.
        encoded: inputs that were encoded.
        passed_through: other columns copied unchanged.
    """

    out_path: str
    format: str
    rows: int
    encoded: tuple[str, ...]
    passed_through: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``recadvisor encode --json``)."""
        return {
            "out_path": self.out_path,
            "format": self.format,
            "rows": self.rows,
            "encoded": list(self.encoded),
            "passed_through": list(self.passed_through),
        }


def _raw_signature(
    doc: Mapping[str, Any], signature: SignatureSpec | None, encodings: tuple[InputEncoding, ...]
) -> SignatureSpec | None:
    if isinstance(doc.get("original_signature"), dict):
        return SignatureSpec.from_dict(doc["original_signature"])
    if signature is None:
        return None
    first = {}
    for enc in encodings:
        first.setdefault(enc.input_key, enc)
    inputs = {}
    for key, info in signature.inputs.items():
        enc = first.get(key)
        shape = info.shape
        if any(e.kind == "broadcast" for e in encodings if e.input_key == key) and shape:
            shape = (None, *shape[1:])
        inputs[key] = TensorInfo(key, enc.source_dtype if enc else info.dtype, shape)
    return SignatureSpec(signature.key, inputs, dict(signature.outputs))


def load_feature_contract(rebuilt_dir: str | Path) -> FeatureContract:
    """Read ``feature_contract.json`` from a rebuilt model directory (or the file itself).

    Args:
        rebuilt_dir: the directory ``recadvisor rebuild --out`` wrote.

    Returns:
        A :class:`FeatureContract`.

    Raises:
        PlanError: there is no contract (the rebuild kept the original inputs) or it is
            malformed.
    """
    p = Path(rebuilt_dir)
    if not p.exists():
        raise PlanError(
            f"rebuilt model directory '{p}' does not exist; pass the --out folder "
            "of recadvisor rebuild"
        )
    encodings, doc = read_feature_contract(p)
    try:
        signature = (
            SignatureSpec.from_dict(doc["signature"])
            if isinstance(doc.get("signature"), dict)
            else None
        )
        raw = _raw_signature(doc, signature, tuple(encodings))
    except (KeyError, TypeError, ValueError) as e:
        raise PlanError(
            f"'{p}/{CONTRACT_FILE}' has a malformed signature ({e}); re-run recadvisor rebuild"
        ) from e
    return FeatureContract(tuple(encodings), signature, raw)


def _as_array(key: str, value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "to_numpy"):  # pandas Series
        return _as_array(key, value.to_numpy())
    if isinstance(value, (str, bytes)):
        return np.array([value], dtype=object)
    try:
        arr = np.asarray(value)
    except ValueError as e:
        raise DataError(f"input '{key}' is ragged; pad its rows to one length first") from e
    return arr.astype(object) if arr.dtype.kind == "U" else arr


def _fit_rank(key: str, value: np.ndarray, info: TensorInfo | None) -> np.ndarray:
    """``[N]`` <-> ``[N,1]`` to the rank the rebuilt signature declares; numbers to its dtype."""
    if info is None:
        return value
    if value.dtype.kind in "biuf" and info.dtype in _NUMERIC_DTYPES:
        value = value.astype(np.dtype(info.dtype))
    if info.shape is None or value.ndim == len(info.shape):
        return value
    if value.ndim == len(info.shape) - 1 and info.shape[-1] == 1:
        return value.reshape(*value.shape, 1)
    if value.ndim == len(info.shape) + 1 and value.shape[-1] == 1:
        return value.reshape(value.shape[:-1])
    raise DataError(
        f"input '{key}' has shape {value.shape}; the rebuilt model takes {info.shape_str()}"
    )


def encode_inputs(rebuilt_dir: str | Path, raw_inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Compute the rebuilt model's inputs from raw ones, exactly as the original graph did.

    Args:
        rebuilt_dir: the directory ``recadvisor rebuild --out`` wrote (holds
            ``feature_contract.json``).
        raw_inputs: input key -> raw values in the original contract (strings, numbers, lists,
            numpy arrays or pandas Series; one row per example).

    Returns:
        input key -> numpy array for the rebuilt signature (inputs with no encoding pass through;
        numbers are cast to the declared dtype and ``[N]`` <-> ``[N,1]`` reshaped to its rank).

    Raises:
        PlanError: no or malformed ``feature_contract.json``.
        DataError: an encoded input is missing or holds values that cannot be encoded.
    """
    contract = load_feature_contract(rebuilt_dir)
    arrays = {k: _as_array(k, v) for k, v in raw_inputs.items()}
    missing = sorted({e.input_key for e in contract.encodings} - set(arrays))
    if missing:
        raise DataError(
            f"raw inputs lack {', '.join(missing)}, which the rebuilt model needs "
            "encoded; pass them"
        )
    encoded = encode_feeds(contract.encodings, arrays)
    sig = contract.signature.inputs if contract.signature else {}
    return {k: _fit_rank(k, v, sig.get(k)) for k, v in encoded.items()}


def _output_format(out_path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(out_path.suffix.lower())
    if fmt is None:
        raise DataError(f"cannot write '{out_path}': name it .parquet or .npz")
    return fmt


def _write_parquet(path: Path, columns: Mapping[str, np.ndarray], rows: int) -> None:
    import pandas as pd

    data: dict[str, Any] = {}
    for key, arr in columns.items():
        if arr.ndim == 2 and arr.shape[1] == 1:  # [N,1] is one value per row
            arr = arr[:, 0]
        data[key] = list(arr.tolist()) if arr.ndim > 1 else arr
    frame = pd.DataFrame(data, index=pd.RangeIndex(rows))
    frame.to_parquet(path, index=False)


def _write_npz(path: Path, columns: Mapping[str, np.ndarray]) -> None:
    safe: dict[str, np.ndarray] = {}
    for key, arr in columns.items():
        if arr.dtype == object:
            try:
                arr = np.array(
                    [v.decode("utf-8") if isinstance(v, bytes) else v for v in arr.reshape(-1)],
                    dtype=str,
                ).reshape(arr.shape)
            except (UnicodeDecodeError, TypeError, ValueError) as e:
                raise DataError(
                    f"column '{key}' cannot be stored in .npz without pickling "
                    f"({e}); write .parquet instead"
                ) from e
        safe[key] = arr
    with open(path, "wb") as fh:
        np.savez(fh, **safe)


def encode_file(
    rebuilt_dir: str | Path,
    data_path: str | Path,
    out_path: str | Path,
    force: bool = False,
    fmt: str | None = None,
) -> EncodeFileResult:
    """Encode a data file for a rebuilt model (``recadvisor encode``).

    Args:
        rebuilt_dir: the directory ``recadvisor rebuild --out`` wrote.
        data_path: raw data (Parquet, CSV, JSONL, NPZ or TFRecord; one column per input).
        out_path: ``.parquet`` (``[N,1]`` inputs as plain columns, longer rows as lists) or
            ``.npz`` (arrays in the rebuilt model's shapes) file to write, atomically.
        force: replace an existing ``out_path``.
        fmt: input format override (see :func:`recadvisor.data.readers.read_table`).

    Returns:
        An :class:`EncodeFileResult`.

    Raises:
        PlanError: no or malformed ``feature_contract.json``.
        DataError: unreadable data, missing columns, values that cannot be encoded, or
            per-request (``broadcast``) inputs written to Parquet.
        OutputExistsError: ``out_path`` exists and ``force`` is false.
    """
    from recadvisor.data.coerce import to_feeds
    from recadvisor.data.readers import read_table

    out = Path(out_path)
    out_fmt = _output_format(out)
    if out.exists() and not force:
        raise OutputExistsError(f"output '{out}' already exists; pass --force to replace it")
    contract = load_feature_contract(rebuilt_dir)
    frame = read_table(data_path, fmt)
    rows = len(frame.index)
    encoded_keys = list(dict.fromkeys(e.input_key for e in contract.encodings))
    if contract.raw_signature is not None:
        wanted = {k: v for k, v in contract.raw_signature.inputs.items() if k in frame.columns}
        missing = sorted(set(encoded_keys) - set(wanted))
        if missing:
            raise DataError(
                f"'{data_path}' lacks columns {', '.join(missing)}, which the "
                f"rebuilt model needs encoded; columns found: "
                f"{', '.join(map(str, frame.columns[:20]))}"
            )
        raw = to_feeds(frame, SignatureSpec(contract.raw_signature.key, wanted, {}))
    else:
        missing = sorted(set(encoded_keys) - set(frame.columns))
        if missing:
            raise DataError(f"'{data_path}' lacks columns {', '.join(missing)}")
        raw = {k: _as_array(k, frame[k]) for k in encoded_keys}
    sig = contract.signature.inputs if contract.signature else {}
    encoded = {
        k: _fit_rank(k, v, sig.get(k)) for k, v in encode_feeds(contract.encodings, raw).items()
    }
    passed = [str(c) for c in frame.columns if c not in encoded]
    columns: dict[str, np.ndarray] = dict(encoded)
    for c in passed:
        columns[c] = _as_array(c, frame[c])
    one_row = sorted(k for k, v in encoded.items() if v.shape[0] != rows)
    if one_row and out_fmt == "parquet":
        raise DataError(
            f"inputs {', '.join(one_row)} are per-request (one row for the whole "
            "file); write .npz, which keeps each array's own length"
        )
    if out_fmt == "parquet":
        columns = {k: (v.astype(object) if v.dtype.kind == "S" else v) for k, v in columns.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        if out_fmt == "parquet":
            _write_parquet(Path(tmp), columns, rows)
        else:
            _write_npz(Path(tmp), columns)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("encoded %d rows of %s into %s", rows, data_path, out)
    return EncodeFileResult(str(out), out_fmt, rows, tuple(encoded_keys), tuple(passed))
