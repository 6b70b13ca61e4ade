"""Build one zoo model in this process: ``python -m benchmarks.zoo.build NAME OUT_DIR``.

Run by ``benchmarks/zoo.py`` (and the zoo tests) in a subprocess per model, with
``TF_USE_LEGACY_KERAS=1`` in the environment for the Keras 2 libraries. Writes
``OUT_DIR/saved_model/``, ``OUT_DIR/sample.parquet`` and ``OUT_DIR/zoo.json`` (library, version,
export, patterns) atomically: the folder appears only once everything is written.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.zoo.registry import ZooModel, by_name

META_FILE = "zoo.json"
ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 900


def package_version(package: str | None) -> str:
    """The installed version of ``package`` (TensorFlow's when ``None``)."""
    return importlib.metadata.version(package or "tensorflow")


def build(name: str, out: Path) -> Path:
    """Build zoo model ``name`` into ``out`` (replaced if it exists).

    Args:
        name: a name from :data:`benchmarks.zoo.registry.ZOO`.
        out: the model's folder.

    Returns:
        ``out``.
    """
    entry = by_name(name)
    if entry.legacy_keras and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise RuntimeError(f"{name} needs TF_USE_LEGACY_KERAS=1 set before TensorFlow loads")
    import numpy as np
    import tensorflow as tf

    random.seed(0)
    np.random.seed(0)
    tf.random.set_seed(0)
    module_name, func_name = entry.builder.split(":")
    builder = getattr(importlib.import_module(f"benchmarks.zoo.{module_name}"), func_name)
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    builder(tmp)
    _refuse_nan_weights(tmp / "saved_model", name)
    meta = {
        "name": entry.name,
        "library": entry.library,
        "package": entry.package or "tensorflow",
        "version": package_version(entry.package),
        "tensorflow": tf.__version__,
        "export": entry.export,
        "patterns": list(entry.patterns),
        "legacy_keras": entry.legacy_keras,
        "build_seconds": round(time.perf_counter() - start, 1),
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _refuse_nan_weights(saved_model: Path, name: str) -> None:
    """A model whose training produced NaN weights is useless for parity: fail its build."""
    import numpy as np
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(saved_model / "variables" / "variables"))
    for key in reader.get_variable_to_shape_map():
        value = reader.get_tensor(key)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and np.isnan(value).any():
            raise RuntimeError(f"{name}: training left NaN in variable {key}")


def subprocess_env(legacy_keras: bool) -> dict[str, str]:
    """This environment with the repository on ``PYTHONPATH`` and ``TF_USE_LEGACY_KERAS`` set
    (Keras 2 as ``tf.keras``) or removed (Keras 3)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if legacy_keras:
        env["TF_USE_LEGACY_KERAS"] = "1"
    else:
        env.pop("TF_USE_LEGACY_KERAS", None)
    return env


def last_error_line(stderr: str) -> str:
    """The last line of a traceback that names an error (else the last non-empty line)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line[:300]
    return lines[-1][:300] if lines else "no output"


def build_in_subprocess(entry: ZooModel, models: Path) -> dict[str, Any]:
    """Build one zoo model in a subprocess.

    Args:
        entry: the zoo model.
        models: the zoo's models folder.

    Returns:
        ``{"ok": True, "seconds": s}`` or ``{"ok": False, "error": one line}``.
    """
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.zoo.build", entry.name, str(models / entry.name)],
            cwd=ROOT,
            env=subprocess_env(entry.legacy_keras),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"build timed out after {BUILD_TIMEOUT_S} s"}
    seconds = round(time.perf_counter() - t0, 1)
    if proc.returncode != 0:
        return {"ok": False, "error": last_error_line(proc.stderr), "seconds": seconds}
    return {"ok": True, "seconds": seconds}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m benchmarks.zoo.build NAME OUT_DIR")
    build(sys.argv[1], Path(sys.argv[2]))
