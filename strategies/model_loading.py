"""Load the model a strategy config names, and check it fits the config's bars and mode."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nautilus_trader.model.data import BarType

from scoremodel.checkpoint import CheckpointError
from scoremodel.features import DEFAULT_SPEC
from scoremodel.inference import ScoreModel

if TYPE_CHECKING:
    from strategies.score_matching import ScoreMatchingConfig


class ModelMismatchError(CheckpointError):
    """The checkpoint is valid but was made for other bars or lacks the configured mode."""


def load_model_for(config: ScoreMatchingConfig) -> ScoreModel:
    """The checkpoint at ``config.model_path``, verified against the config.

    Raises :class:`CheckpointError` (missing, corrupt, other feature spec) or
    :class:`ModelMismatchError` (other bar type, no forecast model for forecast mode).
    """
    model = ScoreModel.load(config.model_path, DEFAULT_SPEC, config.density_percentile)
    check_bar_type(model, config.bar_type, config.allow_bar_type_mismatch, config.model_path)
    if config.signal_mode == "forecast" and not model.has_forecast:
        raise ModelMismatchError(
            f"signal_mode is 'forecast' but {config.model_path} has no forecast model; "
            "retrain with `--modes score,forecast` or set signal_mode: score"
        )
    return model


def check_bar_type(model: ScoreModel, bar_type: BarType, allow_mismatch: bool, path: str) -> None:
    trained_on = model.bar_type
    if trained_on is None or allow_mismatch:
        return
    trained = BarType.from_str(trained_on)
    if trained.instrument_id != bar_type.instrument_id or trained.spec != bar_type.spec:
        raise ModelMismatchError(
            f"{path} was trained on {trained_on} but the strategy trades {bar_type}; train a "
            "model on these bars (or set allow_bar_type_mismatch: true to override)"
        )
