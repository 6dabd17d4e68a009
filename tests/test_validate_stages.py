"""The per-stage calibration pieces without a device: stage times and effective times on hand
checked traces, each stage's fit recovering the parameters a trace was simulated with, the
drift check's comparison and refit, the ICD registration hints, the zoo case budgets and the
replay reader's parts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sim import plan, simulate
from validate.stagefit import EFFICIENCY_GRID, fit_all, fit_line
from validate.stages import StageOp, hop_latencies, stage_ops

R, C, T, K, F = 20e-6, 40e-6, 10e-6, 30e-6, 50e-6


def true_profile(toy):
    """The toy profile with every stage parameter a fit can recover set to a known value."""
    g = replace(toy.gpu, sync_read=R, sync_copy=C, sync_transform=T, sync_kernel=K, sync_free=F,
                kernel_launch_overhead=7e-6, compute_efficiency=EFFICIENCY_GRID[20],
                compute_memory_overlap=1.0, sync_latency=0.0)
    st = replace(toy.storage, request_latency=60e-6, read_bandwidth=2e9, queue_depth=4,
                 max_request_size=1 << 30)
    tr = replace(toy.transfer, host_to_gpu_latency=3e-6, host_to_gpu_bandwidth=20e9,
                 transform_latency=12e-6, transform_bandwidth=100e9)
    return replace(toy, gpu=g, storage=st, transfer=tr)


def layers(n=12):
    from workloads import Op, Tensor, chain, single

    sizes = [4 << 10, 64 << 10, 1 << 20, 8 << 20]
    return single(chain("cal", [Op(f"l{i}", "linear", int(3e8 * (i % 5 + 1)),
                                   (Tensor(f"cal/w{i}", (sizes[i % 4] // 2,), "fp16"),),
                                   4096, 4096) for i in range(n)]))


def test_each_stage_fit_recovers_what_the_trace_was_simulated_with(toy_profile):
    p = true_profile(toy_profile)
    wl = layers()
    runs = []
    for pol, path in (("sequential", "via_buffer"), ("sequential", "direct"),
                      ("preload", "via_buffer")):
        s = plan(pol, wl, p, None, path=path)
        runs.append((s, stage_ops(s, simulate(s, p).trace)))
    # a start that knows none of it: the toy's own figures. (Frees are host events that only a
    # replay records, so the free hop, and the read hop behind it, are not in a simulated trace.)
    res = {k: v for r in fit_all(runs, toy_profile) for k, v in r.values.items()}
    for path, want in (("gpu.sync_copy", C), ("gpu.sync_transform", T),
                       ("storage.request_latency", 60e-6),
                       ("storage.read_bandwidth", 2e9), ("transfer.host_to_gpu_latency", 3e-6),
                       ("transfer.host_to_gpu_bandwidth", 20e9),
                       ("transfer.transform_latency", 12e-6),
                       ("transfer.transform_bandwidth", 100e9),
                       ("gpu.compute_efficiency", EFFICIENCY_GRID[20])):
        assert res[path] == pytest.approx(want, rel=1e-6), path
    # kernels: the kernel hop and the launch overhead trade off only where no kernel waited
    # for a load; their sum after a load is exact
    assert res["gpu.sync_kernel"] + res["gpu.kernel_launch_overhead"] == pytest.approx(
        K + 7e-6, rel=1e-6)


def test_the_kernel_fit_finds_a_host_issue_interval_where_launches_hide(toy_profile):
    """Kernels the host issues one per 80 us, 2 us of device launch each: short kernels run
    80 us apart, a short one after a long one follows it at once. The fit recovers both from a
    simulated trace; with no issue interval in the trace it sets none."""
    from workloads import Op, Tensor, chain, single

    p = true_profile(toy_profile)
    flops = [6 * 10**7 if i % 10 == 9 else 2 * 10**5 for i in range(40)]  # ~0.2 ms and ~3 us
    wl = single(chain("mix", [Op(f"l{i}", "linear", f, (Tensor(f"mix/w{i}", (512,), "fp16"),),
                                 64, 64) for i, f in enumerate(flops)]))
    for interval in (80e-6, 0.0):
        q = replace(p, gpu=replace(p.gpu, kernel_launch_overhead=2e-6,
                                   kernel_issue_interval=interval))
        s = plan("preload", wl, q, None, path="via_buffer")
        runs = [(s, stage_ops(s, simulate(s, q).trace))]
        kernels = next(r for r in fit_all(runs, q) if r.stage == "kernels")
        if interval:
            assert kernels.values["gpu.kernel_issue_interval"] == pytest.approx(interval,
                                                                              rel=1e-6)
            assert kernels.values["gpu.kernel_launch_overhead"] == pytest.approx(2e-6,
                                                                              abs=1e-7)
            assert "host issue interval 80 us (1 x the median spacing" in kernels.how
        else:
            assert "gpu.kernel_issue_interval" not in kernels.values
        assert kernels.fit_mape < 0.01 and kernels.check_mape < 0.01


def test_launch_bound_kernels_leave_the_compute_efficiency_where_it_was(toy_profile):
    """Kernels whose roofline is a sliver of their time fit every efficiency above some floor
    about as well: the kernel fit then does not set it (the microbenchmark's value stays) and
    says which efficiencies fit; kernels that are not launch-bound set it (test above)."""
    from workloads import Op, Tensor, chain, single

    p = true_profile(toy_profile)
    p = replace(p, gpu=replace(p.gpu, kernel_launch_overhead=80e-6))
    wl = single(chain("tiny", [Op(f"l{i}", "linear", 2000 * (i % 3 + 1),
                                  (Tensor(f"tiny/w{i}", (1024,), "fp16"),), 64, 64)
                               for i in range(12)]))
    runs = []
    for pol, path in (("sequential", "via_buffer"), ("preload", "via_buffer")):
        s = plan(pol, wl, p, None, path=path)
        runs.append((s, stage_ops(s, simulate(s, p).trace)))
    start = replace(toy_profile, gpu=replace(toy_profile.gpu, compute_efficiency=0.77))
    kernels = next(r for r in fit_all(runs, start) if r.stage == "kernels")
    assert "gpu.compute_efficiency" not in kernels.values
    assert "so it stays at 0.77" in kernels.how
    assert "(launch-bound kernels: the replays bound it from below only)" in kernels.how
    # the launch overhead and the kernel hop still come out of the same kernels
    assert kernels.values["gpu.kernel_launch_overhead"] + kernels.values["gpu.sync_kernel"] == \
        pytest.approx(80e-6 + K, rel=1e-3)
    assert kernels.fit_mape < 0.01


def test_effective_time_adds_only_the_gap_the_model_holds_nowhere_else():
    # a copy that waited 100 us after its read; the model's copy hop is 40 us
    op = StageOp("copy", 3, "via_buffer/texture", 1 << 20, start=1.0001, end=1.0002,
                 unit_free=0.5, dep_end=1.0, hop="copy<-read", granted=None)
    hops = {"copy<-read": 40e-6}
    assert op.hop_gap == pytest.approx(100e-6)
    assert op.effective(hops) == pytest.approx(100e-6 + 60e-6)
    # a kernel queued behind another one: the whole gap is its launch
    k = StageOp("gpu", 4, "conv", 0, start=2.00005, end=2.00006, unit_free=2.0, dep_end=2.0,
                hop="kernel<-kernel", granted=None)
    assert k.effective(hops) == pytest.approx(60e-6)
    # memory granted late: the wait is the model's (its pool), not the stage's
    m = replace(op, granted=1.00009)
    assert m.hop_gap is None and m.effective(hops) == pytest.approx(110e-6)


def test_replay_oracle_predicts_each_op_by_its_mean_in_the_other_replays():
    from validate.compare import oracle_errors

    def op(res, step, start, end, unit_free=0.0, dep_end=0.0, hop=""):
        return StageOp(res, step, "k", 0, start, end, unit_free, dep_end, hop, None)

    hops = {"kernel<-load": 0.5}
    # the compared replay: a read of 2 s, a copy of 4 s, a kernel whose model-held launch gap
    # is 0.5 s (ready at max(8, 9 + 0.5); effective 11 - 9.5), and a free (no stage time)
    this = [op("storage", 0, 0, 2), op("copy", 0, 2, 6), op("gpu", 1, 10, 11, 8, 9,
                                                              "kernel<-load"),
            op("free", 2, 11, 11)]
    # other replays: reads of 1 and 3 s (mean 2: no error), copies of 2 and 4 s (mean 3), the
    # kernel only in one of them, effective 7 - (4 + 0.5) = 2.5 s
    a = [op("storage", 0, 0, 1), op("copy", 0, 1, 3), op("gpu", 1, 5, 7, 4, 4, "kernel<-load")]
    b = [op("storage", 0, 0, 3), op("copy", 0, 3, 7)]
    err = oracle_errors(this, [a, b], hops)
    assert set(err) == {"storage", "copy", "gpu"}
    assert err["storage"] == [0.0]
    assert err["copy"] == [pytest.approx(3 / 4 - 1)]
    assert err["gpu"] == [pytest.approx(2.5 / 1.5 - 1)]
    # an op no other replay has is not predicted; no other replay: no oracle
    assert oracle_errors(this, [b], hops).keys() == {"storage", "copy"}
    assert oracle_errors(this, [], hops) == {}


def test_hop_latencies_follow_the_profile(toy_profile):
    h = hop_latencies(toy_profile)
    assert h["read<-free"] == 0.0 and h["copy<-read"] == toy_profile.gpu.sync_latency
    h = hop_latencies(true_profile(toy_profile))
    assert h["read<-free"] == R and h["kernel<-load"] == K and h["kernel<-kernel"] == 0.0


def test_line_fit_goes_through_class_means_and_keeps_latency_non_negative():
    rng = np.random.default_rng(1)
    x = np.repeat([4e3, 6.4e4, 1e6, 1.6e7], 50)
    y = (5e-5 + x / 2e9) * rng.lognormal(0.0, 0.5, x.size)
    lat, bw = fit_line(list(zip(x, y, strict=True)), "mean")
    # the mean of a log-normal factor with sigma 0.5 is exp(0.125)
    assert lat == pytest.approx(5e-5 * np.exp(0.125), rel=0.15)
    assert bw == pytest.approx(2e9 / np.exp(0.125), rel=0.15)
    flat = fit_line([(b, 1e-5) for b in (1e3, 1e5, 1e7)], "median")
    assert flat[0] == pytest.approx(1e-5) and flat[1] >= 1e14


def test_check_against_baseline_and_refit_scales_the_profile(toy_profile):
    from validate.check import Check, against_baseline, refit

    def mk(t0, bw, lat, cbw):
        reads = [{"bytes": b, "seconds": t0 + b / bw} for b in (1 << 16, 1 << 20, 1 << 25)]
        writes = [{"bytes": b, "seconds": lat + b / cbw} for b in (1 << 16, 1 << 24)]
        return Check({"name": "d"}, "t", "O_DIRECT", reads, writes)

    base, now = mk(50e-6, 2e9, 2e-6, 50e9), mk(50e-6, 1e9, 2e-6, 50e9)
    c = against_baseline(now, base, "p")
    assert not c.holds and {f.what.split()[0] for f in c.drifted} == {"storage"}
    assert against_baseline(base, base, "p").holds
    vals = refit(now, toy_profile, base)
    assert vals["storage.read_bandwidth"][0] == pytest.approx(
        toy_profile.storage.read_bandwidth / 2, rel=1e-6)
    assert vals["transfer.host_to_gpu_bandwidth"][0] == pytest.approx(
        toy_profile.transfer.host_to_gpu_bandwidth, rel=1e-6)


def test_an_installed_but_unregistered_vendor_library_is_explained(tmp_path):
    from validate.device import registration_hints

    vendors, lib = tmp_path / "vendors", tmp_path / "lib"
    vendors.mkdir()
    lib.mkdir()
    (lib / "libnvidia-opencl.so.1").write_text("")
    (lib / "libpocl.so.2.12.0").write_text("")
    (vendors / "pocl.icd").write_text("libpocl.so.2.12.0\n")
    hints = registration_hints([vendors], [lib])
    assert len(hints) == 1 and "NVIDIA" in hints[0]
    assert f"echo libnvidia-opencl.so.1 | sudo tee {vendors / 'nvidia.icd'}" in hints[0]
    (vendors / "nvidia.icd").write_text("/usr/lib/libnvidia-opencl.so.1\n")
    assert registration_hints([vendors], [lib]) == []


def test_zoo_budgets_sit_above_the_least_a_layer_by_layer_run_needs():
    from hwprofiles import load_profile
    from sim.engine import simulate as sim
    from validate.cases import ZOO_CALIBRATION, ZOO_HELD_OUT, ZooCase, case_model, zoo_schedule
    from workloads import single

    p = load_profile("snapdragon-8-gen-3")
    names = [c.name for c in ZOO_HELD_OUT + ZOO_CALIBRATION]
    assert len(set(names)) == len(names)
    assert not {c.model for c in ZOO_HELD_OUT} & {c.model for c in ZOO_CALIBRATION}
    assert {c.policy for c in ZOO_HELD_OUT} == {"preload", "sequential", "pipeline", "flashmem"}
    c = ZooCase("mobilenetv2", "pipeline", 0.4)
    m = case_model(c)
    floor = sim(plan("sequential", single(m), replace(p, gpu=replace(
        p.gpu, prefers_texture=True)), None), p, record_trace=False).metrics.peak_memory_bytes
    s = zoo_schedule(c, p)
    assert s.budget_bytes == int(floor + 0.4 * m.weight_bytes)
    r = sim(s, p)
    assert r.metrics.feasible and r.metrics.peak_memory_bytes <= s.budget_bytes
    assert zoo_schedule(ZooCase("mobilenetv2", "preload", None), p).budget_bytes is None


def test_replay_reads_a_load_in_parts_of_a_real_file(tmp_path):
    from validate.reader import ALIGN, MIN_PART, BlobReader, aligned_array, write_blob_file

    path = tmp_path / "w.bin"
    n = 3 * MIN_PART + 5 * ALIGN
    write_blob_file(path, n)
    ref = np.fromfile(path, dtype=np.uint8)
    r = BlobReader(path, 4)
    try:
        for size in (ALIGN, MIN_PART + ALIGN, n):
            out = aligned_array(size)
            t0, t1 = r.read_parts(0, size, out)
            assert t1 >= t0 and np.array_equal(out[:size], ref[:size])
    finally:
        r.close()


def test_stage_ops_of_a_simulated_trace_match_its_intervals(toy_profile):
    p = true_profile(toy_profile)
    s = plan("sequential", layers(4), p, None)
    tr = simulate(s, p).trace
    ops = stage_ops(s, tr)
    assert sorted((o.resource, o.step) for o in ops if o.resource != "free") == sorted(
        (i.resource, i.step) for i in tr.intervals)


def test_replay_reads_scattered_rows_of_a_real_file(tmp_path):
    """A gathered load's rows: one aligned request per row at its own offset, each into its own
    aligned slot, whatever the queue depth."""
    from validate.reader import ALIGN, BlobReader, aligned_array, write_blob_file

    path = tmp_path / "w.bin"
    write_blob_file(path, 64 * ALIGN)
    ref = np.fromfile(path, dtype=np.uint8)
    offsets = [0, 5 * ALIGN, 17 * ALIGN, 40 * ALIGN]
    for depth in (1, 3):
        r = BlobReader(path, depth)
        try:
            out = aligned_array(len(offsets) * ALIGN)
            t0, t1 = r.read_scattered(offsets, 1536, out)  # a 1,536-byte row: one 4 KiB request
            assert t1 >= t0
            for i, off in enumerate(offsets):
                assert np.array_equal(out[i * ALIGN:(i + 1) * ALIGN], ref[off:off + ALIGN])
        finally:
            r.close()


def test_check_flags_and_refits_hop_gaps_that_drift(toy_profile):
    """The replay driver's hop gaps follow the host's speed: a start where every gap is 1.7x
    the baseline's (as on one H200 start) is flagged on the hops alone, and the refit scales
    each `gpu.sync_<hop>` by its change; a gap within 25% holds; a
    baseline from before the hop probe is compared with the profile's own hop model."""
    from dataclasses import replace

    from validate.check import Check, against_baseline, refit

    reads = [{"bytes": b, "seconds": 50e-6 + b / 2e9} for b in (1 << 16, 1 << 20, 1 << 25)]
    writes = [{"bytes": b, "seconds": 2e-6 + b / 50e9} for b in (1 << 16, 1 << 24)]
    gaps = {"read": 80e-6, "copy": 76e-6, "transform": 42e-6, "kernel": 64e-6, "free": 28e-6}
    base = Check({"name": "d"}, "t0", "O_DIRECT", reads, writes, hops=gaps)
    slow = Check({"name": "d"}, "t1", "O_DIRECT", reads, writes,
                 hops={k: 1.7 * v for k, v in gaps.items()})
    near = Check({"name": "d"}, "t1", "O_DIRECT", reads, writes,
                 hops={k: 1.2 * v for k, v in gaps.items()})
    c = against_baseline(slow, base, "p", profile=toy_profile)
    assert not c.holds and {f.what.split()[0] for f in c.drifted} == {"hop"}
    assert len(c.drifted) == 5
    assert against_baseline(near, base, "p", profile=toy_profile).holds
    prof = replace(toy_profile, gpu=replace(toy_profile.gpu, sync_read=83e-6, sync_copy=77e-6,
                                            sync_transform=40e-6, sync_free=48e-6))
    vals = refit(slow, prof, base)
    assert vals["gpu.sync_read"][0] == pytest.approx(1.7 * 83e-6)
    assert vals["gpu.sync_free"][0] == pytest.approx(1.7 * 48e-6)
    assert vals["gpu.sync_kernel"][0] == pytest.approx(1.7 * prof.gpu.hop("kernel"))
    old = Check({"name": "d"}, "t0", "O_DIRECT", reads, writes)  # no hop probe in the baseline
    c = against_baseline(slow, old, "p", profile=prof)
    assert {f.what for f in c.drifted} >= {"hop read (model)", "hop copy (model)"}
    fresh = refit(slow, prof, old)
    assert fresh["gpu.sync_read"][0] == pytest.approx(1.7 * 80e-6)
    assert "gpu.sync_kernel" not in fresh  # fitted with the launch overhead: not alone


def test_hop_probe_measures_every_hop_on_a_real_device():
    """The hop probe replays its fixed schedule on PoCL and returns a median gap for every hop
    kind, each well under a replay's length."""
    from validate.check import measure_hops
    from validate.device import open_device
    from validate.errors import ValidateError

    try:
        dev = open_device("pocl")
    except ValidateError as exc:
        pytest.skip(str(exc))
    hops = measure_hops(dev, reps=2)
    assert set(hops) == {"read", "copy", "transform", "kernel", "free"}
    assert all(0 <= v < 0.05 for v in hops.values()) and hops["read"] > 0


def test_refit_leaves_a_figure_that_drifted_alone_and_refits_what_drifted_together(toy_profile):
    """One storage figure off alone (a 64 KiB read at 3.4x, the rest held: one H200 start) is
    the disk's scatter, not a new disk: a check file that compared its figures refits nothing
    of storage then; two off together, it does; a hop is refitted when its own gap drifted."""
    from validate.check import Check, against_baseline, drifted_kinds, refit

    def mk(first, gaps):
        reads = [{"bytes": b, "seconds": (50e-6 + b / 2e9) * (first if b == 1 << 16 else 1)}
                 for b in (1 << 16, 1 << 20, 1 << 23, 1 << 25)]
        writes = [{"bytes": b, "seconds": 2e-6 + b / 50e9} for b in (1 << 16, 1 << 24)]
        return Check({"name": "d"}, "t", "O_DIRECT", reads, writes, hops=gaps)

    gaps = {"read": 80e-6, "copy": 76e-6}
    base = mk(1.0, gaps)
    one = against_baseline(mk(3.4, {"read": 130e-6, "copy": 80e-6}), base, "p")
    assert drifted_kinds(one) == {"hop read"}
    vals = refit(one, toy_profile, base)
    assert set(vals) == {"gpu.sync_read"}
    slow = base.reads[:1] + [{"bytes": p["bytes"], "seconds": 2 * p["seconds"]}
                             for p in base.reads[1:]]
    two = against_baseline(Check({"name": "d"}, "t", "O_DIRECT", slow, base.writes,
                                 hops=gaps), base, "p")
    assert drifted_kinds(two) == {"storage"}
    assert set(refit(two, toy_profile, base)) == {"storage.request_latency",
                                                  "storage.read_bandwidth"}


def test_copies_into_images_get_their_own_line(toy_profile):
    """A direct load to a texture is copied straight into an image, which the driver lays out
    as it writes: a profile may give those copies their own latency and bandwidth. The engine
    times them by that line (buffer copies keep theirs), and the stage fit recovers both lines
    from a trace simulated with them."""
    from sim.hardware import HardwareModel

    p = true_profile(toy_profile)
    p = replace(p, gpu=replace(p.gpu, prefers_texture=True),
                transfer=replace(p.transfer, host_to_texture_latency=9e-6,
                                 host_to_texture_bandwidth=8e9))
    hw = HardwareModel(p)
    n = 1 << 20
    assert hw.copy_time(n, "texture") == pytest.approx(9e-6 + n / 8e9)
    assert hw.copy_time(n) == pytest.approx(3e-6 + n / 20e9)
    assert hw.load_stages(n, "direct", "texture")["copy"] == pytest.approx(9e-6 + n / 8e9)
    assert hw.load_stages(n, "via_buffer", "texture")["copy"] == pytest.approx(3e-6 + n / 20e9)
    assert hw.load_stages(n, "direct", "buffer")["copy"] == pytest.approx(3e-6 + n / 20e9)
    wl = layers()
    runs = []
    for pol, path in (("sequential", "via_buffer"), ("sequential", "direct"),
                      ("preload", "via_buffer"), ("preload", "direct")):
        s = plan(pol, wl, p, None, path=path)
        runs.append((s, stage_ops(s, simulate(s, p).trace)))
    assert any(o.kind == "direct/texture" for _, ops in runs for o in ops if o.resource == "copy")
    res = {k: v for r in fit_all(runs, toy_profile) for k, v in r.values.items()}
    for path, want in (("transfer.host_to_gpu_latency", 3e-6),
                       ("transfer.host_to_gpu_bandwidth", 20e9),
                       ("transfer.host_to_texture_latency", 9e-6),
                       ("transfer.host_to_texture_bandwidth", 8e9)):
        assert res[path] == pytest.approx(want, rel=1e-6), path


def test_a_check_whose_hop_probe_cannot_run_says_so(monkeypatch):
    """The hop probe failing on a device (too small for its schedule, say) leaves the storage and
    copy figures standing and says in the table that the hops were not measured, and why."""
    import validate.check as chk
    from validate.device import open_device
    from validate.errors import ValidateError

    try:
        dev = open_device("pocl")
    except ValidateError as exc:
        pytest.skip(str(exc))

    def fail(*a, **k):
        raise ValidateError("load step 3 needs one allocation of 9 bytes, more than 8")

    monkeypatch.setattr(chk, "measure_hops", fail)
    c = chk.measure(dev, reps=2)
    assert c.reads and c.writes and not c.hops
    from hwprofiles import load_profile

    lines = chk.summary_lines(chk.compare(c, load_profile("pocl-cpu")))
    assert any("not measured: load step 3" in line for line in lines)


@pytest.mark.parametrize("change, needle", [
    ({"reads": []}, "reads: expected at least two {bytes, seconds} points"),
    ({"writes": [{"bytes": -1, "seconds": 1e-5}, {"bytes": 4096, "seconds": 2e-6}]},
     "writes: expected at least two"),
    ({"hops": {"read": "fast"}}, "hops: expected {hop: seconds}"),
    ({"hops": {"warp": 1e-4}}, "hops among read, copy, transform, kernel, free"),
    ({"bogus": 1}, "unexpected keyword argument 'bogus'"),
])
def test_refit_from_a_malformed_check_file_names_the_problem(tmp_path, change, needle):
    """`calibrate --refit` from a check file that cannot be used: exit 2, the field named, no
    traceback, no profile written."""
    import json

    from click.testing import CliRunner

    from experiments.cli import main

    d = {"format": "weightstream-check", "device": {}, "date": "x", "storage_mode": "m",
         "reads": [{"bytes": 65536, "seconds": 1e-4}, {"bytes": 1 << 20, "seconds": 1e-3}],
         "writes": [{"bytes": 65536, "seconds": 3e-6}, {"bytes": 1 << 20, "seconds": 2e-5}],
         "hops": {"read": 1e-4}}
    d.update(change)
    f = tmp_path / "check.json"
    f.write_text(json.dumps(d))
    out = tmp_path / "new.yaml"
    r = CliRunner().invoke(main, ["validate", "calibrate", "--refit", str(f), "--base",
                                  "calibrated-nvidia-h200", "--out", str(out)])
    assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_the_both_calibration_set_is_the_zoo_set_and_the_synthetic_nets():
    from validate.cases import CALIBRATION, ZOO_CALIBRATION
    from validate.errors import ValidateError
    from validate.workflow import CALIBRATION_SETS, pick

    assert pick(CALIBRATION_SETS, "both") == [*ZOO_CALIBRATION, *CALIBRATION]
    with pytest.raises(ValidateError, match="valid sets: zoo, synthetic, both"):
        pick(CALIBRATION_SETS, "bogus")
