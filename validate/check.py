"""Drift check: re-measure the few figures that change from one machine start to the next
(storage reads above all, then host->device copies, and the replay driver's hop and launch
gaps, which follow the host's speed) in seconds, and say whether a calibrated profile still
holds; `calibrate --refit` fits only those figures anew.

`calibrate` measures the same figures the same way right after fitting and keeps them next to
the profile (`<profile>.check.json`, the baseline): a check compares like with like, the same
isolated measurement on two machine starts. Without a baseline it compares with what the
profile's own model predicts, which is coarser (the model is fitted to reads and copies made
during replays, next to other work) and says so."""

from __future__ import annotations

import datetime as _dt
import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hwprofiles.schema import HOPS, HardwareProfile
from hwprofiles.storage import read_time
from sim.hardware import HardwareModel
from validate.device import Device
from validate.errors import ValidateError
from validate.microbench import replay_reads
from validate.reader import BlobReader, aligned_array, write_blob_file

MiB = 1 << 20
FORMAT = "weightstream-check"
READ_SIZES = (64 << 10, MiB, 8 * MiB, 32 * MiB)
WRITE_SIZES = (64 << 10, MiB, 16 * MiB)
TOLERANCE = 0.15
# hop gaps are means of a few hundred host-timed waits: they vary more than a read or a copy
HOP_TOLERANCE = 0.25
# the hop probe: a small fixed schedule (planned on a fixed profile, whatever profile is checked)
# whose replay makes every kind of hop; its gaps are the driver's dispatch / sync costs
HOP_PROBE = ("convnet", "sequential", "tight", "via_buffer", "texture")
HOP_PROBE_PROFILE = "snapdragon-8-gen-3"
HOP_PROBE_SIZE = 0.25


@dataclass
class Figure:
    """One re-measured figure and what the profile predicts for it."""

    what: str
    nbytes: int
    predicted_s: float
    measured_s: float

    @property
    def ratio(self) -> float:
        """measured / predicted (above 1: slower than the profile says)."""
        return self.measured_s / self.predicted_s if self.predicted_s > 0 else float("inf")


@dataclass
class Check:
    """Measurements of one machine start, and (once compared) a profile's predictions."""

    device: dict[str, Any]
    date: str
    storage_mode: str
    reads: list[dict[str, float]]  # bytes, seconds (replay-style whole reads)
    writes: list[dict[str, float]]  # bytes, seconds (host->device buffer writes)
    profile: str = ""
    tolerance: float = TOLERANCE
    figures: list[Figure] = field(default_factory=list)
    hops: dict[str, float] = field(default_factory=dict)  # hop kind -> mean gap (s)
    hop_error: str = ""  # why the hop probe could not run on this device ("" = it ran)

    def tolerance_of(self, f: Figure) -> float:
        return max(self.tolerance, HOP_TOLERANCE) if f.what.startswith("hop ") else self.tolerance

    @property
    def drifted(self) -> list[Figure]:
        return [f for f in self.figures if abs(f.ratio - 1) > self.tolerance_of(f)]

    @property
    def holds(self) -> bool:
        return not self.drifted

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = FORMAT
        d["holds"] = self.holds
        return d

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Check:
        try:
            d = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ValidateError(f"cannot read check file {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ValidateError(f"check file {path} is not valid JSON: {exc}") from None
        if not isinstance(d, dict) or d.pop("format", None) != FORMAT:
            raise ValidateError(f"{path} is not a weightstream check file (missing \"format\": "
                                f"\"{FORMAT}\"; write one with `validate check --out`)")
        d.pop("holds", None)
        try:
            d["figures"] = [Figure(**f) for f in d.get("figures", [])]
            check = cls(**d)
        except TypeError as exc:
            raise ValidateError(f"malformed check file {path}: {exc}") from None
        problems = _problems(check)
        if problems:
            raise ValidateError(f"malformed check file {path}: " + "; ".join(problems))
        return check


def _positive(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and x > 0


def _problems(check: Check) -> list[str]:
    """What a check file holds that a refit or a comparison cannot use."""
    out = []
    for attr in ("reads", "writes"):
        pts = getattr(check, attr)
        if not isinstance(pts, list) or len(pts) < 2 or not all(
                isinstance(p, dict) and _positive(p.get("bytes")) and _positive(p.get("seconds"))
                for p in pts):
            out.append(f"{attr}: expected at least two {{bytes, seconds}} points with positive "
                       f"numbers, found {pts!r}"[:200])
    if not isinstance(check.hops, dict) or not all(
            k in HOPS and (_positive(v) or v == 0) for k, v in check.hops.items()):
        out.append(f"hops: expected {{hop: seconds}} for hops among {', '.join(HOPS)}, found "
                   f"{check.hops!r}"[:200])
    return out


def hop_probe_schedule():
    """The fixed schedule whose replay measures the hop gaps (see HOP_PROBE)."""
    from hwprofiles import load_profile
    from validate.cases import Case, make_schedule

    return make_schedule(Case(*HOP_PROBE), load_profile(HOP_PROBE_PROFILE), HOP_PROBE_SIZE)


def measure_hops(dev: Device, reps: int = 3, workdir: str | Path | None = None
                 ) -> dict[str, float]:
    """Mean gap per hop kind (read, copy, transform, kernel, free; the slowest 5% left out, as
    `calibrate` fits `gpu.sync_<hop>`) over `reps` replays of the hop probe: what the replay
    driver adds between dependent stages on this machine start (it follows the host's speed,
    not the device's)."""
    from validate.replay import ReplayOptions, replay_runs
    from validate.stagefit import trimmed_mean
    from validate.stages import gaps_by_hop, stage_ops

    s = hop_probe_schedule()
    gaps: dict[str, list[float]] = {}
    for r in replay_runs(dev, s, reps, ReplayOptions(weights_dir=workdir)):
        for kind, v in gaps_by_hop(stage_ops(s, r.trace, r.marks)).items():
            gaps.setdefault(kind, []).extend(v)
    return {k: trimmed_mean(v) for k, v in gaps.items() if len(v) >= 5}


def measure(dev: Device, reps: int = 7, workdir: str | Path | None = None) -> Check:
    """Re-measure storage reads (as a replay makes them), host->device buffer writes (from
    the replay's staging memory) and the replay driver's hop gaps on `dev`: a few seconds."""
    from validate.microbench import _median_event

    date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    file_bytes = 2 * max(READ_SIZES) + MiB
    with tempfile.TemporaryDirectory(prefix="ws-check-", dir=workdir) as tmp:
        path = Path(tmp) / "check.bin"
        write_blob_file(path, file_bytes)
        reader = BlobReader(path, 4)
        try:
            out = aligned_array(file_bytes)
            reads = replay_reads(reader, out, READ_SIZES, reps, file_bytes)
            mode = reader.mode
        finally:
            reader.close()
    cl, writes = dev.cl, []
    for size in WRITE_SIZES:
        staging = dev.host_array(size)
        buf = cl.Buffer(dev.context, cl.mem_flags.READ_WRITE, size)
        t = _median_event(lambda b=buf, h=staging[:size]: cl.enqueue_copy(
            dev.copy_queue, b, h, is_blocking=False), reps)
        writes.append({"bytes": size, "seconds": float(t)})
        dev.give_host(staging)
    try:
        hops, why = measure_hops(dev, workdir=workdir), ""
    except ValidateError as exc:  # e.g. a device too small for the probe: the rest still holds
        hops, why = {}, str(exc)
    return Check(dev.info.to_dict(), date, mode, reads, writes, hops=hops, hop_error=why)


def profile_file(ref: str) -> Path:
    """The YAML file of a profile given by name or path."""
    from hwprofiles.loader import builtin_dir

    p = Path(ref)
    return p if p.suffix in (".yaml", ".yml") else builtin_dir() / f"{ref}.yaml"


def load_baseline(ref: str, explicit: str | None = None) -> Check | None:
    """The baseline of profile `ref`: `explicit`, else the one kept next to its file, else
    None."""
    if explicit:
        return Check.load(explicit)
    b = baseline_path(profile_file(ref))
    return Check.load(b) if b.exists() else None


def reference(check: Check, profile: HardwareProfile, ref: str, baseline: Check | None,
              tolerance: float = TOLERANCE) -> Check:
    """`check` against the profile's baseline where there is one, else its model."""
    if baseline is not None:
        return against_baseline(check, baseline, profile.name, tolerance, profile)
    out = compare(check, profile, tolerance)
    out.profile = f"{profile.name} (its model: no baseline)"
    return out


def baseline_path(profile_file: str | Path) -> Path:
    """Where the baseline measurements of a calibrated profile file are kept."""
    p = Path(profile_file)
    return p.with_name(p.stem + ".check.json")


def against_baseline(check: Check, baseline: Check, name: str,
                     tolerance: float = TOLERANCE, profile: HardwareProfile | None = None
                     ) -> Check:
    """`check` with each figure set against the same figure measured at calibration (a hop gap
    the baseline did not measure, as baselines before the hop probe, against `profile`'s
    model of it)."""
    base = {("storage", int(p["bytes"])): p["seconds"] for p in baseline.reads}
    base |= {("host->device", int(p["bytes"])): p["seconds"] for p in baseline.writes}
    figs = []
    for kind, pts in (("storage", check.reads), ("host->device", check.writes)):
        for p in pts:
            b = base.get((kind, int(p["bytes"])))
            if b:
                what = "storage read" if kind == "storage" else "host->device copy"
                figs.append(Figure(f"{what} {_size(int(p['bytes']))}", int(p["bytes"]), b,
                                   p["seconds"]))
    for k, v in check.hops.items():
        if baseline.hops.get(k):
            figs.append(Figure(f"hop {k}", 0, baseline.hops[k], v))
        elif profile is not None and profile.gpu.hop(k) > 0:
            figs.append(Figure(f"hop {k} (model)", 0, profile.gpu.hop(k), v))
    return Check(check.device, check.date, check.storage_mode, check.reads, check.writes,
                 f"{name} (baseline measured {baseline.date})", tolerance, figs, check.hops,
                 check.hop_error)


def compare(check: Check, profile: HardwareProfile, tolerance: float = TOLERANCE) -> Check:
    """`check` with each figure set against what `profile`'s model predicts for it."""
    hw = HardwareModel(profile)
    figs = [Figure(f"storage read {_size(p['bytes'])}", int(p["bytes"]),
                   read_time(profile.storage, int(p["bytes"])), p["seconds"])
            for p in check.reads]
    figs += [Figure(f"host->device copy {_size(p['bytes'])}", int(p["bytes"]),
                    hw.copy_time(int(p["bytes"])), p["seconds"]) for p in check.writes]
    # the model's own hop latencies (a hop it models as 0 has nothing to compare with)
    figs += [Figure(f"hop {k}", 0, profile.gpu.hop(k), v) for k, v in check.hops.items()
             if profile.gpu.hop(k) > 0]
    return Check(check.device, check.date, check.storage_mode, check.reads, check.writes,
                 profile.name, tolerance, figs, check.hops, check.hop_error)


def _size(n: int) -> str:
    return f"{n / MiB:g} MiB" if n >= MiB else f"{n / 1024:g} KiB"


def summary_lines(check: Check) -> list[str]:
    """A Markdown table of the figures and the verdict."""
    lines = [f"| figure | reference: {check.profile} | measured now | measured / "
             "reference | holds |", "|---|---:|---:|---:|---|"]
    for f in check.figures:
        ok = abs(f.ratio - 1) <= check.tolerance_of(f)
        lines.append(f"| {f.what} | {f.predicted_s * 1e6:.1f} us | {f.measured_s * 1e6:.1f} us | "
                     f"{f.ratio:.2f} | {'yes' if ok else 'NO'} |")
    if check.hop_error:
        lines.append(f"| hop gaps | - | not measured: {check.hop_error} | - | - |")
    return lines


def verdict(check: Check) -> str:
    """One sentence: does the profile still hold on this machine start, and what to do if not."""
    if check.holds:
        return (f"profile {check.profile} holds: every re-measured figure is within "
                f"{check.tolerance:.0%} of its prediction ({HOP_TOLERANCE:.0%} for hop gaps)")
    worst = max(check.drifted, key=lambda f: abs(f.ratio - 1))
    kinds = sorted({f.what.split(" ")[0] for f in check.drifted})
    name = check.profile.split(" ")[0]
    return (f"profile {check.profile} has drifted: {len(check.drifted)} of {len(check.figures)} "
            f"figures off by more than {check.tolerance:.0%} (hop gaps: {HOP_TOLERANCE:.0%}) - "
            f"{', '.join(kinds)}; worst "
            f"{worst.what}: {worst.ratio:.2f}x the reference; refit them with `weightstream "
            f"validate calibrate --refit CHECK.json --base {name} --out NEW.yaml`")


def refit(check: Check, profile: HardwareProfile, baseline: Check | None = None
          ) -> dict[str, tuple[float, str]]:
    """Profile field -> (value, what was measured) for the drifting figures. With the baseline
    of the profile's calibration, each field is scaled by how much its figure changed (the
    profile's values come from replays and stay consistent with its other fields); without
    it, the fields are the check's own fits. Where the check compared its figures (a
    `validate check --out` file), only what drifted is refitted: storage or copies when at
    least two of their figures did (one figure off alone is the disk's own scatter: a 64 KiB
    read measured 3.4x its baseline on one H200 start and 0.35x of that a minute later), and
    each hop whose gap did."""
    from validate.fit import fit_latency_bandwidth

    out: dict[str, tuple[float, str]] = {}
    drifted = drifted_kinds(check)
    pairs = (("storage", "reads", "storage.request_latency", "storage.read_bandwidth"),
             ("copies", "writes", "transfer.host_to_gpu_latency",
              "transfer.host_to_gpu_bandwidth"))
    for what, attr, lat_f, bw_f in pairs:
        if drifted is not None and what not in drifted:
            continue
        now = fit_latency_bandwidth([p["bytes"] for p in getattr(check, attr)],
                                    [p["seconds"] for p in getattr(check, attr)])
        how = f"re-measured by `validate check` {check.date} ({what}); {now.note()}"
        if baseline is None:
            out[lat_f] = (now.latency, how)
            out[bw_f] = (now.bandwidth, how)
            continue
        was = fit_latency_bandwidth([p["bytes"] for p in getattr(baseline, attr)],
                                    [p["seconds"] for p in getattr(baseline, attr)])
        sec, lat_n = lat_f.split(".")
        bw_n = bw_f.split(".")[1]
        old_lat = getattr(getattr(profile, sec), lat_n)
        old_bw = getattr(getattr(profile, sec), bw_n)
        lat_ratio = now.latency / was.latency if was.latency > 0 else 1.0
        bw_ratio = now.bandwidth / was.bandwidth
        out[lat_f] = (old_lat * lat_ratio, f"{how}: the calibrated value x {lat_ratio:.3g}, the "
                      f"change since the baseline of {baseline.date}")
        out[bw_f] = (old_bw * bw_ratio, f"{how}: the calibrated value x {bw_ratio:.3g}, the "
                     f"change since the baseline of {baseline.date}")
        t = profile.transfer
        if what == "copies" and t.host_to_texture_bandwidth is not None:
            # copies into images moved with copies into buffers (the check measures those)
            out["transfer.host_to_texture_bandwidth"] = (
                t.host_to_texture_bandwidth * bw_ratio, f"{how}: the calibrated value x "
                f"{bw_ratio:.3g}, as the buffer copies' bandwidth moved")
            if t.host_to_texture_latency is not None:
                out["transfer.host_to_texture_latency"] = (
                    t.host_to_texture_latency * lat_ratio, f"{how}: the calibrated value x "
                    f"{lat_ratio:.3g}, as the buffer copies' latency moved")
    out.update({k: v for k, v in _refit_hops(check, profile, baseline).items()
                if drifted is None or k.replace("gpu.sync_", "hop ") in drifted})
    return out


def drifted_kinds(check: Check) -> set[str] | None:
    """What `refit` refits: 'storage' and 'copies' when at least two of their figures drifted,
    'hop <kind>' for each drifted hop; None for a check that compared nothing (refit all)."""
    if not check.figures:
        return None
    count: dict[str, int] = {}
    out: set[str] = set()
    for f in check.drifted:
        if f.what.startswith("hop "):
            out.add(" ".join(f.what.split()[:2]))
        else:
            kind = "storage" if f.what.startswith("storage") else "copies"
            count[kind] = count.get(kind, 0) + 1
    return out | {k for k, n in count.items() if n >= 2}


def _refit_hops(check: Check, profile: HardwareProfile, baseline: Check | None
                ) -> dict[str, tuple[float, str]]:
    """The hop latencies (`gpu.sync_<hop>`), scaled by how much the probe's gaps changed since
    the baseline; without a baseline figure, a hop is the probe's mean gap."""
    out: dict[str, tuple[float, str]] = {}
    how = f"re-measured by `validate check` {check.date} (hop probe: {' '.join(HOP_PROBE)})"
    for kind, now in check.hops.items():
        was = baseline.hops.get(kind) if baseline is not None else None
        if not was:
            # without a baseline figure the probe's gap is the hop, except for the kernel hop,
            # which calibrate fits jointly with the launch overhead (part of the gap, or none,
            # is the hop): refitting it alone would count the launch twice
            if kind != "kernel":
                out[f"gpu.sync_{kind}"] = (now, f"{how}: the mean {kind} gap (slowest 5% out)")
            continue
        ratio = now / was
        out[f"gpu.sync_{kind}"] = (
            profile.gpu.hop(kind) * ratio, f"{how}: the calibrated value x {ratio:.3g}, the "
            f"change of the mean {kind} gap since the baseline of {baseline.date}")
    return out
