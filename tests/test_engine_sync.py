"""gpu.sync_latency: a step that waits for work on another unit starts that long after the work
ends (event signalling + host round trip); kernels on the in-order queue follow each other
without it. Hand-checked on the toy profile; the calibration recovers it from a trace."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim import plan, simulate
from validate.stages import stage_ops, sync_estimate

READ, COPY, XFORM = 0.1, 0.5, 0.25  # toy profile with 10 GB/s flash, one 1 GB fp16 layer
COMPUTE = 1e-3 + 4000 / 1e12
S = 0.01


def synced(p, s: float = S):
    return replace(p, gpu=replace(p.gpu, sync_latency=s))


def test_default_is_zero_and_left_out(toy_profile):
    assert toy_profile.gpu.sync_latency == 0.0
    assert "gpu.sync_latency" not in toy_profile.to_dict()  # digests unchanged
    assert synced(toy_profile).to_dict()["gpu.sync_latency"] == S


def test_sequential_pays_every_hop(fast_flash, three_layers):
    # per layer: dispatch (S), read, S, copy, S, transform, S, compute; the next layer's read
    # waits for the free, which the host sees S after the compute ends: 4 S per layer
    p = synced(fast_flash)
    s = plan("sequential", three_layers, p)
    m = simulate(s, p).metrics
    assert m.latency_s == pytest.approx(3 * (4 * S + READ + COPY + XFORM + COMPUTE), rel=1e-12)
    assert simulate(s, fast_flash).metrics.latency_s == pytest.approx(
        3 * (READ + COPY + XFORM + COMPUTE), rel=1e-12)


def test_pipeline_hides_hops_behind_busy_units(fast_flash, three_layers):
    # reads run back to back from S; the copy unit is the bottleneck, so only the first copy's
    # hop, the last transform's and the last compute's show: READ + 3 COPY + XFORM + COMPUTE + 4 S
    p = synced(fast_flash)
    s = plan("pipeline", three_layers, p, depth=3)
    r = simulate(s, p)
    assert r.metrics.latency_s == pytest.approx(READ + 3 * COPY + XFORM + COMPUTE + 4 * S,
                                                rel=1e-12)
    reads = sorted(i.start for i in r.trace.intervals if i.resource == "storage")
    assert reads == pytest.approx([S, S + READ, S + 2 * READ])


def test_kernels_on_the_in_order_queue_follow_without_sync(fast_flash, three_layers):
    p = synced(fast_flash)
    s = plan("preload", three_layers, p)
    gpu = sorted((i.start, i.end) for i in simulate(s, p).trace.intervals if i.resource == "gpu")
    assert [b[0] - a[1] for a, b in zip(gpu, gpu[1:], strict=False)] == pytest.approx([0, 0])


def test_calibration_recovers_sync_from_a_trace(fast_flash, three_layers):
    # every gap that followed another unit's work is exactly S in a trace simulated with S
    p = synced(fast_flash, 0.003)
    runs = [(s, simulate(s, p).trace) for s in (plan("sequential", three_layers, p),
                                                 plan("pipeline", three_layers, p, depth=2))]
    ops = [o for s, tr in runs for o in stage_ops(s, tr)]
    assert sum(o.hop_gap is not None for o in ops) >= 8
    assert sync_estimate(ops) == pytest.approx(0.003, rel=1e-9)


def hops(p, **kw):
    return replace(p, gpu=replace(p.gpu, **{f"sync_{k}": v for k, v in kw.items()}))


def test_each_hop_takes_its_own_latency(fast_flash, three_layers):
    # sequential, per layer: read dispatch (R, also after the free), read, copy hop (C), copy,
    # transform hop (T), transform, kernel hop (K), compute; the free waits F after the compute
    R, C, T, K, F = 0.001, 0.002, 0.004, 0.008, 0.016
    p = hops(fast_flash, read=R, copy=C, transform=T, kernel=K, free=F)
    s = plan("sequential", three_layers, p)
    m = simulate(s, p).metrics
    layer = R + READ + C + COPY + T + XFORM + K + COMPUTE
    assert m.latency_s == pytest.approx(3 * layer + 2 * F, rel=1e-12)


def test_unset_hops_keep_the_single_sync_latency(fast_flash, three_layers):
    p = synced(fast_flash)
    same = hops(p, copy=S, transform=S, kernel=S, free=S)
    s = plan("sequential", three_layers, p)
    assert simulate(s, same).metrics.latency_s == simulate(s, p).metrics.latency_s
    assert "gpu.sync_copy" not in p.to_dict() and same.to_dict()["gpu.sync_copy"] == S


def test_transform_latency_is_paid_once_per_transform(fast_flash, three_layers):
    p = replace(fast_flash, transfer=replace(fast_flash.transfer, transform_latency=0.02))
    s = plan("sequential", three_layers, p)
    base = simulate(s, fast_flash).metrics.latency_s
    assert simulate(s, p).metrics.latency_s == pytest.approx(base + 3 * 0.02, rel=1e-12)
    assert "transfer.transform_latency" not in fast_flash.to_dict()
