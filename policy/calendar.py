"""Time units of the policy: crypto trades 24/7, so a year is 365.25 days of bars."""

from __future__ import annotations

NANOS_PER_HOUR = 3_600_000_000_000
NANOS_PER_DAY = 24 * NANOS_PER_HOUR
SECONDS_PER_YEAR = 365.25 * 24 * 3600


def bars_per_year(bar_seconds: float) -> float:
    """Bars in a year of continuous trading: the annualisation factor for this bar length."""
    return SECONDS_PER_YEAR / bar_seconds
