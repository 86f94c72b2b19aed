"""Synthetic generator: determinism, and truth.json equal to an independent recount."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from mtlrec.datasets.synthetic.events import draw_slates
from mtlrec.datasets.synthetic.generate import generate
from mtlrec.datasets.synthetic.params import WorldParams
from mtlrec.datasets.synthetic.truth import auc
from mtlrec.datasets.synthetic.world import make_world
from mtlrec.features import readers, schema

SIZE = {"users": 200, "items": 60, "days": 3}
IDS = ["event_id", "user_id", "item_id"]


def _files(root):
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "data"
    truth = generate(out, seed=7, progress=False, **SIZE)
    return out, truth


def _raw_and_typed(out):
    raw, typed = [], []
    for f in readers.discover(out, "events"):
        for batch in readers.read_batches(f.path, f.format, schema.EVENTS):
            raw.append(batch.to_pandas())
            typed.append(readers.to_contract_types(batch, schema.EVENTS).to_pandas())
    return pd.concat(raw, ignore_index=True), pd.concat(typed, ignore_index=True)


def _reject_reason(raw, typed):
    """Per row: the first reason that rejects it (None = valid), in the order of SPEC §11."""
    etype = raw["event_type"]
    missing = raw[["event_id", "ts", "user_id", "item_id", "event_type"]].isna().any(axis=1)
    missing |= etype.isin(["impression", "click"]) & raw["request_id"].isna()
    missing |= (etype == "impression") & raw["position"].isna()
    empty = (raw[IDS + ["request_id"]] == "").any(axis=1)
    bad_ts = typed["ts"].isna()
    unknown = ~etype.isin(schema.EVENT_TYPES)
    bad_value = (typed["position"] < 0) | raw["position"].notna() & typed["position"].isna()
    for col in ("dwell_s", "revenue"):
        v = typed[col]
        bad_value |= raw[col].notna() & (v.isna() | ~np.isfinite(v.fillna(0)) | (v < 0))
    reason = pd.Series([None] * len(raw), dtype=object)
    checks = [
        ("bad_value", bad_value),
        ("unknown_event_type", unknown),
        ("bad_timestamp", bad_ts),
        ("empty_id", empty),
        ("missing_field", missing),
    ]
    for name, mask in checks:  # later assignments win: missing_field has priority
        reason[mask.fillna(False).to_numpy(bool)] = name
    return reason


def recount(out):
    """The truth semantics of mtlrec.datasets.synthetic.generate, recomputed from the written files."""
    raw, typed = _raw_and_typed(out)
    reason = _reject_reason(raw, typed)
    valid = typed[reason.isna().to_numpy()]
    accepted = valid.drop_duplicates("event_id")
    imps = accepted[accepted.event_type == "impression"]
    clicks = accepted[accepted.event_type == "click"]
    buys = accepted[accepted.event_type == "purchase"]
    assert not imps.duplicated(["request_id", "item_id"]).any()
    key = ["request_id", "item_id"]
    joined = clicks.merge(imps[key + ["ts"]], on=key, suffixes=("", "_imp"))
    joined = joined[(joined.ts >= joined.ts_imp) & (joined.ts - joined.ts_imp <= 1_800_000)]
    pairs = buys.merge(joined, on=["user_id", "item_id"], suffixes=("", "_click"))
    pairs = pairs[(pairs.ts >= pairs.ts_click) & (pairs.ts - pairs.ts_click <= 86_400_000)]
    last = pairs.sort_values("ts_click").groupby("event_id").tail(1)
    split_ts = int(accepted.ts.sort_values().iloc[len(accepted) * 4 // 5])
    return {
        "events_read": len(raw),
        "duplicates": len(valid) - len(accepted),
        "rejected": {r: int((reason == r).sum()) for r in schema.REJECT_REASONS},
        "impressions": len(imps),
        "clicks_joined": len(joined),
        "purchases_attributed": len(last),
        "orphan_clicks": len(clicks) - len(joined),
        "orphan_purchases": len(buys) - len(last),
        "train_examples": int((imps.ts < split_ts).sum()),
        "eval_examples": int((imps.ts >= split_ts).sum()),
        "clicked_impressions": len(joined.drop_duplicates(key)),
        "purchased_impressions": len(last.drop_duplicates(["request_id_click", "item_id"])),
    }, split_ts


def test_truth_matches_recount_from_files(generated):
    out, truth = generated
    assert json.loads((out / "truth.json").read_text()) == truth
    counts, split_ts = recount(out)
    assert truth["counts"] == counts
    assert truth["split_ts"] == split_ts
    c = truth["counts"]
    assert c["events_read"] == (
        c["duplicates"]
        + sum(c["rejected"].values())
        + c["impressions"]
        + c["clicks_joined"]
        + c["orphan_clicks"]
        + c["purchases_attributed"]
        + c["orphan_purchases"]
    )
    # Every injected reason is present (Parquet rows cannot be malformed; nothing is out of
    # range), and every funnel branch occurs.
    assert all(
        n > 0 for r, n in c["rejected"].items() if r not in ("out_of_range", "malformed_row")
    )
    assert c["rejected"]["out_of_range"] == c["rejected"]["malformed_row"] == 0
    for name in ("duplicates", "orphan_clicks", "orphan_purchases", "purchases_attributed"):
        assert c[name] > 0, name
    assert 0.6 < truth["oracle"]["click_auc_eval"] < 1.0
    assert 0.6 < truth["oracle"]["purchase_auc_eval"] < 1.0


def test_layout_and_side_tables(generated):
    out, truth = generated
    dts = sorted(p.name for p in (out / "events").iterdir())
    assert dts == ["dt=2026-01-29", "dt=2026-01-30", "dt=2026-01-31"]
    for dt in dts:
        assert sorted(p.name for p in (out / "events" / dt).iterdir()) == [
            "late-00000.jsonl",
            "part-00000.parquet",
        ]
    items = readers.read_table(out, "items").to_pandas()
    users = readers.read_table(out, "users").to_pandas()
    assert list(items.item_id) == [f"i{n}" for n in range(SIZE["items"])]
    assert list(users.user_id) == [f"u{n}" for n in range(SIZE["users"])]
    assert (items.price > 0).all() and items.category.notna().all()
    assert users.age_bucket.isin(["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]).all()
    assert truth["params"] == SIZE | dataclasses.asdict(WorldParams()) and truth["seed"] == 7


def test_same_seed_gives_identical_files(tmp_path):
    size = {"users": 50, "items": 30, "days": 2}
    generate(tmp_path / "a", seed=3, progress=False, **size)
    generate(tmp_path / "b", seed=3, progress=False, **size)
    generate(tmp_path / "c", seed=4, progress=False, **size)
    first = _files(tmp_path / "a")
    assert len(first) == 2 * 2 + 3
    assert first == _files(tmp_path / "b")
    assert first != _files(tmp_path / "c")


def test_refuses_to_overwrite_and_bad_sizes(tmp_path):
    generate(tmp_path, users=5, items=5, days=1, seed=1, progress=False)
    with pytest.raises(ValueError, match="already holds generated data .*events, items, users"):
        generate(tmp_path, users=5, items=5, days=1, seed=1, progress=False)
    with pytest.raises(ValueError, match="must be >= 1"):
        generate(tmp_path / "x", users=0, items=5, days=1, seed=1, progress=False)


@pytest.mark.parametrize("items", [40, 3000])  # exact Gumbel top-k, then candidate sampling
def test_slates_distinct_popular_and_personal(items):
    rng = np.random.default_rng(0)
    world = make_world(rng, 300, items, start_ms=0)
    users = np.repeat(np.arange(300), 5)
    slates = draw_slates(rng, world, users, 10)
    assert slates.shape == (1500, 10)
    assert all(len(set(row)) == 10 for row in slates.tolist())
    shown = np.bincount(slates.ravel(), minlength=items) / slates.size
    head = np.argsort(-world.item_log_popularity)[: items // 10]
    assert shown[head].sum() > 0.25  # a uniform draw would give the top 10 % of items 0.10
    affinity = world.user_factors[users] @ world.item_factors.T
    assert np.take_along_axis(affinity, slates, axis=1).mean() > affinity.mean() + 0.2


def test_world_knobs_shape_the_signals():
    base = make_world(np.random.default_rng(0), 2000, 300, start_ms=0)
    wide = make_world(np.random.default_rng(0), 2000, 300, 0, WorldParams(latent_dim=32))
    assert base.user_factors.shape == (2000, 8) and wide.user_factors.shape == (2000, 32)
    # The factors are scaled so that the affinity's spread does not grow with the dimension.
    spread = [np.std(np.sum(w.user_factors[:300] * w.item_factors, axis=1)) for w in (base, wide)]
    assert spread[1] == pytest.approx(spread[0], rel=0.25)
    flat = make_world(np.random.default_rng(0), 10, 300, 0, WorldParams(popularity_skew=0.0))
    assert not np.any(flat.item_log_popularity)
    apart = make_world(np.random.default_rng(0), 10, 300, 0, WorldParams(task_correlation=0.0))
    same = np.corrcoef(base.item_factors.ravel(), base.item_buy_factors.ravel())[0, 1]
    independent = np.corrcoef(apart.item_factors.ravel(), apart.item_buy_factors.ravel())[0, 1]
    assert same > 0.5 and abs(independent) < 0.1
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        WorldParams(latent_dim=0)


def test_a_world_without_affinity_or_position_bias_says_so_in_its_oracle(tmp_path):
    size = {"users": 300, "items": 80, "days": 3, "seed": 2, "progress": False}
    base = generate(tmp_path / "base", **size)
    blind = generate(tmp_path / "blind", world=WorldParams(affinity=0.0), **size)
    strong = generate(tmp_path / "strong", world=WorldParams(affinity=2.5), **size)
    order = [t["oracle"]["click_auc_eval"] for t in (blind, base, strong)]
    assert order == sorted(order) and order[2] - order[0] > 0.05
    assert blind["params"]["affinity"] == 0.0


def test_auc_hand_computed():
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert auc(np.array([0.5, 0.5, 0.2]), np.array([1, 0, 0])) == 0.75  # a tie counts half
    assert auc(np.array([0.3, 0.6]), np.array([1, 1])) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiny_worlds_keep_the_invariant(tmp_path, seed):
    truth = generate(tmp_path, users=1, items=1, days=1, seed=seed, progress=False)
    c = truth["counts"]
    accepted = c["events_read"] - c["duplicates"] - sum(c["rejected"].values())
    assert accepted == (
        c["impressions"]
        + c["clicks_joined"]
        + c["orphan_clicks"]
        + c["purchases_attributed"]
        + c["orphan_purchases"]
    )
    assert (truth["split_ts"] is None) == (accepted == 0)
    assert c["train_examples"] + c["eval_examples"] == c["impressions"]
