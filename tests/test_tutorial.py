"""The tutorial (docs/how-to/tutorial.md) followed as a new user would: every command of the
page's ```bash blocks, in order, exactly as written, in a fresh directory standing in for the
repository root; the page's ```yaml block written as its run configuration; the sandbox session
against the loopback Bybit emulator (the page's one documented difference: two endpoint
settings added to the ``live:`` section, as tests have no network)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs/how-to/tutorial.md"
SHARED = REPO.parent / "shared"
BARS_CSV = SHARED / "data/real/LTCUSDT_1h_binance-usdm-perp.csv"
CONFIG = "var/tutorial/ltc.yaml"  # where the page says to save its yaml block
SYMBOL = "LTCUSDT"
HOUR_MS = 3_600_000
HISTORY_HOURS = 400  # the emulator's closed hours: more than the strategy's warm-up
PUSHED_HOURS = 3  # hours the test closes while the session runs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.realdata,
    pytest.mark.skipif(
        not BARS_CSV.is_file(),
        reason=f"the tutorial's data {BARS_CSV} is absent (../shared/data beside the checkout)",
    ),
]

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def page_blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(PAGE.read_text()) if lang == language]


def commands(block: str) -> list[list[str]]:
    """The block's commands as argv lists (continuation lines joined, comments dropped)."""
    lines = block.replace("\\\n", " ").splitlines()
    return [argv for argv in (shlex.split(line, comments=True) for line in lines) if argv]


def user_env() -> dict[str, str]:
    """The environment of a user with ``.venv`` active: its ``python`` first on PATH; no Bybit
    key (the sandbox needs none)."""
    from tests.live_support import env_without_bybit_keys

    env = env_without_bybit_keys()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    python = shutil.which("python", path=env["PATH"])
    assert python is not None and Path(python).parent == Path(sys.executable).parent
    return env


def run_block(block: str, root: Path, env: dict[str, str]) -> list[str]:
    """Run every command of ``block`` in ``root``; each must exit 0. Returns their outputs."""
    outputs = []
    for argv in commands(block):
        assert argv[0] == "python", argv
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        took = time.perf_counter() - started
        print(f"{shlex.join(argv)}  ({took:.1f} s)")
        assert done.returncode == 0, (
            f"{shlex.join(argv)} exited {done.returncode}:\n{output[-4000:]}"
        )
        outputs.append(output)
    return outputs


def user_root(tmp_path: Path) -> Path:
    """A fresh directory standing in for the repository root: the two scripts the page runs
    by path, and ``../shared`` beside it (the ``python -m`` packages come from PYTHONPATH)."""
    root = tmp_path / "repo"
    root.mkdir()
    for script in ("run_backtest.py", "run_live.py"):
        (root / script).symlink_to(REPO / script)
    (tmp_path / "shared").symlink_to(SHARED, target_is_directory=True)
    return root


def test_the_tutorial_runs_as_written(tmp_path):
    text = PAGE.read_text()
    bash, yaml_blocks = page_blocks("bash"), page_blocks("yaml")
    assert len(bash) == 5 and len(yaml_blocks) == 1, "five steps, one config file"
    assert f"`{CONFIG}`" in text
    root, env = user_root(tmp_path), user_env()

    # 1. the CSV and its funding into a catalog; info lists them
    outputs = run_block(bash[0], root, env)
    info = outputs[-1]
    assert "LTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL" in info and "55,667" in info
    assert "funding LTCUSDT-LINEAR.BYBIT: 6,959 rates" in info

    # 2. a model trained on a date range (and checked as a backtest loads it)
    run_block(bash[1], root, env)
    assert (root / "var/tutorial/model/manifest.json").is_file()

    # 3. the walk-forward evaluation writes its report
    run_block(bash[2], root, env)
    assert (root / "var/tutorial/evaluation/report.md").is_file()
    assert (root / "var/tutorial/evaluation/evaluation.json").is_file()

    # 4. the page's config file, verbatim; the backtest writes summary.json and the tearsheet
    config = root / CONFIG
    config.write_text(yaml_blocks[0])
    run_block(bash[3], root, env)
    report = root / "var/tutorial/backtest"
    assert (report / "tearsheet.html").stat().st_size > 0
    assert json.loads((report / "summary.json").read_text())["bars"] == 745
    for path in ("var/tutorial/model", "var/tutorial/evaluation/report.md", "tearsheet.html"):
        assert path in text

    # 5. the sandbox session, against the emulator
    (live,) = commands(bash[4])
    assert live[:4] == ["python", "run_live.py", "--mode", "sandbox"], live
    run_sandbox_session(live, root, env, config, tmp_path)


def run_sandbox_session(
    argv: list[str], root: Path, env: dict[str, str], config: Path, tmp_path: Path
) -> None:
    from tests.bybit_emulator.harness import wait_for_bar_headroom

    bars = pd.read_csv(BARS_CSV).tail(HISTORY_HOURS + PUSHED_HOURS).reset_index(drop=True)
    # the emulator's forming bar is the wall-clock hour, fixed at its start: keep clear of its end
    wait_for_bar_headroom(seconds=60, interval_ms=HOUR_MS)
    emu = ltc_emulator(bars.iloc[:HISTORY_HOURS])
    # the documented difference: the live section's endpoints point at the emulator
    assert re.search(r"^live:\n(?:  .*\n|\n)*\Z", config.read_text(), re.M), "live: comes last"
    config.write_text(
        config.read_text()
        + f"  base_url_http: {emu.base_url_http}\n"
        + f"  base_url_ws_public: {emu.ws_public_base}\n"
    )
    out, err = tmp_path / "live.stdout", tmp_path / "live.stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(argv, cwd=root, env=env, stdout=stdout, stderr=stderr)

    def logged() -> str:
        return out.read_text() + err.read_text()

    def running() -> bool:
        assert process.poll() is None, f"run_live.py exited early:\n{logged()[-4000:]}"
        return True

    def decided(n: int) -> bool:
        return running() and f"bar {n}:" in logged()

    try:
        topic = f"kline.60.{SYMBOL}"
        subscribed = emu.wait_for(lambda: running() and topic in emu.subscribed_topics(), 60)
        assert subscribed, logged()[-4000:]
        for row in bars.iloc[HISTORY_HOURS:].itertuples():
            emu.push_bar(SYMBOL, row.open, row.high, row.low, row.close, volume=row.volume)
            time.sleep(0.5)
        assert emu.wait_for(lambda: decided(1), timeout=30), logged()[-4000:]
        emu.wait_for(lambda: decided(PUSHED_HOURS), timeout=10)
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=60) == 0, logged()[-4000:]
        assert emu.order_submissions() == 0  # paper fills: no order reaches the venue
        assert all(r.api_key is None for r in emu.requests())  # and no key is needed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        emu.stop()
    text = logged()
    assert "SIGINT received" in text and "Traceback" not in text


def ltc_emulator(history: pd.DataFrame):
    """The emulator serving LTCUSDT (Bybit's instrument values, catalogs/instruments.py) with
    ``history``'s hours re-stamped to end where the current wall-clock hour opens."""
    from catalogs.instruments import get_spec
    from tests.bybit_emulator import EmulatorConfig
    from tests.bybit_emulator import EmulatorServer
    from tests.bybit_emulator.instruments import InstrumentSpec

    ltc = get_spec(SYMBOL)  # the values the catalog stored, so the venue and catalog agree
    spec = InstrumentSpec(
        symbol=SYMBOL,
        base_coin=ltc.base,
        tick_size=ltc.tick_size,
        min_price=ltc.tick_size,
        max_price=Decimal("19999.98"),
        qty_step=ltc.qty_step,
        min_qty=ltc.min_qty,
        max_qty=ltc.max_qty,
        max_mkt_qty=ltc.max_market_qty,
        max_leverage=f"{ltc.max_leverage:.2f}",
        initial_price=Decimal(str(history["close"].iloc[-1])),
    )
    now_hour = int(time.time() * 1000) // HOUR_MS * HOUR_MS
    opens = pd.date_range(
        end=pd.Timestamp(now_hour - HOUR_MS, unit="ms", tz="UTC"), periods=len(history), freq="1h"
    )
    frame = history[["open", "high", "low", "close", "volume"]].set_axis(opens)
    emu = EmulatorServer(
        EmulatorConfig(instruments=(spec,), base_interval="60", history_bars=10)
    ).start()
    emu.load_bars(SYMBOL, frame)
    return emu
