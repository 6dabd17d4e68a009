"""validate: the whole loop (microbench -> calibrate -> replay -> compare) on a real OpenCL
device (PoCL on the CPU in CI), with small models and quick settings; skipped with the reason
when no OpenCL device exists. Fits are also checked against synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from experiments.cli import main
from hwprofiles import check_file, load_profile
from hwprofiles.schema import StorageSpec
from hwprofiles.storage import read_time
from sim.schedule import Schedule, validate_schedule
from validate.fit import fit_bandwidth, fit_latency_bandwidth, fit_storage

SIZE = 0.12


@pytest.fixture(scope="module")
def device():
    from validate.device import open_device
    from validate.errors import ValidateError

    try:
        return open_device("pocl")
    except ValidateError:
        try:
            return open_device(None)
        except ValidateError as exc:
            pytest.skip(str(exc))


@pytest.fixture(scope="module")
def bench(device, tmp_path_factory):
    from validate.microbench import run_microbench

    mb = run_microbench(device, quick=True)
    path = tmp_path_factory.mktemp("mb") / "mb.json"
    mb.save(path)
    return mb, path


@pytest.fixture(scope="module")
def calibrated(device, bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "calibrated-test.yaml"
    r = CliRunner().invoke(main, ["validate", "calibrate", "--microbench", str(bench[1]),
                                  "--device", device.info.spec, "--out", str(out),
                                  "--set", "synthetic", "--size", str(SIZE), "--repeats", "1",
                                  "--report", str(out.with_suffix(".md"))])
    assert r.exit_code == 0, r.output
    return out


# --- without a device ------------------------------------------------------------------------
def test_fit_latency_bandwidth_recovers_parameters():
    x = np.array([4e3, 6.4e4, 1e6, 4e6, 1.6e7])
    f = fit_latency_bandwidth(x, 20e-6 + x / 5e9)
    assert f.latency == pytest.approx(20e-6, rel=1e-6)
    assert f.bandwidth == pytest.approx(5e9, rel=1e-6)
    assert fit_bandwidth(x, x / 2e9).bandwidth == pytest.approx(2e9)


def test_fit_storage_recovers_request_model():
    pts = []
    for qd in (1, 4):
        for size in (4096, 65536, 1 << 20):
            total = size * 16
            spec = StorageSpec("t", 2e9, 50e-6, qd, size)
            pts.append({"size": size, "qd": qd, "total": total,
                        "seconds": read_time(spec, total)})
    f = fit_storage(pts)
    assert f.read_bandwidth == pytest.approx(2e9, rel=0.05)
    assert f.request_latency == pytest.approx(50e-6, rel=0.1)
    assert f.residual < 0.02


def test_scaled_schedule_stays_valid():
    from validate.cases import HELD_OUT, make_schedule
    from validate.replay import scale_schedule

    s = make_schedule(HELD_OUT[2], load_profile("snapdragon-8-gen-3"), 1.0)
    small = scale_schedule(s, 0.1)
    validate_schedule(small)
    assert small.streamed_bytes < s.streamed_bytes * 0.11


def test_unknown_device_is_a_clear_error():
    r = CliRunner().invoke(main, ["validate", "microbench", "--device", "no-such-device-xyz"])
    assert r.exit_code == 2
    assert "error:" in r.output and ("no OpenCL" in r.output)
    assert "Traceback" not in r.output


# --- on a device --------------------------------------------------------------------------------
def test_microbench_measures_every_stage(bench):
    from validate.microbench import Microbench

    mb, path = bench
    again = Microbench.load(path)
    assert again.device["name"] == mb.device["name"]
    assert mb.storage_mode in ("O_DIRECT", "fadvise-dontneed", "page-cache")
    for pts in (mb.write_buffer, mb.read_buffer, mb.storage, mb.compute["fp32"]):
        assert pts and all(p["seconds"] > 0 for p in pts)
    if mb.device["image_support"]:
        assert mb.write_image2d and mb.write_image2d_array and mb.transform and mb.read_image2d
    assert mb.launch["period_s"] > 0 and mb.peak["fp32"] > 0


def test_calibrated_profile_is_valid_and_sourced(calibrated, device):
    assert check_file(str(calibrated)) == []
    p = load_profile(str(calibrated))
    src = p.sources["storage.read_bandwidth"].text
    assert device.info.name in src and "check MAPE" in src
    assert "per-op fit" in p.sources["transfer.transform_bandwidth"].text or \
        not device.info.image_support
    assert "per-op fit" in p.sources["gpu.kernel_launch_overhead"].text
    assert "kernel hop" in p.sources["gpu.sync_kernel"].text
    # the replays are driven by one host thread: its hops queue there, and each is fitted on
    # the gaps that nothing else shared
    assert p.gpu.sync_serial and "one host thread" in p.sources["gpu.sync_serial"].text
    for hop in ("copy", "free"):
        assert "hop gaps" in p.sources[f"gpu.sync_{hop}"].text
        assert "no other stage started inside" in p.sources[f"gpu.sync_{hop}"].text
    assert p.transfer.zero_copy is False
    report = calibrated.with_suffix(".md").read_text()
    assert "check MAPE" in report and "End-to-end check on the calibration replays" in report
    # the machine start's own storage and copy figures are kept as the drift baseline
    from validate.check import Check, baseline_path

    base = Check.load(baseline_path(calibrated))
    assert len(base.reads) == 4 and len(base.writes) == 3
    assert "not measured" in p.sources["gpu.prefers_texture"].text


def test_replay_cli_emits_a_trace_within_budget(calibrated, device, tmp_path):
    from validate.cases import HELD_OUT, make_schedule

    s = make_schedule(HELD_OUT[2], load_profile(str(calibrated)), SIZE)  # pipeline, tight
    path = tmp_path / "s.json"
    s.save(path)
    out = tmp_path / "trace.json"
    r = CliRunner().invoke(main, ["validate", "replay", str(path), "--device", device.info.spec,
                                  "--out", str(out), "--scale", "0.5",
                                  "--chrome", str(tmp_path / "c.json")])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["latency_s"] > 0
    assert summary["peak_memory_bytes"] <= summary["budget_bytes"]
    from validate.replay import load_trace

    tr = load_trace(out)
    assert {i.resource for i in tr.intervals} >= {"storage", "copy", "gpu"}
    assert all(i.end >= i.start for i in tr.intervals)
    computes = Schedule.load(path).computes
    assert len([i for i in tr.intervals if i.resource == "gpu"]) == len(computes)
    # dependencies hold in measured time: a compute starts after its weights' loads end
    ends = {}
    for i in tr.intervals:
        ends[i.step] = max(ends.get(i.step, 0.0), i.end)
    for i in tr.intervals:
        if i.resource == "gpu":
            st = s.steps[i.step]
            for a in st.after:
                assert i.start >= ends[a] - 1e-4


def test_compare_reports_error_on_held_out_schedules(calibrated, device, tmp_path):
    from validate.cases import HELD_OUT
    from validate.compare import mape, markdown, plot_overlay, run_cases

    prof = load_profile(str(calibrated))
    res = run_cases(device, prof, HELD_OUT[:3], SIZE, repeats=1)
    assert all(r.sim_s > 0 and r.measured_s > 0 for r in res)
    text = markdown(res, prof, device.info.to_dict(), "t")
    assert "End-to-end MAPE" in text and np.isfinite(mape(res))
    # one replay each: nothing to predict it with, so no replay oracle
    assert all(r.oracle_e2e is None and not r.oracle_err for r in res)
    assert "Replay oracle" not in text
    plot_overlay(res, tmp_path / "o.png")
    assert (tmp_path / "o.png").stat().st_size > 1000
    # every stage of every replayed op is compared
    for r in res:
        assert set(r.op_err) >= {"storage", "copy", "gpu"}
        assert all(np.isfinite(e) for v in r.op_err.values() for e in v)


def test_check_says_whether_the_profile_holds(calibrated, device, tmp_path):
    out = tmp_path / "check.json"
    r = CliRunner().invoke(main, ["validate", "check", "--device", device.info.spec,
                                  "--profile", str(calibrated), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "baseline measured" in r.output and ("holds" in r.output or "drifted" in r.output)
    from validate.check import Check

    c = Check.load(out)
    assert len([f for f in c.figures if not f.what.startswith("hop")]) == 7
    assert {f.what for f in c.figures if f.what.startswith("hop")} == {
        f"hop {h}" for h in ("read", "copy", "transform", "kernel", "free")}
    assert all(f.measured_s >= 0 and f.predicted_s > 0 for f in c.figures)
    # --refit writes a valid profile: what drifted cites the check, the rest is unchanged
    new = tmp_path / "refit.yaml"
    r = CliRunner().invoke(main, ["validate", "calibrate", "--refit", str(out), "--base",
                                  str(calibrated), "--out", str(new)])
    assert r.exit_code == 0, r.output
    assert check_file(str(new)) == []
    from validate.check import drifted_kinds

    p, old = load_profile(str(new)), load_profile(str(calibrated))
    kinds = drifted_kinds(c)
    fields = {"storage": ("storage", "read_bandwidth"),
              "copies": ("transfer", "host_to_gpu_bandwidth"),
              **{f"hop {h}": ("gpu", f"sync_{h}") for h in ("read", "copy", "transform",
                                                           "kernel", "free")}}
    for kind, (sec, attr) in fields.items():
        if kind in kinds:
            assert "validate check" in p.sources[f"{sec}.{attr}"].text
        else:
            assert getattr(getattr(p, sec), attr) == getattr(getattr(old, sec), attr)


def test_zoo_compare_on_a_real_model(calibrated, device, tmp_path):
    r = CliRunner().invoke(main, ["validate", "compare", "--device", device.info.spec,
                                  "--profile", str(calibrated), "--set", "zoo", "--models",
                                  "mobilenetv2", "--scale", "0.05", "--repeats", "2",
                                  "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "results.json").read_text())
    zoo = data["sets"]["zoo"]
    cases = zoo["cases"]
    assert len(cases) == 6 and {c["case"].split("/")[1] for c in cases} == {
        "preload", "sequential", "pipeline", "flashmem"}
    report = (tmp_path / "report.md").read_text()
    assert "Sync / dispatch gaps" in report
    # two replays each: the median is the slower one (the upper middle), and the faster one
    # predicts it, so the oracle's end-to-end error is never above zero
    for c in cases:
        assert c["measured_s"] == max(c["runs_s"])
        assert c["oracle_error"] == pytest.approx(min(c["runs_s"]) / c["measured_s"] - 1)
        assert c["oracle_error"] <= 0
        assert set(c["oracle_op_mape"]) >= {"storage", "copy", "gpu"}
    assert zoo["oracle_mape"] == pytest.approx(np.mean([-c["oracle_error"] for c in cases]))
    assert f"End-to-end MAPE {zoo['oracle_mape']:.1%}; per-op storage" in report
    r = CliRunner().invoke(main, ["validate", "summary", str(tmp_path), "--out",
                                  str(tmp_path / "s.md")])
    assert r.exit_code == 0, r.output
    assert f"| {zoo['oracle_mape']:.1%}; " in (tmp_path / "s.md").read_text()


def test_bad_case_set_and_model_are_clear_errors(calibrated):
    for args in (["--set", "bogus"], ["--set", "zoo", "--models", "lenet"]):
        r = CliRunner().invoke(main, ["validate", "compare", "--device", "pocl", "--profile",
                                      str(calibrated), *args])
        assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output


def test_replay_runs_with_a_short_thread_switch_interval_on_gpus(calibrated, device,
                                                                  monkeypatch):
    """A read's end is stamped only once its thread holds the GIL again: on a GPU the timed run
    lowers Python's switch interval (5 ms by default) to SWITCH_INTERVAL; on a CPU device (PoCL,
    whose kernels keep the host's cores busy) it keeps the interpreter's own. Either way the
    interval is what it was after the run, also when the run fails."""
    import sys
    from dataclasses import replace

    import validate.replay as rp
    from validate.cases import HELD_OUT, make_schedule
    from validate.errors import ValidateError

    gpu = replace(device.info, device_type="GPU")
    cpu = replace(device.info, device_type="CPU")
    assert rp.switch_interval_for(gpu) == rp.SWITCH_INTERVAL < sys.getswitchinterval()
    assert rp.switch_interval_for(cpu) is None
    s = make_schedule(HELD_OUT[2], load_profile(str(calibrated)), SIZE)
    seen = []
    run = rp._Replay._run

    def spy(self):
        seen.append(sys.getswitchinterval())
        return run(self)

    monkeypatch.setattr(rp._Replay, "_run", spy)
    before = sys.getswitchinterval()
    rp.replay(device, s, rp.ReplayOptions(scale=0.5))
    want = rp.switch_interval_for(device.info)
    assert seen == [pytest.approx(before if want is None else want)]
    assert sys.getswitchinterval() == before
    monkeypatch.setattr(rp, "switch_interval_for", lambda info: rp.SWITCH_INTERVAL)
    rp.replay(device, s, rp.ReplayOptions(scale=0.5))
    assert seen[-1] == pytest.approx(rp.SWITCH_INTERVAL) and sys.getswitchinterval() == before

    def boom(self):
        raise ValidateError("stalled")

    monkeypatch.setattr(rp._Replay, "_run", boom)
    with pytest.raises(ValidateError):
        rp.replay(device, s, rp.ReplayOptions(scale=0.5))
    assert sys.getswitchinterval() == before


def test_calibration_report_says_how_the_kernel_fit_set_the_efficiency(calibrated):
    """The report names the efficiencies that fit the calibration kernels, and whether they set
    the profile's (launch-bound kernels leave the microbenchmark's)."""
    report = calibrated.with_suffix(".md").read_text()
    line = next(x for x in report.splitlines() if x.startswith("Kernel fit: "))
    assert "fit within 1% (absolute) of the best per-op MAPE" in line
    efficiency_set = "compute_efficiency = " in report.split("| kernels |")[1].split("\n")[0]
    assert efficiency_set == ("so it stays at" not in line)
