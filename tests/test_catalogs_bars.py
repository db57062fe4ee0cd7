"""Intervals, bar type strings and bar validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from catalogs.bars import BAR_COLUMNS
from catalogs.bars import BarGap
from catalogs.bars import BarValidationError
from catalogs.bars import bar_type_string
from catalogs.bars import format_interval
from catalogs.bars import interval_of_bar_type
from catalogs.bars import parse_interval
from catalogs.bars import validate_bars
from catalogs.errors import IntervalError

BTC = "BTCUSDT-LINEAR.BYBIT"


def make_bars(
    n: int = 10, freq: str = "1min", first_close: str = "2024-01-01 00:01"
) -> pd.DataFrame:
    """Valid bars with distinct values: close rises by 1 per bar, open = previous close."""
    index = pd.date_range(first_close, periods=n, freq=freq, tz="UTC", name="ts_close")
    index = index.as_unit("ns")  # the canonical unit (pandas 3 defaults to microseconds)
    close = 100.0 + np.arange(1, n + 1)
    open_ = close - 1.0
    return pd.DataFrame(
        {
            "open": open_,
            "high": close + 0.5,
            "low": open_ - 0.5,
            "close": close,
            "volume": np.full(n, 2.0),
        },
        index=index,
    )


def problems_of(df: pd.DataFrame, **kwargs: str) -> str:
    with pytest.raises(BarValidationError) as caught:
        validate_bars(df, "1min", **kwargs)
    return str(caught.value)


# -- Intervals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1min", "1min"),
        ("5min", "5min"),
        ("1h", "1h"),
        ("4h", "4h"),
        ("1d", "1D"),
        ("1m", "1min"),
        ("15m", "15min"),
        ("60min", "1h"),
        ("30s", "30s"),
        ("1-MINUTE", "1min"),
        ("4-HOUR", "4h"),
        ("1-DAY", "1D"),
        (" 2 hours ", "2h"),
        ((1, "HOUR"), "1h"),
        (pd.Timedelta("12h"), "12h"),
    ],
)
def test_parse_interval_accepts_common_spellings(text: object, expected: str) -> None:
    assert parse_interval(text) == pd.Timedelta(expected)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("7min", "step must divide the next unit"),
        ("5h", "step must divide the next unit"),
        ("1M", "monthly"),
        ("2d", "longer than one day"),
        ("1w", "Cannot parse interval"),
        ("minute", "Cannot parse interval"),
        ("0min", "positive"),
        ("1-TICK", "Cannot parse interval"),
    ],
)
def test_parse_interval_rejects_what_nautilus_cannot_express(text: str, fragment: str) -> None:
    with pytest.raises(IntervalError, match=fragment):
        parse_interval(text)


def test_format_interval_gives_short_form() -> None:
    assert [format_interval(x) for x in ("1-MINUTE", "60min", "1440min", "30s")] == [
        "1min",
        "1h",
        "1d",
        "30s",
    ]


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        ("1min", f"{BTC}-1-MINUTE-LAST-EXTERNAL"),
        ("1h", f"{BTC}-1-HOUR-LAST-EXTERNAL"),
        ("120min", f"{BTC}-2-HOUR-LAST-EXTERNAL"),
        ("1d", f"{BTC}-1-DAY-LAST-EXTERNAL"),
    ],
)
def test_bar_type_string_uses_the_largest_whole_unit(interval: str, expected: str) -> None:
    assert bar_type_string(BTC, interval) == expected
    assert interval_of_bar_type(expected) == parse_interval(interval)


def test_bar_type_string_rejects_a_bad_instrument_id() -> None:
    with pytest.raises(IntervalError, match="Instrument ids look like"):
        bar_type_string("not an id", "1min")


def test_interval_of_bar_type_rejects_non_time_and_garbage() -> None:
    with pytest.raises(IntervalError, match="not time-aggregated"):
        interval_of_bar_type(f"{BTC}-100-TICK-LAST-EXTERNAL")
    with pytest.raises(IntervalError, match="Not a Nautilus bar type"):
        interval_of_bar_type("garbage")


# -- Validation: clean input ---------------------------------------------------------------------


def test_clean_bars_pass_unchanged_and_input_is_not_mutated() -> None:
    df = make_bars(20)
    before = df.copy()

    clean, report = validate_bars(df, "1min")

    pd.testing.assert_frame_equal(df, before)
    pd.testing.assert_frame_equal(clean, before, check_freq=False)
    assert clean is not df
    assert report.is_clean
    assert (report.n_bars, report.n_input_rows) == (20, 20)
    assert (report.first_ts, report.last_ts) == (df.index[0], df.index[-1])
    assert "no issues" in report.summary()


def test_output_is_canonical_whatever_the_input_dtypes_and_timezone() -> None:
    df = make_bars(5).astype({"volume": "int64"})
    df.index = df.index.tz_convert("Asia/Tokyo").rename("time")
    df = df[["close", "volume", "open", "low", "high"]].assign(extra="x")

    clean, report = validate_bars(df, "1min")

    assert list(clean.columns) == BAR_COLUMNS
    assert (clean.dtypes == np.float64).all()
    assert clean.index.name == "ts_close"
    assert str(clean.index.tz) == "UTC"
    assert clean.index.dtype == "datetime64[ns, UTC]"
    assert report.ignored_columns == ("extra",)
    assert "ignored columns: extra" in report.summary()


# -- Validation: value failures ------------------------------------------------------------------


def test_nan_and_inf_are_reported_with_columns_and_timestamps() -> None:
    df = make_bars()
    df.loc[df.index[3], "high"] = np.nan
    df.loc[df.index[5], "volume"] = np.inf

    message = problems_of(df)

    assert "2 bar(s) with NaN or infinite values (columns: high, volume)" in message
    assert "2024-01-01 00:04:00+00:00" in message
    assert "2024-01-01 00:06:00+00:00" in message


def test_non_positive_prices_are_rejected() -> None:
    df = make_bars()
    df.loc[df.index[2], ["open", "low"]] = [0.0, -1.0]

    message = problems_of(df)

    assert "1 bar(s) with non-positive prices: 2024-01-01 00:03:00+00:00" in message
    assert "prices must be > 0" in message


def test_negative_volume_is_rejected() -> None:
    df = make_bars()
    df.loc[df.index[7], "volume"] = -3.0

    assert "1 bar(s) with negative volume: 2024-01-01 00:08:00+00:00" in problems_of(df)


def test_high_below_low_is_rejected() -> None:
    df = make_bars()
    row = df.index[4]
    df.loc[row, ["high", "low"]] = df.loc[row, ["low", "high"]].to_numpy()

    message = problems_of(df)

    assert "1 bar(s) with high < low: 2024-01-01 00:05:00+00:00" in message
    assert "swapped high/low" in message


@pytest.mark.parametrize("column", ["open", "close"])
@pytest.mark.parametrize("direction", [1, -1])
def test_open_or_close_outside_the_range_is_rejected(column: str, direction: int) -> None:
    df = make_bars()
    row = df.index[6]
    df.loc[row, column] = df.loc[row, "high" if direction > 0 else "low"] + direction

    message = problems_of(df)

    assert "1 bar(s) with open or close outside [low, high]: 2024-01-01 00:07:00+00:00" in message


def test_every_failed_value_check_is_listed() -> None:
    df = make_bars()
    df.loc[df.index[1], "volume"] = -1.0
    df.loc[df.index[2], "close"] = np.nan

    with pytest.raises(BarValidationError) as caught:
        validate_bars(df, "1min")

    assert len(caught.value.problems) == 2
    assert isinstance(caught.value, ValueError)


def test_many_offenders_are_counted_and_truncated() -> None:
    df = make_bars(12)
    df["volume"] = -1.0

    message = problems_of(df)

    assert "12 bar(s) with negative volume" in message
    assert "2024-01-01 00:05:00+00:00" in message
    assert "2024-01-01 00:06:00+00:00" not in message
    assert ", ..." in message


# -- Validation: timestamp failures --------------------------------------------------------------


def test_duplicates_raise_by_default() -> None:
    df = make_bars()
    df = pd.concat([df, df.iloc[[4]]]).sort_index(kind="stable")

    message = problems_of(df)

    assert "1 duplicate timestamp row(s) (first: 2024-01-01 00:05:00+00:00)" in message
    assert "--duplicate-policy drop" in message


def test_duplicates_can_be_dropped_and_are_counted() -> None:
    df = make_bars()
    identical = df.iloc[[2]]
    conflicting = df.iloc[[6]].assign(volume=99.0)
    df = pd.concat([df, identical, conflicting]).sort_index(kind="stable")

    clean, report = validate_bars(df, "1min", duplicate_policy="drop")

    assert len(clean) == 10
    assert (report.dropped_duplicates, report.conflicting_duplicates) == (2, 1)
    assert clean.loc["2024-01-01 00:07", "volume"].item() == 2.0  # first occurrence kept
    assert "dropped: 2 duplicate timestamps (1 with values differing" in report.summary()


def test_unsorted_timestamps_are_rejected() -> None:
    df = make_bars()
    df = df.iloc[[0, 1, 3, 2, 4, 5]]

    message = problems_of(df)

    assert "timestamps are not sorted: 1 place(s) go backwards" in message
    assert "2024-01-01 00:04:00+00:00 followed by 2024-01-01 00:03:00+00:00" in message
    assert "df.sort_index()" in message


def test_off_grid_timestamps_are_rejected() -> None:
    df = make_bars()
    df.index = df.index + pd.Timedelta(seconds=30)

    message = problems_of(df)

    assert "10 timestamp(s) are not on the 1min grid" in message
    assert "2024-01-01 00:01:30+00:00" in message
    assert "stamped at their close" in message


def test_structural_problems_are_explained() -> None:
    df = make_bars()
    assert "timezone-naive" in problems_of(df.tz_localize(None))
    assert "set it with df.set_index('ts_close')" in problems_of(df.reset_index())
    assert "missing column(s) ['volume']" in problems_of(df.drop(columns="volume"))
    assert "non-numeric column(s): close (" in problems_of(df.astype({"close": str}))
    assert "no rows" in problems_of(df.iloc[:0])


def test_invalid_policy_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="gap_policy must be one of"):
        validate_bars(make_bars(), "1min", gap_policy="ignore")  # type: ignore[arg-type]


# -- Validation: gaps ----------------------------------------------------------------------------


def gappy_bars() -> pd.DataFrame:
    """Bars closing 00:01..00:10 with 00:04-00:05 and 00:08 missing (3 bars in 2 gaps)."""
    df = make_bars(10)
    return df.drop(df.index[[3, 4, 7]])


def test_gap_policy_error_lists_the_gaps() -> None:
    message = problems_of(gappy_bars(), gap_policy="error")

    assert "2 gap(s) with 3 missing bar(s)" in message
    assert "2024-01-01 00:03:00+00:00 .. 2024-01-01 00:06:00+00:00 (2 bars)" in message
    assert "--gap-policy fill" in message


def test_gap_policy_report_keeps_data_and_lists_gaps() -> None:
    df = gappy_bars()

    clean, report = validate_bars(df, "1min", gap_policy="report")

    pd.testing.assert_frame_equal(clean, df, check_freq=False)
    assert report.gaps == [
        BarGap(
            pd.Timestamp("2024-01-01 00:03", tz="UTC"),
            pd.Timestamp("2024-01-01 00:06", tz="UTC"),
            2,
        ),
        BarGap(
            pd.Timestamp("2024-01-01 00:07", tz="UTC"),
            pd.Timestamp("2024-01-01 00:09", tz="UTC"),
            1,
        ),
    ]
    assert report.missing_bars == 3
    assert not report.is_clean
    assert "gaps: 2 (3 missing bars)" in report.summary()


def test_gap_policy_fill_inserts_flat_bars_at_previous_close() -> None:
    df = gappy_bars()

    clean, report = validate_bars(df, "1min", gap_policy="fill")

    assert len(clean) == 10
    assert report.filled_bars == 3
    assert report.n_bars == 10
    filled = clean.loc["2024-01-01 00:04":"2024-01-01 00:05"]
    previous_close = df.loc["2024-01-01 00:03", "close"].item()
    assert (filled[["open", "high", "low", "close"]] == previous_close).all().all()
    assert (filled["volume"] == 0.0).all()
    pd.testing.assert_frame_equal(clean.loc[df.index], df, check_freq=False)
    assert "filled: 3 flat bars" in report.summary()
    validate_bars(clean, "1min", gap_policy="error")  # the repaired frame is gap-free
