"""Perpetual funding in the backtest engine: a Nautilus ``SimulationModule``.

Nautilus 1.231's backtest engine charges no funding. :class:`FundingModule` uses the mechanism
of Nautilus's ``FXRolloverInterestModule``: the engine calls ``process(ts_now)`` after every
data timestamp, and the module adjusts the venue account with ``exchange.adjust_account``.
At each funding time it charges the open position

    payment = signed position x mark price x rate

where the mark price is the close of the last bar at or before the funding time: a long pays
a positive rate, a short receives it, and a negative rate reverses both. Nothing is charged
while flat. Every charge is recorded (:attr:`FundingModule.payments`) for the report. The
rule (:func:`policy.costs.funding_payment`, :func:`policy.costs.funding_marks`) is the one
the evaluation's simulator charges.

In a user's own ``BacktestNode`` configuration the module is added by import path
(``BacktestVenueConfig.modules``): :class:`CatalogFundingModule` with a
:class:`FundingModuleConfig` reads the rates and the bar closes from the catalog itself
(``docs/examples/backtest_node.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.common.component import Logger
from nautilus_trader.core.data import Data
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Money

from catalogs.catalog import read_bars_frame
from catalogs.funding import read_funding
from policy.costs import funding_marks
from policy.costs import funding_payment


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

    def __init__(
        self,
        instrument_id: InstrumentId,
        rates: pd.Series,
        marks: pd.Series,
        config: SimulationModuleConfig | None = None,
    ) -> None:
        super().__init__(config or SimulationModuleConfig())
        self._instrument_id = instrument_id
        self._times = pd.DatetimeIndex(rates.index).asi8.copy()
        self._rates = rates.to_numpy(dtype=float)
        mark_times = pd.DatetimeIndex(marks.index).asi8
        self._marks = funding_marks(mark_times, marks.to_numpy(dtype=float), self._times)
        self._next = 0
        self.payments: list[FundingPayment] = []

    def pre_process(self, data: Data) -> None:
        """Nothing to do per data point: rates and marks are known up front."""

    def process(self, ts_now: int) -> None:
        """Charge every funding time up to ``ts_now`` not charged yet."""
        while self._next < len(self._times) and self._times[self._next] <= ts_now:
            i = self._next
            self._charge(int(self._times[i]), float(self._rates[i]), float(self._marks[i]))
            self._next += 1

    def _charge(self, ts_ns: int, rate: float, mark: float) -> None:
        position = sum(
            p.signed_qty
            for p in self.exchange.cache.positions_open(instrument_id=self._instrument_id)
        )
        if position == 0.0 or math.isnan(mark):  # flat, or no bar closed yet: no mark price
            return
        paid = funding_payment(position, mark, rate)
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


class FundingModuleConfig(SimulationModuleConfig, frozen=True):
    """Funding from a catalog, for a venue's ``modules`` in a ``BacktestRunConfig``.

    ``bar_type``: the bars whose closes are the mark prices; ``start``/``end`` (ISO times,
    optional) bound the funding times read, e.g. the backtest's window."""

    catalog_path: str
    instrument_id: str
    bar_type: str
    start: str | None = None
    end: str | None = None


class CatalogFundingModule(FundingModule):
    """:class:`FundingModule` built by import path from a :class:`FundingModuleConfig`: reads
    the instrument's funding rates and the bar closes from the catalog (no rates: no charges)."""

    def __init__(self, config: FundingModuleConfig) -> None:
        rates = read_funding(config.catalog_path, config.instrument_id, config.start, config.end)
        bars = read_bars_frame(config.catalog_path, config.bar_type, start=None, end=config.end)
        super().__init__(
            InstrumentId.from_str(config.instrument_id), rates, bars["close"], config=config
        )
