"""Benchmark the sample models where they are served: TensorFlow's C runtime, with Python beside it.

For each sample (dssm, esmm, din), interleaved in one process per comparison (medians):

* batch table: ``baseline``, ``safe``, ``fast`` and ``fast + ONNX`` at batch 1 and 256, timed in
  the C runtime (SavedModels through ``TF_SessionRun`` in a C loop; ONNX through onnxruntime's
  Python API, with the cost of a trivial ONNX call beside it) and in Python (the keyword
  signature call) in the same run;
* request table: one request of one user x 256 candidates for ``baseline``, ``safe``,
  ``request`` (``fast`` + ``per_request_dedup``) and ``request + ONNX``, p50/p99 per request,
  candidates per second, and closed loops of 1 and 2 callers;
* serving settings: each session setting on the baseline in its own C process (batch 1 and the
  request, 1 and 2 callers), the best one and its gain; and ``safe`` with the caller-thread
  setting next to the original with TensorFlow's defaults.

Writes ``<out>/serving.json`` and ``<out>/serving.md`` and prints the tables.

Usage: ``python benchmarks/serving.py [--models sample_models] [--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from recadvisor import api
from recadvisor.compare import FLOOR, machine_info
from recadvisor.samples import SAMPLE_NAMES, build_samples

REQUEST = 256


def _rebuild(base: Path, data: Path, target: Path, preset: str, onnx: bool) -> dict[str, Any]:
    try:
        api.rebuild(base, target, preset=preset, data=data, onnx=onnx, force=True)
    except Exception as e:  # noqa: BLE001 - a failed variant is a result too
        return {"path": None, "note": f"{type(e).__name__}: {e}"[:200]}
    return {"path": str(target)}


def run(models: Path, requests: int, names: list[str], settings: bool) -> dict[str, Any]:
    """Rebuild, compare and time settings for each sample; the ``serving.json`` dict."""
    from recadvisor.data import load_feeds
    from recadvisor.model.load import inspect_saved_model
    from recadvisor.rewrite.per_request_dedup import detect_request_inputs
    from recadvisor.serving.tuning import time_settings

    missing = [n for n in names if not (models / n / "saved_model").is_dir()]
    if missing:
        build_samples(models, names=missing)
    report: dict[str, Any] = {"machine": machine_info(), "requests": requests, "samples": {}}
    work = Path(tempfile.mkdtemp(prefix="recadvisor-serving-bench-"))
    try:
        for name in names:
            t0 = time.perf_counter()
            base = models / name / "saved_model"
            data = models / name / "sample.parquet"
            variants = {
                preset: _rebuild(base, data, work / name / preset, preset, preset != "safe")
                for preset in ("safe", "fast", "request")
            }
            batch = [base] + [
                Path(v["path"]) for p, v in variants.items() if v["path"] and p != "request"
            ]
            if variants["fast"]["path"] and (work / name / "fast" / "model.onnx").is_file():
                batch.append(work / name / "fast" / "model.onnx")
            batch_cmp = api.compare(
                base,
                batch[1:],
                data=data,
                batch_sizes=(1, 256),
                requests=requests,
                measure_memory=False,
                runtime="tf-c",
                also_python=True,
            ).to_dict()
            req = [base]
            for preset in ("safe", "request"):
                if variants[preset]["path"]:
                    req.append(Path(variants[preset]["path"]))
            if (work / name / "request" / "model.onnx").is_file():
                req.append(work / name / "request" / "model.onnx")
            request_cmp = api.compare(
                base,
                req[1:],
                data=data,
                requests=requests,
                measure_memory=False,
                runtime="tf-c",
                request_size=REQUEST,
                concurrency=(1, 2),
                concurrency_seconds=1.0,
            ).to_dict()
            sample: dict[str, Any] = {
                "variants": variants,
                "batch": batch_cmp,
                "request": request_cmp,
            }
            if variants["safe"]["path"]:
                # the rebuilt model with the caller-thread setting next to the original with
                # TensorFlow's defaults (a per-session setting: one process is fair)
                sample["safe_with_setting"] = api.compare(
                    base,
                    [Path(variants["safe"]["path"])],
                    data=data,
                    batch_sizes=(1, 256),
                    requests=requests,
                    measure_memory=False,
                    runtime="tf-c",
                    candidate_setting="caller_thread",
                ).to_dict()
            if settings:
                spec = inspect_saved_model(base).choose_signature(None)
                feeds = load_feeds(data, spec).feeds
                sample["settings"] = time_settings(
                    str(base),
                    feeds,
                    request_size=REQUEST,
                    request_inputs=detect_request_inputs(list(spec.inputs)),
                )
            sample["seconds"] = time.perf_counter() - t0
            report["samples"][name] = sample
            print(f"{name}: {sample['seconds']:.0f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def variant_of(path: str) -> str:
    """The README name of a compared model from its path."""
    if path.endswith("model.onnx"):
        return "request + ONNX" if "/request/" in path else "fast + ONNX"
    for v in ("safe", "fast", "request"):
        if f"/{v}/" in path + "/":
            return v
    return "baseline"


def markdown(report: dict[str, Any]) -> str:
    """The README tables."""
    m = report["machine"]
    lines = [
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, TensorFlow {m.get('tensorflow')}, "
        f"onnxruntime {m.get('onnxruntime', '-')}; {report['requests']} interleaved calls per "
        "model and size. C: SavedModels through TensorFlow's C API in a C loop (what TF Serving "
        "runs), ONNX through onnxruntime's Python API; Py: the TF-Python keyword signature call.",
        "",
        "| model | variant | C p50 ms @1 | C x base @1 | C p50 ms @256 | C x base @256 "
        "| Py p50 ms @1 | Py x base @1 | Py p50 ms @256 | Py x base @256 | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, sample in report["samples"].items():
        comp = sample["batch"]
        py = comp["serving"].get("python_p50_ms", {})
        base_label = comp["models"][0]["label"]
        for mres in comp["models"]:
            row = [name, variant_of(mres["path"])]
            for b in ("1", "256"):
                row += [
                    f"{mres['latency'][b]['p50_ms']:.3f}",
                    f"{mres['ratio_vs_baseline'][b]:.2f}",
                ]
            for b in ("1", "256"):
                own = py.get(mres["label"], {}).get(b)
                ref = py.get(base_label, {}).get(b)
                row += [f"{own:.3f}", f"{own / ref:.2f}"] if own and ref else ["(C only)", "-"]
            parity = mres["parity"]
            row.append("-" if parity is None else f"{max(parity.values()):.1e}" if parity else "?")
            lines.append("| " + " | ".join(row) + " |")
        floor = comp["serving"].get("onnx_call_floor_ms")
        c_floor = comp["floor"]
        py_floor = py.get(FLOOR, {})
        lines.append(
            f"| {name} | call floor | {c_floor['1']['p50_ms']:.3f} | | "
            f"{c_floor['256']['p50_ms']:.3f} | | {py_floor.get('1', float('nan')):.3f} | | "
            f"{py_floor.get('256', float('nan')):.3f} | | "
            + (f"ONNX floor {floor.get('1', 0):.3f} / {floor.get('256', 0):.3f}" if floor else "")
            + " |"
        )
    lines += [
        "",
        f"One request = one user x {REQUEST} candidates (C runtime; ONNX in Python), p50/p99 per "
        "request, candidates scored per second, and closed loops of 1 and 2 callers:",
        "",
        "| model | variant | p50 ms | x base | p99 ms | candidates/s | 1 caller calls/s | "
        "2 callers calls/s | 2 callers p99 ms | best setting (baseline) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, sample in report["samples"].items():
        comp = sample["request"]
        req = comp["serving"]["request"]["models"]
        conc = comp["serving"].get("concurrency", {})
        settings = sample.get("settings")
        best = "-"
        if settings:
            gain = settings["gain"]
            best = (
                f"{settings['best']}: batch 1 {gain.get('batch 1 p50', 1):.2f}x, request "
                f"{gain.get(f'request {REQUEST} p50', 1):.2f}x"
            )
        for i, mres in enumerate(comp["models"]):
            r = req[mres["label"]]
            c = conc.get(mres["label"], {})
            row = [
                name,
                variant_of(mres["path"]),
                f"{r['p50_ms']:.3f}",
                f"{mres['ratio_vs_baseline'][str(REQUEST)]:.2f}",
                f"{r['p99_ms']:.3f}",
                f"{r['candidates_per_s']:,.0f}",
                f"{c.get('1', {}).get('calls_per_s', 0):,.0f}",
                f"{c.get('2', {}).get('calls_per_s', 0):,.0f}",
                f"{c.get('2', {}).get('p99_ms', float('nan')):.3f}",
                best if i == 0 else "",
            ]
            lines.append("| " + " | ".join(row) + " |")
        for preset, info in sample["variants"].items():
            if not info.get("path"):
                lines.append(f"| {name} | {preset} | {info.get('note', 'failed')} |")
    lines += [
        "",
        "`safe` with the caller-thread setting (`compare --candidate-setting caller_thread`) next "
        "to the original with TensorFlow's defaults, C runtime:",
        "",
        "| model | C p50 ms @1 | x base @1 | C p50 ms @256 | x base @256 |",
        "|---|---|---|---|---|",
    ]
    for name, sample in report["samples"].items():
        comp = sample.get("safe_with_setting")
        if comp:
            m = comp["models"][1]
            lines.append(
                f"| {name} | {m['latency']['1']['p50_ms']:.3f} | "
                f"{m['ratio_vs_baseline']['1']:.2f} | {m['latency']['256']['p50_ms']:.3f} | "
                f"{m['ratio_vs_baseline']['256']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("sample_models"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--names", default=",".join(SAMPLE_NAMES))
    parser.add_argument("--no-settings", action="store_true", help="Skip the settings timing.")
    args = parser.parse_args()
    report = run(args.models, args.requests, args.names.split(","), not args.no_settings)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(report, indent=2, default=str))
    table = markdown(report)
    (args.out / "serving.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
