"""Synthetic click logs for the zoo models (deterministic, seeded, no TensorFlow).

One log serves every model: string ids (users, items, categories, cities), integer ids (shops,
hours, ages), floats (price), a padded item history and two labels (click, and a conversion that
only happens after a click). Each builder takes the columns its model reads and writes them,
raw, as ``sample.parquet`` next to the SavedModel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ROWS = 512
SEED = 0
USERS = [f"u{i}" for i in range(200)]
ITEMS = [f"item_{i}" for i in range(80)]
CATEGORIES = ["books", "music", "games", "food", "toys", "garden", "sport"]
CITIES = ["paris", "lyon", "oslo", "rome", "lima", "kyiv", "bern", "baku", "riga"]
SHOPS = [101, 102, 103, 104, 105, 106, 107, 108]
DEVICES = ["ios", "android", "web"]
HISTORY = 5  # items in the padded history


def item_category(item: str) -> str:
    """The category of an item (a fixed function of its id, so item and category agree)."""
    return CATEGORIES[int(item.split("_")[1]) % len(CATEGORIES)]


def click_log(
    rows: int = ROWS, seed: int = SEED, pad: str = "", min_history: int = 0
) -> pd.DataFrame:
    """Rows of one click log; ``hist_item_id`` is a list of ``HISTORY`` items padded with ``pad``.

    Unseen values are mixed in (``item_unseen``, shop 999, city ``atlantis``) so vocabulary
    lookups hit their out-of-vocabulary rows.

    Args:
        rows: number of rows.
        seed: random seed.
        pad: the padding value of the history (``""`` for Keras and feature columns, ``"0"``
            for DeepCTR, whose masks compare to the string ``"0"``).
        min_history: the fewest items a history holds (Keras' masked average of an all-padding
            row is 0/0 = NaN, which would spread through training into every weight).

    Returns:
        The log as a DataFrame (``hist_item_id`` cells are lists of strings).
    """
    rng = np.random.default_rng(seed)
    items = rng.choice(ITEMS + ["item_unseen"], rows)
    lengths = rng.integers(min_history, HISTORY + 1, rows)
    hist = [
        list(rng.choice(ITEMS, n)) + [pad] * (HISTORY - n)  # type: ignore[operator]
        for n in lengths.tolist()
    ]
    price = rng.uniform(1, 150, rows).astype("float32")
    click = (rng.random(rows) < 0.3 + 0.4 * (price < 40)).astype("int64")
    conversion = (click * (rng.random(rows) < 0.4)).astype("int64")
    return pd.DataFrame(
        {
            "user_id": rng.choice(USERS, rows),
            "item_id": items,
            "category": [item_category(i) if i != "item_unseen" else "other" for i in items],
            "city": rng.choice(CITIES + ["atlantis"], rows),
            "device": rng.choice(DEVICES, rows),
            "shop_id": rng.choice(SHOPS + [999], rows).astype("int64"),
            "hour": rng.integers(0, 24, rows).astype("int64"),
            "age": rng.integers(16, 80, rows).astype("int64"),
            "price": price,
            "hist_item_id": hist,
            "hist_len": lengths.astype("int64"),
            "label": click,
            "label_conversion": conversion,
        }
    )


def history_matrix(frame: pd.DataFrame, column: str = "hist_item_id") -> np.ndarray:
    """The padded history column as a ``[N, HISTORY]`` object array of str."""
    return np.array([list(cell) for cell in frame[column]], dtype=object)


__all__ = ["CATEGORIES", "CITIES", "HISTORY", "ITEMS", "SHOPS", "USERS", "click_log"]
