"""TensorFlow's C API as the timing runtime: the way TF Serving runs a SavedModel.

``tfc_bench.c`` (shipped in this package) is compiled on first use with the system C compiler
(``$CC``, else ``gcc``, else ``cc``) against the installed TensorFlow wheel's own headers
(``tensorflow/include``) and libraries (``libtensorflow_cc.so.2``, which exports the C API, and
``libtensorflow_framework.so.2``), and cached under ``$RECADVISOR_CACHE_DIR`` (default
``~/.cache/recadvisor``) keyed by the TensorFlow build and the source's hash.

Python writes a plan and one binary blob per input tensor (numeric: raw values; strings: a
uint32 length and the bytes per element), runs the program once per comparison (every model in
one process, so they are interleaved like :func:`recadvisor.bench.time_interleaved`) and reads
per-call latencies back. Input and output tensor names come from the SavedModel's
``SignatureDef`` (they differ from model to model).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("tfc_bench.c")
TF_STRING = 7


class TfcUnavailableError(RuntimeError):
    """The C runtime cannot be built here (no compiler, headers or library); the reason says why."""


@dataclass(frozen=True)
class TfcModel:
    """A SavedModel as the C program loads it.

    Attributes:
        label: the name results are reported under.
        export_dir: the SavedModel directory.
        tags: the meta graph's tags (``serve``).
        inputs: signature key -> (operation, output index, TF_DataType enum).
        outputs: signature key -> (operation, output index).
        config: a serialized ``ConfigProto`` for the session (empty: defaults).
    """

    label: str
    export_dir: str
    tags: tuple[str, ...]
    inputs: dict[str, tuple[str, int, int]]
    outputs: dict[str, tuple[str, int]]
    config: bytes = b""


@dataclass(frozen=True)
class ConcurrencyRun:
    """One model under a closed loop of ``callers`` threads (per-call latencies in seconds)."""

    callers: int
    calls: int
    seconds: float
    latencies: tuple[float, ...] = field(default=(), repr=False)


def _tensor_name(name: str) -> tuple[str, int]:
    op, _, index = name.partition(":")
    return op, int(index or 0)


def served_model(
    label: str, path: str | Path, signature: str | None = None, config: bytes = b""
) -> TfcModel:
    """Describe a SavedModel for the C program, from its ``SignatureDef``.

    Args:
        label: report label.
        path: the SavedModel directory.
        signature: signature key (default: ``serving_default`` or the only one).
        config: serialized ``ConfigProto``.

    Returns:
        A :class:`TfcModel`.
    """
    from recadvisor.model.load import inspect_saved_model
    from recadvisor.tfimport import import_tf

    tf = import_tf()
    info = inspect_saved_model(path)
    key = info.choose_signature(signature).key
    sig = info.meta_graph.signature_def[key]
    inputs = {
        k: (*_tensor_name(v.name), int(tf.dtypes.as_dtype(v.dtype).as_datatype_enum))
        for k, v in sig.inputs.items()
    }
    outputs = {k: _tensor_name(v.name) for k, v in sorted(sig.outputs.items())}
    return TfcModel(label, info.path, info.tags, inputs, outputs, config)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- building


def _tf_dir() -> Path:
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise TfcUnavailableError("TensorFlow is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _compiler() -> str:
    wanted = os.environ.get("CC")
    if wanted:
        found = shutil.which(wanted)
        if not found:
            raise TfcUnavailableError(f"no C compiler: $CC is '{wanted}', which is not found")
        return found
    for name in ("gcc", "cc"):
        found = shutil.which(name)
        if found:
            return found
    raise TfcUnavailableError("no C compiler (gcc or cc) on PATH")


def cache_dir() -> Path:
    """Where built programs are kept: ``$RECADVISOR_CACHE_DIR`` or ``~/.cache/recadvisor``."""
    if os.environ.get("RECADVISOR_CACHE_DIR"):
        return Path(os.environ["RECADVISOR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "recadvisor"


def build_program(timeout: float = 600.0) -> Path:
    """The compiled ``tfc_bench`` for the installed TensorFlow, compiled on first use.

    Returns:
        The executable's path.

    Raises:
        TfcUnavailableError: no compiler, no TensorFlow headers or C library, or the build
            failed (the reason names which).
    """
    tf_dir = _tf_dir()
    include = tf_dir / "include"
    libs = [tf_dir / "libtensorflow_cc.so.2", tf_dir / "libtensorflow_framework.so.2"]
    if not (include / "tensorflow" / "c" / "c_api.h").is_file():
        raise TfcUnavailableError(f"the TensorFlow wheel has no C headers ({include})")
    missing = [p.name for p in libs if not p.is_file()]
    if missing:
        raise TfcUnavailableError(f"the TensorFlow wheel has no {', '.join(missing)}")
    compiler = _compiler()
    lib_stat = libs[0].stat()
    key = hashlib.sha256(
        SOURCE.read_bytes()
        + f"{tf_dir}|{lib_stat.st_size}|{lib_stat.st_mtime_ns}|{compiler}".encode()
    ).hexdigest()[:16]
    version = _tf_version()
    target = cache_dir() / "tfc" / f"tf{version}-{key}" / "tfc_bench"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tfc_bench.{os.getpid()}")
    cmd = [
        compiler,
        "-O2",
        "-std=c11",
        f"-I{include}",
        str(SOURCE),
        "-o",
        str(tmp),
        f"-L{tf_dir}",
        "-l:libtensorflow_cc.so.2",
        "-l:libtensorflow_framework.so.2",
        f"-Wl,-rpath,{tf_dir}",
        "-lpthread",
    ]
    log.info("compiling the TensorFlow C runtime benchmark: %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TfcUnavailableError(f"compiling {SOURCE.name} failed: {e}") from e
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise TfcUnavailableError(f"compiling {SOURCE.name} with {compiler} failed: {detail}")
    os.replace(tmp, target)
    return target


def _tf_version() -> str:
    from importlib import metadata

    for dist in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


# ---------------------------------------------------------------------------------- plans


def _write_blob(path: Path, array: np.ndarray, dtype_enum: int) -> None:
    if dtype_enum == TF_STRING:
        parts = []
        for x in np.asarray(array).reshape(-1):
            b = x if isinstance(x, bytes) else str(x).encode()
            parts.append(struct.pack("<I", len(b)) + b)
        path.write_bytes(b"".join(parts))
        return
    from recadvisor.tfimport import import_tf

    np_dtype = import_tf().dtypes.as_dtype(dtype_enum).as_numpy_dtype
    np.ascontiguousarray(np.asarray(array).astype(np_dtype, copy=False)).tofile(path)


def _plan_text(
    models: Sequence[TfcModel],
    cases: Sequence[Mapping[str, Mapping[str, np.ndarray]]],
    work: Path,
    header: Mapping[str, Any],
) -> str:
    lines = [f"cases {len(cases)}"]
    lines += [f"{k} {v}" for k, v in header.items()]
    for i, model in enumerate(models):
        lines += [
            f"model {model.label}",
            f"dir {model.export_dir}",
            f"tags {','.join(model.tags) or 'serve'}",
            f"config {model.config.hex() or '-'}",
        ]
        lines += [f"output {op} {index}" for op, index in model.outputs.values()]
        for c, case in enumerate(cases):
            feeds = case[model.label]
            for key, (op, index, dtype) in model.inputs.items():
                if key not in feeds:
                    raise KeyError(f"no feed for input '{key}' of {model.label}")
                arr = np.asarray(feeds[key])
                blob = work / f"in_{c}_{i}_{len(lines)}.bin"
                _write_blob(blob, arr, dtype)
                dims = " ".join(str(d) for d in arr.shape)
                lines.append(
                    f"input {c} {op} {index} {dtype} {arr.ndim} {dims} {blob}".replace("  ", " ")
                )
        lines.append("end")
    return "\n".join(lines) + "\n"


def _run(binary: Path, plan: str, work: Path, timeout: float) -> list[str]:
    plan_path = work / "plan.txt"
    plan_path.write_text(plan)
    env = dict(os.environ)
    if not os.environ.get("RECADVISOR_TF_LOGS"):
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    try:
        proc = subprocess.run(
            [str(binary), str(plan_path)], capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"the C runtime timed out after {timeout:.0f} s") from e
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("tfc_bench")]
        detail = (lines or proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"the C runtime failed (exit {proc.returncode}): {detail}")
    return proc.stdout.splitlines()


def execute(
    models: Sequence[TfcModel],
    cases: Sequence[Mapping[str, Mapping[str, np.ndarray]]],
    header: Mapping[str, Any],
    timeout: float = 1800.0,
) -> tuple[list[dict[str, list[float]]], list[dict[str, dict[int, ConcurrencyRun]]]]:
    """Run one plan (``header``: ``mode`` and its settings, see ``tfc_bench.c``) in one process.

    Returns:
        (per case, label -> per-call seconds; per case, label -> callers -> ConcurrencyRun).
    """
    binary = build_program()
    with tempfile.TemporaryDirectory(prefix="recadvisor-tfc-") as tmp:
        work = Path(tmp)
        out = _run(binary, _plan_text(models, cases, work, header), work, timeout)
    lat: list[dict[str, list[float]]] = [{} for _ in cases]
    conc: list[dict[str, dict[int, ConcurrencyRun]]] = [{} for _ in cases]
    for line in out:
        parts = line.split()
        if parts and parts[0] == "lat":
            c, m, n = int(parts[1]), int(parts[2]), int(parts[3])
            lat[c][models[m].label] = [int(x) / 1e9 for x in parts[4 : 4 + n]]
        elif parts and parts[0] == "conc":
            c, m, threads, calls, elapsed, n = (int(x) for x in parts[1:7])
            conc[c].setdefault(models[m].label, {})[threads] = ConcurrencyRun(
                callers=threads,
                calls=calls,
                seconds=elapsed / 1e9,
                latencies=tuple(int(x) / 1e9 for x in parts[7 : 7 + n]),
            )
    return lat, conc


def time_models(
    models: Sequence[TfcModel],
    cases: Sequence[Mapping[str, Mapping[str, np.ndarray]]],
    *,
    requests: int = 200,
    warmup: int = 20,
    burst: int = 8,
    seed: int = 0,
    timeout: float = 1800.0,
) -> list[dict[str, list[float]]]:
    """Time every model in one C process, interleaved in shuffled rounds, per case.

    Args:
        models: the models (labels unique).
        cases: per case (e.g. batch size), label -> that model's feeds (key -> array).
        requests: timed calls per model and case.
        warmup: untimed calls per model first.
        burst: timed calls per model and round, after one untimed call.
        seed: shuffling seed.
        timeout: seconds before the program is stopped.

    Returns:
        Per case, label -> per-call wall times in seconds.
    """
    header = {"mode": "time", "warmup": warmup, "requests": requests, "burst": burst, "seed": seed}
    return execute(models, cases, header, timeout)[0]


def run_outputs(
    models: Sequence[TfcModel], feeds: Mapping[str, Mapping[str, np.ndarray]]
) -> dict[str, dict[str, np.ndarray]]:
    """Run every model once through the C API and return its outputs (for parity checks).

    Args:
        models: the models.
        feeds: label -> feeds.

    Returns:
        label -> output key -> array (string outputs come back empty).
    """
    from recadvisor.tfimport import import_tf

    tf = import_tf()
    binary = build_program()
    with tempfile.TemporaryDirectory(prefix="recadvisor-tfc-") as tmp:
        work = Path(tmp)
        header = {"mode": "outputs", "warmup": 0, "outdir": str(work)}
        _run(binary, _plan_text(models, [feeds], work, header), work, 600.0)
        result: dict[str, dict[str, np.ndarray]] = {}
        for i, model in enumerate(models):
            outs = {}
            for k, key in enumerate(model.outputs):
                raw = (work / f"out_0_{i}_{k}.bin").read_bytes()
                dtype, ndims = struct.unpack_from("<ii", raw)
                dims = struct.unpack_from(f"<{ndims}q", raw, 8)
                body = raw[8 + 8 * ndims :]
                if dtype == TF_STRING:
                    outs[key] = np.empty(dims, dtype=object)
                    continue
                np_dtype = tf.dtypes.as_dtype(dtype).as_numpy_dtype
                outs[key] = np.frombuffer(body, dtype=np_dtype).reshape(dims)
            result[model.label] = outs
    return result


def time_concurrency(
    models: Sequence[TfcModel],
    feeds: Mapping[str, Mapping[str, np.ndarray]],
    levels: Sequence[int],
    *,
    seconds: float = 2.0,
    rounds: int = 4,
    warmup: int = 20,
    seed: int = 0,
    timeout: float = 1800.0,
) -> dict[str, dict[int, ConcurrencyRun]]:
    """Closed loops of ``level`` caller threads per model, ``seconds`` per model and level.

    The time per model is split into ``rounds`` slices visited in a shuffled order, so machine
    noise spreads over all models.

    Returns:
        label -> callers -> :class:`ConcurrencyRun`.
    """
    header = {
        "mode": "concurrency",
        "warmup": warmup,
        "seed": seed,
        "duration_ms": int(seconds * 1000),
        "rounds": rounds,
        "threads": " ".join(str(int(n)) for n in levels),
    }
    return execute(models, [feeds], header, timeout)[1][0]
