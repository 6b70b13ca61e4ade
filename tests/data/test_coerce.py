"""Fitting frames to a signature: shapes, dtypes, padding, errors, labels and batches."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recadvisor.data import NUMBER_PAD, STRING_PAD, batches, labels, to_feeds
from recadvisor.errors import DataError
from recadvisor.model.spec import SignatureSpec, TensorInfo


def one_input(dtype: str, shape: tuple[int | None, ...] | None, key: str = "x") -> SignatureSpec:
    return SignatureSpec("serving_default", {key: TensorInfo(key, dtype, shape)})


def object_column(cells: list) -> pd.Series:
    """A Series holding exactly these cells (pandas ``iat`` would unwrap length-1 arrays)."""
    array = np.empty(len(cells), dtype=object)
    for i, cell in enumerate(cells):
        array[i] = cell
    return pd.Series(array, dtype=object)


# -------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("shape", "expected"), [((None,), (3,)), ((None, 1), (3, 1)), (None, (3,))]
)
def test_scalar_column_fits_rank_1_and_column_shape(shape, expected):
    frame = pd.DataFrame({"x": [1, 2, 3]})
    feed = to_feeds(frame, one_input("int64", shape))["x"]
    assert feed.shape == expected and feed.dtype == np.int64
    assert feed.ravel().tolist() == [1, 2, 3]


def test_length_one_lists_fit_scalar_inputs():
    frame = pd.DataFrame({"x": [["a"], ["b"]]})
    assert to_feeds(frame, one_input("string", (None,)))["x"].tolist() == ["a", "b"]
    assert to_feeds(frame, one_input("string", (None, 1)))["x"].tolist() == [["a"], ["b"]]


def test_longer_lists_do_not_fit_scalar_inputs():
    frame = pd.DataFrame({"x": [["a"], ["b", "c"]]})
    with pytest.raises(DataError, match=r"column 'x' .*string \[N\].*row 1 holds a list of 2"):
        to_feeds(frame, one_input("string", (None,)))


def test_ragged_lists_are_padded_when_length_is_unknown():
    frame = pd.DataFrame({"s": [["a", "b", "c"], [], ["d"]], "n": [[1.5], [2.0, 3.0], []]})
    spec = SignatureSpec(
        "s",
        {
            "s": TensorInfo("s", "string", (None, None)),
            "n": TensorInfo("n", "float32", (None, None)),
        },
    )
    feeds = to_feeds(frame, spec)
    assert feeds["s"].tolist() == [["a", "b", "c"], [STRING_PAD] * 3, ["d", STRING_PAD, STRING_PAD]]
    assert feeds["n"].dtype == np.float32
    assert feeds["n"].tolist() == [[1.5, NUMBER_PAD], [2.0, 3.0], [NUMBER_PAD, NUMBER_PAD]]


def test_fixed_length_is_required_in_strict_mode(caplog):
    frame = pd.DataFrame({"x": [[1, 2, 3], [4, 5]]})
    spec = one_input("int64", (None, 3))
    with pytest.raises(DataError, match=r"int64 \[N,3\]\): row 1 holds 2 values .*exactly 3"):
        to_feeds(frame, spec)
    with caplog.at_level(logging.WARNING, logger="recadvisor.data.coerce"):
        feed = to_feeds(pd.DataFrame({"x": [[1, 2, 3, 9], [4, 5]]}), spec, strict=False)["x"]
    assert feed.tolist() == [[1, 2, 3], [4, 5, 0]]
    assert "padding" in caplog.text


def test_text_sequences_json_or_space_separated():
    frame = pd.DataFrame({"s": ['["a b", "c"]', "x  y"], "i": ["[1, 2]", "3 4"]})
    spec = SignatureSpec(
        "s", {"s": TensorInfo("s", "string", (None, 2)), "i": TensorInfo("i", "int32", (None, 2))}
    )
    feeds = to_feeds(frame, spec)
    assert feeds["s"].tolist() == [["a b", "c"], ["x", "y"]]
    assert feeds["i"].dtype == np.int32 and feeds["i"].tolist() == [[1, 2], [3, 4]]
    with pytest.raises(DataError, match="column 'i' .*token 'z' is not a number"):
        to_feeds(pd.DataFrame({"i": ["1 z"]}), one_input("int64", (None, 2), "i"))


def test_scalar_cells_are_sequences_of_one():
    feed = to_feeds(pd.DataFrame({"x": [7, 8]}), one_input("int64", (None, None)))["x"]
    assert feed.tolist() == [[7], [8]]


def test_rank_3_input_from_nested_lists():
    frame = pd.DataFrame({"x": [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]})
    feed = to_feeds(frame, one_input("float32", (None, 2, 2)))["x"]
    assert feed.shape == (2, 2, 2) and feed.dtype == np.float32 and feed[1, 1, 1] == 8
    with pytest.raises(DataError, match="row 0 holds values of shape"):
        to_feeds(frame, one_input("float32", (None, 2, 3)))


def test_unknown_rank_list_column_is_padded():
    frame = pd.DataFrame({"x": [["a"], ["b", "c"]]})
    assert to_feeds(frame, one_input("string", None))["x"].tolist() == [["a", ""], ["b", "c"]]


# -------------------------------------------------------------------------------------- dtypes


def test_integral_floats_become_ints_and_fractions_do_not():
    assert to_feeds(pd.DataFrame({"x": [1.0, 2.0]}), one_input("int64", (None,)))["x"].tolist() == [
        1,
        2,
    ]
    with pytest.raises(
        DataError, match=r"column 'x' .*int64 \[N\]\): 2.5 at row 1 has a fractional"
    ):
        to_feeds(pd.DataFrame({"x": [1.0, 2.5]}), one_input("int64", (None,)))


def test_ints_become_floats_only_when_exact(caplog):
    feed = to_feeds(pd.DataFrame({"x": [1, 2**24]}), one_input("float32", (None,)))["x"]
    assert feed.dtype == np.float32 and feed.tolist() == [1.0, 2.0**24]
    frame = pd.DataFrame({"x": [1, 2**24 + 1]})
    with pytest.raises(
        DataError, match="16777217 at row 1 is not exactly representable as float32"
    ):
        to_feeds(frame, one_input("float32", (None,)))
    assert to_feeds(frame, one_input("float64", (None,)))["x"][1] == 2**24 + 1
    with caplog.at_level(logging.WARNING, logger="recadvisor.data.coerce"):
        to_feeds(frame, one_input("float32", (None,)), strict=False)
    assert "rounded" in caplog.text


def test_numbers_become_strings_only_for_string_inputs():
    frame = pd.DataFrame({"x": [12, 7]})
    feed = to_feeds(frame, one_input("string", (None, 1)))["x"]
    assert feed.dtype == object and feed.ravel().tolist() == ["12", "7"]
    floats = to_feeds(pd.DataFrame({"x": [0.5]}), one_input("string", (None,)))["x"]
    assert floats.tolist() == ["0.5"]
    with pytest.raises(DataError, match="column 'x' .*int64.*text 'a' at row 0"):
        to_feeds(pd.DataFrame({"x": ["a", "b"]}), one_input("int64", (None,)))
    with pytest.raises(DataError, match="text '3' at row 0"):  # text is never parsed to numbers
        to_feeds(pd.DataFrame({"x": ["3"]}), one_input("float32", (None,)))


def test_bytes_and_str_both_fit_strings_as_object_arrays():
    frame = pd.DataFrame({"x": pd.Series([b"a", "b", np.str_("c"), np.bytes_(b"d")], dtype=object)})
    feed = to_feeds(frame, one_input("string", (None,)))["x"]
    assert feed.dtype == object
    assert feed.tolist() == [b"a", "b", "c", b"d"]
    assert [type(v) for v in feed] == [bytes, str, str, bytes]


def test_fixed_width_numpy_strings_become_python_objects():
    frame = pd.DataFrame({"x": pd.Series(list(np.array([b"ab", b"c"])), dtype=object)})
    feed = to_feeds(frame, one_input("string", (None,)))["x"]
    assert feed.dtype == object and [type(v) for v in feed] == [bytes, bytes]


def test_int_range_is_checked():
    with pytest.raises(DataError, match=r"3000000000 at row 0 is outside the int32 range"):
        to_feeds(pd.DataFrame({"x": [3_000_000_000]}), one_input("int32", (None,)))
    with pytest.raises(DataError, match="outside the uint8 range"):
        to_feeds(pd.DataFrame({"x": [-1]}), one_input("uint8", (None,)))


def test_bool_inputs_take_bools_and_zero_one():
    assert to_feeds(pd.DataFrame({"x": [0, 1]}), one_input("bool", (None,)))["x"].tolist() == [
        False,
        True,
    ]
    with pytest.raises(DataError, match="2 at row 1 is not a bool"):
        to_feeds(pd.DataFrame({"x": [0, 2]}), one_input("bool", (None,)))


def test_unsupported_dtype_names_the_input():
    with pytest.raises(DataError, match="input 'x' has dtype variant"):
        to_feeds(pd.DataFrame({"x": [1]}), one_input("variant", (None,)))


# ------------------------------------------------------------------------------ missing values


def test_nan_in_int_column_is_refused():
    frame = pd.DataFrame({"age": [1.0, np.nan, 3.0, np.nan]})
    with pytest.raises(DataError, match=r"column 'age' .*2 of 4 rows are missing .*first at row 1"):
        to_feeds(frame, one_input("int64", (None, 1), "age"))
    feed = to_feeds(frame, one_input("int64", (None, 1), "age"), strict=False)["age"]
    assert feed.ravel().tolist() == [1, 0, 3, 0]


def test_missing_id_string_is_refused():
    frame = pd.DataFrame({"user": ["a", None]})
    with pytest.raises(DataError, match="column 'user' .*missing"):
        to_feeds(frame, one_input("string", (None,), "user"))
    assert to_feeds(frame, one_input("string", (None,), "user"), strict=False)["user"].tolist() == [
        "a",
        "",
    ]


def test_nullable_int_column_with_missing_values():
    frame = pd.DataFrame({"x": pd.array([1, None], dtype="Int64")})
    with pytest.raises(DataError, match="column 'x' .*1 of 2 rows are missing"):
        to_feeds(frame, one_input("int64", (None,)))
    clean = pd.DataFrame({"x": pd.array([1, 2], dtype="Int64")})
    assert to_feeds(clean, one_input("int64", (None,)))["x"].tolist() == [1, 2]


def test_nan_is_a_valid_float():
    feed = to_feeds(pd.DataFrame({"x": [1.0, np.nan]}), one_input("float32", (None,)))["x"]
    assert feed.dtype == np.float32 and np.isnan(feed[1])


# ------------------------------------------------------------------------- frame-level errors


def test_missing_columns_are_listed_together(spec):
    frame = pd.DataFrame({"age": [1], "label": [0]})
    with pytest.raises(DataError) as info:
        to_feeds(frame, spec)
    message = str(info.value)
    assert message.startswith("data is missing columns for inputs: user_id, price, history;")
    assert "columns found: age, label" in message


def test_empty_frame_is_refused(spec):
    with pytest.raises(DataError, match="no rows"):
        to_feeds(pd.DataFrame({"user_id": []}), spec)


def test_duplicate_columns_are_refused():
    frame = pd.DataFrame([[1, 2]], columns=["x", "x"])
    with pytest.raises(DataError, match="duplicate columns: x"):
        to_feeds(frame, one_input("int64", (None,)))


def test_extra_columns_are_ignored(spec, sample_frame):
    frame = sample_frame.assign(request_id=["r1", "r2", "r3", "r4"])
    assert list(to_feeds(frame, spec)) == list(spec.inputs)


# ------------------------------------------------------------------------ labels and batches


def test_labels_returns_present_columns(sample_frame):
    found = labels(sample_frame, names=("label", "conversion"))
    assert list(found) == ["label"]
    assert found["label"].tolist() == [0, 1, 0, 1] and found["label"].dtype == np.int64
    assert labels(sample_frame, names=()) == {}


def test_batches_cover_rows_and_cycle():
    feeds = {"a": np.arange(5), "b": np.arange(10).reshape(5, 2)}
    parts = list(batches(feeds, 2))
    assert [p["a"].tolist() for p in parts] == [[0, 1], [2, 3], [4, 0]]
    assert parts[2]["b"].tolist() == [[8, 9], [0, 1]]
    big = list(batches(feeds, 12))
    assert len(big) == 1 and big[0]["a"].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert len(list(batches(feeds, 3, n_batches=7))) == 7


def test_batches_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        batches({"a": np.arange(3)}, 0)
    with pytest.raises(ValueError, match="disagree"):
        batches({"a": np.arange(3), "b": np.arange(4)}, 2)
    with pytest.raises(ValueError, match="empty"):
        batches({}, 2)


# -------------------------------------------------------------------------- property test

_DTYPES = {
    "string": st.text(max_size=6),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "float32": st.floats(width=32, allow_nan=True),
    "float64": st.floats(allow_nan=False),
    "bool": st.booleans(),
}
_SHAPES = [(None,), (None, 1), (None, 3), (None, None), None]


@st.composite
def frame_and_spec(draw):
    """A frame of valid values for random inputs, the spec, and the expected feeds."""
    n_rows = draw(st.integers(1, 6))
    inputs, columns, expected_feeds = {}, {}, {}
    for k in range(draw(st.integers(1, 4))):
        key = f"in{k}"
        dtype = draw(st.sampled_from(sorted(_DTYPES)))
        shape = draw(st.sampled_from(_SHAPES))
        np_dtype = np.dtype(object) if dtype == "string" else np.dtype(dtype)
        pad = STRING_PAD if dtype == "string" else NUMBER_PAD
        scalar = shape in ((None,), (None, 1)) or (shape is None and draw(st.booleans()))
        if scalar:
            values = draw(st.lists(_DTYPES[dtype], min_size=n_rows, max_size=n_rows))
            cells = values
            if shape is not None and draw(st.booleans()):
                cells = [[v] for v in values]  # length-1 lists fit scalar inputs too
            expected = np.array(values, dtype=np_dtype)
            if shape == (None, 1):
                expected = expected.reshape(-1, 1)
        else:
            sizes = [3 if shape == (None, 3) else draw(st.integers(0, 4)) for _ in range(n_rows)]
            rows = [draw(st.lists(_DTYPES[dtype], min_size=n, max_size=n)) for n in sizes]
            width = 3 if shape == (None, 3) else max([*sizes, 1])
            expected = np.full((n_rows, width), pad, dtype=np_dtype)
            for i, row in enumerate(rows):
                expected[i, : len(row)] = np.array(row, dtype=np_dtype)
            wrap = draw(st.sampled_from(["list", "tuple", "object_array", "typed_array"]))
            if wrap == "tuple":
                cells = [tuple(r) for r in rows]
            elif wrap == "object_array":
                cells = [np.array(r, dtype=object) for r in rows]
            elif wrap == "typed_array":
                cells = [np.array(r, dtype=np_dtype) for r in rows]
            else:
                cells = rows
        inputs[key] = TensorInfo(key, dtype, shape)
        columns[key] = object_column(cells)
        expected_feeds[key] = expected
    columns["label"] = pd.Series(range(n_rows))
    return pd.DataFrame(columns), SignatureSpec("serving_default", inputs), expected_feeds


@settings(max_examples=80, deadline=None)
@given(case=frame_and_spec())
def test_valid_frames_give_exact_dtypes_shapes_and_values(case):
    frame, spec, expected_feeds = case
    feeds = to_feeds(frame, spec)
    assert list(feeds) == list(spec.inputs)
    for key, info in spec.inputs.items():
        feed, expected = feeds[key], expected_feeds[key]
        assert feed.shape == expected.shape
        if info.dtype == "string":
            assert feed.dtype == object
            assert all(type(v) is str for v in feed.ravel())
        else:
            assert feed.dtype == np.dtype(info.dtype)
        np.testing.assert_array_equal(feed, expected)
