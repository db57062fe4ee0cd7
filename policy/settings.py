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

from policy.costs import Costs
from policy.risk import RiskLimits
from policy.sizing import SizingRules


@dataclass(frozen=True)
class PolicySettings:
    """Filters, sizing and risk rules of the per-bar decision (see :mod:`policy.decision`)."""

    # filters
    density_percentile: float = 5.0  # states below this percentile of training log-density
    min_confidence: float = 0.6  # calibrated percentile of |signal| among training states
    consistency_bars: int = 3  # the direction must hold this many bars
    hold_when_blocked: bool = False  # keep the position when only confidence/consistency block
    # sizing
    target_annual_vol: float = 0.30
    max_leverage: float = 2.0
    max_notional: float | None = None  # quote currency; None: no cap
    no_trade_band: float = 0.05  # fraction of equity
    # forecast mode: trade only an edge that beats its costs (policy.edge)
    edge_margin: float = 0.25  # the predicted edge must beat the round-trip cost by 25 %
    min_edge_probability: float = 0.5  # P(r > c) for a long, P(r < -c) for a short
    kelly_fraction: float = 0.25  # of the Kelly leverage (|E r| - c) / Var r
    slippage: float = 0.0001  # per side, estimate added to the venue's fee
    # risk
    max_drawdown: float = 0.20
    reduce_drawdown: float = 0.10
    daily_loss_limit: float = 0.05
    resume_after_halt: bool = False
    halt_cooldown_hours: float = 24.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.density_percentile < 100.0:
            raise ValueError(
                f"density_percentile must be in [0, 100), got {self.density_percentile}"
            )
        if not 0.0 <= self.min_confidence < 1.0:
            raise ValueError(f"min_confidence must be in [0, 1), got {self.min_confidence}")
        if self.consistency_bars < 1:
            raise ValueError(f"consistency_bars must be >= 1, got {self.consistency_bars}")
        if self.edge_margin < 0.0 or self.slippage < 0.0:
            raise ValueError("edge_margin and slippage must be >= 0")
        if not 0.0 <= self.min_edge_probability < 1.0:
            raise ValueError(
                f"min_edge_probability must be in [0, 1), got {self.min_edge_probability}"
            )
        if not 0.0 < self.kelly_fraction <= 1.0:
            raise ValueError(f"kelly_fraction must be in (0, 1], got {self.kelly_fraction}")
        _ = self.sizing, self.limits  # validate those rules now

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
