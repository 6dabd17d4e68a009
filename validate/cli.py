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
    from validate.device import list_devices, registration_hints

    lines = list_devices()
    hints = registration_hints()
    if not lines:
        raise ValidateError("no OpenCL platform or device found; install a CPU OpenCL driver with "
                            "`pip install pyopencl pocl-binary-distribution`"
                            + "".join(f"; {h}" for h in hints))
    for line in lines:
        click.echo(line)
    for h in hints:
        click.echo(f"note: {h}")


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
              help="profile whose unmeasured fields are copied (with --refit: the profile "
                   "to refit)")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="calibrated profile YAML to write")
@click.option("--name", default=None, help="profile name (default: the file's stem)")
@click.option("--refine/--no-refine", default=True, show_default=True,
              help="replay the calibration set and fit every stage from its per-op times")
@click.option("--set", "set_name", default="zoo", show_default=True,
              help="calibration set: zoo (real op mixes), synthetic (small nets, seconds) "
              "or both (long kernels too: a host issue interval shows behind them)")
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="shrink the real models' bytes and FLOPs when replaying (zoo set)")
@click.option("--size", type=float, default=None,
              help="synthetic model size factor (default 1, quick 0.25)")
@click.option("--repeats", type=int, default=3, show_default=True,
              help="replays per calibration schedule (the median is fitted)")
@click.option("--save-replays", type=click.Path(file_okay=False), default=None,
              help="also write each calibration schedule and all its replays here")
@click.option("--report", type=click.Path(dir_okay=False), default=None,
              help="write the per-stage fit/check report (Markdown) here")
@click.option("--refit", "check_file", type=click.Path(dir_okay=False), default=None,
              help="refit only the figures that drift (storage, copies, hop gaps) of --base from a "
                   "`validate check --out` file; nothing is replayed")
@click.option("--quick", is_flag=True, help="quick microbenchmarks and the synthetic set")
def calibrate(mb_file: str | None, spec: str | None, base: str, out: str, name: str | None,
              refine: bool, set_name: str, scale: float, size: float | None, repeats: int,
              save_replays: str | None, report: str | None, check_file: str | None,
              quick: bool) -> None:
    """Fit a profile to microbenchmarks and, stage by stage, to calibration replays."""
    from hwprofiles import load_profile
    from validate.calibrate import (
        end_to_end,
        fit_microbench,
        profile_data,
        refine_stages,
        to_profile,
        write_profile,
    )
    from validate.microbench import Microbench, run_microbench

    if check_file is not None:
        _refit(base, check_file, out, name)
        return
    if mb_file is None and spec is None:
        raise ValidateError("give --microbench FILE.json or --device SPEC (or both)")
    if repeats < 1:
        raise ValidateError(f"--repeats must be at least 1, found {repeats}")
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
        from validate.replay import ReplayOptions
        from validate.workflow import CALIBRATION_SETS, calibration_report, pick, replay_set

        cases = pick(CALIBRATION_SETS, "synthetic" if quick else set_name)
        prof = to_profile(data)
        done = replay_set(dev, prof, cases, _size(size, quick), repeats,
                          ReplayOptions(scale=scale), Path(save_replays) if save_replays
                          else None, _say)
        results = refine_stages(cal, prof, [(s, r) for s, r, *_ in done], mb)
        data = profile_data(cal, base_p, pname)
        e2e = end_to_end(to_profile(data), [(s if r.scale == 1.0 else _scaled(s, r.scale),
                                             r.latency_s) for s, r, *_ in done])
        errs = [abs(a / b - 1) for _, a, b in e2e]
        _say(f"end-to-end check on the calibration set (not fitted): MAPE "
             f"{sum(errs) / len(errs):.1%}")
        if report:
            Path(report).parent.mkdir(parents=True, exist_ok=True)
            Path(report).write_text(calibration_report(results, e2e, mb.device, pname,
                                                       "synthetic" if quick else set_name,
                                                       repeats))
    write_profile(data, out)
    click.echo(f"wrote {out}")
    if dev is not None:
        from validate.check import baseline_path, measure

        base_file = baseline_path(out)
        measure(dev).save(base_file)
        click.echo(f"wrote {base_file} (this start's storage and copy figures, the baseline of "
                   "`validate check`)")
    for path, (value, _src) in cal.values.items():
        click.echo(f"  {path} = {value:.6g}" if isinstance(value, float) else f"  {path} = {value}")


def _scaled(s, f: float):
    from validate.replay import scale_schedule

    return scale_schedule(s, f)


def _refit(base: str, check_file: str, out: str, name: str | None) -> None:
    """`calibrate --refit`: the base profile with its drifting figures measured anew."""
    from hwprofiles import load_profile
    from hwprofiles.loader import load_checked
    from hwprofiles.schema import FIELDS
    from validate.calibrate import Calibration, write_profile
    from validate.calibrate import _fmt as fmt
    from validate.check import Check, load_baseline, refit

    check = Check.load(check_file)
    data = load_checked(base)[0]
    data.pop("extends", None)
    cal = Calibration(check.device, check.date)
    for path, (value, what) in refit(check, load_profile(base), load_baseline(base)).items():
        cal.set(path, value, what)
    for path, (value, how) in cal.values.items():
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = {"value": fmt(FIELDS[path].rstrip("?"), value), "source": how}
    data["name"] = name or Path(out).stem
    data["description"] = (f"{data.get('description', '')} Drifting figures refitted "
                           f"{check.date} from `validate check`.").strip()
    write_profile(data, out)
    from validate.check import baseline_path

    check.save(baseline_path(out))  # the new reference of later checks
    refitted = ", ".join(f"{k} = {v:.4g}" for k, (v, _) in cal.values.items()) or "nothing"
    click.echo(f"wrote {out} (refitted from {check_file}: {refitted}; every other field as in "
               f"{base}: storage and copies are refitted only where at least two of their "
               "figures drifted, each hop where its gap did)")


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
@click.option("--queue-depth", type=click.IntRange(min=1), default=4, show_default=True)
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
@click.option("--profile", "profile_ref", required=True,
              help="calibrated profile (name or YAML) to check")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="write the measurements and verdict as JSON (input of `calibrate --refit`)")
@click.option("--tolerance", type=float, default=0.15, show_default=True,
              help="largest relative difference from the profile's prediction that still holds")
@click.option("--fail-on-drift", is_flag=True, help="exit with status 1 if the profile drifted")
@click.option("--baseline", type=click.Path(dir_okay=False), default=None,
              help="the profile's calibration-time figures (default: PROFILE.check.json next to "
                   "its file, written by calibrate)")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="folder for the storage test file (default: a temp dir)")
def check(spec: str | None, profile_ref: str, out: str | None, tolerance: float,
          fail_on_drift: bool, baseline: str | None, workdir: str | None) -> None:
    """Re-measure the figures that drift between machine starts (storage reads, host->device
    copies, the replay driver's hop gaps) in seconds and say whether PROFILE still holds."""
    from hwprofiles import load_profile
    from validate.check import load_baseline, measure, reference, summary_lines, verdict
    from validate.device import open_device

    if not 0 < tolerance < 10:
        raise ValidateError(f"--tolerance must be a fraction above 0 (0.15 = 15%), found "
                            f"{tolerance}")
    profile = load_profile(profile_ref)
    base = load_baseline(profile_ref, baseline)
    dev = open_device(spec)
    _say(f"device: {dev.info.label}")
    result = reference(measure(dev, workdir=workdir), profile, profile_ref, base, tolerance)
    if out:
        result.save(out)
    for line in summary_lines(result):
        click.echo(line)
    click.echo(verdict(result))
    if fail_on_drift and not result.holds:
        raise SystemExit(1)


@validate.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="Markdown summary to write")
def summary(run_dirs: tuple[str, ...], out: str) -> None:
    """Summarise several `compare` runs (their results.json): end-to-end and per-op MAPE of
    each run, and the spread between runs."""
    from validate.summary import summarise

    text = summarise([Path(d) for d in run_dirs])
    Path(out).write_text(text)
    click.echo(text)


@validate.command()
@click.option("--device", "spec", default=None)
@click.option("--profile", "profile_ref", required=True, help="calibrated profile (name or YAML)")
@click.option("--out", "out", type=click.Path(file_okay=False), default="validate-report",
              show_default=True)
@click.option("--set", "set_name", default="both", show_default=True,
              help="held-out set: zoo (real models), synthetic (small nets) or both")
@click.option("--models", default=None, help="only these models of the zoo set (comma list)")
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="shrink the real models' bytes and FLOPs when replaying (zoo set)")
@click.option("--size", type=float, default=None,
              help="synthetic model size factor (default 1, quick 0.25)")
@click.option("--repeats", type=int, default=3, show_default=True,
              help="replays per schedule (the median is reported)")
@click.option("--quick", is_flag=True, help="the synthetic set only, small")
@click.option("--title", default=None)
@click.option("--save-replays", type=click.Path(file_okay=False), default=None,
              help="also write each held-out schedule and all its replays here")
def compare(spec: str | None, profile_ref: str, out: str, set_name: str, models: str | None,
            scale: float, size: float | None, repeats: int, quick: bool, title: str | None,
            save_replays: str | None) -> None:
    """Replay the held-out schedules and simulate them on PROFILE; write report.md,
    overlay.png and results.json with the error per op and end to end."""
    from hwprofiles import load_profile
    from validate.check import load_baseline, measure, reference, summary_lines, verdict
    from validate.compare import evaluate, plot_overlay
    from validate.device import open_device
    from validate.replay import ReplayOptions
    from validate.workflow import (
        HELD_OUT_SETS,
        compare_report,
        host_note,
        pick,
        replay_set,
        results_json,
    )

    if repeats < 1:
        raise ValidateError(f"--repeats must be at least 1, found {repeats}")
    names = ["synthetic"] if quick else ["zoo", "synthetic"] if set_name == "both" else [set_name]
    chosen = {n: pick(HELD_OUT_SETS, n, models if n == "zoo" else None) for n in names}
    profile = load_profile(profile_ref)
    dev = open_device(spec)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    sz = _size(size, quick)
    machine = reference(measure(dev), profile, profile_ref, load_baseline(profile_ref))
    _say(verdict(machine))
    load0 = os.getloadavg()[0]
    sets = {}
    for n, cases in chosen.items():
        save = Path(save_replays) / n if save_replays else None
        done = replay_set(dev, profile, cases, sz, repeats, ReplayOptions(scale=scale), save,
                          _say)
        sets[n] = [evaluate(s, r, profile, c.name, lats, others)
                   for c, (s, r, lats, others) in zip(cases, done, strict=True)]
        for r in sets[n]:
            _say(f"{r.case}: simulated {r.sim_s * 1e3:.2f} ms, measured {r.measured_s * 1e3:.2f} "
                 f"ms ({r.error:+.1%})")
    load1 = os.getloadavg()[0]
    notes = [f"Held-out schedules (models never replayed for calibration), median of {repeats} "
             f"replay(s) each; real models at scale {scale:g}, synthetic nets at size {sz:g}. "
             "Errors are simulated / measured - 1. Per-op errors: each read, copy and transform "
             "against its measured duration, each kernel against its profiling-event time plus "
             "the launch gap before it (what the simulator's kernel interval holds).", "",
             host_note(load0, load1, dev.pinned), "",
             "Machine figures of this start (re-measured before the replays, `validate check`):",
             "", *summary_lines(machine), "", verdict(machine) + "."]
    text = compare_report(sets, profile, dev.info.to_dict(),
                          title or f"Simulated vs measured on {dev.info.name}", notes)
    (outdir / "report.md").write_text(text)
    first = [rs[i] for rs in sets.values() for i in range(0, len(rs), 6)]
    plot_overlay(first[:12], outdir / "overlay.png")
    (outdir / "results.json").write_text(results_json(
        sets, profile, dev.info.to_dict(),
        {"machine": machine.to_dict(), "repeats": repeats, "scale": scale, "size": sz}))
    click.echo(text)


def _register() -> None:
    from validate.cli_published import published

    validate.add_command(published)


_register()
