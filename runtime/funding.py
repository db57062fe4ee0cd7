"""Perpetual funding in the backtest engine: a Nautilus ``SimulationModule``.

Nautilus 1.231's backtest engine charges no funding. :class:`FundingModule` uses the mechanism
of Nautilus's ``FXRolloverInterestModule``: the engine calls ``process(ts_now)`` after every
data timestamp, and the module adjusts the venue account with ``exchange.adjust_account``.
At each funding time it charges the open position

    payment = signed position x mark price x rate

where the mark price is the close of the last bar at or before the funding time: a long pays
a positive rate, a short receives it, and a negative rate reverses both. Nothing is charged
while flat. Every charge is recorded (:attr:`FundingModule.payments`) for the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.common.component import Logger
from nautilus_trader.core.data import Data
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Money


@dataclass(frozen=True)
class FundingPayment:
    """One funding charge: positive ``paid`` left the account, negative was received."""

    ts_ns: int
    rate: float
    position: float
    mark: float
    paid: float


class FundingModule(SimulationModule):
    """Charges funding on the open position of one instrument at each funding time.

    ``rates``: rate per interval indexed by UTC funding time; ``marks``: bar closes indexed
    by bar close time (the mark price is the last close at or before a funding time).
    """

    def __init__(self, instrument_id: InstrumentId, rates: pd.Series, marks: pd.Series) -> None:
        super().__init__(SimulationModuleConfig())
        self._instrument_id = instrument_id
        self._times = pd.DatetimeIndex(rates.index).asi8.copy()
        self._rates = rates.to_numpy(dtype=float)
        self._mark_times = pd.DatetimeIndex(marks.index).asi8.copy()
        self._marks = marks.to_numpy(dtype=float)
        self._next = 0
        self.payments: list[FundingPayment] = []

    def pre_process(self, data: Data) -> None:
        """Nothing to do per data point: rates and marks are known up front."""

    def process(self, ts_now: int) -> None:
        """Charge every funding time up to ``ts_now`` not charged yet."""
        while self._next < len(self._times) and self._times[self._next] <= ts_now:
            self._charge(int(self._times[self._next]), float(self._rates[self._next]))
            self._next += 1

    def _charge(self, ts_ns: int, rate: float) -> None:
        position = sum(
            p.signed_qty
            for p in self.exchange.cache.positions_open(instrument_id=self._instrument_id)
        )
        if position == 0.0:
            return
        at = int(np.searchsorted(self._mark_times, ts_ns, side="right")) - 1
        if at < 0:
            return  # no bar closed yet: no mark price
        mark = float(self._marks[at])
        paid = position * mark * rate
        instrument = self.exchange.instruments[self._instrument_id]
        currency = instrument.settlement_currency
        self.exchange.adjust_account(Money(-paid, currency))
        self.payments.append(FundingPayment(ts_ns, rate, position, mark, paid))

    @property
    def funding_times(self) -> int:
        """Funding times in the window (charged or not)."""
        return len(self._times)

    @property
    def funding_paid(self) -> float:
        """Total funding paid (positive) or received (negative)."""
        return float(sum(p.paid for p in self.payments))

    def log_diagnostics(self, logger: Logger) -> None:
        logger.info(f"funding: {len(self.payments)} charges, paid {self.funding_paid:,.2f}")

    def reset(self) -> None:
        self._next = 0
        self.payments = []
