"""The evaluation run: per fold, train on the past, test on the next window, compare fairly.

Per fold: ``fit_model`` on the fold's training bars only (its own chronological split, early
stopping and normaliser never see the test window) -> model signals, forecasts and density on
the test window -> the model strategy, its filter variants and the baselines through one
simulator -> metrics, IC, CRPS, filter diagnostics. Then the same over all test windows pooled,
and scenario checks with the last fold's model. Nothing is tuned on test windows: every
setting is fixed in :class:`EvaluationConfig` and written to the report.

With a retraining schedule (``EvaluationConfig.retrain``, the run configuration's ``retrain:``
section) the folds are the schedule's (:func:`evaluation.folds.retrain_folds`) and their models
are made as the strategy makes them (:func:`schedule_models`): each fold's candidate is trained
on its window with the evaluation's recipe under the schedule's epoch budget and thread count
(:func:`retrain_fit`), compared with the model in use by the strategy's promotion rule
(:func:`scoremodel.retrain.compare`), and the model in use afterwards (the candidate if promoted,
else the previous one) decides the fold's test window. Promotion chains the folds, so their
models are made in order in this process before the runner starts; a runner then scores the
folds (on Ray: in parallel) with the models made.

A runner (:func:`serial_evaluation` here, :func:`evaluation.parallel.ray_evaluation` on Ray)
runs the folds and the scenario checks; the pooled summary is computed in this process while
the scenario checks may still run elsewhere. Both runners pin the same thread counts and seeds,
so they give the same results bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from dataclasses import replace
from pathlib import Path
from typing import Any
from typing import Protocol

import numpy as np
import pandas as pd

from catalogs.funding import read_funding
from evaluation.baselines import GaussianMixtureFilter
from evaluation.baselines import MahalanobisFilter
from evaluation.baselines import Signal
from evaluation.baselines import momentum_signal
from evaluation.baselines import random_sign_flips
from evaluation.baselines import reversal_signal
from evaluation.folds import EvaluationInputError
from evaluation.folds import Fold
from evaluation.folds import RetrainFold
from evaluation.folds import RetrainPlan
from evaluation.folds import Scheme
from evaluation.folds import default_purge
from evaluation.folds import retrain_folds
from evaluation.folds import span_words
from evaluation.folds import walk_forward_folds
from evaluation.forecast_quality import central_coverage
from evaluation.forecast_quality import pit_summary
from evaluation.forecast_quality import rolling_volatility_forecast
from evaluation.parallel import error_line
from evaluation.parallel import fold_threads
from evaluation.parallel import pinned_threads
from evaluation.scenarios import forward_return_check
from evaluation.scenarios import inpaint_forward_returns
from evaluation.scenarios import realism
from evaluation.scenarios import sample_states
from evaluation.simulate import Execution
from evaluation.simulate import ForecastPath
from evaluation.simulate import SignalPath
from evaluation.simulate import SimResult
from evaluation.simulate import simulate_forecasts
from evaluation.simulate import simulate_leverage
from evaluation.simulate import simulate_signals
from evaluation.simulate import with_funding
from evaluation.summary import CONTROLS
from evaluation.summary import GATED
from evaluation.summary import MEAN_FORECASTERS
from evaluation.summary import MODEL
from evaluation.summary import NO_CONFIDENCE
from evaluation.summary import OTHER_RULE
from evaluation.summary import STRATEGIES
from evaluation.summary import FoldRun
from evaluation.summary import confidence_blocked
from evaluation.summary import summarise
from evaluation.volatility import PointGaussian
from evaluation.volatility import volatility_forecasts
from policy.calendar import SECONDS_PER_YEAR
from policy.costs import MAKER
from policy.settings import PolicySettings
from scoremodel.calibration import mean_shrinkage
from scoremodel.cond_data import context_windows
from scoremodel.cond_data import prepare
from scoremodel.cond_predictive import ConditionalModel
from scoremodel.cond_predictive import Predictive
from scoremodel.cond_predictive import predict_batch
from scoremodel.cond_predictive import predictive_cdf
from scoremodel.cond_training import ConditionalTrainConfig
from scoremodel.controls import NLLControl
from scoremodel.controls import RidgeControl
from scoremodel.controls import gaussian_predictive
from scoremodel.datasets import MarketDataset
from scoremodel.density_rule import DEFAULT_DENSITY_RULE
from scoremodel.density_rule import DENSITY_RULES
from scoremodel.density_rule import other_density_rule
from scoremodel.features import DEFAULT_SPEC
from scoremodel.forecast import QUANTILES
from scoremodel.inference import SIGNAL_MODES
from scoremodel.inference import ScoreModel
from scoremodel.pipeline import FitConfig
from scoremodel.pipeline import fit_model
from scoremodel.registry import version_id
from scoremodel.retrain import Verdict
from scoremodel.retrain import compare
from scoremodel.training import TrainConfig

EVAL_EPOCHS = 40
# The production recipe (TrainConfig's defaults) with a smaller epoch budget per fold.
EVAL_TRAINING = replace(TrainConfig(), max_epochs=min(EVAL_EPOCHS, TrainConfig().max_epochs))
EVAL_CONDITIONAL = ConditionalTrainConfig(max_epochs=25)  # the conditional forecaster per fold


@dataclass(frozen=True)
class EvaluationConfig:
    """Every setting of an evaluation run; fixed before it starts, written to the report."""

    n_folds: int = 5
    scheme: Scheme = "expanding"
    min_train_fraction: float = 0.4  # first training window, share of all bars
    train_bars: int | None = None  # rolling window length (default: the first window)
    purge: int | None = None  # default max(h, feature warm-up)
    embargo: int | None = None  # default h
    horizon: int = 6  # label / forecast horizon h in bars (edge mode trades this horizon)
    train: TrainConfig = EVAL_TRAINING
    signal_mode: str = "edge"  # the `model` strategy: the run configuration's signal mode
    context_len: int = 8  # L of the conditional forecaster
    conditional: ConditionalTrainConfig = EVAL_CONDITIONAL  # also the NLL MLP control's budget
    fractions: tuple[float, float, float] = (0.80, 0.15, 0.05)  # fit_model's split of a window
    policy: PolicySettings = field(default_factory=PolicySettings)  # the strategy's rules
    execution: Execution = field(default_factory=Execution)
    vol_baseline_window: int = 100  # W of the Gaussian rolling-volatility forecast
    gmm_components: int = 4
    random_draws: int = 50
    n_boot: int = 500
    n_permutations: int = 50
    scenario_samples: int = 2000
    scenario_states: int = 300
    scenario_paths_per_state: int = 32
    pc_steps: int = 200
    seed: int = 0
    # the run configuration's retrain: section; set, its schedule makes the folds (n_folds,
    # scheme, min_train_fraction and train_bars do not apply)
    retrain: RetrainPlan | None = None

    def resolved(self) -> EvaluationConfig:
        """Defaults filled in: purge = max(h, warm-up), embargo = h; with a retraining
        schedule, the schedule's gaps (:meth:`_schedule_gaps`)."""
        if self.retrain is not None:
            return self._schedule_gaps()
        purge = self.purge if self.purge is not None else default_purge(DEFAULT_SPEC, self.horizon)
        embargo = self.embargo if self.embargo is not None else self.horizon
        if purge < max(self.horizon, DEFAULT_SPEC.warmup_bars - 1) or embargo < self.horizon:
            raise EvaluationInputError(
                f"purge {purge} must be >= max(h, warm-up - 1) and embargo {embargo} >= h "
                f"(h = {self.horizon}, warm-up {DEFAULT_SPEC.warmup_bars}); shorter gaps leak"
            )
        return replace(self, purge=purge, embargo=embargo)

    def _schedule_gaps(self) -> EvaluationConfig:
        """The gaps of a retraining schedule's folds: purge = delay_bars - 1, embargo 0.

        The rule "purge >= max(h, warm-up - 1)" protects folds cut from one labelled series,
        where training labels near the cut are h-bar returns that reach into the test window.
        A retrained model is fit on its window's bars alone (as the strategy's retraining is):
        ``fit_model`` computes every label from those bars, so the last h states of the window
        have none, and its last label ends at the retrain bar t. Its first decision is at
        t + delay_bars, so the delay_bars - 1 bars between hold no training bar and no training
        label; a test state's feature window reaches back into the training window, which the
        strategy's does too (the past, not a leak). Test windows are adjacent (embargo 0), as
        the strategy trades every bar with one version or the next. A purge or embargo given
        for such folds is refused rather than ignored."""
        gap = self.retrain.delay_bars - 1
        if self.retrain.delay_bars < 1:
            raise EvaluationInputError(
                f"retrain.delay_bars {self.retrain.delay_bars} must be >= 1: a model retrained "
                "on bar t decides from bar t + 1 at the earliest"
            )
        if self.purge not in (None, gap) or self.embargo not in (None, 0):
            raise EvaluationInputError(
                f"purge {self.purge} and embargo {self.embargo} do not apply to the folds of a "
                f"retrain schedule: each model trains on its window up to its retrain bar t "
                f"(its labels end there) and decides from t + delay_bars, so the purge is "
                f"delay_bars - 1 = {gap} and consecutive test windows are adjacent (embargo 0); "
                "leave purge and embargo unset"
            )
        scheme = "expanding" if self.retrain.window == "expanding" else "rolling"
        return replace(self, purge=gap, embargo=0, scheme=scheme, train_bars=None)

    def to_dict(self) -> dict:
        return asdict(self)


def bars_per_year(index: pd.DatetimeIndex) -> tuple[float, pd.Timedelta]:
    """N = seconds per year / bar length, from the median spacing of the bars."""
    step = pd.Series(index).diff().median()
    return SECONDS_PER_YEAR / step.total_seconds(), step


class ScenarioChecksError(RuntimeError):
    """The scenario checks failed after every fold finished: ``results`` holds the folds and
    the pooled summary (``results["scenarios"]`` the error), ``runs`` the fold runs."""

    def __init__(self, message: str, results: dict, runs: list[FoldRun]) -> None:
        super().__init__(message)
        self.results = results
        self.runs = runs


def evaluate(
    bars: pd.DataFrame,
    source: str,
    config: EvaluationConfig = EvaluationConfig(),
    log: Callable[[str], None] = print,
    runner: EvaluationRunner | None = None,
) -> tuple[dict, list[FoldRun], dict]:
    """Run the walk-forward evaluation; returns (results for JSON, fold runs, plot data).

    ``runner`` runs the folds and the scenario checks (default :func:`serial_evaluation`, in
    this process; :func:`evaluation.parallel.ray_evaluation` runs them as Ray tasks, the
    scenario checks overlapping the last folds, same results). ``results["timings"]`` splits
    the wall time. When the scenario checks fail, :class:`ScenarioChecksError` carries the
    finished folds and the pooled summary."""
    cfg = config.resolved()
    started = time.perf_counter()
    per_year, step = bars_per_year(bars.index)
    dataset, folds = fold_setup(bars, cfg)
    if cfg.retrain is not None:
        cfg = replace(cfg, n_folds=len(folds))
        log(
            f"{len(bars):,} bars of {source}, {len(folds)} folds of the retrain schedule "
            f"(every {span_words(cfg.retrain.every)}, window {span_words(cfg.retrain.window)}, "
            f"delay {cfg.retrain.delay_bars} bars), bar = {step}"
        )
        if cfg.retrain.on_drift:
            log("retrain.on_drift: retrainings on drift alerts are not modelled, only the schedule")
    else:
        log(f"{len(bars):,} bars of {source}, {len(folds)} {cfg.scheme} folds, bar = {step}")
    timings = {"setup_s": time.perf_counter() - started}
    if cfg.retrain is not None:
        trained = time.perf_counter()
        with pinned_threads(cfg.retrain.threads):
            folds = schedule_models(
                bars,
                folds,
                source,
                retrain_fit(cfg),
                cfg.signal_mode,
                validate=cfg.retrain.validate,
                density_percentile=cfg.policy.density_percentile,
                density_rule=cfg.policy.density_rule,
                log=log,
            )
        timings["retrain_models_s"] = time.perf_counter() - trained
    tasks = (runner or serial_evaluation)(bars, dataset, folds, source, cfg, per_year)
    runs = []
    for fold_run, seconds in tasks.folds:
        runs.append(fold_run)
        fold = fold_run.fold
        model_sharpe = fold_run.summary["strategies"][MODEL]["sharpe"]
        log(
            f"fold {fold.index}: train {len(fold.train):,} bars, test {len(fold.test):,} bars, "
            f"model Sharpe {model_sharpe:+.2f} ({seconds:.0f} s)"
        )
    timings["folds_s"] = time.perf_counter() - started - timings["setup_s"]
    pooled_started = time.perf_counter()
    overall = summarise(runs, cfg, per_year, header={"folds": len(runs)})
    timings["pooled_s"] = time.perf_counter() - pooled_started
    log("scenarios: predictor-corrector samples and inpainted forward returns")
    waiting = time.perf_counter()
    results = {
        "source": source,
        "bars": len(bars),
        "first_bar": str(bars.index[0]),
        "last_bar": str(bars.index[-1]),
        "bar_interval": str(step),
        "bars_per_year": per_year,
        "annualisation": "per-bar returns x sqrt(bars per year), 365.25 days (24/7)",
        "config": cfg.to_dict(),
        "strategies": list(STRATEGIES),
        "folds": [run.summary for run in runs],
        "overall": overall,
        "costs": costs_summary(cfg.execution, runs),
        "schedule": fold_schedule(bars, cfg, folds),
    }
    try:
        scenarios, timings["scenarios_s"] = tasks.scenarios()
    except Exception as error:  # the folds' work is kept: the caller may save it
        line = error_line(error)
        log(f"scenarios FAILED: {line}")
        results["scenarios"] = {"error": line}
        raise ScenarioChecksError(
            f"the scenario checks failed ({line}) after all {len(runs)} folds finished",
            results,
            runs,
        ) from error
    timings["scenarios_wait_s"] = time.perf_counter() - waiting
    results["scenarios"] = scenarios["summary"]
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["timings"] = {name: round(value, 2) for name, value in timings.items()}
    return results, runs, scenarios


def run_execution(run: RunConfigLike) -> Execution:
    """The simulated venue of a run configuration (the file ``run_backtest.py`` reads): its
    starting balance, execution style (``backtest.execution``) and maker timeout."""
    backtest = run.backtest
    return Execution(
        starting_balance=float(backtest.starting_balance),
        style=backtest.execution,
        maker_timeout_bars=int(backtest.maker_timeout_bars),
    )


def funded_bars(bars: pd.DataFrame, catalog: str | Path, instrument_id: str) -> pd.DataFrame:
    """``bars`` with the catalog's funding rates of ``instrument_id`` over their window
    (:func:`evaluation.simulate.with_funding`); unchanged when the catalog holds none there, so
    the simulator charges no funding and the report says so."""
    rates = read_funding(catalog, instrument_id, bars.index[0], bars.index[-1])
    return with_funding(bars, rates) if len(rates) else bars


def costs_summary(execution: Execution, runs: list[FoldRun]) -> dict:
    """How the evaluation charged costs: the execution style and its fee, and funding."""
    times = [run.sims[MODEL].funding_times for run in runs]
    if None in times:
        funding = (
            "not charged: no funding rates for these bars (catalog bars with rates from "
            "`python -m catalogs fetch-funding` are charged; CSV bars are not)"
        )
    else:
        funding = (
            f"charged from the catalog's funding rates: {sum(times)} funding times in the test "
            "windows, position x last close at or before the time x rate"
        )
    return {
        "execution": execution.style,
        "fee": execution.fee,
        "maker_timeout_bars": execution.maker_timeout_bars if execution.style == MAKER else None,
        "funding_charged": None not in times,
        "funding": funding,
    }


class RunConfigLike(Protocol):
    """What :func:`run_execution` reads of a run configuration (runtime.run_config.RunConfig)."""

    backtest: Any


def fold_setup(bars: pd.DataFrame, cfg: EvaluationConfig) -> tuple[MarketDataset, list[Fold]]:
    """The states and labels of ``bars`` and the walk-forward folds ``cfg`` (resolved) asks for:
    ``n_folds`` folds, or with ``cfg.retrain`` one per retraining of its schedule (their models
    still to be made: :func:`schedule_models`)."""
    dataset = MarketDataset.from_bars(bars, DEFAULT_SPEC, cfg.horizon)
    if cfg.retrain is not None:
        return dataset, retrain_folds(bars.index, cfg.retrain.schedule(bar_length_ns(bars.index)))
    folds = walk_forward_folds(
        len(bars),
        cfg.n_folds,
        purge=cfg.purge,
        embargo=cfg.embargo,
        min_train_bars=int(cfg.min_train_fraction * len(bars)),
        scheme=cfg.scheme,
        train_bars=cfg.train_bars,
    )
    return dataset, folds


def bar_length_ns(index: pd.DatetimeIndex) -> int:
    """The bar length in nanoseconds: the median spacing of the bars (as :func:`bars_per_year`)."""
    return int(pd.Series(index).diff().median().value)


# ----- folds of a retraining schedule ----------------------------------------------------------

# The networks the strategy's retraining trains for each signal mode (scoremodel.retrain's
# fit_config_of: the state model and the forecaster the mode trades).
TRADED_NETWORKS = {
    "score": ("signal",),
    "forecast": ("signal", "forecast"),
    "edge": ("signal", "conditional"),
}


def retrain_fit(cfg: EvaluationConfig) -> FitConfig:
    """The recipe of every retraining of ``cfg.retrain``'s folds.

    The strategy retrains with the recipe of the model it trades (read from its manifest,
    :func:`scoremodel.retrain.fit_config_of`) under the schedule's ``epochs`` and ``threads``.
    The evaluation has no base model: its base recipe is its own, the one its ``--folds`` train
    with (``cfg.train``, ``cfg.conditional``, the split ``cfg.fractions``, the horizon and the
    context length), under the same two overrides; ``retrain.epochs`` unset keeps ``--epochs``.
    Every model is trained (:data:`SIGNAL_MODES`): the evaluation's other strategies need
    them, and the networks of the traded mode come out the same (each is trained from its own
    seed; :func:`traded_view`)."""
    plan = cfg.retrain
    train, conditional = cfg.train, cfg.conditional
    if plan.epochs is not None:
        train = replace(train, max_epochs=plan.epochs)
        conditional = replace(conditional, max_epochs=plan.epochs)
    train = replace(train, threads=plan.threads)
    conditional = replace(conditional, threads=plan.threads)
    return FitConfig(
        train=train,
        fractions=cfg.fractions,
        modes=SIGNAL_MODES,
        horizon=cfg.horizon,
        context_len=cfg.context_len,
        horizons=conditional_horizons(cfg.horizon),
        conditional=conditional,
    )


def traded_view(model: ScoreModel, signal_mode: str) -> ScoreModel:
    """``model`` as the strategy trading ``signal_mode`` trains and stores it: the state model
    and the mode's forecaster only. Each network is trained from its own seed, so a model
    fit with every mode holds the weights of one fit with the strategy's modes; the view's
    version id and promotion verdict are the strategy's."""
    names = TRADED_NETWORKS[signal_mode]
    stored = model.manifest["models"]
    if set(stored) == set(names):
        return model
    manifest = {**model.manifest, "models": {k: v for k, v in stored.items() if k in names}}
    weights = {k: v for k, v in model.weights.items() if k in names}
    return ScoreModel(manifest, weights, model.density_percentile, model.density_rule)


def model_version_id(model: ScoreModel) -> str:
    """The registry's content id (:func:`scoremodel.registry.version_id`) of a stored or an
    in-memory model."""
    stored = all("sha256" in entry for entry in model.manifest["models"].values())
    return version_id(model.manifest) if stored else version_id(model.manifest, model.weights)


def schedule_models(
    bars: pd.DataFrame,
    folds: list[RetrainFold],
    bar_type: str,
    fit: FitConfig,
    signal_mode: str,
    *,
    validate: bool = True,
    current: ScoreModel | None = None,
    density_percentile: float = 5.0,
    density_rule: str = DEFAULT_DENSITY_RULE,
    log: Callable[[str], None] = print,
) -> list[RetrainFold]:
    """The folds with the model that decides each test window, made in order as the strategy
    makes them (:func:`scoremodel.retrain.run_retrain` without the registry).

    Fold k's candidate is ``fit_model`` of its window with ``fit`` (every mode); it is compared
    with the model in use by :func:`scoremodel.retrain.compare` on the strategy's view of both
    (:func:`traded_view`); promoted, it decides fold k's test window and becomes the model in
    use, else the model in use decides it. ``current`` is the model in use before the first
    fold (the strategy's base model); None (the evaluation, which has none): the first
    candidate is promoted ("no model in use to compare with"). ``validate`` False promotes
    every candidate (``retrain.validate: false``). Each fold's ``version`` records the id of
    the model deciding it (``model``), its candidate's id, the verdict and both windows."""
    fit = replace(fit, modes=SIGNAL_MODES)
    in_use, in_use_view = current, None if current is None else traded_view(current, signal_mode)
    in_use_id = None if current is None else model_version_id(current)  # as the strategy names it
    made = []
    for fold in folds:
        window = bars.iloc[fold.train.start : fold.train.stop]
        candidate = fit_model(window, bar_type, fit, progress=False)
        candidate.set_density_filter(density_percentile, density_rule)
        view = traded_view(candidate, signal_mode)
        verdict = (
            compare(view, in_use_view, window, fit)
            if validate
            else Verdict(True, "promoted without validation (retrain.validate: false)")
        )
        candidate_id = model_version_id(view)
        if verdict.promoted:
            in_use, in_use_view, in_use_id = candidate, view, candidate_id
        data = in_use.manifest["data"]
        version = {
            "model": in_use_id,
            "candidate": candidate_id,
            "promoted": verdict.promoted,
            "reason": verdict.reason,
            "model_trained_from": data["first_bar"],
            "model_trained_to": data["last_bar"],
            "retrain_bar": str(bars.index[fold.due]),
            "first_decision": str(bars.index[fold.test.start]),
        }
        log(
            f"retraining at {bars.index[fold.due]} on {len(window):,} bars: {version['candidate']} "
            + ("promoted" if verdict.promoted else f"not promoted ({verdict.reason})")
            + f"; {version['model']} decides from {bars.index[fold.test.start]}"
        )
        made.append(replace(fold, model=in_use, version=version))
    return made


def fold_schedule(bars: pd.DataFrame, cfg: EvaluationConfig, folds: list[Fold]) -> dict:
    """evaluation.json ``schedule``: what made the folds and their boundaries (close times)."""
    idx = bars.index

    def bounds(fold: Fold) -> dict:
        times = {
            "train_first": str(idx[fold.train.start]),
            "train_last": str(idx[fold.train.stop - 1]),
            "test_first": str(idx[fold.test.start]),
            "test_last": str(idx[fold.test.stop - 1]),
        }
        return fold.to_dict() | times

    if cfg.retrain is None:
        made_by = f"--folds: {cfg.n_folds} {cfg.scheme} walk-forward folds"
    else:
        made_by = (
            f"retrain: every {span_words(cfg.retrain.every)}, window "
            f"{span_words(cfg.retrain.window)}, min_bars {cfg.retrain.min_bars}, delay_bars "
            f"{cfg.retrain.delay_bars}; one fold per retraining, tested from its first "
            "decision to the next retraining's"
        )
    return {
        "from": "retrain" if cfg.retrain is not None else "folds",
        "made_by": made_by,
        "retrain": None if cfg.retrain is None else asdict(cfg.retrain),
        "folds": [bounds(fold) for fold in folds],
    }


@dataclass(frozen=True)
class EvaluationTasks:
    """What a runner returns: the fold runs and the scenario checks of the last fold's model.

    ``folds`` yields (run, seconds) in fold order; ``scenarios()``, called after them, returns
    (the checks of :func:`scenario_checks`, their seconds), or raises the checks' own error."""

    folds: Iterable[tuple[FoldRun, float]]
    scenarios: Callable[[], tuple[dict, float]]


EvaluationRunner = Callable[
    [pd.DataFrame, MarketDataset, list[Fold], str, EvaluationConfig, float], EvaluationTasks
]


def serial_evaluation(
    bars: pd.DataFrame,
    dataset: MarketDataset,
    folds: list[Fold],
    source: str,
    cfg: EvaluationConfig,
    per_year: float,
) -> EvaluationTasks:
    """The folds (:func:`serial_folds`), then the scenario checks, in this process, each with
    the thread count a Ray task pins (:func:`evaluation.parallel.fold_threads`)."""
    runs: list[FoldRun] = []

    def fold_runs() -> Iterator[tuple[FoldRun, float]]:
        for fold_run, seconds in serial_folds(bars, dataset, folds, source, cfg, per_year):
            runs.append(fold_run)
            yield fold_run, seconds

    def scenarios() -> tuple[dict, float]:
        started = time.perf_counter()
        with pinned_threads(fold_threads(cfg)):
            checks = scenario_checks(bars, dataset, runs[-1], cfg)
        return checks, time.perf_counter() - started

    return EvaluationTasks(fold_runs(), scenarios)


def serial_folds(
    bars: pd.DataFrame,
    dataset: MarketDataset,
    folds: list[Fold],
    source: str,
    cfg: EvaluationConfig,
    per_year: float,
) -> Iterator[tuple[FoldRun, float]]:
    """Each fold in this process, in order: (its run, its seconds). Each runs with the thread
    counts a Ray fold task pins (:func:`evaluation.parallel.pinned_threads`): same results."""
    for fold in folds:
        started = time.perf_counter()
        with pinned_threads(fold_threads(cfg)):
            fold_run = run_fold(bars, dataset, fold, source, cfg, per_year)
        yield fold_run, time.perf_counter() - started


def run_fold(
    bars: pd.DataFrame,
    dataset: MarketDataset,
    fold: Fold,
    source: str,
    cfg: EvaluationConfig,
    per_year: float,
) -> FoldRun:
    """Train on the fold's training bars, then score every strategy on its test window (a
    retrain schedule's fold: its model is made already, :func:`schedule_models`)."""
    train_bars = bars.iloc[fold.train.start : fold.train.stop]
    horizons = conditional_horizons(cfg.horizon)
    if isinstance(fold, RetrainFold):
        if fold.model is None:
            raise ValueError(
                f"retrain fold {fold.index} has no model: evaluate() makes them in order with "
                "schedule_models (promotion depends on the previous folds)"
            )
        model = fold.model
    else:
        fit = FitConfig(
            train=cfg.train,
            fractions=cfg.fractions,
            horizon=cfg.horizon,
            context_len=cfg.context_len,
            horizons=horizons,
            conditional=cfg.conditional,
        )
        model = fit_model(train_bars, source, fit, progress=False)
    model.set_density_filter(cfg.policy.density_percentile, cfg.policy.density_rule)
    train_states = dataset.states.loc[dataset.states.index.intersection(train_bars.index)]
    # Decisions also see the k - 1 bars before the window (the strategy's warm-up history), and
    # the forecasters the L - 1 states before that (their context).
    lead = cfg.policy.consistency_bars - 1
    context = cfg.context_len - 1
    states = dataset.states.loc[bars.index[fold.test.start - lead : fold.test.stop]]
    history = dataset.states.loc[bars.index[fold.test.start - lead - context : fold.test.stop]]
    test_index = states.index[lead:]
    signals, flags, forecast = _fold_signals(model, states, train_states, cfg)
    vol = states[f"vol_{DEFAULT_SPEC.vol_window}"].to_numpy()
    test_bars = bars.loc[test_index]
    costs = cfg.policy.costs(fee=cfg.execution.fee)  # the fee of the execution style in force
    predictives, shrinkage = _forecasters(
        model, train_bars, history, horizons, cfg, costs.round_trip
    )
    predictives = {name: _last(p, len(test_index)) for name, p in predictives.items()}

    def run(name: str, familiar: np.ndarray, policy: PolicySettings = cfg.policy) -> SimResult:
        signal = signals[name]
        path = SignalPath(signal.direction, signal.confidence, familiar, vol, lead=lead)
        return simulate_signals(test_bars, path, policy, per_year, cfg.execution)

    def run_forecaster(
        name: str, familiar: np.ndarray, policy: PolicySettings = cfg.policy
    ) -> SimResult:
        p = predictives[name]
        path = ForecastPath(
            p.mean,
            p.std,
            p.p_up_cost,
            p.p_down_cost,
            familiar[lead:],
            vol[lead:],
            shrinkage[name],
            model.conditional.horizon_map(-1) if name == MODEL else None,
        )
        return simulate_forecasts(test_bars, path, policy, per_year, cfg.horizon, cfg.execution)

    def run_model(familiar: np.ndarray, policy: PolicySettings = cfg.policy) -> SimResult:
        if cfg.signal_mode == "edge":
            return run_forecaster(MODEL, familiar, policy)
        return run("model_" + cfg.signal_mode, familiar, policy)

    def run_leverage(leverage: np.ndarray, risk_rules: bool = True) -> SimResult:
        return simulate_leverage(
            test_bars, leverage, cfg.policy, per_year, cfg.execution, risk_rules=risk_rules
        )

    everywhere = np.ones(len(states), dtype=bool)
    forecast_familiar = forecast["in_distribution"].to_numpy(bool)
    sims = {
        MODEL: run_model(flags["model"]),
        "model_no_filter": run_model(everywhere),
        "model_mahalanobis": run_model(flags["mahalanobis"]),
        "model_gmm": run_model(flags["gmm"]),
        OTHER_RULE: run_model(flags[OTHER_RULE]),
        NO_CONFIDENCE: run_model(flags["model"], replace(cfg.policy, min_confidence=0.0)),
        "model_score": run("model_score", flags["model"]),
        "model_forecast": run("model_forecast", forecast_familiar),
        "ridge": run_forecaster("ridge", flags["model"]),
        "nll_mlp": run_forecaster("nll_mlp", flags["model"]),
        "momentum": run("momentum", everywhere),
        "reversal": run("reversal", everywhere),
        "buy_and_hold": run_leverage(np.ones(len(test_index)), risk_rules=False),
    }
    for key, familiar in flags.items():  # each filter as a risk gate on buy-and-hold
        gate = run_leverage(familiar[lead:].astype(np.float64), risk_rules=False)
        sims[GATED + key] = replace(gate, decisions=[])  # only its equity is pooled
    flips = random_sign_flips(sims[MODEL].target, cfg.random_draws, seed=cfg.seed + fold.index)
    random_sims = [run_leverage(path) for path in flips]
    sims["random"] = random_sims[0]
    sigma = rolling_volatility_forecast(bars, cfg.horizon, cfg.vol_baseline_window)
    yardsticks, fits = _volatility_predictives(bars, fold, cfg.horizon, test_index)
    fold_signals = {name: signal.raw[lead:] for name, signal in signals.items()}
    fold_signals.update({name: predictives[name].mean for name in (MODEL, *CONTROLS)})
    if cfg.signal_mode != "edge":
        fold_signals[MODEL] = fold_signals["model_" + cfg.signal_mode]
    run_ = FoldRun(
        fold=fold,
        sims=sims,
        # Only the draws' metrics are pooled; their per-bar decisions (Python objects) took most
        # of the time to pickle a fold's result for the trip back from a Ray worker.
        random_sims=[replace(sim, decisions=[]) for sim in random_sims],
        signals=fold_signals,
        forward=dataset.forward.loc[test_index].to_numpy(),
        predictives={
            **{name: (p.quantiles, p.p_up) for name, p in predictives.items()},
            **yardsticks,
        },
        baseline_sigma=sigma.loc[test_index].to_numpy(),
        flags={name: flag[lead:] for name, flag in flags.items()},
        model=model,
        summary={},
        means={name: predictives[name].mean for name in MEAN_FORECASTERS},
        blocked_by_confidence=confidence_blocked(sims[MODEL], len(test_index)),
    )
    run_.summary = summarise(
        [run_],
        cfg,
        per_year,
        header=fold.to_dict()
        | _window(bars, fold, model)
        | {
            "yardstick_fits": fits,
            "model_calibration": _model_calibration(model, history, run_.forward),
        },
    )
    return run_


def conditional_horizons(horizon: int) -> tuple[int, ...]:
    """The conditional forecaster's horizons in an evaluation: 1, 3 and h, up to h (h last:
    the horizon traded and scored)."""
    return tuple(sorted({h for h in (1, 3) if h < horizon} | {horizon}))


def _forecasters(
    model: ScoreModel,
    train_bars: pd.DataFrame,
    history: pd.DataFrame,
    horizons: tuple[int, ...],
    cfg: EvaluationConfig,
    cost: float,
) -> tuple[dict[str, Predictive], dict[str, float]]:
    """The traded horizon's predictive of the score model and of its two controls (ridge and a
    same-size Gaussian-NLL MLP on the same contexts, with the same training budget), and each
    one's mean shrinkage from the fit's own validation block; and ``point_gauss`` (not traded):
    ridge's mean with a constant Gaussian std, the std of ridge's training residuals of the raw
    h-bar return (ridge's own predictive scales its std with the bar's volatility instead)."""
    raw = history.to_numpy()
    data = prepare(train_bars, horizons, cfg.context_len, cfg.fractions)
    contexts = context_windows(data.scaling.states.transform(raw), cfg.context_len)
    ridge = RidgeControl.fit(data.train.context, data.train.target, data.val.context,
                             data.val.target)  # fmt: skip
    nll = NLLControl.fit(
        data.train.context, data.train.target, data.val.context, data.val.target,
        cfg.conditional, progress=False,
    )  # fmt: skip
    val = data.val
    shrinkage = {
        MODEL: model.mean_shrinkage[-1],
        "ridge": mean_shrinkage(
            ridge.predict(val.context, val.states, data.scaling).mean[:, -1], val.forward[:, -1]
        )[0],
        "nll_mlp": mean_shrinkage(
            nll.predict(val.context, val.states, data.scaling).mean[:, -1], val.forward[:, -1]
        )[0],
    }
    predictives = {
        name: _horizon(predictive, -1)
        for name, predictive in {
            MODEL: predict_batch(model.conditional, raw, cost),
            "ridge": ridge.predict(contexts, raw, data.scaling, cost),
            "nll_mlp": nll.predict(contexts, raw, data.scaling, cost),
        }.items()
    }
    train = data.train
    ridge_train = ridge.predict(train.context, train.states, data.scaling).mean[:, -1]
    point = PointGaussian().fit(ridge_train, train.forward[:, -1])
    mean = predictives["ridge"].mean
    predictives["point_gauss"] = gaussian_predictive(mean, np.full(len(mean), point.std), cost)
    return predictives, shrinkage


def _model_calibration(model: ScoreModel, history: pd.DataFrame, forward: np.ndarray) -> dict:
    """The traded horizon's validated calibration: the mean's slope beta and the CDF map g
    (the validation rows it was fitted on, and max |g(u) - u| over its knots: 0 for a
    predictive the validation block found calibrated; None without a map). The model's
    predictive scored here carries g (:func:`scoremodel.cond_predictive.predict_batch`).

    ``exact_pit`` and ``exact_pit_without_map``: the PIT of the test window's ``forward``
    returns read from the model's own CDF (:func:`scoremodel.cond_predictive.predictive_cdf`),
    with and without g: its KS distance and central coverage, free of the interpolation
    between the five published quantiles that the forecast scores use for every forecaster."""
    conditional = model.conditional
    cdf_map = conditional.cdf_map
    levels = None if cdf_map is None else np.linspace(0.0, 1.0, cdf_map.knots.shape[1])
    raw = history.to_numpy()
    x = np.full((len(raw), conditional.network.n_horizons), np.nan)
    x[len(raw) - len(forward) :, -1] = forward

    def exact(forecaster: ConditionalModel) -> dict:
        u = predictive_cdf(forecaster, raw, x)[len(raw) - len(forward) :, -1]
        u = u[np.isfinite(u)]
        return {"n": len(u), "ks": pit_summary(u)["ks"], "central_coverage": central_coverage(u)}

    return {
        "mean_shrinkage": float(model.mean_shrinkage[-1]),
        "cdf_map_rows": None if cdf_map is None else cdf_map.rows,
        "cdf_map_max_shift": None
        if cdf_map is None
        else float(np.abs(cdf_map.knots[-1] - levels).max()),
        "exact_pit": exact(conditional),
        "exact_pit_without_map": exact(replace(conditional, cdf_map=None)),
    }


def _volatility_predictives(
    bars: pd.DataFrame, fold: Fold, horizon: int, test_index: pd.Index
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, dict]]:
    """(quantiles, P(up)) of GARCH, HAR-RV and EWMA (:mod:`evaluation.volatility`) at the test
    bars, fit on the fold's training bars and filtered from its first training bar up to each
    test bar; and their fits."""
    train_bars = bars.iloc[fold.train.start : fold.train.stop]
    window = bars.iloc[fold.train.start : fold.test.stop]
    if not window.index[-len(test_index) :].equals(test_index):
        raise ValueError(f"fold {fold.index}: the test bars are not the window's last bars")
    levels = np.asarray(QUANTILES)
    forecasts, fits = volatility_forecasts(train_bars, window, horizon, len(test_index))
    predictives = {
        name: (forecast.quantiles(levels), forecast.p_up()) for name, forecast in forecasts.items()
    }
    return predictives, fits


def _horizon(p: Predictive, k: int) -> Predictive:
    return Predictive(
        mean=p.mean[:, k],
        std=p.std[:, k],
        quantiles=p.quantiles[:, k],
        p_up=p.p_up[:, k],
        p_up_cost=p.p_up_cost[:, k],
        p_down_cost=p.p_down_cost[:, k],
    )


def _last(p: Predictive, n: int) -> Predictive:
    return Predictive(*(getattr(p, f.name)[-n:] for f in fields(Predictive)))


def _fold_signals(
    model: ScoreModel, states: pd.DataFrame, train_states: pd.DataFrame, cfg: EvaluationConfig
) -> tuple[dict[str, Signal], dict[str, np.ndarray], pd.DataFrame]:
    """Signals of the model and the baselines, and the in-distribution filters: the model's
    density by the run's rule (``model``) and by the other rule (:data:`OTHER_RULE`),
    Mahalanobis and a Gaussian mixture."""
    score = model.assess_batch(states, mode="score")
    forecast = model.assess_batch(states, mode="forecast")
    z_train = model.normaliser.transform(train_states.to_numpy())
    z = model.normaliser.transform(states.to_numpy())
    share = cfg.policy.density_percentile / 100
    gmm = GaussianMixtureFilter.fit(z_train, cfg.gmm_components, share, seed=cfg.seed)
    other = other_density_rule(cfg.policy.density_rule)
    other_threshold = model.density_threshold_for(other, cfg.policy.density_percentile)
    flags = {
        "model": score["in_distribution"].to_numpy(bool),
        OTHER_RULE: score["log_density"].to_numpy() >= other_threshold,
        "mahalanobis": MahalanobisFilter.fit(z_train, share).in_distribution(z),
        "gmm": gmm.in_distribution(z),
    }
    momentum = f"momentum_{DEFAULT_SPEC.momentum_lookback}"

    def of(frame: pd.DataFrame) -> Signal:
        return Signal(*(frame[k].to_numpy() for k in ("direction", "confidence", "signal")))

    signals = {
        "model_score": of(score),
        "model_forecast": of(forecast),
        "momentum": momentum_signal(states[momentum].to_numpy(), train_states[momentum].to_numpy()),
        "reversal": reversal_signal(states["ret_1"].to_numpy(), train_states["ret_1"].to_numpy()),
    }
    return signals, flags, forecast


def _window(bars: pd.DataFrame, fold: Fold, model: ScoreModel) -> dict:
    idx = bars.index
    entry = model.manifest["models"]["signal"]
    return {
        "train_first": str(idx[fold.train.start]),
        "train_last": str(idx[fold.train.stop - 1]),
        "test_first": str(idx[fold.test.start]),
        "test_last": str(idx[fold.test.stop - 1]),
        "best_epoch": entry["best_epoch"],
        "epochs_run": entry["epochs_run"],
        "density_threshold": model.density_threshold,
        **density_rules(model),
    }


def density_rules(model: ScoreModel) -> dict:
    """A fold's density filter by both rules (:mod:`scoremodel.density_rule`): the rule the run
    trades and the one in force (a model without the reliability measurement keeps the
    percentile rule), each rule's threshold (None: flags nothing) and the reliability rule's
    measurement on the fold model's validation block."""
    thresholds = {
        rule: model.density_threshold_for(rule, model.density_percentile) for rule in DENSITY_RULES
    }
    reliability = model.reliability
    return {
        "density_rule": model.density_rule,
        "density_rule_in_force": model.density_rule_in_force,
        "density_thresholds": {
            rule: (value if np.isfinite(value) else None) for rule, value in thresholds.items()
        },
        "density_reliability": None
        if reliability is None
        else {
            key: reliability.get(key)
            for key in (
                "threshold",
                "training_percentile",
                "unreliable_bins",
                "rows",
                "reference_skill",
                "reason",
                "validation_first",
                "validation_last",
            )
        }
        | {"bin_skill": [b["skill"] for b in reliability["bins"]]},
    }


def scenario_checks(
    bars: pd.DataFrame, dataset: MarketDataset, run: FoldRun, cfg: EvaluationConfig
) -> dict:
    """Realism of a fold model's samples (the evaluation: the last fold's) against that fold's
    held-out test states, and its inpainted forward returns against the realised ones."""
    model, fold = run.model, run.fold
    names = list(DEFAULT_SPEC.names)
    heldout_index = bars.index[fold.test.start : fold.test.stop]
    heldout = dataset.states.loc[heldout_index].to_numpy()
    train_index = dataset.states.index.intersection(bars.index[fold.train.start : fold.train.stop])
    train = dataset.states.loc[train_index].to_numpy()
    samples = sample_states(model, cfg.scenario_samples, cfg.pc_steps, seed=cfg.seed).to_numpy()
    states_check = realism(samples, heldout, train, names, seed=cfg.seed)

    rng = np.random.default_rng(cfg.seed)
    known = np.flatnonzero(np.isfinite(run.forward))
    chosen = np.sort(rng.choice(known, min(cfg.scenario_states, len(known)), replace=False))
    paths = inpaint_forward_returns(
        model, heldout[chosen], cfg.scenario_paths_per_state, cfg.pc_steps, seed=cfg.seed
    )
    vol = heldout[chosen, names.index(f"vol_{DEFAULT_SPEC.vol_window}")]
    stress = vol >= np.quantile(vol, 0.9)
    returns_check = forward_return_check(paths, run.forward[chosen], stress)
    summary = {"fold": fold.index, "states": states_check, "forward_returns": returns_check}
    return {"summary": summary, "samples": samples, "heldout": heldout, "train": train}
