"""Charts as inline SVG strings (matplotlib figures without pyplot): they only draw what the metrics computed."""

from __future__ import annotations

import functools
import gc
import io
import re
from collections.abc import Callable
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator, PercentFormatter

from loadgen.report.reference import TALK_RETRY
from loadgen.results.metrics import CONFLICT_RATE

__all__ = ["hotspot", "heatmap", "model", "latency", "cell_detail", "to_svg", "as_png"]

matplotlib.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: smaller, selectable, drawn with the browser's fonts
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "figure.dpi": 96,
        # Titles sit just above the axes: no axes here has tick labels on top, so matplotlib's
        # search for a free spot (a layout pass over every tick label) finds nothing to avoid.
        "axes.titley": 1.0,
    }
)


def _percent_axis() -> PercentFormatter:
    """A percent formatter for one axis: a formatter holds the axis it labels (and, through it,
    the whole figure), and picks its decimals from that axis's range."""
    return PercentFormatter(xmax=1.0, decimals=None)


def to_svg(fig: Figure) -> str:
    """The figure as an inline <svg> element (no XML prolog, no DOCTYPE, no external reference)."""
    buf = io.StringIO()
    # No bbox_inches="tight": every figure is laid out already, and the tight box
    # costs a second full draw of the figure.
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    return re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)


def _chart(draw: Callable[..., str]) -> Callable[..., str]:
    """A chart function whose figure is freed as soon as it is drawn.

    A figure is garbage in reference cycles, which only the collector frees, and the
    collector is paused while a report is written (build_report): a young-generation
    pass once the figure is unreachable frees it (a few ms), so a sweep's report holds
    one figure at a time (20 detail charts: 45 MB more at the peak without it).
    """

    @functools.wraps(draw)
    def drawn(*args: Any, **kwargs: Any) -> str:
        svg = draw(*args, **kwargs)
        gc.collect(0)
        return svg

    return drawn


def as_png(chart: Callable[..., str], *args: Any, dpi: int = 110, **kwargs: Any) -> bytes:
    """One of this module's charts as PNG, for viewers that show no SVG (GitHub's notebook view).

    The chart is drawn exactly as for the report; only the last step, ``to_svg``, is
    swapped for a PNG encoder while it runs.
    """
    global to_svg
    out = io.BytesIO()

    def _png(fig: Figure) -> str:
        fig.savefig(out, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        return ""

    svg, to_svg = to_svg, _png
    try:
        chart(*args, **kwargs)
    finally:
        to_svg = svg
    return out.getvalue()


def _margins(fig: Figure, left: float, right: float, bottom: float, top: float, wspace: float = 0.2, hspace: float = 0.2) -> None:
    """Fixed margins in inches, room for the widest labels these charts draw.

    Not ``tight_layout``: measuring every label's extent is a layout pass of its own
    (the SVG renderer measures them again), and it was 40% of a run report's time.
    """
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h, wspace=wspace, hspace=hspace)


def _int_fmt(x: float, _pos: int) -> str:
    return f"{x:,.0f}" if x >= 1 else f"{x:g}"


def _plain_log(axis: Any, major: Any = None) -> None:
    """Plain-text tick labels on a log axis (call after set_*scale("log")).

    matplotlib's own log labels are mathtext (10^k): laying them out parses TeX, which
    was most of the time spent drawing a run's report.
    """
    axis.set_major_formatter(major if major is not None else FuncFormatter(_int_fmt))
    # No minor ticks: unlabelled, ungridded, and each one a tick object built and laid out on every draw.
    axis.set_minor_locator(NullLocator())


def _log_ok(values: pd.Series) -> bool:
    v = values.dropna()
    return bool(len(v)) and bool((v > 0).all()) and v.max() / v.min() > 5


@_chart
def hotspot(frame: pd.DataFrame, show_reference: bool = True, styles: dict[str, str] | None = None) -> str:
    """Conflict rate and attempts per commit against accounts, one line per series (users level)."""
    fig = Figure(figsize=(10, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    styles = styles or {}
    for i, (series, g) in enumerate(frame.dropna(subset=["accounts"]).groupby("series", sort=False)):
        g = g.sort_values("accounts")
        color = f"C{i % 10}"
        ls = styles.get(series, "-")
        ax1.plot(g["accounts"], g["conflict_rate"], marker="o", ls=ls, color=color, label=series)
        ax2.plot(g["accounts"], g["attempts_per_commit"], marker="o", ls=ls, color=color, label=series)
        base = g[g["baseline"]]
        if len(base):
            for ax, col in ((ax1, "conflict_rate"), (ax2, "attempts_per_commit")):
                ax.scatter(
                    base["accounts"],
                    base[col],
                    s=220,
                    marker="*",
                    color="gold",
                    edgecolor="black",
                    zorder=5,
                    label="baseline: the talk's conditions" if ax is ax1 else None,
                )
    if show_reference:
        ax1.scatter(
            [TALK_RETRY.accounts],
            [TALK_RETRY.conflict_rate],
            s=90,
            marker="D",
            facecolor="none",
            edgecolor="crimson",
            linewidth=1.5,
            zorder=6,
            label=f"DSQL talk, published ({TALK_RETRY.conflict_rate:.2%})",
        )
    for ax in (ax1, ax2):
        if frame["accounts"].dropna().nunique() > 1 and (frame["accounts"].dropna() > 0).all():
            ax.set_xscale("log")
            _plain_log(ax.xaxis)
        ax.xaxis.set_major_formatter(FuncFormatter(_int_fmt))
        ax.set_xlabel("accounts (fewer = hotter)")
    if _log_ok(frame["conflict_rate"]):
        ax1.set_yscale("log")
        ax1.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        _plain_log(ax1.yaxis, _percent_axis())
    ax1.yaxis.set_major_formatter(_percent_axis())
    ax1.set_ylabel(f"{CONFLICT_RATE} (contention failures / attempts)")
    ax1.set_title("Conflict rate")
    if _log_ok(frame["attempts_per_commit"] - 1 + 1e-12) and frame["attempts_per_commit"].max() > 3:
        ax2.set_yscale("log")
        ax2.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        _plain_log(ax2.yaxis, FuncFormatter(lambda x, _p: f"{x:g}"))
    ax2.set_ylabel("attempts per commit")
    ax2.set_title("Attempts per commit")
    # Below the charts: inside, it would hide the published point beside the baseline.
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(3, max(1, len(labels))), frameon=False)
    rows = (len(labels) + 2) // 3
    _margins(fig, left=0.9, right=0.2, bottom=0.6 + 0.18 * rows, top=0.35, wspace=0.22)
    return to_svg(fig)


@_chart
def heatmap(frame: pd.DataFrame) -> str:
    """Conflict rate over accounts x users (mean over cells that share both)."""
    grid = (
        frame.dropna(subset=["accounts", "users"])
        .pivot_table(index="users", columns="accounts", values="conflict_rate", aggfunc="mean")
        .sort_index(ascending=False)
    )
    fig = Figure(figsize=(1.2 + 1.1 * grid.shape[1], 0.9 + 0.55 * grid.shape[0]))
    ax = fig.subplots()
    im = ax.imshow(grid.to_numpy(dtype=float), cmap="OrRd", vmin=0, vmax=max(0.01, float(np.nanmax(grid.to_numpy()))), aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [f"{int(a):,}" for a in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{int(u):,}" for u in grid.index])
    ax.set_xlabel("accounts")
    ax.set_ylabel("users")
    ax.grid(False)
    vmax = float(np.nanmax(grid.to_numpy()))
    for (i, j), v in np.ndenumerate(grid.to_numpy()):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.1%}", ha="center", va="center", fontsize=8, color="white" if v > 0.6 * vmax else "black")
    fig.colorbar(im, ax=ax, format=_percent_axis(), label="conflict rate")
    fig.tight_layout()
    return to_svg(fig)


@_chart
def concurrency(frame: pd.DataFrame) -> str:
    """The second axis: conflict rate against closed-loop users, one line per number of accounts."""
    fig = Figure(figsize=(5.6, 3.6))
    ax = fig.subplots()
    f = frame[frame["closed_loop"]].dropna(subset=["users", "accounts"])
    for i, (accounts, g) in enumerate(f.groupby("accounts", sort=True)):
        g = g.sort_values("users")
        ax.plot(g["users"], g["conflict_rate"], marker="o", color=f"C{i % 10}", label=f"{int(accounts):,} accounts")
    if f["users"].nunique() > 1 and (f["users"] > 0).all():
        ax.set_xscale("log")
        _plain_log(ax.xaxis)
    ax.xaxis.set_major_formatter(FuncFormatter(_int_fmt))
    ax.yaxis.set_major_formatter(_percent_axis())
    ax.set_xlabel("closed-loop users (each one transaction in flight, no think time)")
    ax.set_ylabel(CONFLICT_RATE)
    ax.set_title("Concurrency: the same transfers from more users")
    ax.legend(fontsize=7)
    _margins(fig, left=0.9, right=0.2, bottom=0.55, top=0.3)
    return to_svg(fig)


@_chart
def model(frame: pd.DataFrame) -> str:
    """The measured conflict rate against the first-order model's estimate, one point per cell.

    Cells where the model does not apply (locking mode, a saturated client) are hollow.
    """
    measured = "conflict_rate"
    f = frame.dropna(subset=["model_rate", measured])
    fig = Figure(figsize=(4.8, 4.0))
    ax = fig.subplots()
    if len(f):
        top = max(f["model_rate"].max(), f[measured].max(), 0.01) * 1.1
        ax.plot([0, top], [0, top], color="grey", ls="--", lw=1, label="measured = model")
        ax.fill_between([0, top], [0, 0.7 * top], [0, 1.3 * top], color="grey", alpha=0.12, lw=0, label="within 30%")
        applies = f["model_applies"] if "model_applies" in f else pd.Series(True, index=f.index)
        for i, (series, g) in enumerate(f.groupby("series", sort=False)):
            ok = applies.loc[g.index].astype(bool)
            color = f"C{i % 10}"
            ax.scatter(g.loc[ok, "model_rate"], g.loc[ok, measured], color=color, label=series, zorder=3)
            if (~ok).any():
                ax.scatter(
                    g.loc[~ok, "model_rate"],
                    g.loc[~ok, measured],
                    facecolors="none",
                    edgecolors=color,
                    label=f"{series} (model does not apply)",
                    zorder=3,
                )
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
    ax.xaxis.set_major_formatter(_percent_axis())
    ax.yaxis.set_major_formatter(_percent_axis())
    ax.set_xlabel("model: 1 - (1 - c)^(lambda D)")
    ax.set_ylabel(f"measured {CONFLICT_RATE}")
    ax.legend(fontsize=7)
    _margins(fig, left=0.9, right=0.3, bottom=0.55, top=0.15)
    return to_svg(fig)


@_chart
def latency(frame: pd.DataFrame) -> str:
    """Attempt p50/p99 and transaction p99 latency against accounts, one line per series."""
    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    for i, (series, g) in enumerate(frame.dropna(subset=["accounts"]).groupby("series", sort=False)):
        g = g.sort_values("accounts")
        color = f"C{i % 10}"
        ax.plot(g["accounts"], g["txn_p99_ms"], marker="o", color=color, label=f"{series}: transaction p99")
        ax.plot(g["accounts"], g["attempt_p99_ms"], marker="s", ls="--", color=color, label=f"{series}: attempt p99")
        ax.plot(g["accounts"], g["attempt_p50_ms"], marker=".", ls=":", color=color, label=f"{series}: attempt p50")
    if frame["accounts"].dropna().nunique() > 1:
        ax.set_xscale("log")
        _plain_log(ax.xaxis)
    ax.xaxis.set_major_formatter(FuncFormatter(_int_fmt))
    if _log_ok(pd.concat([frame["txn_p99_ms"], frame["attempt_p50_ms"]])):
        ax.set_yscale("log")
        _plain_log(ax.yaxis, FuncFormatter(lambda x, _p: f"{x:g}"))
    ax.set_xlabel("accounts (fewer = hotter)")
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize=7, ncol=2)
    _margins(fig, left=0.9, right=0.2, bottom=0.55, top=0.2)
    return to_svg(fig)


@_chart
def cell_detail(
    timeline: pd.DataFrame,
    distribution: pd.DataFrame,
    hot_keys: pd.DataFrame,
    by_attempt: pd.DataFrame,
    faults: list[dict[str, Any]] | None = None,
) -> str:
    """One run's four views: rates over time, in-flight transactions, attempts per transaction, hot keys.

    Injected faults are drawn as vertical lines on both time charts.
    """
    fig = Figure(figsize=(10, 6.4))
    axes = fig.subplots(2, 2)
    (ax_t, ax_f), (ax_d, ax_k) = axes
    t = timeline
    for i, f in enumerate(faults or []):
        for ax in (ax_t, ax_f):
            ax.axvline(f["t_s"], color="0.45", linestyle=":", linewidth=1, label="fault injected" if i == 0 and ax is ax_t else None)
    ax_t.plot(t["t_s"], t["commits_per_s"], color="C2", label="commits/s", drawstyle="steps-post")
    ax_t.plot(t["t_s"], t["conflicts_per_s"], color="C3", label="conflicts/s (40001, 55P03, 40P01)", drawstyle="steps-post")
    if len(t) and t["errors_per_s"].max() > 0:
        ax_t.plot(t["t_s"], t["errors_per_s"], color="C1", label="other failures/s (not contention)", drawstyle="steps-post")
    ax_t.set_xlabel("seconds since start")
    ax_t.set_ylabel("per second")
    ax_t.set_title("Commits, conflicts and errors over time")
    ax_t.legend(fontsize=7)
    ax_f.plot(t["t_s"], t["in_flight"], color="C0", drawstyle="steps-post")
    ax_f.set_xlabel("seconds since start")
    ax_f.set_ylabel("transactions in flight")
    ax_f.set_title("In-flight transactions")
    d = distribution
    if len(d):
        ax_d.bar(d["attempts"].astype(int), d["transactions"], color="C0", width=0.8)
        ax_d.set_yscale("log")
        _plain_log(ax_d.yaxis)
    ax_d.set_xlabel("attempts per transaction")
    ax_d.set_ylabel("transactions (log)")
    ax_d.set_title("Attempts per transaction")
    k = hot_keys
    if len(k):
        ax_k.barh([f"#{int(a)}" for a in k["account"]][::-1], list(k["share"])[::-1], color="C3")
        ax_k.xaxis.set_major_formatter(_percent_axis())
    else:
        ax_k.text(0.5, 0.5, "no conflicts", ha="center", va="center", transform=ax_k.transAxes)
    ax_k.set_xlabel("share of conflicted attempts touching the account")
    ax_k.set_title("Hot keys: accounts most involved in conflicts")
    _margins(fig, left=0.9, right=0.25, bottom=0.55, top=0.35, wspace=0.22, hspace=0.33)
    return to_svg(fig)
