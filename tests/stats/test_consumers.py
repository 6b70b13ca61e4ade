"""analyze --stats and rebuild --stats: data-driven decisions come from the full logs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from recadvisor.errors import DataError
from recadvisor.model.freeze import freeze
from recadvisor.model.graph import ModelGraph
from recadvisor.model.load import load_model
from recadvisor.model.runtime import GraphRunner
from recadvisor.rewrite.base import RewriteContext
from recadvisor.rewrite.numeric_bucketize import NumericBucketizePass
from recadvisor.rewrite.per_request_dedup import PerRequestDedupPass
from recadvisor.rewrite.prune_embedding_rows import PruneEmbeddingRowsPass
from recadvisor.stats import LogStats, load_stats
from tests.stats import reference

SAMPLE_ROWS = 60


@pytest.fixture(scope="module")
def graph(ranker_dir: Path) -> ModelGraph:
    return freeze(load_model(ranker_dir))


@pytest.fixture(scope="module")
def log_feeds(graph: ModelGraph, logs_dir: Path) -> dict[str, np.ndarray]:
    from recadvisor.data import to_feeds

    return to_feeds(reference.read_logs(logs_dir).to_pandas(), graph.signature, strict=False)


@pytest.fixture(scope="module")
def stats(duckdb_stats: Path, graph: ModelGraph) -> LogStats:
    return load_stats(duckdb_stats, graph.fingerprint())


def _sample(feeds: dict[str, np.ndarray], rows: int = SAMPLE_ROWS) -> dict[str, np.ndarray]:
    return {k: v[:rows] for k, v in feeds.items()}


def _max_diff(a: ModelGraph, b: ModelGraph, feeds: dict[str, np.ndarray]) -> float:
    out_a, out_b = GraphRunner(a)(feeds), GraphRunner(b)(feeds)
    return max(float(np.abs(out_a[k] - out_b[k]).max()) for k in out_a)


def test_prune_with_log_stats_keeps_every_row_the_logs_hit(
    graph: ModelGraph, log_feeds: dict[str, np.ndarray], stats: LogStats
) -> None:
    sample = _sample(log_feeds)
    with_logs = PruneEmbeddingRowsPass().apply(
        graph, {}, RewriteContext(sample, sample, None, stats)
    )
    tables = with_logs.stats["tables"]
    assert tables and all(t["rows_source"].startswith("logs (3,000 rows") for t in tables.values())
    for t in tables.values():
        hit = int(np.count_nonzero(stats.row_hits(t["node"], t["rows_before"])))
        assert t["rows_after"] == hit + 1  # every row the logs hit, plus the fallback row
        assert t["log_lookups_covered"] == 1.0 and t["sample_only_rows"] == 0
    assert "covering 100% of" in " ".join(with_logs.notes)
    # exact on every log row, not just on the sample
    assert _max_diff(graph, with_logs.graph, log_feeds) == 0.0
    # the sample alone prunes rows the logs need: outputs change on the logs
    sample_only = PruneEmbeddingRowsPass().apply(graph, {}, RewriteContext(sample, sample))
    assert all(t["rows_source"] == "sample" for t in sample_only.stats["tables"].values())
    assert _max_diff(graph, sample_only.graph, sample) <= 1e-6
    assert _max_diff(graph, sample_only.graph, log_feeds) > 1e-4


def test_prune_min_count_drops_rare_rows_but_keeps_the_sample(
    graph: ModelGraph, log_feeds: dict[str, np.ndarray], stats: LogStats
) -> None:
    sample = _sample(log_feeds)
    result = PruneEmbeddingRowsPass().apply(
        graph, {"min_count": 40}, RewriteContext(sample, sample, None, stats)
    )
    for t in result.stats["tables"].values():
        hits = stats.row_hits(t["node"], t["rows_before"])
        assert t["log_rows_kept"] == int(np.count_nonzero(hits >= 40))
        assert t["rows_after"] == t["log_rows_kept"] + t["sample_only_rows"] + 1
    assert any(t["log_lookups_covered"] < 1.0 for t in result.stats["tables"].values())
    assert _max_diff(graph, result.graph, sample) <= 1e-6  # the parity sample still holds


def test_bucketize_keeps_the_values_of_the_logs(
    graph: ModelGraph, log_feeds: dict[str, np.ndarray], stats: LogStats
) -> None:
    sample = _sample(log_feeds, 10)
    params = {"fill_range": False}
    with_logs = NumericBucketizePass().apply(
        graph, params, RewriteContext(sample, sample, None, stats)
    )
    ages = with_logs.stats.get("inputs", with_logs.stats)
    age = next(v for k, v in ages.items() if k == "age") if "age" in ages else None
    assert age is not None, with_logs.stats
    assert age["values"] == stats.doc["inputs"]["age"]["distinct"]
    assert "logs (3,000 rows" in age["values_source"]
    assert _max_diff(graph, with_logs.graph, log_feeds) == 0.0
    sample_only = NumericBucketizePass().apply(graph, params, RewriteContext(sample, sample))
    assert sample_only.stats["inputs"]["age"]["values"] < age["values"]


def test_per_request_inputs_come_from_the_logs(
    graph: ModelGraph, log_feeds: dict[str, np.ndarray], stats: LogStats
) -> None:
    sample = _sample(log_feeds, 12)  # too few repeated users to tell from the sample
    by_sample = PerRequestDedupPass().apply(graph, {}, RewriteContext(sample, sample))
    by_logs = PerRequestDedupPass().apply(graph, {}, RewriteContext(sample, sample, None, stats))
    assert "segment" not in by_sample.stats["request_inputs"]
    assert "segment" in by_logs.stats["request_inputs"]
    assert "age" not in by_logs.stats["request_inputs"]  # varies for a few users in the logs
    assert "one value per request id in the logs (3,000 rows" in " ".join(by_logs.notes)


def test_analyze_reads_rows_hit_from_the_logs(
    ranker_dir: Path, duckdb_stats: Path, graph: ModelGraph, stats: LogStats
) -> None:
    from recadvisor.analysis.analyze import analyze
    from recadvisor.analysis.detectors.embeddings import _issues, describe_table
    from recadvisor.analysis.detectors.graph_patterns import find_embedding_tables
    from recadvisor.analysis.findings import DetectorContext

    payload = analyze(ranker_dir, profile=False, stats_dir=duckdb_stats).to_dict()
    assert payload["model"]["log_stats"]["rows"] == 3000
    assert payload["model"]["log_stats"]["dir"] == str(duckdb_stats)
    per_request = next(f for f in payload["findings"] if f["kind"] == "per_request_feature")
    in_logs = per_request["evidence"]["per_request_in_logs"]
    assert in_logs["one_value_per_key"] == {"user_id": ["segment"]}
    assert "one value per `user_id`: `segment`" in per_request["message"]
    ctx = DetectorContext(graph=graph, log_stats=stats)
    for table in find_embedding_tables(graph):
        ev = describe_table(ctx, table)
        assert ev["rows_hit"] == stats.doc["tables"][table.node]["rows_hit"]
        assert ev["rows_hit_source"].startswith("logs (3,000 rows, duckdb)")
    age = next(t for t in find_embedding_tables(graph) if t.features == ("age",))
    ev = describe_table(ctx, age) | {"rows": 1000}  # as if the table were 10x bigger
    texts = [text for code, _, text in _issues(ev) if code == "oversized"]
    assert texts and "hit by the logs (3,000 rows, duckdb)" in texts[0]


def test_stats_for_another_model_are_refused(
    duckdb_stats: Path, graph: ModelGraph, tmp_path: Path
) -> None:
    copy = tmp_path / "stats"
    shutil.copytree(duckdb_stats, copy)
    doc = json.loads((copy / "stats.json").read_text())
    doc["model"]["fingerprint"] = "0" * 16
    (copy / "stats.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="computed for another model"):
        load_stats(copy, graph.fingerprint())
    with pytest.raises(DataError, match="holds no stats.json"):
        load_stats(tmp_path)
