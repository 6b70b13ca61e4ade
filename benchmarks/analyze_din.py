"""Time ``recadvisor analyze`` on the DIN sample with 10,000 data rows (issue 3: under 60 s).

Runs the same path as the CLI (``recadvisor.api.analyze`` with an output folder: scan, load and
freeze, data, profile at batch 1 and 256 with the default 200 timed calls, feature statistics,
detectors, advice, then analysis.json, plan.yaml and report.html), after importing TensorFlow
once (its import time is reported apart). The DIN sample is built with ``recadvisor samples``'
builder when ``<models>/din`` is missing; its first ``--rows`` data rows are the sample data.

Writes ``<out>/analyze_din.json`` and prints a small table.

Usage: ``python benchmarks/analyze_din.py [--models sample_models] [--rows 10000]
[--repeats 1] [--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from recadvisor import api
from recadvisor.compare import machine_info
from recadvisor.data import read_table
from recadvisor.samples.build import build_sample
from recadvisor.tfimport import import_tf

LIMIT_S = 60.0
STEPS = ("scan", "load_and_freeze", "data", "profile", "feature_stats", "detectors", "advice")


def din_sample(models: Path) -> Path:
    """The DIN sample folder under ``models``, built (full size, seed 0) when missing."""
    if not (models / "din" / "saved_model").exists():
        build_sample("din", models)
    return models / "din"


def timed_run(model_dir: Path, data: Path, out_dir: Path) -> dict[str, Any]:
    """One ``analyze`` through the public API; wall time and the analyzer's own step timings."""
    start = time.perf_counter()
    result = api.analyze(model_dir, data=data, out_dir=out_dir, force=True)
    wall = time.perf_counter() - start
    steps = dict(result.model["run"]["timings_s"])
    return {
        "wall_s": round(wall, 3),
        "steps_s": steps,
        "write_s": round(wall - steps["total"], 3),  # analysis.json, plan.yaml, report.html
        "findings": len(result.findings),
        "suggestions": len(result.suggestions),
    }


def table(runs: list[dict[str, Any]], import_s: float, rows: int) -> str:
    """The printed summary: one column per run."""
    head = ["step"] + [f"run {i + 1} (s)" for i in range(len(runs))]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for step in STEPS:
        lines.append(" | ".join([step] + [f"{r['steps_s'].get(step, 0.0):.2f}" for r in runs]))
    lines.append(" | ".join(["write outputs"] + [f"{r['write_s']:.2f}" for r in runs]))
    lines.append(" | ".join(["**analyze total**"] + [f"**{r['wall_s']:.2f}**" for r in runs]))
    worst = max(r["wall_s"] for r in runs)
    verdict = "under" if worst + import_s < LIMIT_S else "OVER"
    return (
        "\n".join(lines)
        + f"\n\nDIN, {rows:,} data rows; TensorFlow import {import_s:.2f} s (once per process); "
        f"slowest run + import {worst + import_s:.2f} s: {verdict} the {LIMIT_S:.0f} s limit."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("sample_models"))
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    start = time.perf_counter()
    import_tf()
    import_s = time.perf_counter() - start
    sample = din_sample(args.models)
    runs = []
    with tempfile.TemporaryDirectory(prefix="recadvisor-bench-") as tmp:
        data = Path(tmp) / "din-sample.parquet"
        frame = read_table(sample / "sample.parquet", limit=args.rows)
        frame.to_parquet(data)
        for i in range(args.repeats):
            runs.append(timed_run(sample / "saved_model", data, Path(tmp) / f"run{i}"))
    report = {
        "model": str(sample / "saved_model"),
        "rows": len(frame.index),
        "tf_import_s": round(import_s, 3),
        "limit_s": LIMIT_S,
        "runs": runs,
        "machine": machine_info(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "analyze_din.json").write_text(json.dumps(report, indent=2, default=str))
    print(table(runs, import_s, len(frame.index)))


if __name__ == "__main__":
    main()
