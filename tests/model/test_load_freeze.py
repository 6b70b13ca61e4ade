"""Loading, signature choice, freezing parity and re-export for every kind of export."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recadvisor.errors import ModelLoadError, SignatureError
from recadvisor.model.freeze import freeze
from recadvisor.model.load import inspect_saved_model, load_model
from recadvisor.model.runtime import GraphRunner, export_saved_model, run_loaded
from recadvisor.tfimport import import_tf
from tests.model import builders


def max_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float(np.max(np.abs(a[k].astype("float64") - b[k].astype("float64")))) for k in a)


def run_tf1_original(path: Path, feeds: dict) -> dict:
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        meta = v1.saved_model.loader.load(sess, ["serve"], str(path))
        sig = meta.signature_def["serving_default"]
        fetches = {k: v.name for k, v in sig.outputs.items()}
        feed = {sig.inputs[k].name: v for k, v in feeds.items()}
        return sess.run(fetches, feed_dict=feed)


def test_tf2_signatures_and_shapes(tf2_dir: Path) -> None:
    info = inspect_saved_model(tf2_dir)
    assert info.source_format == "tf2"
    assert set(info.signatures) == {"serving_default", "user_vector"}
    spec = info.choose_signature()
    assert spec.key == "serving_default"
    assert spec.inputs["age"].shape == (None, 1)
    assert spec.inputs["user_id"].shape == (None,)
    assert spec.inputs["user_id"].dtype == "string"
    assert set(spec.outputs) == {"score", "logit"}
    assert info.choose_signature("user_vector").key == "user_vector"


def test_unknown_signature_lists_available(tf2_dir: Path) -> None:
    with pytest.raises(SignatureError, match="available: serving_default, user_vector"):
        load_model(tf2_dir, "serve")


@pytest.mark.parametrize("signature", ["serving_default", "user_vector"])
def test_tf2_freeze_parity(tf2_dir: Path, signature: str) -> None:
    loaded = load_model(tf2_dir, signature)
    graph = freeze(loaded)
    feeds = {k: v for k, v in builders.tf2_feeds().items() if k in loaded.spec.inputs}
    ref = run_loaded(loaded.function, loaded.spec.inputs, feeds)
    out = GraphRunner(graph)(feeds)
    assert max_diff(ref, out) <= 1e-6
    ops = graph.op_counts()
    assert "ReadVariableOp" not in ops and "VarHandleOp" not in ops  # variables folded
    if signature == "serving_default":
        assert len(graph.tables) == 1
        table = next(iter(graph.tables.values()))
        assert table.size == 4 and table.key_dtype == "string"
        assert graph.nodes[table.placeholder].op == "Placeholder"
        assert "request_id" in graph.input_tensors  # never read, still in the signature


def test_tf1_freeze_parity(tf1_dir: Path) -> None:
    loaded = load_model(tf1_dir)
    assert loaded.info.source_format == "tf1"
    graph = freeze(loaded)
    feeds = builders.tf1_feeds()
    ref = run_tf1_original(tf1_dir, feeds)
    out = GraphRunner(graph)(feeds)
    assert max_diff(ref, out) <= 1e-6
    assert len(graph.tables) == 1
    assert next(iter(graph.tables.values())).default_value == -1
    assert "HashTableV2" not in graph.op_counts()


def test_keras3_export_parity(keras3_dir: Path) -> None:
    info = inspect_saved_model(keras3_dir)
    assert {"serve", "serving_default"} <= set(info.signatures)
    loaded = load_model(keras3_dir)
    graph = freeze(loaded)
    feeds = builders.keras3_feeds()
    ref = run_loaded(loaded.function, loaded.spec.inputs, feeds)
    assert max_diff(ref, GraphRunner(graph)(feeds)) <= 1e-6
    assert graph.tables, "StringLookup's table must be captured"


def test_tf_keras2_save_parity(tmp_path: Path) -> None:
    path = builders.build_tf_keras2_save(tmp_path / "k2")
    loaded = load_model(path)
    graph = freeze(loaded)
    feeds = builders.tf_keras2_feeds()
    ref = run_loaded(loaded.function, loaded.spec.inputs, feeds)
    assert max_diff(ref, GraphRunner(graph)(feeds)) <= 1e-6
    assert graph.tables


@pytest.mark.parametrize("kind", ["tf2", "tf1", "keras3"])
def test_reexport_keeps_signature_and_outputs(
    kind: str, tf2_dir: Path, tf1_dir: Path, keras3_dir: Path, tmp_path: Path
) -> None:
    src, feeds = {
        "tf2": (tf2_dir, builders.tf2_feeds()),
        "tf1": (tf1_dir, builders.tf1_feeds()),
        "keras3": (keras3_dir, builders.keras3_feeds()),
    }[kind]
    loaded = load_model(src)
    graph = freeze(loaded)
    out_dir = export_saved_model(graph, tmp_path / "re")
    again = load_model(out_dir)
    assert again.spec == loaded.spec  # same keys, dtypes and shapes
    ref = GraphRunner(graph)(feeds)
    assert max_diff(ref, run_loaded(again.function, again.spec.inputs, feeds)) <= 1e-6
    # the big constants went back into variables/
    assert (out_dir / "variables" / "variables.index").is_file()


@pytest.mark.slow  # runs real subprocesses
def test_saved_model_cli_accepts_reexport(tf2_dir: Path, tmp_path: Path) -> None:
    graph = freeze(load_model(tf2_dir))
    out_dir = export_saved_model(graph, tmp_path / "re")
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    show = subprocess.run(
        cli + ["show", "--all", "--dir", str(out_dir)], capture_output=True, text=True, timeout=120
    )
    assert show.returncode == 0, show.stderr[-2000:]
    assert "signature_def['serving_default']" in show.stdout
    exprs = "user_id=['u1','u2'];age=[[30],[40]];category=['books','x'];request_id=['r','s']"
    run = subprocess.run(
        cli
        + [
            "run",
            "--dir",
            str(out_dir),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            exprs,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "score" in run.stdout


def test_export_refuses_existing_dir(tf1_dir: Path, tmp_path: Path) -> None:
    from recadvisor.errors import OutputExistsError

    graph = freeze(load_model(tf1_dir))
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError, match="--force"):
        export_saved_model(graph, tmp_path / "out")
    export_saved_model(graph, tmp_path / "out", force=True)
    assert (tmp_path / "out" / "saved_model.pb").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


@pytest.mark.parametrize(
    "damage, match",
    [
        ("missing", "does not exist"),
        ("file", "is a file"),
        ("empty", "not a SavedModel"),
        ("corrupt", "corrupt"),
        ("truncated", "corrupt|truncated|no meta graph"),
        ("no_variables", "cannot load"),
    ],
)
def test_bad_model_dirs(damage: str, match: str, tf2_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "m"
    if damage == "file":
        target.write_text("x")
    elif damage == "empty":
        target.mkdir()
    elif damage in ("corrupt", "truncated", "no_variables"):
        shutil.copytree(tf2_dir, target)
        pb = target / "saved_model.pb"
        if damage == "corrupt":
            pb.write_bytes(b"\x0a\xff\xff\xff\xff\x0f garbage" * 50)
        elif damage == "truncated":
            pb.write_bytes(pb.read_bytes()[:200])
        else:
            shutil.rmtree(target / "variables")
    with pytest.raises(ModelLoadError, match=match):
        load_model(target)
