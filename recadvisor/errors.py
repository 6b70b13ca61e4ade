"""Errors raised by recadvisor.

Every error a user can cause is a :class:`RecAdvisorError` subclass. The CLI prints its message as
one line on stderr and exits with the class's ``exit_code``; ``--verbose`` adds the traceback.
Messages name the object at fault and the way out.
"""

from __future__ import annotations


class RecAdvisorError(Exception):
    """Base class of all user-facing recadvisor errors."""

    exit_code: int = 2


class ModelLoadError(RecAdvisorError):
    """The model directory is missing, not a SavedModel, corrupt or cannot be loaded."""

    exit_code = 2


class SignatureError(RecAdvisorError):
    """The requested signature does not exist or cannot be served."""

    exit_code = 2


class FreezeError(RecAdvisorError):
    """The model could not be frozen into a self-contained graph."""

    exit_code = 3


class DataError(RecAdvisorError):
    """Sample data is missing, unreadable or does not match the signature."""

    exit_code = 4


class PlanError(RecAdvisorError):
    """A plan file is malformed or does not fit the model."""

    exit_code = 5


class OutputExistsError(RecAdvisorError):
    """The output path exists and ``--force`` was not given, or it is not writable."""

    exit_code = 6


class OutputWriteError(RecAdvisorError):
    """Writing the output failed (disk full, read-only file system); nothing was left behind."""

    exit_code = 6


class UnsafeModelError(RecAdvisorError):
    """The model contains ops that touch files, network or Python and was not executed."""

    exit_code = 7


class RewriteError(RecAdvisorError):
    """A rewrite pass failed in a way that cannot be rolled back."""

    exit_code = 8


class ExportError(RecAdvisorError):
    """Writing the rebuilt model failed."""

    exit_code = 9


class MemoryLimitError(RecAdvisorError):
    """The model's variables need more memory than the limit; it was not loaded."""

    exit_code = 10


class EngineError(RecAdvisorError):
    """The statistics engine cannot start: pyspark or Java missing, a Spark master unreachable."""

    exit_code = 11
