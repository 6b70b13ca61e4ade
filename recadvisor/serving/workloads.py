"""Serving workloads for ``compare``: the C runtime, ranking requests and concurrency.

``compare`` keeps its Python timing (:func:`recadvisor.bench.time_interleaved`); with
``runtime="tf-c"`` it hands its runners to :func:`time_serving_runtime`, which times every
SavedModel (baseline, candidates, the call floor) in one C process and the ONNX models in Python,
next to a trivial ONNX model with the same inputs so the Python share of an onnxruntime call is
on the record (onnxruntime's C headers do not ship in its wheel, so it cannot be driven from C
here).

A ranking request is one user x N candidates: the per-request inputs of one row repeated on
every candidate row for a model that takes them per row, once for a ``per_request_dedup``
rebuild. :func:`time_concurrency_python` runs closed loops of caller threads in Python, as
:func:`recadvisor.serving.tfc.time_concurrency` does in C.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recadvisor.bench import LatencySummary, summarize, take_rows, time_batches_python
from recadvisor.verify import compare_outputs

log = logging.getLogger(__name__)

RUNTIMES = ("tf-c", "python")
ONNX_FLOOR = "(onnx call floor)"


@dataclass(frozen=True)
class ConcurrencySummary:
    """A closed loop of ``callers`` threads on one model.

    Attributes:
        callers: threads, each calling again as soon as its call returns.
        calls: calls completed.
        seconds: wall time of the loop.
        calls_per_s: calls completed per second (all callers together).
        rows_per_s: rows (candidates) scored per second.
        p50_ms: median call latency.
        p99_ms: 99th percentile call latency.
        runtime: ``tf-c`` or ``python``.
    """

    callers: int
    calls: int
    seconds: float
    calls_per_s: float
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    runtime: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


def summarize_concurrency(
    callers: int,
    latencies: Sequence[float],
    seconds: float,
    batch_size: int,
    runtime: str,
    calls: int | None = None,
) -> ConcurrencySummary:
    """Throughput and percentiles of a closed loop (latencies in seconds).

    Args:
        callers: threads.
        latencies: per-call wall times.
        seconds: the loop's wall time.
        batch_size: rows per call.
        runtime: which runtime ran it.
        calls: completed calls (default: ``len(latencies)``).

    Returns:
        A :class:`ConcurrencySummary`.
    """
    arr = np.asarray(latencies, dtype="float64") * 1e3
    n = len(arr) if calls is None else calls
    p50, p99 = np.percentile(arr, [50, 99]) if arr.size else (float("nan"), float("nan"))
    per_s = n / seconds if seconds > 0 else 0.0
    return ConcurrencySummary(
        callers=callers,
        calls=n,
        seconds=seconds,
        calls_per_s=per_s,
        rows_per_s=per_s * batch_size,
        p50_ms=float(p50),
        p99_ms=float(p99),
        runtime=runtime,
    )


def time_concurrency_python(
    runners: Mapping[str, Any],
    feeds: Mapping[str, Mapping[str, np.ndarray]],
    batch_size: int,
    levels: Sequence[int],
    *,
    seconds: float = 2.0,
    rounds: int = 4,
    request_inputs: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
) -> dict[str, dict[int, ConcurrencySummary]]:
    """Closed loops of Python caller threads per runner (what a Python server does).

    Each thread prepares its own inputs (an onnxruntime ``IOBinding`` is not shared across
    threads); the time per runner and level is split into ``rounds`` slices in shuffled order.

    Returns:
        label -> callers -> :class:`ConcurrencySummary`.
    """
    import random

    rng = random.Random(seed)
    request_inputs = request_inputs or {}
    result: dict[str, dict[int, ConcurrencySummary]] = {label: {} for label in runners}
    for level in levels:
        prepared = {
            label: [
                runner.prepare(
                    take_rows(
                        feeds[label], batch_size, request_inputs=request_inputs.get(label, ())
                    )
                )
                for _ in range(level)
            ]
            for label, runner in runners.items()
        }
        for label, runner in runners.items():  # warm-up
            for args in prepared[label]:
                runner.run(args)
        lat: dict[str, list[float]] = {label: [] for label in runners}
        spent = dict.fromkeys(runners, 0.0)
        labels = list(runners)
        for _ in range(max(1, rounds)):
            rng.shuffle(labels)
            for label in labels:
                start = time.perf_counter()
                deadline = start + seconds / max(1, rounds)
                lat[label].extend(_closed_loop(runners[label].run, prepared[label], deadline))
                spent[label] += time.perf_counter() - start
        for label in runners:
            result[label][level] = summarize_concurrency(
                level, lat[label], spent[label], batch_size, "python"
            )
    return result


def _closed_loop(run: Callable[[Any], Any], args: Sequence[Any], deadline: float) -> list[float]:
    out: list[list[float]] = [[] for _ in args]

    def caller(i: int) -> None:
        clock = time.perf_counter
        while True:
            start = clock()
            if start >= deadline:
                return
            run(args[i])
            out[i].append(clock() - start)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for part in out for x in part]


def build_onnx_floor(onnx_path: str | Path, out_path: str | Path) -> Path:
    """A trivial ONNX model with the same inputs: one ``Shape`` of the first input.

    Its latency through the Python API is what every onnxruntime call pays around the graph
    (Python binding, input checks, session overhead).

    Returns:
        The written path.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    node = helper.make_node("Shape", [inputs[0].name], ["floor_out"])
    out = helper.make_tensor_value_info("floor_out", TensorProto.INT64, [None])
    graph = helper.make_graph([node], "onnx_call_floor", inputs, [out])
    floor = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    floor.ir_version = model.ir_version
    onnx.save(floor, str(out_path))
    return Path(out_path)


def _c_models(
    runners: Mapping[str, Any], configs: Mapping[str, bytes]
) -> tuple[list[Any], list[str]]:
    """The runners the C program can time (SavedModels on the default device) as TfcModels."""
    from recadvisor.serving.tfc import served_model

    models, labels = [], []
    for label, runner in runners.items():
        if runner.kind != "saved_model" or getattr(runner, "device", None):
            continue
        models.append(served_model(label, runner.path, runner.spec.key, configs.get(label, b"")))
        labels.append(label)
    return models, labels


def time_serving_runtime(
    runners: Mapping[str, Any],
    feeds: Mapping[str, Mapping[str, np.ndarray]],
    batch_sizes: Sequence[int],
    *,
    requests: int = 200,
    warmup: int = 20,
    burst: int = 8,
    request_inputs: Mapping[str, Sequence[str]] | None = None,
    configs: Mapping[str, bytes] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, dict[int, LatencySummary]], dict[str, Any]]:
    """Time SavedModels through TensorFlow's C API, the rest (ONNX, ``@gpu``) in Python.

    Args:
        runners: label -> runner (``compare``'s, including the call floor).
        feeds: label -> that runner's feeds.
        batch_sizes: rows per call.
        requests: timed calls per model and batch size.
        warmup: untimed calls per model first.
        burst: timed calls per model and round.
        request_inputs: label -> inputs taking one row per call.
        configs: label -> serialized ``ConfigProto`` for its C session.
        progress: ``progress(stage, done, total)``.

    Returns:
        (label -> batch size -> :class:`LatencySummary`, facts for ``compare.json``:
        ``c_models``, ``python_models``, ``c_parity`` (max abs diff of the C outputs vs the
        Python runner's, per model), ``onnx_call_floor_ms`` per batch size).

    Raises:
        TfcUnavailableError: the C program cannot be built.
        RuntimeError: the C program failed.
    """
    from recadvisor.serving import tfc

    request_inputs = request_inputs or {}
    tfc.build_program()
    models, c_labels = _c_models(runners, configs or {})
    latencies: dict[str, dict[int, LatencySummary]] = {label: {} for label in runners}
    if progress:
        progress("C runtime", 0, len(batch_sizes))
    cases = [
        {
            label: take_rows(feeds[label], bs, request_inputs=request_inputs.get(label, ()))
            for label in c_labels
        }
        for bs in batch_sizes
    ]
    timed = tfc.time_models(models, cases, requests=requests, warmup=warmup, burst=burst)
    for bs, case in zip(batch_sizes, timed, strict=True):
        for label, seconds in case.items():
            latencies[label][bs] = summarize(bs, seconds)
    if progress:
        progress("C runtime", len(batch_sizes), len(batch_sizes))
    info: dict[str, Any] = {
        "c_models": c_labels,
        "python_models": [k for k in runners if k not in c_labels],
        "c_parity": check_c_parity(runners, models, cases[-1]),
    }
    rest = {k: v for k, v in runners.items() if k not in c_labels}
    if rest:
        latencies_py, floor_ms = _time_in_python(
            rest, feeds, batch_sizes, requests, warmup, burst, request_inputs, progress
        )
        for label, per_bs in latencies_py.items():
            latencies[label].update(per_bs)
        if floor_ms:
            info["onnx_call_floor_ms"] = floor_ms
    return latencies, info


def check_c_parity(
    runners: Mapping[str, Any], models: Sequence[Any], feeds: Mapping[str, Mapping[str, Any]]
) -> dict[str, float]:
    """Max abs diff between each model's C-API outputs and its Python runner's, on one batch.

    Returns:
        label -> max abs diff over the numeric outputs (``inf`` when shapes differ).
    """
    from recadvisor.serving import tfc

    c_outs = tfc.run_outputs(models, feeds)
    result = {}
    for model in models:
        runner = runners[model.label]
        py = runner.run(runner.prepare(feeds[model.label]))
        numeric = [k for k, v in c_outs[model.label].items() if v.dtype != object and k in py]
        checked = compare_outputs(
            py, c_outs[model.label], float("inf"), outputs=numeric, align_shapes=True
        )
        result[model.label] = checked.max_abs_diff
    return result


def _time_in_python(
    runners: Mapping[str, Any],
    feeds: Mapping[str, Mapping[str, np.ndarray]],
    batch_sizes: Sequence[int],
    requests: int,
    warmup: int,
    burst: int,
    request_inputs: Mapping[str, Sequence[str]],
    progress: Callable[[str, int, int], None] | None,
) -> tuple[dict[str, dict[int, LatencySummary]], dict[str, float]]:
    """Time the runners the C program does not run, with an ONNX call floor when any is ONNX."""
    from recadvisor.bench import OnnxRunner

    timed = dict(runners)
    timed_feeds = dict(feeds)
    request_inputs = dict(request_inputs)
    onnx_labels = [k for k, r in runners.items() if r.kind == "onnx"]
    with tempfile.TemporaryDirectory(prefix="recadvisor-onnx-floor-") as tmp:
        if onnx_labels:
            try:
                first = runners[onnx_labels[0]]
                timed[ONNX_FLOOR] = OnnxRunner(build_onnx_floor(first.path, Path(tmp) / "f.onnx"))
                timed_feeds[ONNX_FLOOR] = feeds[onnx_labels[0]]
                request_inputs[ONNX_FLOOR] = request_inputs.get(onnx_labels[0], ())
            except Exception as e:  # noqa: BLE001 - the floor is context, not a result
                log.warning("cannot build the ONNX call floor: %s", e)
        latencies = time_batches_python(
            timed,
            timed_feeds,
            batch_sizes,
            requests=requests,
            warmup=warmup,
            burst=burst,
            request_inputs=request_inputs,
            progress=progress,
            stage="python batch",
        )
    floor = latencies.pop(ONNX_FLOOR, {})
    return latencies, {str(bs): s.p50_ms for bs, s in floor.items()}


def check_options(
    runtime: str, candidate_setting: str | None
) -> Callable[[Sequence[str]], dict[str, bytes]]:
    """Check ``compare``'s serving options before anything runs.

    Args:
        runtime: ``tf-c`` or ``python``.
        candidate_setting: a session setting name for the candidates, or ``None``.

    Returns:
        A function of the candidate labels giving label -> serialized ``ConfigProto``.

    Raises:
        ValueError: unknown runtime or setting, or a setting whose effect is process-wide
            (thread pool sizes are fixed by the first session: ``analyze`` times those, each in
            its own process).
    """
    from recadvisor.serving.settings import get_setting

    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime '{runtime}'; use {' or '.join(RUNTIMES)}")
    if candidate_setting is None:
        return lambda labels: {}
    setting = get_setting(candidate_setting)
    if setting.intra_op:
        raise ValueError(
            f"setting '{setting.name}' sizes the process-wide intra-op pool, which the first "
            "session (the baseline) fixes: compare it with analyze, which times each setting "
            "in its own process"
        )
    config = setting.config_bytes()
    return lambda labels: dict.fromkeys(labels, config)


def request_feeds(feeds: Mapping[str, np.ndarray], spec: Any) -> tuple[dict[str, np.ndarray], str]:
    """Feeds shaped as ranking requests when no candidate says which inputs are per-request.

    The per-request inputs are those whose names say so (``user``, ``hist``, ``query``...,
    as :func:`~recadvisor.rewrite.per_request_dedup.detect_request_inputs` reads them).

    Returns:
        (feeds with row 0's per-request inputs on every row, a note for the report).
    """
    from recadvisor.rewrite.encodings import one_request_feeds
    from recadvisor.rewrite.per_request_dedup import detect_request_inputs

    keys = detect_request_inputs(list(spec.inputs))
    if not keys:
        return dict(feeds), (
            "requests: no input looks per-request (user, history, query...): each request is "
            "a batch of candidate rows"
        )
    return one_request_feeds(feeds, keys), (
        f"requests: {', '.join(keys)} taken as per-request (from their names): row 0's values "
        "on every candidate row"
    )


def p50_table(latencies: Mapping[str, Mapping[int, LatencySummary]]) -> dict[str, dict[str, float]]:
    """label -> batch size -> p50 ms (JSON keys)."""
    return {
        label: {str(bs): s.p50_ms for bs, s in per_bs.items()}
        for label, per_bs in latencies.items()
        if per_bs
    }


def run_concurrency(
    runners: Mapping[str, Any],
    feeds: Mapping[str, Mapping[str, np.ndarray]],
    batch_size: int,
    levels: Sequence[int],
    *,
    runtime: str,
    seconds: float = 2.0,
    request_inputs: Mapping[str, Sequence[str]] | None = None,
    configs: Mapping[str, bytes] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Closed-loop throughput and p99 per model and caller count, in ``runtime``.

    With ``tf-c`` the SavedModels run in C threads and the rest (ONNX) in Python threads.

    Returns:
        label -> callers (JSON key) -> :meth:`ConcurrencySummary.to_dict`.
    """
    request_inputs = request_inputs or {}
    result: dict[str, dict[int, ConcurrencySummary]] = {}
    rest = dict(runners)
    if progress:
        progress(f"concurrency {','.join(map(str, levels))}", 0, 1)
    if runtime == "tf-c":
        from recadvisor.serving import tfc

        models, c_labels = _c_models(runners, configs or {})
        case = {
            label: take_rows(feeds[label], batch_size, request_inputs=request_inputs.get(label, ()))
            for label in c_labels
        }
        runs = tfc.time_concurrency(models, case, levels, seconds=seconds)
        for label, per_level in runs.items():
            result[label] = {
                n: summarize_concurrency(n, r.latencies, r.seconds, batch_size, "tf-c", r.calls)
                for n, r in per_level.items()
            }
            rest.pop(label)
    if rest:
        result.update(
            time_concurrency_python(
                rest, feeds, batch_size, levels, seconds=seconds, request_inputs=request_inputs
            )
        )
    if progress:
        progress(f"concurrency {','.join(map(str, levels))}", 1, 1)
    return {label: {str(n): s.to_dict() for n, s in per.items()} for label, per in result.items()}


def serving_facts(
    serving: Mapping[str, Any],
    runtime: str,
    request_size: int | None,
    latencies: Mapping[str, Mapping[int, LatencySummary]],
    request_inputs: Mapping[str, Sequence[str]],
    candidate_setting: str | None,
) -> dict[str, Any]:
    """``compare.json``'s ``serving`` object: runtime facts, requests, concurrency, setting."""
    facts: dict[str, Any] = {"runtime": runtime, **serving}
    if request_size:
        facts["request"] = {
            "candidates": request_size,
            "per_request_inputs": {k: list(v) for k, v in request_inputs.items() if v},
            "models": {
                label: {
                    "p50_ms": per_bs[request_size].p50_ms,
                    "p99_ms": per_bs[request_size].p99_ms,
                    "candidates_per_s": per_bs[request_size].rows_per_s,
                }
                for label, per_bs in latencies.items()
                if request_size in per_bs
            },
        }
    if candidate_setting:
        from recadvisor.serving.settings import get_setting

        facts["candidate_setting"] = get_setting(candidate_setting).to_dict()
    return facts


def with_threads(
    configs: Mapping[str, bytes], labels: Sequence[str], threads: int
) -> dict[str, bytes]:
    """``compare --threads`` for C sessions: intra- and inter-op threads on every model.

    A setting that already sets ``inter_op_parallelism_threads`` (``caller_thread``: -1)
    keeps it.

    Args:
        configs: label -> serialized ``ConfigProto`` so far.
        labels: every timed label.
        threads: the thread count.

    Returns:
        label -> serialized ``ConfigProto``.
    """
    from tensorflow.core.protobuf import config_pb2

    result = {}
    for label in labels:
        config = config_pb2.ConfigProto.FromString(configs.get(label, b""))
        config.intra_op_parallelism_threads = threads
        if not config.inter_op_parallelism_threads:
            config.inter_op_parallelism_threads = threads
        result[label] = config.SerializeToString()
    return result
