"""Sample inputs for a signature: read data files, fit them to the signature, or synthesize them.

- :func:`read_table`: Parquet / CSV / JSON Lines / NPZ / TFRecord of ``tf.train.Example`` ->
  DataFrame.
- :func:`to_feeds`: DataFrame -> ``{input: numpy array}`` of the signature's dtypes and shapes.
- :func:`synthesize_feeds`: random feeds when no data is given (data-driven advice is off).
- :func:`load_feeds`: one call for all of it, returning a :class:`LoadedData`.

Importing this package does not import TensorFlow (only reading TFRecord files does).
"""

from __future__ import annotations

from recadvisor.data.coerce import (
    NUMBER_PAD,
    STRING_PAD,
    batches,
    feeds_row_count,
    labels,
    to_feeds,
)
from recadvisor.data.feeds import (
    DEFAULT_LABEL_COLUMNS,
    DEFAULT_SYNTHETIC_ROWS,
    LoadedData,
    load_feeds,
)
from recadvisor.data.readers import SUPPORTED_FORMATS, detect_format, read_table
from recadvisor.data.synthesize import (
    SYNTHETIC_SEQUENCE_LENGTH,
    synthesize_feeds,
    synthetic_shape,
)

__all__ = [
    "DEFAULT_LABEL_COLUMNS",
    "DEFAULT_SYNTHETIC_ROWS",
    "NUMBER_PAD",
    "STRING_PAD",
    "SUPPORTED_FORMATS",
    "SYNTHETIC_SEQUENCE_LENGTH",
    "LoadedData",
    "batches",
    "detect_format",
    "feeds_row_count",
    "labels",
    "load_feeds",
    "read_table",
    "synthesize_feeds",
    "synthetic_shape",
    "to_feeds",
]
