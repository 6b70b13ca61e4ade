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
import sys
import time
from pathlib import Path

from benchmarks.zoo.registry import by_name

META_FILE = "zoo.json"


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


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m benchmarks.zoo.build NAME OUT_DIR")
    build(sys.argv[1], Path(sys.argv[2]))
