"""One retraining: fit a candidate on a window of bars, compare it with the model in use, store it.

:func:`run_retrain` is the whole job, the same in a backtest (called in the engine's thread),
in a live node's training process (:mod:`strategies.retraining` starts it there) and in the
walk-forward evaluation: the candidate is trained exactly as the model in use was
(:func:`fit_config_of` reads the recipe from its manifest; the number of epochs, threads and
modes may be overridden), so the same bars give the same weights and the same version id.

**Promotion** (:func:`compare`): on the candidate's own test block, the most recent bars of the
window it did not train on (the last ``fractions[2]`` of them), both models forecast the traded
horizon's forward log return r. Each is scored as it is traded: the predictive mean shrunk by
its validated slope beta, N(beta mu, s^2), by the Gaussian CRPS against the realised r on each
bar, and by its calibrated mean slope on the block, beta_block = clip(Cov(mu, r) / Var(mu), 0,
1). The candidate is promoted when it is not worse on both::

    z = mean(CRPS_new - CRPS_current) / se <= CRPS_WORSE_Z (1.645)
    beta_new >= beta_current - SLOPE_TOLERANCE (0.05)

where se is the Newey-West standard error of the mean per-bar difference with h lags (the
h-bar returns of neighbouring bars overlap): a candidate is refused only when its CRPS is worse
beyond chance at the one-sided 5 % level (an edge lives on a few event bars, so the mean CRPS of
a whole block moves little with it and a fixed tolerance would decide on noise), or when its
calibrated slope is lower. Otherwise the current model stays, and the reason (the figures) is
recorded. Without a
conditional forecaster (score and forecast modes) there is nothing to score a forecast by: the
candidate is promoted, and the record says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from scoremodel.calibration import mean_shrinkage
from scoremodel.cond_data import prepare
from scoremodel.cond_predictive import predict_batch
from scoremodel.cond_training import ConditionalTrainConfig
from scoremodel.datasets import DEFAULT_FRACTIONS
from scoremodel.density_rule import DEFAULT_DENSITY_RULE
from scoremodel.features import DEFAULT_SPEC
from scoremodel.features import compute_features
from scoremodel.gaussian import crps_gaussian
from scoremodel.inference import ScoreModel
from scoremodel.pipeline import FitConfig
from scoremodel.pipeline import fit_model
from scoremodel.registry import Registry
from scoremodel.training import TrainConfig

CRPS_WORSE_Z = 1.645  # a CRPS not worse at the one-sided 5 % level (paired, Newey-West)
SLOPE_TOLERANCE = 0.05  # a calibrated slope at most 0.05 lower is not worse
TRADED = -1  # the traded horizon: the forecaster's longest (strategies.bar_decider)


def fit_config_of(
    manifest: dict,
    signal_mode: str,
    epochs: int | None = None,
    threads: int | None = None,
) -> FitConfig:
    """The recipe the model of ``manifest`` was trained with, for ``signal_mode``'s models only
    (the state model, and the conditional or joint forecaster the mode trades), with the epoch
    budget and thread count (part of bit-identity) set when given."""
    train = TrainConfig(**manifest["training"])
    conditional = manifest.get("conditional", {})
    cond = ConditionalTrainConfig(**conditional.get("train_config", {}))
    if epochs is not None:
        train = replace(train, max_epochs=epochs)
        cond = replace(cond, max_epochs=epochs)
    if threads is not None:
        train = replace(train, threads=threads)
        cond = replace(cond, threads=threads)
    inference = manifest["inference"]
    defaults = FitConfig()
    return FitConfig(
        train=train,
        fractions=tuple(manifest["data"].get("fractions", DEFAULT_FRACTIONS)),
        modes=("score",) if signal_mode == "score" else ("score", signal_mode),
        horizon=int(inference["forecast_horizon"]),
        forecast_sigma=float(inference["forecast_sigma"]),
        forecast_grid=int(inference["forecast_grid"]),
        context_len=int(conditional.get("context_len", defaults.context_len)),
        horizons=tuple(conditional.get("horizons", defaults.horizons)),
        conditional=cond,
    )


@dataclass(frozen=True)
class Verdict:
    """Whether a candidate replaces the model in use, why, and the figures behind it."""

    promoted: bool
    reason: str
    metrics: dict = field(default_factory=dict)


def compare(
    candidate: ScoreModel, current: ScoreModel | None, bars: pd.DataFrame, fit: FitConfig
) -> Verdict:
    """The promotion rule of the module docstring, on the candidate's test block of ``bars``."""
    if current is None:
        return Verdict(True, "no model in use to compare with")
    if candidate.conditional is None or current.conditional is None:
        return Verdict(True, "promoted without a forecast score (no conditional forecaster)")
    block = prepare(bars, fit.horizons, fit.context_len, fit.fractions, fit.spec).test
    features = compute_features(bars, fit.spec)
    states, rows = features.to_numpy(), features.index.get_indexer(block.index)
    realised = block.forward[:, TRADED]
    new = _forecast_score(candidate, states, rows, realised)
    old = _forecast_score(current, states, rows, realised)
    horizon = candidate.conditional.horizons[TRADED]
    crps_z = paired_z(new.pop("crps_rows") - old.pop("crps_rows"), lag=horizon)
    metrics = {
        **{f"candidate_{key}": value for key, value in new.items()},
        **{f"current_{key}": value for key, value in old.items()},
        "crps_difference_z": crps_z,
        "block_first": str(block.index[0]),
        "block_last": str(block.index[-1]),
        "block_rows": len(rows),
    }
    crps_ok = crps_z <= CRPS_WORSE_Z
    slope_ok = new["slope"] >= old["slope"] - SLOPE_TOLERANCE
    figures = (
        f"CRPS {new['crps']:.6g} vs {old['crps']:.6g} (difference z = {crps_z:+.2f}), slope "
        f"{new['slope']:.3f} vs {old['slope']:.3f} on the {len(rows)} most recent bars it did "
        "not train on"
    )
    if crps_ok and slope_ok:
        return Verdict(True, f"not worse than the current model: {figures}", metrics)
    worse = " and ".join(
        what for what, ok in (("CRPS", crps_ok), ("calibrated slope", slope_ok)) if not ok
    )
    return Verdict(False, f"{worse} worse than the current model: {figures}", metrics)


def paired_z(differences: np.ndarray, lag: int) -> float:
    """mean(d) / its Newey-West standard error with ``lag`` lags (Bartlett weights): the
    differences of neighbouring bars' h-bar scores overlap, so they are not independent."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    centred = d - d.mean()
    n = len(d)
    variance = centred @ centred / n
    for k in range(1, min(lag, n - 1) + 1):
        variance += 2.0 * (1.0 - k / (lag + 1)) * (centred[k:] @ centred[:-k]) / n
    if not variance > 0.0:
        return 0.0 if d.mean() == 0.0 else math.copysign(math.inf, d.mean())
    return float(d.mean() / math.sqrt(variance / n))


def _forecast_score(
    model: ScoreModel, states: np.ndarray, rows: np.ndarray, realised: np.ndarray
) -> dict:
    """The traded horizon's Gaussian CRPS per row (the mean shrunk as traded) and its mean,
    and the block slope."""
    predictive = predict_batch(model.conditional, states)
    mean = predictive.mean[rows, TRADED]
    std = predictive.std[rows, TRADED]
    crps = crps_gaussian(model.mean_shrinkage[TRADED] * mean, std, realised)
    slope = float(mean_shrinkage(mean, realised)[0])
    return {"crps": float(np.mean(crps)), "slope": slope, "crps_rows": crps}


@dataclass(frozen=True)
class RetrainJob:
    """What one retraining needs; plain values, so that a training process can receive it."""

    bars: pd.DataFrame  # the window: OHLCV, indexed by close time (UTC), up to the due bar
    bar_type: str
    fit: FitConfig
    registry_root: str  # where the candidate is stored (Registry)
    current_dir: str | None  # the checkpoint in use, compared with (None: promote)
    validate: bool = True
    due_ns: int = 0  # close time of the bar the retraining was due at
    activation_ns: int = 0  # close time of the first bar the candidate may decide
    density_percentile: float = 5.0
    density_rule: str = DEFAULT_DENSITY_RULE  # scoremodel.density_rule


@dataclass(frozen=True)
class RetrainOutcome:
    """A finished retraining: the stored version and the promotion verdict."""

    identity: str
    promoted: bool
    reason: str
    record: dict
    seconds: float


def run_retrain(job: RetrainJob, current: ScoreModel | None = None) -> RetrainOutcome:
    """Fit, compare, store (:class:`Registry`); ``current`` saves loading ``job.current_dir``."""
    started = time.perf_counter()
    candidate = fit_model(job.bars, job.bar_type, job.fit, progress=False)
    if current is None and job.current_dir is not None:
        current = ScoreModel.load(
            job.current_dir, DEFAULT_SPEC, job.density_percentile, job.density_rule
        )
    verdict = (
        compare(candidate, current, job.bars, job.fit)
        if job.validate
        else Verdict(True, "promoted without validation (retrain.validate: false)")
    )
    record = {
        "trained_from": str(job.bars.index[0]),
        "trained_to": str(job.bars.index[-1]),
        "bars": len(job.bars),
        "due_bar": str(pd.Timestamp(job.due_ns, tz="UTC")),
        "activation_bar": str(pd.Timestamp(job.activation_ns, tz="UTC")),
        "promoted": verdict.promoted,
        "reason": verdict.reason,
        "metrics": verdict.metrics,
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    identity = Registry(Path(job.registry_root)).add(candidate.manifest, candidate.weights, record)
    return RetrainOutcome(
        identity, verdict.promoted, verdict.reason, record, time.perf_counter() - started
    )
