"""The Nautilus strategy itself: ``ScoreMatchingStrategy`` and its config, its diagnostics, model
loading, its risk-state file and the position reconciliation check.

Drop it into any Nautilus setup by import path: ``strategies.score_matching:ScoreMatchingStrategy``
with ``strategies.score_matching:ScoreMatchingConfig``.
Running it (backtest engine, reports, live node) lives in :mod:`runtime`; the decision rules in
:mod:`policy`.
"""
