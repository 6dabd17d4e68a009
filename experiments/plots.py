"""Plots of sweep results and of single runs (matplotlib, Agg; PNG, SVG or PDF by extension).

- tradeoff: latency vs memory budget, one line per policy, faceted by model (rows) and
  profile (columns), with the latency lower bound where the results have it;
- pareto: every feasible run as latency vs peak memory, with the Pareto front per facet;
- speedup: speedup and memory reduction versus preload at each policy's knee;
- planners: planners side by side per model and budget (latency over the lower bound,
  planning time, average and peak memory over the budget);
- gantt: the timeline of one run (storage, copy, transform, GPU lanes + memory in use).

Figures are built with `matplotlib.figure.Figure` (no pyplot state), so plotting is safe in
threads and leaves no open figures behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from experiments.errors import ExperimentError
from experiments.store import is_error
from experiments.summary import feasible_rows, pareto_front, summarise

FORMATS = (".png", ".svg", ".pdf")
KINDS = ("tradeoff", "pareto", "speedup", "planners")
MIB = 2**20
LANES = ("storage", "copy", "transform", "gpu")
LANE_COLORS = {"storage": "#4c72b0", "copy": "#dd8452", "transform": "#c44e52", "gpu": "#55a868"}
MEMORY_CATEGORIES = ("weights", "staging", "activations", "workspace", "kv")
MEMORY_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860")
POLICY_STYLE = {"preload": ("o", "#7f7f7f"), "sequential": ("s", "#1f77b4"),
                "pipeline": ("^", "#ff7f0e"), "flashmem": ("D", "#2ca02c"),
                "demand-layering": ("v", "#9467bd"), "flashmem-opg": ("P", "#d62728")}
DTYPE_LINES = ("-", "--", "-.", ":")  # one line style per dtype, in the order of the results
EXTRA_COLORS = ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def check_image_path(path: str | Path) -> Path:
    """`path` as a Path if its extension names a format we write, else an ExperimentError."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ExperimentError(f"cannot tell the image format of {str(path)!r}; use one of "
                              f"{', '.join(FORMATS)}")
    return path


# no creation date, a fixed id salt: the same figure gives the same bytes on every run
METADATA = {".svg": {"Date": None}, ".pdf": {"CreationDate": None}, ".png": {}}
SVG_SALT = "weightstream"


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write `fig` to `path` (format from the extension, reproducible bytes) via a temporary
    file + rename; a file-system failure is an ExperimentError naming the path."""
    from matplotlib import rc_context

    from experiments.store import atomic_write

    path = check_image_path(path)
    FigureCanvasAgg(fig)
    ext = path.suffix.lower()

    def write(tmp: Path) -> None:
        with rc_context({"svg.hashsalt": SVG_SALT}):
            fig.savefig(tmp, format=ext[1:], dpi=120, bbox_inches="tight",
                        metadata=METADATA[ext])

    atomic_write(path, write, "write the plot")
    return path


def _style(policies: Sequence[str], names: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Marker and colour per policy label: fixed for the built-in policies, cycled otherwise."""
    out: dict[str, tuple[str, str]] = {}
    extra = iter(EXTRA_COLORS * 4)
    used: set[str] = set()
    for p in policies:  # a built-in policy under its own name keeps its colour
        if p in POLICY_STYLE:
            out[p] = POLICY_STYLE[p]
            used.add(out[p][1])
    for p in policies:
        if p in out:
            continue
        base = POLICY_STYLE.get(names.get(p, ""))
        if base and base[1] not in used:
            out[p] = base
        else:
            colour = next(extra)
            while colour in used and len(used) < len(EXTRA_COLORS) + len(POLICY_STYLE):
                colour = next(extra)
            out[p] = ((base or ("v", ""))[0], colour)
        used.add(out[p][1])
    return {p: out[p] for p in policies}


def _facets(df: pd.DataFrame, cell_w: float = 3.6,
            cell_h: float = 2.8) -> tuple[Figure, dict[tuple[str, str], Axes], list[str], list[str]]:
    models = list(dict.fromkeys(df["model"]))
    profiles = list(dict.fromkeys(df["profile"]))
    fig = Figure(figsize=(0.6 + cell_w * len(profiles), 0.9 + cell_h * len(models)),
                 layout="constrained")
    axes = fig.subplots(len(models), len(profiles), squeeze=False)
    cells = {(m, p): axes[i][j] for i, m in enumerate(models) for j, p in enumerate(profiles)}
    for (m, p), ax in cells.items():
        ax.set_title(f"{m} on {p}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.tick_params(labelsize=8)
    return fig, cells, models, profiles


def _legend(fig: Figure, axes: list[Axes]) -> None:
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if handles:
        labels = sorted(handles, key=_policy_rank)
        fig.legend([handles[k] for k in labels], labels, loc="outside lower center",
                   ncol=min(len(handles), 6), fontsize=8, frameon=False)


def _policy_rank(label: str) -> tuple[int, str]:
    order = [*POLICY_STYLE, "lower bound", "Pareto front"]
    base = label.split("(")[0].strip()
    return (order.index(base) if base in order else len(order), label)


def _log_x(ax: Axes) -> None:
    """Log x axis with plain-number tick labels at 1, 2, 5 x 10^k."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _series_label(policy: str, dtype: str, multi_dtype: bool) -> str:
    return f"{policy} ({dtype})" if multi_dtype else policy


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    """The rows to plot: every run that gave a result (error rows are not results)."""
    if df.empty:
        raise ExperimentError("no results to plot")
    errors = is_error(df)
    if errors.all():
        first = df["error"].dropna().iloc[0] if "error" in df and df["error"].notna().any() else "?"
        raise ExperimentError(f"no results to plot: all {len(df)} stored runs are errors "
                              f"(first: {first}); fix the cause and run the sweep again")
    return df[~errors].reset_index(drop=True)


def _faceted_setup(df: pd.DataFrame, path: str | Path):
    """Shared start of the faceted plots: checked path, prepared rows, feasible rows, the
    figure with one cell per (model, profile), and a marker/colour per policy."""
    check_image_path(path)
    df = _prepare(df)
    fig, cells, _, _ = _facets(df)
    names = dict(zip(df["policy"], df["policy_name"], strict=False))
    return df, feasible_rows(df), fig, cells, _style(list(dict.fromkeys(df["policy"])), names)


def _decorate(fig: Figure, axes: list[Axes], title: str | None) -> None:
    """Shared end of the faceted plots: legend and title."""
    _legend(fig, axes)
    if title:
        fig.suptitle(title, fontsize=10)


def _finish(fig: Figure, axes: list[Axes], title: str | None, path: str | Path) -> Path:
    """Legend, title, save."""
    _decorate(fig, axes, title)
    return save_figure(fig, path)


def plot_tradeoff(df: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Latency vs memory budget per policy, faceted by model and profile; with several dtypes
    each dtype has its own line style and its own lower bound."""
    check_image_path(path)
    return save_figure(tradeoff_figure(df, title), path)


def tradeoff_figure(df: pd.DataFrame, title: str | None = None) -> Figure:
    """The figure `plot_tradeoff` saves."""
    df, ok, fig, cells, style = _faceted_setup(df, "x.png")
    dtypes = list(dict.fromkeys(df["dtype"]))
    multi = len(dtypes) > 1
    dash = {dt: DTYPE_LINES[i % len(DTYPE_LINES)] for i, dt in enumerate(dtypes)}
    for (m, p), ax in cells.items():
        f = ok[(ok["model"] == m) & (ok["profile"] == p)]
        for (pol, dt), g in f.groupby(["policy", "dtype"], sort=False):
            g = g.sort_values("eff_budget")
            marker, color = style[pol]
            ax.plot(g["eff_budget"] / MIB, g["latency_s"] * 1e3, marker=marker, color=color,
                    ls=dash[dt], ms=4, lw=1.3, label=_series_label(pol, dt, multi))
        if "lower_bound_s" in f:
            for dt, g in f.dropna(subset=["lower_bound_s"]).groupby("dtype", sort=False):
                lb = g.groupby("eff_budget")["lower_bound_s"].min().sort_index()
                ax.plot(lb.index / MIB, lb.values * 1e3, color="black", ls=dash[dt], lw=0.8,
                        alpha=0.6, label=_series_label("lower bound", dt, multi))
        if f.empty:
            ax.text(0.5, 0.5, "no feasible run", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8)
        else:
            _log_x(ax)
        ax.set_xlabel("memory budget (MiB)", fontsize=8)
        ax.set_ylabel("latency (ms)", fontsize=8)
        ax.set_ylim(bottom=0)
    _decorate(fig, list(cells.values()), title)
    return fig


def plot_pareto(df: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Every feasible run as (peak memory, latency), coloured by policy, with the Pareto front."""
    df, ok, fig, cells, style = _faceted_setup(df, path)
    for (m, p), ax in cells.items():
        f = ok[(ok["model"] == m) & (ok["profile"] == p)]
        for pol, g in f.groupby("policy", sort=False):
            marker, color = style[pol]
            ax.scatter(g["peak_memory_bytes"] / MIB, g["latency_s"] * 1e3, marker=marker,
                       color=color, s=18, alpha=0.8, label=pol)
        if not f.empty:
            front = pareto_front(f, "peak_memory_bytes", "latency_s")
            ax.step(front["peak_memory_bytes"] / MIB, front["latency_s"] * 1e3, where="post",
                    color="black", lw=1, label="Pareto front")
            _log_x(ax)
        ax.set_xlabel("peak memory (MiB)", fontsize=8)
        ax.set_ylabel("latency (ms)", fontsize=8)
    return _finish(fig, list(cells.values()), title, path)


def plot_speedup(df: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Speedup and memory reduction versus preload at each policy's knee, per model/profile."""
    check_image_path(path)
    s = summarise(_prepare(df))
    s = s[s["policy_name"] != "preload"]
    if s.empty or s["speedup"].isna().all():
        raise ExperimentError("a speedup plot needs feasible preload runs and at least one "
                              "other policy in the results")
    multi = s["dtype"].nunique() > 1
    s = s.assign(group=[f"{m}\n{p}" + (f"\n{d}" if multi else "")
                        for m, p, d in zip(s["model"], s["profile"], s["dtype"], strict=True)])
    groups = list(dict.fromkeys(s["group"]))
    policies = sorted(dict.fromkeys(s["policy"]), key=_policy_rank)
    style = _style(policies, dict(zip(s["policy"], s["policy_name"], strict=False)))
    fig = Figure(figsize=(max(6.0, 1.2 + 1.1 * len(groups) * max(1, len(policies)) * 0.6), 6.0))
    axes = fig.subplots(2, 1, sharex=True)
    width = 0.8 / max(1, len(policies))
    x = np.arange(len(groups))
    for ax, col, label in ((axes[0], "speedup", "speedup vs preload (x)"),
                           (axes[1], "memory_reduction", "memory reduction vs preload (x)")):
        for k, pol in enumerate(policies):
            g = s[s["policy"] == pol].set_index("group").reindex(groups)
            ax.bar(x + (k - (len(policies) - 1) / 2) * width, g[col].to_numpy(dtype=float),
                   width, color=style[pol][1], label=pol)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[1].set_xticks(x, groups, fontsize=7)
    axes[0].legend(fontsize=8, ncol=min(len(policies), 4), frameon=False)
    axes[0].set_title(title or "at each policy's knee (smallest budget within 10% of its best "
                      "latency)", fontsize=9)
    return save_figure(fig, path)


def plot_planners(df: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Planners side by side at each (model, budget): latency over the lower bound, planning
    time, and average / peak memory over the budget, one bar per policy (sweep columns:
    `meta.plan_time_s`, `lower_bound_s`, `avg_memory_bytes`, `peak_memory_bytes`)."""
    path = check_image_path(path)
    need = ("model", "policy", "budget_bytes", "latency_s", "lower_bound_s")
    missing = [c for c in need if c not in df]
    if missing:
        raise ExperimentError(f"a planners plot needs the columns {', '.join(missing)}")
    d = feasible_rows(df)
    d = d[d["policy_name"] != "preload"] if "policy_name" in d else d
    if d.empty:
        raise ExperimentError("a planners plot needs feasible runs")
    d = d.assign(case=[f"{m}\n{b / MIB:.0f} MiB" for m, b in
                       zip(d["model"], d["eff_budget"], strict=True)])
    cases = list(dict.fromkeys(d.sort_values(["model", "eff_budget"])["case"]))
    policies = sorted(dict.fromkeys(d["policy"]), key=_policy_rank)
    names = dict(zip(d["policy"], d.get("policy_name", d["policy"]), strict=False))
    style = _style(policies, names)
    plan_col = "meta.plan_time_s" if "meta.plan_time_s" in d else None
    panels = [("latency / lower bound", lambda g: g["latency_s"] / g["lower_bound_s"], False),
              ("peak memory / budget", lambda g: g["peak_memory_bytes"] / g["eff_budget"], False),
              ("average memory / budget", lambda g: g["avg_memory_bytes"] / g["eff_budget"],
               False)]
    if plan_col:
        panels.insert(1, ("planning time (s)", lambda g: g[plan_col].clip(lower=1e-4), True))
    fig = Figure(figsize=(min(22.0, max(7.0, 0.12 * len(cases) * max(1, len(policies)) + 2)),
                          2.3 * len(panels)))
    axes = fig.subplots(len(panels), 1, sharex=True)
    width = 0.8 / max(1, len(policies))
    x = np.arange(len(cases))
    for ax, (label, value, log) in zip(axes, panels, strict=True):
        for k, pol in enumerate(policies):
            g = d[d["policy"] == pol].drop_duplicates("case").set_index("case").reindex(cases)
            ax.bar(x + (k - (len(policies) - 1) / 2) * width,
                   value(g).to_numpy(dtype=float), width, color=style[pol][1], label=pol)
        if log:
            ax.set_yscale("log")
        else:
            ax.axhline(1.0, color="black", lw=0.8)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[-1].set_xticks(x, cases, fontsize=6, rotation=90)
    axes[0].legend(fontsize=8, ncol=min(len(policies), 4), frameon=False)
    axes[0].set_title(title or "planners at each model and budget", fontsize=9)
    return save_figure(fig, path)


PLOTTERS = {"tradeoff": plot_tradeoff, "pareto": plot_pareto, "speedup": plot_speedup,
            "planners": plot_planners}


def plot_results(df: pd.DataFrame, kind: str, path: str | Path, title: str | None = None) -> Path:
    """Dispatch to the plot named `kind`."""
    if kind not in PLOTTERS:
        raise ExperimentError(f"unknown plot kind {kind!r}; valid kinds: {', '.join(PLOTTERS)}")
    return PLOTTERS[kind](df, path, title)


def plot_gantt(trace: Any, path: str | Path, title: str | None = None) -> Path:
    """Gantt timeline of one run: a lane per resource and the memory in use stacked by category."""
    check_image_path(path)
    fig = Figure(figsize=(11, 4.6))
    ax, mem = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1.3]})
    scale = 1e3
    end = 0.0
    for lane, res in enumerate(LANES):
        spans = [(i.start * scale, (i.end - i.start) * scale) for i in trace.intervals
                 if i.resource == res and i.end > i.start]
        if spans:
            ax.broken_barh(spans, (lane - 0.38, 0.76), facecolors=LANE_COLORS[res],
                           edgecolors="white", linewidth=0.3)
            end = max(end, max(s + d for s, d in spans))
    ax.set_yticks(range(len(LANES)), LANES, fontsize=8)
    ax.set_ylim(-0.6, len(LANES) - 0.4)
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)
    ax.tick_params(labelsize=8)
    if not trace.intervals:
        ax.text(0.5, 0.5, "empty trace", ha="center", va="center", transform=ax.transAxes)
    if trace.memory:
        arr = np.asarray(trace.memory, dtype=float)
        t = arr[:, 0] * scale
        ys = [arr[:, 2 + k] / MIB for k in range(len(MEMORY_CATEGORIES))]
        end = max(end, float(t.max()))
        if t[-1] < end:  # hold the last level to the end of the run
            t = np.append(t, end)
            ys = [np.append(y, y[-1]) for y in ys]
        mem.stackplot(t, *ys, labels=MEMORY_CATEGORIES, colors=MEMORY_COLORS, step="post",
                      alpha=0.85)
        mem.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    mem.set_ylabel("memory (MiB)", fontsize=8)
    mem.set_xlabel("time (ms)", fontsize=8)
    mem.grid(True, alpha=0.3)
    mem.tick_params(labelsize=8)
    mem.set_xlim(0, end * 1.01 if end > 0 else 1)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_convergence(curves: pd.DataFrame, path: str | Path, spec: Any) -> Path:
    """Best feasible objective found (or hypervolume, for several objectives) versus the
    number of evaluations, for the sampler's search and the equal-budget grid."""
    path = check_image_path(path)
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.subplots()
    styles = {"search": ("#2ca02c", "-", spec.sampler), "grid": ("#7f7f7f", "--", "grid")}
    for search, g in curves.groupby("search", sort=False):
        color, ls, label = styles.get(str(search), ("#1f77b4", "-", str(search)))
        g = g.sort_values("evaluation")
        y = g["best"].astype(float)
        metric = spec.objectives[0].metric
        if not spec.multi and metric.endswith("_s"):
            y = y * 1e3
        elif not spec.multi and metric.endswith("_bytes"):
            y = y / MIB
        ax.step(g["evaluation"], y, where="post", color=color, ls=ls, lw=1.6, label=label)
    if spec.multi:
        ax.set_ylabel("hypervolume of feasible trials (higher is better)", fontsize=8)
    else:
        o = spec.objectives[0]
        unit = " (ms)" if o.metric.endswith("_s") else " (MiB)" if o.metric.endswith("_bytes") else ""
        ax.set_ylabel(f"best {o.metric}{unit} ({o.direction})", fontsize=8)
    ax.set_xlabel("evaluations", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"tune {spec.name}: best found vs evaluations", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
