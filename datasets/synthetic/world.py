"""The synthetic shop's catalogue and users, with the latent factors that drive their behaviour.

User factors depend on the age bucket and item factors on the category, so the side
features carry real signal; item popularity is Zipf-distributed and user activity
lognormal (a heavy tail of very active users).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.datasets.synthetic.params import DEFAULT_LATENT_DIM, DEFAULT_WORLD, WorldParams

DEVICES = ("mobile", "desktop", "tablet")
DEVICE_CLICK_EFFECT = np.array([0.15, 0.0, -0.25])  # logit shift of the click probability
COUNTRIES = ("US", "DE", "FR", "GB", "IN", "BR", "JP", "ES")
COUNTRY_SHARE = np.array([0.30, 0.14, 0.11, 0.11, 0.13, 0.09, 0.07, 0.05])
AGE_BUCKETS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_SHARE = np.array([0.18, 0.30, 0.22, 0.15, 0.10, 0.05])
MEDIAN_PRICE = 30.0
_DAY_MS = 86_400_000


@dataclasses.dataclass(frozen=True)
class World:
    """Users and items of the shop (index i is user `u{i}` / item `i{i}`)."""

    user_factors: np.ndarray  # [users, latent_dim] float32
    user_activity: np.ndarray  # [users] expected requests per day
    user_device_mix: np.ndarray  # [users, len(DEVICES)] device probabilities
    user_country: np.ndarray  # [users] index into COUNTRIES
    user_age: np.ndarray  # [users] index into AGE_BUCKETS
    user_signup_ms: np.ndarray  # [users] int64
    item_factors: np.ndarray  # [items, latent_dim] float32: click affinity
    item_buy_factors: np.ndarray  # [items, latent_dim] float32: purchase affinity
    item_log_popularity: np.ndarray  # [items] float32, Zipf
    item_quality: np.ndarray  # [items] click logit bias
    item_category: np.ndarray  # [items]
    item_brand: np.ndarray  # [items]
    item_price: np.ndarray  # [items] float64, 2 decimals
    item_created_ms: np.ndarray  # [items] int64
    params: WorldParams = WorldParams()

    @property
    def num_users(self) -> int:
        return len(self.user_activity)

    @property
    def num_items(self) -> int:
        return len(self.item_price)


def make_world(
    rng: np.random.Generator,
    users: int,
    items: int,
    start_ms: int,
    params: WorldParams = DEFAULT_WORLD,
) -> World:
    """Draws users and items; `start_ms` is the first day of traffic (signups come before)."""
    if users < 1 or items < 1:
        raise ValueError(f"users and items must be >= 1 (got users={users}, items={items})")
    dim = params.latent_dim
    scale = (DEFAULT_LATENT_DIM / dim) ** 0.25
    age = rng.choice(len(AGE_BUCKETS), size=users, p=AGE_SHARE)
    age_centroids = rng.normal(0.0, 0.35, size=(len(AGE_BUCKETS), dim))
    user_factors = scale * (age_centroids[age] + rng.normal(0.0, 0.4, size=(users, dim)))
    device_mix = rng.dirichlet(np.array([3.0, 1.5, 0.5]), size=users)
    categories = min(20, items)
    category = rng.integers(0, categories, size=items)
    centroids = rng.normal(0.0, 0.5, size=(categories, dim))
    item_factors = scale * (centroids[category] + rng.normal(0.0, 0.3, size=(items, dim)))
    buy_factors = params.task_correlation * item_factors + rng.normal(0.0, 0.3, size=(items, dim))
    zipf_rank = rng.permutation(items) + 1
    return World(
        user_factors=user_factors.astype(np.float32),
        user_activity=rng.lognormal(-0.6, 1.0, size=users),
        user_device_mix=device_mix,
        user_country=rng.choice(len(COUNTRIES), size=users, p=COUNTRY_SHARE),
        user_age=age,
        user_signup_ms=start_ms - rng.integers(_DAY_MS, 730 * _DAY_MS, size=users),
        item_factors=item_factors.astype(np.float32),
        item_buy_factors=buy_factors.astype(np.float32),
        item_log_popularity=(-params.popularity_skew * np.log(zipf_rank)).astype(np.float32),
        item_quality=rng.normal(0.0, 0.3, size=items),
        item_category=category,
        item_brand=rng.integers(0, max(1, items // 10), size=items),
        item_price=np.round(rng.lognormal(np.log(MEDIAN_PRICE), 0.8, size=items), 2),
        item_created_ms=start_ms - rng.integers(_DAY_MS, 1000 * _DAY_MS, size=items),
        params=params,
    )


def ids(prefix: str, index: np.ndarray) -> pa.Array:
    """Vectorised `f"{prefix}{i}"` for an integer array."""
    text = pc.cast(pa.array(np.asarray(index, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, text, "")


def users_table(world: World) -> pa.Table:
    n = np.arange(world.num_users)
    return pa.table(
        {
            "user_id": ids("u", n),
            "country": pa.array(np.array(COUNTRIES)[world.user_country]),
            "age_bucket": pa.array(np.array(AGE_BUCKETS)[world.user_age]),
            "signup_ts": pa.array(world.user_signup_ms, pa.int64()),
        }
    )


def items_table(world: World) -> pa.Table:
    n = np.arange(world.num_items)
    return pa.table(
        {
            "item_id": ids("i", n),
            "category": ids("cat", world.item_category),
            "brand": ids("brand", world.item_brand),
            "price": pa.array(world.item_price, pa.float64()),
            "created_ts": pa.array(world.item_created_ms, pa.int64()),
        }
    )
