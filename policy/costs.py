"""What a trade costs, in units of the traded notional (a fraction of price)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Costs:
    """Fee and slippage per side; the venue's fee, the policy's slippage estimate."""

    fee: float  # per side, e.g. Bybit's taker fee 0.00055
    slippage: float  # per side, an estimate (the backtest fills one tick off the open)

    def __post_init__(self) -> None:
        if self.fee < 0.0 or self.slippage < 0.0:
            raise ValueError(f"fee and slippage must be >= 0, got {self.fee}, {self.slippage}")

    @property
    def per_side(self) -> float:
        """Cost of entering or leaving a position: c/2."""
        return self.fee + self.slippage

    @property
    def round_trip(self) -> float:
        """Cost of opening and later closing a position: c = 2 (fee + slippage)."""
        return 2.0 * self.per_side
