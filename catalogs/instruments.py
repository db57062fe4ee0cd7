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

Where each value came from (no network here; stored public copies, cited at each spec):

- BTCUSDT, ETHUSDT, LTCUSDT, XRPUSDT, ADAUSDT, DOGEUSDT: the ``info`` of each linear market in
  ccxt's Bybit market fixture (``ccxt/ccxt`` ``ts/src/test/static/markets/bybit.json``, commit
  1f8d53ec6ee5), a captured ``/v5/market/instruments-info`` answer: every instrument field
  (tickSize, qtyStep, minOrderQty, maxOrderQty, maxMktOrderQty, minNotionalValue,
  maxLeverage). Its BTCUSDT and ETHUSDT rows equal the values below. SOLUSDT is not in it (kept
  as compiled before).
- BCHUSDT is in no stored v5 snapshot. Its tick (0.05), qty step and minimum (0.01), maximum
  order (600) and max leverage (50) are from Bybit's older ``/v2/public/symbols`` answer quoted
  in ccxt issue #11186 (2022); v2 had one maximum for every order type, so it is also the market
  order maximum here, and the minimum notional is the 5 USDT every v5 linear row carries. Best
  documented values, not a current snapshot: refresh before live trading.
- First-tier maintenance margin (``/v5/market/risk-limit``): not stored for these symbols.
  Bybit's tiers use maintenance = initial / 2, and the rates its published tiers carry at a
  given leverage are used: 0.5 % at 100x (BTCUSDT tier 1), 1 % at 50x (BTCUSDT tier 8 on Bybit's
  margin-parameters page, HYPEUSDT tier 2 in a stored risk-limit answer, and XRPUSDT's 2022
  position's ``positionMM`` / ``positionValue`` in a stored websocket sample), 0.67 % at 75x
  (BTCUSDT tier 4, HYPEUSDT tier 1). The initial margin is ``1 / maxLeverage``.
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
    if "margin_init" not in values:  # the initial margin rate at the maximum leverage
        values["margin_init"] = str(Decimal(1) / Decimal(values["max_leverage"]))
    return InstrumentSpec(symbol=symbol, base=base, **{**defaults, **values})


# "The ccxt fixture" below: ccxt/ccxt ts/src/test/static/markets/bybit.json @ 1f8d53ec6ee5, the
# "info" (a /v5/market/instruments-info row) of the linear market "<BASE>/USDT:USDT".
BYBIT_LINEAR_SPECS: Final[dict[str, InstrumentSpec]] = {
    # BTC/USDT:USDT in the ccxt fixture: tickSize 0.10, qtyStep 0.001, minOrderQty 0.001,
    # maxOrderQty 1190.000, maxMktOrderQty 119.000, minNotionalValue 5, maxLeverage 100.00.
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
    # ETH/USDT:USDT in the ccxt fixture: tickSize 0.01, qtyStep 0.01, minOrderQty 0.01,
    # maxOrderQty 7240.00, maxMktOrderQty 724.00, minNotionalValue 5, maxLeverage 100.00.
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
    # not in the ccxt fixture: the values compiled in 2025 (module docstring).
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
    # LTC/USDT:USDT in the ccxt fixture: tickSize 0.01, qtyStep 0.1, minOrderQty 0.1,
    # maxOrderQty 28740.0, maxMktOrderQty 6160.0, minNotionalValue 5, maxLeverage 50.00;
    # maintenance 1 % (Bybit's rate at 50x, module docstring).
    "LTCUSDT": _bybit_linear_spec(
        "LTCUSDT",
        "LTC",
        tick_size="0.01",
        qty_step="0.1",
        min_qty="0.1",
        max_qty="28740",
        max_market_qty="6160",
        max_leverage="50",
        margin_maint="0.01",
    ),
    # XRP/USDT:USDT in the ccxt fixture: tickSize 0.0001, qtyStep 1, minOrderQty 1,
    # maxOrderQty 10965300, maxMktOrderQty 2467800, minNotionalValue 5, maxLeverage 75.00;
    # maintenance 0.67 % (Bybit's rate at 75x, module docstring).
    "XRPUSDT": _bybit_linear_spec(
        "XRPUSDT",
        "XRP",
        tick_size="0.0001",
        qty_step="1",
        min_qty="1",
        max_qty="10965300",
        max_market_qty="2467800",
        max_leverage="75",
        margin_maint="0.0067",
    ),
    # ADA/USDT:USDT in the ccxt fixture: tickSize 0.0001, qtyStep 1, minOrderQty 1,
    # maxOrderQty 6315500, maxMktOrderQty 1109600, minNotionalValue 5, maxLeverage 75.00;
    # maintenance 0.67 % (Bybit's rate at 75x, module docstring).
    "ADAUSDT": _bybit_linear_spec(
        "ADAUSDT",
        "ADA",
        tick_size="0.0001",
        qty_step="1",
        min_qty="1",
        max_qty="6315500",
        max_market_qty="1109600",
        max_leverage="75",
        margin_maint="0.0067",
    ),
    # Bybit's /v2/public/symbols row quoted in ccxt issue #11186 (2022): tick_size 0.05,
    # qty_step 0.01, min_trading_qty 0.01, max_trading_qty 600 (v2: every order type),
    # max_leverage 50; minimum notional 5 as on every v5 linear row; maintenance 1 % (50x).
    # Not a v5 snapshot (none is stored): the best documented values, see the module docstring.
    "BCHUSDT": _bybit_linear_spec(
        "BCHUSDT",
        "BCH",
        tick_size="0.05",
        qty_step="0.01",
        min_qty="0.01",
        max_qty="600",
        max_market_qty="600",
        max_leverage="50",
        margin_maint="0.01",
    ),
    # DOGE/USDT:USDT in the ccxt fixture: tickSize 0.00001, qtyStep 1, minOrderQty 1,
    # maxOrderQty 43678900, maxMktOrderQty 5991100, minNotionalValue 5, maxLeverage 75.00;
    # maintenance 0.67 % (Bybit's rate at 75x, module docstring).
    "DOGEUSDT": _bybit_linear_spec(
        "DOGEUSDT",
        "DOGE",
        tick_size="0.00001",
        qty_step="1",
        min_qty="1",
        max_qty="43678900",
        max_market_qty="5991100",
        max_leverage="75",
        margin_maint="0.0067",
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
