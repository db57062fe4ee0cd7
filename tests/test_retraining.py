"""A model that stays current (issue 22): the schedule, the versions, promotion, provenance,
drift monitors and the training process, in the Nautilus backtest and outside it."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

import run_backtest
from catalogs.catalog import read_bars_frame
from catalogs.catalog import write_bars
from catalogs.instruments import make_perpetual
from runtime.backtest import run_backtest as backtest
from runtime.run_config import ConfigError
from runtime.run_config import load_run_config
from runtime.run_config import with_backtest_overrides
from runtime.run_config import with_retrain_overrides
from scoremodel import cli as scoremodel_cli
from scoremodel.checkpoint import load_checkpoint
from scoremodel.drift import DriftMonitor
from scoremodel.drift import DriftThresholds
from scoremodel.drift import ks_critical
from scoremodel.drift import ks_uniform
from scoremodel.inference import ScoreModel
from scoremodel.registry import CURRENT
from scoremodel.registry import Registry
from scoremodel.registry import version_id
from scoremodel.retrain import RetrainJob
from scoremodel.retrain import compare
from scoremodel.retrain import fit_config_of
from scoremodel.retrain import paired_z
from scoremodel.retrain import run_retrain
from scoremodel.schedule import RetrainSchedule
from scoremodel.schedule import ScheduleError
from strategies.retraining import InlineTrainer
from strategies.retraining import ModelLifecycle
from strategies.retraining import ProcessTrainer
from strategies.retraining import RetrainSettings
from tests.conftest import BAR_TYPE

HOUR = 3_600_000_000_000
RETRAIN = {"every": 800, "window": 3000, "min_bars": 1000, "delay_bars": 2, "epochs": 2}


def write_config(tmp_path: Path, catalog: Path, model: Path, **retrain: object) -> Path:
    path = tmp_path / "run.yaml"
    text = {
        "strategy": {
            "model_path": str(model),
            "signal_mode": "edge",
            "edge_margin": 0.0,
            "min_confidence": 0.5,  # P(r > c): the test model's forecasts trade at 0.5
        },
        "backtest": {"catalog": str(catalog), "start": "2024-08-01"},
        "retrain": {**RETRAIN, **retrain},
    }
    path.write_text(json.dumps(text))  # JSON is YAML
    return path


# ----- item 1: the schedule ---------------------------------------------------------------------


def test_spans_are_durations_or_bars():
    schedule = RetrainSchedule.of(HOUR, "7D", "500", min_bars=100, delay_bars=3)
    assert schedule.every_ns == 7 * 24 * HOUR and schedule.window_ns == 500 * HOUR
    assert RetrainSchedule.of(HOUR, 24).every_ns == 24 * HOUR
    assert RetrainSchedule.of(HOUR, "12h", "expanding").window_ns is None
    for bad in ("90s", "-2D", "soon", 0):
        with pytest.raises(ScheduleError):
            RetrainSchedule.of(HOUR, bad)


def test_retraining_is_due_on_a_calendar_grid_whatever_bar_a_run_starts_on():
    schedule = RetrainSchedule.of(HOUR, "1D")
    index = pd.date_range("2024-01-01 01:00", periods=24 * 5, freq="1h", tz="UTC")
    due = schedule.retrain_bars(index)
    assert [index[i].hour for i in due] == [0] * 5  # the first bar of each UTC day
    later = schedule.retrain_bars(index[37:])
    assert [index[37:][i] for i in later] == [index[i] for i in due[1:]]
    stamps = index.asi8
    assert [i for i in range(1, len(index)) if schedule.due(stamps[i - 1], stamps[i])] == due
    assert schedule.activation_ns(stamps[due[0]]) == stamps[due[0]] + HOUR


def test_the_retrain_section_and_its_flags_are_checked_at_load(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("retrain:\n  every: 30D\n  window: 365D\n  delay_bars: 2\n")
    run = load_run_config(path)
    assert run.retrain.enabled and run.strategy.retrain == {
        "every": "30D", "window": "365D", "delay_bars": 2,
    }  # fmt: skip
    run = with_retrain_overrides(run, every="7D", window="expanding")
    assert run.strategy.retrain["every"] == "7D" and run.retrain.window == "expanding"
    for text, phrase in [
        ("retrain:\n  every: soon\n", "retrain.every = 'soon' is invalid"),
        ("retrain:\n  every: 7D\n  delay_bars: 0\n", "retrain.delay_bars = 0 is invalid"),
        ("retrain:\n  evry: 7D\n", "unknown retrain fields ['evry']"),
        ("strategy:\n  retrain:\n    every: 7D\n", "top-level retrain: section"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(phrase)):
            load_run_config(path)
    assert not load_run_config(None).retrain.enabled  # off by default
    assert "# retrain:" in (Path(__file__).parents[1] / "configs" / "default.yaml").read_text()


# ----- items 2, 4, 5, 6: a retraining backtest inside the Nautilus engine ------------------------


@pytest.fixture(scope="module")
def retrained(synthetic_catalog, trained_model, tmp_path_factory):
    """One retraining backtest (edge mode, 800-bar grid, 3000-bar rolling window)."""
    tmp_path = tmp_path_factory.mktemp("retrain")
    run = load_run_config(write_config(tmp_path, synthetic_catalog, trained_model))
    run = with_backtest_overrides(run, report_dir=str(tmp_path / "report"))
    outcome = backtest(run)
    record = outcome.strategy.recorder.frame()
    versions = outcome.strategy.lifecycle.versions()
    orders = list(outcome.engine.cache.orders())
    tags = [order.tags for order in orders]
    outcome.engine.dispose()
    return run, record, versions, tags, tmp_path / "report" / "models"


@pytest.mark.slow
def test_the_backtest_retrains_on_the_bars_seen_and_swaps_after_the_delay(
    retrained, synthetic_catalog
):
    _, record, versions, _, registry = retrained
    retrained_versions = versions[1:]
    assert len(retrained_versions) >= 3
    bars = read_bars_frame(synthetic_catalog, BAR_TYPE)
    for version in retrained_versions:
        due = pd.Timestamp(version["due_bar"])
        # no lookahead: the window ends at the bar the retraining was due at
        assert pd.Timestamp(version["trained_to"]) == due
        first = bars.index.get_loc(pd.Timestamp(version["trained_from"]))
        assert bars.index.get_loc(due) - first + 1 == 3000  # the rolling window, in bars
        manifest, _ = load_checkpoint(registry / "versions" / version["id"])
        assert pd.Timestamp(manifest["data"]["last_bar"]) == due
        if version["promoted"] and version["first_bar"] is not None:
            # it decides from delay_bars after the end of its data, not before
            assert pd.Timestamp(version["first_bar"]) == due + pd.Timedelta(hours=2)
            decided = record.index[record["model_version"] == version["id"]]
            assert decided[0] == pd.Timestamp(version["first_bar"])
    used = [v for v in versions if v["bars_decided"]]
    assert len(used) >= 2 and sum(v["bars_decided"] for v in used) == len(record)
    assert set(record["model_version"]) == {v["id"] for v in used}


@pytest.mark.slow
def test_every_order_carries_the_version_that_sent_it(retrained):
    _, _, versions, tags, _ = retrained
    assert tags, "the test market should trade"
    ids = {v["id"] for v in versions}
    decided = [t[0][len("model:") :] for t in tags if t and t[0].startswith("model:")]
    assert len(decided) >= len(tags) - 1 and set(decided) <= ids
    assert all(t in (["model:" + v] for v in ids) or t == ["stop"] for t in tags)


@pytest.mark.slow
def test_the_registry_holds_every_version_and_a_current_pointer(retrained, capsys):
    _, _, versions, _, registry = retrained
    stored = Registry(registry)
    promoted = [v["id"] for v in versions[1:] if v["promoted"] and v["bars_decided"]]
    assert stored.current_id() == promoted[-1]
    assert [r["id"] for r in stored.records()] == [v["id"] for v in versions[1:]]
    assert scoremodel_cli.main(["versions", str(registry)]) == 0
    listing = capsys.readouterr().out
    assert f"* {promoted[-1]}" in listing and all(v["id"] in listing for v in versions[1:])


@pytest.mark.slow
def test_summary_and_diagnostics_trace_every_decision_to_its_version(
    synthetic_catalog, trained_model, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, synthetic_catalog, trained_model, every=1500)
    assert run_backtest.main(["--config", str(config), "--report-dir", "report"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    record = pd.read_parquet(tmp_path / "report" / "diagnostics.parquet")
    versions = summary["model_versions"]
    fields = {"id", "trained_from", "trained_to", "first_bar", "last_bar", "promoted", "reason"}
    assert fields <= set(versions[0])
    assert summary["retrain"]["every"] == 1500 and summary["retrain"]["registry"].endswith("models")
    counts = record["model_version"].value_counts().to_dict()
    assert counts == {v["id"]: v["bars_decided"] for v in versions if v["bars_decided"]}
    assert "retrainings" in out and "promoted" in out


@pytest.mark.slow
def test_the_same_schedule_gives_the_same_versions_and_decisions(retrained):
    """Run again into the same report directory: it starts from its model again, never from
    the versions the first run left there (a later model would be lookahead)."""
    run, record, versions, _, registry = retrained
    assert Registry(registry).current_id() is not None  # the first run's last version
    outcome = backtest(run)
    again = outcome.strategy.recorder.frame()
    again_versions = outcome.strategy.lifecycle.versions()
    outcome.engine.dispose()
    assert [v["id"] for v in again_versions] == [v["id"] for v in versions]
    assert again["blocked_by"].tolist() == record["blocked_by"].tolist()
    np.testing.assert_array_equal(again["target_qty"], record["target_qty"])


@pytest.mark.slow
def test_a_backtest_never_writes_versions_into_the_model_directory(run_config, trained_model):
    """A strategy in a user's own backtest that retrains needs an explicit registry: the model
    directory is the live node's (run_backtest.py gives REPORT_DIR/models)."""
    run = run_config()
    run = dataclasses.replace(
        run, strategy=msgspec.structs.replace(run.strategy, retrain={"every": "7D"})
    )
    before = sorted(p.name for p in trained_model.iterdir())
    with pytest.raises(ValueError, match=r"retrain\.registry is not set"):
        backtest(run)
    assert sorted(p.name for p in trained_model.iterdir()) == before


@pytest.mark.slow
def test_a_retraining_due_while_the_features_warm_up_after_a_gap_is_not_late(
    synthetic_catalog, trained_model, tmp_path
):
    """The schedule runs on every traded bar, decided or not: a retrain bar that falls in the
    features' warm-up after a gap retrains at that bar, as the evaluation's folds assume."""
    bars = read_bars_frame(synthetic_catalog, BAR_TYPE)
    schedule = RetrainSchedule.of(HOUR, 800)
    start = bars.index.get_loc(pd.Timestamp("2024-08-01", tz="UTC"))
    due = schedule.retrain_bars(bars.index[start:])[1] + start
    gapped = bars.drop(bars.index[due - 10 : due - 5])  # 5 bars missing, 5 before a retrain bar
    catalog = tmp_path / "gapped"
    write_bars(catalog, gapped, make_perpetual("BTCUSDT"), "1h")
    run = load_run_config(write_config(tmp_path, catalog, trained_model))
    run = with_backtest_overrides(run, report_dir=str(tmp_path / "report"))
    outcome = backtest(run)
    versions = outcome.strategy.lifecycle.versions()
    traded = outcome.bars.index
    outcome.engine.dispose()
    expected = [traded[i] for i in schedule.retrain_bars(traded) if i > 0]
    assert [pd.Timestamp(v["due_bar"]) for v in versions[1:]] == expected
    assert bars.index[due] in expected


# ----- the retraining job, promotion and the registry ---------------------------------------------


def small_job(bars: pd.DataFrame, model_dir: Path, registry: Path, **fields) -> RetrainJob:
    manifest = ScoreModel.load(model_dir).manifest
    fit = fit_config_of(manifest, "edge", epochs=2, threads=1)
    return RetrainJob(
        bars=bars, bar_type=BAR_TYPE, fit=fit, registry_root=str(registry),
        current_dir=str(model_dir), **fields,
    )  # fmt: skip


@pytest.mark.slow
def test_a_retraining_is_deterministic_and_named_by_its_content(
    synthetic_catalog, trained_model, tmp_path
):
    bars = read_bars_frame(synthetic_catalog, BAR_TYPE).iloc[:3000]
    first = run_retrain(small_job(bars, trained_model, tmp_path / "a"))
    second = run_retrain(small_job(bars, trained_model, tmp_path / "b"))
    assert first.identity == second.identity
    other = run_retrain(small_job(bars.iloc[1:], trained_model, tmp_path / "c"))
    assert other.identity != first.identity
    manifest, weights = load_checkpoint(tmp_path / "a" / "versions" / first.identity)
    assert version_id(manifest) == version_id(manifest, weights) == first.identity


@pytest.mark.slow
def test_promotion_compares_on_the_recent_block_and_validate_false_promotes(
    synthetic_catalog, trained_model, tmp_path
):
    bars = read_bars_frame(synthetic_catalog, BAR_TYPE).iloc[:3000]
    current = ScoreModel.load(trained_model)
    fit = fit_config_of(current.manifest, "edge", epochs=2, threads=1)
    assert compare(current, current, bars, fit).promoted  # a model is not worse than itself
    worse = ScoreModel(current.manifest, current.weights)
    worse.mean_shrinkage = (1.0,) * len(current.mean_shrinkage)  # trusts a mean it cannot back
    verdict = compare(worse, current, bars, fit)
    metrics = verdict.metrics
    assert metrics["block_rows"] > 100
    assert verdict.promoted == (
        metrics["crps_difference_z"] <= 1.645
        and metrics["candidate_slope"] >= metrics["current_slope"] - 0.05
    )
    unvalidated = run_retrain(small_job(bars, trained_model, tmp_path / "r", validate=False))
    assert unvalidated.promoted and "without validation" in unvalidated.reason


def test_the_crps_difference_is_judged_against_its_overlap_corrected_error():
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 1.0, 4000)
    assert abs(paired_z(noise, lag=6)) < 3.0
    assert paired_z(noise + 0.2, lag=6) > 5.0  # clearly worse
    overlapping = np.convolve(noise, np.ones(6), mode="valid")  # h-bar sums: dependent
    # the Newey-West error widens with the overlap: the naive z would be ~sqrt(6) larger
    naive = overlapping.mean() / (overlapping.std() / np.sqrt(len(overlapping)))
    assert abs(paired_z(overlapping, lag=6)) < abs(naive)


def test_pruning_keeps_the_newest_and_never_the_current(tmp_path):
    registry = Registry(tmp_path)
    for name in ("a1", "b2", "c3", "d4"):
        (registry.versions_dir / name).mkdir(parents=True)
    registry._write_index([{"id": name} for name in ("a1", "b2", "c3", "d4")])
    registry.set_current("a1")
    assert registry.prune(keep=2) == ["b2"]
    assert sorted(p.name for p in registry.versions_dir.iterdir() if p.is_dir()) == [
        "a1", "c3", "d4",
    ]  # fmt: skip
    assert [r.get("removed", False) for r in registry.records()] == [False, True, False, False]
    assert (tmp_path / CURRENT).read_text().strip() == "a1"


@pytest.mark.slow
def test_a_restarted_lifecycle_resumes_with_the_registrys_current_version(
    synthetic_catalog, trained_model, tmp_path
):
    bars = read_bars_frame(synthetic_catalog, BAR_TYPE).iloc[:3000]
    outcome = run_retrain(small_job(bars, trained_model, tmp_path / "registry", validate=False))
    Registry(tmp_path / "registry").set_current(outcome.identity)
    settings = RetrainSettings.from_mapping({"every": "7D", "registry": str(tmp_path / "registry")})
    lifecycle = ModelLifecycle(
        settings, ScoreModel.load(trained_model), trained_model, bar_ns=HOUR, bar_type=BAR_TYPE,
        signal_mode="edge", density_percentile=5.0, density_rule="reliability",
        trainer=InlineTrainer(), resume=True,
    )  # fmt: skip
    assert lifecycle.version == outcome.identity
    assert "resumed" in lifecycle.versions()[0]["reason"]
    # a model directory without versions keeps working: its own model
    plain = ModelLifecycle(
        RetrainSettings(), ScoreModel.load(trained_model), trained_model, bar_ns=HOUR,
        bar_type=BAR_TYPE, signal_mode="edge", density_percentile=5.0, density_rule="reliability",
        trainer=InlineTrainer(),
        resume=True,
    )  # fmt: skip
    assert plain.version == version_id(ScoreModel.load(trained_model).manifest)


# ----- item 3: a training process that fails never stops trading --------------------------------


def lifecycle_with(trainer, model_dir: Path, registry: Path, warnings: list[str]):
    settings = RetrainSettings.from_mapping(
        {"every": 200, "window": 1000, "min_bars": 200, "registry": str(registry), "epochs": 1}
    )
    return ModelLifecycle(
        settings, ScoreModel.load(model_dir), model_dir, bar_ns=HOUR, bar_type=BAR_TYPE,
        signal_mode="edge", density_percentile=5.0, density_rule="reliability",
        trainer=trainer, resume=False,
        log=lambda _: None, warn=warnings.append,
    )  # fmt: skip


def feed(lifecycle: ModelLifecycle, bars: pd.DataFrame) -> None:
    for ts, row in zip(bars.index.asi8, bars.itertuples(), strict=True):
        lifecycle.observe(ts, row.open, row.high, row.low, row.close, row.volume)
        lifecycle.model_for(ts)
        lifecycle.after_decision(ts, row.close, math.nan, math.nan, True)
        lifecycle.end_of_bar(ts)


@pytest.mark.slow
def test_a_failed_training_process_leaves_the_current_model_trading(
    synthetic_catalog, trained_model, tmp_path
):
    """The child dies (here: a window too short to split); one line, nothing swapped."""
    bars = read_bars_frame(synthetic_catalog, BAR_TYPE).iloc[:420]
    warnings: list[str] = []
    trainer = ProcessTrainer(timeout_s=120)
    lifecycle = lifecycle_with(trainer, trained_model, tmp_path / "registry", warnings)
    feed(lifecycle, bars)
    deadline = time.monotonic() + 90
    while trainer.busy and time.monotonic() < deadline:
        time.sleep(0.5)
        lifecycle.poll()
    assert not trainer.busy and len(warnings) == 1
    assert warnings[0].startswith("retraining due at")
    assert "the current model keeps trading" in warnings[0]
    assert "\n" not in warnings[0] and lifecycle.version_index == 0


def test_a_training_process_past_its_timeout_is_stopped(tmp_path, trained_model, synthetic_catalog):
    bars = read_bars_frame(synthetic_catalog, BAR_TYPE).iloc[:3000]
    trainer = ProcessTrainer(timeout_s=0.5)
    trainer.start(small_job(bars, trained_model, tmp_path / "registry"), None)
    time.sleep(1.0)
    result = trainer.poll()
    assert isinstance(result, str) and "retrain.timeout_secs" in result
    assert not trainer.busy and not (tmp_path / "registry").exists()


# ----- item 7: drift monitors ----------------------------------------------------------------


def drift_stream(n: int, scale: float, familiar_share: float, seed: int = 0):
    """Bars whose h-bar returns are N(0, (scale s)^2) while the forecast says N(0, s^2)."""
    rng = np.random.default_rng(seed)
    horizon, s = 6, 0.01
    steps = rng.normal(0.0, scale * s / math.sqrt(horizon), n)
    log_close = np.cumsum(steps)
    familiar = rng.random(n) < familiar_share
    return log_close, s, familiar, horizon


@pytest.mark.parametrize(
    "scale, familiar_share, expected",
    [
        (1.0, 1.0, set()),
        (2.5, 1.0, {"pit_ks", "vol_ratio"}),
        (1.0, 0.5, {"flagged_share"}),
    ],
)
def test_drift_monitors_flag_what_changed(scale, familiar_share, expected):
    log_close, s, familiar, horizon = drift_stream(3000, scale, familiar_share)
    monitor = DriftMonitor(DriftThresholds(window=500, check_every=50), horizon)
    alerts = []
    for i in range(len(log_close)):
        alerts += monitor.update(float(log_close[i]), 0.0, s, bool(familiar[i]))
    last = monitor.last
    breached = set()
    if last["flagged_share"] > 0.3:
        breached.add("flagged_share")
    if last["pit_ks"] > last["pit_ks_critical"]:
        breached.add("pit_ks")
    if not 0.5 <= last["vol_ratio"] <= 2.0:
        breached.add("vol_ratio")
    assert breached == expected
    assert len(alerts) == len(expected)  # each reported once, when it crossed


def test_ks_statistics_against_their_definitions():
    u = np.linspace(0.05, 0.95, 19)
    assert ks_uniform(u) == pytest.approx(0.05, abs=1e-12)
    assert ks_critical(100, 0.05) == pytest.approx(1.358 / 10, abs=1e-3)


@pytest.mark.slow
def test_on_drift_retrains_early(synthetic_catalog, trained_model, tmp_path):
    bars = read_bars_frame(synthetic_catalog, BAR_TYPE).iloc[:1600]
    warnings: list[str] = []
    settings = RetrainSettings.from_mapping(
        {
            "every": "365D", "window": 1000, "min_bars": 500, "epochs": 1, "on_drift": True,
            "registry": str(tmp_path / "registry"), "drift_window": 100, "drift_check_every": 10,
        }
    )  # fmt: skip
    lifecycle = ModelLifecycle(
        settings, ScoreModel.load(trained_model), trained_model, bar_ns=HOUR, bar_type=BAR_TYPE,
        signal_mode="edge", density_percentile=5.0, density_rule="reliability",
        trainer=InlineTrainer(), resume=False,
        log=lambda _: None, warn=warnings.append,
    )  # fmt: skip
    for ts, row in zip(bars.index.asi8, bars.itertuples(), strict=True):
        lifecycle.observe(ts, row.open, row.high, row.low, row.close, row.volume)
        lifecycle.model_for(ts)
        lifecycle.after_decision(ts, row.close, math.nan, math.nan, familiar=False)
        lifecycle.end_of_bar(ts)
    assert any("drift at" in w and "retraining now" in w for w in warnings)
    assert len(lifecycle.versions()) >= 2  # retrained before the 365-day grid was due
    assert lifecycle.drift_alerts[0]["statistics"]["flagged_share"] == 1.0
