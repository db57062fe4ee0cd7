"""Drift monitors: is the model in use still describing the market it trades?

Three rolling statistics over the last ``window`` bars, checked every ``check_every`` bars:

- **PIT calibration** of the forecaster: u_t = Phi((r_t - mu) / s), the predictive N(mu, s^2)
  made h bars before t evaluated at the realised h-bar log return r_t. Calibrated forecasts give
  uniform u; the Kolmogorov-Smirnov distance D = sup |F_n(u) - u| is compared with its
  asymptotic critical value at level alpha, c = sqrt(-ln(alpha / 2) / 2) / sqrt(n / h): the
  h-bar returns of neighbouring bars overlap, so n PIT values carry about n / h independent
  ones (read it as a trigger, not an exact test);
- **density flags**: the share of bars the density filter calls unfamiliar, against
  ``max_flagged`` (FreqAI's guard on its dissimilarity index is 30 %);
- **realised against predicted volatility**: mean(r^2) / mean(mu^2 + s^2), breached outside
  [1 / vol_ratio, vol_ratio].

A breach is reported when a statistic crosses its threshold (named with its value and the
threshold), not again at every check while it stays beyond it; it is reported anew once the
statistic has come back within. Without a forecaster (score and forecast modes) only the
density share is monitored.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np

_SQRT2 = math.sqrt(2.0)
_NONE: list[str] = []  # no breach (returned on most bars; never modified)


@dataclass(frozen=True)
class DriftThresholds:
    """When a drift statistic counts as a breach."""

    window: int = 500  # bars the statistics cover
    check_every: int = 250  # bars between two checks (~70 us each: kept off the p99)
    ks_alpha: float = 0.01  # level of the PIT KS critical value
    max_flagged: float = 0.30  # share of bars the density filter flags
    vol_ratio: float = 2.0  # realised / predicted variance outside [1/x, x]


def ks_uniform(u: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance of ``u`` from the uniform distribution on [0, 1]."""
    u = np.sort(np.asarray(u, dtype=np.float64))
    n = len(u)
    steps = np.arange(1, n + 1) / n
    return float(max(np.max(steps - u), np.max(u - (steps - 1.0 / n))))


def ks_critical(n: float, alpha: float) -> float:
    """Asymptotic critical value of the one-sample KS distance at level ``alpha`` for ``n``
    independent values."""
    return math.sqrt(-math.log(alpha / 2.0) / 2.0) / math.sqrt(n)


class DriftMonitor:
    """Per bar: :meth:`update`; every ``check_every`` bars it returns the breaches found.

    The per-bar part writes Python lists and typed arrays (a numpy scalar write costs more
    than the arithmetic); a check reads the arrays in numpy without copying them."""

    def __init__(self, thresholds: DriftThresholds, horizon: int) -> None:
        self.thresholds = thresholds
        self.horizon = horizon
        n = thresholds.window
        nan = math.nan
        # the forecasts in flight, one slot per bar of the horizon: mu, s, log close
        self._mu, self._s, self._then = [nan] * horizon, [nan] * horizon, [nan] * horizon
        self._pit = array("d", [nan] * n)  # u of the forecast scored at each of the last n bars
        self._flagged = array("d", [0.0] * n)
        self._realised = array("d", [nan] * n)  # r^2
        self._predicted = array("d", [nan] * n)  # mu^2 + s^2
        self._bars = 0
        self._breached: set[str] = set()  # statistics beyond their threshold at the last check
        self.last: dict[str, float] = {}

    def reset(self) -> None:
        """Forget the forecasts in flight (after a gap their horizon no longer lines up)."""
        self._s = [math.nan] * self.horizon

    def update(self, log_close: float, mean: float, std: float, familiar: bool) -> list[str]:
        """Record one bar's forecast (NaN: none) and density flag; score the forecast made
        ``horizon`` bars ago against this bar. Returns the breaches at a check, else []."""
        slot = self._bars % self.horizon
        row = self._bars % self.thresholds.window
        s = self._s[slot]
        if s > 0.0:  # NaN compares False: no forecast h bars ago
            mu = self._mu[slot]
            realised = log_close - self._then[slot]
            self._pit[row] = 0.5 * (1.0 + math.erf((realised - mu) / (s * _SQRT2)))
            self._realised[row] = realised * realised
            self._predicted[row] = mu * mu + s * s
        else:
            self._pit[row] = self._realised[row] = self._predicted[row] = math.nan
        self._flagged[row] = 0.0 if familiar else 1.0
        self._mu[slot], self._s[slot], self._then[slot] = mean, std, log_close
        self._bars += 1
        if self._bars < self.thresholds.window or self._bars % self.thresholds.check_every:
            return _NONE
        return self.check()

    def check(self) -> list[str]:
        """The statistics over the window (kept in :attr:`last`); the statistics that crossed
        their threshold since the previous check, in words."""
        t = self.thresholds
        seen = min(self._bars, t.window)
        flagged = float(np.frombuffer(self._flagged)[:seen].mean())
        self.last = {"bars": float(seen), "flagged_share": flagged}
        beyond = {}
        if flagged > t.max_flagged:
            beyond["flagged_share"] = (
                f"the density filter flagged {flagged:.0%} of the last {seen} bars "
                f"(threshold {t.max_flagged:.0%})"
            )
        pit = np.frombuffer(self._pit)
        pit = pit[np.isfinite(pit)]
        if len(pit) >= 30 * self.horizon:
            distance = ks_uniform(pit)
            critical = ks_critical(len(pit) / self.horizon, t.ks_alpha)
            self.last |= {"pit_ks": distance, "pit_ks_critical": critical}
            if distance > critical:
                beyond["pit_ks"] = (
                    f"forecast PIT KS {distance:.3f} above its {t.ks_alpha:g} critical value "
                    f"{critical:.3f} over {len(pit)} bars"
                )
            realised, predicted = np.frombuffer(self._realised), np.frombuffer(self._predicted)
            scored = np.isfinite(realised)
            ratio = float(realised[scored].mean() / predicted[scored].mean())
            self.last["vol_ratio"] = ratio
            if not 1.0 / t.vol_ratio <= ratio <= t.vol_ratio:
                beyond["vol_ratio"] = (
                    f"realised/predicted variance {ratio:.2f} outside "
                    f"[{1.0 / t.vol_ratio:.2f}, {t.vol_ratio:.2f}]"
                )
        crossed = [text for name, text in beyond.items() if name not in self._breached]
        self._breached = set(beyond)
        return crossed
