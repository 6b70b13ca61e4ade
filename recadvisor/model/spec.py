"""Plain descriptions of a signature's inputs and outputs (no TensorFlow import needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict


class TensorDict(TypedDict):
    """``TensorInfo.to_dict()``: dtype name and shape (``None`` for an unknown dimension)."""

    dtype: str
    shape: list[int | None] | None


class SignatureDict(TypedDict):
    """``SignatureSpec.to_dict()``: the key and its inputs and outputs by signature key."""

    key: str
    inputs: dict[str, TensorDict]
    outputs: dict[str, TensorDict]


@dataclass(frozen=True)
class TensorInfo:
    """One signature input or output.

    Attributes:
        key: the signature key (what a client passes), e.g. ``user_id``.
        dtype: TensorFlow dtype name, e.g. ``string``, ``int64``, ``float32``.
        shape: static shape; ``None`` marks an unknown dimension (the batch one, usually).
    """

    key: str
    dtype: str
    shape: tuple[int | None, ...] | None

    @property
    def rank(self) -> int | None:
        """The rank, or ``None`` when the shape is unknown."""
        return None if self.shape is None else len(self.shape)

    def to_dict(self) -> TensorDict:
        """JSON form: ``{"dtype": ..., "shape": [...]}``."""
        return {
            "dtype": self.dtype,
            "shape": None if self.shape is None else [d for d in self.shape],
        }

    @classmethod
    def from_dict(cls, key: str, data: dict[str, Any]) -> TensorInfo:
        """Inverse of :meth:`to_dict`."""
        shape = data.get("shape")
        return cls(key, str(data["dtype"]), None if shape is None else tuple(shape))

    def shape_str(self) -> str:
        """Shape as ``[N,1]`` text, ``N`` for unknown dims, ``?`` for unknown rank."""
        if self.shape is None:
            return "?"
        return "[" + ",".join("N" if d is None else str(d) for d in self.shape) + "]"


@dataclass(frozen=True)
class SignatureSpec:
    """A serving signature: its key and its inputs/outputs by signature key."""

    key: str
    inputs: dict[str, TensorInfo] = field(default_factory=dict)
    outputs: dict[str, TensorInfo] = field(default_factory=dict)

    def to_dict(self) -> SignatureDict:
        """JSON form used by ``describe --json`` and every report."""
        return {
            "key": self.key,
            "inputs": {k: v.to_dict() for k, v in self.inputs.items()},
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignatureSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            key=str(data["key"]),
            inputs={k: TensorInfo.from_dict(k, v) for k, v in data["inputs"].items()},
            outputs={k: TensorInfo.from_dict(k, v) for k, v in data["outputs"].items()},
        )
