"""Instrument specs and the Nautilus instruments built from them."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import Money
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from catalogs.errors import UnknownInstrumentError
from catalogs.instruments import BYBIT_LINEAR_SPECS
from catalogs.instruments import InstrumentSpec
from catalogs.instruments import make_perpetual


def test_btcusdt_spec_matches_bybit_contract_values() -> None:
    spec = BYBIT_LINEAR_SPECS["BTCUSDT"]

    assert (spec.tick_size, spec.qty_step, spec.min_qty) == (
        Decimal("0.10"),
        Decimal("0.001"),
        Decimal("0.001"),
    )
    assert (spec.max_qty, spec.max_market_qty, spec.min_notional) == (1190, 119, 5)
    assert (spec.maker_fee, spec.taker_fee) == (Decimal("0.0002"), Decimal("0.00055"))
    assert spec.max_leverage == 100
    assert spec.margin_init == 1 / spec.max_leverage


def test_builtin_specs_cover_the_main_perpetuals_and_every_shared_data_symbol() -> None:
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT"} <= set(BYBIT_LINEAR_SPECS)
    # ../shared/data and ../shared/data/real (Binance bars mapped onto Bybit's instrument)
    shared = {"BTCUSDT", "LTCUSDT", "XRPUSDT", "ADAUSDT", "BCHUSDT", "SOLUSDT", "DOGEUSDT"}
    assert shared <= set(BYBIT_LINEAR_SPECS)
    for symbol, spec in BYBIT_LINEAR_SPECS.items():
        assert spec.symbol == symbol
        assert spec.quote == "USDT"
        assert spec.min_qty >= spec.qty_step


def test_make_perpetual_builds_btcusdt_with_bybit_adapter_id() -> None:
    instrument = make_perpetual()

    assert isinstance(instrument, CryptoPerpetual)
    assert str(instrument.id) == "BTCUSDT-LINEAR.BYBIT"
    assert str(instrument.raw_symbol) == "BTCUSDT"
    assert instrument.price_increment == Price.from_str("0.10")
    assert instrument.price_precision == 2
    assert instrument.size_increment == Quantity.from_str("0.001")
    assert instrument.min_quantity == Quantity.from_str("0.001")
    assert instrument.max_quantity == Quantity.from_str("1190.000")
    assert instrument.min_notional == Money(5, instrument.quote_currency)
    assert (instrument.maker_fee, instrument.taker_fee) == (Decimal("0.0002"), Decimal("0.00055"))
    assert instrument.is_inverse is False
    assert str(instrument.settlement_currency) == "USDT"
    assert str(instrument.base_currency) == "BTC"


@pytest.mark.parametrize("symbol", sorted(BYBIT_LINEAR_SPECS))
def test_every_builtin_spec_makes_a_consistent_instrument(symbol: str) -> None:
    spec = BYBIT_LINEAR_SPECS[symbol]
    instrument = make_perpetual(symbol.lower())

    assert str(instrument.id) == f"{symbol}-LINEAR.BYBIT"
    assert instrument.price_increment.as_decimal() == spec.tick_size
    assert instrument.size_increment.as_decimal() == spec.qty_step
    assert instrument.margin_maint == spec.margin_maint


def test_unknown_symbol_lists_known_symbols_and_suggests_a_spec() -> None:
    with pytest.raises(UnknownInstrumentError) as caught:
        make_perpetual("PEPEUSDT")

    message = str(caught.value)
    assert "'PEPEUSDT'" in message
    assert "ADAUSDT, BCHUSDT, BTCUSDT, DOGEUSDT, ETHUSDT, LTCUSDT, SOLUSDT, XRPUSDT" in message
    assert "spec=InstrumentSpec" in message


# Bybit's linear contract values (catalogs/instruments.py names the source of each): tick,
# qty step, min qty, max (limit) qty, max market qty, min notional, max leverage, first-tier
# maintenance margin rate.
NEW_SPECS = {
    "LTCUSDT": ("0.01", "0.1", "0.1", "28740", "6160", "5", "50", "0.01"),
    "XRPUSDT": ("0.0001", "1", "1", "10965300", "2467800", "5", "75", "0.0067"),
    "ADAUSDT": ("0.0001", "1", "1", "6315500", "1109600", "5", "75", "0.0067"),
    "BCHUSDT": ("0.05", "0.01", "0.01", "600", "600", "5", "50", "0.01"),
    "DOGEUSDT": ("0.00001", "1", "1", "43678900", "5991100", "5", "75", "0.0067"),
}


@pytest.mark.parametrize("symbol", sorted(NEW_SPECS))
def test_make_perpetual_gives_bybits_tick_and_lot_for_the_shared_data_symbols(symbol: str) -> None:
    tick, step, min_qty, max_qty, max_market, min_notional, leverage, maint = NEW_SPECS[symbol]
    spec = BYBIT_LINEAR_SPECS[symbol]
    instrument = make_perpetual(symbol)

    assert str(instrument.id) == f"{symbol}-LINEAR.BYBIT"
    assert str(instrument.base_currency) == symbol.removesuffix("USDT")
    assert instrument.price_increment == Price.from_str(tick)
    assert instrument.price_precision == Price.from_str(tick).precision
    assert instrument.size_increment == Quantity.from_str(step)
    assert instrument.lot_size == Quantity.from_str(step)
    assert instrument.min_quantity.as_decimal() == Decimal(min_qty)
    assert instrument.max_quantity.as_decimal() == Decimal(max_qty)
    assert spec.max_market_qty == Decimal(max_market)
    assert instrument.min_notional == Money(Decimal(min_notional), instrument.quote_currency)
    assert spec.max_leverage == Decimal(leverage)
    assert instrument.margin_init == 1 / Decimal(leverage)
    assert instrument.margin_maint == Decimal(maint)
    assert (instrument.maker_fee, instrument.taker_fee) == (Decimal("0.0002"), Decimal("0.00055"))


def test_custom_spec_builds_an_instrument_for_any_symbol() -> None:
    spec = dataclasses.replace(
        BYBIT_LINEAR_SPECS["SOLUSDT"], symbol="DOGEUSDT", base="DOGE", tick_size="0.00001"
    )

    instrument = make_perpetual("DOGEUSDT", spec)

    assert str(instrument.id) == "DOGEUSDT-LINEAR.BYBIT"
    assert instrument.price_precision == 5


def test_spec_symbol_must_match_requested_symbol() -> None:
    with pytest.raises(ValueError, match=r"does not match spec\.symbol 'SOLUSDT'"):
        make_perpetual("BTCUSDT", BYBIT_LINEAR_SPECS["SOLUSDT"])


def test_spec_converts_strings_to_decimals_and_rejects_bad_values() -> None:
    spec = dataclasses.replace(BYBIT_LINEAR_SPECS["BTCUSDT"], taker_fee="0.0006")
    assert spec.taker_fee == Decimal("0.0006")

    with pytest.raises(ValueError, match="tick_size must be > 0"):
        dataclasses.replace(spec, tick_size="0")
    with pytest.raises(ValueError, match="min_qty must be >= 0"):
        dataclasses.replace(spec, min_qty="-1")
    with pytest.raises(ValueError, match="not a decimal number"):
        dataclasses.replace(spec, maker_fee="cheap")


def test_spec_instrument_id_property() -> None:
    spec = InstrumentSpec(
        "ethusdt", "ETH", "USDT", "0.01", "0.01", "0.01", "100", "5", "0", "0", "10", "0.1", "0.05"
    )
    assert spec.instrument_id == "ETHUSDT-LINEAR.BYBIT"
