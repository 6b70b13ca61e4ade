"""``recadvisor stats`` at log scale: DuckDB, Spark local[2] and the pandas ``--data`` path.

1. Generates (once; reused when present) a hive-partitioned Parquet dataset of ``--rows`` rows in
   the DSSM sample's schema under ``--data`` (default ``/tmp/recadvisor-stats-scale``, never in
   the repository): Zipf-distributed ``user_id`` (1M users) and ``item_id`` (100k items), a
   ``hist_item_id`` list of 20 (5-20 real items, then ``""`` pads), ``age`` / ``gender`` /
   ``city`` one value per user, ``category`` per item, a gamma ``price`` (float32), a
   ``request_id`` shared by 4 rows, a ``label``. Files of at most 5M rows, one folder per
   ``day=NN`` partition.
2. Runs ``recadvisor stats`` on it with DuckDB (``--memory-limit``, default 1GiB) and with Spark
   ``local[2]``, each in its own process; measures wall time and the peak RSS of the process
   tree (Python + TensorFlow for the model + the JVM for Spark), sampled from ``/proc``.
3. Checks that both engines wrote the same ``stats.json`` (engine fields aside) and the same
   ``counts/`` files.
4. Runs the pandas baseline (what ``analyze --data`` does: one file read whole with
   ``read_table``, fitted with ``to_feeds``, then ``compute_feature_stats``) on growing prefixes
   of the dataset until one exceeds ``--pandas-cap-s`` seconds or ``--pandas-cap-gib`` RSS.

The model is the DSSM sample (``--model``; default: the tiny DSSM sample, built under ``--data``
when missing). Prints a table and writes ``<out>/stats_scale.{json,md}``.

Usage: ``python benchmarks/stats_scale.py [--rows 50000000] [--data DIR] [--engines
duckdb,spark,pandas] [--memory-limit 1GiB] [--spark-timeout-s 3600] [--pandas-rows
1000000,2000000,5000000,10000000] [--pandas-cap-s 600] [--pandas-cap-gib 12] [--out
benchmarks/results]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
USERS = 1_000_000
ITEMS = 100_000
HIST = 20
CHUNK = 1_000_000
FILE_ROWS = 5_000_000
ENGINE_FIELDS = ("engine", "engine_version", "spark_master", "memory_limit_bytes")
RUN_FIELDS = ("started_utc", "seconds")


# ----------------------------------------------------------------------------------- the data


def _dictionary(prefix: str, n: int) -> pa.Array:
    return pa.array(np.char.add(prefix, np.arange(n).astype(str)).tolist(), pa.string())


def _chunk(rng: np.random.Generator, start: int, rows: int, dicts: dict[str, pa.Array]) -> pa.Table:
    users = (rng.zipf(1.2, rows) - 1) % USERS
    items = (rng.zipf(1.1, rows) - 1) % ITEMS
    lengths = rng.integers(5, HIST + 1, rows)
    hist = ((rng.zipf(1.1, (rows, HIST)) - 1) % ITEMS) + 1  # 0 is the pad ""
    hist[np.arange(HIST)[None, :] >= lengths[:, None]] = 0
    offsets = np.arange(0, rows * HIST + 1, HIST, dtype=np.int32)
    hist_values = pa.DictionaryArray.from_arrays(
        pa.array(hist.reshape(-1).astype(np.int32)), dicts["hist"]
    )
    request = np.char.add("r", ((start + np.arange(rows)) // 4).astype(str))
    return pa.table(
        {
            "user_id": pa.DictionaryArray.from_arrays(
                pa.array(users.astype(np.int32)), dicts["user"]
            ),
            "age": pa.array(18 + (users * 7) % 53, pa.int64()),
            "gender": pa.DictionaryArray.from_arrays(
                pa.array((users % 2).astype(np.int32)), dicts["gender"]
            ),
            "city": pa.DictionaryArray.from_arrays(
                pa.array((users % 20).astype(np.int32)), dicts["city"]
            ),
            "hist_item_id": pa.ListArray.from_arrays(pa.array(offsets), hist_values),
            "item_id": pa.DictionaryArray.from_arrays(
                pa.array(items.astype(np.int32)), dicts["item"]
            ),
            "category": pa.DictionaryArray.from_arrays(
                pa.array((items % 30).astype(np.int32)), dicts["category"]
            ),
            "price": pa.array((rng.gamma(2.0, 10.0, rows) + items % 7).astype(np.float32)),
            "request_id": pa.array(request.tolist(), pa.string()),
            "label": pa.array((rng.random(rows) < 0.1).astype(np.int64)),
        }
    )


def generate(root: Path, rows: int, seed: int = 0) -> Path:
    """Write the dataset under ``root`` (skipped when ``root/_COMPLETE`` exists)."""
    marker = root / "_COMPLETE"
    if marker.exists():
        print(f"reusing {root}")
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    dicts = {
        "user": _dictionary("u", USERS),
        "item": _dictionary("i", ITEMS),
        "hist": pa.array([""] + np.char.add("i", np.arange(ITEMS).astype(str)).tolist()),
        "gender": pa.array(["F", "M"]),
        "city": pa.array([f"city_{k:02d}" for k in range(20)]),
        "category": pa.array([f"cat_{k:02d}" for k in range(30)]),
    }
    t0 = time.perf_counter()
    written = 0
    n_files = math.ceil(rows / FILE_ROWS)
    for f in range(n_files):
        folder = root / f"day={f:02d}"
        folder.mkdir(parents=True)
        in_file = min(FILE_ROWS, rows - written)
        writer = None
        done = 0
        while done < in_file:
            n = min(CHUNK, in_file - done)
            table = _chunk(rng, written + done, n, dicts)
            if writer is None:
                writer = pq.ParquetWriter(folder / "part-0.parquet", table.schema)
            writer.write_table(table, row_group_size=CHUNK)
            done += n
        assert writer is not None
        writer.close()
        written += in_file
        print(f"  wrote {written:,} / {rows:,} rows ({time.perf_counter() - t0:.0f} s)", flush=True)
    marker.write_text(str(rows))
    return root


def dataset_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.parquet"))


# ------------------------------------------------------------------------------ measurement


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        p = stack.pop()
        found.append(p)
        stack.extend(children.get(p, []))
    return found


def _tree_rss(pid: int) -> int:
    """RSS in bytes of ``pid`` and its descendants."""
    total = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total


def measure(cmd: list[str], timeout_s: float, rss_cap: int | None = None) -> dict[str, Any]:
    """Run ``cmd``; wall time, peak RSS of its process tree, exit code, why it stopped."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak = 0
    stopped = ""
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout or []), daemon=True)
    reader.start()
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        elapsed = time.perf_counter() - t0
        if elapsed > timeout_s or (rss_cap is not None and peak > rss_cap):
            stopped = "time cap" if elapsed > timeout_s else "memory cap"
            for p in reversed(_descendants(proc.pid)):  # the JVM too, by its pid
                try:
                    os.kill(p, 9)
                except OSError:
                    pass
            break
        time.sleep(0.25)
    proc.wait()
    reader.join(timeout=5)
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_bytes": peak,
        "exit_code": proc.returncode,
        "stopped": stopped,
        "output_tail": "".join(out)[-1500:],
    }


def run_stats(model: Path, data: Path, out: Path, engine: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "recadvisor", "stats", str(model), str(data), "--out", str(out)]
    cmd += ["--force", "--engine", engine]
    if engine == "spark":
        cmd += ["--spark-master", "local[2]", "--memory-limit", args.spark_memory]
        timeout = args.spark_timeout_s
    else:
        cmd += ["--memory-limit", args.memory_limit]
        timeout = args.duckdb_timeout_s
    print(f"running {engine} ...", flush=True)
    result = measure(cmd, timeout)
    result["engine"] = engine
    if result["exit_code"] == 0:
        doc = json.loads((out / "stats.json").read_text())
        result["stats_seconds"] = doc["dataset"]["seconds"]
        result["rows"] = doc["dataset"]["rows"]
    print(f"  {engine}: {result['seconds']} s, peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB")
    return result


def _pairs(path: Path) -> list[tuple[Any, int]]:
    t = pq.read_table(path)
    return list(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def engines_agree(a: Path, b: Path) -> dict[str, Any]:
    """Whether two stats folders hold the same statistics (engine and run fields aside)."""
    docs = []
    for d in (a, b):
        doc = json.loads((d / "stats.json").read_text())
        for field in ENGINE_FIELDS + RUN_FIELDS:
            doc["dataset"].pop(field)
        docs.append(doc)
    files = sorted(p.relative_to(a) for p in (a / "counts").rglob("*.parquet"))
    same_files = files == sorted(p.relative_to(b) for p in (b / "counts").rglob("*.parquet"))
    differing = []
    if same_files:
        for rel in files:
            pa_, pb = _pairs(a / rel), _pairs(b / rel)
            if len(pa_) != len(pb) or not all(
                _same(x[0], y[0]) and x[1] == y[1] for x, y in zip(pa_, pb, strict=True)
            ):
                differing.append(str(rel))
    return {
        "stats_json_equal": docs[0] == docs[1],
        "counts_files_equal": same_files and not differing,
        "counts_files": len(files),
        "differing": differing,
    }


def _plain_type(t: pa.DataType) -> pa.DataType:
    """A dictionary type as its value type (also inside lists)."""
    if pa.types.is_dictionary(t):
        return t.value_type
    if pa.types.is_list(t):
        return pa.list_(_plain_type(t.value_type))
    return t


PANDAS_SCRIPT = """
import sys, time
from recadvisor.analysis.features import compute_feature_stats
from recadvisor.data import read_table, to_feeds
from recadvisor.model.freeze import freeze
from recadvisor.model.load import load_model
spec = freeze(load_model(sys.argv[1])).signature
t0 = time.perf_counter()
frame = read_table(sys.argv[2])
to_feeds(frame, spec)
compute_feature_stats(frame, spec)
print("pandas-seconds", round(time.perf_counter() - t0, 1))
"""


def run_pandas(model: Path, data: Path, scratch: Path, args: argparse.Namespace) -> list[dict]:
    """The ``--data`` path on growing prefixes of the dataset, until a cap stops it."""
    results = []
    dataset = pds.dataset(data, format="parquet", partitioning="hive")
    for n in [int(x) for x in args.pandas_rows.split(",") if x]:
        if n > args.rows:
            break
        path = scratch / f"prefix-{n}.parquet"
        if not path.exists():  # plain strings, as an ordinary export writes them
            prefix = dataset.head(n).drop_columns(["day"])
            plain = pa.schema([pa.field(f.name, _plain_type(f.type)) for f in prefix.schema])
            pq.write_table(prefix.cast(plain), path)
        print(f"running pandas on {n:,} rows ...", flush=True)
        cmd = [sys.executable, "-c", PANDAS_SCRIPT, str(model), str(path)]
        r = measure(cmd, args.pandas_cap_s, int(args.pandas_cap_gib * 2**30))
        r.update({"engine": "pandas", "rows": n, "file_bytes": path.stat().st_size})
        for line in r["output_tail"].splitlines():
            if line.startswith("pandas-seconds"):
                r["stats_seconds"] = float(line.split()[1])
        print(
            f"  pandas {n:,} rows: {r['seconds']} s, peak RSS "
            f"{r['peak_rss_bytes'] / 2**30:.2f} GiB {r['stopped']}"
        )
        results.append(r)
        if r["exit_code"] != 0 or r["stopped"]:
            break
    return results


# ----------------------------------------------------------------------------------- report


def table(runs: list[dict], rows: int, size: int) -> str:
    lines = [
        "| engine | rows | data | wall s | stats s | peak RSS GiB | rows/s | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        n = r.get("rows") or rows
        ok = r["exit_code"] == 0 and not r["stopped"]
        data = f"{r.get('file_bytes', size) / 2**30:.2f} GiB"
        rate = f"{n / r['seconds']:,.0f}" if ok else "-"
        status = "ok" if ok else (r["stopped"] or f"exit {r['exit_code']}")
        lines.append(
            f"| {r['engine']} | {n:,} | {data} | {r['seconds']} | {r.get('stats_seconds', '-')} "
            f"| {r['peak_rss_bytes'] / 2**30:.2f} | {rate} | {status} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse the flags, generate the data, run the engines, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--data", type=Path, default=Path("/tmp/recadvisor-stats-scale"))
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--engines", default="duckdb,spark,pandas")
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--spark-memory", default="2GiB")
    parser.add_argument("--duckdb-timeout-s", type=float, default=1800)
    parser.add_argument("--spark-timeout-s", type=float, default=3600)
    parser.add_argument("--pandas-rows", default="1000000,2000000,5000000,10000000,20000000")
    parser.add_argument("--pandas-cap-s", type=float, default=600)
    parser.add_argument("--pandas-cap-gib", type=float, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    model = args.model
    if model is None:
        model = args.data / "model" / "dssm" / "saved_model"
        if not model.exists():
            from recadvisor.samples.build import build_sample

            build_sample("dssm", args.data / "model", size="tiny", force=True)
    data = generate(args.data / f"logs-{args.rows}", args.rows)
    size = dataset_bytes(data)
    print(f"dataset: {args.rows:,} rows, {size / 2**30:.2f} GiB in {data}")
    engines = args.engines.split(",")
    runs: list[dict] = []
    outs = {}
    for engine in ("duckdb", "spark"):
        if engine in engines:
            outs[engine] = args.data / f"stats-{engine}-{args.rows}"
            runs.append(run_stats(model, data, outs[engine], engine, args))
    agree = None
    if len(outs) == 2 and all(r["exit_code"] == 0 for r in runs):
        agree = engines_agree(outs["duckdb"], outs["spark"])
        print(f"engines agree: {agree}")
    if "pandas" in engines:
        scratch = args.data / "pandas"
        scratch.mkdir(exist_ok=True)
        runs += run_pandas(model, data, scratch, args)
    text = table(runs, args.rows, size)
    print(text)
    summary = {
        "rows": args.rows,
        "dataset_bytes": size,
        "files": len(list(data.rglob("*.parquet"))),
        "model": str(model),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "memory_limit": args.memory_limit,
        "runs": runs,
        "engines_agree": agree,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stats_scale.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.out / "stats_scale.md").write_text(text + "\n")
    print(f"wrote {args.out}/stats_scale.json and stats_scale.md")


if __name__ == "__main__":
    main()
