"""Fault handling of the real Nautilus Bybit clients against the emulator."""

from __future__ import annotations

from collections import Counter

import pytest
from nautilus_trader.adapters.bybit.factories import BybitLiveExecClientFactory
from nautilus_trader.model.identifiers import InstrumentId

from runtime.bybit_clients import BybitEndpointsDataClientFactory
from tests.bybit_emulator import EmulatorConfig
from tests.bybit_emulator import EmulatorServer
from tests.bybit_emulator.harness import NodeHarness
from tests.bybit_emulator.harness import RecorderConfig
from tests.bybit_emulator.harness import RecorderStrategy
from tests.bybit_emulator.harness import wait_for_bar_headroom
from tests.bybit_emulator.nautilus_clients import emulator_data_config
from tests.bybit_emulator.nautilus_clients import emulator_exec_config
from tests.live_support import streams_ready

BTC = InstrumentId.from_str("BTCUSDT-LINEAR.BYBIT")


@pytest.fixture
def emu():
    wait_for_bar_headroom()
    server = EmulatorServer(EmulatorConfig(history_bars=300)).start()
    yield server
    server.stop()


def make_node(emu: EmulatorServer, strategy: RecorderStrategy, **kwargs) -> NodeHarness:
    data_kwargs = kwargs.pop("data_kwargs", {})
    return NodeHarness(
        data_clients={"BYBIT": emulator_data_config(emu, **data_kwargs)},
        exec_clients={"BYBIT": emulator_exec_config(emu, **kwargs.pop("exec_kwargs", {}))},
        data_factories={"BYBIT": BybitEndpointsDataClientFactory},
        exec_factories={"BYBIT": BybitLiveExecClientFactory},
        strategies=[strategy],
        **kwargs,
    )


def count(strategy: RecorderStrategy, name: str) -> int:
    return strategy.event_names().count(name)


@pytest.mark.timeout(60)
def test_websocket_drop_reconnects_without_duplicate_orders(emu):
    strategy = RecorderStrategy(
        RecorderConfig(history_minutes=10, order_on_bars=(1, 2), order_sides=("BUY", "SELL"))
    )
    harness = make_node(emu, strategy)
    try:
        harness.start()
        assert harness.wait_until(
            lambda: harness.node.trader.is_running and streams_ready(emu), timeout=30
        )
        emu.advance(1, "BTCUSDT")
        assert harness.wait_until(lambda: count(strategy, "OrderFilled") == 1, timeout=10)

        accepted_before = emu.ws_accepted()
        assert emu.drop_websockets(refuse_for_s=1.0) == 3  # server closes public/private/trade
        assert emu.ws_connections() == 0
        harness.sleep(1.2)
        assert harness.wait_until(lambda: streams_ready(emu), timeout=20), emu.ws_sessions()
        assert emu.ws_accepted() >= accepted_before + 3
        assert harness.node.trader.is_running

        emu.advance(1, "BTCUSDT")
        assert harness.wait_until(lambda: count(strategy, "OrderFilled") == 2, timeout=10)
        harness.sleep(0.3)  # anything duplicated would arrive now

        assert emu.order_submissions() == 2
        assert len(emu.executions()) == 2
        assert len(harness.node.cache.orders()) == 2
        assert count(strategy, "OrderFilled") == 2
        stamps = [b.ts_event for b in strategy.live]
        assert len(stamps) == 2 and stamps == sorted(set(stamps))
        assert emu.position("BTCUSDT")["side"] == ""
        assert harness.node.cache.positions_open(instrument_id=BTC) == []
    finally:
        harness.stop()
    assert emu.unknown_paths() == []


@pytest.mark.timeout(60)
def test_order_reject_is_reported_and_node_carries_on(emu):
    strategy = RecorderStrategy(
        RecorderConfig(history_minutes=10, order_on_bars=(1, 2), order_sides=("BUY", "BUY"))
    )
    harness = make_node(emu, strategy)
    try:
        harness.start()
        assert harness.wait_until(
            lambda: harness.node.trader.is_running and streams_ready(emu), timeout=30
        )
        emu.reject_next_order(ret_code=110007, ret_msg="ab not enough for new order")
        emu.advance(1, "BTCUSDT")
        assert harness.wait_until(lambda: count(strategy, "OrderRejected") == 1, timeout=10)
        rejected = next(e for e in strategy.events if type(e).__name__ == "OrderRejected")
        assert "ab not enough for new order" in rejected.reason

        emu.advance(1, "BTCUSDT")
        assert harness.wait_until(lambda: count(strategy, "OrderFilled") == 1, timeout=10)
        assert harness.node.trader.is_running
        assert emu.order_submissions() == 2
        assert emu.position("BTCUSDT")["size"] == "0.010"
        assert len(harness.node.cache.positions_open(instrument_id=BTC)) == 1
    finally:
        harness.stop()


@pytest.mark.timeout(60)
def test_bad_credentials_fail_clearly_without_retry_storm(emu):
    strategy = RecorderStrategy(RecorderConfig(history_minutes=10, order_on_bars=()))
    harness = make_node(
        emu,
        strategy,
        data_kwargs={"api_secret": "wrong-secret"},
        exec_kwargs={"api_secret": "wrong-secret"},
        timeout_connection=3.0,
    )
    try:
        harness.start()
        # the exec client fails on its first signed call, the node stops waiting after 3 s
        harness.sleep(4.0)
        node = harness.node
        assert not node.kernel.exec_engine.check_connected()
        assert node.kernel.data_engine.check_connected()  # public market data needs no keys
        assert not node.trader.is_running
        harness.sleep(1.0)
    finally:
        harness.stop()

    calls = Counter((r.path, r.ret_code) for r in emu.requests())
    signed = {p: n for (p, code), n in calls.items() if code == 10004}
    # one fee-rate lookup per instrument provider load (falls back to default fees) and one
    # wallet-balance call, then the exec client gives up: no retries on a signature error
    assert signed.get("/v5/account/wallet-balance") == 1
    assert signed.get("/v5/account/fee-rate", 0) <= 2
    assert sum(signed.values()) <= 3
    assert sum(calls.values()) <= 8
    failure = next(r for r in emu.requests() if r.ret_code == 10004)
    assert failure.api_key == emu.credentials.api_key
    assert emu.order_submissions() == 0
    assert not any(m.get("op") == "auth" for m in emu.ws_received("private"))
