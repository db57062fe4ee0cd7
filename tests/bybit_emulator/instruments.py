"""Instrument specifications and their Bybit v5 ``instruments-info`` rendering."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN
from decimal import ROUND_HALF_EVEN
from decimal import Decimal


def fmt_decimal(value: Decimal, places: int | None = None) -> str:
    """Format a decimal without exponent; quantize to ``places`` when given, else normalise."""
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
        return f"{value:f}"
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "") else text


def decimals_of(step: Decimal) -> int:
    """Number of decimal places of a step such as ``Decimal("0.10")`` (-> 2)."""
    exponent = step.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


@dataclass(frozen=True)
class InstrumentSpec:
    """A linear perpetual as Bybit describes it (strings mirror Bybit's own formatting)."""

    symbol: str = "BTCUSDT"
    base_coin: str = "BTC"
    quote_coin: str = "USDT"
    settle_coin: str = "USDT"
    tick_size: Decimal = Decimal("0.10")
    min_price: Decimal = Decimal("0.10")
    max_price: Decimal = Decimal("1999999.80")
    qty_step: Decimal = Decimal("0.001")
    min_qty: Decimal = Decimal("0.001")
    max_qty: Decimal = Decimal("1190.000")
    max_mkt_qty: Decimal = Decimal("119.000")
    min_notional: Decimal = Decimal("5")
    max_leverage: str = "100.00"
    leverage_step: str = "0.01"
    funding_interval_mins: int = 480
    launch_time_ms: int = 1_585_526_400_000
    status: str = "Trading"
    taker_fee: Decimal = Decimal("0.00055")
    maker_fee: Decimal = Decimal("0.0002")
    initial_price: Decimal = Decimal("60000")
    maintenance_margin_rate: Decimal = Decimal("0.005")

    @property
    def price_decimals(self) -> int:
        return decimals_of(self.tick_size)

    @property
    def qty_decimals(self) -> int:
        return decimals_of(self.qty_step)

    def round_price(self, price: Decimal) -> Decimal:
        """Round a price to the nearest tick."""
        ticks = (price / self.tick_size).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        return (ticks * self.tick_size).quantize(self.tick_size)

    def floor_qty(self, qty: Decimal) -> Decimal:
        """Round a quantity down to the quantity step."""
        steps = (qty / self.qty_step).quantize(Decimal(1), rounding=ROUND_DOWN)
        return (steps * self.qty_step).quantize(self.qty_step)

    def is_price_on_tick(self, price: Decimal) -> bool:
        return price % self.tick_size == 0

    def is_qty_on_step(self, qty: Decimal) -> bool:
        return qty % self.qty_step == 0

    def fmt_price(self, price: Decimal) -> str:
        return fmt_decimal(price, self.price_decimals)

    def fmt_qty(self, qty: Decimal) -> str:
        return fmt_decimal(qty, self.qty_decimals)

    def to_bybit(self) -> dict:
        """Render as one ``result.list`` item of ``GET /v5/market/instruments-info`` (linear)."""
        return {
            "symbol": self.symbol,
            "contractType": "LinearPerpetual",
            "status": self.status,
            "baseCoin": self.base_coin,
            "quoteCoin": self.quote_coin,
            "launchTime": str(self.launch_time_ms),
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": str(self.price_decimals),
            "leverageFilter": {
                "minLeverage": "1",
                "maxLeverage": self.max_leverage,
                "leverageStep": self.leverage_step,
            },
            "priceFilter": {
                "minPrice": self.fmt_price(self.min_price),
                "maxPrice": self.fmt_price(self.max_price),
                "tickSize": self.fmt_price(self.tick_size),
            },
            "lotSizeFilter": {
                "maxOrderQty": self.fmt_qty(self.max_qty),
                "minOrderQty": self.fmt_qty(self.min_qty),
                "qtyStep": self.fmt_qty(self.qty_step),
                "postOnlyMaxOrderQty": self.fmt_qty(self.max_qty),
                "maxMktOrderQty": self.fmt_qty(self.max_mkt_qty),
                "minNotionalValue": fmt_decimal(self.min_notional),
            },
            "unifiedMarginTrade": True,
            "fundingInterval": self.funding_interval_mins,
            "settleCoin": self.settle_coin,
            "copyTrading": "both",
            "upperFundingRate": "0.005",
            "lowerFundingRate": "-0.005",
            "isPreListing": False,
            "preListingInfo": None,
            "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
            "displayName": "",
        }


BTCUSDT = InstrumentSpec()
ETHUSDT = InstrumentSpec(
    symbol="ETHUSDT",
    base_coin="ETH",
    tick_size=Decimal("0.01"),
    min_price=Decimal("0.01"),
    max_price=Decimal("199999.98"),
    qty_step=Decimal("0.01"),
    min_qty=Decimal("0.01"),
    max_qty=Decimal("7240.00"),
    max_mkt_qty=Decimal("724.00"),
    initial_price=Decimal("3000"),
    launch_time_ms=1_615_766_400_000,
)
DEFAULT_INSTRUMENTS: tuple[InstrumentSpec, ...] = (BTCUSDT, ETHUSDT)
