"""Computing a rebuilt model's new inputs from raw values, without TensorFlow.

Contract-changing passes (``ids_upstream``, ``per_request_dedup``) describe every changed input
with an :class:`~recadvisor.rewrite.base.InputEncoding`. This module applies them in numpy and
pure Python so that a feature pipeline (and ``recadvisor encode``) computes exactly the ids the
original TensorFlow graph computed:

* ``hash_bucket``: TensorFlow's ``StringToHashBucketFast``, i.e. FarmHash ``Fingerprint64`` of the
  UTF-8 bytes (a little-endian uint64) mod ``num_buckets``; strings listed in ``reserved``
  (e.g. the padding ``""`` that the model also compares with) are sent as their reserved id.
  :func:`fingerprint64` is our own implementation of farmhash's ``Fingerprint64``
  (``farmhashna::Hash64``); it is tested bit for bit against ``tf.fingerprint`` and
  ``tf.strings.to_hash_bucket_fast``.
* ``as_string_hash_bucket``: a number formatted like ``tf.strings.as_string`` (C ``printf``
  formats built from its attributes), then hashed as above.
* ``strong_hash_bucket``: TensorFlow's ``StringToHashBucketStrong`` (Keras ``Hashing(salt=...)``):
  SipHash-2-4 keyed with the op's two 64-bit ``key`` words, mod ``num_buckets``;
  :func:`siphash24` is our own implementation, tested bit for bit against TensorFlow.
* ``fingerprint64``: the string's ``Fingerprint64`` itself, as the int64 with the same bits: what
  TensorFlow's hashed crosses (``SparseCross``) use for a string column, so a cross fed these ids
  is bit-exact; a bucket ``Fingerprint64 mod N`` is then computed in the graph.
* ``vocabulary``: table keys -> values, ``default_value`` for keys not in the table; with
  ``oov_buckets`` (feature columns' ``num_oov_buckets``, Keras ``num_oov_indices > 1``) a key
  the table maps to ``default_value`` gets ``oov_offset + Fingerprint64(key) mod oov_buckets``
  (with ``oov_hash: floormod``, Keras ``IntegerLookup``: ``oov_offset + key mod oov_buckets``).
* ``bucketize``: TensorFlow's ``Bucketize``: the number of boundaries ``<=`` the value, compared
  in float32 (its boundaries are a float32 attribute).
* ``broadcast``: a per-request input given once: every row must be equal and one row is sent.
* ``string_split``: a string the model splits into tokens (``tf.strings.split``,
  ``StringSplitV2``) is split here instead (:func:`split_string`, bit for bit like the op with
  its ``sep`` and ``maxsplit``); each token is encoded with the nested ``tokens`` encoding
  (``{"kind", "params"}``: a hash or a vocabulary, as above) and the row's ids are sent as one
  row of an ``[N, K]`` matrix (K: the most tokens in a row of the batch) padded with
  ``pad_id``, an id the token encoding never produces. ``op: StringSplit`` (TF1's
  ``tf.compat.v1.string_split``): ``sep`` is a set of delimiter bytes and ``skip_empty``
  applies (:func:`split_string_v1`).

``reserved`` (any kind but ``fingerprint64``): raw values the model compares the input with
(a padding ``""``, a mask token, a feature column's ignore value) -> the id sent for them instead,
an id the kind never produces; the rebuilt graph compares ids and maps a reserved id back to what
the original graph computed for that value, so the mask keeps its meaning exactly. For
``fingerprint64`` the compared values keep their own fingerprint and the encoder refuses a value
whose fingerprint equals a compared value's (a 2^-64 collision) instead of sending a wrong id.

Encodings listed for one input apply in order (``hash_bucket`` then ``broadcast``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from recadvisor.errors import DataError, PlanError
from recadvisor.model.spec import SignatureDict, SignatureSpec
from recadvisor.rewrite.base import InputEncoding, InputEncodingDict

CONTRACT_FILE = "feature_contract.json"
CONTRACT_SCHEMA_VERSION = 1


class FeatureContractDict(TypedDict):
    """``feature_contract.json`` (schema :data:`CONTRACT_SCHEMA_VERSION`).

    ``encodings`` apply in order; ``signature`` is the rebuilt model's signature (what the
    encoded inputs must match) and ``original_signature`` the one raw client data follows.
    """

    schema_version: int
    encodings: list[InputEncodingDict]
    signature: SignatureDict
    original_signature: SignatureDict


_MASK = (1 << 64) - 1
_K0 = 0xC3A5C85C97CB3127
_K1 = 0xB492B66FBE98F273
_K2 = 0x9AE16A3B2F90404F


# --------------------------------------------------------------------------- FarmHash Fingerprint64
def _fetch64(s: bytes, i: int) -> int:
    return int.from_bytes(s[i : i + 8], "little")


def _fetch32(s: bytes, i: int) -> int:
    return int.from_bytes(s[i : i + 4], "little")


def _rotate(v: int, r: int) -> int:
    return ((v >> r) | (v << (64 - r))) & _MASK if r else v


def _shift_mix(v: int) -> int:
    return v ^ (v >> 47)


def _hash_len16(u: int, v: int, mul: int) -> int:
    a = ((u ^ v) * mul) & _MASK
    a ^= a >> 47
    b = ((v ^ a) * mul) & _MASK
    b ^= b >> 47
    return (b * mul) & _MASK


def _weak_hash_len32(s: bytes, i: int, a: int, b: int) -> tuple[int, int]:
    w, x, y, z = _fetch64(s, i), _fetch64(s, i + 8), _fetch64(s, i + 16), _fetch64(s, i + 24)
    a = (a + w) & _MASK
    b = _rotate((b + a + z) & _MASK, 21)
    c = a
    a = (a + x + y) & _MASK
    b = (b + _rotate(a, 44)) & _MASK
    return (a + z) & _MASK, (b + c) & _MASK


def _hash_len0to16(s: bytes, n: int) -> int:
    if n >= 8:
        mul = _K2 + n * 2
        a = (_fetch64(s, 0) + _K2) & _MASK
        b = _fetch64(s, n - 8)
        c = (_rotate(b, 37) * mul + a) & _MASK
        d = ((_rotate(a, 25) + b) * mul) & _MASK
        return _hash_len16(c, d, mul)
    if n >= 4:
        mul = _K2 + n * 2
        a = _fetch32(s, 0)
        return _hash_len16((n + (a << 3)) & _MASK, _fetch32(s, n - 4), mul)
    if n > 0:
        y = s[0] + (s[n >> 1] << 8)
        z = n + (s[n - 1] << 2)
        return (_shift_mix(((y * _K2) ^ (z * _K0)) & _MASK) * _K2) & _MASK
    return _K2


def _hash_len17to32(s: bytes, n: int) -> int:
    mul = _K2 + n * 2
    a = (_fetch64(s, 0) * _K1) & _MASK
    b = _fetch64(s, 8)
    c = (_fetch64(s, n - 8) * mul) & _MASK
    d = (_fetch64(s, n - 16) * _K2) & _MASK
    return _hash_len16(
        (_rotate((a + b) & _MASK, 43) + _rotate(c, 30) + d) & _MASK,
        (a + _rotate((b + _K2) & _MASK, 18) + c) & _MASK,
        mul,
    )


def _hash_len33to64(s: bytes, n: int) -> int:
    mul = _K2 + n * 2
    a = (_fetch64(s, 0) * _K2) & _MASK
    b = _fetch64(s, 8)
    c = (_fetch64(s, n - 8) * mul) & _MASK
    d = (_fetch64(s, n - 16) * _K2) & _MASK
    y = (_rotate((a + b) & _MASK, 43) + _rotate(c, 30) + d) & _MASK
    z = _hash_len16(y, (a + _rotate((b + _K2) & _MASK, 18) + c) & _MASK, mul)
    e = (_fetch64(s, 16) * mul) & _MASK
    f = _fetch64(s, 24)
    g = ((y + _fetch64(s, n - 32)) * mul) & _MASK
    h = ((z + _fetch64(s, n - 24)) * mul) & _MASK
    return _hash_len16(
        (_rotate((e + f) & _MASK, 43) + _rotate(g, 30) + h) & _MASK,
        (e + _rotate((f + a) & _MASK, 18) + g) & _MASK,
        mul,
    )


def fingerprint64(data: bytes) -> int:
    """FarmHash ``Fingerprint64`` of ``data`` (what ``tf.fingerprint`` computes), as an int.

    Args:
        data: the bytes to hash (encode text as UTF-8 first).

    Returns:
        An unsigned 64-bit integer.
    """
    n = len(data)
    if n <= 16:
        return _hash_len0to16(data, n)
    if n <= 32:
        return _hash_len17to32(data, n)
    if n <= 64:
        return _hash_len33to64(data, n)
    s = data
    seed = 81
    y = (seed * _K1 + 113) & _MASK
    z = (_shift_mix((y * _K2 + 113) & _MASK) * _K2) & _MASK
    v0 = v1 = w0 = w1 = 0
    x = (seed * _K2 + _fetch64(s, 0)) & _MASK
    end = ((n - 1) // 64) * 64
    last64 = end + ((n - 1) & 63) - 63
    p = 0
    while True:
        x = (_rotate((x + y + v0 + _fetch64(s, p + 8)) & _MASK, 37) * _K1) & _MASK
        y = (_rotate((y + v1 + _fetch64(s, p + 48)) & _MASK, 42) * _K1) & _MASK
        x ^= w1
        y = (y + v0 + _fetch64(s, p + 40)) & _MASK
        z = (_rotate((z + w0) & _MASK, 33) * _K1) & _MASK
        v0, v1 = _weak_hash_len32(s, p, (v1 * _K1) & _MASK, (x + w0) & _MASK)
        w0, w1 = _weak_hash_len32(s, p + 32, (z + w1) & _MASK, (y + _fetch64(s, p + 16)) & _MASK)
        z, x = x, z
        p += 64
        if p == end:
            break
    mul = _K1 + ((z & 0xFF) << 1)
    p = last64
    w0 = (w0 + ((n - 1) & 63)) & _MASK
    v0 = (v0 + w0) & _MASK
    w0 = (w0 + v0) & _MASK
    x = (_rotate((x + y + v0 + _fetch64(s, p + 8)) & _MASK, 37) * mul) & _MASK
    y = (_rotate((y + v1 + _fetch64(s, p + 48)) & _MASK, 42) * mul) & _MASK
    x ^= (w1 * 9) & _MASK
    y = (y + v0 * 9 + _fetch64(s, p + 40)) & _MASK
    z = (_rotate((z + w0) & _MASK, 33) * mul) & _MASK
    v0, v1 = _weak_hash_len32(s, p, (v1 * mul) & _MASK, (x + w0) & _MASK)
    w0, w1 = _weak_hash_len32(s, p + 32, (z + w1) & _MASK, (y + _fetch64(s, p + 16)) & _MASK)
    z, x = x, z
    return _hash_len16(
        (_hash_len16(v0, w0, mul) + _shift_mix(y) * _K0 + z) & _MASK,
        (_hash_len16(v1, w1, mul) + x) & _MASK,
        mul,
    )


# --------------------------------------------------------------------------- SipHash-2-4
_SIP_C = (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573)


def _rotl(v: int, r: int) -> int:
    return ((v << r) | (v >> (64 - r))) & _MASK


def _sip_round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _MASK
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash24(key: Sequence[int], data: bytes) -> int:
    """SipHash-2-4 of ``data`` under a 128-bit key (TensorFlow's ``StrongKeyedHash``).

    Args:
        key: the two 64-bit key words, as ``StringToHashBucketStrong``'s ``key`` attribute.
        data: the bytes to hash.

    Returns:
        An unsigned 64-bit integer.
    """
    k0, k1 = (int(k) & _MASK for k in key)
    v0, v1, v2, v3 = k0 ^ _SIP_C[0], k1 ^ _SIP_C[1], k0 ^ _SIP_C[2], k1 ^ _SIP_C[3]
    n = len(data)
    tail = n & ~7
    for i in range(0, tail, 8):
        m = _fetch64(data, i)
        v3 ^= m
        v0, v1, v2, v3 = _sip_round(*_sip_round(v0, v1, v2, v3))
        v0 ^= m
    m = ((n & 0xFF) << 56) | int.from_bytes(data[tail:], "little")
    v3 ^= m
    v0, v1, v2, v3 = _sip_round(*_sip_round(v0, v1, v2, v3))
    v0 ^= m
    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def as_int64(value: int) -> int:
    """An unsigned 64-bit value as the signed int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


# --------------------------------------------------------------------------- value helpers
def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def to_bytes_array(values: Any, input_key: str = "input") -> np.ndarray:
    """Raw string-like values as an object array of ``bytes`` (text encoded as UTF-8).

    Args:
        values: array-like of ``str``/``bytes`` (or integers, formatted in decimal).
        input_key: named in error messages.

    Returns:
        An object ndarray of the same shape holding ``bytes``.

    Raises:
        DataError: missing values or floats where strings are expected.
    """
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind == "S":
        return arr.astype(object)
    if arr.dtype.kind in "iu":
        return (
            np.vectorize(lambda v: str(int(v)).encode(), otypes=[object])(arr)
            if arr.size
            else arr.astype(object)
        )
    if arr.dtype.kind == "f":
        raise DataError(
            f"input '{input_key}' holds floats where strings are expected; read that column "
            "as text (e.g. pandas dtype=str) so ids keep their exact spelling"
        )
    out = np.empty(arr.shape, dtype=object)
    flat_in, flat_out = arr.reshape(-1), out.reshape(-1)
    n_missing = 0
    for i, v in enumerate(flat_in):
        if isinstance(v, bytes):
            flat_out[i] = v
        elif isinstance(v, str):
            flat_out[i] = v.encode("utf-8", "surrogateescape")
        elif _missing(v):
            n_missing += 1
        elif isinstance(v, (int, np.integer)):
            flat_out[i] = str(int(v)).encode()
        else:
            raise DataError(
                f"input '{input_key}' holds a {type(v).__name__} ({v!r}) where strings are expected"
            )
    if n_missing:
        raise DataError(
            f"input '{input_key}' has {n_missing} missing value(s); fill them with the value "
            "your serving path sends (e.g. '') before encoding"
        )
    return out


def _map_unique(arr: np.ndarray, fn: Callable[[Any], int], dtype: Any) -> np.ndarray:
    """Apply ``fn`` once per distinct value of ``arr`` (ids repeat a lot in real data)."""
    flat = arr.reshape(-1)
    cache: dict[Any, int] = {}
    out = np.empty(flat.shape[0], dtype=dtype)
    for i, v in enumerate(flat):
        r = cache.get(v)
        if r is None:
            r = fn(v)
            cache[v] = r
        out[i] = r
    return out.reshape(arr.shape)


def fingerprint64_array(values: Any, input_key: str = "input") -> np.ndarray:
    """``Fingerprint64`` of every string in ``values`` (what ``tf.fingerprint`` gives).

    Args:
        values: array-like of ``str``/``bytes``.
        input_key: named in error messages.

    Returns:
        A uint64 ndarray of the same shape.
    """
    return _map_unique(to_bytes_array(values, input_key), fingerprint64, np.uint64)


def hash_bucket(values: Any, num_buckets: int, input_key: str = "input") -> np.ndarray:
    """TensorFlow's ``StringToHashBucketFast``: ``Fingerprint64(utf8) mod num_buckets``.

    Args:
        values: array-like of ``str``/``bytes``.
        num_buckets: the op's ``num_buckets`` attribute.
        input_key: named in error messages.

    Returns:
        An int64 ndarray of bucket ids, same shape as ``values``.
    """
    if num_buckets < 1:
        raise PlanError(f"encoding of '{input_key}': num_buckets must be >= 1, got {num_buckets}")
    nb = int(num_buckets)
    return _map_unique(to_bytes_array(values, input_key), lambda b: fingerprint64(b) % nb, np.int64)


def strong_hash_bucket(
    values: Any, num_buckets: int, key: Sequence[int], input_key: str = "input"
) -> np.ndarray:
    """TensorFlow's ``StringToHashBucketStrong``: ``SipHash24(key, utf8) mod num_buckets``.

    Args:
        values: array-like of ``str``/``bytes``.
        num_buckets: the op's ``num_buckets`` attribute.
        key: the op's two 64-bit ``key`` words (Keras ``Hashing(salt=...)``).
        input_key: named in error messages.

    Returns:
        An int64 ndarray of bucket ids, same shape as ``values``.
    """
    if num_buckets < 1:
        raise PlanError(f"encoding of '{input_key}': num_buckets must be >= 1, got {num_buckets}")
    nb, words = int(num_buckets), [int(k) for k in key]
    if len(words) != 2:
        raise PlanError(f"encoding of '{input_key}': key must be two 64-bit words, got {key!r}")
    return _map_unique(
        to_bytes_array(values, input_key), lambda b: siphash24(words, b) % nb, np.int64
    )


def fingerprint64_ids(values: Any, input_key: str = "input") -> np.ndarray:
    """``Fingerprint64`` of every string as the int64 with the same bits (hashed-cross ids).

    Args:
        values: array-like of ``str``/``bytes``.
        input_key: named in error messages.

    Returns:
        An int64 ndarray, same shape as ``values``.
    """
    return _map_unique(
        to_bytes_array(values, input_key), lambda b: as_int64(fingerprint64(b)), np.int64
    )


def as_string_format(
    dtype: str,
    precision: int = -1,
    scientific: bool = False,
    shortest: bool = False,
    width: int = -1,
    fill: str = "",
) -> str:
    """The C ``printf`` format ``tf.strings.as_string`` builds from its attributes.

    Args:
        dtype: the input's dtype name (``int64``, ``float32``...).
        precision / scientific / shortest / width / fill: the ``AsString`` attributes.

    Returns:
        A Python ``%`` format with the same meaning (``%lld`` becomes ``%d``).

    Raises:
        PlanError: an attribute combination TensorFlow itself rejects.
    """
    fmt = "%"
    if fill:
        if fill not in (" ", "+", "-", "0", "#"):
            raise PlanError(f"AsString fill '{fill}' is not supported by TensorFlow")
        fmt += fill
    if width > -1:
        fmt += str(width)
    if precision > -1:
        fmt += f".{precision}"
    if dtype.startswith(("int", "uint")):
        return fmt + "d"
    if dtype in ("float16", "bfloat16", "float32", "float64", "half", "double", "float"):
        return fmt + ("g" if shortest else "e" if scientific else "f")
    if dtype == "bool":
        return ""
    raise PlanError(f"tf.strings.as_string on dtype '{dtype}' is not supported by the encoder")


def format_as_string(values: Any, dtype: str, **attrs: Any) -> np.ndarray:
    """Numbers formatted exactly like ``tf.strings.as_string`` (C ``printf``).

    Args:
        values: numeric array-like.
        dtype: the dtype the model read the values as (``int64``, ``float32``...).
        **attrs: ``precision``, ``scientific``, ``shortest``, ``width``, ``fill``.

    Returns:
        An object ndarray of ``bytes``.
    """
    arr = np.asarray(values)
    if dtype == "bool":
        return np.vectorize(lambda v: b"true" if v else b"false", otypes=[object])(arr)
    fmt = as_string_format(dtype, **attrs)
    if fmt.endswith("d"):
        return _map_unique(arr.astype(np.dtype(dtype)), lambda v: (fmt % int(v)).encode(), object)
    cast = np.dtype("float32" if dtype in ("bfloat16", "float16", "half") else dtype)
    floats = np.ascontiguousarray(arr.astype(cast))
    bits_dtype = np.uint32 if cast.itemsize == 4 else np.uint64

    fill = str(attrs.get("fill") or "")
    width = int(attrs.get("width", -1))

    def non_finite(x: float) -> str:
        # glibc: the sign of a NaN is printed, '0' padding does not apply to inf/nan
        sign = (
            "-" if math.copysign(1.0, x) < 0 else "+" if fill == "+" else " " if fill == " " else ""
        )
        text = sign + ("nan" if math.isnan(x) else "inf")
        return text.ljust(width) if fill == "-" else text.rjust(width)

    def one(bits: Any) -> bytes:
        x = float(np.array(bits, dtype=bits_dtype).view(cast))
        return (fmt % x if math.isfinite(x) else non_finite(x)).encode()

    # cache on the bit pattern: 0.0 == -0.0 as dict keys but they print differently
    return _map_unique(floats.view(bits_dtype), one, object)


def bucketize(values: Any, boundaries: Sequence[float], dtype: str = "float32") -> np.ndarray:
    """TensorFlow's ``Bucketize``: the number of boundaries ``<=`` each value.

    Args:
        values: numeric array-like.
        boundaries: sorted boundaries (a float32 attribute in TensorFlow).
        dtype: the dtype the model read the values as; float64 compares in float64, everything
            else in float32 like the TensorFlow kernel.

    Returns:
        An int32 ndarray of bucket indices.
    """
    bounds = np.asarray(boundaries, dtype=np.float32)
    arr = np.asarray(values)
    if dtype == "float64":
        idx = np.searchsorted(bounds.astype(np.float64), arr.astype(np.float64), side="right")
    else:
        idx = np.searchsorted(bounds, arr.astype(np.float32), side="right")
    return idx.astype(np.int32)


# --------------------------------------------------------------------------- string split
_WHITESPACE = frozenset(b" \t\n\v\f\r")  # what TensorFlow's whitespace split skips (ASCII)


def _split_whitespace(text: bytes, maxsplit: int) -> list[bytes]:
    """Runs of ASCII whitespace separate tokens; no empty token, except the remainder kept
    once ``maxsplit`` tokens are taken (even when it is empty, as TensorFlow does)."""
    tokens: list[bytes] = []
    n, i = len(text), 0
    while i < n and text[i] in _WHITESPACE:
        i += 1
    while i < n:
        j = i
        while j < n and text[j] not in _WHITESPACE:
            j += 1
        tokens.append(text[i:j])
        while j < n and text[j] in _WHITESPACE:
            j += 1
        i = j
        if 0 < maxsplit == len(tokens):
            tokens.append(text[i:])
            break
    return tokens


def split_string(text: bytes, sep: bytes, maxsplit: int = -1) -> list[bytes]:
    """One string split exactly like TensorFlow's ``StringSplitV2`` (``tf.strings.split``).

    With a non-empty ``sep``, consecutive separators delimit empty tokens and ``b""`` gives one
    empty token (Python's ``bytes.split(sep)``). With an empty ``sep``, runs of ASCII whitespace
    separate tokens and empty tokens are dropped (``b""`` gives none). ``maxsplit > 0`` stops
    after that many splits and keeps the rest as the last token (with an empty ``sep`` this
    remainder is kept even when it is empty); ``maxsplit == 0`` keeps the whole string.

    Args:
        text: the string's bytes.
        sep: the op's ``sep`` (bytes; may be empty).
        maxsplit: the op's ``maxsplit`` attribute (negative: no limit).

    Returns:
        The tokens, in order.
    """
    if maxsplit == 0:
        return [text]
    if sep:
        return text.split(sep, maxsplit if maxsplit > 0 else -1)
    return _split_whitespace(text, maxsplit)


def split_string_v1(text: bytes, delimiter: bytes, skip_empty: bool = True) -> list[bytes]:
    """One string split exactly like TensorFlow 1's ``StringSplit`` (``tf.compat.v1.string_split``).

    Every byte of ``delimiter`` is a separator; an empty ``delimiter`` splits into single bytes;
    ``skip_empty`` drops empty tokens; ``b""`` gives no token at all (even with
    ``skip_empty=False``).

    Args:
        text: the string's bytes.
        delimiter: the op's ``delimiter`` (a set of bytes; may be empty).
        skip_empty: the op's ``skip_empty`` attribute.

    Returns:
        The tokens, in order.
    """
    if not text:
        return []
    if not delimiter:
        return [text[i : i + 1] for i in range(len(text))]
    first = delimiter[:1]
    tokens = text.translate(bytes.maketrans(delimiter, first * len(delimiter))).split(first)
    return [t for t in tokens if t] if skip_empty else tokens


def split_strings(
    values: Any,
    sep: bytes,
    maxsplit: int = -1,
    input_key: str = "input",
    op: str = "StringSplitV2",
    skip_empty: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """A rank-1 batch of strings split like ``StringSplitV2`` (or TF1's ``StringSplit``), as
    flat tokens and row lengths.

    Args:
        values: a rank-1 array-like of ``str``/``bytes`` (one string per row).
        sep: the separator (empty: whitespace); for ``StringSplit``, the set of delimiter bytes.
        maxsplit: ``StringSplitV2``'s ``maxsplit``.
        input_key: named in error messages.
        op: ``StringSplitV2`` (:func:`split_string`) or ``StringSplit`` (:func:`split_string_v1`).
        skip_empty: ``StringSplit``'s ``skip_empty``.

    Returns:
        (an object array of every token as ``bytes``, row by row; an int64 array of the number
        of tokens of each row).

    Raises:
        DataError: the values are not one string per row.
    """
    text = to_bytes_array(values, input_key)
    if text.ndim != 1:
        raise DataError(
            f"input '{input_key}' is split into tokens by the model and takes one string per "
            f"row; got shape {text.shape}"
        )
    if op not in ("StringSplitV2", "StringSplit"):
        raise PlanError(f"input '{input_key}': unknown split op '{op}'")
    cache: dict[bytes, list[bytes]] = {}
    tokens: list[bytes] = []
    lengths = np.empty(text.shape[0], dtype=np.int64)
    for row, value in enumerate(text):
        parts = cache.get(value)
        if parts is None:
            parts = cache[value] = (
                split_string(value, sep, maxsplit)
                if op == "StringSplitV2"
                else split_string_v1(value, sep, skip_empty)
            )
        tokens.extend(parts)
        lengths[row] = len(parts)
    flat = np.empty(len(tokens), dtype=object)
    flat[:] = tokens
    return flat, lengths


def _encode_string_split(value: Any, enc: InputEncoding) -> np.ndarray:
    """``string_split``: split each row, encode the tokens with the nested ``tokens`` encoding
    and lay them out as an ``[N, K]`` matrix (K: the most tokens in a row), ``pad_id`` after the
    last token of each row."""
    p = enc.params
    sep = str(p["sep"]).encode("utf-8", "surrogateescape")
    flat, lengths = split_strings(
        value,
        sep,
        int(p.get("maxsplit", -1)),
        enc.input_key,
        str(p.get("op", "StringSplitV2")),
        bool(p.get("skip_empty", True)),
    )
    inner = p["tokens"]
    token_enc = InputEncoding(
        enc.input_key, str(inner["kind"]), "string", enc.target_dtype, dict(inner["params"])
    )
    ids = np.asarray(_apply_one(token_enc, flat)).reshape(-1)
    width = int(lengths.max()) if lengths.size else 0
    out = np.full((lengths.shape[0], width), int(p["pad_id"]), dtype=np.dtype(enc.target_dtype))
    out[np.arange(width)[None, :] < lengths[:, None]] = ids  # row-major, like the split
    return out


# --------------------------------------------------------------------------- encodings
def _vocabulary_keys(params: Mapping[str, Any]) -> list[Any]:
    keys = list(params["keys"])
    if params.get("key_dtype", "string") == "string":
        return [
            k.encode("utf-8", "surrogateescape") if isinstance(k, str) else bytes(k) for k in keys
        ]
    return [int(k) for k in keys]


def _encode_vocabulary(arr: Any, enc: InputEncoding) -> np.ndarray:
    params = enc.params
    keys = _vocabulary_keys(params)
    table = dict(zip(keys, params["values"], strict=True))
    default = params["default_value"]
    is_string = params.get("key_dtype", "string") == "string"
    src = to_bytes_array(arr, enc.input_key) if is_string else np.asarray(arr).astype(np.int64)
    oov = int(params.get("oov_buckets") or 0)
    if not oov:
        return _map_unique(src, lambda v: table.get(v, default), np.dtype(enc.target_dtype))
    offset = int(params["oov_offset"])
    floormod = params.get("oov_hash") == "floormod"

    def one(v: Any) -> int:
        found = table.get(v, default)
        if found != default:
            return found
        if floormod:  # Keras IntegerLookup: the integer mod the OOV count
            return offset + int(v) % oov
        # TensorFlow hashes the key's string form (strings: Fingerprint64, as in the graph)
        return offset + fingerprint64(v if is_string else str(int(v)).encode()) % oov

    return _map_unique(src, one, np.dtype(enc.target_dtype))


def _encode_broadcast(arr: Any, enc: InputEncoding) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 0 or a.shape[0] == 0:
        raise DataError(f"input '{enc.input_key}' needs at least one row")
    first = a[:1]
    if a.shape[0] > 1 and not all(np.array_equal(first[0], row) for row in a[1:]):
        raise DataError(
            f"input '{enc.input_key}' is a per-request input (sent once); its {a.shape[0]} rows "
            "differ: encode one request at a time"
        )
    return first


def reserved_value(raw: str, source_dtype: str) -> Any:
    """A ``reserved`` key of an encoding as the raw value it stands for (bytes or int).

    Args:
        raw: the JSON key (text; integers in decimal).
        source_dtype: the input's raw dtype.

    Returns:
        ``bytes`` for string inputs, ``int`` for integer inputs.
    """
    return raw.encode("utf-8", "surrogateescape") if source_dtype == "string" else int(raw)


def _with_reserved(enc: InputEncoding, raw: Any, ids: np.ndarray) -> np.ndarray:
    """Put the reserved ids where the raw value is a reserved one."""
    reserved = enc.params.get("reserved") or {}
    if not reserved:
        return ids
    if enc.source_dtype == "string":
        src = to_bytes_array(raw, enc.input_key)
    else:
        src = np.asarray(raw).astype(np.int64)
    for key, rid in reserved.items():
        ids[src == reserved_value(key, enc.source_dtype)] = int(rid)
    return ids


def _encode_fingerprint64(value: Any, enc: InputEncoding) -> np.ndarray:
    text = to_bytes_array(value, enc.input_key)
    ids = fingerprint64_ids(text, enc.input_key)
    for compared in enc.params.get("compared") or []:
        raw = compared.encode("utf-8", "surrogateescape")
        clash = (ids == as_int64(fingerprint64(raw))) & (text != raw)
        if clash.any():
            raise DataError(
                f"input '{enc.input_key}': {text[clash].reshape(-1)[0]!r} has the same "
                f"Fingerprint64 as {compared!r}, which the model compares with; its id would "
                "change the model's result, so it cannot be encoded"
            )
    return ids


def _apply_one(enc: InputEncoding, value: Any) -> np.ndarray:
    p = enc.params
    if enc.kind == "hash_bucket":
        text = to_bytes_array(value, enc.input_key)
        return _with_reserved(enc, text, hash_bucket(text, int(p["num_buckets"]), enc.input_key))
    if enc.kind == "strong_hash_bucket":
        text = to_bytes_array(value, enc.input_key)
        ids = strong_hash_bucket(text, int(p["num_buckets"]), p["key"], enc.input_key)
        return _with_reserved(enc, text, ids)
    if enc.kind == "fingerprint64":
        return _encode_fingerprint64(value, enc)
    if enc.kind == "as_string_hash_bucket":
        attrs = {
            k: p[k] for k in ("precision", "scientific", "shortest", "width", "fill") if k in p
        }
        text = format_as_string(value, p.get("value_dtype", enc.source_dtype), **attrs)
        return hash_bucket(text, int(p["num_buckets"]), enc.input_key)
    if enc.kind == "vocabulary":
        return _with_reserved(enc, value, _encode_vocabulary(value, enc))
    if enc.kind == "bucketize":
        out = bucketize(value, p["boundaries"], p.get("value_dtype", enc.source_dtype))
        return out.astype(np.dtype(enc.target_dtype))
    if enc.kind == "broadcast":
        return _encode_broadcast(value, enc)
    if enc.kind == "string_split":
        return _encode_string_split(value, enc)
    raise PlanError(
        f"unknown encoding kind '{enc.kind}' for input '{enc.input_key}'; known: "
        f"{', '.join(ENCODING_KINDS)}"
    )


ENCODING_KINDS = (
    "hash_bucket",
    "strong_hash_bucket",
    "fingerprint64",
    "as_string_hash_bucket",
    "vocabulary",
    "bucketize",
    "broadcast",
    "string_split",
)


def encode_feeds(
    encodings: Sequence[InputEncoding], raw_feeds: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Turn raw inputs (the original contract) into the rebuilt model's inputs.

    Args:
        encodings: the encodings in the order the passes emitted them; several for one input
            apply one after the other.
        raw_feeds: signature key -> raw values; inputs no encoding names pass through.

    Returns:
        signature key -> numpy array in the new contract.

    Raises:
        DataError: an encoded input is missing or holds values that cannot be encoded.
    """
    out: dict[str, np.ndarray] = {
        k: np.asarray(v) if not isinstance(v, np.ndarray) else v for k, v in raw_feeds.items()
    }
    for enc in encodings:
        if enc.input_key not in out:
            raise DataError(
                f"input '{enc.input_key}' is missing; the rebuilt model's contract needs it "
                f"(encoding {enc.kind})"
            )
        out[enc.input_key] = _apply_one(enc, out[enc.input_key])
    return out


def broadcast_inputs(encodings: Sequence[InputEncoding]) -> list[str]:
    """The per-request inputs (``broadcast`` encodings), in the order they were emitted.

    Args:
        encodings: a rebuilt model's encodings.

    Returns:
        Input keys a client sends once per request.
    """
    return list(dict.fromkeys(e.input_key for e in encodings if e.kind == "broadcast"))


def one_request_feeds(
    feeds: Mapping[str, np.ndarray], request_inputs: Sequence[str], row: int = 0
) -> dict[str, np.ndarray]:
    """Feeds shaped as one request: the request inputs of ``row`` repeated on every row.

    This is what a ``broadcast`` encoding accepts: one user's features next to many candidates.

    Args:
        feeds: sample inputs (signature key -> array, one row per candidate).
        request_inputs: the per-request keys.
        row: which row's request features to use.

    Returns:
        A copy of ``feeds`` with every request input equal on all rows.
    """
    out = {k: np.asarray(v) for k, v in feeds.items()}
    for key in request_inputs:
        value = out[key]
        out[key] = np.repeat(value[row : row + 1], value.shape[0], axis=0)
    return out


def encoding_from_dict(data: Mapping[str, Any]) -> InputEncoding:
    """Inverse of :meth:`InputEncoding.to_dict`.

    Args:
        data: ``{"input", "kind", "source_dtype", "target_dtype", "params"}``.

    Returns:
        The :class:`InputEncoding`.

    Raises:
        PlanError: a field is missing or the kind is unknown.
    """
    try:
        enc = InputEncoding(
            input_key=str(data["input"]),
            kind=str(data["kind"]),
            source_dtype=str(data["source_dtype"]),
            target_dtype=str(data["target_dtype"]),
            params=dict(data.get("params") or {}),
        )
    except KeyError as e:
        raise PlanError(f"input encoding {dict(data)!r} lacks field {e}") from e
    if enc.kind not in ENCODING_KINDS:
        raise PlanError(
            f"unknown encoding kind '{enc.kind}' for input '{enc.input_key}'; known: "
            f"{', '.join(ENCODING_KINDS)}"
        )
    return enc


def feature_contract_dict(
    encodings: Sequence[InputEncoding], signature: SignatureSpec, original: SignatureSpec
) -> FeatureContractDict:
    """The JSON document written to ``feature_contract.json``.

    Args:
        encodings: every encoding the applied passes emitted, in order.
        signature: the rebuilt model's signature.
        original: the original model's signature (what raw client data follows).

    Returns:
        A :class:`FeatureContractDict`.
    """
    return {
        "schema_version": CONTRACT_SCHEMA_VERSION,
        "encodings": [e.to_dict() for e in encodings],
        "signature": signature.to_dict(),
        "original_signature": original.to_dict(),
    }


def read_feature_contract(path: str | Path) -> tuple[list[InputEncoding], dict[str, Any]]:
    """Read ``feature_contract.json`` (a file or the rebuilt directory holding it).

    Args:
        path: the file, or the directory with ``feature_contract.json`` in it.

    Returns:
        (encodings in order, the whole document).

    Raises:
        PlanError: the file is missing or malformed.
    """
    p = Path(path)
    if p.is_dir():
        p = p / CONTRACT_FILE
    if not p.is_file():
        raise PlanError(
            f"'{p}' not found: this rebuild did not change the input contract, so feed the "
            "model raw inputs (nothing to encode)"
        )
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise PlanError(f"'{p}' is not valid JSON ({e}); re-run recadvisor rebuild") from e
    items = doc if isinstance(doc, list) else doc.get("encodings")
    if not isinstance(items, list):
        raise PlanError(f"'{p}' has no 'encodings' list; re-run recadvisor rebuild")
    return [encoding_from_dict(d) for d in items], doc if isinstance(doc, dict) else {}
