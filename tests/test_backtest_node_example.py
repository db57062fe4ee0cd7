"""The documented BacktestNode example runs the strategy from its import path alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nautilus_trader.backtest.node import BacktestNode

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "backtest_node.py"


def load_example():
    spec = importlib.util.spec_from_file_location("backtest_node_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_backtest_node_runs_the_strategy_by_import_path(synthetic_catalog, trained_model):
    example = load_example()
    config = example.build_run_config(
        str(synthetic_catalog), str(trained_model), start="2024-09-01", end="2024-10-15"
    )
    node = BacktestNode(configs=[config])
    try:
        [result] = node.run()
        engine = node.get_engine(config.id)
        [strategy] = engine.trader.strategies()
        assert type(strategy).__name__ == "ScoreMatchingStrategy"
        assert strategy.bars_decided > 900  # ~45 days of hourly bars, warmed up from history
        assert result.total_orders > 0
    finally:
        node.dispose()
