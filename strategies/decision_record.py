"""The per-bar decision record for reports, free of any engine: both engine bindings keep one.

Columnar float64 arrays (8 bytes per field per bar) that become the report's
``diagnostics.parquet`` and its equity plot.
"""

from __future__ import annotations

from array import array

import numpy as np
import pandas as pd

from policy.decision import Decision
from policy.filters import Blocker
from policy.risk import RiskStatus
from scoremodel.inference import Assessment

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
    """One row per decided bar: the model's reading, the policy's decision, the account, and
    the model version that decided it (an index into :attr:`version_ids`)."""

    def __init__(self) -> None:
        self.ts = array("q")
        self.columns = {name: array("d") for name in RECORDED_FIELDS}
        self.versions = array("l")
        self.version_ids: list[str] = []  # set by the strategy (ModelLifecycle.ids)

    def record(
        self,
        ts_ns: int,
        assessment: Assessment,
        decision: Decision,
        position: float,
        equity: float,
        close: float,
        version: int = 0,
    ) -> None:
        risk = decision.risk
        values = (
            assessment.signal,
            assessment.confidence,
            assessment.log_density,
            float(assessment.in_distribution),
            float(decision.blocker),
            decision.target,
            position,
            equity,
            risk.drawdown,
            risk.exposure,
            float(risk.status),
            close,
        )
        self.ts.append(ts_ns)
        self.versions.append(version)
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
        versions = np.frombuffer(self.versions, dtype=np.int64) if len(self.versions) else []
        ids = self.version_ids
        frame["model_version"] = [ids[v] if v < len(ids) else str(v) for v in versions]
        return frame
