"""Per-bar diagnostics as NautilusTrader 1.231 custom data, published on the message bus (the
record kept for reports is :mod:`strategies.decision_record`, free of any engine)."""

from nautilus_trader.core.data import Data
from nautilus_trader.model.custom import customdataclass
from nautilus_trader.model.data import DataType


@customdataclass
class ScoreMatchingDiagnostics(Data):
    """One bar's decision, published on the message bus as custom data."""

    signal: float = 0.0
    confidence: float = 0.0
    log_density: float = 0.0
    in_distribution: bool = True
    blocked_by: str = "NONE"
    target_qty: float = 0.0
    position_qty: float = 0.0
    equity: float = 0.0
    drawdown: float = 0.0
    exposure: float = 1.0
    risk_status: str = "NORMAL"


DIAGNOSTICS_DATA_TYPE = DataType(ScoreMatchingDiagnostics)
