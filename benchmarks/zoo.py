"""The real-model coverage table: recadvisor on SavedModels built by recommender libraries.

Builds the zoo models that are missing (``benchmarks/zoo/``, each in its own subprocess, with
``TF_USE_LEGACY_KERAS=1`` where the library needs Keras 2), then measures each one with
recadvisor's own Python API in a subprocess per model (``benchmarks/zoo/coverage.py``):
describe, analyze, ``rebuild --preset safe`` (exact?), ``rebuild --preset fast --onnx``
(string-free? exact? ONNX written and exact?), and ``compare`` of the original against the safe,
fast and ONNX candidates interleaved in one process (p50 ratio vs the original per batch size).

A step that fails on a model is a cell with its one-line reason; the script goes on.
Writes ``<out>/zoo.json`` and ``<out>/zoo.md`` and prints the table.

Usage::

    python benchmarks/zoo.py [--only NAME[,NAME]] [--skip-build] [--rebuild-models]
        [--batch-sizes 1,256] [--requests 200] [--models benchmarks/zoo/models]
        [--out benchmarks/results] [--no-timing] [--table-only]

Exit code: 0 when the table was written (whatever its cells say), 2 for a bad option.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.zoo.build import build_in_subprocess, last_error_line, subprocess_env  # noqa: E402
from benchmarks.zoo.registry import PATTERNS, ZOO, ZooModel, by_name  # noqa: E402

DEFAULT_MODELS = ROOT / "benchmarks" / "zoo" / "models"
DEFAULT_OUT = ROOT / "benchmarks" / "results"
EVAL_TIMEOUT_S = 1800
CELL_CHARS = 110
# ids_upstream's own words for an input it leaves: "input 'x' is also read as a string by Op 'n'"
_READ_AS_STRING = re.compile(r"input '([^']+)' is also read as a string by (\w+)")


def evaluate_model(
    entry: ZooModel, model_dir: Path, batch_sizes: str, requests: int, timing: bool
) -> dict[str, Any]:
    """Measure one built model in a subprocess (``benchmarks/zoo/coverage.py``)."""
    with tempfile.TemporaryDirectory(prefix="zoo-row-") as tmp:
        out = Path(tmp) / "row.json"
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.zoo.coverage",
            str(model_dir),
            str(out),
            "--batch-sizes",
            batch_sizes,
            "--requests",
            str(requests),
        ]
        if entry.signature:
            cmd += ["--signature", entry.signature]
        if not timing:
            cmd.append("--no-timing")
        try:
            proc = subprocess.run(
                cmd,
                cwd=ROOT,
                env=subprocess_env(False),
                capture_output=True,
                text=True,
                timeout=EVAL_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return {"crashed": f"measurement timed out after {EVAL_TIMEOUT_S} s"}
        if proc.returncode != 0 or not out.is_file():
            return {"crashed": f"exit {proc.returncode}: {last_error_line(proc.stderr)}"}
        return json.loads(out.read_text())


def _short(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    text = " ".join(lines[0].split()).replace("|", "/") if lines else ""
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 3] + "..."


def _cell_ok(step: dict[str, Any] | None, ok_text: str = "yes") -> str:
    if not step:
        return "-"
    if not step.get("ok"):
        return "fails: " + _short(step.get("error"))
    return ok_text


def _safe_cell(safe: dict[str, Any] | None) -> str:
    if not safe or not safe.get("ok"):
        return _cell_ok(safe)
    if safe["exact"]:
        return f"yes ({safe['max_abs_diff']:.1e})"
    return f"no: max abs diff {safe['max_abs_diff']:.1e}"


def _fast_cell(fast: dict[str, Any] | None) -> str:
    if not fast or not fast.get("ok"):
        return _cell_ok(fast)
    if not fast["exact"]:
        return f"not exact ({fast['max_abs_diff']:.1e})"
    if fast["string_free"]:
        return f"yes ({fast['max_abs_diff']:.1e})"
    return "no: " + _short(fast["string_left"])


def _onnx_cell(fast: dict[str, Any] | None) -> str:
    if not fast or not fast.get("ok"):
        return "-"
    onnx = fast.get("onnx") or {}
    if not onnx.get("exported"):
        return "no: " + _short(onnx.get("reason"))
    diff = onnx.get("max_abs_diff") or 0.0
    return f"yes ({diff:.1e})" if onnx.get("exact") else f"not exact ({diff:.1e})"


def _ratio_cell(compare: dict[str, Any] | None, variant: str, batch: str) -> str:
    if not compare:
        return "-"
    if not compare.get("ok"):
        return "fails: " + _short(compare.get("error"))
    found = compare.get(variant)
    if found is None:
        return "-"
    if not found.get("ok"):
        return "fails: " + _short(found.get("error"))
    ratio = found["ratio"].get(batch)
    return "-" if ratio is None else f"{ratio:.2f}"


def markdown(report: dict[str, Any]) -> str:
    """The coverage table (and the patterns legend) as markdown."""
    batches = [str(b) for b in report["batch_sizes"]]
    head = [
        "model",
        "library",
        "patterns",
        "describe",
        "analyze",
        "safe exact",
        "fast string-free + exact",
        "ONNX exact",
    ]
    for variant in ("safe", "fast", "ONNX"):
        head += [f"{variant} @{b}" for b in batches]
    lines = [
        f"Zoo coverage, {report['date']}: recadvisor {report['recadvisor_commit']}, TensorFlow "
        f"{report['versions'].get('tensorflow')}, onnxruntime "
        f"{report['versions'].get('onnxruntime', '-')}, {_machine_text(report['machine'])}; "
        f"{report['requests']} interleaved calls per model and batch size; ratios are p50 vs "
        "the original SavedModel (lower is faster). Cells that are not `yes` say why.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, row in report["models"].items():
        cells = [
            name,
            f"{row['library']} {row.get('version', '')}".strip(),
            ", ".join(row["patterns"]),
        ]
        if not row["build"].get("ok"):
            cells.append("build fails: " + _short(row["build"].get("error")))
            cells += [""] * (len(head) - len(cells))
        elif "crashed" in row["result"]:
            cells.append("measurement crashed: " + _short(row["result"]["crashed"]))
            cells += [""] * (len(head) - len(cells))
        else:
            r = row["result"]
            cells += [
                _cell_ok(r.get("describe")),
                _cell_ok(r.get("analyze")),
                _safe_cell(r.get("safe")),
                _fast_cell(r.get("fast")),
                _onnx_cell(r.get("fast")),
            ]
            for variant in ("safe", "fast", "onnx"):
                cells += [_ratio_cell(r.get("compare"), variant, b) for b in batches]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Patterns: " + "; ".join(f"`{k}`: {v}" for k, v in PATTERNS.items()) + "."]
    gaps = advice_gaps(report)
    if gaps:
        lines += [
            "",
            "Exact `ids_upstream` advice (analyze) that `fast` did not apply:",
        ]
        lines += [f"- `{name}`: {text}" for name, text in gaps.items()]
    return "\n".join(lines) + "\n"


def advice_gaps(report: dict[str, Any]) -> dict[str, str]:
    """Per model: inputs ``analyze`` marked for exact ``ids_upstream`` that ``fast`` left as
    they were, with the pass's own reason (where advice and rewrite disagree)."""
    gaps: dict[str, str] = {}
    for name, row in report["models"].items():
        analyze, fast = row["result"].get("analyze") or {}, row["result"].get("fast") or {}
        if not analyze.get("ok") or not fast.get("ok"):
            continue
        advised = sorted(
            {
                t
                for s in analyze.get("exact_suggestions", [])
                if s["kind"] == "ids_upstream"
                for t in s["targets"]
            }
        )
        missed = [t for t in advised if t not in fast.get("encoded_inputs", [])]
        if missed:
            ids = fast.get("ids_upstream") or {}
            texts = [*ids.get("notes", []), ids.get("reason") or ""]
            why = []
            for feature in missed:
                found = next(
                    (m for t in texts for m in _READ_AS_STRING.finditer(t) if m[1] == feature),
                    None,
                )
                why.append(f"{feature} (read as a string by {found[2]})" if found else feature)
            gaps[name] = f"{', '.join(why)}; advised: {', '.join(advised)}"
            if ids.get("status") not in (None, "applied"):
                reason = (ids.get("reason") or "").removeprefix("ids_upstream: ")
                gaps[name] += f"; the pass was {ids['status']}: {_short(reason)}"
    return gaps


def _machine_text(machine: dict[str, Any] | str) -> str:
    if isinstance(machine, str):
        return machine
    return f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores"


def _versions() -> dict[str, str]:
    import importlib.metadata

    out = {}
    for dist in ("tensorflow", "keras", "tf_keras", "onnxruntime", "tf2onnx", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
            or "?"
        )
    except OSError:
        return "?"


def _meta(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "zoo.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build what is missing, measure every chosen model, and return the report."""
    from recadvisor.compare import machine_info

    entries = [by_name(n.strip()) for n in args.only.split(",")] if args.only else list(ZOO)
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "recadvisor_commit": _commit(),
        "versions": _versions(),
        "machine": machine_info(),
        "batch_sizes": [int(b) for b in args.batch_sizes.split(",")],
        "requests": args.requests,
        "models": {},
    }
    for entry in entries:
        model_dir = args.models / entry.name
        built = (model_dir / "zoo.json").is_file()
        if args.rebuild_models or (not built and not args.skip_build):
            print(f"[zoo] building {entry.name} ({entry.library})", file=sys.stderr, flush=True)
            build = build_in_subprocess(entry, args.models)
        elif built:
            build = {"ok": True, "cached": True}
        else:
            build = {"ok": False, "error": "not built (--skip-build)"}
        meta = _meta(model_dir)
        row: dict[str, Any] = {
            "library": entry.library,
            "package": meta.get("package", entry.package or "tensorflow"),
            "version": meta.get("version", ""),
            "export": entry.export,
            "patterns": list(entry.patterns),
            "build": build,
            "result": {},
            "measured_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }
        if build.get("ok"):
            print(f"[zoo] measuring {entry.name}", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            row["result"] = evaluate_model(
                entry, model_dir, args.batch_sizes, args.requests, not args.no_timing
            )
            print(
                f"[zoo] {entry.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True
            )
        report["models"][entry.name] = row
    return report


def _write(path: Path, text: str) -> None:
    """Write ``path`` atomically (a temporary file renamed over it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated zoo model names")
    parser.add_argument("--skip-build", action="store_true", help="measure built models only")
    parser.add_argument("--rebuild-models", action="store_true", help="rebuild every model")
    parser.add_argument("--batch-sizes", default="1,256")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--no-timing", action="store_true", help="skip compare (no ratios)")
    parser.add_argument(
        "--table-only", action="store_true", help="re-render zoo.md from the last zoo.json"
    )
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        if args.only:
            for name in args.only.split(","):
                by_name(name.strip())
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        if not sizes or min(sizes) < 1:
            raise ValueError(args.batch_sizes)
    except KeyError as e:
        parser.error(str(e.args[0]))
    except ValueError:
        parser.error(
            f"--batch-sizes must be positive integers like 1,256, not {args.batch_sizes!r}"
        )
    if args.table_only:
        previous = args.out / "zoo.json"
        if not previous.is_file():
            parser.error(f"--table-only needs {previous}; run without it first")
        table = markdown(json.loads(previous.read_text()))
        _write(args.out / "zoo.md", table)
        print(table)
        return 0
    args.models.mkdir(parents=True, exist_ok=True)
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "zoo.json"
    if args.only and previous.is_file():
        # a partial run updates its rows in the last full table (same batch sizes only)
        old = json.loads(previous.read_text())
        if old.get("batch_sizes") == report["batch_sizes"]:
            merged = {**old.get("models", {}), **report["models"]}
            report["models"] = {n: merged[n] for n in [*old.get("models", {}), *report["models"]]}
    table = markdown(report)
    _write(args.out / "zoo.json", json.dumps(report, indent=2, default=str))
    _write(args.out / "zoo.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
