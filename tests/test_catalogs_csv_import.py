"""CSV import: column detection and mapping, timestamp parsing, stamps and error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from catalogs.bars import BAR_COLUMNS
from catalogs.bars import validate_bars
from catalogs.csv_import import read_ohlcv_csv
from catalogs.errors import CsvFormatError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_CSV = SHARED_DATA / "btcusdt_perp_1m_2022-01.csv"

ROWS = [
    ("2024-01-01 00:00:00", 100.0, 101.0, 99.0, 100.5, 10.0),
    ("2024-01-01 00:01:00", 100.5, 102.0, 100.0, 101.5, 12.5),
    ("2024-01-01 00:02:00", 101.5, 101.5, 100.5, 101.0, 0.0),
]


def write_csv(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def standard_csv(tmp_path: Path, header: str = "timestamp,open,high,low,close,volume") -> Path:
    lines = [header] + [",".join(map(str, row)) for row in ROWS]
    return write_csv(tmp_path, "\n".join(lines) + "\n")


def test_open_stamps_become_close_stamps(tmp_path: Path) -> None:
    bars = read_ohlcv_csv(standard_csv(tmp_path), interval="1min")

    assert list(bars.index) == list(
        pd.date_range("2024-01-01 00:01", periods=3, freq="1min", tz="UTC")
    )
    assert bars.index.name == "ts_close"
    assert list(bars.columns) == BAR_COLUMNS
    assert (bars.dtypes == np.float64).all()
    assert bars.iloc[1].tolist() == [100.5, 102.0, 100.0, 101.5, 12.5]


def test_close_stamps_are_kept(tmp_path: Path) -> None:
    bars = read_ohlcv_csv(standard_csv(tmp_path), interval="1min", stamp="close")

    assert bars.index[0] == pd.Timestamp("2024-01-01 00:00", tz="UTC")


def test_hourly_open_stamps_shift_by_one_hour(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "time,open,high,low,close,volume\n2024-01-01T05:00:00Z,1,2,1,2,3\n")

    bars = read_ohlcv_csv(path, interval="1h")

    assert bars.index[0] == pd.Timestamp("2024-01-01 06:00", tz="UTC")


def test_column_names_are_detected_case_insensitively(tmp_path: Path) -> None:
    path = standard_csv(tmp_path, header="Date, Open ,HIGH,Low,Close,Vol")

    bars = read_ohlcv_csv(path, interval="1min")

    assert bars["volume"].tolist() == [10.0, 12.5, 0.0]


def test_explicit_mapping_is_used(tmp_path: Path) -> None:
    path = standard_csv(tmp_path, header="time,o,h,l,c,qty")

    bars = read_ohlcv_csv(
        path,
        interval="1min",
        columns={"time": "ts", "o": "open", "h": "high", "l": "low", "c": "close", "qty": "volume"},
    )

    assert bars["close"].tolist() == [100.5, 101.5, 101.0]


def test_mapping_overrides_detection(tmp_path: Path) -> None:
    text = "timestamp,open,high,low,close,volume,quote_volume\n2024-01-01 00:00,1,2,1,2,3,6\n"
    path = write_csv(tmp_path, text)

    bars = read_ohlcv_csv(path, interval="1min", columns={"quote_volume": "volume"})

    assert bars["volume"].item() == 6.0


@pytest.mark.parametrize(
    ("stamps", "unit"),
    [
        (["1704067200", "1704067260"], "auto"),
        (["1704067200000", "1704067260000"], "auto"),
        (["1704067200000000", "1704067260000000"], "auto"),
        (["1704067200000000000", "1704067260000000000"], "auto"),
        (["1704067200000", "1704067260000"], "ms"),
        (["1704067200.0", "1704067260.0"], "s"),
        (["2024-01-01T01:00:00+01:00", "2024-01-01T01:01:00+01:00"], "iso"),
    ],
)
def test_timestamp_units(tmp_path: Path, stamps: list[str], unit: str) -> None:
    rows = "\n".join(f"{stamp},1,2,1,2,3" for stamp in stamps)
    path = write_csv(tmp_path, f"ts,open,high,low,close,volume\n{rows}\n")

    bars = read_ohlcv_csv(path, interval="1min", timestamp_unit=unit)  # type: ignore[arg-type]

    assert bars.index[0] == pd.Timestamp("2024-01-01 00:01", tz="UTC")
    assert bars.index[1] == pd.Timestamp("2024-01-01 00:02", tz="UTC")


def test_naive_strings_are_read_in_the_given_timezone(tmp_path: Path) -> None:
    bars = read_ohlcv_csv(standard_csv(tmp_path), interval="1min", tz="Europe/Berlin")

    assert bars.index[0] == pd.Timestamp("2023-12-31 23:01", tz="UTC")


def test_unknown_timezone_is_explained(tmp_path: Path) -> None:
    with pytest.raises(CsvFormatError, match="cannot interpret naive timestamps in timezone"):
        read_ohlcv_csv(standard_csv(tmp_path), interval="1min", tz="Mars/Olympus")


def test_missing_column_lists_the_columns_found(tmp_path: Path) -> None:
    path = standard_csv(tmp_path, header="timestamp,open,high,low,close,turnover")

    with pytest.raises(CsvFormatError) as caught:
        read_ohlcv_csv(path, interval="1min")

    message = str(caught.value)
    assert "no 'volume' column found" in message
    assert "'timestamp', 'open', 'high', 'low', 'close', 'turnover'" in message
    assert "--volume-col" in message


def test_ambiguous_columns_must_be_mapped(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "date,time,open,high,low,close,volume\n2024-01-01,00:00,1,2,1,2,3\n")

    with pytest.raises(
        CsvFormatError, match="several columns could be 'timestamp': 'date', 'time'"
    ):
        read_ohlcv_csv(path, interval="1min")


def test_mapping_to_a_missing_column_or_unknown_target(tmp_path: Path) -> None:
    path = standard_csv(tmp_path)
    reversed_path = standard_csv(tmp_path, header="open_time,open,high,low,close,volume")

    with pytest.raises(CsvFormatError, match=r"did you mean \{'open_time': 'timestamp'\}"):
        read_ohlcv_csv(reversed_path, interval="1min", columns={"timestamp": "open_time"})
    with pytest.raises(CsvFormatError, match="not in the file"):
        read_ohlcv_csv(path, interval="1min", columns={"px": "close"})
    with pytest.raises(CsvFormatError, match="unknown target"):
        read_ohlcv_csv(path, interval="1min", columns={"close": "last"})


def test_unparseable_timestamps_are_reported_with_line_numbers(tmp_path: Path) -> None:
    text = (
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01 00:00,1,2,1,2,3\n"
        "yesterday,1,2,1,2,3\n"
        "2024-01-01 00:02,1,2,1,2,3\n"
        ",1,2,1,2,3\n"
    )
    path = write_csv(tmp_path, text)

    with pytest.raises(CsvFormatError) as caught:
        read_ohlcv_csv(path, interval="1min")

    message = str(caught.value)
    assert "2 timestamp(s) could not be parsed" in message
    assert "line 3: 'yesterday'" in message
    assert "line 5: <empty>" in message


def test_bad_epoch_values_are_reported(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "ts,open,high,low,close,volume\n1704067200,1,2,1,2,3\n17x,1,2,1,2,3\n1704067320,1,2,1,2,3\n",
    )

    with pytest.raises(
        CsvFormatError, match="1 timestamp\\(s\\) are not epoch numbers \\(s\\): line 3: '17x'"
    ):
        read_ohlcv_csv(path, interval="1min")


def test_non_numeric_and_empty_values_are_reported(tmp_path: Path) -> None:
    text = (
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01 00:00,1,2,1,2,3\n"
        "2024-01-01 00:01,1,2,1,n/a,3\n"
        "2024-01-01 00:02,1,2,1,,3\n"
    )
    path = write_csv(tmp_path, text)

    with pytest.raises(CsvFormatError) as caught:
        read_ohlcv_csv(path, interval="1min")

    message = str(caught.value)
    assert "column 'close' (close): 2 value(s) are empty or not numbers" in message
    assert "line 3: 'n/a', line 4: <empty>" in message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CSV file not found"):
        read_ohlcv_csv(tmp_path / "absent.csv", interval="1min")
    with pytest.raises(CsvFormatError, match="is empty"):
        read_ohlcv_csv(write_csv(tmp_path, ""), interval="1min")
    with pytest.raises(CsvFormatError, match="no data rows"):
        read_ohlcv_csv(
            write_csv(tmp_path, "timestamp,open,high,low,close,volume\n"), interval="1min"
        )


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    path = standard_csv(tmp_path)
    with pytest.raises(ValueError, match="stamp must be 'open' or 'close'"):
        read_ohlcv_csv(path, interval="1min", stamp="mid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Cannot parse interval"):
        read_ohlcv_csv(path, interval="one minute")


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_CSV.is_file(), reason=f"shared data not found at {SHARED_DATA}")
def test_reads_the_real_btc_perp_csv() -> None:
    bars = read_ohlcv_csv(REAL_CSV, interval="1min")

    assert len(bars) == 27_419
    assert bars.index[0] == pd.Timestamp("2021-12-31 23:02", tz="UTC")  # opened 23:01
    assert bars.index[-1] == pd.Timestamp("2022-01-20 00:00", tz="UTC")
    assert bars.iloc[0].tolist() == [46319.0, 46385.0, 46319.0, 46377.0, 2300413.7295]
    _, report = validate_bars(bars, "1min", gap_policy="error")
    assert report.is_clean
