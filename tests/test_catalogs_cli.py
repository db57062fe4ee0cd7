"""Command line interface: subprocess smoke test plus in-process error handling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from catalogs.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
BAR_TYPE_1M = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
# Every bar file of ../shared/data: (symbol, file, interval, extra import-csv arguments). ADA's
# early prices have 5 decimals (Bybit's ADAUSDT tick is 0.0001), BCH's are on a 0.01 grid
# (Bybit's tick is 0.05) and the BTC file has four prices finer than 0.1, hence --round-prices
# (onto the tick); volumes are rounded to the lot step anyway.
SHARED_BAR_FILES = [
    ("BTCUSDT", "btcusdt_perp_1m_2022-01.csv", "1min", ["--round-prices"]),
    ("LTCUSDT", "real/LTCUSDT_1h_binance-usdm-perp.csv", "1h", []),
    ("XRPUSDT", "real/XRPUSDT_1h_binance-usdm-perp.csv", "1h", []),
    ("ADAUSDT", "real/ADAUSDT_1h_binance-usdm-perp.csv", "1h", ["--round-prices"]),
    ("BCHUSDT", "real/BCHUSDT_1h_binance-usdm-perp.csv", "1h", ["--round-prices"]),
    ("SOLUSDT", "real/SOLUSDT_5m_binance-usdm-perp.csv", "5min", []),
    ("DOGEUSDT", "real/DOGEUSDT_5m_binance-usdm-perp.csv", "5min", []),
]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "catalogs", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_synth_then_info_in_a_subprocess(tmp_path: Path) -> None:
    catalog = str(tmp_path / "catalog")

    synth = run_cli("synth", "--catalog", catalog, "--bars", "2000", "--seed", "3")
    info = run_cli("info", "--catalog", catalog)

    assert synth.returncode == 0, synth.stderr
    assert f"{BAR_TYPE_1M}: wrote 2,000 bars" in synth.stdout
    assert "no issues" in synth.stdout
    assert info.returncode == 0, info.stderr
    assert "instruments: BTCUSDT-LINEAR.BYBIT" in info.stdout
    assert BAR_TYPE_1M in info.stdout
    assert "2,000" in info.stdout
    assert "2024-01-01 00:01:00" in info.stdout
    assert "2024-01-02 09:20:00" in info.stdout


def test_user_errors_print_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["info", "--catalog", str(tmp_path / "absent")])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: No data catalog at")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_import_csv_reports_validation_failures_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text(
        "time,o,h,l,c,v\n"
        "2024-01-01 00:00,1,2,1,2,3\n"
        "2024-01-01 00:01,2,3,2,3,3\n"
        "2024-01-01 00:05,3,4,3,4,3\n"
    )
    mapping = ["--open-col", "o", "--high-col", "h", "--low-col", "l", "--close-col", "c"]
    args = ["import-csv", str(csv), "--interval", "1min", "--catalog", str(tmp_path / "cat")]

    failed = main([*args, *mapping, "--volume-col", "v", "--gap-policy", "error"])
    failed_err = capsys.readouterr().err
    filled = main([*args, *mapping, "--volume-col", "v", "--gap-policy", "fill"])
    filled_out = capsys.readouterr().out

    error_lines = [line for line in failed_err.splitlines() if line.startswith("error:")]
    assert failed == 2
    assert len(error_lines) == 1
    assert error_lines[0].startswith("error: Bar validation failed: 1 gap(s) with 3 missing bar(s)")
    assert "Traceback" not in failed_err
    assert filled == 0
    assert "wrote 6 bars" in filled_out
    assert "filled: 3 flat bars" in filled_out


def test_import_csv_missing_column_mapping_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text("time,open,high,low,close,qty\n2024-01-01 00:00,1,2,1,2,3\n")

    code = main(["import-csv", str(csv), "--interval", "1min", "--catalog", str(tmp_path / "c")])

    assert code == 2
    assert "no 'volume' column found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", ["synth", "import-csv", "import-funding", "fetch", "fetch-funding", "info"]
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])

    assert exited.value.code == 0
    assert "--catalog" in capsys.readouterr().out


def test_bad_interval_is_an_argument_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["synth", "--interval", "7min"])

    assert exited.value.code == 2
    assert "invalid interval '7min'" in capsys.readouterr().err


def test_synth_planted_writes_the_demo_market_on_the_tick_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from catalogs.catalog import read_bars_frame
    from catalogs.planted import demo_preset
    from catalogs.planted import generate_planted

    catalog = tmp_path / "planted"
    args = ["synth", "--catalog", str(catalog), "--interval", "1h", "--bars", "500"]
    assert main([*args, "--planted", "volume_reversal", "--seed", "4"]) == 0
    stored = read_bars_frame(catalog, "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL")
    planted = generate_planted(500, seed=4, config=demo_preset("1h")).bars
    assert len(stored) == 500 and (stored.index == planted.index).all()
    # prices rounded to the 0.1 tick, nothing else changed
    assert np.abs(stored["close"].to_numpy() - planted["close"].to_numpy()).max() <= 0.05 + 1e-9
    assert "synthetic funding rates" in capsys.readouterr().out


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("symbol", "name", "interval", "extra"), SHARED_BAR_FILES, ids=[f[0] for f in SHARED_BAR_FILES]
)
def test_import_csv_takes_the_first_2000_rows_of_every_shared_bar_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], symbol, name, interval, extra
) -> None:
    from catalogs.bars import bar_type_string
    from catalogs.catalog import read_bars_frame
    from catalogs.instruments import make_perpetual

    source = SHARED_DATA / name
    if not source.is_file():
        pytest.skip(f"shared data not found at {source}")
    with source.open() as lines:
        head = "".join(next(lines) for _ in range(2_001))  # the header and 2,000 bars
    csv = tmp_path / source.name
    csv.write_text(head)
    catalog = tmp_path / "catalog"

    args = ["import-csv", str(csv), "--symbol", symbol, "--interval", interval]
    code = main([*args, "--catalog", str(catalog), *extra])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "wrote 2,000 bars" in captured.out
    instrument = make_perpetual(symbol)
    stored = read_bars_frame(catalog, bar_type_string(instrument.id, interval))
    assert len(stored) == 2_000
    # stored at the instrument's precisions: prices to the tick's decimals, volumes to the lot's
    for columns, precision in [
        (["open", "high", "low", "close"], instrument.price_precision),
        (["volume"], instrument.size_precision),
    ]:
        scaled = stored[columns].to_numpy() * 10.0**precision
        assert np.allclose(scaled, np.round(scaled), rtol=0, atol=1e-6)
