"""gpu.sync_serial: the sync hops are one driver thread's work, done one at a time in order of
arrival, so hops that fall due together queue. Hand-checked on the toy profile; the evaluator
hands such runs to the engine; the hop fit takes the driver's own cost from the gaps that
overlapped no other."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim import plan, simulate
from sim.errors import SimError
from validate.stagefit import fit_hops
from validate.stages import gaps_by_hop, stage_ops

READ, COPY, XFORM = 0.1, 0.5, 0.25  # toy profile with 10 GB/s flash, one 1 GB fp16 layer
COMPUTE = 1e-3 + 4000 / 1e12


def hops(p, serial: bool = True, **kw):
    return replace(p, gpu=replace(p.gpu, sync_serial=serial,
                                  **{f"sync_{k}": v for k, v in kw.items()}))


def reads(r):
    return sorted(i.start for i in r.trace.intervals if i.resource == "storage")


def test_default_is_off_and_left_out(toy_profile):
    assert toy_profile.gpu.sync_serial is False
    assert "gpu.sync_serial" not in toy_profile.to_dict()  # digests unchanged
    assert hops(toy_profile, read=0.1).to_dict()["gpu.sync_serial"] is True


def test_hops_that_fall_due_together_queue_on_the_driver(fast_flash, three_layers):
    # pipeline of depth 3: the three reads are due at t=0, each after a read hop R longer than
    # a read. As delays of their own all three hops end at R and the reads queue on storage (R, R + READ,
    # R + 2 READ); on one driver thread they end at R, 2R, 3R and so do the reads' starts
    R = 0.3
    s = plan("pipeline", three_layers, fast_flash, depth=3)
    assert reads(simulate(s, hops(fast_flash, False, read=R))) == pytest.approx(
        [R, R + READ, R + 2 * READ], rel=1e-12)
    r = simulate(s, hops(fast_flash, read=R))
    assert reads(r) == pytest.approx([R, 2 * R, 3 * R], rel=1e-12)
    assert r.metrics.executor == "simpy" and "sync_serial" in r.metrics.executor_note


def test_hops_one_at_a_time_cost_nothing_more(fast_flash, three_layers):
    # sequential: every hop waits for the step before it, so none overlaps another and the
    # driver never queues: per layer R + READ + C + COPY + T + XFORM + K + COMPUTE + F
    R, C, T, K, F = 0.001, 0.002, 0.004, 0.008, 0.016
    s = plan("sequential", three_layers, fast_flash)
    serial = simulate(s, hops(fast_flash, read=R, copy=C, transform=T, kernel=K, free=F))
    parallel = simulate(s, hops(fast_flash, False, read=R, copy=C, transform=T, kernel=K,
                                free=F))
    layer = R + READ + C + COPY + T + XFORM + K + COMPUTE
    assert serial.metrics.latency_s == pytest.approx(3 * layer + 2 * F, rel=1e-12)
    assert serial.metrics.latency_s == pytest.approx(parallel.metrics.latency_s, rel=1e-12)


@pytest.mark.parametrize("policy", ["preload", "sequential", "pipeline", "flashmem"])
def test_queueing_only_delays(policy, fast_flash, three_layers):
    # waiting for the driver can only push work later than hops as delays of their own, and
    # the budget still holds
    h = dict(read=0.02, copy=0.03, transform=0.01, kernel=0.005, free=0.04)
    s = plan(policy, three_layers, fast_flash, fast_flash.memory_limit())
    serial = simulate(s, hops(fast_flash, **h)).metrics
    parallel = simulate(s, hops(fast_flash, False, **h)).metrics
    assert serial.latency_s >= parallel.latency_s * (1 - 1e-12)
    assert serial.peak_memory_bytes <= s.budget_bytes


def test_the_evaluator_refuses_what_only_the_engine_answers(fast_flash, three_layers):
    s = plan("preload", three_layers, fast_flash)
    with pytest.raises(SimError, match="sync_serial"):
        simulate(s, hops(fast_flash, read=0.3), engine="evaluator")
    # with no hop latency there is nothing to queue: the evaluator runs it
    assert simulate(s, hops(fast_flash), engine="evaluator").metrics.executor == "evaluator"


def test_the_fit_takes_the_hop_from_gaps_with_nothing_else_inside(fast_flash, three_layers):
    # traces simulated with serial hops: in a 3-deep pipeline the first copy's hop (due at
    # R + READ) waits behind the dispatch of reads 2 and 3 (R to 3R) and its gap is 3R + C -
    # (R + READ); read 2 and 3 start inside it, so the fit leaves it out and takes C from the
    # gaps with nothing inside
    R, C = 0.3, 0.2
    p = hops(fast_flash, read=R, copy=C)
    runs = []
    for policy, kw in (("sequential", {}), ("pipeline", {"depth": 3})):
        s = plan(policy, three_layers, p, **kw)
        runs.append(stage_ops(s, simulate(s, p).trace))
    every = sorted(g for ops in runs for g in gaps_by_hop(ops).get("copy", []))
    assert every == pytest.approx([C] * 3 + [3 * R + C - (R + READ)], rel=1e-9)
    alone = [g for ops in runs for g in gaps_by_hop(ops, alone=True).get("copy", [])]
    assert alone == pytest.approx([C] * 3, rel=1e-9)
    fitted = {k: v for r in fit_hops(runs, serial=True) for k, v in r.values.items()}
    assert fitted["gpu.sync_copy"] == pytest.approx(C, rel=1e-9)


def test_a_kernel_launch_is_the_drivers_work_too(fast_flash):
    """c0 ends at T; the free after it (hop F) and kernel c1's launch both fall due then. On
    one driver thread the free, listed first, goes first and c1 starts F later; as delays of
    their own c1 starts at T. Listed the other way round, the launch goes first and the free
    is done a launch later."""
    from sim.schedule import Compute, Free, InvocationInfo, Load, Schedule

    GB, F, L = 10**9, 0.2, 0.01
    zc = replace(fast_flash, transfer=replace(fast_flash.transfer, zero_copy=True),
                 gpu=replace(fast_flash.gpu, kernel_launch_overhead=L))

    def schedule(free_first: bool) -> Schedule:
        s = Schedule("hand", "m", "toy", None, {"a": GB}, [InvocationInfo("m", "m")])
        la = s.add(Load, tensors=["a"], bytes=GB, path="direct")
        c0 = s.add(Compute, op="c0", invocation=0, flops=10**11, weights=["a"],
                   output_bytes=8, after=[la])
        if free_first:
            s.add(Free, tensors=["a"], after=[c0])
        s.add(Compute, op="c1", invocation=0, flops=10**11, output_bytes=8, inputs=[c0])
        if not free_first:
            s.add(Free, tensors=["a"], after=[c0])
        return s

    def kernels(s, p):
        return [x for i in simulate(s, p).trace.intervals if i.resource == "gpu"
                for x in (i.start, i.end)]

    serial, parallel = hops(zc, free=F), hops(zc, False, free=F)
    a0, t, b0, b1 = kernels(schedule(True), parallel)
    assert a0 == pytest.approx(READ, rel=1e-12)  # its launch on the idle driver: no wait
    assert b0 == pytest.approx(t, rel=1e-12) and b1 - b0 > L
    assert kernels(schedule(True), serial) == pytest.approx([a0, t, t + F, t + F + b1 - b0],
                                                            rel=1e-12)
    assert kernels(schedule(False), serial) == pytest.approx([a0, t, b0, b1], rel=1e-12)


def test_waiting_for_the_runtime_init_is_not_driver_work(fast_flash, three_layers):
    # llama.cpp's OpenCL backend builds its programs before reading any weight: every load of
    # a 3-deep pipeline waits for the init (T), then the reads queue on storage. Only hops
    # occupy the driver, so the serial driver changes nothing here (were the init waits
    # driver work, the loads would start T apart)
    from hwprofiles.loader import load_runtime
    from sim.flow import init_cost

    rt = load_runtime("llama.cpp-opencl")
    s = plan("pipeline", three_layers, fast_flash, depth=3)
    T = init_cost(s, rt)[0]
    assert rt.init_order == "before_load" and T > 0.3
    runs = [simulate(s, hops(fast_flash, serial, read=0.3), runtime=rt) for serial in (True, False)]
    assert reads(runs[0]) == pytest.approx([T, T + READ, T + 2 * READ], rel=1e-12)
    assert runs[0].metrics.latency_s == pytest.approx(runs[1].metrics.latency_s, rel=1e-12)
