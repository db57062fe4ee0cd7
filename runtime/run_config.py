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

Every value is checked at load against the rule of its field (:data:`STRATEGY_RULES` for the
strategy, the ``rule`` next to each settings field): its type, its range or its allowed values.
Unknown keys are errors (a typo must not silently fall back to a default), and so are an
empty file and a key given twice (:func:`yaml_files.read_yaml`). A bad value is one
:class:`ConfigError` line naming the file, ``section.field``, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
from nautilus_trader.model.data import BarType

from cli_errors import UserError
from field_rules import NON_NEGATIVE
from field_rules import PATH
from field_rules import POSITIVE
from field_rules import PROBABILITY
from field_rules import Choice
from field_rules import Flag
from field_rules import Integer
from field_rules import Nullable
from field_rules import Number
from field_rules import Rejected
from field_rules import Text
from field_rules import Timestamp
from field_rules import rules_of
from field_rules import setting
from policy.settings import RENAMED
from strategies.retraining import RetrainSettings
from strategies.score_matching import STRATEGY_RULES
from strategies.score_matching import ScoreMatchingConfig
from strategies.score_matching import validate_config
from yaml_files import read_yaml

SECTIONS = ("strategy", "backtest", "live", "retrain")
COMMAND_LINE = "command line"  # the source named in errors about command-line overrides
LIVE_MODES = ("sandbox", "demo", "testnet", "mainnet")  # runtime.live.MODES
LOG_LEVELS = ("OFF", "TRACE", "DEBUG", "INFO", "WARNING", "ERROR")  # Nautilus LogLevel names
FILL_AT = ("next_open", "next_close")  # runtime.backtest
EXECUTION_STYLES = ("taker", "maker")  # runtime.backtest: market orders, or post-only limits
MAX_LATENCY_MS = 3_600_000.0  # an hour; Nautilus holds latency in u64 nanoseconds


class ConfigError(UserError, ValueError):
    """The run configuration file is unreadable or holds invalid values."""


HTTP_URL = Nullable(Text("an http:// or https:// URL", r"https?://\S+"))
WS_URL = Nullable(Text("a ws:// or wss:// URL", r"wss?://\S+"))
TRADER_ID = Text("a trader id NAME-TAG such as SCOREMATCH-001", r"[A-Za-z0-9_.]+-[A-Za-z0-9_.-]+")

ORDERED_FIELDS = (("backtest", "start", "end", True),)


# ----- the settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BacktestSettings:
    """How run_backtest.py simulates the venue."""

    catalog: str = setting("var/catalog", PATH)
    start: str | None = setting(None, Nullable(Timestamp()))  # default: the model's test block
    end: str | None = setting(None, Nullable(Timestamp()))
    starting_balance: float = setting(100_000.0, POSITIVE)  # settlement currency (USDT)
    venue_leverage: float = setting(10.0, POSITIVE)
    latency_ms: float = setting(250.0, Number(0, MAX_LATENCY_MS))  # decision -> venue
    fill_at: str = setting("next_open", Choice(FILL_AT))  # see runtime.backtest
    slippage_probability: float = setting(0.5, PROBABILITY)  # a market order slips one tick
    execution: str = setting("taker", Choice(EXECUTION_STYLES))  # see runtime.backtest
    maker_timeout_bars: int = setting(1, Integer(1))  # maker: cancel unfilled after N bars
    seed: int = setting(7, Integer(0))
    report_dir: str = setting("reports/latest", PATH)
    tearsheet: bool = setting(True, Flag())
    log_level: str = setting("WARNING", Choice(LOG_LEVELS, upper=True))


@dataclass(frozen=True)
class LiveSettings:
    """How run_live.py connects (see run_live.py --help and runtime/live.py)."""

    mode: str = setting("sandbox", Choice(LIVE_MODES))  # mainnet needs the explicit CLI flag
    trader_id: str = setting("SCOREMATCH-001", TRADER_ID)
    starting_balance: float = setting(10_000.0, POSITIVE)  # sandbox: paper balance in USDT
    venue_leverage: float = setting(10.0, POSITIVE)  # sandbox: paper account leverage
    sandbox_maker_fee: float | None = setting(0.0002, Nullable(NON_NEGATIVE))  # None: the
    sandbox_taker_fee: float | None = setting(0.00055, Nullable(NON_NEGATIVE))  # instrument's
    state_dir: str = setting("var/live-state", PATH)  # risk state files (demo/testnet/mainnet)
    kill_switch_path: str = setting("var/KILL", PATH)  # `run_live.py kill` creates it
    kill_switch_poll_secs: float = setting(1.0, NON_NEGATIVE)  # how often the strategy looks
    base_url_http: str | None = setting(None, HTTP_URL)  # endpoint overrides (a proxy, an
    base_url_ws_public: str | None = setting(None, WS_URL)  # emulator); /linear is appended
    base_url_ws_private: str | None = setting(None, WS_URL)
    base_url_ws_trade: str | None = setting(None, WS_URL)
    timeout_connection: float = setting(30.0, POSITIVE)  # seconds to connect, load instruments
    timeout_post_stop: float = setting(5.0, NON_NEGATIVE)  # seconds for on-stop closing fills
    log_level: str = setting("INFO", Choice(LOG_LEVELS, upper=True))
    log_directory: str | None = setting(None, Nullable(PATH))  # also write the log here


@dataclass(frozen=True)
class RunConfig:
    """The strategy's config (its ``retrain`` field: the ``retrain:`` section's values that
    were given), the backtest's and the live node's settings, and the retraining schedule."""

    strategy: ScoreMatchingConfig
    backtest: BacktestSettings = field(default_factory=BacktestSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    retrain: RetrainSettings = field(default_factory=RetrainSettings)
    source: str = "<defaults>"


def default_strategy_fields() -> dict[str, Any]:
    """The embedded default: BTCUSDT perpetual, 1-hour bars, the demo's model directory."""
    return {
        "instrument_id": "BTCUSDT-LINEAR.BYBIT",
        "bar_type": "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL",
        "model_path": "var/models/default",
    }


# ----- loading --------------------------------------------------------------------------------


def load_run_config(path: str | Path | None = None, **strategy_overrides: Any) -> RunConfig:
    """Read a run configuration file (or the defaults), apply overrides, validate everything.

    ``strategy_overrides`` (None values are ignored) replace strategy fields; errors in them
    name the command line as their source. An overriding ``bar_type`` without an
    ``instrument_id`` also sets the instrument (a bar type names its instrument).
    """
    raw, source = _read_file(path) if path is not None else ({}, "<defaults>")
    overrides = {k: v for k, v in strategy_overrides.items() if v is not None}
    overrides = _checked(STRATEGY_RULES, overrides, COMMAND_LINE, "strategy")
    if "bar_type" in overrides and "instrument_id" not in overrides:
        overrides["instrument_id"] = str(BarType.from_str(overrides["bar_type"]).instrument_id)
    strategy = _checked(STRATEGY_RULES, _section(raw, "strategy", source), source, "strategy")
    if "retrain" in strategy:
        raise ConfigError(
            f"{source}: strategy.retrain belongs in the top-level retrain: section (it applies to "
            "run_backtest.py and run_live.py alike); move it there"
        )
    retrain_values = _section(raw, "retrain", source)
    retrain = _settings(RetrainSettings, retrain_values, source, "retrain")
    if retrain.enabled:
        strategy["retrain"] = retrain.given(retrain_values)
    return RunConfig(
        strategy=parse_strategy_config(
            {**default_strategy_fields(), **strategy, **overrides}, source
        ),
        backtest=_settings(BacktestSettings, _section(raw, "backtest", source), source, "backtest"),
        live=_settings(LiveSettings, _section(raw, "live", source), source, "live"),
        retrain=retrain,
        source=source,
    )


def with_backtest_overrides(run: RunConfig, source: str = COMMAND_LINE, **values: Any) -> RunConfig:
    """``run`` with these backtest settings replaced (None values ignored), validated."""
    given = {k: v for k, v in values.items() if v is not None}
    _reject_unknown(given, rules_of(BacktestSettings), source, "backtest")
    merged = {**dataclasses.asdict(run.backtest), **given}
    backtest = _settings(BacktestSettings, merged, source, "backtest")
    return dataclasses.replace(run, backtest=backtest)


def with_retrain_overrides(run: RunConfig, source: str = COMMAND_LINE, **values: Any) -> RunConfig:
    """``run`` with these retrain settings replaced (None values ignored), validated; the
    strategy config's ``retrain`` field follows (``--retrain-every``, ``--retrain-window``)."""
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return run
    _reject_unknown(given, rules_of(RetrainSettings), source, "retrain")
    merged = {**(run.strategy.retrain or {}), **given}
    retrain = _settings(
        RetrainSettings, {**dataclasses.asdict(run.retrain), **given}, source, "retrain"
    )
    checked = retrain.given(merged) if retrain.enabled else None
    strategy = msgspec.structs.replace(run.strategy, retrain=checked)
    return dataclasses.replace(run, strategy=strategy, retrain=retrain)


def parse_strategy_config(fields: dict[str, Any], source: str = "<config>") -> ScoreMatchingConfig:
    """ScoreMatchingConfig from plain values, with errors that name the field."""
    renamed = sorted(set(fields) & set(RENAMED))
    if renamed:
        raise ConfigError(
            f"{source}: strategy.{renamed[0]} was replaced by {RENAMED[renamed[0]]}; rename it"
        )
    allowed = set(ScoreMatchingConfig.__struct_fields__)
    unknown = set(fields) - allowed
    if unknown:
        raise ConfigError(
            f"{source}: unknown strategy fields {sorted(unknown)}; valid fields: {sorted(allowed)}"
        )
    checked = _checked(STRATEGY_RULES, fields, source, "strategy")
    try:
        config = ScoreMatchingConfig.parse(msgspec.json.encode(checked))
    except (msgspec.ValidationError, ValueError, TypeError) as error:
        raise ConfigError(f"{source}: invalid strategy config: {error}") from error
    try:
        validate_config(config)
    except ValueError as error:  # a rule across fields (policy.risk, policy.sizing)
        raise ConfigError(f"{source}: strategy.{error}") from error
    return config


def _read_file(path: str | Path) -> tuple[dict[str, Any], str]:
    path = Path(path)
    raw = read_yaml(path, "config file", "configs/default.yaml is a complete example", ConfigError)
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} must hold a mapping with strategy/backtest/live sections, "
            f"not a {type(raw).__name__}"
        )
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown sections {sorted(map(str, unknown))}; use {', '.join(SECTIONS)}"
        )
    return raw, str(path)


def _section(raw: Mapping[str, Any], name: str, source: str) -> dict[str, Any]:
    values = raw.get(name)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"{source}: section '{name}' must be a mapping of field: value, "
            f"not a {type(values).__name__}"
        )
    return values


def _checked(
    rules: Mapping[str, Any], values: Mapping[str, Any], source: str, section: str
) -> dict[str, Any]:
    """``values`` with each ruled field parsed by its rule; other fields pass unchanged."""
    checked = dict(values)
    for name, value in values.items():
        rule = rules.get(name)
        if rule is None:
            continue
        try:
            checked[name] = rule.parse(value)
        except Rejected:
            raise ConfigError(
                f"{source}: {section}.{name} = {value!r} is invalid; expected {rule.allowed}"
            ) from None
    return checked


def _check_order(settings: object, source: str, section: str) -> None:
    """The :data:`ORDERED_FIELDS` of ``section`` are in order in ``settings``."""
    for where, lower, upper, strict in ORDERED_FIELDS:
        if where != section:
            continue
        low, high = getattr(settings, lower), getattr(settings, upper)
        if low is None or high is None:
            continue
        if section == "backtest":
            low, high = _utc(low), _utc(high)
        if low > high or (strict and low == high):
            raise ConfigError(
                f"{source}: {section}.{lower} = {getattr(settings, lower)!r} must be "
                f"{'before' if strict else 'at most'} {section}.{upper} = "
                f"{getattr(settings, upper)!r}"
            )


def _utc(value: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _reject_unknown(
    values: Mapping[str, Any], rules: Mapping[str, Any], source: str, section: str
) -> None:
    unknown = set(values) - set(rules)
    if unknown:
        raise ConfigError(
            f"{source}: unknown {section} fields {sorted(map(str, unknown))}; "
            f"valid: {sorted(rules)}"
        )


def _settings(cls: type, values: Mapping[str, Any], source: str, section: str) -> Any:
    rules = rules_of(cls)
    _reject_unknown(values, rules, source, section)
    settings = cls(**_checked(rules, values, source, section))
    _check_order(settings, source, section)
    return settings
