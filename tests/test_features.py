"""Features: batch and incremental paths agree, warm-up is exact, nothing looks ahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scoremodel.features import DEFAULT_SPEC
from scoremodel.features import FeatureSpec
from scoremodel.features import IncrementalFeatures
from scoremodel.features import compute_features
from tests.helpers import random_walk_bars

SHARED_CSV = Path(__file__).resolve().parents[1].parent / "shared/data/btcusdt_perp_1m_2022-01.csv"


def incremental_states(bars: pd.DataFrame, spec: FeatureSpec = DEFAULT_SPEC) -> np.ndarray:
    features = IncrementalFeatures(spec)
    rows = []
    for h, lo, c, v in bars[["high", "low", "close", "volume"]].itertuples(index=False):
        state = features.update(h, lo, c, v)
        rows.append(None if state is None else state.copy())  # the array is reused
    assert all(r is None for r in rows[: spec.warmup_bars - 1])
    return np.array(rows[spec.warmup_bars - 1 :])


def test_spec_names_order_and_warmup():
    spec = DEFAULT_SPEC
    assert spec.names == (
        "ret_1", "ret_5", "ret_10", "ret_20", "vol_20", "vol_ratio_5_20", "momentum_60",
        "volume_ratio_20", "range_pos_20", "gain_ratio_14",
    )  # fmt: skip
    assert spec.dim == 10 and spec.return_index == 0
    assert spec.warmup_bars == 61  # 60 returns for the momentum need 61 closes


def test_batch_equals_incremental_on_12k_real_shaped_bars():
    bars = random_walk_bars(12_000, seed=3)
    batch = compute_features(bars)
    incremental = incremental_states(bars)
    assert batch.shape == incremental.shape == (12_000 - 60, 10)
    assert np.abs(batch.to_numpy() - incremental).max() <= 1e-9
    assert np.isfinite(batch.to_numpy()).all()
    assert batch.index[0] == bars.index[60]  # the state of bar t is stamped at bar t's close


@pytest.mark.skipif(not SHARED_CSV.exists(), reason="../shared/data is not beside the checkout")
def test_batch_equals_incremental_on_real_btc_bars():
    bars = pd.read_csv(SHARED_CSV)
    batch = compute_features(bars)
    assert len(batch) > 27_000
    assert np.abs(batch.to_numpy() - incremental_states(bars)).max() <= 1e-9


def test_flat_market_uses_defined_values_not_nan():
    bars = random_walk_bars(200, seed=1)
    bars.loc[bars.index[100:180], ["open", "high", "low", "close"]] = 40_000.0
    bars.loc[bars.index[100:180], "volume"] = 0.0
    states = compute_features(bars)
    flat = states.loc[bars.index[179]]
    assert flat["vol_20"] == 0.0 and flat["ret_1"] == 0.0
    assert flat["vol_ratio_5_20"] == 1.0 and flat["volume_ratio_20"] == 1.0
    assert flat["range_pos_20"] == 0.5 and flat["gain_ratio_14"] == 0.5
    assert np.abs(states.to_numpy() - incremental_states(bars)).max() <= 1e-9


def test_no_lookahead_future_bars_do_not_change_past_states():
    bars = random_walk_bars(3_000, seed=5)
    base = compute_features(bars)
    shocked = bars.copy()
    shocked.iloc[2_000:, :4] *= 1.5  # a different future from bar 2000 on
    shocked.iloc[2_000:, 4] *= 10
    changed = compute_features(shocked)
    cut = bars.index[1_999]
    pd.testing.assert_frame_equal(base.loc[:cut], changed.loc[:cut])
    assert not np.allclose(base.loc[bars.index[2_000]], changed.loc[bars.index[2_000]])


def test_too_few_bars_and_missing_columns_are_clear_errors():
    with pytest.raises(ValueError, match="fewer than the feature warm-up of 61"):
        compute_features(random_walk_bars(60))
    with pytest.raises(ValueError, match="lacks columns \\['volume'\\]"):
        compute_features(random_walk_bars(100).drop(columns="volume"))


def test_spec_round_trip_and_fingerprint():
    spec = DEFAULT_SPEC
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    other = FeatureSpec(momentum_lookback=20)
    assert other.fingerprint() != spec.fingerprint()
    tampered = {**spec.to_dict(), "names": ["x"] * spec.dim}
    with pytest.raises(ValueError, match="do not match the spec"):
        FeatureSpec.from_dict(tampered)


def test_incremental_reset_starts_a_new_warmup():
    bars = random_walk_bars(100, seed=2)
    features = IncrementalFeatures()
    for h, lo, c, v in bars[["high", "low", "close", "volume"]].itertuples(index=False):
        features.update(h, lo, c, v)
    assert features.is_warm
    features.reset()
    assert not features.is_warm and features.bars_seen == 0
