"""Bad inputs to a backtest fail before the engine runs, saying what is wrong and what to do."""

from __future__ import annotations

import shutil

import pytest
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

import run_backtest
from catalogs.bars import BarValidationError
from catalogs.catalog import open_catalog
from catalogs.catalog import read_bars_frame
from catalogs.errors import BarTypeNotFoundError
from catalogs.errors import CatalogNotFoundError
from catalogs.errors import EmptyRangeError
from catalogs.instruments import make_perpetual
from runtime.backtest import BacktestInputError
from runtime.backtest import run_backtest as backtest
from scoremodel.checkpoint import CheckpointError
from strategies.model_loading import ModelMismatchError
from tests.conftest import BAR_TYPE
from tests.helpers import edit_manifest


def edited_model(trained_model, tmp_path, edit) -> str:
    copy = tmp_path / "edited-model"
    shutil.copytree(trained_model, copy)
    edit_manifest(copy, edit)  # resealed: the check under test is another one
    return str(copy)


def test_missing_catalog(run_config, tmp_path):
    with pytest.raises(CatalogNotFoundError, match=r"No data catalog at .*catalogs synth"):
        backtest(run_config({"catalog": str(tmp_path / "nowhere")}))


def test_bar_type_not_in_catalog_lists_what_exists(run_config):
    run = run_config(
        bar_type="BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL", allow_bar_type_mismatch=True
    )
    with pytest.raises(BarTypeNotFoundError, match=f"stored bar types: {BAR_TYPE}"):
        backtest(run)


def test_model_trained_on_another_bar_type(run_config, trained_model, tmp_path):
    other = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"
    path = edited_model(trained_model, tmp_path, lambda m: m["data"].update(bar_type=other))
    with pytest.raises(ModelMismatchError, match=f"trained on {other} but the strategy trades"):
        backtest(run_config(model_path=path))


def test_model_of_another_feature_version(run_config, trained_model, tmp_path):
    path = edited_model(trained_model, tmp_path, lambda m: m["feature_spec"].update(version=99))
    with pytest.raises(CheckpointError, match=r"v99.*retrain the model"):
        backtest(run_config(model_path=path))


def test_missing_model_says_how_to_train_one(run_config, tmp_path):
    with pytest.raises(CheckpointError, match="python -m scoremodel train"):
        backtest(run_config(model_path=str(tmp_path / "no-model")))


def test_forecast_mode_needs_a_forecast_model(run_config, trained_model, tmp_path):
    def drop_forecast(manifest):
        del manifest["models"]["forecast"]

    path = edited_model(trained_model, tmp_path, drop_forecast)
    with pytest.raises(ModelMismatchError, match="has no forecast model"):
        backtest(run_config(model_path=path, signal_mode="forecast"))


def test_zero_price_bar_in_the_catalog_is_reported(run_config, synthetic_catalog, tmp_path):
    catalog_dir = tmp_path / "bad-catalog"
    shutil.copytree(synthetic_catalog, catalog_dir)
    bars = read_bars_frame(catalog_dir, BAR_TYPE)
    after = bars.index[-1] + (bars.index[-1] - bars.index[-2])
    zero = Price.from_str("0.00")  # the catalog's BTCUSDT price precision
    bad = Bar(BarType.from_str(BAR_TYPE), zero, zero, zero, zero, Quantity.from_str("1.000"),
              after.value, after.value)  # fmt: skip
    open_catalog(catalog_dir).write_data([bad])  # bypasses catalogs' own validation on purpose
    with pytest.raises(BarValidationError, match="non-positive"):
        backtest(run_config({"catalog": str(catalog_dir)}))


def test_empty_date_range_says_what_is_available(run_config):
    with pytest.raises(EmptyRangeError, match="2030"):
        backtest(run_config({"start": "2030-01-01", "end": "2030-02-01"}))


def test_start_after_end(run_config):
    with pytest.raises(BacktestInputError, match="is not before end"):
        backtest(run_config({"start": "2024-06-01", "end": "2024-05-01"}))


def test_command_line_prints_one_clear_line_and_exits_2(synthetic_catalog, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(
        f"strategy:\n  model_path: {tmp_path / 'none'}\nbacktest:\n  catalog: {synthetic_catalog}\n"
    )
    assert run_backtest.main(["--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: model directory") and error.count("\n") == 1


def test_unknown_config_field_is_rejected(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("strategy:\n  min_confidense: 0.5\n")
    assert run_backtest.main(["--config", str(config)]) == 2
    assert "unknown strategy fields ['min_confidense']" in capsys.readouterr().err


def test_instrument_spec_used_by_the_catalog_matches_the_strategy(synthetic_catalog):
    from catalogs.catalog import load_instrument

    stored = load_instrument(synthetic_catalog, "BTCUSDT-LINEAR.BYBIT")
    assert stored.taker_fee == make_perpetual("BTCUSDT").taker_fee
