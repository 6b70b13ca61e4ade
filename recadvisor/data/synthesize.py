"""Synthesize feeds for a signature when no sample data is given.

Values are deterministic for a seed and an input key (adding an input does not change the values
of the others). Strings come from the input's vocabulary when the caller knows it (lookup-table
keys found in the graph), else ``v0 .. v99``; ints are drawn from ``[0, 100)`` (or the
vocabulary); floats from N(0, 1); bools are fair coin flips. The batch dimension becomes
``n_rows``, an unknown second (sequence) dimension :data:`SYNTHETIC_SEQUENCE_LENGTH`, any other
unknown dimension 1.

Synthetic values say nothing about real value ranges or vocabulary coverage, so a warning says
that data-driven advice is off.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recadvisor.data.coerce import _convert, _Target, _target_of
from recadvisor.errors import DataError
from recadvisor.model.spec import SignatureSpec, TensorInfo

logger = logging.getLogger(__name__)

#: Unknown sequence (second) dimensions get this length.
SYNTHETIC_SEQUENCE_LENGTH = 8
#: Ints (and ``v<k>`` strings) are drawn from ``range(SYNTHETIC_INT_RANGE)``.
SYNTHETIC_INT_RANGE = 100


def synthetic_shape(info: TensorInfo, n_rows: int) -> tuple[int, ...]:
    """The concrete shape synthesized for an input.

    Args:
        info: the signature input.
        n_rows: rows in the batch dimension.

    Returns:
        ``info.shape`` with the first dimension ``n_rows``, an unknown second dimension
        :data:`SYNTHETIC_SEQUENCE_LENGTH` and other unknown dimensions 1; ``(n_rows,)`` when the
        rank is unknown or 0.
    """
    if not info.shape:
        return (n_rows,)
    dims = [n_rows]
    for axis, dim in enumerate(info.shape[1:], start=1):
        if dim is None:
            dims.append(SYNTHETIC_SEQUENCE_LENGTH if axis == 1 else 1)
        else:
            dims.append(int(dim))
    return tuple(dims)


def synthesize_feeds(
    spec: SignatureSpec,
    n_rows: int,
    *,
    seed: int = 0,
    vocabularies: Mapping[str, Sequence[Any]] | None = None,
    oov_fraction: float = 0.0,
) -> dict[str, np.ndarray]:
    """Random feeds that fit the signature, for when no sample data is given.

    Args:
        spec: the signature to feed.
        n_rows: rows per input (the batch dimension), at least 1.
        seed: random seed; the same seed, input key and vocabulary give the same values.
        vocabularies: ``{input key: known values}`` (e.g. the keys of the lookup table the input
            feeds); values are drawn from it, converted to the input's dtype.
        oov_fraction: share of values (0..1) replaced by out-of-vocabulary ones (``"v<k>"`` /
            small ints) for inputs with a vocabulary, to exercise default-value paths.

    Returns:
        ``{input key: array}`` in signature order, each of the input's numpy dtype (``object``
        arrays of ``str`` for strings) and :func:`synthetic_shape`.

    Raises:
        DataError: ``n_rows`` is below 1, an input's dtype cannot be synthesized, or a vocabulary
            holds values that do not convert to the input's dtype.
    """
    if isinstance(n_rows, bool) or int(n_rows) != n_rows or n_rows < 1:
        raise DataError(f"rows to synthesize must be a positive integer, got {n_rows!r}")
    if not 0.0 <= oov_fraction <= 1.0:
        raise DataError(f"oov_fraction must be between 0 and 1, got {oov_fraction!r}")
    vocabularies = vocabularies or {}
    feeds: dict[str, np.ndarray] = {}
    for key, info in spec.inputs.items():
        target = _target_of(info)
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode("utf-8"))])
        shape = synthetic_shape(info, int(n_rows))
        size = int(np.prod(shape))
        vocabulary = vocabularies.get(key)
        if vocabulary is not None and len(vocabulary) > 0:
            flat = _from_vocabulary(target, vocabulary, size, rng, oov_fraction)
        else:
            flat = _random_values(target, size, rng)
        feeds[key] = flat.reshape(shape)
    logger.warning(
        "no sample data given: synthesized %s rows for %s inputs (seed %s); data-driven advice "
        "(value ranges, vocabulary coverage, bucket boundaries) is off",
        n_rows,
        len(feeds),
        seed,
    )
    return feeds


def _random_values(target: _Target, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` values of the target's kind with no vocabulary."""
    if target.kind == "string":
        out = np.empty(size, dtype=object)
        out[:] = [f"v{k}" for k in rng.integers(0, SYNTHETIC_INT_RANGE, size).tolist()]
        return out
    if target.kind == "int":
        high = min(SYNTHETIC_INT_RANGE, int(np.iinfo(target.np_dtype).max) + 1)
        return rng.integers(0, high, size).astype(target.np_dtype)
    if target.kind == "bool":
        return rng.random(size) < 0.5
    return rng.standard_normal(size).astype(target.np_dtype)


def _from_vocabulary(
    target: _Target,
    vocabulary: Sequence[Any],
    size: int,
    rng: np.random.Generator,
    oov_fraction: float,
) -> np.ndarray:
    """``size`` values drawn from the vocabulary, some replaced by random ones."""
    values = np.fromiter(vocabulary, dtype=object, count=len(vocabulary))
    try:
        values = _convert(values, target, target.key, lambda i: f"vocabulary item {i}", True)
    except DataError as e:
        raise DataError(
            f"vocabulary for input '{target.key}' does not fit its dtype {target.info.dtype}: {e}"
        ) from e
    out = values[rng.integers(0, len(values), size)]
    if oov_fraction > 0.0:
        replace = rng.random(size) < oov_fraction
        out[replace] = _random_values(target, int(replace.sum()), rng)
    return out
