"""Honest out-of-sample evaluation: walk-forward folds, baselines, controls, forecast quality.

``python -m evaluation`` (:mod:`.cli`) runs :func:`evaluate` and :func:`write_report` on the
run configuration's policy. Modules, one idea each: :mod:`.folds` (purged walk-forward folds),
:mod:`.simulate` (the position simulator, deciding through :class:`policy.decision.Policy`),
:mod:`.baselines`, :mod:`.metrics`, :mod:`.forecast_quality`, :mod:`.density_diagnostics`,
:mod:`.scenarios`, :mod:`.walk_forward` (the run), :mod:`.summary` (pooling over test
windows), :mod:`.plots` and :mod:`.report`. Bars come in as a canonical bar frame.
"""

from evaluation.report import write_report
from evaluation.walk_forward import EvaluationConfig
from evaluation.walk_forward import evaluate

__all__ = ["EvaluationConfig", "evaluate", "write_report"]
