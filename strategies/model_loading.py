"""Load the model a strategy config names, and check it fits the config's bars and mode.

The checks themselves live in :func:`scoremodel.checkpoint.load_verified_checkpoint`, which
``python -m scoremodel info`` runs too, so a model that ``info`` accepts loads here as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scoremodel.checkpoint import ModelMismatchError
from scoremodel.checkpoint import load_verified_checkpoint
from scoremodel.features import DEFAULT_SPEC
from scoremodel.inference import ScoreModel

if TYPE_CHECKING:
    from strategies.score_matching import ScoreMatchingConfig

__all__ = ["ModelMismatchError", "load_model_for"]


def load_model_for(config: ScoreMatchingConfig) -> ScoreModel:
    """The checkpoint at ``config.model_path``, verified against the config.

    Raises :class:`~scoremodel.checkpoint.CheckpointError` (missing, corrupt, incomplete
    manifest, other feature spec) or :class:`ModelMismatchError` (other bar type, no forecast
    model for forecast mode).
    """
    manifest, weights = load_verified_checkpoint(
        config.model_path,
        DEFAULT_SPEC,
        bar_type=str(config.bar_type),
        signal_mode=config.signal_mode,
        allow_bar_type_mismatch=config.allow_bar_type_mismatch,
    )
    return ScoreModel(manifest, weights, config.density_percentile, config.density_rule)
