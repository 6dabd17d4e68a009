"""Simulated vs measured: replay held-out schedules, simulate them on a calibrated profile, and
report the error per op (each stage on its own) and end to end (Markdown tables, timeline
overlay plots, JSON)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwprofiles.schema import HOPS, HardwareProfile
from sim.engine import simulate
from sim.trace import RESOURCES, Trace
from validate.cases import Case, ZooCase, make_schedule, zoo_schedule
from validate.device import Device
from validate.replay import ReplayOptions, ReplayResult, replay_runs, scale_schedule
from validate.stages import (
    HOP_OF,
    StageOp,
    compared_times,
    hop_gaps,
    hop_latencies,
    op_errors,
    stage_ops,
)


@dataclass
class CaseResult:
    """One held-out schedule: simulated and measured latency, and every op's relative error
    (simulated / measured - 1) by resource, with the measured hop gaps."""

    case: str
    sim_s: float
    measured_s: float
    runs_s: list[float]
    op_err: dict[str, list[float]] = field(default_factory=dict)  # resource -> errors
    kind_err: dict[str, list[float]] = field(default_factory=dict)  # resource:kind -> errors
    gaps: dict[str, list[float]] = field(default_factory=dict)  # hop -> measured gaps (s)
    sim_trace: Trace | None = None
    measured: ReplayResult | None = None
    # the replay oracle: the same comparisons with the mean of the other replays as prediction
    oracle_err: dict[str, list[float]] = field(default_factory=dict)  # resource -> errors
    oracle_e2e: float | None = None

    @property
    def error(self) -> float:
        return self.sim_s / self.measured_s - 1

    @property
    def op_mape(self) -> dict[str, float]:
        return {k: float(np.mean(np.abs(v))) for k, v in self.op_err.items() if v}

    @property
    def oracle_op_mape(self) -> dict[str, float]:
        return {k: float(np.mean(np.abs(v))) for k, v in self.oracle_err.items() if v}

    def to_dict(self) -> dict[str, Any]:
        return {"case": self.case, "sim_s": self.sim_s, "measured_s": self.measured_s,
                "runs_s": self.runs_s, "error": self.error, "op_mape": self.op_mape,
                "op_n": {k: len(v) for k, v in self.op_err.items()},
                "kind_mape": {k: float(np.mean(np.abs(v))) for k, v in self.kind_err.items()},
                "hop_gaps_median_s": {k: float(np.median(v)) for k, v in self.gaps.items()},
                "oracle_error": self.oracle_e2e, "oracle_op_mape": self.oracle_op_mape}


def median_run(runs: Sequence[ReplayResult]) -> tuple[ReplayResult, list[float],
                                                      list[ReplayResult]]:
    """The run with the median latency, every latency (sorted) and the other runs."""
    runs = sorted(runs, key=lambda r: r.latency_s)
    k = len(runs) // 2
    return runs[k], [r.latency_s for r in runs], runs[:k] + runs[k + 1:]


def schedule_for(case: Case | ZooCase, profile: HardwareProfile, size: float):
    """Plan a synthetic (`Case`, scaled by `size`) or real-model (`ZooCase`) case."""
    return zoo_schedule(case, profile) if isinstance(case, ZooCase) else make_schedule(
        case, profile, size)


def oracle_errors(ops: Sequence[StageOp], others: Sequence[Sequence[StageOp]],
                  hops: Mapping[str, float]) -> dict[str, list[float]]:
    """The replay oracle's per-op errors: every op of one replay (`ops`) predicted by its mean
    time in the other replays of the same schedule, compared as `op_errors` compares the
    model: the replays' own spread, which bounds what a per-op error can show."""
    times = [compared_times(o, hops) for o in others]
    out: dict[str, list[float]] = {}
    for key, m in compared_times(ops, hops).items():
        pred = [t[key] for t in times if key in t]
        if m > 0 and pred:
            out.setdefault(key[0], []).append(float(np.mean(pred)) / m - 1)
    return out


def evaluate(s, replayed: ReplayResult, profile: HardwareProfile, case: str,
             runs_s: Sequence[float], others: Sequence[ReplayResult] = ()) -> CaseResult:
    """Simulate `s` (as replayed: scaled) on `profile` and compare it with the replay; with
    the `others` replays of it, the replay oracle's errors too."""
    scaled = scale_schedule(s, replayed.scale)
    sim = simulate(scaled, profile)
    ops = stage_ops(scaled, replayed.trace, replayed.marks)
    hops = hop_latencies(profile)
    gaps: dict[str, list[float]] = {}
    for k, v in hop_gaps(ops).items():
        if k in HOP_OF:
            gaps.setdefault(HOP_OF[k], []).extend(v)
    # a kernel the host issued late waits outside its interval: compare effective times
    sim_ops = stage_ops(scaled, sim.trace) if profile.gpu.kernel_issue_interval else ()
    r = CaseResult(case, sim.metrics.latency_s, replayed.latency_s, list(runs_s),
                   op_errors(ops, sim.trace, hops, sim_ops=sim_ops),
                   op_errors(ops, sim.trace, hops, "kind", sim_ops), gaps, sim.trace, replayed)
    if others:
        r.oracle_err = oracle_errors(
            ops, [stage_ops(scaled, o.trace, o.marks) for o in others], hops)
        r.oracle_e2e = float(np.mean([o.latency_s for o in others])) / replayed.latency_s - 1
    return r


def run_cases(dev: Device, profile: HardwareProfile, cases: Sequence[Case | ZooCase],
              size: float, repeats: int, opts: ReplayOptions | None = None,
              say: Callable[[str], None] | None = None) -> list[CaseResult]:
    """Plan each case on `profile`, replay it on `dev` (`opts.scale` shrinks real models),
    simulate what was replayed and compare."""
    opts = opts or ReplayOptions()
    out = []
    for c in cases:
        s = schedule_for(c, profile, size)
        med, lats, others = median_run(replay_runs(dev, s, repeats, opts))
        r = evaluate(s, med, profile, c.name, lats, others)
        if say:
            say(f"{c.name}: simulated {r.sim_s * 1e3:.2f} ms, measured {r.measured_s * 1e3:.2f} ms "
                f"({r.error:+.1%})")
        out.append(r)
    return out


def mape(results: Sequence[CaseResult]) -> float:
    """End-to-end mean absolute percentage error."""
    return float(np.mean([abs(r.error) for r in results])) if results else float("nan")


def pooled(results: Sequence[CaseResult], attr: str = "op_err") -> dict[str, tuple[float, int]]:
    """Per-op MAPE over every op of every case (each op counts once), with the op count."""
    acc: dict[str, list[float]] = {}
    for r in results:
        for k, v in getattr(r, attr).items():
            acc.setdefault(k, []).extend(v)
    return {k: (float(np.mean(np.abs(v))), len(v)) for k, v in acc.items() if v}


def hop_table(results: Sequence[CaseResult], profile: HardwareProfile) -> list[str]:
    """Measured hop gaps (median, mean) against the profile's hop latencies."""
    lines = ["| hop (sync / dispatch gap) | model us | measured median us | measured mean us | "
             "n |", "|---|---:|---:|---:|---:|"]
    for h in HOPS:
        v = [g for r in results for g in r.gaps.get(h, [])]
        if v:
            lines.append(f"| {h} | {profile.gpu.hop(h) * 1e6:.1f} | {np.median(v) * 1e6:.1f} | "
                         f"{np.mean(v) * 1e6:.1f} | {len(v)} |")
    return lines


def markdown(results: Sequence[CaseResult], profile: HardwareProfile, device: dict,
             title: str, notes: Sequence[str] = (), heading: str = "#") -> str:
    """One table: a row per held-out schedule, then end-to-end and per-op MAPE."""
    lines = [f"{heading} {title}", ""]
    if device:
        lines += [f"Device: **{device.get('name')}** ({device.get('platform')}, driver "
                  f"{device.get('driver')}). Profile: `{profile.name}`.", ""]
    lines += list(notes)
    lines += ["", "| schedule (model/policy/budget/path/dst) | simulated ms | measured ms (median) | "
              "runs ms | error | op MAPE storage | copy | transform | gpu |",
              "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        om = r.op_mape
        ops = [f"{om[k]:.0%}" if k in om else "-" for k in RESOURCES]
        lines.append(f"| {r.case} | {r.sim_s * 1e3:.2f} | {r.measured_s * 1e3:.2f} | "
                     f"{', '.join(f'{x * 1e3:.1f}' for x in r.runs_s)} | {r.error:+.1%} | "
                     + " | ".join(ops) + " |")
    per = pooled(results)
    errs = [abs(r.error) for r in results]
    lines += ["", f"**End-to-end MAPE over {len(results)} schedules: {mape(results):.1%}** "
                  f"(median {np.median(errs):.1%}, worst {max(errs):.1%})", "",
              "Per-op MAPE by resource (every op of every schedule): " + ", ".join(
                  f"{k} {per[k][0]:.1%} ({per[k][1]} ops)" for k in RESOURCES if k in per), ""]
    lines += oracle_lines(results)
    return "\n".join(lines)


def oracle_mape(results: Sequence[CaseResult]) -> float | None:
    """The replay oracle's end-to-end MAPE (None without repeated replays)."""
    errs = [abs(r.oracle_e2e) for r in results if r.oracle_e2e is not None]
    return float(np.mean(errs)) if errs else None


def oracle_lines(results: Sequence[CaseResult]) -> list[str]:
    """The replay oracle beside the model: how well the other replays of each schedule predict
    the one compared, end to end and per op (nothing without repeated replays)."""
    e2e = oracle_mape(results)
    if e2e is None:
        return []
    per = pooled(results, "oracle_err")
    return ["Replay oracle, the replays' own spread: each latency and each op predicted by its "
            "mean in the other replays of its schedule, compared as the model is. End-to-end "
            f"MAPE {e2e:.1%}; per-op " + ", ".join(
                f"{k} {per[k][0]:.1%} ({per[k][1]} ops)" for k in RESOURCES if k in per)
            + ". Where the model's error is near these (or below: one replay's outliers weigh "
            "on the mean), the replays' scatter limits it; far above them, the model is off.", ""]


def kind_table(results: Sequence[CaseResult]) -> list[str]:
    """Per-op MAPE by resource and op kind (kernels by op class, loads by path/destination)."""
    per = pooled(results, "kind_err")
    lines = ["| stage:kind | per-op MAPE | ops |", "|---|---:|---:|"]
    for k in sorted(per):
        lines.append(f"| {k} | {per[k][0]:.1%} | {per[k][1]} |")
    return lines


def plot_overlay(results: Sequence[CaseResult], path: Path) -> None:
    """Gantt overlay: per case and resource, simulated (top, hatched) vs measured (bottom) bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    fig, axes = plt.subplots(n, 1, figsize=(11, 1.6 * n + 0.6), squeeze=False)
    colors = dict(zip(RESOURCES, ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=True))
    for ax, r in zip(axes[:, 0], results, strict=True):
        for k, res in enumerate(RESOURCES):
            y = (len(RESOURCES) - 1 - k) * 2
            for tr, dy, kw in ((r.sim_trace, 0.9, {"alpha": 0.45, "hatch": "//"}),
                               (r.measured.trace if r.measured else None, 0.0, {})):
                if tr is None:
                    continue
                bars = [(i.start * 1e3, (i.end - i.start) * 1e3) for i in tr.intervals
                        if i.resource == res]
                ax.broken_barh(bars, (y + dy, 0.8), color=colors[res], **kw)
        ax.set_yticks([(len(RESOURCES) - 1 - k) * 2 + 0.9 for k in range(len(RESOURCES))])
        ax.set_yticklabels(RESOURCES, fontsize=7)
        ax.set_title(f"{r.case}: sim {r.sim_s * 1e3:.1f} ms (hatched, upper) vs measured "
                     f"{r.measured_s * 1e3:.1f} ms", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    axes[-1, 0].set_xlabel("ms")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

