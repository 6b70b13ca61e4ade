"""Building the sample models: data, training, held-out AUC, and the files on disk.

``build_sample("dssm", "sample_models")`` writes, atomically::

    sample_models/dssm/saved_model/    tf.saved_model.save of a tf.Module, signature serving_default
    sample_models/dssm/sample.parquet  one column per signature input, then the label column(s)
    sample_models/dssm/flaws.json      the planted flaws: [{"kind", "features", "detail"}]
    sample_models/dssm/sample.json     the SampleResult (AUCs, sizes, seed, timings)

The held-out split is the last 20% of the parquet rows (rows are i.i.d.). A build is a pure
function of ``(name, rows, seed, size)``: the parquet file is bit-identical and the weights are
identical across runs.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recadvisor.errors import DataError, RecAdvisorError
from recadvisor.output import atomic_output_dir, check_output_dir
from recadvisor.samples.common import (
    SIZES,
    SampleDefinition,
    held_out_start,
    roc_auc,
    serving_function,
    train,
    write_parquet,
)
from recadvisor.samples.synthetic import generate_interactions
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)

SAMPLE_NAMES: tuple[str, ...] = ("dssm", "esmm", "din")
MIN_ROWS = 200
SIGNATURE_KEY = "serving_default"


@dataclass(frozen=True)
class SampleResult:
    """What one sample build produced.

    Attributes:
        name: ``dssm``, ``esmm`` or ``din``.
        model_dir: the SavedModel directory (``<out>/<name>/saved_model``).
        data_path: the sample data (``<out>/<name>/sample.parquet``).
        rows: rows in the data file (training + held-out).
        seed: the seed of the build.
        auc: output key -> ROC AUC on the held-out rows (ESMM ``cvr``: clicked rows only).
        train_seconds: wall-clock training time.
        flaws: the planted flaws, as written to ``flaws.json``.
        size: ``tiny`` or ``full``.
    """

    name: str
    model_dir: str
    data_path: str
    rows: int
    seed: int
    auc: dict[str, float]
    train_seconds: float
    flaws: tuple[dict[str, Any], ...]
    size: str = "full"

    @property
    def flaws_path(self) -> str:
        """The ``flaws.json`` file next to the model."""
        return str(Path(self.model_dir).parent / "flaws.json")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        data = asdict(self)
        data["flaws"] = [dict(f) for f in self.flaws]
        return data


def sample_definition(name: str) -> SampleDefinition:
    """The definition of one sample model.

    Args:
        name: one of :data:`SAMPLE_NAMES`.

    Returns:
        Its :class:`SampleDefinition`.

    Raises:
        RecAdvisorError: unknown name.
    """
    if name not in SAMPLE_NAMES:
        raise RecAdvisorError(f"unknown sample '{name}'; choose from {', '.join(SAMPLE_NAMES)}")
    module = importlib.import_module(f"recadvisor.samples.{name}")
    return module.DEFINITION


def _seeds(seed: int, name: str) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for weight init and batch order, distinct per sample."""
    entropy = [seed, SAMPLE_NAMES.index(name)]
    init, order = np.random.SeedSequence(entropy).spawn(2)
    return np.random.default_rng(init), np.random.default_rng(order)


def build_sample(
    name: str,
    out_dir: str | Path,
    rows: int = 20000,
    seed: int = 0,
    size: str = "full",
    force: bool = False,
) -> SampleResult:
    """Generate data, train one sample model and write it under ``<out_dir>/<name>/``.

    Args:
        name: one of :data:`SAMPLE_NAMES`.
        out_dir: parent folder of the sample folders.
        rows: impressions to generate (80% train, the last 20% held out).
        seed: the random seed; the same seed gives the same data and weights.
        size: ``full`` (tables of 10^4..10^5 rows, widths 16..64) or ``tiny`` (~1000-row
            tables, for tests).
        force: replace an existing ``<out_dir>/<name>``.

    Returns:
        The :class:`SampleResult`.

    Raises:
        OutputExistsError: ``<out_dir>/<name>`` exists and ``force`` is false.
        DataError: ``rows`` is below the minimum.
        RecAdvisorError: unknown ``name`` or ``size``.
    """
    definition = sample_definition(name)
    if size not in SIZES:
        raise RecAdvisorError(f"unknown sample size '{size}'; choose from {', '.join(SIZES)}")
    if rows < MIN_ROWS:
        raise DataError(f"--rows {rows} is too few to train and evaluate; use at least {MIN_ROWS}")
    sizes = SIZES[size]
    final = Path(out_dir) / name
    check_output_dir(final, force)  # refuse before spending time on training
    tf = import_tf()

    columns = definition.make_columns(generate_interactions(rows, seed))
    split = held_out_start(rows)
    init_rng, order_rng = _seeds(seed, name)
    training = {k: v[:split] for k, v in columns.items()}
    model = definition.make_model(sizes, training, init_rng)
    train_seconds = train(
        model.loss,
        model.trainable_variables,
        {k: training[k] for k in definition.inputs},
        {k: training[k] for k in definition.labels},
        sizes,
        order_rng,
    )
    function = serving_function(model.serve, definition.inputs)
    held_out = {
        k: tf.constant(columns[k][split:], dtype=tf.as_dtype(info.dtype))
        for k, info in definition.inputs.items()
    }
    predictions = {k: v.numpy() for k, v in function(**held_out).items()}
    auc = {}
    for output, target in definition.auc_targets.items():
        rows_used = np.ones(rows - split, bool)
        if target.only_where is not None:
            rows_used = columns[target.only_where][split:] == 1
        auc[output] = roc_auc(
            columns[target.label][split:][rows_used], predictions[output][rows_used]
        )
    flaws = tuple(definition.planted_flaws(sizes, columns))
    result = SampleResult(
        name=name,
        model_dir=str(final / "saved_model"),
        data_path=str(final / "sample.parquet"),
        rows=rows,
        seed=seed,
        auc=auc,
        train_seconds=round(train_seconds, 3),
        flaws=flaws,
        size=size,
    )
    with atomic_output_dir(final, force) as tmp:
        tf.saved_model.save(
            model.module, str(tmp / "saved_model"), signatures={SIGNATURE_KEY: function}
        )
        write_parquet(tmp / "sample.parquet", columns)
        (tmp / "flaws.json").write_text(json.dumps(list(flaws), indent=2) + "\n")
        (tmp / "sample.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    log.info("built sample %s in %s (AUC %s)", name, final, auc)
    return result


def build_samples(
    out_dir: str | Path,
    rows: int = 20000,
    seed: int = 0,
    names: Iterable[str] | None = None,
    size: str = "full",
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[SampleResult]:
    """Build several sample models (all of them by default) under ``out_dir``.

    Args:
        out_dir: parent folder of the sample folders.
        rows: impressions per sample.
        seed: the random seed.
        names: which samples (default :data:`SAMPLE_NAMES`, in that order).
        size: ``full`` or ``tiny``.
        force: replace existing sample folders.
        progress: called with one line of text before and after each sample.

    Returns:
        One :class:`SampleResult` per sample, in order.

    Raises:
        OutputExistsError: a sample folder exists and ``force`` is false (checked for all
            samples before any is built).
    """
    chosen = list(SAMPLE_NAMES if names is None else names)
    for name in chosen:
        sample_definition(name)
        check_output_dir(Path(out_dir) / name, force)
    results = []
    for name in chosen:
        if progress is not None:
            progress(f"building {name} ({rows} rows, seed {seed}, {size})")
        start = time.perf_counter()
        result = build_sample(name, out_dir, rows=rows, seed=seed, size=size, force=force)
        if progress is not None:
            aucs = ", ".join(f"{k} {v:.3f}" for k, v in result.auc.items())
            progress(
                f"{name}: AUC {aucs} ({time.perf_counter() - start:.1f} s) -> {result.model_dir}"
            )
        results.append(result)
    return results
