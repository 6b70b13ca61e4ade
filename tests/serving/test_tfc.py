"""The C runtime: build, parity with Python (string and numeric inputs), timing, fallback."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from recadvisor.bench import SavedModelRunner, take_rows
from recadvisor.model.load import inspect_saved_model
from recadvisor.serving import tfc
from tests.serving.conftest import ServingModel


@pytest.fixture(scope="module")
def program() -> Path:
    return tfc.build_program()


def test_program_builds_and_is_cached(program: Path) -> None:
    assert program.is_file() and os.access(program, os.X_OK)
    assert program.is_relative_to(tfc.cache_dir())
    assert tfc.build_program() == program  # the second call reuses the build


@pytest.mark.slow
def test_program_builds_from_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECADVISOR_CACHE_DIR", str(tmp_path))
    built = tfc.build_program()
    assert built.is_file() and built.is_relative_to(tmp_path)
    assert not list(built.parent.glob(".tfc_bench.*"))  # no half-written file left


def test_model_description_reads_the_signature(two_tower: ServingModel) -> None:
    model = tfc.served_model("m", two_tower.path)
    assert set(model.inputs) == set(two_tower.feeds)
    assert model.inputs["user_id"][2] == tfc.TF_STRING
    assert model.inputs["item_count"][2] == 9  # TF_INT64
    assert model.inputs["user_age"][0].startswith("serving_default_")
    assert set(model.outputs) == {"score", "user_vec"}
    assert model.tags == ("serve",)


@pytest.mark.parametrize("rows", [1, 7, 64])
def test_c_outputs_match_python(program: Path, two_tower: ServingModel, rows: int) -> None:
    feeds = take_rows(two_tower.feeds, rows)
    model = tfc.served_model("m", two_tower.path)
    got = tfc.run_outputs([model], {"m": feeds})["m"]
    runner = SavedModelRunner(two_tower.path)
    want = runner.run(runner.prepare(feeds))
    assert set(got) == set(want)
    for key in want:
        assert got[key].shape == want[key].shape and got[key].dtype == want[key].dtype
        np.testing.assert_array_equal(got[key], want[key])


def test_c_outputs_see_every_string_byte(program: Path, two_tower: ServingModel) -> None:
    """Changing only the long (heap) user ids changes the C outputs: strings really go in."""
    feeds = take_rows(two_tower.feeds, 16)
    other = dict(feeds)
    other["user_id"] = np.array([s + "x" for s in feeds["user_id"]], dtype=object)
    model = tfc.served_model("m", two_tower.path)
    a = tfc.run_outputs([model], {"m": feeds})["m"]["user_vec"]
    b = tfc.run_outputs([model], {"m": other})["m"]["user_vec"]
    assert not np.array_equal(a, b)


def test_time_models_interleaves_every_model_and_case(
    program: Path, two_tower: ServingModel
) -> None:
    a = tfc.served_model("a", two_tower.path)
    b = tfc.served_model("b", two_tower.path, config=b"")
    cases = [{k: take_rows(two_tower.feeds, bs) for k in ("a", "b")} for bs in (1, 32)]
    timed = tfc.time_models([a, b], cases, requests=12, warmup=2, burst=4)
    assert len(timed) == 2
    for case in timed:
        assert set(case) == {"a", "b"}
        for seconds in case.values():
            assert len(seconds) == 12 and all(0 < s < 5 for s in seconds)


def test_concurrency_runs_closed_loops(program: Path, two_tower: ServingModel) -> None:
    model = tfc.served_model("m", two_tower.path)
    runs = tfc.time_concurrency(
        [model], {"m": take_rows(two_tower.feeds, 4)}, [1, 2], seconds=0.3, rounds=2, warmup=2
    )
    for callers in (1, 2):
        run = runs["m"][callers]
        assert run.callers == callers and run.calls == len(run.latencies) > 0
        assert 0.25 < run.seconds < 5
        assert sum(run.latencies) <= run.seconds * callers * 1.05


def test_session_config_is_applied(program: Path, two_tower: ServingModel) -> None:
    bad = tfc.served_model("m", two_tower.path, config=b"\xff\xff")
    with pytest.raises(RuntimeError, match="bad session config"):
        tfc.run_outputs([bad], {"m": take_rows(two_tower.feeds, 1)})


def test_unknown_tensor_is_one_clear_error(program: Path, two_tower: ServingModel) -> None:
    model = tfc.served_model("m", two_tower.path)
    broken = tfc.TfcModel(
        "m", model.export_dir, model.tags, model.inputs, {"score": ("no_such_op", 0)}
    )
    with pytest.raises(RuntimeError, match="has no operation no_such_op"):
        tfc.run_outputs([broken], {"m": take_rows(two_tower.feeds, 1)})


def test_missing_compiler_is_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECADVISOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler-recadvisor")
    with pytest.raises(tfc.TfcUnavailableError, match="no C compiler"):
        tfc.build_program()
    monkeypatch.delenv("CC")
    monkeypatch.setenv("PATH", str(tmp_path))  # neither gcc nor cc
    with pytest.raises(tfc.TfcUnavailableError, match="no C compiler"):
        tfc.build_program()


def test_tf1_model_runs_in_c(program: Path, tmp_path: Path) -> None:
    from tests.model.builders import build_tf1_estimator_style, tf1_feeds

    path = build_tf1_estimator_style(tmp_path / "tf1")
    spec = inspect_saved_model(path).choose_signature(None)
    feeds = {k: v for k, v in tf1_feeds(4).items() if k in spec.inputs}
    model = tfc.served_model("m", path)
    got = tfc.run_outputs([model], {"m": feeds})["m"]
    runner = SavedModelRunner(path)
    want = runner.run(runner.prepare(feeds))
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6)
