"""validate.calibrate.fit_overlap recovers gpu.compute_memory_overlap from kernel event times."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim.hardware import HardwareModel
from sim.schedule import Compute
from validate.calibrate import fit_overlap


@pytest.mark.parametrize("true", [1.0, 0.5, 0.001])
def test_fit_overlap_recovers_synthetic(toy_profile, true):
    p = replace(toy_profile, gpu=replace(toy_profile.gpu, kernel_launch_overhead=0.0))
    hw = HardwareModel(replace(p, gpu=replace(p.gpu, compute_memory_overlap=true)))
    gpu = []
    # FLOP/byte ratios on both sides of the ridge, as the calibration models have
    for i, (flops, wbytes) in enumerate([(2e9, 1e9), (5e8, 1e9), (1e9, 1e9), (4e9, 5e8),
                                         (1e8, 2e8), (3e9, 3e9)]):
        st = Compute(id=i, op=f"op{i}", invocation=0, flops=int(flops), weights=("w",))
        tb, loc = {"w": int(wbytes)}, {"w": "buffer"}
        event = 20e-6 + 1.7 * hw.compute_time(st, tb, loc)  # fixed cost + replay slowdown
        gpu.append((st, event, tb, loc, event))
    overlap, fixed, scale, res = fit_overlap(gpu, p)
    assert overlap == true
    assert fixed == pytest.approx(20e-6, rel=1e-6)
    assert scale == pytest.approx(1.7, rel=1e-6)
    assert res < 1e-9
