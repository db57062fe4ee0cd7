"""Per-bar diagnostics: a Nautilus custom data type, and a compact recorder for reports."""

from array import array

import numpy as np
import pandas as pd
from nautilus_trader.core.data import Data
from nautilus_trader.model.custom import customdataclass
from nautilus_trader.model.data import DataType

from policy.filters import Blocker
from policy.risk import RiskStatus


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

RECORDED_FIELDS = (
    "signal",
    "confidence",
    "log_density",
    "in_distribution",
    "blocked_by",
    "target_qty",
    "position_qty",
    "equity",
    "drawdown",
    "exposure",
    "risk_status",
    "close",
)


class DiagnosticsRecorder:
    """Columnar float64 arrays (8 bytes per field per bar) for the report's Parquet file."""

    def __init__(self) -> None:
        self.ts = array("q")
        self.columns = {name: array("d") for name in RECORDED_FIELDS}

    def record(self, ts_ns: int, *values: float) -> None:
        self.ts.append(ts_ns)
        for column, value in zip(self.columns.values(), values, strict=True):
            column.append(value)

    def __len__(self) -> int:
        return len(self.ts)

    def frame(self) -> pd.DataFrame:
        """The record as a DataFrame indexed by bar close time (UTC)."""
        frame = pd.DataFrame(
            {name: np.frombuffer(column, dtype=np.float64) for name, column in self.columns.items()}
        )
        frame.index = pd.to_datetime(np.frombuffer(self.ts, dtype=np.int64), unit="ns", utc=True)
        frame.index.name = "ts_close"
        frame["in_distribution"] = frame["in_distribution"].astype(bool)
        frame["blocked_by"] = [Blocker(int(v)).name for v in frame["blocked_by"]]
        frame["risk_status"] = [RiskStatus(int(v)).name for v in frame["risk_status"]]
        return frame
