"""The ``recadvisor`` command line: parse, call the API, print, exit codes.

User errors print one line on stderr (``error: ...``) and exit with the error's code (see the
README's exit-code table); ``--verbose`` adds the traceback. TensorFlow is imported inside the
commands only, so ``recadvisor --help`` is instant.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from recadvisor.errors import RecAdvisorError
from recadvisor.report.formatting import fmt_bytes, fmt_shape

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Analyze and rebuild trained TensorFlow recommender SavedModels for faster CPU serving.",
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("recadvisor")

EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
_STATE = {"verbose": False}

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn errors into one stderr line and an exit code (traceback only with --verbose)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.TyperException):
            raise  # Click reports usage errors (a bad option value parsed in the body) itself
        except RecAdvisorError as e:
            if _STATE["verbose"]:
                traceback.print_exc()
            err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err_console.print(
                f"error: {fn.__name__} interrupted (Ctrl-C); no partial output was left",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as e:  # noqa: BLE001 - last line of defence: no raw tracebacks
            if _STATE["verbose"]:
                traceback.print_exc()
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            err_console.print(
                f"error: internal error ({type(e).__name__}: {first}); "
                "re-run with --verbose for the traceback and report it",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


ALLOW_UNSAFE_HELP = "Load and run a model with file/network/Python ops."
STATS_HELP = (
    "A `recadvisor stats` folder: decide rows hit, values, per-request inputs from the logs."
)


@app.callback()
def main_callback(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show debug logs and tracebacks.")
    ] = False,
) -> None:
    """Analyze and rebuild trained TensorFlow recommender SavedModels for faster CPU serving."""
    _STATE["verbose"] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Print a rich table with one column per name in ``columns`` and the given rows."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_description(desc: dict[str, Any]) -> None:
    """Rich tables for ``describe``."""
    console.print(
        f"[bold]{desc['path']}[/bold]  ({desc['source_format']} SavedModel, "
        f"{fmt_bytes(desc['size_bytes'])}), signature [bold]{desc['signature']}[/bold] "
        f"of {', '.join(desc['available_signatures'])}"
    )
    io = Table(title="Signature", show_lines=False)
    for col in ("", "key", "dtype", "shape"):
        io.add_column(col)
    for side in ("inputs", "outputs"):
        for k, v in desc[side].items():
            io.add_row(side[:-1], k, v["dtype"], fmt_shape(v["shape"]))
    console.print(io)
    ops = Table(title=f"Nodes: {desc['node_count_loaded']} as stored, {desc['node_count']} frozen")
    ops.add_column("op type")
    ops.add_column("stored", justify="right")
    ops.add_column("frozen", justify="right")
    names = list(desc["op_counts"]) + [
        k for k in desc["op_counts_loaded"] if k not in desc["op_counts"]
    ]
    for name in names[:40]:
        ops.add_row(
            name, str(desc["op_counts_loaded"].get(name, 0)), str(desc["op_counts"].get(name, 0))
        )
    if len(names) > 40:
        ops.add_row(f"... {len(names) - 40} more", "", "")
    console.print(ops)
    if desc["embedding_tables"]:
        _print_table(
            "Embedding tables (constants feeding a gather)",
            ("variable", "rows x dim", "dtype", "bytes", "features"),
            (
                (
                    t["variable"],
                    f"{t['rows']} x {t['dim']}",
                    t["dtype"],
                    fmt_bytes(t["bytes"]),
                    ", ".join(t["features"]),
                )
                for t in desc["embedding_tables"]
            ),
        )
    if desc["lookup_tables"]:
        _print_table(
            "Lookup tables",
            ("placeholder", "features", "key -> value", "size", "default", "sample keys"),
            (
                (
                    t["placeholder"],
                    ", ".join(t.get("features", [])),
                    f"{t['key_dtype']} -> {t['value_dtype']}",
                    str(t["size"]),
                    str(t["default_value"]),
                    ", ".join(map(str, t["sample_keys"])),
                )
                for t in desc["lookup_tables"]
            ),
        )
    if desc["string_ops"]:
        _print_table(
            "String ops",
            ("op", "node", "features"),
            ((s["op"], s["node"], ", ".join(s["features"])) for s in desc["string_ops"]),
        )
    console.print(
        f"variables: {desc['variable_count']} ({fmt_bytes(desc['variable_bytes'])}); "
        f"Const {desc['const_count']}, Identity {desc['identity_count']}; "
        f"nodes no output needs: {len(desc['unreachable_nodes'])}"
    )
    for note in desc["notes"]:
        console.print(f"note: {note}")


@app.command()
@handle_errors
def describe(
    model: Annotated[Path, typer.Argument(help="SavedModel directory.")],
    signature: Annotated[
        str | None, typer.Option("--signature", "-s", help="Signature key.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    tensorboard: Annotated[
        Path | None, typer.Option("--tensorboard", help="Write the frozen graph for TensorBoard.")
    ] = None,
    allow_unsafe_ops: Annotated[
        bool, typer.Option("--allow-unsafe-ops", help=ALLOW_UNSAFE_HELP)
    ] = False,
) -> None:
    """Describe a SavedModel: signature, node counts (stored and frozen), variables, embedding and
    lookup tables, string ops, and nodes no output needs."""
    from recadvisor import api

    desc = api.describe(
        model, signature=signature, tensorboard_dir=tensorboard, allow_unsafe_ops=allow_unsafe_ops
    ).to_dict()
    if as_json:
        sys.stdout.write(json.dumps(desc, indent=2, default=str) + "\n")
    else:
        print_description(desc)
        if tensorboard is not None:
            console.print(
                f"TensorBoard graph written to {tensorboard} (tensorboard --logdir {tensorboard})"
            )


@app.command()
@handle_errors
def samples(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write them.")] = Path(
        "sample_models"
    ),
    rows: Annotated[int, typer.Option(help="Rows of synthetic data per sample.")] = 20000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same models).")] = 0,
    size: Annotated[str, typer.Option(help="full (realistic tables) or tiny.")] = "full",
    force: Annotated[bool, typer.Option("--force", help="Replace existing samples.")] = False,
) -> None:
    """Build the DSSM, ESMM and DIN sample models and their data (deterministic for a seed)."""
    from recadvisor.samples import build_samples

    results = build_samples(
        out, rows=rows, seed=seed, size=size, force=force, progress=lambda msg: console.print(msg)
    )
    table = Table(title=f"Sample models in {out}")
    for col in ("name", "model", "data rows", "AUC (held out)", "train s"):
        table.add_column(col)
    for r in results:
        auc = ", ".join(f"{k} {v:.3f}" for k, v in r.auc.items())
        table.add_row(r.name, r.model_dir, str(r.rows), auc, f"{r.train_seconds:.1f}")
    console.print(table)


@app.command()
@handle_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Reports folder.")] = Path("reports"),
    models: Annotated[Path, typer.Option("--models", help="Sample models folder.")] = Path(
        "sample_models"
    ),
    rows: Annotated[int, typer.Option(help="Rows of synthetic data per sample.")] = 20000,
    requests: Annotated[int, typer.Option(help="Timed calls per batch size.")] = 200,
    force: Annotated[bool, typer.Option("--force", help="Rebuild existing samples.")] = False,
) -> None:
    """The main job on the bundled samples: build them (if missing), then analyze, rebuild
    (safe and fast, with ONNX) and compare each one, into OUT/ with OUT/index.html."""
    from recadvisor import api
    from recadvisor.report import render_index
    from recadvisor.samples import SAMPLE_NAMES, build_samples

    missing = [n for n in SAMPLE_NAMES if force or not (models / n / "saved_model").is_dir()]
    if missing:
        build_samples(
            models, rows=rows, names=missing, force=force, progress=lambda msg: console.print(msg)
        )
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for name in SAMPLE_NAMES:
        model = models / name / "saved_model"
        data = models / name / "sample.parquet"
        console.rule(f"{name}")
        with _progress() as progress:
            cb = _progress_callback(progress)
            analysis = api.analyze(
                model, data=data, out_dir=out / name / "analysis", force=True, progress=cb
            )
            rebuilt = {}
            for preset in ("safe", "fast"):
                rebuilt[preset] = api.rebuild(
                    model,
                    out / name / preset,
                    preset=preset,
                    data=data,
                    onnx=(preset == "fast"),
                    force=True,
                )
            candidates: list[Path] = [out / name / "safe", out / name / "fast"]
            if (out / name / "fast" / "model.onnx").is_file():
                candidates.append(out / name / "fast" / "model.onnx")
            comp = api.compare(
                model,
                candidates,
                data=data,
                batch_sizes=(1, 256),
                requests=requests,
                measure_memory=False,
                out_dir=out / name / "compare",
                force=True,
                rebuild_info=rebuilt["fast"].to_dict(),
                progress=cb,
            )
        print_comparison(comp.to_dict())
        entries.append(
            {
                "title": f"{name}: analysis",
                "kind": "analysis",
                "path": f"{name}/analysis/report.html",
                "description": f"{len(analysis.findings)} findings, "
                f"{len(analysis.suggestions)} suggestions",
            }
        )
        entries.append(
            {
                "title": f"{name}: rebuilt vs baseline",
                "kind": "comparison",
                "path": f"{name}/compare/compare.html",
                "description": "safe, fast and fast + ONNX rebuilds, interleaved timing",
            }
        )
    render_index(entries, out / "index.html")
    console.print(f"open {out}/index.html")


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        sizes = ()
    if not sizes or any(b < 1 for b in sizes):
        raise typer.BadParameter(f"'{text}' is not a comma-separated list of positive integers")
    return sizes


def _devices(text: str) -> str:
    from recadvisor.api import parse_devices

    try:
        return ",".join(sorted(parse_devices(text)))
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _progress_callback(progress: Any) -> Callable[[str, int, int], None]:
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return update


def print_comparison(comp: dict[str, Any]) -> None:
    """Rich table of a comparison."""
    table = Table(
        title=f"{comp['baseline']} [{comp['signature']}], {comp['requests']} calls "
        "per batch size, interleaved"
    )
    table.add_column("model")
    for bs in comp["batch_sizes"]:
        table.add_column(f"p50 ms @{bs}", justify="right")
        table.add_column(f"x base @{bs}", justify="right")
    table.add_column("x floor @1" if 1 in comp["batch_sizes"] else "x floor", justify="right")
    table.add_column("size", justify="right")
    table.add_column("parity (max abs diff)")
    table.add_column("AUC")
    first = str(comp["batch_sizes"][0])
    for m in comp["models"]:
        row = [m["label"]]
        for bs in comp["batch_sizes"]:
            row += [
                f"{m['latency'][str(bs)]['p50_ms']:.3f}",
                f"{m['ratio_vs_baseline'][str(bs)]:.2f}",
            ]
        row.append(f"{m['ratio_vs_floor'][first]:.2f}")
        row.append(fmt_bytes(m["size_bytes"]))
        if m["parity"] is None:
            row.append("baseline")
        else:
            worst = max(m["parity"].values()) if m["parity"] else float("nan")
            row.append(f"{'ok' if m['parity_passed'] else 'FAIL'} {worst:.1e}")
        row.append(", ".join(f"{k} {v['auc']:.4f}" for k, v in m["quality"].items()) or "-")
        table.add_row(*row)
    floor = ["(call floor)"]
    for bs in comp["batch_sizes"]:
        floor += [f"{comp['floor'][str(bs)]['p50_ms']:.3f}", ""]
    table.add_row(*floor, "1.00", "", "", "")
    console.print(table)
    for note in comp["notes"]:
        console.print(f"note: {note}")


@app.command()
@handle_errors
def compare(
    baseline: Annotated[Path, typer.Argument(help="The original SavedModel directory.")],
    candidates: Annotated[
        list[Path], typer.Argument(help="Rebuilt dirs, SavedModel dirs or .onnx files.")
    ],
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Sample data file.")] = None,
    signature: Annotated[str | None, typer.Option("--signature", "-s")] = None,
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", help="e.g. 1,32,256")] = "1,32,256",
    requests: Annotated[int, typer.Option(help="Timed calls per model and batch size.")] = 200,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads.")] = None,
    devices: Annotated[str, typer.Option(help="cpu, or cpu,gpu when a GPU exists.")] = "cpu",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "reports/compare"
    ),
    no_memory: Annotated[bool, typer.Option("--no-memory", help="Skip memory.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    allow_unsafe_ops: Annotated[
        bool, typer.Option("--allow-unsafe-ops", help=ALLOW_UNSAFE_HELP)
    ] = False,
) -> None:
    """Benchmark candidates against the baseline: latency percentiles per batch size, throughput,
    memory, size, node counts, parity per output, AUC/log-loss when the data has labels."""
    from recadvisor import api

    sizes = _batch_sizes(batch_sizes)
    with _progress() as progress:
        comp = api.compare(
            baseline,
            candidates,
            data=data,
            signature=signature,
            batch_sizes=sizes,
            requests=requests,
            threads=threads,
            devices=_devices(devices),
            measure_memory=not no_memory,
            out_dir=out,
            force=force,
            allow_unsafe_ops=allow_unsafe_ops,
            progress=_progress_callback(progress),
        )
    print_comparison(comp.to_dict())
    console.print(f"wrote {out}/compare.json and {out}/compare.html")


def print_rebuild(result: dict[str, Any]) -> None:
    """Rich table of the passes a rebuild ran."""
    model = result.get("model", {})
    table = Table(
        title=f"rebuild of {model.get('path')} [{model.get('signature')}] -> "
        f"{result.get('output', {}).get('dir')}"
    )
    for col in ("pass", "status", "detail", "nodes", "s"):
        table.add_column(col)
    for rec in result.get("passes", {}).get("passes", []):
        if rec.get("status") == "disabled":
            continue
        detail = rec.get("reason") or ", ".join(
            f"{k} {v}" for k, v in rec.get("stats", {}).items() if isinstance(v, (int, float)) and v
        )
        table.add_row(
            rec.get("name", ""),
            rec.get("status", ""),
            str(detail)[:80],
            f"{rec.get('nodes_before', '')} -> {rec.get('nodes_after', '')}",
            f"{rec.get('seconds', 0):.2f}",
        )
    console.print(table)
    parity = result.get("parity", {}).get("exported_vs_original") or {}
    if parity:
        console.print(
            f"parity of the exported model vs the original: "
            f"{'ok' if parity.get('passed') else 'FAILED'} ({parity.get('summary', '')})"
        )
    nodes = result.get("nodes", {})
    if nodes:
        console.print(
            f"nodes: {nodes.get('original')} stored, {nodes.get('frozen')} frozen, "
            f"{nodes.get('final')} rebuilt"
        )
    for note in result.get("notes", []):
        console.print(f"note: {note}")


@app.command()
@handle_errors
def rebuild(
    model: Annotated[Path, typer.Argument(help="The original SavedModel directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    plan: Annotated[Path | None, typer.Option("--plan", help="plan.yaml from analyze.")] = None,
    preset: Annotated[str, typer.Option(help="safe | fast | small (without --plan).")] = "safe",
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Sample data file.")] = None,
    signature: Annotated[str | None, typer.Option("--signature", "-s")] = None,
    onnx: Annotated[bool, typer.Option("--onnx", help="Also write model.onnx.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    allow_unsafe_ops: Annotated[
        bool, typer.Option("--allow-unsafe-ops", help=ALLOW_UNSAFE_HELP)
    ] = False,
    stats: Annotated[Path | None, typer.Option("--stats", help=STATS_HELP)] = None,
) -> None:
    """Apply a plan (or a preset) with every rewrite parity-checked, and write
    OUT/saved_model, OUT/rebuild.json, OUT/plan.yaml (and feature_contract.json, model.onnx)."""
    from recadvisor import api

    result = api.rebuild(
        model,
        out,
        plan=plan,
        preset=preset,
        data=data,
        signature=signature,
        onnx=onnx,
        force=force,
        allow_unsafe_ops=allow_unsafe_ops,
        stats=stats,
    )
    print_rebuild(result.to_dict())
    console.print(f"wrote {out}/saved_model and {out}/rebuild.json")


@app.command()
@handle_errors
def analyze(
    model: Annotated[Path, typer.Argument(help="SavedModel directory.")],
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Sample data file.")] = None,
    signature: Annotated[str | None, typer.Option("--signature", "-s")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "reports/analysis"
    ),
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", help="e.g. 1,256")] = "1,256",
    preset: Annotated[str, typer.Option(help="Plan preset: safe | fast | small.")] = "safe",
    allow_unsafe_ops: Annotated[
        bool, typer.Option("--allow-unsafe-ops", help="Run a model with file/network/Python ops.")
    ] = False,
    tensorboard: Annotated[
        Path | None,
        typer.Option("--tensorboard", help="Also write the graph and profile for TensorBoard."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    stats: Annotated[Path | None, typer.Option("--stats", help=STATS_HELP)] = None,
) -> None:
    """Profile the model per op, attribute cost to features, find what makes it slow or big,
    and write OUT/analysis.json, OUT/plan.yaml and OUT/report.html."""
    from recadvisor import api

    sizes = _batch_sizes(batch_sizes)
    with _progress() as progress:
        result = api.analyze(
            model,
            data=data,
            signature=signature,
            out_dir=out,
            batch_sizes=sizes,
            preset=preset,
            allow_unsafe_ops=allow_unsafe_ops,
            tensorboard_dir=tensorboard,
            force=force,
            progress=_progress_callback(progress),
            stats=stats,
        )
    payload = result.to_dict()
    table = Table(title=f"Top suggestions for {model}")
    for col in ("suggestion", "exactness", "contract"):
        table.add_column(col)
    for sug in payload.get("suggestions", [])[:8]:
        table.add_row(
            str(sug.get("message", sug.get("kind"))),
            str(sug.get("exactness")),
            "changes" if sug.get("changes_contract") else "same",
        )
    console.print(table)
    console.print(
        f"{len(payload.get('findings', []))} findings; wrote {out}/analysis.json, "
        f"{out}/plan.yaml and {out}/report.html"
    )


@app.command()
@handle_errors
def encode(
    rebuilt: Annotated[Path, typer.Argument(help="A folder written by rebuild.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Raw data file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Encoded .parquet or .npz.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
) -> None:
    """Encode raw data for a rebuilt model whose inputs changed (string ids -> TensorFlow's
    int64 bucket ids, exactly), following REBUILT/feature_contract.json."""
    from recadvisor.encode import encode_file

    result = encode_file(rebuilt, data, out, force=force)
    console.print(f"wrote {out} ({getattr(result, 'rows', '?')} rows)")


def print_stats(doc: dict[str, Any]) -> None:
    """The inputs, embedding tables and per-request checks of a ``stats.json`` as tables."""
    ds = doc["dataset"]
    console.print(
        f"{ds['rows']:,} rows in {ds['file_count']} {ds['format']} files "
        f"({fmt_bytes(ds['total_bytes'])}), {ds['engine']} {ds['seconds']:.1f} s"
    )
    _print_table(
        "Inputs",
        ("input", "values", "nulls", "pads", "distinct", "min", "max"),
        (
            (
                k,
                f"{s['values']:,}",
                f"{s['nulls']:,}",
                f"{s['pads']:,}",
                f"{s['distinct']:,}",
                str(s["min"])[:20],
                str(s["max"])[:20],
            )
            for k, s in doc["inputs"].items()
        ),
    )
    _print_table(
        "Embedding rows hit (after the model's id mapping)",
        ("table", "inputs", "rows hit", "rows", "hits"),
        (
            (
                t["variable"],
                ", ".join(i["input"] for i in t["inputs"]),
                f"{t['rows_hit']:,}",
                f"{t['rows']:,}",
                f"{t['hits']:,}",
            )
            for t in doc["tables"].values()
        ),
    )
    checks = [c for c in doc["per_request"] if c["per_request"]]
    for key in dict.fromkeys(c["key"] for c in doc["per_request"]):
        found = ", ".join(c["input"] for c in checks if c["key"] == key) or "none"
        console.print(f"one value per {key}: {found}")
    for note in doc.get("notes", []):
        console.print(f"note: {note}")


@app.command("stats")
@handle_errors
def stats_command(
    model: Annotated[Path, typer.Argument(help="SavedModel directory.")],
    data: Annotated[
        list[str], typer.Argument(help="Log files, folders or globs (Parquet, CSV, JSONL).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    signature: Annotated[str | None, typer.Option("--signature", "-s")] = None,
    engine: Annotated[str, typer.Option(help="duckdb (embedded) or spark.")] = "duckdb",
    spark_master: Annotated[
        str | None,
        typer.Option("--spark-master", help="local[2], yarn, spark://host:7077 (Spark only)."),
    ] = None,
    memory_limit: Annotated[
        str, typer.Option("--memory-limit", help="Engine memory (DuckDB limit, Spark driver).")
    ] = "2GiB",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    allow_unsafe_ops: Annotated[
        bool, typer.Option("--allow-unsafe-ops", help=ALLOW_UNSAFE_HELP)
    ] = False,
) -> None:
    """Exact feature statistics over the full logs (rows, nulls, pads, distinct values,
    quantiles, sequence lengths, embedding-row hits after the model's id mapping, per-request
    inputs) into OUT/stats.json and OUT/counts/, for analyze --stats and rebuild --stats."""
    from recadvisor import api

    with _progress() as progress:
        doc = api.stats(
            model,
            list(data),
            out,
            signature=signature,
            engine=engine,
            spark_master=spark_master,
            memory_limit=memory_limit,
            force=force,
            allow_unsafe_ops=allow_unsafe_ops,
            progress=_progress_callback(progress),
        )
    print_stats(doc)
    console.print(f"wrote {out}/stats.json and {out}/counts/")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
