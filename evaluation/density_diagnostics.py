"""Does the in-distribution filter help? Flag shares and returns inside vs outside flags.

Definition of "filter A beats filter B" (fixed before looking at results): on the pooled
out-of-sample bars, the strategy's net Sharpe with A exceeds that with B and the 95 % paired
block-bootstrap interval of the difference excludes 0. The diagnostics behind it: a useful
filter flags bars where the *unfiltered* strategy loses (lower mean return on the next bar in
flagged bars) and where the market is riskier (larger |h-bar forward return|).
"""

from __future__ import annotations

import numpy as np


def flag_diagnostics(
    in_distribution: np.ndarray, next_return: np.ndarray, forward_abs: np.ndarray
) -> dict:
    """Share flagged, unfiltered strategy return and |forward return| inside vs outside flags.

    All arrays are per decision bar t: the filter's verdict at t, the unfiltered strategy's net
    return over bar t+1 (the bar its decision at t trades), |log c_{t+h} / c_t|.
    """
    familiar = np.asarray(in_distribution, dtype=bool)
    flagged = ~familiar
    r = np.asarray(next_return, dtype=np.float64)
    fwd = np.asarray(forward_abs, dtype=np.float64)
    known = np.isfinite(fwd)

    def mean(values: np.ndarray, where: np.ndarray) -> float:
        return float(values[where].mean()) if where.any() else float("nan")

    outside = mean(fwd, flagged & known)
    inside = mean(fwd, familiar & known)
    return {
        "ood_share": float(flagged.mean()) if len(flagged) else float("nan"),
        "flagged_bars": int(flagged.sum()),
        "return_bp_flagged": 1e4 * mean(r, flagged),
        "return_bp_familiar": 1e4 * mean(r, familiar),
        "forward_abs_flagged": outside,
        "forward_abs_familiar": inside,
        "forward_abs_ratio": outside / inside if inside and inside == inside else float("nan"),
    }


def beats(difference: dict) -> bool:
    """The rule above: the Sharpe difference's 95 % interval lies above 0."""
    return bool(difference["low"] > 0.0)
