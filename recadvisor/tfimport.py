"""Lazy, quiet TensorFlow import.

TensorFlow takes seconds to import and prints start-up noise; the CLI imports it only inside
commands that need it, through :func:`import_tf`.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

_TF: ModuleType | None = None


def import_tf() -> ModuleType:
    """Import TensorFlow once, with its C++ and Python logging turned down.

    Returns:
        The ``tensorflow`` module.
    """
    global _TF
    if _TF is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        tf.get_logger().setLevel(logging.ERROR)
        try:
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
        except ImportError:  # absl ships with tensorflow; stay quiet if it does not
            pass
        _TF = tf
    return _TF
