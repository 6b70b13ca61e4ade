"""Writers of sample data files in every supported format, for the recadvisor.data tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: The formats every round-trip test writes, with the extension each uses.
FORMAT_EXTENSIONS = {
    "parquet": "parquet",
    "csv": "csv",
    "csv_spaces": "csv",
    "jsonl": "jsonl",
    "npz": "npz",
    "tfrecord": "tfrecord",
}


def write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    """Write ``frame`` to ``path`` as ``fmt`` (``csv_spaces``: lists as space-separated text)."""
    if fmt == "parquet":
        frame.to_parquet(path)
    elif fmt in ("csv", "csv_spaces"):
        text = frame.copy()
        for name in text.columns:
            if text[name].map(lambda v: isinstance(v, list)).any():
                encode = " ".join if fmt == "csv_spaces" else json.dumps
                text[name] = text[name].map(lambda v, enc=encode: enc([str(x) for x in v]))
        text.to_csv(path, index=False)
    elif fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as handle:
            for record in frame.to_dict(orient="records"):
                handle.write(json.dumps(_plain(record)) + "\n")
    elif fmt == "npz":
        arrays = {}
        for name in frame.columns:
            values = frame[name].tolist()
            arrays[name] = np.array(values)
        np.savez(path, **arrays)
    elif fmt == "tfrecord":
        write_tfrecord(frame, path)
    else:
        raise ValueError(fmt)
    return path


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}


def write_tfrecord(frame: pd.DataFrame, path: Path) -> Path:
    """Write each row as a ``tf.train.Example``."""
    from recadvisor.tfimport import import_tf

    tf = import_tf()
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in frame.to_dict(orient="records"):
            features = {}
            for name, value in record.items():
                values = value if isinstance(value, list) else [value]
                first = values[0] if values else ""
                if isinstance(first, (str, bytes)):
                    encoded = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
                    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=encoded))
                elif isinstance(first, (int, np.integer)):
                    feature = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
                else:
                    feature = tf.train.Feature(float_list=tf.train.FloatList(value=values))
                features[name] = feature
            example = tf.train.Example(features=tf.train.Features(feature=features))
            writer.write(example.SerializeToString())
    return path
