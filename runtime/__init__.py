"""Running the strategy: the run configuration, the backtest engine and its reports, the live
node with its Bybit client factories and sandbox, and the embedded default (a synthetic catalog
and a model made on first use, at their own paths only)."""
