"""Tiny models for the detector tests, built once per session (see ``models.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recadvisor.analysis.features import FeatureStats, compute_feature_stats
from recadvisor.analysis.findings import DetectorContext
from tests.analysis.detectors import models


@dataclass(frozen=True)
class Built:
    """A saved, loaded and frozen model with its sample data."""

    path: Path
    loaded: Any
    graph: Any
    frame: pd.DataFrame | None
    feeds: dict[str, np.ndarray]
    stats: FeatureStats | None

    def context(self, **changes: Any) -> DetectorContext:
        """A fresh detector context (a new cache each time)."""
        base: dict[str, Any] = {
            "graph": self.graph,
            "info": self.loaded.info,
            "feature_stats": self.stats,
            "feeds": self.feeds,
        }
        base.update(changes)
        return DetectorContext(**base)


def _build(
    tmp: Path,
    builder: Callable[[Path], Path],
    frame: pd.DataFrame | None,
    feeds: dict[str, np.ndarray],
) -> Built:
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model

    path = builder(tmp / "model")
    loaded = load_model(path)
    graph = freeze(loaded)
    stats = compute_feature_stats(frame, loaded.spec) if frame is not None else None
    return Built(path, loaded, graph, frame, feeds, stats)


@pytest.fixture(scope="session")
def ranker(tmp_path_factory: pytest.TempPathFactory) -> Built:
    frame = models.ranker_frame()
    return _build(
        tmp_path_factory.mktemp("ranker"), models.build_ranker, frame, models.ranker_feeds(frame)
    )


@pytest.fixture(scope="session")
def multitask(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _build(
        tmp_path_factory.mktemp("multitask"), models.build_multitask, None, models.multitask_feeds()
    )


@pytest.fixture(scope="session")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Built:
    frame = models.clean_frame()
    return _build(
        tmp_path_factory.mktemp("clean"), models.build_clean, frame, models.clean_feeds(frame)
    )


def make_profile(
    graph: Any, node_us: dict[str, float], batch_sizes: tuple[int, ...] = (1, 64)
) -> Any:
    """A hand-made Profile giving ``node_us`` microseconds to nodes at every batch size."""
    from recadvisor.analysis.profile import BatchProfile, OpTiming, Profile
    from recadvisor.bench import LatencySummary

    total = sum(node_us.values())
    batches = []
    for bs in batch_sizes:
        ops = tuple(
            OpTiming(
                node=n,
                op=graph.nodes[n].op,
                runtime_ops=(graph.nodes[n].op,),
                self_us=us,
                share=us / total,
            )
            for n, us in sorted(node_us.items(), key=lambda kv: -kv[1])
        )
        latency = LatencySummary(bs, 10, 1.0, 1.1, 1.2, 1.05, 0.0)
        batches.append(BatchProfile(bs, latency, ops, 0.0))
    return Profile(tuple(batches))
