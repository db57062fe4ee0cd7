"""Engine-free settings of the live tests, shared by both engines' live tests (tests/live_support.py
imports NautilusTrader 1.231; tests/test_live_v2.py runs on 2.0)."""

MINUTE_BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"
MINUTE_NS = 60_000_000_000
#: Strategy settings that let the quickly trained model trade on (almost) every bar: the live
#: tests are about the plumbing, not the model.
PERMISSIVE = {
    "signal_mode": "score",
    "min_confidence": 0.0,
    "consistency_bars": 1,
    "density_percentile": 0.0,
    "no_trade_band": 0.0,
    "target_annual_vol": 0.5,
    "history_page_bars": 25,  # the warm-up bars arrive in pages
}
