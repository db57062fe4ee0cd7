"""Parameter sweeps: policy and model settings from a YAML grid or random space, each trial
evaluated walk-forward as one Ray task, ranked by out-of-sample Sharpe.

A space file::

    mode: grid            # every combination; or `random` with `trials: N` draws
    seed: 0               # random mode: the draws
    policy:               # PolicySettings fields
      min_confidence: [0.5, 0.6, 0.7]
      consistency_bars: [1, 3]
    model:                # TrainConfig fields (the per-fold training)
      hidden: [32, 64]
      learning_rate: {low: 0.0005, high: 0.005, log: true}   # random mode only

The ranking is honest about the search: the best trial's deflated Sharpe ratio accounts for
the number of trials and the spread of their Sharpe ratios, and Hansen's SPA test (arch)
asks whether any trial beats each baseline once every trial's chance of winning is counted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cli_errors import UserError
from evaluation.metrics import deflated_sharpe
from evaluation.metrics import sharpe
from evaluation.parallel import Task
from evaluation.parallel import TaskOutcome
from evaluation.parallel import fold_threads
from evaluation.parallel import put
from evaluation.parallel import run_tasks
from evaluation.summary import MODEL
from evaluation.summary import chain
from evaluation.summary import summarise
from evaluation.walk_forward import EvaluationConfig
from evaluation.walk_forward import bars_per_year
from evaluation.walk_forward import fold_setup
from evaluation.walk_forward import serial_folds
from field_rules import Rejected
from field_rules import rules_of
from output_paths import claim_output_dir
from output_paths import claim_subdirectory
from output_paths import write_atomically
from policy.settings import PolicySettings
from scoremodel.training import TrainConfig
from yaml_files import read_yaml

MODES = ("grid", "random")
SECTIONS = {"policy": PolicySettings, "model": TrainConfig}
SPA_BASELINES = ("buy_and_hold", "momentum", "reversal")
SPA_REPS = 1000
SPACE_EXAMPLE = "evaluation/sweep.py and the README's Sweeps section show one"
TABLE_METRICS = (
    "sharpe",
    "sharpe_low",
    "sharpe_high",
    "sharpe_before_fees",
    "total_return",
    "max_drawdown",
    "fees",
    "trades",
    "bars",
)


class SweepSpaceError(UserError, ValueError):
    """The sweep's space file cannot be used."""


@dataclass(frozen=True)
class SweepSpace:
    """The trials' settings: per section (policy, model) the values of each field."""

    mode: str
    values: dict[str, dict[str, Any]]
    trials: int | None = None
    seed: int = 0
    source: str = "<space>"

    def settings(self) -> list[dict[str, dict[str, Any]]]:
        """One {section: {field: value}} per trial, in a fixed order."""
        names = [(s, f) for s, fields in self.values.items() for f in fields]
        if self.mode == "grid":
            choices = [self.values[s][f] for s, f in names]
            combos = itertools.product(*choices)
        else:
            rng = np.random.default_rng(self.seed)
            combos = ([_draw(self.values[s][f], rng) for s, f in names] for _ in range(self.trials))
        trials = []
        for combo in combos:
            trial: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
            for (section, name), value in zip(names, combo, strict=True):
                trial[section][name] = value
            trials.append(trial)
        return trials


def load_space(path: str | Path) -> SweepSpace:
    """Read and check a space file; every problem is a :class:`SweepSpaceError`."""
    path = Path(path)
    raw = read_yaml(path, "sweep space", SPACE_EXAMPLE, SweepSpaceError)
    if not isinstance(raw, dict):
        raise SweepSpaceError(f"{path}: expected a mapping with mode, policy and/or model")
    unknown = set(raw) - {"mode", "trials", "seed", *SECTIONS}
    if unknown:
        raise SweepSpaceError(
            f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            "known: mode, trials, seed, policy, model"
        )
    mode = raw.get("mode", "grid")
    if mode not in MODES:
        raise SweepSpaceError(f"{path}: mode = {mode!r} is invalid; expected grid or random")
    trials = raw.get("trials")
    if mode == "random" and (not _is_whole(trials) or trials < 1):
        raise SweepSpaceError(f"{path}: random mode needs `trials:` a positive whole number")
    seed = raw.get("seed", 0)
    if not _is_whole(seed) or seed < 0:
        raise SweepSpaceError(f"{path}: seed = {seed!r} is invalid; expected a whole number >= 0")
    values = {
        section: _section(raw.get(section) or {}, section, mode, path) for section in SECTIONS
    }
    if not any(values.values()):
        raise SweepSpaceError(f"{path}: name at least one policy or model field to vary")
    space = SweepSpace(mode, values, trials, seed, str(path))
    return space


def trial_config(base: EvaluationConfig, trial: dict[str, dict[str, Any]]) -> EvaluationConfig:
    """``base`` with the trial's policy and training settings."""
    return replace(
        base,
        policy=replace(base.policy, **trial["policy"]),
        train=replace(base.train, **trial["model"]),
    )


def trial_configs(base: EvaluationConfig, space: SweepSpace) -> list[tuple[dict, EvaluationConfig]]:
    """Every trial's settings and configuration, all checked before anything runs."""
    configs = []
    for number, trial in enumerate(space.settings()):
        try:
            configs.append((trial, trial_config(base, trial).resolved()))
        except (ValueError, TypeError) as error:
            raise SweepSpaceError(
                f"{space.source}: trial {number} ({_describe(trial)}) is invalid: {error}"
            ) from error
    return configs


def run_trial(bars: pd.DataFrame, source: str, cfg: EvaluationConfig) -> dict:
    """One trial: the walk-forward folds (no scenario checks) and their pooled metrics, with
    the pooled per-bar returns of the model and the baselines (for the SPA test)."""
    per_year, _ = bars_per_year(bars.index)
    dataset, folds = fold_setup(bars, cfg)
    runs = [run for run, _ in serial_folds(bars, dataset, folds, source, cfg, per_year)]
    overall = summarise(runs, cfg, per_year, header={"folds": len(runs)})
    metrics = overall["strategies"][MODEL]
    pooled = {name: chain([r.sims[name] for r in runs]).returns for name in (MODEL, *SPA_BASELINES)}
    index = pooled[MODEL].index
    return {
        "metrics": {name: _number(metrics[name]) for name in TABLE_METRICS},
        "sharpe_per_bar": _number(sharpe(pooled[MODEL].to_numpy())),
        "baseline_sharpe": {
            name: _number(overall["strategies"][name]["sharpe"]) for name in SPA_BASELINES
        },
        "returns": {
            "time_ns": [int(t) for t in index.asi8],
            **{name: [_number(x) for x in series.to_numpy()] for name, series in pooled.items()},
        },
    }


def sweep(
    bars: pd.DataFrame,
    source: str,
    base: EvaluationConfig,
    space: SweepSpace,
    out: str | Path,
    log: Callable[[str], None] = print,
) -> tuple[pd.DataFrame, dict]:
    """Run every trial as a Ray task (finished trials in ``out``/tasks are reused) and write
    trials.parquet, trials.csv, sweep.json and report.md into ``out``."""
    out = Path(out)
    configs = trial_configs(base, space)
    fingerprint = bars_fingerprint(bars)
    shared = put(bars)
    tasks = [
        Task(
            f"trial {number}",
            run_trial,
            (shared, source, cfg),
            settings={"bars": fingerprint, "config": cfg.to_dict()},
            threads=fold_threads(cfg),
        )
        for number, (_, cfg) in enumerate(configs)
    ]
    log(f"{len(tasks)} trials ({space.mode}) of {source}, {base.n_folds} folds each")
    tasks_dir = claim_subdirectory(claim_output_dir(out, "--out"), "tasks", "--out")
    outcomes = run_tasks(tasks, tasks_dir, progress=log, what="trials")
    table = trials_table([trial for trial, _ in configs], outcomes)
    summary = rank_summary(table, outcomes, space, source)
    write_sweep_report(out, table, summary)
    return table, summary


def bars_fingerprint(bars: pd.DataFrame) -> str:
    """A hash of the bars' times and values (part of every task's key)."""
    hashed = pd.util.hash_pandas_object(bars, index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def trials_table(trials: list[dict], outcomes: list[TaskOutcome]) -> pd.DataFrame:
    """One row per trial: its settings, its model's pooled out-of-sample metrics or its error,
    ranked by Sharpe (failed trials last)."""
    rows = []
    for number, (trial, outcome) in enumerate(zip(trials, outcomes, strict=True)):
        row: dict[str, Any] = {"trial": number}
        for section, fields in trial.items():
            row |= {f"{section}.{name}": value for name, value in fields.items()}
        metrics = outcome.value["metrics"] if outcome.ok else {}
        row |= {name: metrics.get(name, np.nan) for name in TABLE_METRICS}
        row |= {"status": "ok" if outcome.ok else "failed", "error": outcome.error or ""}
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("sharpe", ascending=False, na_position="last")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def rank_summary(
    table: pd.DataFrame, outcomes: list[TaskOutcome], space: SweepSpace, source: str
) -> dict:
    """The best trial, its deflated Sharpe for the number of trials, and the SPA test of all
    trials against each baseline (under the best trial's rules)."""
    finished = {int(row.trial) for row in table.itertuples() if row.status == "ok"}
    summary: dict[str, Any] = {
        "source": source,
        "space": space.source,
        "mode": space.mode,
        "trials": len(outcomes),
        "finished": len(finished),
        "failed": [{"trial": n, "error": o.error} for n, o in enumerate(outcomes) if not o.ok],
    }
    if not finished:
        return summary
    best = int(table.iloc[0]["trial"])
    returns = {n: _returns(outcomes[n].value) for n in sorted(finished)}
    trial_sharpes = np.array([outcomes[n].value["sharpe_per_bar"] for n in sorted(finished)])
    best_model = returns[best][MODEL].to_numpy()
    summary["best"] = {
        "trial": best,
        "sharpe": float(table.iloc[0]["sharpe"]),
        "deflated_sharpe": _number(deflated_sharpe(best_model, trial_sharpes)),
        "baseline_sharpe": outcomes[best].value["baseline_sharpe"],
    }
    summary["spa"] = {
        name: spa_test(returns[best][name], {n: returns[n][MODEL] for n in returns}, seed=0)
        for name in SPA_BASELINES
    }
    return summary


def spa_test(benchmark: pd.Series, models: dict[int, pd.Series], seed: int = 0) -> dict:
    """Hansen's SPA test (arch): H0 = no trial's model earns more per bar than the benchmark.

    Losses are negative per-bar returns on the bars every series covers; stationary bootstrap
    with a block length of sqrt(T)."""
    from arch.bootstrap import SPA

    frame = pd.concat({"benchmark": benchmark, **{str(k): v for k, v in models.items()}}, axis=1)
    frame = frame.dropna()
    if len(frame) < 10:
        return {"p_value": float("nan"), "bars": len(frame), "note": "too few common bars"}
    losses = -frame
    test = SPA(
        losses["benchmark"].to_numpy(),
        losses.drop(columns="benchmark").to_numpy(),
        block_size=max(1, round(len(frame) ** 0.5)),
        reps=SPA_REPS,
        bootstrap="stationary",
        seed=seed,
    )
    test.compute()
    pvalues = test.pvalues
    return {
        "p_value": float(pvalues["consistent"]),
        "p_value_lower": float(pvalues["lower"]),
        "p_value_upper": float(pvalues["upper"]),
        "bars": len(frame),
    }


def write_sweep_report(out: Path, table: pd.DataFrame, summary: dict) -> None:
    """trials.parquet, trials.csv, sweep.json and report.md, each replaced atomically."""
    out = claim_output_dir(out, "--out")
    write_atomically(out / "trials.parquet", lambda path: table.to_parquet(path, index=False))
    write_atomically(out / "trials.csv", table.to_csv(index=False))
    write_atomically(out / "sweep.json", json.dumps(summary, indent=2, default=str))
    write_atomically(out / "report.md", sweep_markdown(table, summary))


def sweep_markdown(table: pd.DataFrame, summary: dict) -> str:
    """The ranking with the multiple-testing verdict on top."""
    lines = [
        f"# Sweep: {summary['trials']} trials ({summary['mode']}) on {summary['source']}",
        "",
        f"Space: `{summary['space']}`. Finished: {summary['finished']}; failed: "
        f"{len(summary['failed'])}. Ranked by the model's pooled out-of-sample Sharpe "
        "(annualised, after fees) over the walk-forward test windows.",
        "",
    ]
    if "best" in summary:
        best = summary["best"]
        lines += [
            f"**Best: trial {best['trial']}, Sharpe {best['sharpe']:+.2f}.** Deflated Sharpe "
            f"ratio for {summary['finished']} trials: {best['deflated_sharpe']:.3f} (the "
            "probability that its true Sharpe beats what the best of this many unskilled "
            "trials reaches by luck; >= 0.95 would be evidence).",
            "",
            "Hansen's SPA test, all trials against each baseline (under the best trial's "
            "rules; H0: no trial beats it; a small p-value means one does):",
            "",
            "| baseline | baseline Sharpe | SPA p-value (consistent) | bars |",
            "|---|---|---|---|",
        ]
        for name, spa in summary["spa"].items():
            lines.append(
                f"| {name} | {best['baseline_sharpe'][name]:+.2f} | {spa['p_value']:.3f} | "
                f"{spa['bars']} |"
            )
        lines.append("")
    for failure in summary["failed"]:
        lines.append(f"- trial {failure['trial']} failed: {failure['error']}")
    lines += ["", "## Trials", "", _markdown_table(table), ""]
    return "\n".join(lines)


def _markdown_table(table: pd.DataFrame) -> str:
    shown = table.drop(columns=["error"])
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = [
        "| " + " | ".join(_cell(value) for value in row) + " |"
        for row in shown.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _returns(value: dict) -> dict[str, pd.Series]:
    returns = value["returns"]
    index = pd.to_datetime(returns["time_ns"], utc=True)
    return {
        name: pd.Series(np.asarray(series, dtype=np.float64), index=index)
        for name, series in returns.items()
        if name != "time_ns"
    }


def _section(values: Any, section: str, mode: str, path: Path) -> dict[str, Any]:
    """The section's fields and their values, each value checked by its field's rule (so every
    trial's values are checked here, before bars are read or Ray starts)."""
    if not isinstance(values, dict):
        raise SweepSpaceError(f"{path}: {section} must be a mapping of field: values")
    known = {f.name for f in dataclasses.fields(SECTIONS[section])}
    rules = rules_of(SECTIONS[section])
    checked = {}
    for name, spec in values.items():
        if name not in known:
            raise SweepSpaceError(
                f"{path}: {section}.{name} is not a {SECTIONS[section].__name__} field; "
                f"known: {', '.join(sorted(known))}"
            )
        rule = rules.get(name)
        if isinstance(spec, list) and spec:
            checked[name] = [_value(rule, value, f"{section}.{name}", path) for value in spec]
        elif mode == "random" and isinstance(spec, dict) and {"low", "high"} <= set(spec):
            checked[name] = _range(rule, spec, f"{section}.{name}", path)
        else:
            wanted = "a non-empty list" + (" or {low: , high: }" if mode == "random" else "")
            raise SweepSpaceError(f"{path}: {section}.{name} = {spec!r}; expected {wanted}")
    return checked


def _value(rule: Any, value: Any, field: str, path: Path) -> Any:
    """``value`` if the field's rule allows it: a number as written (whole numbers give whole
    draws and the same task keys as before), other values as the rule reads them (``5e-4``,
    text to YAML 1.1, as a number)."""
    if rule is None:
        return value
    try:
        parsed = rule.parse(value)
    except Rejected:
        raise SweepSpaceError(
            f"{path}: {field} = {value!r} is invalid; expected {rule.allowed}"
        ) from None
    return value if _is_number(value) else parsed


def _range(rule: Any, spec: dict, field: str, path: Path) -> dict:
    """A random mode's ``{low, high, log}``: both ends allowed by the field's rule (so is every
    draw between them), low <= high, and low > 0 for a log-uniform draw."""
    low, high = (_value(rule, spec[end], f"{field}.{end}", path) for end in ("low", "high"))
    if not (_is_number(low) and _is_number(high)):
        raise SweepSpaceError(
            f"{path}: {field} = {spec!r} is invalid; a {{low: , high: }} range needs numbers, "
            "give a list of the values instead"
        )
    if low > high:
        raise SweepSpaceError(f"{path}: {field} = {spec!r} is invalid; expected low <= high")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SweepSpaceError(f"{path}: {field}.log = {log!r} is invalid; expected true or false")
    if log and low <= 0:
        raise SweepSpaceError(
            f"{path}: {field} = {spec!r} is invalid; a log-uniform range needs low > 0"
        )
    unknown = set(spec) - {"low", "high", "log"}
    if unknown:
        raise SweepSpaceError(
            f"{path}: {field} has unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            "known: low, high, log"
        )
    return {"low": low, "high": high, "log": log}


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _draw(spec: list | dict, rng: np.random.Generator) -> Any:
    if isinstance(spec, list):
        return spec[int(rng.integers(len(spec)))]
    low, high = float(spec["low"]), float(spec["high"])
    if spec.get("log"):
        value = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    else:
        value = float(rng.uniform(low, high))
    return round(value) if isinstance(spec["low"], int) and isinstance(spec["high"], int) else value


def _describe(trial: dict) -> str:
    return ", ".join(f"{s}.{k}={v}" for s, fields in trial.items() for k, v in fields.items())


def _number(value: Any) -> float:
    return float(value) if value is not None else float("nan")
