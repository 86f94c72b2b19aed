"""One day of traffic in the synthetic shop: requests, impressions, clicks, dwell, purchases.

Events are held as a dict of equal-length numpy arrays (`Events`), integer-coded until
they are written. The true probabilities of every impression ride along (`p_click`,
`p_buy`) for the oracle AUC.
"""

from __future__ import annotations

import numpy as np

from mtlrec.datasets.synthetic.world import (
    DEVICE_CLICK_EFFECT,
    DEVICES,
    MEDIAN_PRICE,
    World,
)

Events = dict[str, np.ndarray]

IMPRESSION, CLICK, PURCHASE = 0, 1, 2
SLATE_SIZE = 10
_HOUR_MS = 3_600_000
_CLICK_BIAS = -2.3
_BUY_BIAS = -2.8
_PRICE_CLICK_EFFECT = 0.3
_PRICE_BUY_EFFECT = 0.6
_SLATE_AFFINITY = 1.0  # weight of user affinity against popularity when filling a slate
_REPEAT_CLICK_RATE = 0.04
_NO_DWELL_RATE = 0.10
_ORPHAN_CLICK_RATE = 0.01  # clicks from other surfaces, per page click
_ORPHAN_PURCHASE_RATE = 0.12  # purchases without a click, per clicked purchase
_SCORE_CELLS = 4_000_000  # slate score cells per chunk: bounds memory on large days
_EXACT_SLATE_ITEMS = 2000  # larger catalogues rank sampled candidates (see draw_slates)
_POPULAR_CANDIDATES = 60
_UNIFORM_CANDIDATES = 20


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def concat(parts: list[Events]) -> Events:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def select(events: Events, mask: np.ndarray) -> Events:
    return {k: v[mask] for k, v in events.items()}


def _events(kind: int, n: int, **fields: np.ndarray) -> Events:
    """A block of `n` events of one kind with every field; absent fields are null (-1 or NaN)."""
    out: Events = {
        "kind": np.full(n, kind, np.int8),
        "user": np.zeros(n, np.int64),
        "item": np.zeros(n, np.int64),
        "ts": np.zeros(n, np.int64),
        "request": np.full(n, -1, np.int64),
        "position": np.full(n, -1, np.int64),
        "dwell": np.full(n, np.nan),
        "device": np.full(n, -1, np.int64),
        "revenue": np.full(n, np.nan),
        "imp": np.full(n, -1, np.int64),  # impression index (own, or the clicked one)
        "p_click": np.full(n, np.nan),
        "p_buy": np.full(n, np.nan),
    }
    for name, values in fields.items():
        out[name] = np.asarray(values, dtype=out[name].dtype)
    return out


def _gumbel(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return -np.log(-np.log(rng.random(shape, dtype=np.float32)))


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k best scores per row, best first."""
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def _exact_slates(rng: np.random.Generator, world: World, users: np.ndarray, k: int) -> np.ndarray:
    """Gumbel top-k over the whole catalogue of log popularity + affinity."""
    chunk = max(1, _SCORE_CELLS // world.num_items)
    out = np.empty((len(users), k), np.int64)
    for lo in range(0, len(users), chunk):
        affinity = world.user_factors[users[lo : lo + chunk]] @ world.item_factors.T
        scores = world.item_log_popularity + _SLATE_AFFINITY * affinity
        out[lo : lo + chunk] = _top_k(scores + _gumbel(rng, scores.shape), k)
    return out


def _candidate_slates(
    rng: np.random.Generator, world: World, users: np.ndarray, k: int
) -> np.ndarray:
    """Gumbel top-k of affinity over candidates drawn by popularity plus a few uniform draws."""
    n, cdf = len(users), np.cumsum(np.exp(world.item_log_popularity.astype(np.float64)))
    popular = np.searchsorted(cdf, rng.random((n, _POPULAR_CANDIDATES)) * cdf[-1], side="right")
    uniform = rng.integers(0, world.num_items, (n, _UNIFORM_CANDIDATES))
    candidates = np.sort(np.concatenate([np.minimum(popular, world.num_items - 1), uniform], 1))
    repeated = np.zeros(candidates.shape, bool)
    repeated[:, 1:] = candidates[:, 1:] == candidates[:, :-1]
    affinity = np.einsum("nd,ncd->nc", world.user_factors[users], world.item_factors[candidates])
    scores = _SLATE_AFFINITY * affinity + _gumbel(rng, candidates.shape)
    scores[repeated] = -np.inf
    out = np.take_along_axis(candidates, _top_k(scores, k), axis=1)
    short = np.flatnonzero((~repeated).sum(axis=1) < k)
    if len(short):  # too few distinct candidates (vanishingly rare): draw those exactly
        out[short] = _exact_slates(rng, world, users[short], k)
    return out


def draw_slates(rng: np.random.Generator, world: World, users: np.ndarray, k: int) -> np.ndarray:
    """Items shown per request, best first: popularity and user affinity mixed.

    Small catalogues use the exact Gumbel top-k; large ones, whose exact cost grows with
    requests x items, rank a candidate set instead.
    """
    if world.num_items <= _EXACT_SLATE_ITEMS:
        return _exact_slates(rng, world, users, k)
    cells = (_POPULAR_CANDIDATES + _UNIFORM_CANDIDATES) * world.params.latent_dim
    chunk = max(1, _SCORE_CELLS // cells)
    parts = [
        _candidate_slates(rng, world, users[lo : lo + chunk], k)
        for lo in range(0, len(users), chunk)
    ]
    return np.concatenate(parts) if parts else np.empty((0, k), np.int64)


def _dwell(rng: np.random.Generator, affinity: np.ndarray) -> np.ndarray:
    dwell = np.round(rng.lognormal(np.log(25.0) + 0.6 * affinity, 0.8), 1)
    dwell[rng.random(len(affinity)) < _NO_DWELL_RATE] = np.nan
    return dwell


def _click_delay_ms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mostly seconds, some minutes, ~3 % after the 30-minute click window."""
    u = rng.random(n)
    seconds = rng.lognormal(np.log(15.0), 1.0, n)
    seconds = np.where(u > 0.90, rng.uniform(60, 25 * 60, n), seconds)
    seconds = np.where(u > 0.97, rng.uniform(31 * 60, 4 * 3600, n), seconds)
    return np.round(seconds * 1000).astype(np.int64)


def _purchase_delay_ms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mostly within hours, ~7 % after the 24-hour attribution window."""
    late = rng.random(n) < 0.07
    seconds = np.where(
        late, rng.uniform(25 * 3600, 72 * 3600, n), rng.lognormal(np.log(2400.0), 1.2, n)
    )
    return np.round(seconds * 1000).astype(np.int64)


def _devices(rng: np.random.Generator, world: World, users: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(world.user_device_mix[users], axis=1)
    return np.minimum((rng.random(len(users))[:, None] > cumulative).sum(axis=1), len(DEVICES) - 1)


def hour_share() -> np.ndarray:
    """Traffic per hour of day (UTC): quiet nights, a midday bump, an evening peak."""
    hours = np.arange(24)
    share = 0.25 + np.exp(-(((hours - 20) / 3.5) ** 2)) + 0.6 * np.exp(-(((hours - 12) / 3) ** 2))
    return share / share.sum()


def _times(rng: np.random.Generator, day_start_ms: int, n: int) -> np.ndarray:
    hour = rng.choice(24, size=n, p=hour_share())
    return day_start_ms + hour * _HOUR_MS + rng.integers(0, _HOUR_MS, n)


def _impressions(
    rng: np.random.Generator, world: World, day_start_ms: int, first_request: int, first_imp: int
) -> tuple[Events, np.ndarray, np.ndarray]:
    """Page views of one day: impressions, plus each one's affinity and p(purchase | click)."""
    users = np.repeat(np.arange(world.num_users), rng.poisson(world.user_activity))
    n_req, k = len(users), min(SLATE_SIZE, world.num_items)
    req_ts = _times(rng, day_start_ms, n_req)
    device = np.repeat(_devices(rng, world, users), k)
    item = draw_slates(rng, world, users, k).ravel()
    user = np.repeat(users, k)
    position = np.tile(np.arange(k), n_req)
    log_price = np.log(world.item_price[item] / MEDIAN_PRICE)
    affinity = np.sum(world.user_factors[user] * world.item_factors[item], axis=1)
    click_logit = (
        _CLICK_BIAS
        + world.params.affinity * affinity
        + world.item_quality[item]
        + DEVICE_CLICK_EFFECT[device]
        - _PRICE_CLICK_EFFECT * log_price
    )
    p_click = sigmoid(click_logit) * (1.0 + position) ** -world.params.position_decay
    buy_affinity = np.sum(world.user_factors[user] * world.item_buy_factors[item], axis=1)
    p_buy_given_click = sigmoid(_BUY_BIAS + buy_affinity - _PRICE_BUY_EFFECT * log_price)
    imps = _events(
        IMPRESSION,
        len(item),
        user=user,
        item=item,
        ts=np.repeat(req_ts, k),
        request=first_request + np.repeat(np.arange(n_req), k),
        position=position,
        device=device,
        imp=first_imp + np.arange(len(item)),
        p_click=p_click,
        p_buy=p_click * p_buy_given_click,
    )
    return imps, affinity, p_buy_given_click


def _clicks(rng: np.random.Generator, imps: Events, affinity: np.ndarray) -> tuple[Events, Events]:
    """First clicks (one per clicked impression) and repeated clicks on the same impressions."""
    c = np.flatnonzero(rng.random(len(imps["ts"])) < imps["p_click"])
    inherited = {f: imps[f][c] for f in ("user", "item", "request", "device", "imp")}
    ts = imps["ts"][c] + _click_delay_ms(rng, len(c))
    first = _events(CLICK, len(c), ts=ts, dwell=_dwell(rng, affinity[c]), **inherited)
    r = np.flatnonzero(rng.random(len(c)) < _REPEAT_CLICK_RATE)
    repeats = select(first, r)
    repeats["ts"] = ts[r] + np.round(rng.lognormal(np.log(60.0), 1.0, len(r)) * 1000).astype(int)
    repeats["dwell"] = _dwell(rng, affinity[c][r])
    return first, repeats


def _purchases(
    rng: np.random.Generator, world: World, clicks: Events, p_buy_given_click: np.ndarray
) -> Events:
    b = np.flatnonzero(rng.random(len(clicks["ts"])) < p_buy_given_click)
    item = clicks["item"][b]
    quantity = np.where(rng.random(len(b)) < 0.1, 2, 1)
    return _events(
        PURCHASE,
        len(b),
        user=clicks["user"][b],
        item=item,
        ts=clicks["ts"][b] + _purchase_delay_ms(rng, len(b)),
        device=clicks["device"][b],
        revenue=np.round(world.item_price[item] * quantity, 2),
    )


def _orphans(
    rng: np.random.Generator,
    world: World,
    day_start_ms: int,
    n: tuple[int, int],
    first_request: int,
) -> tuple[Events, Events]:
    """n = (other-surface clicks, purchases without a click), each with a random user and a
    popularity-drawn item; every other-surface click gets a fresh request id."""
    popularity = np.exp(world.item_log_popularity.astype(np.float64))
    popularity /= popularity.sum()
    blocks = []
    for kind, count in zip((CLICK, PURCHASE), n, strict=True):
        user = rng.integers(0, world.num_users, count)
        item = rng.choice(world.num_items, count, p=popularity)
        fields = {
            "user": user,
            "item": item,
            "ts": _times(rng, day_start_ms, count),
            "device": _devices(rng, world, user),
        }
        if kind == CLICK:
            fields |= {
                "request": first_request + np.arange(count),
                "dwell": _dwell(rng, np.zeros(count)),
            }
        else:
            fields["revenue"] = world.item_price[item]
        blocks.append(_events(kind, count, **fields))
    return blocks[0], blocks[1]


def simulate_day(
    rng: np.random.Generator, world: World, day_start_ms: int, first_request: int, first_imp: int
) -> tuple[Events, int]:
    """All events caused by the requests of one day (clicks and purchases may fall later).

    Returns the events (impression indices from `first_imp`) and the number of request ids
    used (page views from `first_request`, then one fresh id per other-surface click).
    """
    imps, affinity, p_buy_given_click = _impressions(
        rng, world, day_start_ms, first_request, first_imp
    )
    clicks, repeats = _clicks(rng, imps, affinity)
    purchases = _purchases(rng, world, clicks, p_buy_given_click[clicks["imp"] - first_imp])
    n_orphans = (
        rng.poisson(_ORPHAN_CLICK_RATE * len(clicks["ts"])),
        rng.poisson(_ORPHAN_PURCHASE_RATE * len(purchases["ts"]) + 0.2),
    )
    n_requests = len(imps["ts"]) // min(SLATE_SIZE, world.num_items)  # one slate per request
    other_clicks, other_purchases = _orphans(
        rng, world, day_start_ms, n_orphans, first_request + n_requests
    )
    day = concat([imps, clicks, repeats, purchases, other_clicks, other_purchases])
    return day, n_requests + n_orphans[0]
