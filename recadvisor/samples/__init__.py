"""Reproducible sample recommender models (DSSM, ESMM, DIN) with synthetic data and planted flaws.

``build_samples("sample_models")`` trains the three models on data drawn from a hidden rule and
writes each as ``<out>/<name>/saved_model``, ``sample.parquet`` and ``flaws.json``. The planted
flaws (numeric features hashed as strings, a feature hashed twice, an unread signature input,
an oversized table, two tables over one id space) are what recadvisor's analyzer must find.
"""

from __future__ import annotations

from recadvisor.samples.build import (
    SAMPLE_NAMES,
    SampleResult,
    build_sample,
    build_samples,
    sample_definition,
)

__all__ = ["SAMPLE_NAMES", "SampleResult", "build_sample", "build_samples", "sample_definition"]
