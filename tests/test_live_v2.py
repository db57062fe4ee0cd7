"""Live trading on NautilusTrader 2.0: ``run_live.py`` on 2.0 (runtime.live_v2, a LiveNode with
2.0's own Bybit adapter) against the loopback Bybit emulator (tests/bybit_emulator).

Runs only on 2.0, with ``--noconftest`` (``NAUTILUS=2 make test``): tests/conftest.py and
tests/live_support.py import 1.231's API, so the market helpers are small copies here, and the
1.231 venv trains the quick minute model (:func:`make_inputs`). Each node runs as the user runs
it: ``run_live.py`` in a subprocess (its 1.231 venv resolves the run configuration), stopped
with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from runtime.engines import ROOT
from runtime.engines import VENVS
from runtime.engines import engine_major
from runtime.engines import other_python
from tests.bybit_emulator import TEST_API_KEY
from tests.bybit_emulator import TEST_API_SECRET
from tests.bybit_emulator import EmulatorConfig
from tests.bybit_emulator import EmulatorServer
from tests.live_settings import MINUTE_BAR_TYPE
from tests.live_settings import MINUTE_NS
from tests.live_settings import PERMISSIVE

# importable on 1.231 too (its venv runs make_inputs); the tests run on 2.0 only
pytestmark = pytest.mark.skipif(
    engine_major() < 2, reason="NautilusTrader 2.0: NAUTILUS=2 make test"
)

HISTORY_BARS = 200  # closed bars the emulator holds when the node starts
KEY_VARS = (
    "BYBIT_DEMO_API_KEY",
    "BYBIT_DEMO_API_SECRET",
    "BYBIT_TESTNET_API_KEY",
    "BYBIT_TESTNET_API_SECRET",
    "BYBIT_API_KEY",
    "BYBIT_API_SECRET",
)


def make_inputs(directory: str) -> None:
    """On 1.231: the quick minute model of tests/conftest.py and the bars after its training
    data (bars.parquet), for a 2.0 process that cannot make them."""
    from catalogs.synthetic import generate_bars
    from scoremodel.pipeline import FitConfig
    from scoremodel.pipeline import fit_model
    from scoremodel.pipeline import save_model
    from tests.conftest import FAST_CONDITIONAL
    from tests.conftest import FAST_TRAINING
    from tests.conftest import MINUTE_LIVE_BARS
    from tests.conftest import MINUTE_TRAINING_BARS

    root = Path(directory)
    bars = generate_bars(MINUTE_TRAINING_BARS + MINUTE_LIVE_BARS, interval="1min", seed=11)
    config = FitConfig(train=FAST_TRAINING, conditional=FAST_CONDITIONAL, modes=("score",))
    model = fit_model(bars.iloc[:MINUTE_TRAINING_BARS], MINUTE_BAR_TYPE, config, progress=False)
    save_model(model, root / "model")
    bars.iloc[MINUTE_TRAINING_BARS:].to_parquet(root / "bars.parquet")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A directory with the minute model (model/) and the live market's bars (bars.parquet)."""
    if other_python() is None:
        pytest.skip(f"the 1.231 venv {VENVS[1]} is not set up; `NAUTILUS=2 make setup`")
    directory = tmp_path_factory.mktemp("live-v2")
    code = f"from tests.test_live_v2 import make_inputs; make_inputs({str(directory)!r})"
    done = subprocess.run(
        [str(other_python()), "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return directory


class Market:
    """The emulator holding closed history up to the wall-clock minute, and the next bars."""

    def __init__(self, bars: pd.DataFrame, **emulator: object) -> None:
        wait_for_minute_headroom(seconds=15.0)  # history must end where the forming bar opens
        wall_minute = time.time_ns() // MINUTE_NS * MINUTE_NS
        opens = bars.index.asi8 - MINUTE_NS
        opens = opens - opens[HISTORY_BARS - 1] + (wall_minute - MINUTE_NS)
        frame = bars.set_axis(pd.DatetimeIndex(opens, tz="UTC"))
        self.upcoming = frame.iloc[HISTORY_BARS:]
        self.emu = EmulatorServer(EmulatorConfig(history_bars=10, **emulator)).start()
        self.emu.load_bars("BTCUSDT", frame.iloc[:HISTORY_BARS])
        self.pushed = 0

    def push(self) -> None:
        """Close the forming bar with the next bar."""
        row = self.upcoming.iloc[self.pushed]
        self.pushed += 1
        self.emu.push_bar(
            "BTCUSDT", row.open, row.high, row.low, row.close, volume=round(row.volume, 3)
        )

    def position(self) -> float:
        position = self.emu.position("BTCUSDT")
        size = float(position["size"] or 0)
        return -size if position["side"] == "Sell" else size


def wait_for_minute_headroom(seconds: float) -> None:
    """Sleep into the next minute if fewer than ``seconds`` remain in this one."""
    left = 60.0 - time.time() % 60.0
    if left < seconds:
        time.sleep(left + 0.05)


@pytest.fixture
def market(inputs) -> Market:
    market = Market(pd.read_parquet(inputs / "bars.parquet"))
    yield market
    market.emu.stop()


def write_config(tmp_path: Path, inputs: Path, market: Market | None, **live: object) -> Path:
    """A run configuration file aimed at the emulator (fast timeouts, files under tmp_path)."""
    endpoints = (
        {
            "base_url_http": market.emu.base_url_http,
            "base_url_ws_public": market.emu.ws_public_base,
            "base_url_ws_private": market.emu.ws_private_url,
            "base_url_ws_trade": market.emu.ws_trade_url,
        }
        if market is not None
        else {}
    )
    settings = {
        **endpoints,
        "state_dir": str(tmp_path / "state"),
        "kill_switch_path": str(tmp_path / "KILL"),
        "kill_switch_poll_secs": 0.2,
        "timeout_connection": 10.0,
        "timeout_post_stop": 2.0,
        "log_level": "INFO",
        **live,
    }
    strategy = {
        "instrument_id": "BTCUSDT-LINEAR.BYBIT",
        "bar_type": MINUTE_BAR_TYPE,
        "model_path": str(inputs / "model"),
        **PERMISSIVE,
    }
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump({"strategy": strategy, "live": settings}))
    return path


def environment(mode: str | None = None) -> dict[str, str]:
    """This environment without Bybit keys; with the emulator's keys for ``mode``."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    if mode is not None:
        prefix = "BYBIT_" if mode == "mainnet" else f"BYBIT_{mode.upper()}_"
        env[f"{prefix}API_KEY"] = TEST_API_KEY
        env[f"{prefix}API_SECRET"] = TEST_API_SECRET
    return env


class Node:
    """``run_live.py`` on 2.0 in a subprocess, its output in a log file."""

    def __init__(self, config: Path, mode: str, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "run_live.py", "--mode", mode, "--config", str(config)],
            cwd=ROOT,
            env=environment(mode),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, (
                f"node exited while waiting for {what}:\n" + (self.output()[-4000:])
            )
            assert time.monotonic() < deadline, (
                f"no {what} in {timeout} s:\n{self.output()[-4000:]}"
            )
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM, then its exit status (it must exit by itself)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the node ignored SIGTERM:\n{self.output()[-4000:]}") from None


def read_state(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run_live.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in directory.rglob("*")
    }


# ----- a demo node: trades, kill switch, restart -------------------------------------------


def test_demo_node_trades_flattens_on_kill_and_restarts_halted(inputs, market, tmp_path):
    """On 2.0, against the emulator in demo mode: the warm-up history arrives, live bars are
    decided, market orders fill at the venue, the risk state file is written; the kill file
    flattens the venue position and halts (persisted); SIGTERM exits 0; a restart reads the
    halt from the state file and places no order."""
    config = write_config(tmp_path, inputs, market)
    state = tmp_path / "state" / "SCOREMATCH-001" / "demo" / "ScoreMatchingStrategy-000.risk.json"
    emu = market.emu

    node = Node(config, "demo", tmp_path / "first.log")
    try:
        node.wait_for(lambda: "warm-up history received" in node.output(), 60, "warm-up")
        for _ in range(30):  # until the strategy holds a position at the venue
            market.push()
            time.sleep(0.3)
            if market.position() != 0.0 and not any(
                o["orderStatus"] == "New" for o in emu.orders()
            ):
                break
        assert market.position() != 0.0, node.output()[-4000:]
        assert any(e["execType"] == "Trade" for e in emu.executions())
        saved = read_state(state)
        assert saved is not None and saved["high_water_mark"] > 0 and not saved["halted"]

        (tmp_path / "KILL").touch()
        node.wait_for(
            lambda: market.position() == 0.0 and (read_state(state) or {}).get("halted"),
            15,
            "flat and halted",
        )
        assert "kill switch" in read_state(state)["halt_reason"]
        # the closing fill has reached the node too (stopping before would close again)
        node.wait_for(lambda: "PositionClosed" in node.output(), 10, "the position closed")
        assert "kill switch file found" in node.output()
    finally:
        status = node.stop()
    assert status == 0, node.output()[-4000:]
    assert "Traceback" not in node.output()

    orders_before = len(emu.orders())
    restarted = Node(config, "demo", tmp_path / "second.log")
    try:
        restarted.wait_for(lambda: "warm-up history received" in restarted.output(), 60, "warm-up")
        assert f"restored risk state from {state}" in restarted.output()
        for _ in range(3):
            market.push()
            time.sleep(0.3)
        assert len(emu.orders()) == orders_before  # halted: no order
        assert read_state(state)["halted"]
        assert emu.unknown_paths() == []  # the emulator serves all that 2.0's adapter asks
    finally:
        assert restarted.stop() == 0, restarted.output()[-4000:]


def test_sigterm_with_an_order_in_flight_still_ends_flat(inputs, tmp_path):
    """SIGTERM right after the strategy sent an order whose fill the venue pushes 1.5 s later:
    the stop waits for it and closes the position it opened (on_stop alone would miss it)."""
    bars = pd.read_parquet(inputs / "bars.parquet")
    market = Market(bars, private_push_latency_ms=1500.0)
    try:
        config = write_config(tmp_path, inputs, market, timeout_post_stop=5.0)
        node = Node(config, "demo", tmp_path / "node.log")
        try:
            node.wait_for(lambda: "warm-up history received" in node.output(), 60, "warm-up")
            for _ in range(30):
                market.push()
                deadline = time.monotonic() + 0.5
                while market.emu.order_submissions() == 0 and time.monotonic() < deadline:
                    time.sleep(0.005)
                if market.emu.order_submissions():
                    break
            assert market.emu.order_submissions() == 1, node.output()[-4000:]
        finally:
            status = node.stop()  # at once: the order's fill is still on its way
        assert status == 0, node.output()[-4000:]
        assert market.position() == 0.0, node.output()[-4000:]
        assert market.emu.order_submissions() == 2  # the order, then one close
    finally:
        market.emu.stop()


def test_testnet_keeps_the_position_over_a_restart_and_claims_it(inputs, market, tmp_path):
    """Testnet (orders over the trade websocket) with ``close_positions_on_stop: false``: the
    position stays open at the venue over SIGTERM; the restarted node reconciles it and the
    strategy owns it: the kill switch then flattens it."""
    config = write_config(tmp_path, inputs, market)
    data = yaml.safe_load(config.read_text())
    data["strategy"]["close_positions_on_stop"] = False
    config.write_text(yaml.safe_dump(data))
    emu = market.emu

    node = Node(config, "testnet", tmp_path / "first.log")
    try:
        node.wait_for(lambda: "warm-up history received" in node.output(), 60, "warm-up")
        for _ in range(30):
            market.push()
            time.sleep(0.3)
            if market.position() != 0.0:
                break
        kept = market.position()
        assert kept != 0.0, node.output()[-4000:]
        node.wait_for(lambda: "PositionOpened" in node.output(), 10, "the position opened")
    finally:
        assert node.stop() == 0, node.output()[-4000:]
    assert any(m.get("op") == "order.create" for m in emu.ws_received("trade"))
    assert market.position() == kept  # not closed on stop

    restarted = Node(config, "testnet", tmp_path / "second.log")
    try:
        restarted.wait_for(lambda: "warm-up history received" in restarted.output(), 60, "warm-up")
        (tmp_path / "KILL").touch()
        restarted.wait_for(lambda: market.position() == 0.0, 15, "the kept position flattened")
        restarted.wait_for(lambda: "PositionClosed" in restarted.output(), 10, "position closed")
    finally:
        assert restarted.stop() == 0, restarted.output()[-4000:]


def test_sandbox_fills_on_paper_from_the_public_stream(inputs, market, tmp_path):
    """Sandbox: no key, Bybit's public data from the emulator, paper fills by 2.0's sandbox
    execution client (no order reaches the venue); SIGUSR1 arms the kill switch, which closes
    the paper position."""
    config = write_config(tmp_path, inputs, market)
    node = Node(config, "sandbox", tmp_path / "sandbox.log")
    try:
        node.wait_for(lambda: "warm-up history received" in node.output(), 60, "warm-up")
        for _ in range(30):
            market.push()
            time.sleep(0.3)
            if "OrderFilled" in node.output():
                break
        node.wait_for(lambda: "PositionOpened" in node.output(), 5, "a paper position")
        node.process.send_signal(signal.SIGUSR1)  # arms the kill switch file
        node.wait_for(lambda: (tmp_path / "KILL").exists(), 5, "the kill switch file")
        node.wait_for(lambda: "PositionClosed" in node.output(), 5, "the paper position closed")
    finally:
        assert node.stop() == 0, node.output()[-4000:]
    assert "kill switch file found" in node.output()
    assert market.emu.order_submissions() == 0
    assert not (tmp_path / "state").exists()  # the paper account's risk state is not kept


# ----- refusals: one line, exit status 2, nothing written --------------------------------------


def check_refused(done: subprocess.CompletedProcess, phrase: str, tmp_path: Path, before) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and phrase in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(tmp_path) == before


def test_mainnet_without_the_flag_is_refused_on_2_0(inputs, tmp_path):
    config = write_config(tmp_path, inputs, None)
    before = snapshot(tmp_path)
    done = cli("--mode", "mainnet", "--config", str(config), env=environment("mainnet"))
    check_refused(done, "refusing to trade real money on Bybit mainnet", tmp_path, before)


def test_sandbox_without_fees_is_refused_on_2_0(inputs, tmp_path):
    config = write_config(tmp_path, inputs, None, sandbox_taker_fee=None)
    before = snapshot(tmp_path)
    done = cli("--mode", "sandbox", "--config", str(config), env=environment())
    check_refused(done, "needs live.sandbox_maker_fee and live.sandbox_taker_fee", tmp_path, before)


def test_an_unreachable_venue_is_one_line(inputs, tmp_path):
    config = write_config(
        tmp_path,
        inputs,
        None,
        base_url_http="http://127.0.0.1:9",  # nothing listens on the discard port
        base_url_ws_public="ws://127.0.0.1:9/v5/public",
        timeout_connection=2.0,
    )
    before = snapshot(tmp_path)
    done = cli("--mode", "sandbox", "--config", str(config), env=environment())
    check_refused(done, "the Bybit data client did not connect within 2 s", tmp_path, before)


def test_a_wrong_key_is_one_line_before_connecting(inputs, market, tmp_path):
    config = write_config(tmp_path, inputs, market)
    before = snapshot(tmp_path)
    env = {**environment(), "BYBIT_DEMO_API_KEY": "wrong", "BYBIT_DEMO_API_SECRET": "wrong"}
    done = cli("--mode", "demo", "--config", str(config), env=env)
    check_refused(
        done, "checking the key in BYBIT_DEMO_API_KEY/BYBIT_DEMO_API_SECRET", tmp_path, before
    )
    assert "API key is invalid" in done.stderr
    assert market.emu.order_submissions() == 0


def test_kill_runs_on_1231_files_only(inputs, tmp_path):
    """``run_live.py kill`` on 2.0 arms the kill switch file (the 1.231 venv runs it)."""
    config = write_config(tmp_path, inputs, None)
    done = cli("kill", "--config", str(config), env=environment())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "KILL").exists()
    assert "kill switch armed" in done.stdout
