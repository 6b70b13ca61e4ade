"""Property tests of the plan parser and the data coercion, and bounded seeded fuzz runs of the
plan loader and the data loader: whatever the input, they return a valid result or raise the
documented :class:`RecAdvisorError` subclass (one line, non-empty), never another exception.

The fuzz loops are seeded (the same mutations every run) and stop after ``FUZZ_SECONDS`` or
``FUZZ_CASES`` inputs, whichever comes first, so they bound the suite's time.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recadvisor.data import load_feeds, to_feeds
from recadvisor.errors import DataError, PlanError, RecAdvisorError
from recadvisor.model.spec import SignatureSpec, TensorInfo
from recadvisor.plan import Plan, PlanEntry, load_plan, save_plan
from recadvisor.rewrite.registry import PASS_NAMES
from tests.reliability import models

FUZZ_MIN_CASES = 20
FUZZ_SECONDS = 5.0
FUZZ_CASES = 400
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def assert_one_line(error: RecAdvisorError) -> None:
    message = str(error)
    assert message.strip() and "\n" not in message, repr(message)


# ----------------------------------------------------------------------------- the plan parser

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.text(max_size=12)
    | st.floats(allow_nan=False)
)
_params = st.dictionaries(
    st.text(min_size=1, max_size=10),
    st.recursive(
        _scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=4,
)
_entries = st.builds(
    PlanEntry,
    st.sampled_from(PASS_NAMES) | st.text(min_size=1, max_size=20),
    st.booleans(),
    _params,
    st.text(max_size=40),
)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    entries = draw(st.lists(_entries, max_size=6, unique_by=lambda e: e.pass_name))
    return Plan(
        model_path=draw(st.text(max_size=30)),
        signature=draw(st.text(max_size=15)),
        fingerprint=draw(st.text(min_size=1, max_size=16)),
        preset=draw(st.text(max_size=10)),
        rewrites=tuple(entries),
    )


@SETTINGS
@given(plan=plans())
def test_plan_round_trips_through_dict_and_yaml(plan: Plan, tmp_path: Path) -> None:
    assert Plan.from_dict(plan.to_dict()) == plan
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert load_plan(save_plan(plan, tmp_path / "plan.yaml")) == plan


_yaml_like = st.recursive(
    _scalars | st.sampled_from(["pass", "rewrites", "model", "fingerprint", 1]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "schema_version",
                    "model",
                    "rewrites",
                    "pass",
                    "enabled",
                    "params",
                    "comment",
                    "fingerprint",
                    "path",
                    1,
                    2.5,
                    None,
                ]
            )
            | st.text(max_size=5),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=_yaml_like)
@example(
    {"schema_version": 1, "model": {"fingerprint": "x"}, "rewrites": [{"pass": "a", 1: 2, "b": 3}]}
)  # keys of mixed types
def test_any_document_is_a_plan_or_a_plan_error(data: object) -> None:
    try:
        plan = Plan.from_dict(data)
    except PlanError as e:
        assert_one_line(e)
    else:
        assert isinstance(plan, Plan) and plan.fingerprint


# -------------------------------------------------------------------------- the data coercion

_SPEC = SignatureSpec(
    "serving_default",
    {
        "user_id": TensorInfo("user_id", "string", (None,)),
        "age": TensorInfo("age", "int64", (None, 1)),
        "price": TensorInfo("price", "float32", (None,)),
        "history": TensorInfo("history", "int64", (None, 3)),
        "flag": TensorInfo("flag", "bool", (None,)),
    },
)
_cells = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=6)
    | st.binary(max_size=4)
    | st.sampled_from(["1", "1 2 3", "[1, 2, 3]", "nan", "", "true"]),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=6,
)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(0, 4))
    names = draw(
        st.lists(st.sampled_from([*_SPEC.inputs, "label", "other"]), unique=True, max_size=6)
    )
    columns = {}
    for name in names:
        cells = draw(st.lists(_cells, min_size=rows, max_size=rows))
        column = pd.Series([None] * rows, dtype=object)
        for i, cell in enumerate(cells):
            column[i] = cell
        columns[name] = column
    return pd.DataFrame(columns, index=pd.RangeIndex(rows))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(frame=frames(), strict=st.booleans())
def test_any_frame_gives_fitting_feeds_or_a_data_error(frame: pd.DataFrame, strict: bool) -> None:
    try:
        feeds = to_feeds(frame, _SPEC, strict=strict)
    except DataError as e:
        assert_one_line(e)
        return
    assert list(feeds) == list(_SPEC.inputs)
    expected_dtype = {"string": object, "int64": np.int64, "float32": np.float32, "bool": np.bool_}
    for key, info in _SPEC.inputs.items():
        feed = feeds[key]
        assert feed.dtype == expected_dtype[info.dtype], (key, feed.dtype)
        assert feed.shape[0] == len(frame.index)
        assert len(feed.shape) == len(info.shape)
        for got, want in zip(feed.shape[1:], info.shape[1:], strict=True):
            assert want is None or got == want


# ------------------------------------------------------------------------------ fuzz runs


def _mutate(blob: bytes, rng: random.Random) -> bytes:
    """One seeded mutation: flip, insert, delete, truncate, duplicate or splice random bytes."""
    data = bytearray(blob)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        pos = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 2:
            del data[pos : pos + rng.randint(1, 16)]
        elif kind == 3:
            del data[pos:]
        elif kind == 4:
            data[pos:pos] = data[max(0, pos - 32) : pos]
        else:
            data[pos:pos] = rng.choice(
                [
                    b"\n",
                    b"\x00",
                    b"\xff\xfe",
                    b"{",
                    b"[",
                    b"- ",
                    b": ",
                    b"'",
                    b'"',
                    b"&a *a",
                    b"!!python/object",
                    b"\t",
                ]
            )
    return bytes(data)


def _fuzz(seeds: list[bytes], attempt: Callable[[bytes], None], seed: int) -> int:
    """Run ``attempt`` on seeded mutations of ``seeds`` and on random bytes; return the count.

    At least ``FUZZ_MIN_CASES`` run however slow the machine is; beyond that ``FUZZ_SECONDS``
    bounds the time."""
    rng = random.Random(seed)
    deadline = time.perf_counter() + FUZZ_SECONDS
    done = 0
    while done < FUZZ_CASES and (done < FUZZ_MIN_CASES or time.perf_counter() < deadline):
        if done % 10 == 9:
            blob = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        else:
            blob = _mutate(rng.choice(seeds), rng)
        attempt(blob)
        done += 1
    return done


def test_fuzz_plan_loader(tmp_path: Path) -> None:
    plan = Plan(
        "models/x",
        "serving_default",
        "3f2a",
        "safe",
        (
            PlanEntry("prune_outputs", True, {"keep": ["ctr"]}, "served for ctr only"),
            PlanEntry("quantize_embeddings", False, {"dtype": "int8", "max_abs_diff": 0.01}),
        ),
    )
    seeds = [
        save_plan(plan, tmp_path / "seed.yaml").read_bytes(),
        json.dumps(plan.to_dict()).encode(),
    ]
    path = tmp_path / "fuzzed.yaml"
    outcomes = {"plan": 0, "error": 0}

    def attempt(blob: bytes) -> None:
        path.write_bytes(blob)
        try:
            load_plan(path)
            outcomes["plan"] += 1
        except PlanError as e:
            assert_one_line(e)
            outcomes["error"] += 1

    assert _fuzz(seeds, attempt, seed=7) >= 50
    assert outcomes["plan"] and outcomes["error"]  # the mutations reach both outcomes


def _data_seeds() -> dict[str, bytes]:
    """The same small frame in every supported format, as bytes."""
    from tests.data.sample_files import write_frame

    frame = models.ranker_frame(rows=5)
    blobs = {}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for ext in ("parquet", "csv", "jsonl", "npz", "tfrecord"):
            blobs[ext] = write_frame(frame, Path(tmp) / f"seed.{ext}", ext).read_bytes()
    return blobs


@pytest.mark.parametrize("ext", ["parquet", "csv", "jsonl", "npz", "tfrecord"])
def test_fuzz_data_loader(ext: str, tmp_path: Path) -> None:
    seeds = _data_seeds()
    spec = SignatureSpec(
        "serving_default",
        {
            "user_id": TensorInfo("user_id", "string", (None,)),
            "age": TensorInfo("age", "int64", (None, 1)),
            "category": TensorInfo("category", "string", (None,)),
        },
    )
    path = tmp_path / f"fuzzed.{ext}"
    outcomes = {"feeds": 0, "error": 0}

    def attempt(blob: bytes) -> None:
        path.write_bytes(blob)
        try:
            load_feeds(path, spec)
            outcomes["feeds"] += 1
        except DataError as e:
            assert_one_line(e)
            outcomes["error"] += 1

    assert _fuzz([seeds[ext]], attempt, seed=sum(map(ord, ext))) >= FUZZ_MIN_CASES
    assert outcomes["error"]
