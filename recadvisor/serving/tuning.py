"""Serving settings measured on the user's model: which session configuration serves it fastest.

Each setting (:data:`recadvisor.serving.settings.SETTINGS`) runs in its **own** C process,
because TensorFlow sizes its process-wide thread pools from the first session. Processes
alternate over ``rounds`` (each round visits the settings in a new shuffled order) so machine
noise spreads over all of them; per-call latencies and loop counts are pooled over the rounds.

Workloads: batch 1, and one ranking request (one user x ``request_size`` candidates), each timed
call after call and under closed loops of 1 and 2 callers. The best setting is the one with the
lowest geometric mean, over those workloads, of its p50 ratios to TensorFlow's defaults (call
after call, and under each closed loop; calls per second are reported too, but a mean swings
with every pause of a busy machine, the median far less).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recadvisor.bench import take_rows

CANDIDATES = ("default", "caller_thread", "intra1", "caller_thread_intra1", "per_session")


def time_settings(
    model_dir: str,
    feeds: Mapping[str, np.ndarray],
    *,
    signature: str | None = None,
    request_size: int = 256,
    request_inputs: Sequence[str] = (),
    names: Sequence[str] = CANDIDATES,
    levels: Sequence[int] = (1, 2),
    requests: int = 100,
    rounds: int = 2,
    seconds: float = 0.4,
    seed: int = 0,
) -> dict[str, Any]:
    """Time each session setting on the model in its own process; say which is best.

    Args:
        model_dir: the SavedModel directory.
        feeds: sample inputs (signature key -> array).
        signature: signature key.
        request_size: candidates per request.
        request_inputs: per-request inputs (row 0's values repeated on every candidate row).
        names: settings to time (``default`` is always included: ratios are against it).
        levels: closed-loop caller counts.
        requests: timed calls per workload, setting and round.
        rounds: processes per setting.
        seconds: closed-loop seconds per caller count, workload, setting and round.
        seed: shuffling seed.

    Returns:
        The ``serving_settings`` section of ``analysis.json``: ``workloads``, ``settings``
        (per setting: its ConfigProto text, TF Serving flags, p50/p99 per workload, calls/s
        and p99 per workload and caller count, ratios to the default and ``score``), ``best``,
        ``gain`` (the best setting's ratios) and ``note``.

    Raises:
        TfcUnavailableError: the C program cannot be built.
    """
    from recadvisor.rewrite.encodings import one_request_feeds
    from recadvisor.serving import tfc
    from recadvisor.serving.settings import get_setting

    names = list(dict.fromkeys(["default", *names]))
    settings = [get_setting(n) for n in names]
    request = one_request_feeds(feeds, list(request_inputs)) if request_inputs else dict(feeds)
    workloads = {"batch 1": (1, feeds), f"request {request_size}": (request_size, request)}
    cases = [{"m": take_rows(f, bs)} for bs, f in workloads.values()]
    header = {
        "mode": "all",
        "warmup": 10,
        "requests": requests,
        "burst": 8,
        "duration_ms": int(seconds * 1000),
        "rounds": 1,
        "threads": " ".join(str(int(n)) for n in levels),
    }
    lat: dict[str, list[list[float]]] = {n: [[] for _ in cases] for n in names}
    loops: dict[str, list[dict[int, list[Any]]]] = {n: [{} for _ in cases] for n in names}
    rng = random.Random(seed)
    order = list(settings)
    for r in range(max(1, rounds)):
        rng.shuffle(order)
        for setting in order:
            model = tfc.served_model("m", model_dir, signature, setting.config_bytes())
            timed, conc = tfc.execute([model], cases, {**header, "seed": seed + r})
            for c in range(len(cases)):
                lat[setting.name][c].extend(timed[c]["m"])
                for callers, run in conc[c].get("m", {}).items():
                    loops[setting.name][c].setdefault(callers, []).append(run)
    return _summarize(settings, list(workloads), lat, loops, workloads, request_inputs)


def _summarize(
    settings: Sequence[Any],
    workload_names: Sequence[str],
    lat: Mapping[str, list[list[float]]],
    loops: Mapping[str, list[dict[int, list[Any]]]],
    workloads: Mapping[str, tuple[int, Any]],
    request_inputs: Sequence[str],
) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for setting in settings:
        row: dict[str, Any] = {**setting.to_dict(), "latency": {}, "throughput": {}}
        for c, workload in enumerate(workload_names):
            ms = np.asarray(lat[setting.name][c]) * 1e3
            row["latency"][workload] = {
                "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
                "calls": int(ms.size),
            }
            for callers, runs in sorted(loops[setting.name][c].items()):
                calls = sum(x.calls for x in runs)
                secs = sum(x.seconds for x in runs)
                all_lat = np.asarray([v for x in runs for v in x.latencies]) * 1e3
                row["throughput"][f"{workload} x{callers}"] = {
                    "callers": callers,
                    "calls_per_s": calls / secs if secs else 0.0,
                    "rows_per_s": calls / secs * workloads[workload][0] if secs else 0.0,
                    "p50_ms": float(np.percentile(all_lat, 50)) if all_lat.size else None,
                    "p99_ms": float(np.percentile(all_lat, 99)) if all_lat.size else None,
                }
        rows[setting.name] = row
    base = rows["default"]
    for row in rows.values():
        ratios = {
            f"{w} p50": row["latency"][w]["p50_ms"] / base["latency"][w]["p50_ms"]
            for w in row["latency"]
        }
        for key, t in row["throughput"].items():
            other = base["throughput"].get(key, {}).get("p50_ms")
            if t["p50_ms"] and other:
                # the median call under load, not calls/s: a mean, which a busy machine's
                # pauses swing far more than the median
                ratios[f"{key} p50"] = t["p50_ms"] / other
        row["ratio_vs_default"] = ratios
        row["score"] = math.exp(sum(math.log(v) for v in ratios.values()) / len(ratios))
    best = min(rows.values(), key=lambda r: r["score"])
    return {
        "workloads": list(workload_names),
        "per_request_inputs": list(request_inputs),
        "settings": list(rows.values()),
        "best": best["name"],
        "gain": best["ratio_vs_default"],
        "note": (
            "each setting timed in its own process (thread pools are process-wide and sized by "
            "the first session), processes alternated over rounds; ratios are to TensorFlow's "
            "defaults (p50 per call alone and under each closed loop), lower is better; score: "
            "their geometric mean"
        ),
    }


def analyze_settings(
    analysis: Any,
    data: Any,
    signature: str | None,
    request_size: int,
    progress: Any = None,
) -> dict[str, Any]:
    """``analyze``'s serving-settings section for an analysis (data read again, cheaply).

    The per-request inputs are those of the ``per_request_feature`` finding, else those whose
    names say so.

    Returns:
        :func:`time_settings`'s dict, or ``{"unavailable": reason}`` when the C runtime cannot
        be built here.
    """
    from recadvisor.data import load_feeds
    from recadvisor.model.load import inspect_saved_model
    from recadvisor.rewrite.per_request_dedup import detect_request_inputs
    from recadvisor.serving.tfc import TfcUnavailableError, build_program

    try:
        build_program()
    except TfcUnavailableError as e:
        return {"unavailable": f"the TensorFlow C runtime cannot be built here: {e}"}
    path = analysis.model["path"]
    spec = inspect_saved_model(path).choose_signature(signature)
    feeds = load_feeds(data, spec).feeds
    request_inputs: list[str] = []
    for finding in analysis.findings_of("per_request_feature"):
        request_inputs = list(finding.evidence.get("request_inputs") or [])
    if not request_inputs:
        request_inputs = detect_request_inputs(list(spec.inputs))
    if progress:
        progress("serving settings", 0, 1)
    result = time_settings(
        path, feeds, signature=spec.key, request_size=request_size, request_inputs=request_inputs
    )
    if progress:
        progress("serving settings", 1, 1)
    return result
