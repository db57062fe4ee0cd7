"""The report's figures (PNG, matplotlib Agg backend)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from evaluation.forecast_quality import gaussian_quantiles
from evaluation.forecast_quality import pit_from_quantiles
from evaluation.summary import MODEL
from evaluation.summary import FoldRun
from output_paths import write_atomically
from scoremodel.forecast import QUANTILES

EQUITY_LINES = {
    "model": ("tab:blue", 1.6),
    "model_no_filter": ("tab:cyan", 0.9),
    "model_forecast": ("tab:purple", 0.9),
    "buy_and_hold": ("black", 1.0),
    "momentum": ("tab:green", 0.9),
    "reversal": ("tab:orange", 0.9),
    "random": ("grey", 0.7),
}


def figure_captions(results: dict) -> dict[str, str]:
    """One caption per figure: printed under it in the PNG and under its image in report.md.

    Strategy figures state the annualisation, fee and funding treatment; the others say that
    none applies (they measure the signal and forecasts, not trading).
    """
    charged = results.get("costs") or {
        "execution": "taker",
        "fee": results["config"]["execution"]["taker_fee"],
        "funding_charged": False,
    }
    if charged["execution"] == "maker":
        fills = "post-only limits at the close, filled when a later bar trades through them"
    else:
        fills = "decision at a bar's close, fill at the next bar's open"
    funding = (
        "funding charged from the catalog's rates"
        if charged["funding_charged"]
        else "funding not charged (no rates)"
    )
    costs = (
        f"net of the {charged['fee']:.3%} {charged['execution']} fee on every position change "
        f"({fills}); {funding}"
    )
    annualisation = (
        f"Sharpe: {results['annualisation']}, N = {results['bars_per_year']:,.0f} bars per year"
    )
    no_trading = "no trading, so no fees, funding or annualisation apply"
    return {
        "equity_folds.png": f"Equity per test window (start = 1), {costs}. {annualisation}.",
        "ic_folds.png": f"Spearman IC vs the h-bar forward return; {no_trading}.",
        "pit.png": f"PIT of the h-bar forward log return; {no_trading}.",
        "calibration.png": f"Reliability of P(up) and interval coverage; {no_trading}.",
        "ks_features.png": f"Generated vs held-out market states; {no_trading}.",
        "density_filter.png": f"Bars flagged by each filter; the unfiltered strategy's "
        f"next-bar return is {costs}.",
    }


def write_plots(directory: Path, results: dict, runs: list[FoldRun], scenarios: dict) -> list[str]:
    """Write every figure, each with its caption underneath; returns the file names."""
    figures = {
        "equity_folds.png": lambda: _equity(runs),
        "ic_folds.png": lambda: _ic(results),
        "pit.png": lambda: _pit(runs),
        "calibration.png": lambda: _calibration(results),
        "ks_features.png": lambda: _ks(scenarios["summary"]["states"]),
        "density_filter.png": lambda: _density(results),
    }
    captions = figure_captions(results)
    for name, draw in figures.items():
        fig = draw()
        fig.text(0.01, 0.01, captions[name], fontsize=7, va="bottom", wrap=True)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
        image = io.BytesIO()
        fig.savefig(image, format="png", dpi=100)
        plt.close(fig)
        write_atomically(directory / name, image.getvalue())
    return list(figures)


def _equity(runs: list[FoldRun]) -> plt.Figure:
    cols = min(len(runs), 3)
    rows = -(-len(runs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, run in zip(axes.ravel(), runs, strict=False):
        for name, (colour, width) in EQUITY_LINES.items():
            equity = run.sims[name].equity
            label = "random (one draw)" if name == "random" else name
            ax.plot(equity.index, equity.to_numpy(), color=colour, lw=width, label=label)
        ax.axhline(1.0, color="k", lw=0.4, ls=":")
        ax.set_title(f"fold {run.fold.index} (test window, costs included)", fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    for ax in axes.ravel()[len(runs) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7, loc="best")
    axes.ravel()[0].set_ylabel("equity (start = 1)")
    return fig


def _ic(results: dict) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(8, 4))
    folds = results["folds"]
    labels = [f"fold {f['fold']}" for f in folds] + ["pooled"]
    summaries = [*folds, results["overall"]]
    names = list(summaries[0]["ic_by_signal"])
    x = np.arange(len(summaries))
    for j, name in enumerate(names):
        ic = [s["ic_by_signal"][name] for s in summaries]
        value = np.array([v["value"] for v in ic])
        err = np.array([[v["value"] - v["low"], v["high"] - v["value"]] for v in ic]).T
        ax.errorbar(x + 0.12 * (j - 1.5), value, yerr=err, fmt="o", capsize=3, label=name)
    perm = [s["permutation_ic"] for s in summaries]
    ax.fill_between(
        x, [p["low"] for p in perm], [p["high"] for p in perm], color="grey", alpha=0.25,
        label="model IC, future returns shuffled (95 %)",
    )  # fmt: skip
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_xticks(x, labels)
    ax.set_ylabel("Spearman IC vs h-bar forward return")
    ax.set_title("Information coefficient with 95 % block-bootstrap intervals")
    ax.legend(fontsize=7)
    return fig


def _pit(runs: list[FoldRun]) -> plt.Figure:
    levels = np.asarray(QUANTILES)
    y = np.concatenate([r.forward for r in runs])
    q = np.concatenate([r.predictives[MODEL][0] for r in runs])
    s = np.concatenate([r.baseline_sigma for r in runs])
    keep = np.isfinite(y) & np.isfinite(s)
    u_model = pit_from_quantiles(levels, q[keep], y[keep])
    u_base = pit_from_quantiles(levels, gaussian_quantiles(0 * s[keep], s[keep], levels), y[keep])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, u, title in (
        (axes[0], u_model, "score model"),
        (axes[1], u_base, "Gaussian rolling vol"),
    ):
        ax.hist(u, bins=10, range=(0, 1), density=True, color="tab:blue", alpha=0.7)
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
        ax.set_title(f"PIT, {title}")
        ax.set_xlabel("F(y)")
    axes[0].set_ylabel("density (1 = calibrated)")
    return fig


def _calibration(results: dict) -> plt.Figure:
    forecast = results["overall"]["forecast"]
    fig, (ax_rel, ax_cov) = plt.subplots(1, 2, figsize=(9, 3.8))
    rel = forecast["reliability"]
    ax_rel.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax_rel.plot(rel["predicted"], rel["observed"], "o-", color="tab:blue")
    lo = min(min(rel["predicted"]), min(rel["observed"])) - 0.05
    hi = max(max(rel["predicted"]), max(rel["observed"])) + 0.05
    ax_rel.set_xlim(lo, hi)
    ax_rel.set_ylim(lo, hi)
    ax_rel.set_xlabel("predicted P(up)")
    ax_rel.set_ylabel("observed share up")
    ax_rel.set_title(f"reliability of P(up) (Brier {rel['brier']:.4f})")
    nominal = [float(k) for k in forecast["coverage_model"]]
    x = np.arange(len(nominal))
    ax_cov.bar(x - 0.2, list(forecast["coverage_model"].values()), 0.4, label="score model")
    ax_cov.bar(x + 0.2, list(forecast["coverage_baseline"].values()), 0.4, label="Gaussian vol")
    ax_cov.scatter(x, nominal, color="k", marker="_", s=400, label="nominal", zorder=3)
    ax_cov.set_xticks(x, [f"{n:.0%} interval" for n in nominal])
    ax_cov.set_ylabel("empirical coverage")
    ax_cov.set_title("central interval coverage")
    ax_cov.legend(fontsize=7)
    return fig


def _ks(states: dict) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(10, 3.8))
    sources = list(states["ks"])
    names = list(states["ks"][sources[0]])
    x = np.arange(len(names))
    for j, source in enumerate(sources):
        ax.bar(x + 0.27 * (j - 1), [states["ks"][source][n] for n in names], 0.27, label=source)
    ax.axhline(states["ks_critical_5pct"], color="k", ls="--", lw=0.8, label="5 % critical value")
    ax.set_xticks(x, names, rotation=30, fontsize=8)
    ax.set_ylabel("KS statistic vs held-out states")
    ax.set_title("realism of generated states, per feature (lower is better)")
    ax.legend(fontsize=7)
    return fig


def _density(results: dict) -> plt.Figure:
    folds = results["folds"]
    filters = list(folds[0]["filters"])
    x = np.arange(len(folds))
    fig, (ax_share, ax_ret) = plt.subplots(1, 2, figsize=(10, 3.6))
    for j, name in enumerate(filters):
        colour = f"C{j}"
        shares = [100 * f["filters"][name]["ood_share"] for f in folds]
        ax_share.bar(x + 0.27 * (j - 1), shares, 0.27, label=name, color=colour)
        flagged = [f["filters"][name]["return_bp_flagged"] for f in folds]
        familiar = [f["filters"][name]["return_bp_familiar"] for f in folds]
        shift = x + 0.12 * (j - 1)
        ax_ret.plot(shift, flagged, "v", color=colour, label=f"{name}: flagged bars")
        ax_ret.plot(shift, familiar, "o", mfc="none", color=colour, label=f"{name}: familiar")
    ax_share.set_xticks(x, [f"fold {f['fold']}" for f in folds])
    ax_share.set_ylabel("% of test bars flagged out of distribution")
    ax_share.legend(fontsize=7)
    ax_ret.axhline(0.0, color="k", lw=0.6)
    ax_ret.set_xticks(x, [f"fold {f['fold']}" for f in folds])
    ax_ret.set_ylabel("unfiltered strategy, next-bar return (bp)")
    ax_ret.legend(fontsize=6)
    return fig
