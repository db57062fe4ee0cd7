"""Honest out-of-sample evaluation: walk-forward folds, baselines, forecast quality, scenarios.

``python -m scoremodel evaluate`` runs :func:`evaluate` and :func:`write_report`. Modules, one
idea each: :mod:`.folds` (purged walk-forward folds), :mod:`.simulate` (the shared cost-aware
position simulator), :mod:`.baselines`, :mod:`.metrics`, :mod:`.forecast_quality`,
:mod:`.density_diagnostics`, :mod:`.scenarios`, :mod:`.walk_forward` (the run),
:mod:`.summary` (pooling over test windows), :mod:`.plots` and :mod:`.report`.
No Nautilus import: bars come in as a canonical bar frame.
"""

from scoremodel.evaluation.report import write_report
from scoremodel.evaluation.walk_forward import EvaluationConfig
from scoremodel.evaluation.walk_forward import evaluate

__all__ = ["EvaluationConfig", "evaluate", "write_report"]
