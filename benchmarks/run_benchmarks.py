"""Benchmark the sample models: baseline vs what users would pick vs recadvisor's rebuilds.

For each sample (dssm, esmm, din) it measures, interleaved in one process (medians of many calls):

* ``baseline``: the sample SavedModel as exported;
* ``classic``: freeze + ``optimize_for_inference`` + re-export (the recipe in TensorFlow's docs);
* ``tf2onnx``: plain tf2onnx + onnxruntime on the original (reported honestly when it fails or
  gives wrong scores);
* recadvisor ``safe``, ``fast``, ``fast`` + ONNX, and ``small`` rebuilds.

Writes ``<out>/benchmarks.json`` and ``<out>/benchmarks.md`` (the README table) and prints it.

Usage: ``python benchmarks/run_benchmarks.py [--models sample_models] [--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from recadvisor import api
from recadvisor.compare import machine_info
from recadvisor.model.freeze import freeze
from recadvisor.model.load import load_model
from recadvisor.model.runtime import export_saved_model
from recadvisor.samples import SAMPLE_NAMES, build_samples


def classic_recipe(model_dir: Path, out_dir: Path) -> tuple[Path | None, str]:
    """Freeze + optimize_for_inference + re-export; returns (path, note)."""
    from tensorflow.python.tools import optimize_for_inference_lib

    from recadvisor.tfimport import import_tf

    tf = import_tf()
    graph = freeze(load_model(model_dir))
    inputs = [graph.input_nodes[k] for k in graph.signature.inputs]
    outputs = sorted(set(graph.output_nodes.values()))
    dtypes = [
        tf.dtypes.as_dtype(graph.signature.inputs[k].dtype).as_datatype_enum
        for k in graph.signature.inputs
    ]
    try:
        optimized = optimize_for_inference_lib.optimize_for_inference(
            graph.graph_def, inputs, outputs, dtypes
        )
        # optimize_for_inference drops unread placeholders; keep the drop-in signature
        present = {n.name for n in optimized.node}
        for node in graph.graph_def.node:
            if node.name not in present and (node.name in inputs or node.name in graph.tables):
                optimized.node.add().CopyFrom(node)
        export_saved_model(graph.replace(graph_def=optimized), out_dir, force=True)
    except Exception as e:  # noqa: BLE001 - report what users would hit
        return None, f"classic recipe failed: {str(e).splitlines()[0][:160]}"
    return out_dir, "freeze + optimize_for_inference + re-export"


def plain_tf2onnx(
    model_dir: Path, out_file: Path, feeds: dict[str, np.ndarray]
) -> tuple[Path | None, str]:
    """tf2onnx on the original SavedModel, then one onnxruntime call."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tf2onnx.convert",
            "--saved-model",
            str(model_dir),
            "--output",
            str(out_file),
            "--opset",
            "17",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0 or not out_file.is_file():
        lines = [ln for ln in proc.stderr.splitlines() if "Error" in ln or "error" in ln]
        return None, "tf2onnx failed: " + (lines[-1][:160] if lines else "see logs")
    try:
        from recadvisor.bench import OnnxRunner, take_rows

        runner = OnnxRunner(out_file)
        runner.run(runner.prepare(take_rows(feeds, 4)))
    except Exception as e:  # noqa: BLE001
        ops = _unknown_onnx_ops(out_file)
        why = f"ops left unconverted: {', '.join(ops)}" if ops else str(e).split(" : ")[-1][:120]
        return None, f"tf2onnx converts it, onnxruntime refuses the graph ({why})"
    return out_file, "plain tf2onnx + onnxruntime"


def _unknown_onnx_ops(path: Path) -> list[str]:
    """Op types in an ONNX file that are not ONNX ops (TensorFlow ops tf2onnx left as they were)."""
    import onnx

    model = onnx.load(str(path))
    return sorted(
        {
            n.op_type
            for n in model.graph.node
            if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)
        }
    )


def run(
    models: Path, out: Path, requests: int, batch_sizes: tuple[int, ...], names: list[str]
) -> dict[str, Any]:
    missing = [n for n in names if not (models / n / "saved_model").is_dir()]
    if missing:
        build_samples(models, names=missing)
    report: dict[str, Any] = {
        "machine": machine_info(),
        "requests": requests,
        "batch_sizes": list(batch_sizes),
        "samples": {},
    }
    work = Path(tempfile.mkdtemp(prefix="recadvisor-bench-"))
    try:
        for name in names:
            base = models / name / "saved_model"
            data = models / name / "sample.parquet"
            t0 = time.perf_counter()
            candidates: list[Path] = []
            variants: dict[str, dict[str, Any]] = {}
            path, note = classic_recipe(base, work / name / "classic")
            variants["classic"] = {"path": str(path) if path else None, "note": note}
            if path:
                candidates.append(path)
            spec = load_model(base).spec
            feeds = api.load_data(data, spec).feeds
            path, note = plain_tf2onnx(base, work / name / "plain.onnx", feeds)
            variants["tf2onnx"] = {"path": str(path) if path else None, "note": note}
            if path:
                candidates.append(path)
            for preset in ("safe", "fast", "small"):
                target = work / name / preset
                try:
                    result = api.rebuild(
                        base, target, preset=preset, data=data, onnx=(preset == "fast"), force=True
                    )
                    d = result.to_dict()
                    variants[preset] = {
                        "path": str(target),
                        "passes": d["passes"]["applied"],
                        "rolled_back": d["passes"]["rolled_back"],
                        "onnx": d.get("onnx"),
                    }
                    candidates.append(target)
                    if preset == "fast" and (target / "model.onnx").is_file():
                        candidates.append(target / "model.onnx")
                        variants["fast+onnx"] = {"path": str(target / "model.onnx")}
                except Exception as e:  # noqa: BLE001 - a failed variant is a result too
                    variants[preset] = {"path": None, "note": f"{type(e).__name__}: {e}"[:200]}
            comp = api.compare(
                base,
                candidates,
                data=data,
                batch_sizes=batch_sizes,
                requests=requests,
                measure_memory=False,
            ).to_dict()
            report["samples"][name] = {
                "variants": variants,
                "comparison": comp,
                "seconds": time.perf_counter() - t0,
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def variant_of(label: str, path: str) -> str:
    if path.endswith("plain.onnx"):
        return "tf2onnx (plain)"
    if path.endswith("model.onnx"):
        return "fast + ONNX"
    for v in ("classic", "safe", "fast", "small"):
        if f"/{v}/" in path + "/":
            return v
    return "baseline"


def markdown(report: dict[str, Any]) -> str:
    bs = report["batch_sizes"]
    m = report["machine"]
    comps = [sample["comparison"] for sample in report["samples"].values()]
    burst = comps[0].get("burst", 1) if comps else 1
    call = comps[0].get("call", "keyword") if comps else "keyword"
    lines = [
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, TensorFlow {m.get('tensorflow')}, "
        f"onnxruntime {m.get('onnxruntime', '-')}; {report['requests']} interleaved calls per "
        f"model and batch size (rounds of {burst} calls per model, SavedModels through the "
        f"{call} signature call); p50 ratio vs the baseline (lower is faster).",
        "",
    ]
    head = "| model | variant | " + " | ".join(f"p50 ms @{b} | x base @{b}" for b in bs)
    head += " | x floor @1 | size MiB | max abs diff | AUC |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for name, sample in report["samples"].items():
        comp = sample["comparison"]
        for mres in comp["models"]:
            row = [name, variant_of(mres["label"], mres["path"])]
            for b in bs:
                row += [
                    f"{mres['latency'][str(b)]['p50_ms']:.3f}",
                    f"{mres['ratio_vs_baseline'][str(b)]:.2f}",
                ]
            row.append(f"{mres['ratio_vs_floor'][str(bs[0])]:.2f}")
            row.append(f"{mres['size_bytes'] / 2**20:.1f}")
            parity = mres["parity"]
            row.append("-" if parity is None else f"{max(parity.values()):.1e}" if parity else "?")
            q = mres["quality"]
            row.append(", ".join(f"{k} {v['auc']:.4f}" for k, v in q.items()) or "-")
            lines.append("| " + " | ".join(row) + " |")
        for variant, info in sample["variants"].items():
            if not info.get("path"):
                lines.append(f"| {name} | {variant} | " + info.get("note", "failed") + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("sample_models"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batch-sizes", default="1,256")
    parser.add_argument("--names", default=",".join(SAMPLE_NAMES))
    args = parser.parse_args()
    report = run(
        args.models,
        args.out,
        args.requests,
        tuple(int(b) for b in args.batch_sizes.split(",")),
        args.names.split(","),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.json").write_text(json.dumps(report, indent=2, default=str))
    table = markdown(report)
    (args.out / "benchmarks.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
