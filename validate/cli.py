"""`weightstream validate ...`: microbench, calibrate, replay, compare, devices."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from validate.errors import ValidateError


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def _size(size: float | None, quick: bool) -> float:
    return size if size is not None else (0.25 if quick else 1.0)


@click.group()
def validate() -> None:
    """Replay schedules on real OpenCL devices, microbenchmark them, and calibrate profiles."""


@validate.command()
def devices() -> None:
    """List the OpenCL devices (the SPEC forms --device accepts)."""
    from validate.device import list_devices

    lines = list_devices()
    if not lines:
        raise ValidateError("no OpenCL platform or device found; install a CPU OpenCL driver with "
                            "`pip install pyopencl pocl-binary-distribution`")
    for line in lines:
        click.echo(line)


@validate.command()
@click.option("--device", "spec", default=None, help="pocl, nvidia, or platform:device (0:0)")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="write the measurements as JSON")
@click.option("--quick", is_flag=True, help="fewer sizes and repetitions (seconds on a CPU)")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="folder for the storage test file (default: a temp dir)")
def microbench(spec: str | None, out: str | None, quick: bool, workdir: str | None) -> None:
    """Measure copies, image writes, transforms, compute, launches and storage reads."""
    from validate.device import open_device
    from validate.microbench import run_microbench

    dev = open_device(spec)
    _say(f"device: {dev.info.label}")
    mb = run_microbench(dev, quick, workdir, _say)
    if out:
        mb.save(out)
    for k, v in mb.summary().items():
        click.echo(f"{k:26s} {v}")


@validate.command()
@click.option("--microbench", "mb_file", type=click.Path(dir_okay=False), default=None,
              help="measurements from `validate microbench --out` (else measured now on --device)")
@click.option("--device", "spec", default=None,
              help="device to measure and to replay the calibration schedules on")
@click.option("--base", default="snapdragon-8-gen-3", show_default=True,
              help="profile whose unmeasured fields are copied")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="calibrated profile YAML to write")
@click.option("--name", default=None, help="profile name (default: the file's stem)")
@click.option("--refine/--no-refine", default=True, show_default=True,
              help="replay the calibration schedules and refit from their stage times")
@click.option("--size", type=float, default=None, help="model size factor (default 1, quick 0.25)")
@click.option("--repeats", type=int, default=5, show_default=True,
              help="replays per calibration schedule (the median is fitted)")
@click.option("--save-replays", type=click.Path(file_okay=False), default=None,
              help="also write each calibration schedule, its median replay and all latencies here")
@click.option("--quick", is_flag=True)
def calibrate(mb_file: str | None, spec: str | None, base: str, out: str, name: str | None,
              refine: bool, size: float | None, repeats: int, save_replays: str | None,
              quick: bool) -> None:
    """Fit a profile to microbenchmarks (+ calibration-schedule replays) and write it."""
    from hwprofiles import load_profile
    from validate.calibrate import fit_microbench, profile_data, to_profile, write_profile
    from validate.calibrate import refine as refine_fit
    from validate.microbench import Microbench, run_microbench

    if mb_file is None and spec is None:
        raise ValidateError("give --microbench FILE.json or --device SPEC (or both)")
    base_p = load_profile(base)
    dev = None
    if spec is not None or (mb_file is None):
        from validate.device import open_device

        dev = open_device(spec)
    mb = Microbench.load(mb_file) if mb_file else run_microbench(dev, quick, progress=_say)
    cal = fit_microbench(mb)
    pname = name or Path(out).stem
    data = profile_data(cal, base_p, pname)
    if refine and dev is not None:
        from validate.calibrate import fit_per_step
        from validate.cases import CALIBRATION, make_schedule
        from validate.compare import replay_median
        from validate.replay import ReplayOptions

        prof = to_profile(data)
        runs, medians = [], []
        for c in CALIBRATION:
            s = make_schedule(c, prof, _size(size, quick))
            r, lats = replay_median(dev, s, repeats, ReplayOptions())
            _say(f"calibration replay {c.name}: {r.latency_s * 1e3:.2f} ms "
                 f"(runs {', '.join(f'{x * 1e3:.1f}' for x in lats)})")
            runs.append((s, r.trace))
            medians.append((s, r.latency_s))
            if save_replays:
                d = Path(save_replays)
                d.mkdir(parents=True, exist_ok=True)
                stem = c.name.replace("/", "_")
                s.save(d / f"{stem}.schedule.json")
                r.save(d / f"{stem}.replay.json")
                (d / f"{stem}.runs.json").write_text(json.dumps(lats))
        cal = refine_fit(cal, prof, runs)
        prof = to_profile(profile_data(cal, base_p, pname))
        # copies/transforms can only share the compute unit on a CPU device (PoCL); a GPU
        # has its own copy engines
        cpu = "CPU" in str(dev.info.device_type).upper()
        _, res = fit_per_step(cal, prof, medians, shared=(False, True) if cpu else (False,))
        _say(f"per-step costs fitted end to end: residual {res:.1%} RMS on the calibration set")
        data = profile_data(cal, base_p, pname)
    write_profile(data, out)
    click.echo(f"wrote {out}")
    for path, (value, _src) in cal.values.items():
        click.echo(f"  {path} = {value:.6g}" if isinstance(value, float) else f"  {path} = {value}")


@validate.command()
@click.argument("schedule_file", type=click.Path(dir_okay=False))
@click.option("--device", "spec", default=None)
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="multiply every byte and FLOP count (and the budget) to shrink big models")
@click.option("--weights-dir", type=click.Path(file_okay=False), default=None,
              help="where the weight file is written (default: a temp dir)")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="measured trace + latency as JSON")
@click.option("--chrome", type=click.Path(dir_okay=False), default=None,
              help="also write a Chrome/Perfetto trace")
@click.option("--queue-depth", type=int, default=4, show_default=True)
@click.option("--reads-in-flight", type=click.IntRange(min=1), default=1, show_default=True,
              help="reads submitted at once (the runtime's load.reads_in_flight)")
def replay(schedule_file: str, spec: str | None, scale: float, weights_dir: str | None,
           out: str | None, chrome: str | None, queue_depth: int, reads_in_flight: int) -> None:
    """Execute a saved Schedule on a real OpenCL device and measure its timeline."""
    from sim.errors import ScheduleError
    from sim.schedule import Schedule
    from validate.device import open_device
    from validate.replay import ReplayOptions
    from validate.replay import replay as run_replay

    try:
        s = Schedule.load(schedule_file)
    except ScheduleError as exc:
        raise ValidateError(str(exc)) from None
    dev = open_device(spec)
    opts = ReplayOptions(scale=scale, weights_dir=Path(weights_dir) if weights_dir else None,
                         queue_depth=queue_depth, reads_in_flight=reads_in_flight)
    r = run_replay(dev, s, opts)
    if out:
        r.save(out)
    if chrome:
        r.trace.save_chrome(chrome)
    click.echo(json.dumps({"schedule": r.schedule, "device": dev.info.name,
                           "latency_s": r.latency_s, "wall_s": r.wall_s,
                           "peak_memory_bytes": r.peak_memory_bytes,
                           "budget_bytes": r.budget_bytes, "storage_mode": r.storage_mode,
                           "busy_s": {k: r.trace.busy_time(k) for k in
                                      ("storage", "copy", "transform", "gpu")}}))


@validate.command()
@click.option("--device", "spec", default=None)
@click.option("--profile", "profile_ref", required=True, help="calibrated profile (name or YAML)")
@click.option("--out", "out", type=click.Path(file_okay=False), default="validate-report",
              show_default=True)
@click.option("--size", type=float, default=None, help="model size factor (default 1, quick 0.25)")
@click.option("--repeats", type=int, default=5, show_default=True,
              help="replays per schedule (the median is reported)")
@click.option("--quick", is_flag=True)
@click.option("--title", default=None)
@click.option("--save-replays", type=click.Path(file_okay=False), default=None,
              help="also write each held-out schedule and its median replay here")
def compare(spec: str | None, profile_ref: str, out: str, size: float | None, repeats: int,
            quick: bool, title: str | None, save_replays: str | None) -> None:
    """Simulate and replay the held-out schedules; write report.md, overlay.png, results.json."""
    from hwprofiles import load_profile
    from validate.cases import HELD_OUT
    from validate.compare import mape, markdown, plot_overlay, run_cases
    from validate.device import open_device

    profile = load_profile(profile_ref)
    dev = open_device(spec)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    sz = _size(size, quick)
    load0 = os.getloadavg()[0]
    results = run_cases(dev, profile, HELD_OUT, sz, repeats, say=_say)
    load1 = os.getloadavg()[0]
    if save_replays:
        d = Path(save_replays)
        d.mkdir(parents=True, exist_ok=True)
        for c, r in zip(HELD_OUT, results, strict=True):
            if r.measured is not None:
                r.measured.save(d / f"{c.name.replace('/', '_')}.replay.json")
    notes = [f"Held-out schedules (models never used for calibration), model size factor {sz}, "
             f"median of {repeats} replay(s) each. Errors are simulated / measured - 1. "
             "Per-op errors compare each stage's duration (compute: the simulator's time less "
             "its launch overhead vs the kernel's profiling-event time).",
             "",
             f"Host load average (1 min) {load0:.2f} at the start, {load1:.2f} at the end, on "
             f"{os.cpu_count()} CPU(s); host staging memory "
             f"{'pinned (mapped ALLOC_HOST_PTR buffers)' if dev.pinned else 'pageable (mmap)'}."]
    text = markdown(results, profile, dev.info.to_dict(),
                    title or f"Simulated vs measured on {dev.info.name}", notes)
    (outdir / "report.md").write_text(text)
    plot_overlay(results, outdir / "overlay.png")
    (outdir / "results.json").write_text(json.dumps(
        {"device": dev.info.to_dict(), "profile": profile.name, "mape": mape(results),
         "cases": [{"case": r.case, "sim_s": r.sim_s, "measured_s": r.measured_s,
                    "runs_s": r.runs_s, "error": r.error, "op_mape": r.op_mape}
                   for r in results]}, indent=1))
    click.echo(text)


def _register() -> None:
    from validate.cli_published import published

    validate.add_command(published)


_register()
