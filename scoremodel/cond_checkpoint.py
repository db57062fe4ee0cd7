"""Save and load a conditional model: safetensors weights + the project's JSON manifest.

The manifest (:mod:`scoremodel.checkpoint`) gains a ``conditional`` section with the context
length L, the horizons, the training-block scaling, the predictive settings, the training
config and, for a model made by :func:`scoremodel.pipeline.fit_conditional`, ``cdf_map``: the
validated recalibration map of the predictive CDF per horizon
(:class:`scoremodel.calibration.CdfMap`: ``pit_quantiles``, K rows of 101 knots, and the
``rows`` it was fitted on). A section without one (a manifest written before the map existed,
or a model saved straight from training) loads with the identity map: the predictive as
before. Loading passes the checks every manifest reader makes
(:func:`scoremodel.checkpoint.verified_manifest`: format version, the manifest's own checksum,
finite numbers), then checks the feature spec and, when asked, L and the horizons: a model made
for another context or other horizons is refused with a :class:`CheckpointError`.
"""

from __future__ import annotations

from pathlib import Path

from scoremodel.calibration import CdfMap
from scoremodel.checkpoint import CONDITIONAL
from scoremodel.checkpoint import MANIFEST
from scoremodel.checkpoint import CheckpointError
from scoremodel.checkpoint import _load_weights
from scoremodel.checkpoint import check_feature_spec
from scoremodel.checkpoint import save_checkpoint
from scoremodel.checkpoint import verified_manifest
from scoremodel.cond_data import ConditionalScaling
from scoremodel.cond_network import ConditionalNetConfig
from scoremodel.cond_predictive import ConditionalModel
from scoremodel.cond_predictive import PredictiveConfig
from scoremodel.features import DEFAULT_SPEC
from scoremodel.features import FeatureSpec

MODEL_NAME = CONDITIONAL
REQUIRED = ("context_len", "horizons", "scaling", "predictive", "network")


def save_conditional(
    directory: str | Path,
    model: ConditionalModel,
    train_config: dict | None = None,
    data: dict | None = None,
    spec: FeatureSpec = DEFAULT_SPEC,
    overwrite: bool = False,
) -> Path:
    """Write ``conditional.safetensors`` and ``manifest.json`` as a new model directory.

    Atomic (:func:`scoremodel.checkpoint.save_checkpoint`); an existing model directory is
    replaced only with ``overwrite``.
    """
    manifest = {
        "feature_spec": spec.to_dict(),
        "models": {MODEL_NAME: {}},
        "data": data or {},
        "conditional": conditional_section(model, train_config),
    }
    weights = {MODEL_NAME: model.state_dict}
    return save_checkpoint(directory, manifest, weights, overwrite=overwrite)


def load_conditional(
    directory: str | Path,
    context_len: int | None = None,
    horizons: tuple[int, ...] | None = None,
    spec: FeatureSpec = DEFAULT_SPEC,
) -> ConditionalModel:
    """Read a conditional model; refuse one made for other features, L or horizons."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    check_feature_spec(manifest, spec, directory)
    section = manifest["conditional"]
    stored_len, stored_horizons = int(section["context_len"]), tuple(section["horizons"])
    if context_len is not None and context_len != stored_len:
        raise CheckpointError(
            f"{directory} was trained with a context of L={stored_len} bars, but L={context_len} "
            f"was asked for; use L={stored_len} or retrain the model"
        )
    if horizons is not None and tuple(horizons) != stored_horizons:
        raise CheckpointError(
            f"{directory} was trained for horizons {list(stored_horizons)}, but "
            f"{list(horizons)} were asked for; use those horizons or retrain the model"
        )
    state_dict = _load_weights(directory, MODEL_NAME, manifest["models"][MODEL_NAME])
    return conditional_from(section, state_dict)


def conditional_section(model: ConditionalModel, train_config: dict | None = None) -> dict:
    """The manifest's ``conditional`` section: L, horizons, network, scaling, predictive, and
    the CDF map where the model has one."""
    section = {
        "context_len": model.context_len,
        "horizons": list(model.horizons),
        "network": model.network.to_dict(),
        "scaling": model.scaling.to_dict(),
        "predictive": model.predictive.to_dict(),
        "train_config": train_config or {},
    }
    if model.cdf_map is not None:
        section["cdf_map"] = model.cdf_map.to_dict()
    return section


def conditional_from(section: dict, state_dict: dict) -> ConditionalModel:
    """The conditional model a manifest section and its weights describe (no ``cdf_map``:
    the identity map, as before the map existed)."""
    network = ConditionalNetConfig(**section["network"])
    cdf_map = section.get("cdf_map")
    if cdf_map is not None:
        try:
            cdf_map = CdfMap.from_dict(cdf_map)
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"conditional.cdf_map is not a CDF map ({error}); copy the whole model "
                "directory again or retrain the model"
            ) from error
        if cdf_map.n_horizons != network.n_horizons:
            raise CheckpointError(
                f"conditional.cdf_map has {cdf_map.n_horizons} horizons, the model "
                f"{network.n_horizons}; copy the whole model directory again or retrain the model"
            )
    return ConditionalModel(
        network=network,
        state_dict=state_dict,
        scaling=ConditionalScaling.from_dict(section["scaling"]),
        predictive=PredictiveConfig(**section["predictive"]),
        cdf_map=cdf_map,
    )


def _read_manifest(directory: Path) -> dict:
    """The manifest of a conditional model directory: the checks every manifest reader makes
    (:func:`scoremodel.checkpoint.verified_manifest`), then a complete conditional section."""
    path = directory / MANIFEST
    if not path.is_file():
        raise CheckpointError(
            f"{directory} has no {MANIFEST}; it is not a model directory (save one with "
            "scoremodel.cond_checkpoint.save_conditional)"
        )
    manifest = verified_manifest(path)
    section = manifest.get("conditional")
    if not isinstance(section, dict) or MODEL_NAME not in manifest.get("models", {}):
        raise CheckpointError(
            f"{directory} holds no conditional model; train one with "
            "scoremodel.cond_training.train_conditional and save it with save_conditional"
        )
    missing = [key for key in REQUIRED if key not in section]
    if missing or "feature_spec" not in manifest:
        raise CheckpointError(
            f"{path} lacks conditional.{', conditional.'.join(missing) or 'feature_spec'}: the "
            "manifest is incomplete or was edited; copy the whole model directory or retrain"
        )
    return manifest
