"""Render the generated parts of README.md and docs/: results tables, commands, settings.

A generated part sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``
and is rendered by the renderer ``NAME`` below from what cannot drift: the JSON files the
benchmarks write (``docs/benchmarks.json``, ``docs/ray_scaling.json``, ``docs/retraining.json``,
``docs/retrain_latency.json``), the commands' own argument parsers, and the rules and defaults
of every run-configuration field (``field_rules``). ``make docs`` runs it before mkdocs;
``tests/test_docs.py`` fails when a committed file differs from what this renders.

Usage: ``python scripts/docs_render.py`` (rewrite the files), ``--check`` (exit 1 and name the
stale files, writing nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import os
import re
import sys
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# written by the benchmarks themselves, not by this script
NOT_RENDERED = {DOCS / "benchmarks.md", DOCS / "retraining.md", DOCS / "real_markets.md"}
BLOCK = re.compile(
    r"(?P<open><!-- generated:(?P<name>[\w-]+) -->\n).*?(?P<close><!-- /generated:(?P=name) -->)",
    re.S,
)
NOTE = "<!-- rendered by scripts/docs_render.py from {source}; edit that, not this -->\n"


# ----- helpers --------------------------------------------------------------------------------


def _json(name: str) -> dict[str, Any]:
    return json.loads((DOCS / name).read_text())


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _pct(value: float, digits: int = 1) -> str:
    return f"{value * 100:+.{digits}f} %"


def _md(text: str) -> str:
    """Docstring or help text as Markdown: rst literals and roles to code, ``<`` escaped."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # outside code spans
        parts[i] = parts[i].replace("<", "&lt;").replace("*", "\\*")
    return " ".join("`".join(parts).split())


# ----- results tables -------------------------------------------------------------------------


def render_headline() -> str:
    """README's one table: a headline figure of each benchmark, with its source."""
    bench = _json("benchmarks.json")
    ray = _json("ray_scaling.json")
    retrain = _json("retraining.json")
    latency = _json("retrain_latency.json")
    edge = bench["latency_edge"]
    runs = retrain["runs"]
    days = retrain["window"]["days_before_switch"] + retrain["window"]["days_after_switch"]
    quiet, busy = latency["runs"]["no training"], latency["runs"]["training in its process"]
    rows = [
        [
            "per-bar decision in the Nautilus engine, edge mode",
            f"`on_bar` mean {edge['mean']:.0f} us, p99 {edge['p99']:.0f} us; "
            f"{_n(bench['full_bars_per_s']['edge'])} bars/s = "
            f"{bench['full_to_bare']['edge'] * 100:.0f} % of the bare engine, "
            f"{bench['full_to_naive']['edge']:.0f}x the naive per-bar approach",
            "`python -m benchmarks` (`docs/benchmarks.json`)",
        ],
        [
            "walk-forward evaluation, serial against 2 Ray workers",
            f"{ray['serial_s']:.0f} s against {ray['ray_workers_s']:.0f} s "
            f"({ray['speedup']:.2f}x), "
            + ("identical results" if ray["identical"] else "results differ"),
            "`python -m benchmarks --ray` (`docs/ray_scaling.json`)",
        ],
        [
            "a market whose edge changes: frozen model against retraining (validated)",
            f"{_pct(runs['frozen']['whole']['return'])} against "
            f"{_pct(runs['retraining']['whole']['return'])} over {days:.0f} days, "
            "after fees and funding",
            "`python -m benchmarks.retraining` (`docs/retraining.json`)",
        ],
        [
            "live `on_bar` while a model retrains in its own process",
            f"p99 {busy['p99_us']:.0f} us against {quiet['p99_us']:.0f} us without a training",
            "`python -m benchmarks.retrain_latency` (`docs/retrain_latency.json`)",
        ],
    ]
    cpus = bench["machine"]["cpu_count"]
    return _table(["what", f"measured on {cpus} cores", "run"], rows)


def render_performance() -> str:
    """The latest `python -m benchmarks` run, from docs/benchmarks.json."""
    b = _json("benchmarks.json")
    rows = [["bars", f"{_n(b['bars'])} ({b['bars_source']} 1-minute)"]]
    rows.append(["bare engine", f"{_n(b['bare_bars_per_s'])} bars/s"])
    rows.append(["holding one position", f"{_n(b['hold_bars_per_s'])} bars/s"])
    for mode in ("score", "forecast", "edge"):
        lat = b[f"latency_{mode}"]
        rows.append(
            [
                f"full strategy, {mode} mode",
                f"{_n(b['full_bars_per_s'][mode])} bars/s = "
                f"{b['full_to_bare'][mode] * 100:.0f} % of bare, "
                f"{b['full_to_naive'][mode]:.0f}x naive; `on_bar` mean {lat['mean']:.0f} us, "
                f"p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us (bars without an order: "
                f"p99 {lat['p99_without_order']:.0f} us); {_n(b[f'orders_{mode}'])} orders; "
                f"RSS growth {b[f'rss_{mode}']['growth_mb']:+.1f} MB",
            ]
        )
    rows += [
        [
            "order-heavy (score mode)",
            f"{_n(b['order_heavy']['bars_per_s'])} bars/s, {_n(b['order_heavy']['orders'])} orders",
        ],
        ["naive per-bar approach", f"{b['naive_bars_per_s']:.1f} bars/s"],
        ["batch inference", f"{_n(b['batch_states_per_s'])} states/s"],
        ["compiled per-bar path vs torch", f"max abs diff {b['fast_path_max_abs_diff']:.1e}"],
        ["edge per-bar vs batch", f"max abs diff {b['edge_path_max_abs_diff']:.1e}"],
        [
            "DSM training",
            f"{_n(b['train_states_per_s'])} states/s = {b['train_gflops']:.1f} GFLOP/s "
            f"= {b['train_gemm_share'] * 100:.0f} % of the {b['gemm_gflops']:.1f} GFLOP/s "
            f"float32 GEMM peak ({b['torch_threads']} threads)",
        ],
        ["peak RSS", f"{_n(b['peak_rss_mb'])} MB"],
    ]
    machine = b["machine"]
    caption = (
        f"Run {machine['when']} on {machine['cpu_count']} cores (Python {machine['python']}, "
        f"torch {machine['torch']}, numpy {machine['numpy']}).\n\n"
    )
    return caption + _table(["measure", "result"], rows)


def render_engines(record: dict[str, Any] | None = None) -> str:
    """NautilusTrader 1.231 against 2.0: ``engines`` of docs/benchmarks.json (``record``: that
    record), one row per engine version, written by `python -m benchmarks`."""
    b = _json("benchmarks.json") if record is None else record
    engines = b.get("engines")
    if not engines:
        return (
            "The engines comparison has not been recorded yet: run `python -m benchmarks` "
            "(`make bench`), which writes it under `engines` in `docs/benchmarks.json`.\n"
        )
    first = next(iter(engines.values()))
    rows = [
        [
            version,
            _n(e["bare_bars_per_s"]),
            _n(e["full_bars_per_s"]),
            f"{e['bare_bars_per_s'] / e['full_bars_per_s']:.1f}x",
            f"{e['on_bar_mean_us']:.0f}",
            f"{e['on_bar_p50_us']:.0f}",
            f"{e['on_bar_p99_us']:.0f}",
            _n(e["orders"]),
        ]
        for version, e in engines.items()
    ]
    machine = b.get("machine", {})
    caption = (
        f"{_n(first['bars'])} synthetic one-minute bars (one quote each), the strategy in "
        f"{first['signal_mode']} mode"
    )
    if machine:
        caption += f"; run {machine['when']} on {machine['cpu_count']} cores"
    caption += "."
    if len(engines) == 1:
        caption += " Only this engine was measured: the other one's venv was not set up."
    header = ["engine", "bare bars/s", "full bars/s", "full/bare time"]
    header += ["`on_bar` mean us", "p50 us", "p99 us", "orders"]
    return caption + "\n\n" + _table(header, rows)


def render_retrain_latency() -> str:
    """`on_bar` of the live node with and without a training, docs/retrain_latency.json."""
    data = _json("retrain_latency.json")
    rows = [
        [
            name,
            _n(run["bars"]),
            f"{run['mean_us']:.0f}",
            f"{run['p50_us']:.0f}",
            f"{run['p99_us']:.0f}",
            f"{run['max_us']:.0f}",
        ]
        for name, run in data["runs"].items()
    ]
    return f"{_md(data['what'])} ({data['cpus']} CPUs).\n\n" + _table(
        ["run", "bars", "mean us", "p50 us", "p99 us", "max us"], rows
    )


def render_ray_scaling() -> str:
    """The Ray scale-out benchmark's table, docs/ray_scaling.json."""
    r = _json("ray_scaling.json")
    st, rt = r["serial_timings"], r["ray_timings"]
    rows = [
        [
            "serial (`python -m evaluation`, 1 pinned thread per fold)",
            f"{r['serial_s']:.0f} s: folds {st['folds_s']:.0f} s, pooled summary "
            f"{st['pooled_s']:.0f} s, scenario checks {st['scenarios_s']:.0f} s",
            "",
        ],
        [
            f"`--workers {r['workers']}` (includes starting Ray, {r['ray_start_s']:.1f} s, "
            "and the workers' imports)",
            f"{r['ray_workers_s']:.0f} s: folds with the scenario checks beside them "
            f"{rt['folds_s']:.0f} s, pooled summary {rt['pooled_s']:.0f} s; "
            + (
                "identical results (folds, pooled, scenarios)"
                if r["identical"]
                else "**results differ**"
            ),
            "identical",
        ],
        [
            "speedup, same numerics",
            f"**{r['speedup']:.2f}x** (the folds and scenario checks alone: "
            f"{st['folds_s'] + st['scenarios_s']:.0f} s -> {rt['folds_s']:.0f} s, "
            f"{(st['folds_s'] + st['scenarios_s']) / rt['folds_s']:.2f}x)",
            ">= 1.7x: " + ("met" if r["speedup"] >= 1.7 else "**not met**"),
        ],
        [
            f"Ray overhead per task (empty tasks, {r['workers']} workers, thread pinning included)",
            f"{r['overhead_per_task_ms']:.1f} ms",
            "",
        ],
        ["peak memory, serial (RSS)", f"{_n(r['serial_peak_rss_mb'])} MB", ""],
        [
            "peak memory with Ray (RSS of the command, GCS, raylet, workers)",
            f"{_n(r['ray_peak_rss_mb'])} MB",
            "< 24 GB: " + ("met" if r["ray_peak_rss_mb"] < 24_000 else "**not met**"),
        ],
        ["object store cap", f"{_n(r['object_store_bytes'] / 2**20)} MB", ""],
        [
            f"projection: {_n(r['projection']['tasks'])} tasks on {r['projection']['slots']} slots",
            f"{r['projection']['wall_hours']:.1f} h ({r['projection']['arithmetic']})",
            "",
        ],
    ]
    caption = (
        f"{_n(r['bars'])} bars, {r['folds']} folds, {r['epochs']} epochs; {r['machine']}, "
        f"load average (1 minute) {r['load_average_before'][0]:.1f} before, "
        f"{r['load_average_after'][0]:.1f} after.\n\n"
    )
    return caption + _table(["", "result", "target"], rows)


def render_retraining() -> str:
    """Frozen against retrained models before and after the switch, docs/retraining.json."""
    data = _json("retraining.json")
    rows = []
    for name, run in data["runs"].items():
        b, a, w = run["before"], run["after"], run["whole"]
        halted = " (halted)" if w.get("halted") else ""
        rows.append(
            [
                name,
                f"{_pct(b['return'])}, {b['sharpe']:.2f}",
                f"{_pct(a['return'])}, {a['sharpe']:.2f}",
                f"{_pct(w['return'])}, {w['max_drawdown'] * 100:.1f} %{halted}",
                _n(w["fills"]),
            ]
        )
    header = [
        "run",
        "before the switch: return, Sharpe",
        "after: return, Sharpe",
        "whole: return, max DD",
        "fills",
    ]
    m = data["market"]
    caption = (
        f"`{data['command']}`: {_n(m['bars'])} {m['interval']} bars of `{m['kind']}` "
        f"(switch at bar {_n(m['switch_bar'])}, {m['switch'][:10]}); "
        f"{data['seconds']['total']:.0f} s on {data['machine']}.\n\n"
    )
    return caption + _table(header, rows)


# ----- commands -------------------------------------------------------------------------------


class _Built(Exception):
    """Raised by a patched parse_args to hand back a parser built inside a main()."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def _from_main(main: Callable[..., Any]) -> argparse.ArgumentParser:
    """The parser a ``main()`` builds before it parses (nothing else of main runs)."""

    def capture(self: argparse.ArgumentParser, *_: Any, **__: Any) -> Any:
        raise _Built(self)

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = capture  # type: ignore[method-assign]
    try:
        main([])
    except _Built as built:
        return built.parser
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    raise RuntimeError(f"{main.__module__}.main built no parser")


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command line of the project with its parser."""
    import benchmarks.engines
    import benchmarks.forecast_quality
    import benchmarks.ray_scaling
    import benchmarks.retrain_latency
    import benchmarks.retraining
    import benchmarks.run
    import catalogs.cli
    import evaluation.cli
    import run_backtest
    import run_live
    import scoremodel.cli

    return [
        ("python run_backtest.py", run_backtest._parser()),
        ("python run_live.py", run_live._parser()),
        ("python -m catalogs", catalogs.cli.build_parser()),
        ("python -m scoremodel", scoremodel.cli._parser()),
        ("python -m evaluation", evaluation.cli._parser()),
        ("python -m evaluation sweep", evaluation.cli._sweep_parser()),
        ("python -m evaluation instruments", evaluation.cli._instruments_parser()),
        ("python -m benchmarks", benchmarks.run._parser()),
        ("python -m benchmarks --ray", _from_main(benchmarks.ray_scaling.main)),
        ("python -m benchmarks.engines", benchmarks.engines._parser()),
        ("python -m benchmarks.retraining", benchmarks.retraining._parser()),
        ("python -m benchmarks.retrain_latency", _from_main(benchmarks.retrain_latency.main)),
        ("python -m benchmarks.forecast_quality", _from_main(benchmarks.forecast_quality.main)),
    ]


def _option(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return f"`{names}`"
    metavar = action.metavar or (
        "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    )
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    if action.nargs in ("+", "*"):
        metavar += " ..."
    elif action.nargs == "?":
        metavar = f"[{metavar}]"
    return f"`{names} {metavar}`"


def _default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    if isinstance(action.default, list | tuple):
        return "`" + " ".join(map(str, action.default)) + "`"
    return f"`{action.default}`"


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        text = ""
    else:
        text = parser._get_formatter()._expand_help(action)
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        text += f" (one of: {', '.join(f'`{c}`' for c in action.choices)})"
    return _md(text)


def _first_paragraph(text: str | None) -> str:
    return _md(inspect.cleandoc(text or "").split("\n\n")[0]) if text else ""


def _parser_section(title: str, parser: argparse.ArgumentParser, level: int) -> Iterator[str]:
    parser.prog = title
    yield f"{'#' * level} `{title}`\n"
    description = _first_paragraph(parser.description)
    if description:
        yield description + "\n"
    yield "```text\n" + parser.format_usage().strip() + "\n```\n"
    rows, subcommands = [], []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            subcommands.append(action)
            continue
        rows.append([_option(action), _default(action), _help(parser, action)])
    if rows:
        yield _table(["option", "default", "what"], rows)
    for action in subcommands:
        for name, sub in action.choices.items():
            yield from _parser_section(f"{title} {name}", sub, level + 1)


def render_commands() -> str:
    """Every command's options, from its own argparse parser."""
    os.environ["COLUMNS"] = "100"  # argparse wraps the usage line at the terminal's width
    out: list[str] = []
    for title, parser in _commands():
        out.extend(_parser_section(title, parser, 2))
    return "\n".join(out)


# ----- run configuration ----------------------------------------------------------------------


def _comments(cls: type) -> dict[str, str]:
    """The comment beside each field in the class's source (a comment continued on the next
    field's line, e.g. ``# None: the`` then ``# instrument's``, is joined for both)."""
    found: list[tuple[str, str]] = []
    for line in inspect.getsource(cls).splitlines():
        match = re.match(r"\s+(\w+):[^#]*#\s*(.*)$", line)
        if match:
            found.append((match.group(1), match.group(2).strip()))
    comments: dict[str, str] = {}
    i = 0
    while i < len(found):
        name, text = found[i]
        names = [name]
        while i + 1 < len(found) and (
            text.count("(") > text.count(")") or re.search(r"\b(the|a|an|of|or|and)$", text)
        ):
            i += 1
            names.append(found[i][0])
            text = f"{text} {found[i][1]}"
        for each in names:
            comments[each] = text
        i += 1
    return comments


def _value(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def _settings_table(cls: type) -> str:
    from field_rules import rules_of

    rules = rules_of(cls)
    comments = _comments(cls)
    rows = [
        [
            f"`{f.name}`",
            _value(f.default),
            _md(rules[f.name].allowed),
            _md(comments.get(f.name, "")),
        ]
        for f in dataclasses.fields(cls)
        if f.name in rules
    ]
    return _table(["field", "default", "allowed", "notes"], rows)


def _parameter_docs(doc: str) -> dict[str, str]:
    """numpydoc ``Parameters`` of a docstring: each name (or group of names) and its text."""
    section = doc.split("Parameters\n    ----------\n", 1)[1]
    docs: dict[str, str] = {}
    names: list[str] = []
    for line in section.splitlines():
        if line.startswith("    ") and not line.startswith("        ") and line.strip():
            names = [n.strip() for n in line.split(" : ")[0].split(",")]
            for name in names:
                docs[name] = ""
        elif line.startswith("        "):
            for name in names:
                docs[name] = (docs[name] + " " + line.strip()).strip()
    return docs


def render_config_strategy() -> str:
    """The ``strategy:`` section: ScoreMatchingConfig's fields with their rules (STRATEGY_RULES)."""
    import msgspec

    from strategies.score_matching import STRATEGY_RULES
    from strategies.score_matching import ScoreMatchingConfig

    docs = _parameter_docs(ScoreMatchingConfig.__doc__ or "")
    rows = []
    for f in msgspec.structs.fields(ScoreMatchingConfig):
        if f.name not in STRATEGY_RULES:
            continue
        default = "required" if f.required else _value(f.default)
        rule = STRATEGY_RULES[f.name]
        rows.append([f"`{f.name}`", default, _md(rule.allowed), _md(docs.get(f.name, ""))])
    return _table(["field", "default", "allowed", "what"], rows)


def render_config_backtest() -> str:
    """The ``backtest:`` section (runtime.run_config.BacktestSettings)."""
    from runtime.run_config import BacktestSettings

    return _settings_table(BacktestSettings)


def render_config_live() -> str:
    """The ``live:`` section (runtime.run_config.LiveSettings)."""
    from runtime.run_config import LiveSettings

    return _settings_table(LiveSettings)


def render_config_retrain() -> str:
    """The ``retrain:`` section (strategies.retraining.RetrainSettings)."""
    from strategies.retraining import RetrainSettings

    return _settings_table(RetrainSettings)


def render_config_train() -> str:
    """A sweep's ``model:`` values (scoremodel.training.TrainConfig)."""
    from scoremodel.training import TrainConfig

    return _settings_table(TrainConfig)


# ----- the README's layout in the docs --------------------------------------------------------


def render_layout() -> str:
    """README's Layout table, its links made relative to docs/."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Layout\n\n", 1)[1].split("\n\n", 1)[0]
    return table.replace("](docs/", "](") + "\n"


# ----- filters and real markets -----------------------------------------------------------------

FILTER_HEADER = [
    *("filter", "flagged", "Sharpe with / without", "vs without [95 % CI]"),
    *("max DD with / without", "worst 30 days with / without", "trades without", "target met"),
]
TARGET_WORDS = {None: "n/a", True: "yes", False: "no"}  # meets_target


def _maybe_pct(value: float | None) -> str:
    return "n/a" if value is None else _pct(value)


def _filter_row(label: str, f: dict) -> list[str]:
    """One filter with and without (the evaluation's filter_comparison entry)."""
    d = f["sharpe_difference"]
    return [
        label,
        f"{f['flagged_share'] * 100:.1f} %",
        f"{f['sharpe']:.2f} / {f['sharpe_without']:.2f}",
        f"{d['difference']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]",
        f"{f['max_drawdown'] * 100:.1f} % / {f['max_drawdown_without'] * 100:.1f} %",
        f"{_maybe_pct(f['worst_30d'])} / {_maybe_pct(f['worst_30d_without'])}",
        f"{f['trades_without']:,.0f}",
        TARGET_WORDS[f["meets_target"]],
    ]


def render_filters_demo() -> str:
    """The demo market's Filters section, docs/results/data/demo_evaluation.json."""
    from evaluation.report import filter_label

    comparison = _json("results/data/demo_evaluation.json")["overall"]["filter_comparison"]
    rows = [
        _filter_row(filter_label(name, comparison), f)
        for name, f in comparison["filters"].items()
        if name != "none"
    ]
    return _table(FILTER_HEADER, rows)


DEMO_STRATEGIES = {
    "model": "edge (defaults)",
    "model_no_filter": "no density filter",
    "model_other_rule": "percentile density rule",
    "model_no_confidence": "min_confidence 0",
    "ridge": "ridge",
    "nll_mlp": "NLL MLP",
    "model_score": "score mode",
    "buy_and_hold": "buy-and-hold",
}


def render_demo_walk_forward() -> str:
    """The demo market's walk-forward strategies and forecasters, demo_evaluation.json."""
    results = _json("results/data/demo_evaluation.json")
    overall = results["overall"]
    rows = []
    for name, label in DEMO_STRATEGIES.items():
        m = overall["strategies"][name]
        f = overall["forecast_by_model"].get(name)
        ic = (f or {}).get("ic_pearson")
        rows.append([
            label,
            f"{m['sharpe']:.2f} [{m['sharpe_low']:.2f}, {m['sharpe_high']:.2f}]",
            _pct(m["total_return"]),
            f"{m['fees'] * 100:.1f} %",
            f"{m['max_drawdown'] * 100:.1f} %",
            _n(m["trades"]),
            "" if f is None else f"{_pct(f['crps_skill'], 2)}",
            "" if not ic else f"{ic['value']:+.3f} [{ic['low']:+.3f}, {ic['high']:+.3f}]",
        ])  # fmt: skip
    header = ["strategy", "Sharpe after fees and funding [95 % CI]", "return", "fees",
              "max DD", "trades", "CRPS skill", "Pearson IC"]  # fmt: skip
    return _table(header, rows)


def render_real_forecasters() -> str:
    """Every forecaster's CRPS skill per market and horizon, docs/real_markets.json."""
    from benchmarks.real_markets import FORECASTERS

    record = _json("real_markets.json")
    rows = []
    for run in record["runs"]:
        f = run["forecasters"]
        model = f["model"]
        cover = " / ".join(f"{v * 100:.1f}" for v in model["coverage"].values())
        cells = [
            f"{f[n]['crps_skill'] * 100:+.1f} [{f[n]['crps_skill_low'] * 100:+.1f}, "
            f"{f[n]['crps_skill_high'] * 100:+.1f}]"
            for n in FORECASTERS
        ]
        rows.append([run["market"], str(run["horizon"]), *cells, cover, f"{model['pit_ks']:.3f}",
                     run["verdict"]])  # fmt: skip
    header = ["market", "h", *FORECASTERS, "model coverage 50/80/90", "model PIT KS", "verdict"]
    return f"`{record['command']}`, {record['seconds']:.0f} s.\n\n" + _table(header, rows)


def render_filters_real() -> str:
    """The traded filters against none per real market, docs/real_markets.json."""
    from evaluation.report import filter_label

    record = _json("real_markets.json")
    rows, gates = [], []
    for run in record["runs"]:
        market = f"{run['market']}, h = {run['horizon']}"
        for name, f in run["filters"].items():
            if name == "none":
                continue
            label = f"{market}: {filter_label(name, run['filter_settings'])}"
            rows.append(_filter_row(label, f))
            if name.startswith("density_"):
                g, hold = f["buy_and_hold_gated"], run["strategies"]["buy_and_hold"]
                drawdowns = f"{g['max_drawdown'] * 100:.1f} % / {hold['max_drawdown'] * 100:.1f} %"
                target = TARGET_WORDS[g["meets_target"]]
                gates.append([label, f"{f['flagged_share'] * 100:.1f} %",
                              f"{g['sharpe']:.2f} / {hold['sharpe']:.2f}", drawdowns,
                              _maybe_pct(g["worst_30d"]), target])  # fmt: skip
    gate_header = ["market: filter", "flagged", "Sharpe gated / buy-and-hold",
                   "max DD gated / buy-and-hold", "worst 30 days gated", "target met"]  # fmt: skip
    return (
        _table(["market: filter", *FILTER_HEADER[1:]], rows)
        + "\nAs a risk gate on buy-and-hold (flat on the flagged bars):\n\n"
        + _table(gate_header, gates)
    )


RENDERERS: dict[str, tuple[Callable[[], str], str]] = {
    "headline": (render_headline, "docs/*.json"),
    "performance": (render_performance, "docs/benchmarks.json"),
    "engines": (render_engines, "docs/benchmarks.json"),
    "retrain-latency": (render_retrain_latency, "docs/retrain_latency.json"),
    "ray-scaling": (render_ray_scaling, "docs/ray_scaling.json"),
    "retraining": (render_retraining, "docs/retraining.json"),
    "commands": (render_commands, "the commands' argument parsers"),
    "config-strategy": (render_config_strategy, "strategies/score_matching.py"),
    "config-backtest": (render_config_backtest, "runtime/run_config.py"),
    "config-live": (render_config_live, "runtime/run_config.py"),
    "config-retrain": (render_config_retrain, "strategies/retraining.py"),
    "config-train": (render_config_train, "scoremodel/training.py"),
    "layout": (render_layout, "README.md"),
    "filters-demo": (render_filters_demo, "docs/results/data/demo_evaluation.json"),
    "demo-walk-forward": (render_demo_walk_forward, "docs/results/data/demo_evaluation.json"),
    "filters-real": (render_filters_real, "docs/real_markets.json"),
    "real-forecasters": (render_real_forecasters, "docs/real_markets.json"),
}


# ----- files ----------------------------------------------------------------------------------


def documents() -> list[Path]:
    """README.md and every Markdown file under docs/ that this script may render into."""
    pages = sorted(p for p in DOCS.rglob("*.md") if p not in NOT_RENDERED)
    return [ROOT / "README.md", *pages]


def render_text(text: str, cache: dict[str, str]) -> str:
    """``text`` with every generated block rendered afresh (``cache``: name -> Markdown)."""

    def block(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in RENDERERS:
            raise KeyError(f"unknown generated block {name!r}; known: {', '.join(RENDERERS)}")
        if name not in cache:
            function, source = RENDERERS[name]
            body = function()
            cache[name] = NOTE.format(source=source) + body.rstrip("\n") + "\n"
        return match.group("open") + cache[name] + match.group("close")

    return BLOCK.sub(block, text)


def rendered() -> dict[Path, str]:
    """Each document that holds a generated block, with its blocks rendered afresh."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    cache: dict[str, str] = {}
    out = {}
    with contextlib.chdir(ROOT):
        for path in documents():
            text = path.read_text()
            if BLOCK.search(text):
                out[path] = render_text(text, cache)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="name stale files, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        if path.read_text() != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(text)
    for path in stale:
        print(f"{'stale' if args.check else 'rendered'}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
