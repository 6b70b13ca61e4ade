"""``api.write_tensorboard``: the frozen graph and the profile as TensorBoard summaries."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from recadvisor.api import write_tensorboard
from recadvisor.report.tensorboard import top_ops_markdown
from recadvisor.tfimport import import_tf
from tests.report import fixtures


@pytest.fixture(scope="module")
def tiny_graph(tiny_model: tuple[Path, Path]) -> Any:
    from recadvisor.model.freeze import freeze
    from recadvisor.model.load import load_model

    return freeze(load_model(tiny_model[0]))


def read_events(logdir: Path) -> tuple[dict[str, dict[int, Any]], int]:
    """tag -> step -> value (float, or text for text summaries); and the graph event count."""
    tf = import_tf()
    values: dict[str, dict[int, Any]] = defaultdict(dict)
    graphs = 0
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            if event.graph_def:
                graphs += 1
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor)
                item = tensor.item()
                values[value.tag][event.step] = (
                    item.decode() if isinstance(item, bytes) else float(item)
                )
    return values, graphs


def test_write_profile_from_analysis_json(
    tmp_path: Path, tiny_graph: Any, real_analysis: dict
) -> None:
    logdir = write_tensorboard(tiny_graph, real_analysis["profile"], tmp_path / "tb")
    values, graphs = read_events(logdir)
    assert graphs == 1
    latency = real_analysis["profile"]["batches"]
    for bs in (1, 32):
        assert values["latency/p50_ms"][bs] == pytest.approx(latency[str(bs)]["latency"]["p50_ms"])
        shares = real_analysis["profile"]["batches"][str(bs)]["per_stage"]
        assert values["stage_share/string/lookup"][bs] == pytest.approx(shares["string/lookup"])
        assert values["stage_share/embedding_gather"][bs] == pytest.approx(
            shares["embedding gather"]
        )
        assert "StringToHashBucketFast" in values["profile/top_ops"][bs]
    assert values["op_type_us/MatMul"][32] > 0


def test_write_profile_from_the_fixture(tmp_path: Path, tiny_graph: Any) -> None:
    profile = fixtures.analysis_dict()["profile"]
    values, graphs = read_events(write_tensorboard(tiny_graph, profile, tmp_path / "tb"))
    assert graphs == 1
    batch = profile["batches"]["256"]
    assert values["latency/p99_ms"][256] == pytest.approx(batch["latency"]["p99_ms"])
    assert values["op_type_us/MatMul"][256] == pytest.approx(240.0)
    assert values["stage_share/dense/MLP"][256] == pytest.approx(0.4)  # the attribution's share
    table = values["profile/top_ops"][256]
    assert (
        f"| 1 | {fixtures.EVIL_NODE} | MatMul | _MklNativeFusedMatMul | 240 µs | 38.1% |" in table
    )


def test_write_profile_without_profile_writes_the_graph(tmp_path: Path, tiny_graph: Any) -> None:
    values, graphs = read_events(write_tensorboard(tiny_graph, None, tmp_path / "tb"))
    assert graphs == 1 and not values


def test_markdown_table_lists_most_expensive_first() -> None:
    batch = {
        "batch_size": 8,
        "latency": {"p50_ms": 1.0, "p90_ms": 1.2, "p99_ms": 1.5},
        "ops": [
            {"node": "small", "op": "Add", "runtime_ops": [], "self_us": 1.0, "share": 0.1},
            {
                "node": "big",
                "op": "MatMul",
                "runtime_ops": ["MatMul"],
                "self_us": 9.0,
                "share": 0.9,
            },
        ],
    }
    lines = top_ops_markdown(batch, top=1).splitlines()
    assert lines[-1].startswith("| 1 | big | MatMul | - |")
    assert not any("small" in line for line in lines)
