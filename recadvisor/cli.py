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
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

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
    table = Table(title=Text(title), box=box.SIMPLE_HEAD)
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
    table = Table(title=Text(f"Sample models in {out}"), box=box.SIMPLE_HEAD)
    table.add_column("name", no_wrap=True)
    table.add_column("data rows", justify="right", no_wrap=True)
    table.add_column("AUC (held out)")
    table.add_column("train s", justify="right", no_wrap=True)
    for r in results:
        auc = ", ".join(f"{k} {v:.3f}" for k, v in r.auc.items())
        table.add_row(r.name, str(r.rows), auc, f"{r.train_seconds:.1f}")
    console.print(table)
    for r in results:
        console.print(Text(f"  {r.name}: {r.model_dir}"))


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
    (safe, fast and request, with ONNX) and compare each one in the serving runtime (batches,
    and requests of one user x 256 candidates), into OUT/ with OUT/index.html."""
    from recadvisor import api

    with _progress() as progress:
        result = api.demo(
            models,
            out,
            rows=rows,
            requests=requests,
            force=force,
            progress=_progress_callback(progress),
        )
    for model in result.models:
        console.rule(model.name)
        print_comparison(model.comparison.to_dict())
        print_serving(model.comparison.to_dict())
        if model.request_comparison is not None:
            print_serving(model.request_comparison.to_dict())
    console.print(f"open {result.index}")


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


def _serving_options(runtime: str, setting: str | None, request: int | None) -> None:
    from recadvisor.serving.workloads import check_options

    if request is not None and request < 1:
        raise typer.BadParameter(f"--request {request}: give a positive number of candidates")
    try:
        check_options(runtime, setting)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e


def print_serving(comp: dict[str, Any]) -> None:
    """The runtime, request and concurrency figures of a comparison, when there are any."""
    from recadvisor.report.terminal import serving_renderables

    for item in serving_renderables(comp, console):
        console.print(item)


def _print_serving_settings(section: dict[str, Any] | None) -> None:
    if not section:
        return
    if section.get("unavailable"):
        console.print(f"serving settings: not measured ({section['unavailable']})")
        return
    best = next(s for s in section["settings"] if s["name"] == section["best"])
    gains = ", ".join(f"{k} {v:.2f}x" for k, v in section["gain"].items())
    console.print(f"best serving setting: {best['name']} ({best['description']}): {gains}")
    if best["serving_flags"]:
        console.print("  TF Serving: " + " ".join(best["serving_flags"]))
    if best["config_proto"]:
        console.print(f"  ConfigProto: {best['config_proto']}")


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
    """The ``compare`` table, sized to the terminal (see :mod:`recadvisor.report.terminal`)."""
    from recadvisor.report.terminal import comparison_renderables

    for item in comparison_renderables(comp, console):
        console.print(item)


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
    runtime: Annotated[
        str, typer.Option(help="tf-c (TensorFlow's C API, as TF Serving runs it) or python.")
    ] = "tf-c",
    request: Annotated[
        int | None,
        typer.Option("--request", help="Time requests of one user x N candidates."),
    ] = None,
    concurrency: Annotated[
        str | None, typer.Option(help="Closed-loop callers to run, e.g. 1,2,4.")
    ] = None,
    concurrency_seconds: Annotated[
        float, typer.Option(help="Seconds per model and caller count.")
    ] = 2.0,
    candidate_setting: Annotated[
        str | None,
        typer.Option(help="Session setting for the candidates (tf-c): caller_thread, per_session."),
    ] = None,
    python_too: Annotated[
        bool, typer.Option("--python-too", help="With tf-c, also time in Python.")
    ] = False,
) -> None:
    """Benchmark candidates against the baseline: latency percentiles per batch size, throughput,
    memory, size, node counts, parity per output, AUC/log-loss when the data has labels."""
    from recadvisor import api

    sizes = _batch_sizes(batch_sizes)
    levels = _batch_sizes(concurrency) if concurrency else ()
    _serving_options(runtime, candidate_setting, request)
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
            runtime=runtime,
            request_size=request,
            concurrency=levels,
            concurrency_seconds=concurrency_seconds,
            candidate_setting=candidate_setting,
            also_python=python_too,
        )
    print_comparison(comp.to_dict())
    print_serving(comp.to_dict())
    console.print(f"wrote {out}/compare.json and {out}/compare.html")


def print_rebuild(result: dict[str, Any]) -> None:
    """The passes a rebuild ran, sized to the terminal."""
    from recadvisor.report.terminal import rebuild_renderables

    for item in rebuild_renderables(result, console):
        console.print(item)


@app.command()
@handle_errors
def rebuild(
    model: Annotated[Path, typer.Argument(help="The original SavedModel directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    plan: Annotated[Path | None, typer.Option("--plan", help="plan.yaml from analyze.")] = None,
    preset: Annotated[
        str, typer.Option(help="safe | fast | small | request (without --plan).")
    ] = "safe",
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
    preset: Annotated[
        str, typer.Option(help="Plan preset: safe | fast | small | request.")
    ] = "safe",
    allow_unsafe_ops: Annotated[
        bool, typer.Option("--allow-unsafe-ops", help="Run a model with file/network/Python ops.")
    ] = False,
    tensorboard: Annotated[
        Path | None,
        typer.Option("--tensorboard", help="Also write the graph and profile for TensorBoard."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    serving_settings: Annotated[
        bool,
        typer.Option(
            "--serving-settings",
            help="Also time session settings in TensorFlow's C runtime (about a minute).",
        ),
    ] = False,
    request: Annotated[
        int, typer.Option("--request", help="Candidates per request for --serving-settings.")
    ] = 256,
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
            serving_settings=serving_settings,
            request_size=request,
            stats=stats,
        )
    payload = result.to_dict()
    _print_serving_settings(payload.get("serving_settings"))
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
