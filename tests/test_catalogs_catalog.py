"""Writing bars to and reading them from a real ParquetDataCatalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.model.data import Bar
from nautilus_trader.model.instruments import CryptoPerpetual

from catalogs.bars import BarGap
from catalogs.bars import BarValidationError
from catalogs.catalog import _wrangler_input
from catalogs.catalog import describe_bar_types
from catalogs.catalog import last_bar_close
from catalogs.catalog import list_bar_types
from catalogs.catalog import load_instrument
from catalogs.catalog import open_catalog
from catalogs.catalog import read_bars_frame
from catalogs.catalog import write_bars
from catalogs.catalog import write_bars_detailed
from catalogs.errors import BarTypeNotFoundError
from catalogs.errors import CatalogNotFoundError
from catalogs.errors import EmptyRangeError
from catalogs.errors import InstrumentNotFoundError
from catalogs.errors import OverlapConflictError
from catalogs.errors import PrecisionError
from catalogs.instruments import make_perpetual
from catalogs.synthetic import generate_bars

BAR_TYPE_1M = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return generate_bars(3_000, "1min", seed=21)


@pytest.fixture(scope="module")
def btc() -> CryptoPerpetual:
    return make_perpetual("BTCUSDT")


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    return tmp_path / "catalog"


def parquet_files(catalog_dir: Path) -> list[Path]:
    return sorted((catalog_dir / "data" / "bar").rglob("*.parquet"))


def test_round_trip_is_exact(catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual) -> None:
    bar_type, written = write_bars(catalog_dir, bars, btc, "1min")

    assert (bar_type, written) == (BAR_TYPE_1M, 3_000)
    read = read_bars_frame(catalog_dir, bar_type)
    pd.testing.assert_frame_equal(read, bars, check_exact=False, rtol=1e-12, check_freq=False)
    assert read.index.name == "ts_close"
    assert str(read.index.dtype) == "datetime64[ns, UTC]"


def test_bars_are_stamped_at_their_close(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    write_bars(catalog_dir, bars.iloc[:10], btc, "1min")

    stored = open_catalog(catalog_dir).query(Bar, identifiers=[BAR_TYPE_1M])

    expected = bars.index[:10].asi8.tolist()
    assert [bar.ts_event for bar in stored] == expected
    assert [bar.ts_init for bar in stored] == expected
    assert str(stored[0].bar_type) == BAR_TYPE_1M


def test_instrument_is_stored_once(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    write_bars(catalog_dir, bars.iloc[:100], btc, "1min")
    write_bars(catalog_dir, bars.iloc[100:200], btc, "1min")

    stored = load_instrument(catalog_dir, "BTCUSDT-LINEAR.BYBIT")

    assert CryptoPerpetual.to_dict(stored) == CryptoPerpetual.to_dict(btc)
    assert len(open_catalog(catalog_dir).instruments()) == 1


def test_writing_twice_is_idempotent(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    write_bars(catalog_dir, bars, btc, "1min")
    files_before = parquet_files(catalog_dir)

    result = write_bars_detailed(catalog_dir, bars, btc, "1min")

    assert (result.written, result.skipped_existing) == (0, 3_000)
    assert parquet_files(catalog_dir) == files_before
    assert len(read_bars_frame(catalog_dir, BAR_TYPE_1M)) == 3_000


def test_overlapping_frame_appends_only_the_new_bars(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    write_bars(catalog_dir, bars.iloc[:2_000], btc, "1min")

    result = write_bars_detailed(catalog_dir, bars.iloc[1_500:], btc, "1min")

    assert (result.written, result.skipped_existing) == (1_000, 500)
    assert result.first_written == bars.index[2_000]
    assert result.gap_before is None
    read = read_bars_frame(catalog_dir, BAR_TYPE_1M)
    pd.testing.assert_frame_equal(read, bars, check_exact=False, rtol=1e-12, check_freq=False)
    assert len(parquet_files(catalog_dir)) == 2


def test_differing_overlap_is_an_error_and_nothing_is_written(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    write_bars(catalog_dir, bars.iloc[:2_000], btc, "1min")
    changed = bars.copy()
    changed.loc[bars.index[1_999], "volume"] += 1.0

    with pytest.raises(OverlapConflictError) as caught:
        write_bars(catalog_dir, changed, btc, "1min")

    message = str(caught.value)
    assert "1 bar(s) differ from the stored" in message
    assert str(bars.index[1_999]) in message
    assert "--on-conflict warn" in message
    assert last_bar_close(catalog_dir, BAR_TYPE_1M) == bars.index[1_999]
    assert (
        read_bars_frame(catalog_dir, BAR_TYPE_1M)["volume"].iloc[-1] == bars["volume"].iloc[1_999]
    )


def test_differing_overlap_can_be_warned_about(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    write_bars(catalog_dir, bars.iloc[:2_000], btc, "1min")
    changed = bars.copy()
    changed.loc[bars.index[10], "close"] = changed.loc[bars.index[10], "high"]

    with pytest.warns(UserWarning, match="1 bar\\(s\\) differ"):
        result = write_bars_detailed(catalog_dir, changed, btc, "1min", on_conflict="warn")

    assert result.written == 1_000
    assert len(result.conflicts) == 1
    stored_close = read_bars_frame(catalog_dir, BAR_TYPE_1M)["close"].iloc[10]
    assert stored_close == bars["close"].iloc[10]  # stored data was not overwritten


def test_bars_inside_a_stored_gap_cannot_be_inserted(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    with_gap = bars.iloc[:100].drop(bars.index[50])
    write_bars(catalog_dir, with_gap, btc, "1min")

    with pytest.raises(OverlapConflictError, match="1 bar\\(s\\) lie at or before the last stored"):
        write_bars(catalog_dir, bars.iloc[:100], btc, "1min")


def test_gap_to_stored_data_is_reported(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    write_bars(catalog_dir, bars.iloc[:100], btc, "1min")

    result = write_bars_detailed(catalog_dir, bars.iloc[110:200], btc, "1min")

    assert result.gap_before == BarGap(bars.index[99], bars.index[110], 10)
    assert "gap to stored data" in result.summary()


def test_invalid_bars_are_rejected_before_anything_is_written(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    broken = bars.iloc[:50].copy()
    broken.loc[broken.index[5], "low"] = np.nan

    with pytest.raises(BarValidationError, match="NaN or infinite values"):
        write_bars(catalog_dir, broken, btc, "1min")

    assert parquet_files(catalog_dir) == []


def test_prices_finer_than_the_tick_are_an_error_unless_rounding_is_asked_for(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    fine = bars.iloc[:20].copy()
    fine.loc[fine.index[3], ["high", "close"]] += 0.004

    with pytest.raises(PrecisionError, match="1 bar\\(s\\) have prices off the tick"):
        write_bars(catalog_dir, fine, btc, "1min")
    result = write_bars_detailed(catalog_dir, fine, btc, "1min", round_prices=True)

    assert (result.written, result.rounded_prices) == (20, 1)
    assert read_bars_frame(catalog_dir, BAR_TYPE_1M)["high"].iloc[3] == round(
        fine["high"].iloc[3], 2
    )


def test_volumes_are_rounded_to_size_precision_and_counted(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    frame = bars.iloc[:5].assign(volume=[1.0, 2.0004, 3.0, 4.5556, 5.0])

    result = write_bars_detailed(catalog_dir, frame, btc, "1min")
    again = write_bars_detailed(catalog_dir, frame, btc, "1min")

    assert result.rounded_volumes == 2
    assert read_bars_frame(catalog_dir, BAR_TYPE_1M)["volume"].tolist() == [
        1.0,
        2.0,
        3.0,
        4.556,
        5.0,
    ]
    assert again.conflicts == []  # rounding is consistent, so the rewrite is a no-op


def test_read_range_is_inclusive_on_close_times(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    write_bars(catalog_dir, bars, btc, "1min")

    window = read_bars_frame(catalog_dir, BAR_TYPE_1M, "2024-01-01 00:10", "2024-01-01 00:20")

    assert len(window) == 11
    assert window.index[0] == pd.Timestamp("2024-01-01 00:10", tz="UTC")
    assert window.index[-1] == pd.Timestamp("2024-01-01 00:20", tz="UTC")


def test_missing_catalog_is_explained(tmp_path: Path) -> None:
    with pytest.raises(CatalogNotFoundError, match=r"No data catalog at .*missing"):
        read_bars_frame(tmp_path / "missing", BAR_TYPE_1M)
    with pytest.raises(CatalogNotFoundError, match="python -m catalogs synth"):
        list_bar_types(tmp_path / "missing")

    created = open_catalog(tmp_path / "new", create=True)

    assert Path(created.path).is_dir()
    assert list_bar_types(created) == []


def test_unknown_bar_type_lists_the_stored_ones(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    write_bars(catalog_dir, bars.iloc[:100], btc, "1min")

    with pytest.raises(BarTypeNotFoundError) as caught:
        read_bars_frame(catalog_dir, "ETHUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL")

    message = str(caught.value)
    assert "ETHUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL is not in the catalog" in message
    assert f"stored bar types: {BAR_TYPE_1M}" in message


def test_empty_range_states_the_available_range(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    write_bars(catalog_dir, bars.iloc[:100], btc, "1min")

    with pytest.raises(EmptyRangeError) as caught:
        read_bars_frame(catalog_dir, BAR_TYPE_1M, start="2025-01-01")

    message = str(caught.value)
    assert "No BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL bars" in message
    assert f"the catalog holds {bars.index[0]} .. {bars.index[99]}" in message
    with pytest.raises(EmptyRangeError, match="is after end"):
        read_bars_frame(catalog_dir, BAR_TYPE_1M, start="2024-02-01", end="2024-01-01")


def test_several_bar_types_are_listed_with_counts(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    hourly = generate_bars(48, "1h", seed=2)
    write_bars(catalog_dir, bars, btc, "1min")
    write_bars(catalog_dir, hourly, btc, "1h")

    summaries = {summary.bar_type: summary for summary in describe_bar_types(catalog_dir)}

    assert list_bar_types(catalog_dir) == [
        "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL",
        BAR_TYPE_1M,
    ]
    assert summaries[BAR_TYPE_1M].count == 3_000
    assert summaries[BAR_TYPE_1M].first == bars.index[0]
    assert summaries[BAR_TYPE_1M].last == bars.index[-1]
    assert summaries["BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"].count == 48


def test_unknown_instrument_lists_the_stored_ones(
    catalog_dir: Path, bars: pd.DataFrame, btc: CryptoPerpetual
) -> None:
    write_bars(catalog_dir, bars.iloc[:10], btc, "1min")

    with pytest.raises(InstrumentNotFoundError, match=r"stored instruments: BTCUSDT-LINEAR\.BYBIT"):
        load_instrument(catalog_dir, "SOLUSDT-LINEAR.BYBIT")


def test_wrangler_input_is_writable(bars: pd.DataFrame) -> None:
    # Guards the pandas-3 copy-on-write issue with nautilus 1.231's BarDataWrangler.
    frame = _wrangler_input(bars.iloc[:10])

    assert frame.values.flags.writeable
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index.equals(bars.index[:10])
