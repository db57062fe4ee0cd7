"""The policy's settings and their defaults: the one place a default is written.

``ScoreMatchingConfig`` (the Nautilus strategy's config), the run configuration's ``strategy:``
section and the walk-forward evaluation all take these fields by the same names, so the policy
evaluated is the policy traded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from field_rules import FRACTION_BELOW_ONE
from field_rules import NON_NEGATIVE
from field_rules import OPEN_FRACTION
from field_rules import POSITIVE
from field_rules import Choice
from field_rules import Flag
from field_rules import Integer
from field_rules import Nullable
from field_rules import Number
from field_rules import check_fields
from field_rules import setting
from policy.costs import Costs
from policy.risk import RiskLimits
from policy.sizing import SizingRules

# How the density filter's threshold is set (scoremodel.density_rule, which spells the same
# words and the same default): ``percentile``, the density_percentile of training
# log-densities; ``reliability``, the log-density below which the forecaster's validated skill
# degrades (none found: flags nothing; a model saved without that measurement keeps the
# percentile rule).
DENSITY_RULES: tuple[str, ...] = ("percentile", "reliability")


@dataclass(frozen=True)
class PolicySettings:
    """Filters, sizing and risk rules of the per-bar decision (see :mod:`policy.decision`).

    Each field carries the rule its value must satisfy (:mod:`field_rules`); the run
    configuration checks a file's ``strategy:`` values by the same rules."""

    # filters
    density_percentile: float = setting(5.0, Number(0, 100, high_open=True))  # percentile rule
    density_rule: str = setting("reliability", Choice(DENSITY_RULES))
    # score and forecast modes: the percentile of |signal| among training states; edge mode:
    # the probability that the trade clears its round-trip cost, P(r > c) long, P(r < -c) short
    min_confidence: float = setting(0.6, FRACTION_BELOW_ONE)
    consistency_bars: int = setting(3, Integer(1))  # the direction must hold this many bars
    hold_when_blocked: bool = setting(False, Flag())  # keep the position on weak signals
    # sizing
    target_annual_vol: float = setting(0.30, POSITIVE)
    max_leverage: float = setting(2.0, POSITIVE)
    max_notional: float | None = setting(None, Nullable(POSITIVE))  # quote currency
    no_trade_band: float = setting(0.05, FRACTION_BELOW_ONE)  # fraction of equity
    # forecast mode: trade only an edge that beats its costs (policy.edge)
    edge_margin: float = setting(0.25, NON_NEGATIVE)  # the edge must beat the cost by 25 %
    kelly_fraction: float = setting(0.25, Number(0, 1, low_open=True))  # of the Kelly leverage
    slippage: float = setting(0.0001, Number(0, 0.05))  # per side, added to the venue's fee
    # risk
    max_drawdown: float = setting(0.20, OPEN_FRACTION)
    reduce_drawdown: float = setting(0.10, OPEN_FRACTION)  # the ladder starts here
    daily_loss_limit: float = setting(0.05, OPEN_FRACTION)
    resume_after_halt: bool = setting(False, Flag())
    halt_cooldown_hours: float = setting(24.0, NON_NEGATIVE)

    def __post_init__(self) -> None:
        check_fields(self)
        _ = self.sizing, self.limits  # the rules across fields (policy.risk, policy.sizing)

    @cached_property
    def sizing(self) -> SizingRules:
        return SizingRules(
            target_annual_vol=self.target_annual_vol,
            max_leverage=self.max_leverage,
            max_notional=self.max_notional,
            no_trade_band=self.no_trade_band,
        )

    @cached_property
    def limits(self) -> RiskLimits:
        return RiskLimits(
            max_drawdown=self.max_drawdown,
            reduce_drawdown=self.reduce_drawdown,
            daily_loss_limit=self.daily_loss_limit,
            resume_after_halt=self.resume_after_halt,
            halt_cooldown_hours=self.halt_cooldown_hours,
        )

    @classmethod
    def from_fields(cls, source: Mapping[str, Any] | object) -> PolicySettings:
        """The settings named in ``source`` (a mapping or an object such as a strategy config);
        fields it lacks keep their defaults, other names in it are ignored."""
        get = source.get if isinstance(source, Mapping) else lambda k, d: getattr(source, k, d)
        missing = object()
        values = {
            f.name: value
            for f in dataclasses.fields(cls)
            if (value := get(f.name, missing)) is not missing
        }
        return cls(**values)

    def costs(self, fee: float) -> Costs:
        """The costs of a trade at the venue's ``fee`` plus this policy's slippage estimate."""
        return Costs(fee=fee, slippage=self.slippage)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULT_POLICY = PolicySettings()

#: Settings that act in some signal modes only (the others act in every mode).
ACTS_IN: dict[str, tuple[str, ...]] = {
    "consistency_bars": ("score", "forecast"),  # edge mode holds by its horizon (policy.edge)
    "hold_when_blocked": ("score", "forecast"),
    "edge_margin": ("edge",),
    "kelly_fraction": ("edge",),
    "slippage": ("edge",),  # the cost the edge must beat (the backtest's fills slip anyway)
}
#: Settings that were renamed: the old name, and what to write instead.
RENAMED = {
    "min_edge_probability": "min_confidence (in edge mode the probability that the trade "
    "clears its round-trip cost)",
}


def inactive_settings(settings: Mapping[str, Any] | object, mode: str) -> list[str]:
    """The settings given a value other than their default that do nothing in ``mode``: a
    configuration must not look as if they did."""
    get = settings.get if isinstance(settings, Mapping) else lambda k, d: getattr(settings, k, d)
    return [
        name
        for name, modes in ACTS_IN.items()
        if mode not in modes and get(name, None) not in (None, getattr(DEFAULT_POLICY, name))
    ]
