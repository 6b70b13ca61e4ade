"""Feature statistics over the full logs: ``recadvisor stats``.

- :func:`compute_stats`: log files (Parquet / CSV / JSON Lines, hive partitions) + a model ->
  ``DIR/stats.json`` and ``DIR/counts/`` (see :mod:`recadvisor.stats.artifact`).
- :func:`load_stats`: read them back for ``analyze --stats`` / ``rebuild --stats``.

The aggregations are defined once (:mod:`recadvisor.stats.queries`) and run on DuckDB (embedded,
the default) or Spark (:mod:`recadvisor.stats.engines`). Importing this package imports neither
engine nor TensorFlow.
"""

from __future__ import annotations

from recadvisor.stats.artifact import SCHEMA_VERSION, LogStats, StatsDoc, load_stats
from recadvisor.stats.compute import compute_stats

__all__ = ["SCHEMA_VERSION", "LogStats", "StatsDoc", "compute_stats", "load_stats"]
