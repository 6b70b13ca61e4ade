"""The synthetic data generator: determinism, value formats, frequencies and signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recadvisor.model.spec import TensorInfo
from recadvisor.samples.common import frame_to_feeds, roc_auc, top_vocabulary, write_parquet
from recadvisor.samples.synthetic import AGE_MAX, AGE_MIN, generate_interactions


@pytest.fixture(scope="module")
def data():
    return generate_interactions(5000, seed=3)


def test_same_seed_same_arrays(data) -> None:
    again = generate_interactions(5000, seed=3)
    for field in ("user", "item", "click", "conversion"):
        np.testing.assert_array_equal(getattr(data, field), getattr(again, field))
    np.testing.assert_array_equal(data.history_item_ids(50), again.history_item_ids(50))
    other = generate_interactions(5000, seed=4)
    assert not np.array_equal(data.click, other.click)


def test_value_formats(data) -> None:
    assert all(u.startswith("u") and u[1:].isdigit() for u in data.user_ids()[:100])
    assert all(i.startswith("i") and i[1:].isdigit() for i in data.item_ids()[:100])
    ages = data.ages()
    assert ages.dtype == np.int64 and AGE_MIN <= ages.min() and ages.max() <= AGE_MAX
    assert set(data.genders()) == {"F", "M"}
    assert 15 <= len(set(data.cities())) <= 20
    assert len(set(data.categories())) == 30
    assert data.prices().dtype == np.float32 and (data.prices() > 0).all()
    assert len(set(data.row_ids("r"))) == data.rows


def test_history_is_padded_and_consistent(data) -> None:
    items, categories = data.history_item_ids(50), data.history_categories(50)
    assert items.shape == categories.shape == (data.rows, 50)
    padded = items == ""
    assert padded.any() and not padded[:, :3].any()  # at least 3 real items per user
    np.testing.assert_array_equal(padded, categories == "")
    # once padding starts it does not stop
    assert not (padded[:, :-1] & ~padded[:, 1:]).any()
    np.testing.assert_array_equal(data.history_item_ids(20), items[:, :20])


def test_frequencies_are_zipf_like(data) -> None:
    counts = pd.Series(data.item).value_counts()
    assert counts.iloc[0] > 20 * counts.median()  # a few heavy items, a long tail
    assert data.world.n_items > len(counts)  # some items are never shown
    vocabulary = top_vocabulary(data.categories())
    assert len(vocabulary) == 25
    category_counts = pd.Series(data.categories()).value_counts()
    assert category_counts[vocabulary[-1]] >= category_counts.drop(vocabulary).max()


def test_labels_carry_signal(data) -> None:
    assert 0.1 < data.click.mean() < 0.6
    assert (data.conversion <= data.click).all() and data.conversion.sum() > 0
    assert roc_auc(data.click, data.click_logit) > 0.75  # the hidden rule is learnable


def test_parquet_round_trip(tmp_path, data) -> None:
    columns = {
        "user_id": data.user_ids(),
        "age": data.ages().reshape(-1, 1),
        "price": data.prices().reshape(-1, 1),
        "hist_item_id": data.history_item_ids(20),
    }
    path = tmp_path / "x.parquet"
    write_parquet(path, columns)
    inputs = {
        "user_id": TensorInfo("user_id", "string", (None,)),
        "age": TensorInfo("age", "int64", (None, 1)),
        "price": TensorInfo("price", "float32", (None, 1)),
        "hist_item_id": TensorInfo("hist_item_id", "string", (None, 20)),
    }
    feeds = frame_to_feeds(pd.read_parquet(path), inputs)
    for key, values in columns.items():
        assert feeds[key].shape == values.shape
        np.testing.assert_array_equal(feeds[key], values)
    assert feeds["hist_item_id"].dtype == object and feeds["age"].dtype == np.int64
