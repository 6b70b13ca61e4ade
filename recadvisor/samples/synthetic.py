"""Synthetic recommender traffic drawn from a hidden rule (numpy only, deterministic per seed).

The hidden rule gives the sample models real signal to learn:

* every user has a latent taste vector (city taste + personal taste + an age direction); the
  affinity of a user for a category is the dot product with the category's latent vector;
* a user's behaviour history is drawn from that affinity (so the history reveals the taste);
* an impression is a (user, item) pair, both drawn with Zipf-like frequencies (a few heavy users
  and items, a long tail that is rarely or never seen), and

  ``click ~ Bernoulli(sigmoid(b + affinity + item quality - price sensitivity(age) * log price
  + gender x category + age))``;
  ``conversion ~ Bernoulli(sigmoid(b' + affinity - log price + age + second quality))`` for
  clicked rows only (ESMM's click -> conversion funnel).

Ids are strings the way feature pipelines ship them: ``u123`` users, ``i456`` items, ``cat_07``
categories, ``city_03`` cities, ``F``/``M`` genders; ages are integers 18..70.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_CATEGORIES = 30
N_CITIES = 20
LATENT_DIM = 4
AGE_MIN, AGE_MAX = 18, 70
MAX_HISTORY = 50
PAD = ""


@dataclass(frozen=True)
class SyntheticWorld:
    """The hidden users, items and rule parameters.

    Attributes:
        user_age, user_gender, user_city: per-user attributes (gender 0=F, 1=M).
        user_affinity: [n_users, N_CATEGORIES] standardized user x category affinity.
        user_history: [n_users, MAX_HISTORY] item indices, most recent first, -1 = padding.
        item_category, item_price, item_quality, item_conversion_quality: per-item attributes.
        gender_category: [2, N_CATEGORIES] gender x category click effect.
    """

    user_age: np.ndarray
    user_gender: np.ndarray
    user_city: np.ndarray
    user_affinity: np.ndarray
    user_history: np.ndarray
    item_category: np.ndarray
    item_price: np.ndarray
    item_quality: np.ndarray
    item_conversion_quality: np.ndarray
    gender_category: np.ndarray

    @property
    def n_users(self) -> int:
        """Number of users in the world."""
        return len(self.user_age)

    @property
    def n_items(self) -> int:
        """Number of items in the world."""
        return len(self.item_category)


def zipf_probabilities(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like probabilities over ``n`` ids, ranks shuffled so popular ids are not ``0, 1, ...``.

    Args:
        n: number of ids.
        exponent: the Zipf exponent (1.0 = classic).
        rng: random generator.

    Returns:
        A float64 probability vector of length ``n``.
    """
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    weights = weights[rng.permutation(n)]
    return weights / weights.sum()


def make_world(rows: int, rng: np.random.Generator) -> SyntheticWorld:
    """Draw the hidden world for a data set of ``rows`` impressions.

    Args:
        rows: number of impressions the world will serve (sets the user and item counts:
            ``rows // 8`` users and ``rows // 4`` items, at least 100 and 200).
        rng: random generator.

    Returns:
        A :class:`SyntheticWorld`.
    """
    n_users = max(100, rows // 8)
    n_items = max(200, rows // 4)
    category_latent = rng.normal(size=(N_CATEGORIES, LATENT_DIM))
    city_latent = rng.normal(scale=0.8, size=(N_CITIES, LATENT_DIM))
    age_direction = rng.normal(size=LATENT_DIM)

    user_age = rng.integers(AGE_MIN, AGE_MAX + 1, size=n_users).astype(np.int64)
    user_gender = rng.integers(0, 2, size=n_users)
    user_city = rng.choice(N_CITIES, size=n_users, p=zipf_probabilities(N_CITIES, 0.9, rng))
    age_z = (user_age - 44.0) / 15.0
    user_latent = (
        city_latent[user_city]
        + rng.normal(scale=0.8, size=(n_users, LATENT_DIM))
        + 0.5 * age_z[:, None] * age_direction[None, :]
    )
    affinity = user_latent @ category_latent.T / np.sqrt(LATENT_DIM)
    affinity = (affinity - affinity.mean()) / affinity.std()

    category_popularity = 1.0 / np.arange(1, N_CATEGORIES + 1) ** 0.8
    category_popularity /= category_popularity.sum()
    item_category = rng.choice(N_CATEGORIES, size=n_items, p=category_popularity)
    item_category[:N_CATEGORIES] = np.arange(N_CATEGORIES)  # every category has an item
    category_log_price = rng.normal(3.0, 0.8, size=N_CATEGORIES)
    item_price = np.round(
        np.exp(category_log_price[item_category] + rng.normal(scale=0.3, size=n_items)), 2
    ).astype(np.float32)
    item_quality = rng.normal(scale=0.6, size=n_items)
    item_conversion_quality = rng.normal(scale=0.6, size=n_items)
    item_popularity = zipf_probabilities(n_items, 1.0, rng)

    # History: categories drawn from the user's taste, items by popularity inside the category.
    history_logits = 2.0 * affinity + np.log(category_popularity)[None, :]
    gumbel = rng.gumbel(size=(n_users, MAX_HISTORY, N_CATEGORIES))
    history_category = np.argmax(history_logits[:, None, :] + gumbel, axis=-1)
    history = np.empty((n_users, MAX_HISTORY), dtype=np.int64)
    for category in range(N_CATEGORIES):
        members = np.flatnonzero(item_category == category)
        weights = item_popularity[members] / item_popularity[members].sum()
        slots = history_category == category
        history[slots] = rng.choice(members, size=int(slots.sum()), p=weights)
    lengths = rng.integers(3, MAX_HISTORY + 1, size=n_users)
    history[np.arange(MAX_HISTORY)[None, :] >= lengths[:, None]] = -1

    return SyntheticWorld(
        user_age=user_age,
        user_gender=user_gender,
        user_city=user_city,
        user_affinity=affinity,
        user_history=history,
        item_category=item_category,
        item_price=item_price,
        item_quality=item_quality,
        item_conversion_quality=item_conversion_quality,
        gender_category=rng.normal(scale=0.6, size=(2, N_CATEGORIES)),
    )


@dataclass(frozen=True)
class Interactions:
    """Impressions (user, item) with click and conversion labels, plus formatting helpers.

    Attributes:
        world: the hidden world the rows come from.
        user: [rows] user index per row.
        item: [rows] item index per row.
        click: [rows] int64 0/1.
        conversion: [rows] int64 0/1 (0 whenever ``click`` is 0).
        click_logit: [rows] the hidden rule's click logit (for diagnostics only).
    """

    world: SyntheticWorld
    user: np.ndarray
    item: np.ndarray
    click: np.ndarray
    conversion: np.ndarray
    click_logit: np.ndarray

    @property
    def rows(self) -> int:
        """Number of impressions."""
        return len(self.user)

    def user_ids(self) -> np.ndarray:
        """[rows] object array of ``u<index>`` strings."""
        return _format("u", self.user)

    def item_ids(self) -> np.ndarray:
        """[rows] object array of ``i<index>`` strings."""
        return _format("i", self.item)

    def categories(self) -> np.ndarray:
        """[rows] object array of the item's ``cat_NN`` category."""
        return _category_names()[self.world.item_category[self.item]]

    def ages(self) -> np.ndarray:
        """[rows] int64 user ages."""
        return self.world.user_age[self.user].astype(np.int64)

    def genders(self) -> np.ndarray:
        """[rows] object array of ``F``/``M``."""
        return np.array(["F", "M"], dtype=object)[self.world.user_gender[self.user]]

    def cities(self) -> np.ndarray:
        """[rows] object array of ``city_NN``."""
        names = np.array([f"city_{c:02d}" for c in range(N_CITIES)], dtype=object)
        return names[self.world.user_city[self.user]]

    def prices(self) -> np.ndarray:
        """[rows] float32 item prices."""
        return self.world.item_price[self.item].astype(np.float32)

    def history_item_ids(self, length: int) -> np.ndarray:
        """[rows, length] object array of the user's most recent items, ``""`` padded."""
        hist = self.world.user_history[self.user, :length]
        out = _format("i", np.maximum(hist, 0))
        out[hist < 0] = PAD
        return out

    def history_categories(self, length: int) -> np.ndarray:
        """[rows, length] object array of the categories of :meth:`history_item_ids`."""
        hist = self.world.user_history[self.user, :length]
        out = _category_names()[self.world.item_category[np.maximum(hist, 0)]]
        out[hist < 0] = PAD
        return out

    def row_ids(self, prefix: str) -> np.ndarray:
        """[rows] object array of unique per-row ids such as ``r0000042``."""
        return np.array([f"{prefix}{i:07d}" for i in range(self.rows)], dtype=object)


def _format(prefix: str, values: np.ndarray) -> np.ndarray:
    flat = np.array([f"{prefix}{v}" for v in values.ravel().tolist()], dtype=object)
    return flat.reshape(values.shape)


def _category_names() -> np.ndarray:
    return np.array([f"cat_{c:02d}" for c in range(N_CATEGORIES)], dtype=object)


def generate_interactions(rows: int, seed: int) -> Interactions:
    """Draw ``rows`` impressions and their labels from a fresh hidden world.

    The same ``(rows, seed)`` gives bit-identical arrays on every run.

    Args:
        rows: number of impressions.
        seed: the random seed.

    Returns:
        The :class:`Interactions`.
    """
    world_rng, row_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    world = make_world(rows, world_rng)
    user = row_rng.choice(
        world.n_users, size=rows, p=zipf_probabilities(world.n_users, 0.8, row_rng)
    )
    item = row_rng.choice(
        world.n_items, size=rows, p=zipf_probabilities(world.n_items, 1.0, row_rng)
    )

    category = world.item_category[item]
    age_z = (world.user_age[user] - 44.0) / 15.0
    price_sensitivity = (AGE_MAX - world.user_age[user]) / (AGE_MAX - AGE_MIN)
    log_price = (np.log(world.item_price[item]) - 3.0) / 0.8
    affinity = world.user_affinity[user, category]
    click_logit = (
        -1.2
        + 1.2 * affinity
        + world.item_quality[item]
        - 1.0 * price_sensitivity * log_price
        + world.gender_category[world.user_gender[user], category]
        + 0.4 * age_z
    )
    conversion_logit = (
        -0.4 + 0.8 * affinity - 1.0 * log_price + 0.6 * age_z + world.item_conversion_quality[item]
    )
    click = (row_rng.random(rows) < _sigmoid(click_logit)).astype(np.int64)
    converted = (row_rng.random(rows) < _sigmoid(conversion_logit)).astype(np.int64)
    return Interactions(
        world=world,
        user=user,
        item=item,
        click=click,
        conversion=click * converted,
        click_logit=click_logit,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
