"""Simulated vs measured: calibrate on one set of schedules, replay a held-out set, and report
per-op and end-to-end error (Markdown table + timeline overlay plots)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwprofiles.schema import HardwareProfile
from sim.engine import simulate
from sim.trace import RESOURCES, Trace
from validate.cases import Case, make_schedule
from validate.device import Device
from validate.replay import ReplayOptions, ReplayResult, replay_runs


@dataclass
class CaseResult:
    """One held-out schedule: simulated and measured latency, per-resource per-op errors."""

    case: str
    sim_s: float
    measured_s: float
    runs_s: list[float]
    op_mape: dict[str, float] = field(default_factory=dict)  # resource -> MAPE of durations
    sim_trace: Trace | None = None
    measured: ReplayResult | None = None

    @property
    def error(self) -> float:
        return self.sim_s / self.measured_s - 1


def replay_median(dev: Device, schedule, repeats: int, opts: ReplayOptions) -> tuple[ReplayResult,
                                                                                   list[float]]:
    """Replay `repeats` times; the run with the median latency (and all latencies)."""
    runs = replay_runs(dev, schedule, repeats, opts)
    runs.sort(key=lambda r: r.latency_s)
    return runs[len(runs) // 2], [r.latency_s for r in runs]


def op_errors(sim: Trace, meas: Trace, launch: float) -> dict[str, float]:
    """MAPE of each resource's per-step durations (the simulator's compute time less its launch
    overhead, which a profiling event does not include, against the kernel's event time)."""
    s = {(i.resource, i.step): i.end - i.start for i in sim.intervals}
    out: dict[str, float] = {}
    for res in RESOURCES:
        errs = []
        for i in meas.intervals:
            if i.resource != res or (res, i.step) not in s:
                continue
            m = i.end - i.start
            p = s[(res, i.step)] - (launch if res == "gpu" else 0.0)
            if m > 0:
                errs.append(abs(p - m) / m)
        if errs:
            out[res] = float(np.mean(errs))
    return out


def run_cases(dev: Device, profile: HardwareProfile, cases: Sequence[Case], size: float,
              repeats: int, opts: ReplayOptions | None = None,
              say: Callable[[str], None] | None = None) -> list[CaseResult]:
    """Plan each case on `profile`, simulate it, replay it on `dev`."""
    opts = opts or ReplayOptions()
    out = []
    for c in cases:
        s = make_schedule(c, profile, size)
        sim = simulate(s, profile)
        best, lats = replay_median(dev, s, repeats, opts)
        r = CaseResult(c.name, sim.metrics.latency_s, best.latency_s, lats,
                       op_errors(sim.trace, best.trace, profile.gpu.kernel_launch_overhead),
                       sim.trace, best)
        if say:
            say(f"{c.name}: simulated {r.sim_s * 1e3:.2f} ms, measured {r.measured_s * 1e3:.2f} ms "
                f"({r.error:+.1%})")
        out.append(r)
    return out


def mape(results: Sequence[CaseResult]) -> float:
    return float(np.mean([abs(r.error) for r in results])) if results else float("nan")


def markdown(results: Sequence[CaseResult], profile: HardwareProfile, device: dict,
             title: str, notes: Sequence[str] = ()) -> str:
    """The report: one row per held-out schedule, then the MAPE."""
    lines = [f"# {title}", "",
             f"Device: **{device.get('name')}** ({device.get('platform')}, driver "
             f"{device.get('driver')}). Profile: `{profile.name}`.", ""]
    lines += list(notes)
    lines += ["", "| schedule (model/policy/budget/path/dst) | simulated ms | measured ms (median) | "
              "runs ms | error | op MAPE storage | copy | transform | gpu |",
              "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        ops = [f"{r.op_mape[k]:.0%}" if k in r.op_mape else "-" for k in RESOURCES]
        lines.append(f"| {r.case} | {r.sim_s * 1e3:.2f} | {r.measured_s * 1e3:.2f} | "
                     f"{', '.join(f'{x * 1e3:.1f}' for x in r.runs_s)} | {r.error:+.1%} | "
                     + " | ".join(ops) + " |")
    per_res = {k: statistics.mean([r.op_mape[k] for r in results if k in r.op_mape])
               for k in RESOURCES if any(k in r.op_mape for r in results)}
    lines += ["", f"**End-to-end MAPE over {len(results)} held-out schedules: "
                  f"{mape(results):.1%}**", "",
              "Per-op MAPE by resource: " + ", ".join(f"{k} {v:.0%}" for k, v in per_res.items()),
              ""]
    return "\n".join(lines)


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
