"""recadvisor: analyze and rebuild trained TensorFlow recommender SavedModels for CPU serving.

The public API lives in :mod:`recadvisor.api`; importing this package does not import TensorFlow.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {"describe", "analyze", "rebuild", "compare", "encode_inputs", "demo"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from recadvisor import api

        return getattr(api, name)
    raise AttributeError(f"module 'recadvisor' has no attribute '{name}'")
