"""rebuild() end to end: files, drop-in signature, parity vs the original, saved_model_cli."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recadvisor.errors import OutputExistsError, PlanError
from recadvisor.model.load import inspect_saved_model, load_model
from recadvisor.model.runtime import run_loaded
from recadvisor.plan import check_plan_fits, load_plan, preset_plan
from recadvisor.rebuild import RebuildResult, rebuild, table_vocabularies
from recadvisor.verify import compare_outputs
from tests.rewrite.conftest import TinyModel


def _tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def safe_rebuild(
    ranker: TinyModel, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RebuildResult, str]:
    digest = _tree_digest(ranker.path)
    out = tmp_path_factory.mktemp("rebuilt") / "out"
    return rebuild(ranker.path, out, data=ranker.feeds), digest


def test_outputs_and_report(safe_rebuild: tuple[RebuildResult, str], ranker: TinyModel) -> None:
    result, digest = safe_rebuild
    out = Path(result.out_dir)
    assert sorted(p.name for p in out.iterdir()) == ["plan.yaml", "rebuild.json", "saved_model"]
    assert _tree_digest(ranker.path) == digest  # the input model is untouched
    report = json.loads((out / "rebuild.json").read_text())
    assert report["passed"] is True
    assert report["passes"]["applied"] == [
        "strip_control_deps",
        "drop_unused_inputs",
        "merge_duplicates",
        "grappler_optimize",
    ]
    assert report["parity"]["final_vs_original"]["max_abs_diff"] <= 1e-5
    assert report["parity"]["exported_vs_original"]["passed"] is True
    assert set(report["parity"]["exported_vs_original"]["outputs"]) == {"ctr", "cvr"}
    assert report["nodes"]["final"] < report["nodes"]["frozen"] // 2
    assert report["op_counts"]["final"].get("_FusedMatMul") == 1
    assert "NoOp" not in report["op_counts"]["final"]
    assert report["sizes"]["saved_model_bytes"] > 0 and report["data"]["source"] == "given"
    assert not (out / "feature_contract.json").exists()
    plan = load_plan(out / "plan.yaml")
    assert plan.preset == "safe"
    check_plan_fits(plan, ranker.graph)


def test_drop_in_signature(safe_rebuild: tuple[RebuildResult, str], ranker: TinyModel) -> None:
    result, _ = safe_rebuild
    original = inspect_saved_model(ranker.path).signatures["serving_default"]
    rebuilt = inspect_saved_model(result.saved_model_dir).signatures["serving_default"]
    assert rebuilt.inputs == original.inputs and rebuilt.outputs == original.outputs
    reloaded = load_model(result.saved_model_dir)
    got = run_loaded(reloaded.function, reloaded.spec.inputs, ranker.feeds)
    original_model = load_model(ranker.path)
    want = run_loaded(original_model.function, original_model.spec.inputs, ranker.feeds)
    assert compare_outputs(want, got, 1e-5).passed


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # the script TensorFlow installs beside this interpreter (its venv need not be on PATH)
    beside = Path(sys.executable).parent / "saved_model_cli"
    return subprocess.run(
        [str(beside) if beside.is_file() else "saved_model_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.slow  # runs real subprocesses
def test_saved_model_cli(safe_rebuild: tuple[RebuildResult, str]) -> None:
    result, _ = safe_rebuild
    shown = _cli("show", "--all", "--dir", result.saved_model_dir)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "signature_def['serving_default']" in shown.stdout and "outputs['ctr']" in shown.stdout
    ran = _cli(
        "run",
        "--dir",
        result.saved_model_dir,
        "--tag_set",
        "serve",
        "--signature_def",
        "serving_default",
        "--input_exprs",
        'user=["u1","u2"];item=["apple","zzz"];price=[[0.5],[1.0]];unused=["x","y"]',
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "Result for output key ctr" in ran.stdout and "Result for output key cvr" in ran.stdout


def test_existing_output_needs_force(
    safe_rebuild: tuple[RebuildResult, str], ranker: TinyModel
) -> None:
    result, _ = safe_rebuild
    with pytest.raises(OutputExistsError, match="--force"):
        rebuild(ranker.path, result.out_dir, data=ranker.feeds)
    with pytest.raises(OutputExistsError, match="overlaps the input model"):
        rebuild(ranker.path, ranker.path / "rebuilt", data=ranker.feeds, force=True)


def test_plan_for_another_model_refused(
    ranker: TinyModel, tf1_ranker: TinyModel, tmp_path: Path
) -> None:
    plan = preset_plan("safe", tf1_ranker.graph)
    with pytest.raises(PlanError, match="fingerprint"):
        rebuild(ranker.path, tmp_path / "out", plan=plan, data=ranker.feeds)
    assert not (tmp_path / "out").exists()


def test_prune_plan_and_synthesized_rows(ranker: TinyModel, tmp_path: Path) -> None:
    """Plan file with prune_outputs; no data: rows are synthesized from the vocabularies."""
    vocab = table_vocabularies(ranker.graph)
    assert vocab["item"][:2] and set(vocab["item"]) == {
        "apple",
        "banana",
        "cherry",
        "date",
        "elder",
    }
    plan_path = tmp_path / "plan.yaml"
    text = json.dumps(preset_plan("safe", ranker.graph).to_dict())
    plan = json.loads(text)
    for entry in plan["rewrites"]:
        if entry["pass"] == "prune_outputs":
            entry["enabled"], entry["params"] = True, {"keep": ["cvr"]}
    plan_path.write_text(json.dumps(plan))
    result = rebuild(ranker.path, tmp_path / "out", plan=plan_path, force=True)
    assert result.passed and result.data["source"] == "synthetic"
    assert result.pipeline.record("prune_outputs").status == "applied"
    assert list(result.graph.signature.outputs) == ["cvr"]
    assert any("outputs dropped" in n for n in result.notes)
    rebuilt = inspect_saved_model(result.saved_model_dir).signatures["serving_default"]
    assert list(rebuilt.outputs) == ["cvr"]


def test_tf1_model(tf1_ranker: TinyModel, tmp_path: Path) -> None:
    result = rebuild(tf1_ranker.path, tmp_path / "out", data=tf1_ranker.feeds)
    assert result.passed and result.source_format == "tf1"
    assert result.parity.max_abs_diff <= 1e-5
    assert result.pipeline.record("merge_duplicates").status == "applied"
    rebuilt = inspect_saved_model(result.saved_model_dir).signatures["serving_default"]
    original = inspect_saved_model(tf1_ranker.path).signatures["serving_default"]
    assert rebuilt.inputs == original.inputs
    assert np.isfinite(result.export_parity.max_abs_diff)


def test_fast_preset_writes_feature_contract(ranker: TinyModel, tmp_path: Path) -> None:
    from recadvisor.rewrite import encodings

    result = rebuild(ranker.path, tmp_path / "out", preset="fast", data=ranker.feeds)
    assert result.pipeline.record("ids_upstream").status == "applied"
    contract = json.loads((tmp_path / "out" / "feature_contract.json").read_text())
    assert {e["input"] for e in contract["encodings"]} >= {"user"}
    assert contract["original_signature"]["inputs"]["user"]["dtype"] == "string"
    rebuilt = inspect_saved_model(result.saved_model_dir).signatures["serving_default"]
    assert rebuilt.inputs["user"].dtype == "int64"
    # the encoder turns raw rows into what the rebuilt model takes, with the same scores
    encoded = encodings.encode_feeds(result.pipeline.encodings, ranker.feeds)
    reloaded = load_model(result.saved_model_dir)
    got = run_loaded(reloaded.function, reloaded.spec.inputs, encoded)
    original = load_model(ranker.path)
    want = run_loaded(original.function, original.spec.inputs, ranker.feeds)
    assert compare_outputs(want, got, 1e-5).passed


def test_data_file_with_labels(ranker: TinyModel, tmp_path: Path) -> None:
    import pandas as pd

    feeds = ranker.feeds
    frame = pd.DataFrame(
        {
            "user": feeds["user"],
            "item": feeds["item"],
            "price": feeds["price"][:, 0],
            "unused": feeds["unused"],
            "label": np.arange(len(feeds["user"])) % 2,
        }
    )
    frame.to_parquet(tmp_path / "rows.parquet")
    result = rebuild(ranker.path, tmp_path / "out", data=tmp_path / "rows.parquet")
    assert result.passed
    assert result.data == {
        "source": "file",
        "path": str(tmp_path / "rows.parquet"),
        "rows": len(frame),
        "labels": True,
        "note": "",
    }
