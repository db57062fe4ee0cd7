"""``python -m benchmarks.real_markets``: the real commands per market (catalog with funding,
evaluation), the figures kept, and the record written (tiny evaluation, synthetic bars)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from benchmarks import real_markets
from catalogs.synthetic import generate_bars
from tests.test_evaluation_cli import TINY_FLAGS


def test_a_market_folder_gives_its_record_with_funding_and_every_forecaster(tmp_path):
    folder = tmp_path / "real"
    folder.mkdir()
    bars = generate_bars(2_500, interval="1h", seed=4)
    bars[["open", "high", "low", "close"]] /= 500.0  # LTC-like prices
    bars.index = bars.index - pd.Timedelta(hours=1)  # files stamp bars at their open
    bars.rename_axis("timestamp").to_csv(folder / "LTCUSDT_1h_binance-usdm-perp.csv")
    times = pd.date_range(bars.index[0].ceil("8h"), bars.index[-1], freq="8h")
    funding = pd.DataFrame({"timestamp": times, "rate": np.full(len(times), 1e-4)})
    funding.to_csv(folder / "LTCUSDT_funding_binance-usdm-perp.csv", index=False)
    (folder / "notes.txt").write_text("not a market")
    out = tmp_path / "real_markets.json"
    args = [str(folder), "--horizons", "6", "--workers", "1", "--work", str(tmp_path / "work")]
    assert real_markets.main([*args, "--out", str(out), *TINY_FLAGS]) == 0

    record = json.loads(out.read_text())
    (run,) = record["runs"]
    assert run["market"] == "LTCUSDT 1h" and run["horizon"] == 6 and run["funding"] is True
    assert set(run["forecasters"]) == set(real_markets.FORECASTERS)
    assert run["strategies"]["buy_and_hold"]["funding"] != 0  # real funding charged
    assert "confidence" in run["filters"] and run["verdict"].startswith("model ")
    table = out.with_suffix(".md").read_text()
    assert "| LTCUSDT 1h | 6 |" in table

    # --reuse keeps the finished evaluation (no rerun: the same figures, in well under a second)
    again = tmp_path / "again.json"
    assert real_markets.main([*args, "--out", str(again), "--reuse", *TINY_FLAGS]) == 0
    (reused,) = json.loads(again.read_text())["runs"]
    assert reused["forecasters"] == run["forecasters"] and reused["seconds"] < 1.0


def test_a_missing_folder_or_one_without_markets_is_one_line(tmp_path, capsys):
    assert real_markets.main([str(tmp_path / "none")]) == 2
    assert real_markets.main([str(tmp_path)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
