"""Do ``analyze``'s exact suggestions agree with what ``rebuild --preset fast`` does?

For one zoo model folder (``saved_model/``, ``sample.parquet``): analyze it (no profiling),
rebuild it with the ``fast`` preset (no plan: what ``recadvisor rebuild --preset fast`` runs),
and check every exact suggestion whose pass is in ``fast``: the pass is applied and its applied
targets (:func:`recadvisor.rewrite.matchers.applied_targets`) include the suggestion's targets.

    python -m benchmarks.zoo.agreement benchmarks/zoo/models/* [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from recadvisor.advice import EXACT
from recadvisor.plan import PRESET_PASSES


def check_model(model_dir: str | Path, work_dir: str | Path) -> dict[str, Any]:
    """Analyze, rebuild ``fast`` and compare.

    Args:
        model_dir: a zoo model folder (``saved_model/``, ``sample.parquet``).
        work_dir: where the rebuild is written.

    Returns:
        ``{"model", "exact": [{"pass", "targets", "applied", "status", "missing"}],
        "refused": [{"kind", "targets", "message"}]}``.
    """
    from recadvisor.analysis.analyze import analyze
    from recadvisor.rebuild import rebuild
    from recadvisor.rewrite.matchers import MATCHERS, applied_targets

    folder = Path(model_dir)
    saved, data = folder / "saved_model", folder / "sample.parquet"
    analysis = analyze(saved, data=data, preset="fast", profile=False, allow_unsafe_ops=True)
    result = rebuild(saved, Path(work_dir) / folder.name, preset="fast", data=data, force=True)
    exact = []
    for s in analysis.suggestions:
        if s.exactness != EXACT or s.pass_name not in PRESET_PASSES["fast"]:
            continue
        record = result.pipeline.record(s.pass_name)
        status = record.status if record is not None else "missing"
        done = (
            applied_targets(s.pass_name, record.stats)
            if record is not None and s.pass_name in MATCHERS
            else set()
        )
        missing = sorted(set(s.targets) - done)
        exact.append(
            {
                "pass": s.pass_name,
                "targets": list(s.targets),
                "status": status,
                "missing": missing,
                "applied": status == "applied" and not missing,
            }
        )
    refused = [
        {"kind": s.kind, "targets": list(s.targets), "message": s.message}
        for s in analysis.suggestions
        if s.kind.endswith("_refused")
    ]
    return {"model": folder.name, "exact": exact, "refused": refused}


def main(argv: list[str] | None = None) -> int:
    """Check each model folder; print one line a model and the totals per pass."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows, per_pass = [], {}
    with tempfile.TemporaryDirectory(prefix="recadvisor-agreement-") as tmp:
        for folder in args.models:
            try:
                row = check_model(folder, tmp)
            except Exception as e:  # noqa: BLE001 - one model's failure is reported, not fatal
                row = {"model": folder.name, "error": f"{type(e).__name__}: {e}"}
            rows.append(row)
            for item in row.get("exact", []):
                counts = per_pass.setdefault(item["pass"], [0, 0])
                counts[0] += 1
                counts[1] += int(item["applied"])
            print(json.dumps(row), flush=True)
    summary = {name: {"exact": n, "applied": k} for name, (n, k) in sorted(per_pass.items())}
    print(json.dumps({"per_pass": summary}))
    if args.json is not None:
        args.json.write_text(json.dumps({"models": rows, "per_pass": summary}, indent=1))
    ok = all("error" not in r and all(i["applied"] for i in r["exact"]) for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
