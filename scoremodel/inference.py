"""Inference: the object the strategy calls once per bar, and the same maths over a batch.

Per state x (z-scored), one batched forward of the state model gives
- the score s(x, sigma_min) -> its one-bar-return component is the direction signal
  (the chapter's rule: positive score on the return = the current return is low relative to
  what the other features make typical, a contrarian statement about the bar just closed);
- with one more row (z / 2), the log-density proxy (:mod:`scoremodel.density`).
Confidence is the percentile of |signal| among training states; the density threshold is set
by the density rule (:mod:`scoremodel.density_rule`): a percentile of training log-densities,
or the log-density below which the conditional forecaster's validated skill degrades. In
forecast mode the joint model gives the predictive distribution of the forward return over h
bars (:mod:`scoremodel.forecast`), and the signal is P(up) - 0.5 with its own calibrated
confidence.

:meth:`ScoreModel.assess` (one bar) and :meth:`ScoreModel.assess_batch` (many) run the same
float64 numpy code, so a backtest's decisions can be recomputed offline exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from scoremodel.batch_forward import FusedScoreNet
from scoremodel.batch_forward import kernel_work
from scoremodel.calibration import QuantileTable
from scoremodel.checkpoint import load_checkpoint
from scoremodel.compiled import forecast_summary
from scoremodel.compiled import score_and_density
from scoremodel.cond_checkpoint import conditional_from
from scoremodel.cond_predictive import ConditionalModel
from scoremodel.density import RayDensity
from scoremodel.density_rule import DEFAULT_DENSITY_RULE
from scoremodel.density_rule import PERCENTILE
from scoremodel.density_rule import RELIABILITY
from scoremodel.density_rule import RELIABILITY_KEY
from scoremodel.density_rule import check_rule
from scoremodel.features import DEFAULT_SPEC
from scoremodel.features import FeatureSpec
from scoremodel.forecast import GridForecaster
from scoremodel.network import NetworkConfig
from scoremodel.network import ScoreNetwork
from scoremodel.normalise import Normaliser

SignalMode = Literal["score", "forecast", "edge"]
# score: the chapter's score signal; forecast: the joint model read on a grid (superseded);
# edge: the conditional forecaster (scoremodel.cond_*) traded only where its edge beats costs
SIGNAL_MODES: tuple[str, ...] = ("score", "forecast", "edge")


class Assessment(NamedTuple):
    """What the model says about one market state (a named tuple: built on every bar, and a
    tuple is built several times faster than a frozen dataclass)."""

    direction: int  # +1 long, -1 short, 0 no view
    signal: float  # score mode: return component of the score; forecast mode: P(up) - 0.5
    confidence: float  # percentile (0-1) of |signal| among training states
    log_density: float  # log p(x) - log p(training mean), see scoremodel.density
    in_distribution: bool  # log_density >= the density threshold (the density rule's)
    forecast_mean: float = math.nan  # expected forward log return over the horizon
    forecast_std: float = math.nan
    forecast_p_up: float = math.nan


@dataclass(frozen=True)
class InferenceSettings:
    """Noise levels and grid sizes of inference; stored in the manifest."""

    signal_sigma: float  # sigma_min: the direction signal and the density proxy
    forecast_sigma: float = 0.2
    forecast_grid: int = 16
    forecast_horizon: int = 12

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class ScoreModel:
    """A trained checkpoint, ready for per-bar and batch inference (CPU, float64 numpy)."""

    def __init__(
        self,
        manifest: dict,
        weights: dict[str, dict[str, torch.Tensor]],
        density_percentile: float = 5.0,
        density_rule: str = DEFAULT_DENSITY_RULE,
    ) -> None:
        self.manifest = manifest
        self.weights = weights
        self.spec = FeatureSpec.from_dict(manifest["feature_spec"])
        self.settings = InferenceSettings(**manifest["inference"])
        self.bar_type: str | None = manifest["data"].get("bar_type")
        signal = manifest["models"]["signal"]
        self.normaliser = Normaliser.from_dict(signal["normaliser"])
        self.signal_net = FusedScoreNet(weights["signal"], NetworkConfig(**signal["network"]))
        # rows of one state: z and z / 2, both at sigma_min (signal and density)
        self._row_scale = np.array([1.0, 0.5])[:, None]
        sigma = self.settings.signal_sigma
        self._state_shifts = self.signal_net.conditioning(np.full(2, sigma))
        origin = self.signal_net.unit_score(
            np.zeros((1, self.spec.dim)), self.signal_net.conditioning(np.array([sigma]))
        )[0]
        self.density = RayDensity(sigma, origin)
        self._return_index = self.spec.return_index
        self.forecaster: GridForecaster | None = None
        if "forecast" in manifest["models"]:
            entry = manifest["models"]["forecast"]
            self.forecast_net = FusedScoreNet(
                weights["forecast"], NetworkConfig(**entry["network"])
            )
            self.forecaster = GridForecaster(
                Normaliser.from_dict(entry["normaliser"]),
                self.settings.forecast_sigma,
                self.settings.forecast_grid,
            )
            self._forecast_shifts = self.forecast_net.conditioning(
                np.array([self.settings.forecast_sigma])
            )
        self.conditional: ConditionalModel | None = None
        self.mean_shrinkage: tuple[float, ...] = ()  # per horizon, from the validation block
        if "conditional" in manifest["models"]:
            self.conditional = conditional_from(manifest["conditional"], weights["conditional"])
            record = manifest["models"]["conditional"]
            self.mean_shrinkage = tuple(record["mean_shrinkage"])
        self.calibration = {
            k: QuantileTable.from_dict(v)
            for k, v in manifest["calibration"].items()
            if k != RELIABILITY_KEY
        }
        # the reliability rule's measurement (scoremodel.density_rule); None: an older model
        # or one without a conditional forecaster, which keeps the percentile rule
        self.reliability: dict | None = manifest["calibration"].get(RELIABILITY_KEY)
        self.density_rule = check_rule(density_rule)
        self.set_density_filter(density_percentile, density_rule)
        self._prepare_kernels()

    def _prepare_kernels(self) -> None:
        """Weights and work arrays of the compiled one-bar path (scoremodel.compiled)."""
        dim = self.spec.dim
        self._signal_kernel = self.signal_net.kernel_weights(self._state_shifts)
        self._signal_work = kernel_work(len(self._row_scale), dim, self.signal_net.config)
        self._row_scale_flat = np.ascontiguousarray(self._row_scale[:, 0])
        if self.forecaster is not None:
            grid_size = len(self.forecaster.grid)
            shifts = np.repeat(self._forecast_shifts, grid_size, axis=1)
            self._forecast_kernel = self.forecast_net.kernel_weights(shifts)
            self._forecast_work = kernel_work(grid_size, dim, self.forecast_net.config)
            self._forecast_out = np.zeros(3)
            normaliser = self.forecaster.normaliser
            self._forecast_mean = np.ascontiguousarray(normaliser.mean[:-1])
            self._forecast_std = np.ascontiguousarray(normaliser.std[:-1])
        self._warm_kernels()

    def _warm_kernels(self) -> None:
        """Compile (or load from numba's cache) the kernels now, not on the first live bar."""
        typical = np.ascontiguousarray(self.normaliser.mean)
        self._score_and_density(typical)
        if self.forecaster is not None:
            self._forecast_summary(typical)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        expected_spec: FeatureSpec = DEFAULT_SPEC,
        density_percentile: float = 5.0,
        density_rule: str = DEFAULT_DENSITY_RULE,
    ) -> ScoreModel:
        """Load and verify a checkpoint (see :func:`scoremodel.checkpoint.load_checkpoint`)."""
        manifest, weights = load_checkpoint(directory, expected_spec)
        return cls(manifest, weights, density_percentile, density_rule)

    @property
    def has_forecast(self) -> bool:
        return self.forecaster is not None

    def set_density_percentile(self, percentile: float) -> None:
        """The percentile rule's percentile (the rule in force stays as it is)."""
        self.set_density_filter(percentile, self.density_rule)

    def set_density_filter(self, percentile: float, rule: str) -> None:
        """States below the rule's threshold count as unfamiliar (:mod:`scoremodel.density_rule`):
        ``percentile``, below this percentile of training log-densities; ``reliability``, below
        the log-density where the forecaster's validated skill degrades (no threshold, -inf,
        where it never does). A model without the reliability measurement keeps the percentile
        rule; ``density_rule_in_force`` says which rule set ``density_threshold``."""
        self.density_rule = check_rule(rule)
        self.density_percentile = percentile
        self.density_rule_in_force = (
            RELIABILITY if rule == RELIABILITY and self.reliability is not None else PERCENTILE
        )
        self.density_threshold = self.density_threshold_for(rule, percentile)

    def density_threshold_for(self, rule: str, percentile: float) -> float:
        """The log-density threshold ``rule`` gives this model (-inf: the filter flags nothing)."""
        if check_rule(rule) == RELIABILITY and self.reliability is not None:
            threshold = self.reliability["threshold"]
            return -math.inf if threshold is None else float(threshold)
        table = self.calibration.get("log_density")
        return table.value_at(percentile) if table else -math.inf

    # ----- one bar ------------------------------------------------------------------------

    def assess(self, raw_state: np.ndarray, mode: SignalMode = "score") -> Assessment:
        """Direction, confidence and density of one state (a row of the feature spec).

        Runs the compiled kernels; :meth:`assess_batch` computes the same numbers in numpy.
        """
        score, log_density = self._score_and_density(raw_state)
        in_distribution = log_density >= self.density_threshold
        if mode == "forecast":
            return self._assess_forecast(raw_state, log_density, in_distribution)
        return Assessment(
            direction=_sign(score),
            signal=score,
            confidence=self.calibration["abs_score"].rank(abs(score)),
            log_density=log_density,
            in_distribution=in_distribution,
        )

    def log_density(self, raw_state: np.ndarray) -> tuple[float, bool]:
        """The state's log-density and whether it counts as familiar (the density gate alone,
        as edge mode needs it: no score signal ranked)."""
        _, log_density = self._score_and_density(raw_state)
        return log_density, log_density >= self.density_threshold

    def _assess_forecast(
        self, raw_state: np.ndarray, log_density: float, familiar: bool
    ) -> Assessment:
        mean, std, p_up = self._forecast_summary(raw_state)
        edge = p_up - 0.5
        return Assessment(
            direction=_sign(edge),
            signal=edge,
            confidence=self.calibration["forecast_edge"].rank(abs(edge)),
            log_density=log_density,
            in_distribution=familiar,
            forecast_mean=mean,
            forecast_std=std,
            forecast_p_up=p_up,
        )

    def _score_and_density(self, raw_state: np.ndarray) -> tuple[float, float]:
        normaliser, settings = self.normaliser, self.settings
        return score_and_density(
            raw_state, normaliser.mean, normaliser.std, normaliser.clip, self._row_scale_flat,
            self._signal_kernel, self._signal_work, self.density.origin,
            settings.signal_sigma, self._return_index,
        )  # fmt: skip

    def _forecast_summary(self, raw_state: np.ndarray) -> tuple[float, float, float]:
        forecaster, summary = self._require_forecaster(), self._forecast_out
        forecast_summary(
            raw_state, self._forecast_mean, self._forecast_std, forecaster.normaliser.clip,
            forecaster.grid, forecaster.grid_raw, forecaster.step, forecaster.sigma,
            forecaster.raw_scale, self._forecast_kernel, self._forecast_work, summary,
        )  # fmt: skip
        return float(summary[0]), float(summary[1]), float(summary[2])

    # ----- many bars ----------------------------------------------------------------------

    def assess_batch(
        self, raw_states: np.ndarray | pd.DataFrame, mode: SignalMode = "score", chunk: int = 4096
    ) -> pd.DataFrame:
        """:meth:`assess` for every row, vectorised; columns are Assessment's fields."""
        index = raw_states.index if isinstance(raw_states, pd.DataFrame) else None
        states = np.asarray(raw_states, dtype=np.float64)
        parts = [
            self._batch_chunk(states[i : i + chunk], mode) for i in range(0, len(states), chunk)
        ]
        frame = pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
        if index is not None:
            frame.index = index
        return frame

    def _batch_chunk(self, states: np.ndarray, mode: SignalMode) -> dict[str, np.ndarray]:
        z = self.normaliser.transform(states)
        f = self.signal_net.unit_score(self._row_scale[None] * z[:, None, :], self._state_shifts)
        log_density = self.density.log_density(f[:, 0], f[:, 1], z)
        out = {
            "log_density": log_density,
            "in_distribution": log_density >= self.density_threshold,
        }
        if mode == "forecast":
            forecaster = self._require_forecaster()
            rows = forecaster.rows(forecaster.normalise_state(states))
            p = forecaster.probabilities(self.forecast_net.unit_score(rows, self._forecast_shifts))
            summary = forecaster.summarise(p)
            signal = summary.p_up - 0.5
            table = self.calibration.get("forecast_edge")
            out.update(
                forecast_mean=summary.mean, forecast_std=summary.std, forecast_p_up=summary.p_up
            )
        else:
            signal = f[:, 0, self._return_index] / self.settings.signal_sigma
            table = self.calibration.get("abs_score")
        out["signal"] = signal
        out["direction"] = np.sign(signal).astype(np.int64)
        out["confidence"] = table.ranks(np.abs(signal)) if table else np.full(len(signal), np.nan)
        return out

    def forecast_quantiles(self, raw_states: np.ndarray) -> np.ndarray:
        """Quantiles (``scoremodel.forecast.QUANTILES``) of the forward return per state."""
        forecaster = self._require_forecaster()
        rows = forecaster.rows(forecaster.normalise_state(np.atleast_2d(raw_states)))
        p = forecaster.probabilities(self.forecast_net.unit_score(rows, self._forecast_shifts))
        return forecaster.summarise(p).quantiles

    # ----- torch modules (sampling, reference checks) ---------------------------------------

    def torch_network(
        self, name: str = "signal", dtype: torch.dtype = torch.float32
    ) -> ScoreNetwork:
        """The trained network as a torch module in eval mode (for sampling and checks)."""
        net = ScoreNetwork(NetworkConfig(**self.manifest["models"][name]["network"]))
        net.load_state_dict(self.weights[name])
        return net.to(dtype).eval()

    def sigmas(self, name: str = "signal") -> np.ndarray:
        """The geometric noise schedule sigma_1 > ... > sigma_L of a model."""
        return np.asarray(self.manifest["models"][name]["sigmas"], dtype=np.float64)

    def _require_forecaster(self) -> GridForecaster:
        if self.forecaster is None:
            raise ValueError(
                "this checkpoint has no forecast model; train with `--modes score,forecast` "
                "or use signal_mode 'score'"
            )
        return self.forecaster


def _sign(value: float) -> int:
    return 1 if value > 0.0 else (-1 if value < 0.0 else 0)
