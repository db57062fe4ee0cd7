"""Bars in, calibrated checkpoint out: features, split, normalise, train, calibrate, save."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scoremodel.calibration import CdfMap
from scoremodel.calibration import QuantileTable
from scoremodel.calibration import mean_shrinkage
from scoremodel.checkpoint import library_versions
from scoremodel.checkpoint import save_checkpoint
from scoremodel.cond_checkpoint import conditional_section
from scoremodel.cond_data import prepare
from scoremodel.cond_predictive import ConditionalModel
from scoremodel.cond_predictive import predict_batch
from scoremodel.cond_predictive import predictive_cdf
from scoremodel.cond_training import ConditionalTrainConfig
from scoremodel.cond_training import train_conditional
from scoremodel.datasets import DEFAULT_FRACTIONS
from scoremodel.datasets import MarketDataset
from scoremodel.datasets import Split
from scoremodel.datasets import chronological_split
from scoremodel.density_rule import RELIABILITY_KEY
from scoremodel.density_rule import validation_reliability
from scoremodel.features import DEFAULT_SPEC
from scoremodel.features import FeatureSpec
from scoremodel.features import compute_features
from scoremodel.inference import SIGNAL_MODES
from scoremodel.inference import InferenceSettings
from scoremodel.inference import ScoreModel
from scoremodel.network import ScoreNetwork
from scoremodel.normalise import Normaliser
from scoremodel.sigmas import geometric_sigmas
from scoremodel.training import TrainConfig
from scoremodel.training import TrainResult
from scoremodel.training import ValidationSet
from scoremodel.training import train_score_network


@dataclass(frozen=True)
class FitConfig:
    """Everything that decides a model, besides the bars."""

    train: TrainConfig = field(default_factory=TrainConfig)
    spec: FeatureSpec = DEFAULT_SPEC
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    modes: tuple[str, ...] = SIGNAL_MODES
    horizon: int = 12  # forecast mode: forward return over this many bars
    forecast_sigma: float = 0.2  # z-units; see scoremodel.forecast
    forecast_grid: int = 16
    # edge mode: the conditional forecaster (scoremodel.cond_*)
    context_len: int = 8  # L: the market states of the last L bars
    horizons: tuple[int, ...] = (1, 3, 6)  # forward log returns over these many bars
    conditional: ConditionalTrainConfig = field(default_factory=ConditionalTrainConfig)

    def __post_init__(self) -> None:
        unknown = set(self.modes) - set(SIGNAL_MODES)
        if unknown or "score" not in self.modes:
            raise ValueError(
                f"modes must include 'score' and be among {SIGNAL_MODES}, got {self.modes}"
            )


def fit_model(
    bars: pd.DataFrame, bar_type: str, config: FitConfig = FitConfig(), progress: bool = True
) -> ScoreModel:
    """Train the state model (and the forecast model) on ``bars`` and calibrate them.

    The split is chronological with a purge of ``horizon`` states between blocks; the
    normalisers and every calibration table use the training block only.
    """
    dataset = MarketDataset.from_bars(bars, config.spec, config.horizon)
    states = dataset.states.to_numpy()
    split = chronological_split(len(states), config.fractions, purge=config.horizon)
    models: dict[str, dict] = {}
    splits = {"signal": split}
    weights: dict[str, dict[str, torch.Tensor]] = {}

    normaliser = Normaliser.fit(states[split.train])
    z = normaliser.transform(states)
    result = _train(z, split, config.train, progress, "state model")
    models["signal"] = _model_entry(result, normaliser, z[split.test], config.train)
    weights["signal"] = result.state_dict

    if "forecast" in config.modes:
        joint = np.column_stack([states, dataset.forward.to_numpy()])
        labelled = split_labelled(split, np.isfinite(joint[:, -1]))
        joint_normaliser = Normaliser.fit(joint[labelled.train])
        zj = joint_normaliser.transform(np.nan_to_num(joint))
        result = _train(zj, labelled, config.train, progress, "forecast model")
        models["forecast"] = _model_entry(result, joint_normaliser, zj[labelled.test], config.train)
        models["forecast"]["horizon"] = config.horizon
        weights["forecast"] = result.state_dict
        splits["forecast"] = labelled

    conditional = None
    if "edge" in config.modes:
        conditional, record = fit_conditional(bars, config, progress)
        models["conditional"] = record
        weights["conditional"] = conditional.state_dict

    sigma_min = config.train.sigma_min
    manifest = {
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "feature_spec": config.spec.to_dict(),
        "feature_fingerprint": config.spec.fingerprint(),
        "data": {**_data_section(bars, bar_type, dataset, splits), "fractions": config.fractions},
        "training": config.train.to_dict(),
        "inference": InferenceSettings(
            signal_sigma=sigma_min,
            forecast_sigma=config.forecast_sigma,
            forecast_grid=config.forecast_grid,
            forecast_horizon=config.horizon,
        ).to_dict(),
        "models": models,
        "calibration": {},
        "versions": library_versions(),
    }
    if conditional is not None:
        manifest["conditional"] = conditional_section(conditional, config.conditional.to_dict())
    manifest["calibration"] = calibrate(
        ScoreModel(manifest, weights), states[split.train], bars, config.fractions
    )
    return ScoreModel(manifest, weights)


def fit_conditional(
    bars: pd.DataFrame, config: FitConfig, progress: bool = True
) -> tuple[ConditionalModel, dict]:
    """Train the conditional forecaster on the same chronological blocks (its own scaling from
    the training block only); returns the model and its manifest record.

    Its validation block then calibrates the predictive, per horizon, in this order: first the
    mean's slope beta (``mean_shrinkage``: realised on predicted returns, clipped to [0, 1]),
    then the CDF map g (:class:`scoremodel.calibration.CdfMap`) on the predictive as traded,
    the model's law moved to the shrunk mean beta E[r]: g is the empirical CDF of the PITs
    u_i = F_i(r_i + (1 - beta) E_i[r]). The model returned carries g; its manifest section
    stores it (``conditional.cdf_map``)."""
    data = prepare(bars, config.horizons, config.context_len, config.fractions, config.spec)
    if progress:
        print(f"training the conditional forecaster: {len(data.train.target)} contexts")
    result = train_conditional(
        data.train.context,
        data.train.target,
        data.val.context,
        data.val.target,
        config.context_len,
        config.conditional,
        progress=progress,
    )
    model = ConditionalModel(result.network, result.state_dict, data.scaling)
    outcome = result.outcome
    states = compute_features(bars, config.spec)
    raw = states.to_numpy()
    predicted = predict_batch(model, raw).mean
    rows = states.index.get_indexer(data.val.index)
    shrinkage = mean_shrinkage(predicted[rows], data.val.forward)
    traded = np.full(predicted.shape, np.nan)  # r + (1 - beta) E[r]: F moved to beta E[r]
    traded[rows] = data.val.forward + (1.0 - shrinkage) * predicted[rows]
    model = replace(model, cdf_map=CdfMap.fit(predictive_cdf(model, raw, traded)[rows]))
    record = {
        "mean_shrinkage": shrinkage.tolist(),
        "best_epoch": outcome.best_epoch,
        "epochs_run": outcome.epochs_run,
        "best_val_loss": outcome.best_val_loss,
        "train_first": str(data.train.index[0]),
        "train_last": str(data.train.index[-1]),
    }
    return model, record


def calibrate(
    model: ScoreModel,
    train_states: np.ndarray,
    bars: pd.DataFrame | None = None,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> dict[str, dict]:
    """Quantile tables of |signal| and log-density over the training states; with the ``bars``
    the model was trained on (split by ``fractions``) and a conditional forecaster, also the
    density filter's reliability threshold, measured on the forecaster's validation block
    (:func:`scoremodel.density_rule.validation_reliability`; ``density_reliability``, with the
    threshold's percentile among training log-densities)."""
    scored = model.assess_batch(train_states, mode="score")
    tables = {
        "abs_score": QuantileTable.fit(np.abs(scored["signal"].to_numpy())),
        "log_density": QuantileTable.fit(scored["log_density"].to_numpy()),
    }
    if model.has_forecast:
        forecast = model.assess_batch(train_states, mode="forecast")
        tables["forecast_edge"] = QuantileTable.fit(np.abs(forecast["signal"].to_numpy()))
    calibration: dict[str, dict] = {name: table.to_dict() for name, table in tables.items()}
    reliability = None if bars is None else validation_reliability(model, bars, fractions)
    if reliability is not None:
        threshold = reliability["threshold"]
        reliability["training_percentile"] = (
            None if threshold is None else 100.0 * tables["log_density"].rank(threshold)
        )
        calibration[RELIABILITY_KEY] = reliability
    return calibration


def save_model(model: ScoreModel, directory: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``model`` as a new model directory, atomically (see
    :func:`scoremodel.checkpoint.save_checkpoint`); an existing model directory is replaced only
    with ``overwrite``, and only once the new one is complete."""
    return save_checkpoint(directory, model.manifest, model.weights, overwrite=overwrite)


def split_labelled(split: Split, known: np.ndarray) -> Split:
    """The same blocks, cut where the label is unknown (the last ``horizon`` states)."""
    last_known = int(np.flatnonzero(known)[-1]) + 1
    return replace(split, test=slice(split.test.start, min(split.test.stop, last_known)))


def validation_loss(model: ScoreModel, bars: pd.DataFrame, name: str = "signal") -> float:
    """Recompute the stored validation loss from the bars (checks a checkpoint end to end)."""
    entry = model.manifest["models"][name]
    train_config = TrainConfig(**model.manifest["training"])
    dataset = MarketDataset.from_bars(bars, model.spec, model.settings.forecast_horizon)
    rows = dataset.states.to_numpy()
    if name == "forecast":
        rows = np.column_stack([rows, dataset.forward.to_numpy()])
    start, stop = model.manifest["data"]["split"][name]["val"]
    z = Normaliser.from_dict(entry["normaliser"]).transform(rows[start:stop])
    validation = ValidationSet(
        torch.as_tensor(z, dtype=torch.float32), train_config, entry["sigma_max"]
    )
    return validation.loss(model.torch_network(name))


def _train(
    z: np.ndarray, split: Split, config: TrainConfig, progress: bool, what: str
) -> TrainResult:
    if progress:
        print(f"training the {what}: {split.train.stop - split.train.start} states")
    return train_score_network(z[split.train], z[split.val], config, progress=progress)


def _model_entry(
    result: TrainResult, normaliser: Normaliser, test: np.ndarray, config: TrainConfig
) -> dict:
    test_set = ValidationSet(torch.as_tensor(test, dtype=torch.float32), config, result.sigma_max)
    return {
        "network": result.network.to_dict(),
        "normaliser": normaliser.to_dict(),
        "sigma_min": result.sigma_min,
        "sigma_max": result.sigma_max,
        "sigmas": geometric_sigmas(result.sigma_max, result.sigma_min, result.network.dim).tolist(),
        "best_val_loss": result.best_val_loss,
        "test_loss": test_set.loss(_network(result)),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "train_seconds": result.seconds,
        "states_per_second": result.states_per_second,
        "history": result.history,
    }


def _network(result: TrainResult) -> ScoreNetwork:
    net = ScoreNetwork(result.network)
    net.load_state_dict(result.state_dict)
    return net.eval()


def _data_section(
    bars: pd.DataFrame, bar_type: str, dataset: MarketDataset, splits: dict[str, Split]
) -> dict:
    stamps = dataset.states.index

    def block(s: slice) -> dict:
        return {
            "first": str(stamps[s.start]),
            "last": str(stamps[s.stop - 1]),
            "rows": s.stop - s.start,
        }

    return {
        "bar_type": bar_type,
        "first_bar": str(bars.index[0]),
        "last_bar": str(bars.index[-1]),
        "n_bars": len(bars),
        "n_states": len(stamps),
        "split": {name: split.to_dict() for name, split in splits.items()},
        "blocks": {
            name: block(getattr(splits["signal"], name)) for name in ("train", "val", "test")
        },
    }
