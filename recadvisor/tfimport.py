"""Lazy, quiet TensorFlow import.

TensorFlow takes seconds to import and prints start-up noise; the CLI imports it only inside
commands that need it, through :func:`import_tf`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

_TF: ModuleType | None = None


@contextmanager
def _quiet_stderr(enabled: bool) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null.

    TF 2.21's C++ start-up logs ignore ``TF_CPP_MIN_LOG_LEVEL``.
    """
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured by a test runner)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tf() -> ModuleType:
    """Import TensorFlow once, with its C++ and Python logging turned down.

    Set ``RECADVISOR_TF_LOGS=1`` to see TensorFlow's start-up logs.

    Returns:
        The ``tensorflow`` module.
    """
    global _TF
    if _TF is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _quiet_stderr(not os.environ.get("RECADVISOR_TF_LOGS")):
            import tensorflow as tf

            tf.config.list_physical_devices()  # device start-up messages happen here

        tf.get_logger().setLevel(logging.ERROR)
        try:
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
        except ImportError:  # absl ships with tensorflow; stay quiet if it does not
            pass
        _TF = tf
    return _TF
