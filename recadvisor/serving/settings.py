"""Session settings a server can use, as ``ConfigProto`` bytes, text and TF Serving flags.

What TensorFlow does with them (``DirectSession``, TF 2.21; checked in its source and by timing):

* ``inter_op_parallelism_threads < 0``: the session runs its graph's ops in the caller's
  thread instead of handing them to the inter-op pool (``run_in_caller_thread_``). This is a
  per-session flag, and it only applies when the session uses the global pool (no
  ``use_per_session_threads``, no ``session_inter_op_thread_pool``). Batch-1 calls of small
  ranking models spend much of their time in that hand-off.
* ``intra_op_parallelism_threads``: the Eigen pool that kernels split their work over. It is
  process-wide and sized by the **first** session the process creates; so is the global
  inter-op pool. Settings must therefore be compared in separate processes
  (:func:`recadvisor.serving.tfc.time_settings` does).
* ``use_per_session_threads``: the session gets its own inter-op pool.

TF Serving takes ``--tensorflow_intra_op_parallelism`` and ``--tensorflow_inter_op_parallelism``
only when one of the two is positive (else both come from ``--tensorflow_session_parallelism``),
so the caller-thread setting is written as the pair ``intra=<cores>, inter=-1``; settings that
have no flag (per-session pools) are given as the ``session_config`` of a platform config file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SessionSetting:
    """One way to configure a serving session.

    Attributes:
        name: short name (``default``, ``caller_thread``, ...).
        description: what it does, in words.
        inter_op: ``inter_op_parallelism_threads`` (0: TensorFlow's default, -1: caller thread).
        intra_op: ``intra_op_parallelism_threads`` (0: one per core).
        per_session_threads: ``use_per_session_threads``.
    """

    name: str
    description: str
    inter_op: int = 0
    intra_op: int = 0
    per_session_threads: bool = False

    def config_proto(self) -> Any:
        """The ``tf.compat.v1.ConfigProto`` of this setting."""
        from tensorflow.core.protobuf import config_pb2

        config = config_pb2.ConfigProto()
        if self.inter_op:
            config.inter_op_parallelism_threads = self.inter_op
        if self.intra_op:
            config.intra_op_parallelism_threads = self.intra_op
        if self.per_session_threads:
            config.use_per_session_threads = True
        return config

    def config_bytes(self) -> bytes:
        """The serialized ``ConfigProto`` (empty for TensorFlow's defaults)."""
        return self.config_proto().SerializeToString()

    def config_text(self) -> str:
        """The ``ConfigProto`` as protobuf text (what a ``session_config`` block holds)."""
        from google.protobuf import text_format

        return text_format.MessageToString(self.config_proto()).strip()

    def serving_flags(self, cores: int | None = None) -> list[str]:
        """TF Serving ``tensorflow_model_server`` flags for this setting.

        Args:
            cores: the intra-op thread count that stands for "all cores" when the inter-op
                value needs a positive partner (default: this machine's core count).

        Returns:
            The flags; empty for TensorFlow's defaults or when no flag expresses the setting.
        """
        if self.per_session_threads or (self.inter_op == 0 and self.intra_op == 0):
            return []
        intra = self.intra_op or cores or os.cpu_count() or 1
        return [
            f"--tensorflow_intra_op_parallelism={intra}",
            f"--tensorflow_inter_op_parallelism={self.inter_op}",
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the ``ConfigProto`` text and the TF Serving flags."""
        return {
            "name": self.name,
            "description": self.description,
            "inter_op_parallelism_threads": self.inter_op,
            "intra_op_parallelism_threads": self.intra_op,
            "use_per_session_threads": self.per_session_threads,
            "config_proto": self.config_text(),
            "serving_flags": self.serving_flags(),
        }


SETTINGS: dict[str, SessionSetting] = {
    s.name: s
    for s in (
        SessionSetting("default", "TensorFlow's defaults: ops go to the inter-op pool"),
        SessionSetting(
            "caller_thread", "ops run in the caller's thread (inter_op_parallelism_threads=-1)", -1
        ),
        SessionSetting(
            "caller_thread_intra1",
            "ops in the caller's thread, kernels single-threaded (inter -1, intra 1)",
            -1,
            1,
        ),
        SessionSetting("intra1", "kernels single-threaded (intra_op_parallelism_threads=1)", 0, 1),
        SessionSetting(
            "per_session",
            "a private inter-op pool per session (use_per_session_threads)",
            0,
            0,
            True,
        ),
    )
}


def get_setting(name: str) -> SessionSetting:
    """A setting by name.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name not in SETTINGS:
        raise ValueError(f"unknown session setting '{name}'; choose one of: {', '.join(SETTINGS)}")
    return SETTINGS[name]
