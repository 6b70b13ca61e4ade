"""Measure one zoo model with recadvisor's own Python API: one row of the coverage table.

``python -m benchmarks.zoo.coverage MODEL_DIR OUT_JSON [--batch-sizes 1,256] [--requests N]``
runs, each step on its own (a failure is recorded with its one-line reason, and the steps that
do not depend on it still run):

1. ``recadvisor.describe`` and ``recadvisor.analyze`` (with the model's ``sample.parquet``);
2. ``recadvisor.rebuild`` with ``preset="safe"``: passed and exact (max abs diff <= 1e-5)?
3. ``recadvisor.rebuild`` with ``preset="fast", onnx=True``: is the final graph string-free
   (no string inputs, string ops or string-keyed tables; ONNX blockers otherwise, with the
   inputs they serve), exact, and was ``model.onnx`` written (exact, by construction of the
   export's own onnxruntime parity check) or why not;
4. ``recadvisor.compare`` of the original against the ``safe``, ``fast`` and ONNX candidates,
   interleaved in this one process: p50 ratio vs the original per batch size, and parity.

``benchmarks/zoo.py`` runs it in a subprocess per model so that one model's crash (or memory)
never takes the table down.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXACT = 1e-5


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` (at most 240 characters)."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:240]


def _step(record: dict[str, Any], name: str, fn: Callable[[], Any]) -> Any:
    """Run one step; on failure store ``{"ok": False, "error": ...}`` under ``record[name]``."""
    t0 = time.perf_counter()
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a failed step is a result of the table
        record[name] = {
            "ok": False,
            "error": one_line(e),
            "traceback": traceback.format_exc(limit=6)[-2000:],
            "seconds": round(time.perf_counter() - t0, 1),
        }
        return None


def _describe(model_dir: Path, signature: str | None) -> dict[str, Any]:
    from recadvisor import api

    desc = api.describe(model_dir, signature).to_dict()
    return {
        "ok": True,
        "signature": desc["signature"],
        "inputs": desc["inputs"],
        "outputs": desc["outputs"],
        "nodes_frozen": desc["node_count"],
        "string_ops": sorted(
            {op for op in desc["op_counts"] if _is_string_op(op)}
            | {s.get("op", "") for s in desc.get("string_ops", []) if isinstance(s, dict)} - {""}
        ),
        "lookup_tables": len(desc.get("lookup_tables", [])),
        "embedding_tables": len(desc.get("embedding_tables", [])),
    }


def _is_string_op(op: str) -> bool:
    from recadvisor.model.graph import STRING_OPS

    return op in STRING_OPS


def _analyze(model_dir: Path, data: Path, signature: str | None) -> dict[str, Any]:
    from recadvisor import api

    result = api.analyze(model_dir, data=data, signature=signature).to_dict()
    suggestions = result["suggestions"]
    return {
        "ok": True,
        "findings": sorted({f["kind"] for f in result["findings"]}),
        "detectors_failed": result["model"].get("run", {}).get("detectors_failed", {}),
        "exact_suggestions": [
            {"kind": s["kind"], "targets": list(s["targets"])}
            for s in suggestions
            if s["exactness"] == "exact"
        ],
    }


def _string_free(graph: Any) -> tuple[bool, str]:
    """Whether ``graph`` runs without strings; else what is left (the ONNX blockers, which
    name string inputs too, with the inputs each serves)."""
    from recadvisor.model.onnx_export import find_onnx_blockers

    blockers = find_onnx_blockers(graph)
    string_inputs = sorted(k for k, v in graph.signature.inputs.items() if v.dtype == "string")
    if blockers:
        return False, "; ".join(b.describe() for b in blockers[:4])
    if string_inputs:
        return False, "string inputs " + ", ".join(string_inputs)
    return True, ""


def _rebuild(
    model_dir: Path, data: Path, out: Path, preset: str, signature: str | None
) -> dict[str, Any]:
    from recadvisor import api

    result = api.rebuild(
        model_dir,
        out,
        preset=preset,
        data=data,
        signature=signature,
        onnx=(preset == "fast"),
        force=True,
    )
    d = result.to_dict()
    worst = max(result.parity.max_abs_diff, result.export_parity.max_abs_diff)
    row: dict[str, Any] = {
        "ok": True,
        "dir": str(out),
        "passed": d["passed"],
        "max_abs_diff": worst,
        "exact": d["passed"] and worst <= EXACT,
        "applied": d["passes"]["applied"],
        "refused": {
            r["name"]: r["reason"]
            for r in d["passes"]["passes"]
            if r["status"] in ("refused", "rolled_back", "failed")
        },
        "notes": d["notes"],
    }
    if preset == "fast":
        free, why = _string_free(result.graph)
        ids = next((r for r in d["passes"]["passes"] if r["name"] == "ids_upstream"), None)
        row["string_free"] = free
        row["string_left"] = why
        row["ids_upstream"] = (
            None
            if ids is None
            else {"status": ids["status"], "reason": ids["reason"], "notes": ids["notes"]}
        )
        row["encoded_inputs"] = sorted({e["input"] for e in d["passes"]["encodings"]})
        onnx = d.get("onnx") or {}
        onnx_file = out / "model.onnx"
        row["onnx"] = {
            "exported": onnx_file.is_file(),
            "path": str(onnx_file) if onnx_file.is_file() else None,
            "max_abs_diff": onnx.get("max_abs_diff"),
            "exact": onnx_file.is_file() and (onnx.get("max_abs_diff") or 0.0) <= EXACT,
            "reason": None if onnx_file.is_file() else _onnx_reason(onnx, d["notes"]),
        }
    return row


def _onnx_reason(summary: dict[str, Any], notes: list[str]) -> str:
    reason = summary.get("reason") or next(
        (n for n in notes if n.startswith("ONNX export skipped")), "not exported"
    )
    return reason.replace("model.onnx not written: ", "").splitlines()[0][:300]


def _compare(
    model_dir: Path,
    data: Path,
    candidates: dict[str, Path],
    signature: str | None,
    batch_sizes: tuple[int, ...],
    requests: int,
) -> dict[str, Any]:
    """Interleaved timing of the original and every candidate; falls back to one candidate at a
    time when the joint run fails, so one bad candidate does not hide the others."""
    from recadvisor import api

    def run(chosen: dict[str, Path]) -> dict[str, Any]:
        comp = api.compare(
            model_dir,
            list(chosen.values()),
            data=data,
            signature=signature,
            batch_sizes=batch_sizes,
            requests=requests,
            measure_memory=False,
        ).to_dict()
        models = comp["models"]
        out: dict[str, Any] = {
            "baseline_p50_ms": {b: models[0]["latency"][b]["p50_ms"] for b in models[0]["latency"]}
        }
        for variant, m in zip(chosen, models[1:], strict=True):
            out[variant] = {
                "ok": True,
                "ratio": m["ratio_vs_baseline"],
                "p50_ms": {b: v["p50_ms"] for b, v in m["latency"].items()},
                "parity": m["parity"],
                "parity_passed": m["parity_passed"],
            }
        return out

    if not candidates:
        return {}
    try:
        return run(candidates)
    except Exception as joint:  # noqa: BLE001
        result: dict[str, Any] = {"joint_error": one_line(joint)}
        for variant, path in candidates.items():
            try:
                single = run({variant: path})
                result[variant] = single[variant]
                result.setdefault("baseline_p50_ms", single["baseline_p50_ms"])
            except Exception as e:  # noqa: BLE001
                result[variant] = {"ok": False, "error": one_line(e)}
        return result


def evaluate(
    model_dir: Path,
    *,
    signature: str | None = None,
    batch_sizes: tuple[int, ...] = (1, 256),
    requests: int = 200,
    work: Path | None = None,
    timing: bool = True,
) -> dict[str, Any]:
    """Every step of the coverage table on one zoo model folder (``saved_model/`` +
    ``sample.parquet``).

    Args:
        model_dir: the zoo model's folder.
        signature: the signature key (default: recadvisor's choice).
        batch_sizes: batch sizes to time.
        requests: timed calls per model and batch size.
        work: where rebuilds go (default: a temporary folder, removed afterwards).
        timing: run ``compare`` (off: correctness only).

    Returns:
        The row as a JSON-able dict (``describe``, ``analyze``, ``safe``, ``fast``, ``compare``).
    """
    saved_model = model_dir / "saved_model"
    data = model_dir / "sample.parquet"
    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="zoo-")) if work is None else work
    record: dict[str, Any] = {"model_dir": str(model_dir)}
    t0 = time.perf_counter()
    try:
        for name, fn in (
            ("describe", lambda: _describe(saved_model, signature)),
            ("analyze", lambda: _analyze(saved_model, data, signature)),
            ("safe", lambda: _rebuild(saved_model, data, work / "safe", "safe", signature)),
            ("fast", lambda: _rebuild(saved_model, data, work / "fast", "fast", signature)),
        ):
            t = time.perf_counter()
            value = _step(record, name, fn)
            if value is not None:
                value["seconds"] = round(time.perf_counter() - t, 1)
                record[name] = value
        candidates: dict[str, Path] = {}
        for variant in ("safe", "fast"):
            if record[variant].get("ok"):
                candidates[variant] = Path(record[variant]["dir"])
        onnx = record["fast"].get("onnx") or {}
        if onnx.get("exported"):
            candidates["onnx"] = Path(onnx["path"])
        if timing:
            comp = _step(
                record,
                "compare",
                lambda: _compare(saved_model, data, candidates, signature, batch_sizes, requests),
            )
            if comp is not None:
                record["compare"] = {"ok": True, **comp}
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    return record


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: evaluate one model folder and write the row as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_json", type=Path)
    parser.add_argument("--signature", default=None)
    parser.add_argument("--batch-sizes", default="1,256")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args(argv)
    record = evaluate(
        args.model_dir,
        signature=args.signature,
        batch_sizes=tuple(int(b) for b in args.batch_sizes.split(",")),
        requests=args.requests,
        timing=not args.no_timing,
    )
    args.out_json.write_text(json.dumps(record, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
