"""``api.write_tensorboard``: the frozen graph and the profile as TensorBoard summaries."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from recadvisor.analysis.profile import BatchProfile, OpTiming, Profile
from recadvisor.api import write_tensorboard
from recadvisor.bench import LatencySummary
from recadvisor.report.tensorboard import top_ops_markdown
from recadvisor.tfimport import import_tf


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


def test_write_profile_from_profile_object(tmp_path: Path, tiny_graph: Any) -> None:
    ops = (
        OpTiming("a|b", "MatMul", ("_MklNativeFusedMatMul",), 30.0, 0.75),
        OpTiming("hash", "StringToHashBucketFast", ("_TensorToHashBucketFast",), 10.0, 0.25),
    )
    profile = Profile(
        batches=(BatchProfile(4, LatencySummary(4, 10, 0.3, 0.4, 0.5, 0.35, 0.0), ops, 0.0, 5),),
        signature="serving_default",
    )
    values, graphs = read_events(write_tensorboard(tiny_graph, profile.to_dict(), tmp_path / "tb"))
    assert graphs == 1
    assert values["latency/p99_ms"][4] == pytest.approx(0.5)
    assert values["op_type_us/MatMul"][4] == pytest.approx(30.0)
    assert values["stage_share/dense/MLP"][4] == pytest.approx(0.75)
    table = values["profile/top_ops"][4]
    assert "| 1 | a\\|b | MatMul | _MklNativeFusedMatMul | 30 µs | 75.0% |" in table


def test_write_profile_without_profile_writes_the_graph(tmp_path: Path, tiny_graph: Any) -> None:
    values, graphs = read_events(write_tensorboard(tiny_graph, None, tmp_path / "tb"))
    assert graphs == 1 and not values


def test_markdown_table_lists_most_expensive_first() -> None:
    batch = {
        "batch_size": 8,
        "latency": {"p50_ms": 1.0},
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
