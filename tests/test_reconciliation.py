"""strategies.reconciliation without a node: what counts as a disagreement, and when the
strategy halts (confirmed over several checks, never on one caught mid-fill)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace

import pytest

from strategies.reconciliation import CONFIRMATIONS
from strategies.reconciliation import Books
from strategies.reconciliation import Discrepancy
from strategies.reconciliation import VenueReconciler
from strategies.reconciliation import compare

LOT = Decimal("0.001")
SECOND_NS = 1_000_000_000


class FakePolicy:
    def __init__(self) -> None:
        self.risk = SimpleNamespace(halted=False, halt_reason="")

    def halt(self, ts_ns: int, reason: str) -> None:
        self.risk = SimpleNamespace(halted=True, halt_reason=reason, halted_at_ns=ts_ns)


class FakeStrategy:
    """What VenueReconciler.observe uses of a strategy."""

    def __init__(self) -> None:
        self.now_ns = 1_000 * SECOND_NS
        self.clock = SimpleNamespace(timestamp_ns=lambda: self.now_ns)
        self.warnings: list[str] = []
        self.log = SimpleNamespace(warning=self.warnings.append)
        self.policy = FakePolicy()
        self.instrument = SimpleNamespace(size_increment="0.001")


@pytest.fixture
def checked():
    """A reconciler checking every second for a fake strategy."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    strategy = FakeStrategy()
    yield VenueReconciler(strategy, venue_books=None, interval_secs=1.0), strategy
    asyncio.set_event_loop(None)
    loop.close()


def test_compare_tolerates_one_lot_and_a_cent():
    ours = Books(Decimal("0.010"), Decimal("10000"))
    assert compare(ours, Books(Decimal("0.011"), Decimal("10000.01")), LOT) == []
    assert compare(ours, Books(Decimal("0.012"), Decimal("10000")), LOT) == [
        Discrepancy("position", Decimal("0.010"), Decimal("0.012"))
    ]
    assert compare(ours, Books(Decimal("-0.010"), Decimal("9990")), LOT) == [
        Discrepancy("position", Decimal("0.010"), Decimal("-0.010")),
        Discrepancy("balance", Decimal("10000"), Decimal("9990")),
    ]
    assert compare(Books(Decimal(0), None), Books(Decimal(0), Decimal("5")), LOT) == []


def test_compare_finds_open_orders_the_venue_has_closed():
    ours = Books(Decimal(0), None, frozenset({"O-1", "O-2"}))
    venue = Books(Decimal(0), None, frozenset({"O-2", "O-3"}))  # O-3: not the strategy's
    [stuck] = compare(ours, venue, LOT)
    assert stuck.describe() == "open order: strategy O-1, venue closed"
    assert compare(Books(Decimal(0), None), venue, LOT) == []


def test_a_lasting_disagreement_warns_once_and_halts(checked):
    reconciler, strategy = checked
    ours, venue = Books(Decimal(0), Decimal("10000")), Books(Decimal("0.020"), Decimal("10000"))
    for _ in range(CONFIRMATIONS - 1):
        reconciler.observe(ours, venue)
        strategy.now_ns += SECOND_NS
    assert not strategy.policy.risk.halted and strategy.warnings == []
    reconciler.observe(ours, venue)
    assert strategy.policy.risk.halted
    assert strategy.policy.risk.halt_reason == "reconciliation: position: strategy 0, venue 0.020"
    [warning] = strategy.warnings
    assert "disagree with the venue" in warning and "run_live.py resume" in warning
    strategy.now_ns += SECOND_NS
    reconciler.observe(ours, venue)
    assert len(strategy.warnings) == 1  # the same disagreement is not repeated


def test_a_disagreement_caught_mid_fill_does_not_halt(checked):
    reconciler, strategy = checked
    ours, venue = Books(Decimal(0), Decimal("10000")), Books(Decimal("0.020"), Decimal("10000"))
    for _ in range(CONFIRMATIONS + 2):  # checks bunched within one interval: not lasting
        reconciler.observe(ours, venue)
        strategy.now_ns += SECOND_NS // 10
    assert not strategy.policy.risk.halted
    for _ in range(CONFIRMATIONS - 1):  # then the push arrives, and again a fill is in flight
        strategy.now_ns += SECOND_NS
        reconciler.observe(venue, venue)
        assert reconciler.streak == 0
        strategy.now_ns += SECOND_NS
        reconciler.observe(ours, venue)
    assert not strategy.policy.risk.halted and strategy.warnings == []
    assert reconciler.checks == CONFIRMATIONS + 2 + 2 * (CONFIRMATIONS - 1)


def test_transients_on_successive_orders_do_not_add_up_to_a_halt(checked):
    """Each check catches another order mid-fill: the strategy's side differs every time."""
    reconciler, strategy = checked
    for step in range(4 * CONFIRMATIONS):
        ours = Books(Decimal(step) / 1000, Decimal(10000 - step), frozenset({f"O-{step}"}))
        venue = Books(Decimal(step + 1) / 1000 + LOT, Decimal(10000 - step - 1))
        assert reconciler.observe(ours, venue)  # always some disagreement...
        strategy.now_ns += SECOND_NS
    assert reconciler.streak == 1 and not strategy.policy.risk.halted  # ...never the same one


def test_a_lost_fill_halts_while_the_balance_keeps_moving(checked):
    """Every execution push lost, wallet pushes arrive: the position is stale, the balance is
    not, and the position disagreement alone confirms."""
    reconciler, strategy = checked
    for step in range(CONFIRMATIONS):
        balance = Decimal(10000 - step)
        reconciler.observe(
            Books(Decimal(0), balance), Books(Decimal("0.020") * (step + 1), balance)
        )
        strategy.now_ns += SECOND_NS
    assert strategy.policy.risk.halted
    assert strategy.policy.risk.halt_reason == "reconciliation: position: strategy 0, venue 0.060"


def test_a_stuck_order_halts_while_other_orders_come_and_go(checked):
    reconciler, strategy = checked
    for step in range(CONFIRMATIONS):
        ours = Books(Decimal(0), None, frozenset({"O-stuck", f"O-{step}"}))
        reconciler.observe(ours, Books(Decimal(0), None))
        strategy.now_ns += SECOND_NS
    assert (
        strategy.policy.risk.halt_reason
        == "reconciliation: open order: strategy O-stuck, venue closed"
    )
