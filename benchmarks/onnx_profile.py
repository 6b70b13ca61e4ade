"""ONNX before/after the clean-up: latency ratios vs the original TF model and where the time goes.

For each model (the three samples, a Keras 3 DeepFM and a Keras 3 two-tower model with a
mean-pooled history, from ``tests/external/models.py``) it builds what is missing, rebuilds it
with ``--preset fast``, freezes the rebuilt SavedModel and exports it twice with
:func:`recadvisor.model.onnx_export.export_onnx`: as tf2onnx writes it (``cleanup=False``,
"before") and cleaned ("after"); both from the same graph, both parity-checked. Then, in one
process, it times the original SavedModel and both ONNX files interleaved (medians of many
calls, rounds of 8 calls per model, see :mod:`recadvisor.bench`) and profiles both ONNX files per
node with onnxruntime's profiler.

Writes ``<out>/onnx_profile.{json,md}`` and prints the table.

Usage: ``python benchmarks/onnx_profile.py [--work /tmp/onnx-profile] [--out benchmarks/results]
[--models dssm,esmm,din,deepfm,two_tower] [--requests 300]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.external.models builds the third-party-shaped models

from recadvisor import api  # noqa: E402
from recadvisor.analysis.onnx_profile import profile_onnx  # noqa: E402
from recadvisor.bench import (  # noqa: E402
    OnnxRunner,
    SavedModelRunner,
    configure_onnx_session,
    take_rows,
    time_interleaved,
)
from recadvisor.compare import machine_info  # noqa: E402
from recadvisor.encode import encode_inputs  # noqa: E402
from recadvisor.model.freeze import freeze  # noqa: E402
from recadvisor.model.load import inspect_saved_model, load_model  # noqa: E402
from recadvisor.model.onnx_export import export_onnx  # noqa: E402
from recadvisor.samples import SAMPLE_NAMES, build_samples  # noqa: E402

BATCH_SIZES = (1, 256)
OP_TYPES_SHOWN = 5


def prepare_models(work: Path, names: list[str]) -> dict[str, tuple[Path, Path]]:
    """Build the models that are missing; name -> (SavedModel dir, sample data)."""
    from tests.external import models as external

    found: dict[str, tuple[Path, Path]] = {}
    samples = work / "samples"
    missing = [n for n in names if n in SAMPLE_NAMES and not (samples / n / "saved_model").is_dir()]
    if missing:
        build_samples(samples, names=missing)
    for name in names:
        if name in SAMPLE_NAMES:
            found[name] = (samples / name / "saved_model", samples / name / "sample.parquet")
    ext = work / "external"
    ext.mkdir(parents=True, exist_ok=True)
    builders = {
        "deepfm": (external.build_keras3_deepfm, "clicks.parquet", external.sample_frame),
        "two_tower": (
            external.build_keras3_two_tower_history,
            "history.parquet",
            external.history_frame,
        ),
    }
    for name, (build, data_name, frame) in builders.items():
        if name not in names:
            continue
        if not (ext / data_name).is_file():
            frame(2000).to_parquet(ext / data_name)
        if not (ext / name).is_dir():
            build(ext / name)
        found[name] = (ext / name, ext / data_name)
    return found


def export_pair(model_dir: Path, data: Path, work: Path) -> dict[str, Any]:
    """Rebuild with ``fast`` and export the rebuilt graph before and after the clean-up."""
    rebuilt = work / "rebuilt" / model_dir.parent.name
    if model_dir.name != "saved_model":
        rebuilt = work / "rebuilt" / model_dir.name
    if not (rebuilt / "saved_model").is_dir():
        api.rebuild(model_dir, rebuilt, preset="fast", data=data, force=True)
    spec = inspect_saved_model(model_dir).choose_signature(None)
    raw_feeds = api.load_data(data, spec).feeds
    feeds = (
        encode_inputs(rebuilt, raw_feeds)
        if (rebuilt / "feature_contract.json").is_file()
        else raw_feeds
    )
    graph = freeze(load_model(rebuilt / "saved_model"))
    check = take_rows(feeds, min(1024, len(next(iter(feeds.values())))))
    before = export_onnx(
        graph, work / "onnx" / f"{rebuilt.name}-before.onnx", check, force=True, cleanup=False
    )
    after = export_onnx(graph, work / "onnx" / f"{rebuilt.name}-after.onnx", check, force=True)
    return {"raw_feeds": raw_feeds, "feeds": feeds, "before": before, "after": after}


def _op_summary(batch: Any) -> str:
    return ", ".join(
        f"{o.name} x{o.nodes} {o.share:.0%}" for o in batch.per_op_type[:OP_TYPES_SHOWN]
    )


def measure(name: str, model_dir: Path, pair: dict[str, Any], requests: int) -> dict[str, Any]:
    """Time baseline / before / after interleaved and profile before / after per node."""
    runners = {
        "tf": SavedModelRunner(model_dir),
        "before": OnnxRunner(pair["before"].path),
        "after": OnnxRunner(pair["after"].path),
    }
    feeds = {"tf": pair["raw_feeds"], "before": pair["feeds"], "after": pair["feeds"]}
    row: dict[str, Any] = {
        "model": name,
        "nodes_before": pair["after"].cleanup.get("nodes_before"),
        "nodes_after": pair["after"].cleanup.get("nodes_after"),
        "rewrites": pair["after"].cleanup.get("rewrites", {}),
        "max_abs_diff_before": pair["before"].max_abs_diff,
        "max_abs_diff_after": pair["after"].max_abs_diff,
        "batches": {},
    }
    for bs in BATCH_SIZES:
        lat = time_interleaved(
            runners, feeds, bs, requests=requests if bs == 1 else requests // 2, burst=8
        )
        entry: dict[str, Any] = {f"p50_ms_{k}": lat[k].p50_ms for k in runners}
        entry["ratio_before"] = lat["before"].p50_ms / lat["tf"].p50_ms
        entry["ratio_after"] = lat["after"].p50_ms / lat["tf"].p50_ms
        entry["after_vs_before"] = lat["after"].p50_ms / lat["before"].p50_ms
        row["batches"][str(bs)] = entry
    for variant in ("before", "after"):
        runner = runners[variant]
        profile = profile_onnx(
            runner.path,
            lambda bs, r=runner: r.feed_dict(take_rows(pair["feeds"], bs)),
            BATCH_SIZES,
            calls=100,
            session_options=configure_onnx_session,
        )
        for batch in profile.batches:
            entry = row["batches"][str(batch.batch_size)]
            entry[f"profile_{variant}"] = batch.to_dict()
            entry[f"ops_{variant}"] = _op_summary(batch)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    """The README table: per model and batch size, ratios and where the time went."""
    lines = [
        "| model | nodes before -> after | batch | TF p50 ms | ONNX before x TF | ONNX after x TF "
        "| after / before | top op types before | top op types after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for bs, b in row["batches"].items():
            lines.append(
                f"| {row['model']} | {row['nodes_before']} -> {row['nodes_after']} | {bs} "
                f"| {b['p50_ms_tf']:.3f} | {b['ratio_before']:.3f} | {b['ratio_after']:.3f} "
                f"| {b['after_vs_before']:.2f} | {b['ops_before']} | {b['ops_after']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Build, export, time, profile; write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/recadvisor-onnx-profile"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--models", default="dssm,esmm,din,deepfm,two_tower")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    args.work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    models = prepare_models(args.work, names)
    rows = []
    for name in names:
        model_dir, data = models[name]
        pair = export_pair(model_dir, data, args.work)
        rows.append(measure(name, model_dir, pair, args.requests))
        print(markdown(rows[-1:]).splitlines()[-2], flush=True)
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    table = markdown(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "onnx_profile.md").write_text(table, encoding="utf-8")
    (args.out / "onnx_profile.json").write_text(
        json.dumps(
            {
                "machine": machine_info(),
                # other processes on the box: ratios hold up under load, absolute times do not
                "load_average": {"start": load_before, "end": os.getloadavg()},
                "models": rows,
            },
            indent=2,
            default=str,
        ),
        encoding="utf-8",
    )
    print(table)


if __name__ == "__main__":
    main()
