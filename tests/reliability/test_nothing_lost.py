"""Nothing lost (issue #7): inputs stay byte-identical, outputs appear only by renaming a temp dir
into place, and a rolled-back pass leaves no trace in the rebuilt model."""

from __future__ import annotations

import errno
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from tests.reliability.conftest import RunCli
from tests.reliability.models import tree_digest


@pytest.fixture(scope="module")
def fast_rebuild(
    ranker_dir: Path, ranker_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A ``fast`` rebuild of the ranker (string ids upstream: it has a feature contract)."""
    from recadvisor import api

    out = tmp_path_factory.mktemp("fast") / "rebuilt"
    api.rebuild(ranker_dir, out, preset="fast", data=ranker_data)
    assert (out / "feature_contract.json").is_file()
    return out


def _commands(
    model: Path, data: Path, plan: Path, fast: Path, tmp: Path
) -> dict[str, tuple[list[object], Path | None]]:
    """command -> (CLI arguments, the output it writes)."""
    return {
        "describe": (["describe", model, "--json"], None),
        "analyze": (
            ["analyze", model, "--data", data, "--batch-sizes", "1", "--out", tmp / "analysis"],
            tmp / "analysis",
        ),
        "rebuild": (
            ["rebuild", model, "--plan", plan, "--data", data, "--out", tmp / "rebuilt"],
            tmp / "rebuilt",
        ),
        "compare": (
            [
                "compare",
                model,
                fast,
                "--data",
                data,
                "--batch-sizes",
                "1",
                "--requests",
                "5",
                "--no-memory",
                "--out",
                tmp / "cmp",
            ],
            tmp / "cmp",
        ),
        "encode": (
            ["encode", fast, "--data", data, "--out", tmp / "encoded.parquet"],
            tmp / "encoded.parquet",
        ),
    }


@pytest.mark.parametrize("command", ["describe", "analyze", "rebuild", "compare", "encode"])
def test_inputs_unchanged_and_outputs_renamed_into_place(
    command: str,
    ranker_dir: Path,
    ranker_data: Path,
    plans: dict[str, Path],
    fast_rebuild: Path,
    tmp_path: Path,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args, output = _commands(ranker_dir, ranker_data, plans["safe"], fast_rebuild, tmp_path)[
        command
    ]
    inputs = (ranker_dir, ranker_data, plans["safe"], fast_rebuild)
    before = tree_digest(*inputs)
    moves: list[tuple[Path, Path]] = []
    for name in ("rename", "replace"):
        real = getattr(os, name)

        def spy(src: object, dst: object, _real=real) -> None:
            if Path(dst) == output:
                assert not Path(dst).exists(), "the output appeared before the final rename"
            moves.append((Path(src), Path(dst)))
            _real(src, dst)

        monkeypatch.setattr(os, name, spy)
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert tree_digest(*inputs) == before  # byte-identical, no file added or removed
    if output is None:
        assert moves == [] and list(tmp_path.iterdir()) == []
        return
    final_moves = [src for src, dst in moves if dst == output]
    assert len(final_moves) == 1
    src = final_moves[0]
    assert src.parent == output.parent and src.name.startswith(f".{output.name}.")
    assert output.exists() and not src.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [output.name]  # no temp dir left


def _op_counts(saved_model: Path) -> Counter[str]:
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((saved_model / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].graph_def
    counts = Counter(n.op for n in graph.node)
    for fn in graph.library.function:
        counts.update(n.op for n in fn.node_def)
    return counts


def _node_names(saved_model: Path) -> list[str]:
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((saved_model / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].graph_def
    names = [n.name for n in graph.node]
    for fn in graph.library.function:
        names += [n.name for n in fn.node_def]
    return names


def test_rolled_back_pass_leaves_no_trace(
    ranker_dir: Path, ranker_data: Path, plans: dict[str, Path], tmp_path: Path, run_cli: RunCli
) -> None:
    """int8 tables with a 1e-12 tolerance must roll back; the output equals the plain rebuild."""
    for name in ("safe", "rollback"):
        result = run_cli(
            "rebuild",
            ranker_dir,
            "--plan",
            plans[name],
            "--data",
            ranker_data,
            "--out",
            tmp_path / name,
        )
        assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "rollback" / "rebuild.json").read_text())
    assert "quantize_embeddings" in report["passes"]["rolled_back"]
    record = next(r for r in report["passes"]["passes"] if r["name"] == "quantize_embeddings")
    assert record["status"] == "rolled_back" and "rolled back" in record["reason"]
    assert report["passed"] is True
    rolled, plain = tmp_path / "rollback" / "saved_model", tmp_path / "safe" / "saved_model"
    assert _op_counts(rolled) == _op_counts(plain)
    assert not [n for n in _node_names(rolled) if "int8" in n or "dequantize" in n]
    assert sorted(p.name for p in (rolled / "variables").iterdir()) == sorted(
        p.name for p in (plain / "variables").iterdir()
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rollback", "safe"]


def test_failed_replace_keeps_the_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--force over an existing output: if the final rename fails, the old output stays."""
    from recadvisor.errors import OutputWriteError
    from recadvisor.output import atomic_output_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous run")
    real = os.rename

    def rename(src: object, dst: object) -> None:
        if Path(dst) == out and Path(src).name.startswith(".out.tmp-"):
            raise OSError(errno.EROFS, "Read-only file system")
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OutputWriteError, match="Read-only file system"):
        with atomic_output_dir(out, force=True) as tmp:
            (tmp / "new.txt").write_text("this run")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in out.iterdir()] == ["old.txt"]
