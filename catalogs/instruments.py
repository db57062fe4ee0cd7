"""Bybit linear-perpetual instrument specs and their Nautilus ``CryptoPerpetual`` instruments.

Instrument ids follow Nautilus's Bybit adapter, ``{symbol}-LINEAR.BYBIT``, so bars written to a
catalog for backtests and bars streamed by the live Bybit data client share one id.

The built-in specs in :data:`BYBIT_LINEAR_SPECS` are a snapshot of Bybit's public contract
specifications (``GET /v5/market/instruments-info?category=linear``: ``priceFilter.tickSize``,
``lotSizeFilter.qtyStep/minOrderQty/maxOrderQty/maxMktOrderQty/minNotionalValue``,
``leverageFilter.maxLeverage``), the first (lowest) risk-limit tier's maintenance margin rate,
and the default non-VIP derivatives fee schedule (maker 0.02 %, taker 0.055 %), compiled in
2025. They were not re-fetched when this module was written. Exchanges change limits and fees:
before live trading, refresh them from ``/v5/market/instruments-info`` and your account's
``/v5/account/fee-rate`` and pass your own :class:`InstrumentSpec` to :func:`make_perpetual`.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
from decimal import Decimal
from typing import Final

from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Symbol
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import Currency
from nautilus_trader.model.objects import Money
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from catalogs.errors import UnknownInstrumentError

BYBIT_VENUE: Final[str] = "BYBIT"
LINEAR_SUFFIX: Final[str] = "-LINEAR"

_DECIMAL_FIELDS: Final[tuple[str, ...]] = (
    "tick_size",
    "qty_step",
    "min_qty",
    "max_qty",
    "min_notional",
    "maker_fee",
    "taker_fee",
    "max_leverage",
    "margin_init",
    "margin_maint",
    "max_market_qty",
)


@dataclass(frozen=True)
class InstrumentSpec:
    """Contract specification of one linear perpetual (decimal fields accept str or Decimal).

    ``max_qty`` is the largest limit order, ``max_market_qty`` the largest market order.
    ``margin_init`` is the initial margin rate at ``max_leverage`` (``1 / max_leverage``) and
    ``margin_maint`` the first risk-limit tier's maintenance margin rate, both as fractions of
    notional; they are the rates Nautilus's ``StandardMarginModel`` applies directly.
    """

    symbol: str
    base: str
    quote: str
    tick_size: Decimal | str
    qty_step: Decimal | str
    min_qty: Decimal | str
    max_qty: Decimal | str
    min_notional: Decimal | str
    maker_fee: Decimal | str
    taker_fee: Decimal | str
    max_leverage: Decimal | str
    margin_init: Decimal | str
    margin_maint: Decimal | str
    max_market_qty: Decimal | str | None = None

    def __post_init__(self) -> None:
        for name in _DECIMAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _to_decimal(name, value))
        object.__setattr__(self, "symbol", self.symbol.upper())
        self._check_positive()

    @property
    def instrument_id(self) -> str:
        """The Nautilus instrument id, e.g. ``'BTCUSDT-LINEAR.BYBIT'``."""
        return bybit_linear_instrument_id(self.symbol)

    def _check_positive(self) -> None:
        for spec_field in fields(self):
            value = getattr(self, spec_field.name)
            if isinstance(value, Decimal) and value < 0:
                raise ValueError(f"InstrumentSpec.{spec_field.name} must be >= 0, got {value}")
        for name in ("tick_size", "qty_step", "min_qty", "max_qty", "max_leverage"):
            if getattr(self, name) == 0:
                raise ValueError(f"InstrumentSpec.{name} must be > 0")


def _to_decimal(name: str, value: Decimal | str | float) -> Decimal:
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError as exc:
        raise ValueError(f"InstrumentSpec.{name}: not a decimal number: {value!r}") from exc


def _bybit_linear_spec(symbol: str, base: str, **values: str) -> InstrumentSpec:
    defaults = {"quote": "USDT", "min_notional": "5", "maker_fee": "0.0002", "taker_fee": "0.00055"}
    return InstrumentSpec(symbol=symbol, base=base, **{**defaults, **values})


BYBIT_LINEAR_SPECS: Final[dict[str, InstrumentSpec]] = {
    "BTCUSDT": _bybit_linear_spec(
        "BTCUSDT",
        "BTC",
        tick_size="0.10",
        qty_step="0.001",
        min_qty="0.001",
        max_qty="1190",
        max_market_qty="119",
        max_leverage="100",
        margin_init="0.01",
        margin_maint="0.005",
    ),
    "ETHUSDT": _bybit_linear_spec(
        "ETHUSDT",
        "ETH",
        tick_size="0.01",
        qty_step="0.01",
        min_qty="0.01",
        max_qty="7240",
        max_market_qty="724",
        max_leverage="100",
        margin_init="0.01",
        margin_maint="0.005",
    ),
    "SOLUSDT": _bybit_linear_spec(
        "SOLUSDT",
        "SOL",
        tick_size="0.010",
        qty_step="0.1",
        min_qty="0.1",
        max_qty="120000",
        max_market_qty="12000",
        max_leverage="100",
        margin_init="0.01",
        margin_maint="0.005",
    ),
}


def bybit_linear_instrument_id(symbol: str) -> str:
    """Return the Nautilus id of a Bybit linear contract, e.g. ``'BTCUSDT-LINEAR.BYBIT'``."""
    return f"{symbol.upper()}{LINEAR_SUFFIX}.{BYBIT_VENUE}"


def get_spec(symbol: str) -> InstrumentSpec:
    """Return the built-in spec for ``symbol`` or raise a clear error."""
    spec = BYBIT_LINEAR_SPECS.get(symbol.upper())
    if spec is None:
        raise UnknownInstrumentError(
            f"No built-in Bybit linear spec for {symbol!r}; known symbols: "
            f"{', '.join(sorted(BYBIT_LINEAR_SPECS))}; give one of them with --symbol. Another "
            "contract needs its spec added to BYBIT_LINEAR_SPECS in catalogs/instruments.py (or, "
            "from Python, spec=InstrumentSpec(...)) with values from "
            "/v5/market/instruments-info"
        )
    return spec


def make_perpetual(symbol: str = "BTCUSDT", spec: InstrumentSpec | None = None) -> CryptoPerpetual:
    """Build the Nautilus ``CryptoPerpetual`` for a Bybit linear perpetual.

    Uses the built-in spec for ``symbol`` unless ``spec`` is given (then ``symbol`` must match
    ``spec.symbol``). The instrument id is ``{symbol}-LINEAR.BYBIT``, as in Nautilus's Bybit
    adapter.
    """
    if spec is None:
        spec = get_spec(symbol)
    elif spec.symbol != symbol.upper():
        raise ValueError(
            f"symbol {symbol!r} does not match spec.symbol {spec.symbol!r}; "
            "call make_perpetual(spec.symbol, spec)"
        )
    quote = Currency.from_str(spec.quote)
    price_increment = Price.from_str(str(spec.tick_size))
    size_increment = Quantity.from_str(str(spec.qty_step))
    return CryptoPerpetual(
        instrument_id=InstrumentId.from_str(spec.instrument_id),
        raw_symbol=Symbol(spec.symbol),
        base_currency=Currency.from_str(spec.base),
        quote_currency=quote,
        settlement_currency=quote,
        is_inverse=False,
        price_precision=price_increment.precision,
        size_precision=size_increment.precision,
        price_increment=price_increment,
        size_increment=size_increment,
        lot_size=size_increment,
        max_quantity=Quantity(float(spec.max_qty), size_increment.precision),
        min_quantity=Quantity(float(spec.min_qty), size_increment.precision),
        min_notional=Money(float(spec.min_notional), quote),
        margin_init=spec.margin_init,
        margin_maint=spec.margin_maint,
        maker_fee=spec.maker_fee,
        taker_fee=spec.taker_fee,
        ts_event=0,
        ts_init=0,
    )
