"""compare in the serving runtime: requests, concurrency, settings, the fallback, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recadvisor import api
from recadvisor.cli import app
from recadvisor.compare import FLOOR
from recadvisor.serving import workloads
from recadvisor.serving.settings import SETTINGS, get_setting
from tests.serving.conftest import ServingModel

runner = CliRunner()


def _compare(model: ServingModel, **kwargs: object) -> dict:
    comp = api.compare(
        model.path,
        [model.path],
        data=model.data,
        requests=16,
        measure_memory=False,
        **kwargs,
    )
    return comp.to_dict()


def test_tf_c_runtime_times_every_savedmodel_in_c(two_tower: ServingModel) -> None:
    comp = _compare(two_tower, runtime="tf-c", batch_sizes=(1, 8), also_python=True)
    serving = comp["serving"]
    assert comp["runtime"] == serving["runtime"] == "tf-c"
    assert serving["c_models"] == ["baseline", "two_tower", FLOOR]
    assert serving["c_parity"] == {k: 0.0 for k in serving["c_models"]}
    for m in comp["models"]:
        for bs in ("1", "8"):
            assert m["latency"][bs]["calls"] == 16 and m["latency"][bs]["p50_ms"] > 0
    # the Python figures ride along, and the call floor is far lower in C than in Python
    python = serving["python_p50_ms"]
    assert set(python) == {"baseline", "two_tower", FLOOR}
    assert comp["floor"]["1"]["p50_ms"] < python[FLOOR]["1"]


def test_missing_compiler_falls_back_to_python(
    two_tower: ServingModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECADVISOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler-recadvisor")
    comp = _compare(two_tower, runtime="tf-c", batch_sizes=(1,))
    assert comp["runtime"] == "python"
    notes = [n for n in comp["notes"] if "C runtime cannot be built" in n]
    assert len(notes) == 1 and "no C compiler" in notes[0] and "timed in Python" in notes[0]
    assert comp["models"][0]["latency"]["1"]["calls"] == 16
    comp = _compare(two_tower, runtime="python", batch_sizes=(1,), candidate_setting="per_session")
    assert any("applies to C sessions only" in n for n in comp["notes"])


def test_c_program_failure_falls_back_to_python(
    two_tower: ServingModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recadvisor.serving import tfc

    real = tfc.served_model

    def broken(*args: object, **kwargs: object) -> tfc.TfcModel:
        model = real(*args, **kwargs)
        return tfc.TfcModel(
            model.label, model.export_dir, model.tags, model.inputs, {"score": ("nope", 0)}
        )

    monkeypatch.setattr(tfc, "served_model", broken)
    comp = _compare(two_tower, runtime="tf-c", batch_sizes=(1,))
    assert comp["runtime"] == "python"
    assert any("C runtime failed on these models" in n and "nope" in n for n in comp["notes"])


def test_request_mode_repeats_the_user_and_reports_candidates_per_second(
    two_tower: ServingModel,
) -> None:
    comp = _compare(two_tower, runtime="tf-c", request_size=16, batch_sizes=(1, 256))
    assert comp["batch_sizes"] == [16]
    notes = [n for n in comp["notes"] if n.startswith("requests:")]
    assert len(notes) == 1 and "user_age, user_id taken as per-request" in notes[0]
    request = comp["serving"]["request"]
    assert request["candidates"] == 16
    for label in ("baseline", "two_tower"):
        m = request["models"][label]
        assert m["p99_ms"] >= m["p50_ms"] > 0
        assert m["candidates_per_s"] == pytest.approx(16 / (m["p50_ms"] / 1e3))
    assert all(m["parity_passed"] for m in comp["models"][1:])


@pytest.mark.parametrize("runtime", ["python", "tf-c"])
def test_concurrency_reports_throughput_and_p99(two_tower: ServingModel, runtime: str) -> None:
    comp = _compare(
        two_tower,
        runtime=runtime,
        batch_sizes=(4,),
        concurrency=(1, 2),
        concurrency_seconds=0.3,
    )
    conc = comp["serving"]["concurrency"]
    assert set(conc) == {"baseline", "two_tower"}
    for per in conc.values():
        assert set(per) == {"1", "2"}
        for callers, s in per.items():
            assert s["callers"] == int(callers) and s["runtime"] == runtime
            assert s["calls"] > 0 and s["p99_ms"] >= s["p50_ms"] > 0
            assert s["rows_per_s"] == pytest.approx(4 * s["calls_per_s"])


def test_candidate_setting_is_recorded(two_tower: ServingModel) -> None:
    comp = _compare(two_tower, runtime="tf-c", batch_sizes=(1,), candidate_setting="caller_thread")
    setting = comp["serving"]["candidate_setting"]
    assert setting["name"] == "caller_thread"
    assert setting["inter_op_parallelism_threads"] == -1
    assert comp["models"][1]["parity_passed"]


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown runtime 'java'"):
        workloads.check_options("java", None)
    with pytest.raises(ValueError, match="unknown session setting 'turbo'"):
        workloads.check_options("tf-c", "turbo")
    with pytest.raises(ValueError, match="process-wide intra-op pool"):
        workloads.check_options("tf-c", "intra1")
    configs = workloads.check_options("tf-c", "caller_thread")(["a", "b"])
    assert (
        set(configs) == {"a", "b"} and configs["a"] == get_setting("caller_thread").config_bytes()
    )
    assert workloads.check_options("python", None)(["a"]) == {}


def test_threads_apply_to_every_c_session() -> None:
    from tensorflow.core.protobuf import config_pb2

    caller = workloads.check_options("tf-c", "caller_thread")(["cand"])
    configs = workloads.with_threads(caller, ["base", "cand"], 3)
    base = config_pb2.ConfigProto.FromString(configs["base"])
    cand = config_pb2.ConfigProto.FromString(configs["cand"])
    assert (base.intra_op_parallelism_threads, base.inter_op_parallelism_threads) == (3, 3)
    assert (cand.intra_op_parallelism_threads, cand.inter_op_parallelism_threads) == (3, -1)


def test_settings_as_config_proto_and_serving_flags() -> None:
    from tensorflow.core.protobuf import config_pb2

    caller = get_setting("caller_thread")
    proto = config_pb2.ConfigProto.FromString(caller.config_bytes())
    assert proto.inter_op_parallelism_threads == -1
    assert caller.config_text() == "inter_op_parallelism_threads: -1"
    # TF Serving applies the pair only when one of them is positive
    assert caller.serving_flags(cores=2) == [
        "--tensorflow_intra_op_parallelism=2",
        "--tensorflow_inter_op_parallelism=-1",
    ]
    assert get_setting("default").config_bytes() == b""
    assert get_setting("default").serving_flags() == []
    assert get_setting("per_session").serving_flags() == []
    assert "use_per_session_threads: true" in get_setting("per_session").config_text()
    assert set(SETTINGS) >= {"default", "caller_thread", "intra1", "per_session"}


@pytest.mark.slow
def test_cli_request_preset_then_serving_compare(two_tower: ServingModel, tmp_path: Path) -> None:
    rebuilt = tmp_path / "request"
    result = runner.invoke(
        app,
        ["rebuild", str(two_tower.path), "--preset", "request", "--data", str(two_tower.data)]
        + ["--out", str(rebuilt)],
    )
    assert result.exit_code == 0, result.output
    contract = json.loads((rebuilt / "feature_contract.json").read_text())
    assert "broadcast" in json.dumps(contract)
    out = tmp_path / "cmp"
    args = ["compare", str(two_tower.path), str(rebuilt), "--data", str(two_tower.data)]
    args += ["--runtime", "tf-c", "--request", "16", "--concurrency", "1,2"]
    args += ["--concurrency-seconds", "0.3", "--requests", "16", "--no-memory", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "runtime: tf-c" in result.output and "candidates/s" in result.output
    comp = json.loads((out / "compare.json").read_text())
    assert comp["runtime"] == "tf-c" and comp["batch_sizes"] == [16]
    per_request = comp["serving"]["request"]["per_request_inputs"]
    assert "user_id" in per_request["request"]  # the rebuilt model takes the user once
    assert "baseline" not in per_request  # the original takes it on every row
    assert comp["models"][1]["parity_passed"]
    assert set(comp["serving"]["concurrency"]["request"]) == {"1", "2"}
    html = (out / "compare.html").read_text()
    assert 'id="serving"' in html and "one user x 16 candidates" in html
    assert "Closed loops of concurrent callers" in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runtime", "java"], "unknown runtime"),
        (["--candidate-setting", "intra1"], "process-wide"),
        (["--request", "0"], "positive number of candidates"),
        (["--concurrency", "1,x"], "positive integers"),
    ],
)
def test_cli_bad_serving_options_are_usage_errors(
    two_tower: ServingModel, tmp_path: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(
        app,
        ["compare", str(two_tower.path), str(two_tower.path), "--out", str(tmp_path / "o")] + args,
    )
    assert result.exit_code == 2
    assert message in result.output
