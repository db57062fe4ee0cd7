"""Plug ScoreMatchingStrategy into an existing BacktestNode configuration by import path only.

Nothing here imports the strategy: Nautilus loads it from the two import paths, exactly as it
would from a YAML/JSON run configuration. Perpetual funding is added the same way: the venue's
``modules`` name ``runtime.funding:CatalogFundingModule``, which charges the catalog's funding
rates on the open position at each funding time, as ``run_backtest.py`` does (Nautilus 1.231
charges none by itself; a catalog without rates is charged nothing).

    python docs/examples/backtest_node.py --catalog var/catalog --model var/models/default
"""

from __future__ import annotations

import argparse

from nautilus_trader.backtest.node import BacktestNode
from nautilus_trader.config import BacktestDataConfig
from nautilus_trader.config import BacktestEngineConfig
from nautilus_trader.config import BacktestRunConfig
from nautilus_trader.config import BacktestVenueConfig
from nautilus_trader.config import DataCatalogConfig
from nautilus_trader.config import ImportableActorConfig
from nautilus_trader.config import ImportableStrategyConfig
from nautilus_trader.config import LoggingConfig

INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"
BAR_TYPE = f"{INSTRUMENT_ID}-1-HOUR-LAST-EXTERNAL"


def build_run_config(
    catalog_path: str, model_path: str, start: str | None = None, end: str | None = None
) -> BacktestRunConfig:
    """A user's BacktestRunConfig with the strategy added as an ImportableStrategyConfig."""
    strategy = ImportableStrategyConfig(
        strategy_path="strategies.score_matching:ScoreMatchingStrategy",
        config_path="strategies.score_matching:ScoreMatchingConfig",
        config={
            "instrument_id": INSTRUMENT_ID,
            "bar_type": BAR_TYPE,
            "model_path": model_path,
            "signal_mode": "score",
            "min_confidence": 0.6,
            "execution": "taker",  # or "maker": post-only limits (costed at the maker fee)
        },
    )
    funding = ImportableActorConfig(
        actor_path="runtime.funding:CatalogFundingModule",
        config_path="runtime.funding:FundingModuleConfig",
        config={
            "catalog_path": catalog_path,
            "instrument_id": INSTRUMENT_ID,
            "bar_type": BAR_TYPE,  # its closes are the mark prices
            "start": start,
            "end": end,
        },
    )
    return BacktestRunConfig(
        engine=BacktestEngineConfig(
            strategies=[strategy],
            catalogs=[DataCatalogConfig(path=catalog_path)],  # serves the warm-up history
            logging=LoggingConfig(log_level="WARNING"),
        ),
        venues=[
            BacktestVenueConfig(
                name="BYBIT",
                oms_type="NETTING",
                account_type="MARGIN",
                starting_balances=["100000 USDT"],
                default_leverage=10.0,
                modules=[funding],  # perpetual funding from the catalog's rates
            )
        ],
        data=[
            BacktestDataConfig(
                catalog_path=catalog_path,
                data_cls="nautilus_trader.model.data:Bar",
                instrument_id=INSTRUMENT_ID,
                bar_spec="1-HOUR-LAST",
                start_time=start,
                end_time=end,
            )
        ],
        dispose_on_completion=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", default="var/catalog")
    parser.add_argument("--model", default="var/models/default")
    parser.add_argument("--start")
    parser.add_argument("--end")
    args = parser.parse_args()
    node = BacktestNode(configs=[build_run_config(args.catalog, args.model, args.start, args.end)])
    for result in node.run():
        print(result)


if __name__ == "__main__":
    main()
