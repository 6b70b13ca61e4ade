"""The analyzer: what makes a model slow or big, measured and explained.

Modules:

* :mod:`~recadvisor.analysis.profile`: per-op CPU time (TensorFlow profiler trace mapped back to
  the frozen graph) and end-to-end latency percentiles, per batch size.
* :mod:`~recadvisor.analysis.attribution`: that op time charged to input features, op types and
  stages (string/lookup, embedding gather, dense/MLP, other).
* :mod:`~recadvisor.analysis.stages`: op type -> stage.
* ``inventory``, ``features``, ``findings`` and ``detectors/``: graph inventory, sample-data
  statistics and the detectors that turn all of it into findings.

Nothing here imports TensorFlow at import time.
"""
