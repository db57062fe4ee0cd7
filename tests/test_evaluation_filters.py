"""The evaluation's Filters section: every filter (the model's density by each rule, Mahalanobis,
GMM, none) with the bars it flags, what followed them, and the strategy with it against none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from catalogs.synthetic import generate_bars
from evaluation import cli
from evaluation.summary import NO_CONFIDENCE
from evaluation.summary import OTHER_RULE
from evaluation.summary import STRATEGIES
from evaluation.summary import window_return
from evaluation.summary import worst_window
from tests.test_evaluation_cli import TINY_FLAGS
from tests.test_evaluation_cli import strict_json

FILTERS = {"density_percentile", "density_reliability", "mahalanobis", "gmm", "confidence", "none"}
FIELDS = {
    "strategy",
    "flagged_share",
    "flagged_bars",
    "forward_return_bp_flagged",
    "forward_return_bp_familiar",
    "unfiltered_return_bp_flagged",
    "unfiltered_return_bp_familiar",
    "sharpe",
    "sharpe_low",
    "sharpe_high",
    "max_drawdown",
    "worst_30d",
    "worst_30d_end",
    "sharpe_without",
    "max_drawdown_without",
    "worst_30d_without",
    "during_worst_30d_without",
    "buy_and_hold_gated",
    "sharpe_difference",
    "not_worse",
    "drawdown_cut",
    "sharpe_cost",
    "meets_target",
}


def test_worst_window_is_the_worst_30_day_return():
    index = pd.date_range("2024-01-01", periods=24 * 90, freq="1h", tz="UTC")
    equity = pd.Series(1.0, index=index)
    equity.iloc[24 * 40 :] = 0.8  # a 20 % loss on day 40, half of it back on day 50
    equity.iloc[24 * 50 :] = 0.9
    worst, end = worst_window(equity)
    assert worst == pytest.approx(-0.2) and pd.Timestamp(end) >= index[24 * 40]
    assert worst_window(equity.iloc[: 24 * 20]) == (None, None)  # shorter than 30 days
    flat = pd.Series(1.0, index=index)
    assert window_return(flat, end) == 0.0 and window_return(equity, end) == pytest.approx(worst)
    assert window_return(equity, None) is None


@pytest.mark.parametrize("rule", ["percentile", "reliability"])
def test_tiny_evaluation_reports_every_filter(tmp_path, rule):
    csv = tmp_path / "bars.csv"
    frame = generate_bars(2_500, interval="1h", seed=9)
    frame.index = frame.index - frame.index[1] + frame.index[0]  # stamped at the open
    frame.rename_axis("timestamp").to_csv(csv)
    config = tmp_path / "run.yaml"
    config.write_text(f"strategy:\n  density_rule: {rule}\n")
    out = tmp_path / "report"
    args = ["--config", str(config), "--csv", str(csv), "--interval", "1h", "--out", str(out)]
    assert cli.main([*args, *TINY_FLAGS]) == 0
    data = strict_json(out / "evaluation.json")
    assert OTHER_RULE in STRATEGIES and data["config"]["policy"]["density_rule"] == rule
    for summary in [*data["folds"], data["overall"]]:
        assert OTHER_RULE in summary["strategies"]
        comparison = summary["filter_comparison"]
        assert comparison["traded"] == f"density_{rule}"
        assert set(comparison["filters"]) == FILTERS
        for name, f in comparison["filters"].items():
            assert set(f) >= FIELDS, name
            assert 0.0 <= f["flagged_share"] <= 1.0
            assert {"difference", "low", "high"} <= set(f["sharpe_difference"])
        for f in comparison["filters"].values():
            gate = f["buy_and_hold_gated"]
            assert set(gate) >= FIELDS - {"strategy", "buy_and_hold_gated"} - {
                k for k in FIELDS if "flagged" in k or "familiar" in k
            }
        hold = comparison["filters"]["none"]["buy_and_hold_gated"]
        assert hold["sharpe"] == summary["strategies"]["buy_and_hold"]["sharpe"]
        traded = comparison["filters"][f"density_{rule}"]
        assert traded["strategy"] == "model"
        assert traded["sharpe"] == summary["strategies"]["model"]["sharpe"]
        assert comparison["filters"]["none"]["flagged_bars"] == 0
        confidence = comparison["filters"]["confidence"]  # against min_confidence 0
        assert confidence["strategy"] == "model"
        assert confidence["sharpe_without"] == summary["strategies"][NO_CONFIDENCE]["sharpe"]
        other = next(f for f in FILTERS - {f"density_{rule}"} if f.startswith("density_"))
        assert comparison["filters"][other]["strategy"] == OTHER_RULE
    for fold in data["folds"]:
        assert fold["density_rule"] == rule
        assert set(fold["density_thresholds"]) == {"percentile", "reliability"}
        assert fold["density_reliability"]["rows"] > 0  # measured on each fold's validation
        found = fold["density_reliability"]["threshold"]
        assert found == fold["density_thresholds"]["reliability"]
    pooled = data["overall"]["filter_comparison"]["filters"]
    assert np.isfinite(pooled["none"]["max_drawdown"])
    assert pooled["none"]["worst_30d"] is not None  # 2,500 hourly bars: 30-day spans exist
    report = (out / "report.md").read_text()
    assert "## Filters" in report and "density (reliability rule)" in report
    assert "Reliability rule, per fold" in report and "confidence (min_confidence 0.6" in report
    assert any(line.startswith("Filters: the traded filter") for line in data["verdict"])
