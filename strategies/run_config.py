"""The run configuration file shared by run_backtest.py and run_live.py (YAML).

One file describes the strategy once; ``backtest:`` and ``live:`` hold what differs between
the two ways of running it::

    strategy:                      # ScoreMatchingConfig fields
      instrument_id: BTCUSDT-LINEAR.BYBIT
      bar_type: BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL
      model_path: var/models/default
      signal_mode: score
    backtest:                      # BacktestSettings fields
      catalog: var/catalog
    live:                          # LiveSettings fields (run_live.py)
      mode: sandbox

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import msgspec
import yaml

from strategies.score_matching import ScoreMatchingConfig
from strategies.score_matching import validate_config


class ConfigError(ValueError):
    """The run configuration file is unreadable or holds invalid values."""


@dataclass(frozen=True)
class BacktestSettings:
    """How run_backtest.py simulates the venue."""

    catalog: str = "var/catalog"
    start: str | None = None  # ISO time (UTC); default: the model's held-out test block
    end: str | None = None
    starting_balance: float = 100_000.0  # in the settlement currency (USDT)
    venue_leverage: float = 10.0
    latency_ms: float = 250.0  # from the strategy's decision to the venue
    fill_at: str = "next_open"  # next_open | next_close (see strategies.backtest)
    slippage_probability: float = 0.5  # chance a market order slips one tick
    seed: int = 7
    report_dir: str = "reports/latest"
    tearsheet: bool = True
    log_level: str = "WARNING"


@dataclass(frozen=True)
class LiveSettings:
    """How run_live.py connects (see run_live.py --help and strategies/live.py)."""

    mode: str = "sandbox"  # sandbox | demo | testnet | mainnet (needs the explicit CLI flag)
    trader_id: str = "SCOREMATCH-001"
    starting_balance: float = 10_000.0  # sandbox only: paper balance in USDT
    venue_leverage: float = 10.0  # sandbox only: paper account leverage
    sandbox_maker_fee: float | None = 0.0002  # sandbox only; None: the instrument's own fees
    sandbox_taker_fee: float | None = 0.00055
    state_dir: str = "var/live-state"  # risk state files (demo/testnet/mainnet)
    kill_switch_path: str = "var/KILL"  # `run_live.py kill` creates it
    kill_switch_poll_secs: float = 1.0  # how often the running strategy looks for it
    base_url_http: str | None = None  # override endpoints (a proxy, a loopback emulator)
    base_url_ws_public: str | None = None  # prefix; /linear is appended
    base_url_ws_private: str | None = None
    base_url_ws_trade: str | None = None
    timeout_connection: float = 30.0  # seconds for clients to connect and load instruments
    timeout_post_stop: float = 5.0  # seconds for on-stop closing orders to fill
    log_level: str = "INFO"
    log_directory: str | None = None  # also write the log to a file here


@dataclass(frozen=True)
class RunConfig:
    strategy: ScoreMatchingConfig
    backtest: BacktestSettings = field(default_factory=BacktestSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    source: str = "<defaults>"


def default_strategy_fields() -> dict[str, Any]:
    """The embedded default: BTCUSDT perpetual, 1-hour bars, the demo's model directory."""
    return {
        "instrument_id": "BTCUSDT-LINEAR.BYBIT",
        "bar_type": "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL",
        "model_path": "var/models/default",
    }


def load_run_config(path: str | Path | None = None, **strategy_overrides: Any) -> RunConfig:
    """Read a run configuration file (or the defaults), apply overrides, validate everything."""
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from error
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a mapping with strategy/backtest/live sections")
        source = str(path)
    unknown = set(raw) - {"strategy", "backtest", "live"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown sections {sorted(unknown)}; use strategy, backtest, live"
        )
    fields = {**default_strategy_fields(), **(raw.get("strategy") or {})}
    fields.update({k: v for k, v in strategy_overrides.items() if v is not None})
    return RunConfig(
        strategy=parse_strategy_config(fields, source),
        backtest=_settings(BacktestSettings, raw.get("backtest"), source, "backtest"),
        live=_settings(LiveSettings, raw.get("live"), source, "live"),
        source=source,
    )


def parse_strategy_config(fields: dict[str, Any], source: str = "<config>") -> ScoreMatchingConfig:
    """ScoreMatchingConfig from plain values, with errors that name the field."""
    allowed = set(ScoreMatchingConfig.__struct_fields__)
    unknown = set(fields) - allowed
    if unknown:
        raise ConfigError(
            f"{source}: unknown strategy fields {sorted(unknown)}; valid fields: {sorted(allowed)}"
        )
    try:
        config = ScoreMatchingConfig.parse(msgspec.json.encode(fields))
        validate_config(config)
    except (msgspec.ValidationError, ValueError, TypeError) as error:
        raise ConfigError(f"{source}: invalid strategy config: {error}") from error
    return config


def _settings(cls: type, values: dict | None, source: str, section: str) -> Any:
    values = values or {}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(
            f"{source}: unknown {section} fields {sorted(unknown)}; valid: {sorted(names)}"
        )
    try:
        return msgspec.convert(values, type=cls, strict=False)
    except msgspec.ValidationError as error:
        raise ConfigError(f"{source}: invalid {section} section: {error}") from error
