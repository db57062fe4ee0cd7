"""run_live.py: help, the mainnet guard, key errors, kill/resume, signals; SIGINT against the
emulator in a real subprocess (demo mode through the real Nautilus Bybit clients)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import run_live
from output_paths import write_atomically
from policy.risk import RiskState
from runtime import live
from runtime.run_config import load_run_config
from tests.bybit_emulator import EmulatorServer
from tests.live_support import LiveMarket
from tests.live_support import clear_keys
from tests.live_support import env_without_bybit_keys
from tests.live_support import live_settings
from tests.live_support import strategy_settings
from tests.live_support import use_keys
from tests.live_support import venue_position_qty
from tests.live_support import write_run_yaml

REPO = Path(__file__).resolve().parents[1]
CLOSED_PORT = "http://127.0.0.1:9"  # nothing listens: a regression cannot reach a real venue


def offline_config(tmp_path: Path, model_path: Path, **live_fields: object) -> Path:
    """A run config whose endpoints all point at a closed loopback port."""
    live_section = {
        "state_dir": str(tmp_path / "state"),
        "kill_switch_path": str(tmp_path / "KILL"),
        **live_fields,
        "base_url_http": CLOSED_PORT,
        "base_url_ws_public": "ws://127.0.0.1:9/v5/public",
        "base_url_ws_private": "ws://127.0.0.1:9/v5/private",
        "base_url_ws_trade": "ws://127.0.0.1:9/v5/trade",
    }
    return write_run_yaml(tmp_path / "offline.yaml", strategy_settings(model_path), live_section)


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run_live.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_names_modes_keys_and_the_mainnet_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_live.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for text in ("sandbox", "demo", "testnet", "BYBIT_DEMO_API_KEY", "kill", "resume"):
        assert text in out
    assert live.MAINNET_FLAG in out and run_live.MAINNET_FLAG == live.MAINNET_FLAG


def test_mainnet_is_refused_without_the_flag(minute_model, tmp_path, monkeypatch, capsys):
    use_keys(monkeypatch, "mainnet", "SOMEKEY", "SOMESECRET")  # keys alone are not enough
    config = str(offline_config(tmp_path, minute_model))

    assert run_live.main(["--mode", "mainnet", "--config", config]) == 2
    err = capsys.readouterr().err
    assert "refusing to trade real money" in err and live.MAINNET_FLAG in err

    # with the flag it goes on to the key check (which fails here: nothing listens)
    assert run_live.main(["--mode", "mainnet", "--config", config, live.MAINNET_FLAG]) == 2
    err = capsys.readouterr().err
    assert "refusing" not in err and "BYBIT_API_KEY" in err and "SOMESECRET" not in err


def test_missing_keys_give_one_clear_line(minute_model, tmp_path, monkeypatch, capsys):
    config = str(offline_config(tmp_path, minute_model))
    result = run_cli("--mode", "demo", "--config", config, env=env_without_bybit_keys())
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: demo mode reads the API key from the environment: set BYBIT_DEMO_API_KEY and "
        "BYBIT_DEMO_API_SECRET (missing: BYBIT_DEMO_API_KEY, BYBIT_DEMO_API_SECRET)"
    ]
    assert "Traceback" not in result.stdout + result.stderr

    clear_keys(monkeypatch)
    monkeypatch.setenv("BYBIT_TESTNET_API_KEY", "KEYONLY")
    assert run_live.main(["--mode", "testnet", "--config", config]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "BYBIT_TESTNET_API_KEY and BYBIT_TESTNET_API_SECRET" in line
    assert "(missing: BYBIT_TESTNET_API_SECRET)" in line


def test_unreachable_venue_fails_with_one_line(minute_model, tmp_path, monkeypatch, capsys):
    clear_keys(monkeypatch)
    config = offline_config(tmp_path, minute_model, timeout_connection=2.0)
    assert run_live.main(["--mode", "sandbox", "--config", str(config)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: the Bybit data client did not connect within 2 s; check the network, a proxy, "
        "or live.base_url_http / base_url_ws_public"
    ]


def test_kill_then_resume(minute_model, tmp_path, capsys):
    config = str(offline_config(tmp_path, minute_model))
    run = load_run_config(config)
    state_path = Path(live.risk_state_path(run, "demo"))

    assert run_live.main(["kill", "--config", config]) == 0
    assert (tmp_path / "KILL").is_file()
    assert str(tmp_path / "KILL") in capsys.readouterr().out

    halted = RiskState(12_000.0, day=20_000, day_start_equity=11_000.0, halted=True)
    write_atomically(state_path, halted.to_json())
    assert run_live.main(["resume", "--mode", "demo", "--config", config]) == 0
    assert not (tmp_path / "KILL").exists()
    resumed = RiskState.from_json(state_path.read_text())
    assert not resumed.halted and resumed.high_water_mark == 0.0
    assert (resumed.day, resumed.day_start_equity) == (20_000, 11_000.0)  # daily state kept


@pytest.mark.parametrize("writable", [True, False])
def test_sigusr1_arms_the_kill_switch_and_halts_even_if_the_file_cannot_be_written(
    tmp_path, writable
):
    """SIGUSR1 writes the kill switch file and always tells the strategy in memory: a kill
    whose file cannot be created (here: a file where its directory should be) still halts."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    warnings: list[str] = []
    requests: list[bool] = []
    if not writable:
        (tmp_path / "blocked").write_text("a file where a directory should be")
    kill = tmp_path / ("KILL" if writable else "blocked/KILL")
    try:
        live.install_signal_handlers(
            loop, stop, str(kill), warnings.append, lambda: requests.append(True)
        )
        os.kill(os.getpid(), signal.SIGUSR1)
        loop.run_until_complete(asyncio.sleep(0.05))
        assert kill.is_file() == writable and not stop.is_set()
        assert requests == [True]
        os.kill(os.getpid(), signal.SIGTERM)
        loop.run_until_complete(asyncio.sleep(0.05))
        assert stop.is_set()
    finally:
        live.remove_signal_handlers(loop)
        loop.close()
    assert any("SIGUSR1" in w for w in warnings) and any("SIGTERM" in w for w in warnings)


@pytest.mark.timeout(120)
def test_sigint_stops_cleanly_with_exit_0_and_keys_never_logged(live_bars, minute_model, tmp_path):
    market = LiveMarket(live_bars, headroom_s=25.0)  # a subprocess needs a few seconds to start
    emu = market.emu
    logs = tmp_path / "logs"
    config = write_run_yaml(
        tmp_path / "live.yaml",
        strategy_settings(minute_model),
        live_settings(emu, tmp_path, log_level="DEBUG", log_directory=str(logs)),
    )
    key, secret = emu.credentials.api_key, emu.credentials.api_secret
    env = {**env_without_bybit_keys(), "BYBIT_DEMO_API_KEY": key, "BYBIT_DEMO_API_SECRET": secret}
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "run_live.py", "--mode", "demo", "--config", str(config)],
            cwd=REPO,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        assert emu.wait_for(lambda: node_running(emu), timeout=45), err.read_text()[-2000:]
        market.push()
        assert emu.wait_for(lambda: venue_position_qty(emu) != 0, timeout=15)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=45) == 0
        assert venue_position_qty(emu) == 0  # the managed stop closed the position
        assert emu.ws_connections() == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        market.stop()

    text = out.read_text() + err.read_text()
    text += "".join(p.read_text() for p in logs.glob("*") if p.is_file())
    assert "SIGINT received" in text and "Traceback" not in text
    assert secret not in text and key not in text
    assert f"{key[:4]}...{key[-4:]}" in text  # Nautilus logs the masked key only


def node_running(emu: EmulatorServer) -> bool:
    """The subprocess's node subscribed to bars and its private stream is authenticated."""
    sessions = emu.ws_sessions()
    public = any(k == "public" and "kline.1.BTCUSDT" in t for k, _, t in sessions)
    private = any(k == "private" and authed for k, authed, _ in sessions)
    return public and private and kline_pages(emu) >= 3


def kline_pages(emu: EmulatorServer) -> int:
    return sum(1 for r in emu.requests() if r.path == "/v5/market/kline")
