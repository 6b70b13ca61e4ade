"""Fixtures for recadvisor.data tests: a small signature, a matching frame, and file writers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from recadvisor.model.spec import SignatureSpec, TensorInfo

from .sample_files import write_frame


@pytest.fixture(scope="session")
def spec() -> SignatureSpec:
    """string [N], int64 [N,1], float32 [N,1] and string [N,5] inputs."""
    inputs = {
        "user_id": TensorInfo("user_id", "string", (None,)),
        "age": TensorInfo("age", "int64", (None, 1)),
        "price": TensorInfo("price", "float32", (None, 1)),
        "history": TensorInfo("history", "string", (None, 5)),
    }
    outputs = {"score": TensorInfo("score", "float32", (None, 1))}
    return SignatureSpec("serving_default", inputs, outputs)


@pytest.fixture(scope="session")
def sample_frame() -> pd.DataFrame:
    """Four rows fitting :func:`spec`, plus a label column."""
    return pd.DataFrame(
        {
            "user_id": ["u1", "ü2", "u3", "u4"],
            "age": [18, 25, 40, 61],
            "price": [0.5, 1.25, -3.0, 100.0],
            "history": [list("abcde"), list("fghij"), ["x"] * 5, ["item_1", "b", "c", "d", "e"]],
            "label": [0, 1, 0, 1],
        }
    )


@pytest.fixture(scope="session")
def writer() -> Callable[[pd.DataFrame, Path, str], Path]:
    """The :func:`write_frame` function, as a fixture."""
    return write_frame
