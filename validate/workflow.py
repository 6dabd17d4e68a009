"""The steps the validate commands chain: replay a set of cases (saving them on request),
calibrate a device from its calibration replays, and write the reports."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwprofiles.schema import HardwareProfile
from validate.cases import CALIBRATION, HELD_OUT, ZOO_CALIBRATION, ZOO_HELD_OUT, Case, ZooCase
from validate.compare import (
    CaseResult,
    hop_table,
    kind_table,
    mape,
    markdown,
    oracle_mape,
    pooled,
)
from validate.device import Device
from validate.errors import ValidateError
from validate.replay import ReplayOptions, ReplayResult, replay_runs
from validate.stagefit import StageResult

CALIBRATION_SETS: dict[str, Sequence[Case | ZooCase]] = {
    "zoo": ZOO_CALIBRATION, "synthetic": CALIBRATION,
    # the synthetic nets add long kernels, behind which a host issue interval shows
    "both": (*ZOO_CALIBRATION, *CALIBRATION)}
HELD_OUT_SETS: dict[str, Sequence[Case | ZooCase]] = {"zoo": ZOO_HELD_OUT, "synthetic": HELD_OUT}
TITLES = {"zoo": "Held-out real models (zoo)", "synthetic": "Held-out synthetic nets"}


def pick(sets: dict[str, Sequence[Case | ZooCase]], name: str, models: str | None = None
         ) -> list[Case | ZooCase]:
    """The cases of set `name`, optionally only those of the comma-separated `models`."""
    if name not in sets:
        raise ValidateError(f"unknown case set {name!r}; valid sets: {', '.join(sets)}")
    cases = list(sets[name])
    if models:
        want = [m.strip() for m in models.split(",") if m.strip()]
        have = sorted({c.model for c in cases})
        bad = [m for m in want if m not in have]
        if bad:
            raise ValidateError(f"set {name!r} has no model {bad[0]!r}; its models: "
                                f"{', '.join(have)}")
        cases = [c for c in cases if c.model in want]
    return cases


def stem(case: Case | ZooCase) -> str:
    """A file-name stem for a case."""
    return case.name.replace("/", "_").replace(",", "_").replace("=", "")


def save_runs(d: Path, case: Case | ZooCase, schedule, runs: Sequence[ReplayResult]) -> None:
    """Write a case's schedule and every replay of it into `d`."""
    d.mkdir(parents=True, exist_ok=True)
    schedule.save(d / f"{stem(case)}.schedule.json")
    for i, r in enumerate(runs):
        r.save(d / f"{stem(case)}.run{i}.json")


def replay_set(dev: Device, profile: HardwareProfile, cases: Sequence[Case | ZooCase],
               size: float, repeats: int, opts: ReplayOptions, save: Path | None,
               say: Callable[[str], None]
               ) -> list[tuple[Any, ReplayResult, list[float], list[ReplayResult]]]:
    """Plan and replay each case `repeats` times: (schedule, median replay, all latencies,
    the other replays)."""
    from validate.compare import median_run, schedule_for

    out = []
    for c in cases:
        s = schedule_for(c, profile, size)
        runs = replay_runs(dev, s, repeats, opts)
        if save is not None:
            save_runs(save, c, s, runs)
        med, lats, others = median_run(runs)
        say(f"replay {c.name}: {med.latency_s * 1e3:.2f} ms (runs "
            f"{', '.join(f'{x * 1e3:.1f}' for x in lats)})")
        out.append((s, med, lats, others))
    return out


def calibration_report(results: Sequence[StageResult], e2e: Sequence[tuple[str, float, float]],
                       device: dict, profile: str, set_name: str, repeats: int) -> str:
    """Markdown: every stage's fitted fields with its fit and check errors, then the end-to-end
    check on the calibration replays (never fitted)."""
    lines = [f"# Calibration of {device.get('name')} ({device.get('platform')}, driver "
             f"{device.get('driver')}) -> `{profile}`", "",
             f"Calibration set: {set_name} ({len(e2e)} schedules, median of {repeats} replays "
             f"each). Each stage is fitted on its own ops; every 4th op is held out of its fit "
             f"and checked.", "",
             "| stage | fitted | fit MAPE (ops) | check MAPE (ops) |", "|---|---|---:|---:|"]
    for r in results:
        vals = ", ".join(f"{k.split('.', 1)[1]} = {_fmt(k, v)}" for k, v in r.values.items())
        fit = f"{r.fit_mape:.1%} ({r.fit_n})" if r.fit_n else "-"
        chk = f"{r.check_mape:.1%} ({r.check_n})" if r.check_n else "-"
        lines.append(f"| {r.stage} | {vals} | {fit} | {chk} |")
    kern = next((r for r in results if r.stage == "kernels"), None)
    if kern:  # says whether the replays set the compute efficiency, and which ones fit
        lines += ["", f"Kernel fit: {kern.how}."]
    if kern and kern.extra.get("check_by_kind"):
        lines += ["", "Kernels by op class, check ops: " + ", ".join(
            f"{k} {m:.0%} ({n})" for k, (m, n) in sorted(kern.extra["check_by_kind"].items()))]
    errs = [sim / meas - 1 for _, sim, meas in e2e]
    lines += ["", "End-to-end check on the calibration replays (not fitted): MAPE "
              f"{np.mean(np.abs(errs)):.1%}", "", "| schedule | simulated ms | measured ms | "
              "error |", "|---|---:|---:|---:|"]
    for (name, sim, meas), e in zip(e2e, errs, strict=True):
        lines.append(f"| {name} | {sim * 1e3:.2f} | {meas * 1e3:.2f} | {e:+.1%} |")
    return "\n".join(lines) + "\n"


def _fmt(path: str, v: float) -> str:
    if "bandwidth" in path:
        return f"{v / 1e9:.3g} GB/s"
    if any(k in path for k in ("latency", "overhead", "sync", "interval")):
        return f"{v * 1e6:.3g} us"
    return f"{v:.3g}"


def compare_report(sets: dict[str, list[CaseResult]], profile: HardwareProfile, device: dict,
                   title: str, notes: Sequence[str]) -> str:
    """The compare report: one section per case set (zoo first), with per-op MAPE by stage and
    kind and the measured hop gaps against the profile's."""
    parts = [f"# {title}", "", f"Device: **{device.get('name')}** ({device.get('platform')}, "
             f"driver {device.get('driver')}). Profile: `{profile.name}`.", "", *notes, ""]
    for name in ("zoo", "synthetic"):
        res = sets.get(name)
        if not res:
            continue
        parts.append(markdown(res, profile, {}, TITLES[name], (), heading="##"))
        parts += ["Per-op MAPE by stage and kind:", "", *kind_table(res), "",
                  "Sync / dispatch gaps (where the dependency held the stage back):", "",
                  *hop_table(res, profile), ""]
    return "\n".join(parts) + "\n"


def results_json(sets: dict[str, list[CaseResult]], profile: HardwareProfile, device: dict,
                 extra: dict[str, Any]) -> str:
    """results.json of a compare run."""
    return json.dumps({"device": device, "profile": profile.name, **extra,
                       "sets": {k: {"mape": mape(v), "op_mape": {r: m for r, (m, _) in
                                                                 pooled(v).items()},
                                    "oracle_mape": oracle_mape(v),
                                    "oracle_op_mape": {r: m for r, (m, _) in
                                                       pooled(v, "oracle_err").items()},
                                    "cases": [c.to_dict() for c in v]}
                                for k, v in sets.items()}}, indent=1)


def host_note(load0: float, load1: float, pinned: bool) -> str:
    return (f"Host load average (1 min) {load0:.2f} at the start, {load1:.2f} at the end, on "
            f"{os.cpu_count()} CPU(s); host staging memory "
            f"{'pinned (mapped ALLOC_HOST_PTR buffers)' if pinned else 'pageable (mmap)'}.")
