"""Summaries of a results table: per model/profile/dtype/policy the best latency, the smallest
feasible budget, the knee of the latency/budget curve and the speedup and memory reduction
there versus `preload`, against a named reference: speedup versus a cold preload (load + run:
the first inference, FlashMem's integrated cold start) or a warm one (weights already resident:
Demand Layering's delay overhead is 1 / speedup - 1), memory versus the total peak or the peak
of weights + staging (the papers' parameter memory). Used by the sweep summary and the speedup
plot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from experiments.store import is_error
from hwprofiles.units import format_bytes, format_time

GROUP = ["model", "profile", "dtype"]
KNEE_TOL = 0.10  # the knee: the smallest budget whose latency is within 10 % of the best


def effective_budget(df: pd.DataFrame) -> pd.Series:
    """Budget in bytes; an unlimited run counts at the memory it actually used (of weights +
    staging where the budget scope is weights)."""
    b = df["budget_bytes"].astype("Float64") if "budget_bytes" in df else pd.Series(np.nan, df.index)
    peak = df["peak_memory_bytes"] if "peak_memory_bytes" in df else pd.Series(np.nan, df.index)
    used = peak.astype("Float64")
    if "budget_scope" in df and "peak_weight_bytes" in df:
        weights = df["budget_scope"] == "weights"
        used = used.where(~weights, df["peak_weight_bytes"].astype("Float64"))
    return b.fillna(used).astype(float)


def feasible_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of runs that completed within their budget, with an `eff_budget` column."""
    if df.empty or "feasible" not in df:
        return df.iloc[0:0].assign(eff_budget=pd.Series(dtype=float))
    ok = df[df["feasible"].fillna(False).astype(bool) & ~is_error(df)].copy()
    ok["eff_budget"] = effective_budget(ok)
    return ok


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Rows not dominated in (x, y), both minimised, sorted by x."""
    pts = points.sort_values([x, y], kind="stable")
    best = math.inf
    keep = []
    for idx, yv in zip(pts.index, pts[y], strict=True):
        if yv < best - 1e-15:
            keep.append(idx)
            best = yv
    return pts.loc[keep]


SPEEDUP_REFS = ("cold", "warm")
MEMORY_REFS = ("total", "weights")


def _col(row: pd.Series, name: str) -> float:
    v = row.get(name)
    return float("nan") if v is None or pd.isna(v) else float(v)


def reference_latency(row: pd.Series, ref: str) -> float:
    """A preload run's reference latency: its whole latency (cold), or per invocation with its
    weights already resident (warm: the mean later invocation, or the run after its load)."""
    if ref == "cold":
        return _col(row, "latency_s")
    warm = _col(row, "warm_latency_s")
    return warm if not math.isnan(warm) else _col(row, "exec_s")


def policy_latency(row: pd.Series, ref: str) -> float:
    """A run's latency against the same reference (warm: its mean later invocation, if any)."""
    if ref == "warm":
        warm = _col(row, "warm_latency_s")
        if not math.isnan(warm):
            return warm
    return _col(row, "latency_s")


def memory_of(row: pd.Series, ref: str) -> float:
    """Peak total memory, or peak weights + staging (`peak_weight_bytes`)."""
    return _col(row, "peak_memory_bytes" if ref == "total" else "peak_weight_bytes")


def summarise(df: pd.DataFrame, knee_tol: float = KNEE_TOL, speedup: str = "cold",
              memory: str = "total") -> pd.DataFrame:
    """One row per (model, profile, dtype, policy) with best latency, min budget, knee and
    speedup / memory reduction at the knee versus the best feasible preload run, against the
    `speedup` (cold | warm) and `memory` (total | weights) references, named in the
    `speedup_vs` and `memory_vs` columns. Error rows (runs that raised) are not results and are
    left out."""
    if speedup not in SPEEDUP_REFS or memory not in MEMORY_REFS:
        raise ValueError(f"summary references: speedup one of {SPEEDUP_REFS}, memory one of "
                         f"{MEMORY_REFS}; found {speedup!r}, {memory!r}")
    df = df[~is_error(df)] if not df.empty else df
    if df.empty:
        return pd.DataFrame()
    ok = feasible_rows(df)
    rows = []
    for keys, g in df.groupby([*GROUP, "policy"], sort=True, dropna=False):
        model, profile, dtype, policy = keys
        f = ok[(ok["model"] == model) & (ok["profile"] == profile) & (ok["dtype"] == dtype)]
        pre = f[f["policy_name"] == "preload"]
        mine = f[f["policy"] == policy].sort_values(["eff_budget", "latency_s"], kind="stable")
        row = {"model": model, "profile": profile, "dtype": dtype, "policy": policy,
               "policy_name": g["policy_name"].iloc[0], "runs": len(g), "feasible_runs": len(mine),
               "best_latency_s": np.nan, "min_budget_bytes": np.nan, "knee_budget_bytes": np.nan,
               "knee_latency_s": np.nan, "knee_peak_memory_bytes": np.nan,
               "preload_latency_s": np.nan, "preload_peak_memory_bytes": np.nan,
               "speedup": np.nan, "memory_reduction": np.nan,
               "speedup_vs": f"{speedup} preload", "memory_vs": f"{memory} memory"}
        if not pre.empty:
            p = pre.sort_values("latency_s", kind="stable").iloc[0]
            row["preload_latency_s"] = reference_latency(p, speedup)
            row["preload_peak_memory_bytes"] = memory_of(p, memory)
        if not mine.empty:
            best = float(mine["latency_s"].min())
            knee = mine[mine["latency_s"] <= best * (1 + knee_tol)].iloc[0]
            row.update(best_latency_s=best, min_budget_bytes=float(mine["eff_budget"].iloc[0]),
                       knee_budget_bytes=float(knee["eff_budget"]),
                       knee_latency_s=float(knee["latency_s"]),
                       knee_peak_memory_bytes=float(knee["peak_memory_bytes"]))
            if not pre.empty:
                row["speedup"] = row["preload_latency_s"] / policy_latency(knee, speedup)
                row["memory_reduction"] = (row["preload_peak_memory_bytes"]
                                           / memory_of(knee, memory))
        rows.append(row)
    return pd.DataFrame(rows)


def summary_table(summary: pd.DataFrame) -> list[list[str]]:
    """Header + text rows of a summary for printing."""
    def b(v: float) -> str:
        return "-" if pd.isna(v) else format_bytes(v)

    def t(v: float) -> str:
        return "-" if pd.isna(v) else format_time(v)

    def x(v: float) -> str:
        return "-" if pd.isna(v) else f"{v:.2f}x"

    speedup = summary["speedup_vs"].iloc[0] if "speedup_vs" in summary and len(summary) \
        else "cold preload"
    memory = summary["memory_vs"].iloc[0] if "memory_vs" in summary and len(summary) \
        else "total memory"
    out = [["model", "profile", "dtype", "policy", "feasible", "best latency", "min budget",
            "knee budget", "latency@knee", f"speedup vs {speedup}",
            f"reduction of {memory}"]]
    for r in summary.itertuples(index=False):
        out.append([str(r.model), str(r.profile), str(r.dtype), str(r.policy),
                    f"{r.feasible_runs}/{r.runs}", t(r.best_latency_s), b(r.min_budget_bytes),
                    b(r.knee_budget_bytes), t(r.knee_latency_s), x(r.speedup),
                    x(r.memory_reduction)])
    return out
