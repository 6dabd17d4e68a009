"""gpu.compute_memory_overlap: compute time = launch + max(t_flops, t_mem)
+ (1 - overlap) x min(t_flops, t_mem), hand-checked on one op of the toy profile."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from hwprofiles import check_file, load_profile
from sim.hardware import HardwareModel
from sim.schedule import Compute

LAUNCH = 10e-6
# toy profile: 1 TFLOPS fp16, 1000 GB/s, read efficiencies 1: 2 GFLOP -> 2 ms, 1 GB -> 1 ms
T_FLOPS, T_MEM = 2e-3, 1e-3
STEP = Compute(id=0, op="op", invocation=0, flops=2 * 10**9, weights=("w",))


def with_overlap(p, overlap: float | None):
    g = replace(p.gpu, kernel_launch_overhead=LAUNCH)
    if overlap is not None:
        g = replace(g, compute_memory_overlap=overlap)
    return replace(p, gpu=g)


@pytest.mark.parametrize("overlap, expected", [
    (None, LAUNCH + T_FLOPS),  # default: the plain roofline max
    (1.0, LAUNCH + T_FLOPS),
    (0.5, LAUNCH + T_FLOPS + 0.5 * T_MEM),
    (1e-9, LAUNCH + T_FLOPS + (1 - 1e-9) * T_MEM),  # smallest allowed: ~ the sum
])
def test_compute_time_single_op(toy_profile, overlap, expected):
    hw = HardwareModel(with_overlap(toy_profile, overlap))
    for loc in ("texture", "buffer"):
        assert hw.compute_time(STEP, {"w": 10**9}, {"w": loc}) == pytest.approx(expected, rel=1e-12)


def test_memory_bound_op_adds_its_flops(toy_profile):
    # 0.5 GFLOP (0.5 ms) under 1 GB of weights (1 ms): max is memory, min is compute
    step = replace(STEP, flops=5 * 10**8)
    hw = HardwareModel(with_overlap(toy_profile, 0.25))
    assert hw.compute_time(step, {"w": 10**9}, {}) == pytest.approx(LAUNCH + 1e-3 + 0.75 * 0.5e-3)


def test_default_left_out_of_dict(toy_profile):
    assert toy_profile.gpu.compute_memory_overlap == 1.0
    assert "gpu.compute_memory_overlap" not in toy_profile.to_dict()  # digests unchanged
    assert with_overlap(toy_profile, 0.5).to_dict()["gpu.compute_memory_overlap"] == 0.5


def test_loader_reads_and_checks_it(tmp_path: Path):
    data = yaml.safe_load((Path(__file__).parent / "data" / "toy.yaml").read_text())
    data["gpu"]["compute_memory_overlap"] = {"value": 0.3, "source": "hand"}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(data))
    assert load_profile(str(f)).gpu.compute_memory_overlap == 0.3
    data["gpu"]["compute_memory_overlap"] = {"value": 0, "source": "hand"}
    f.write_text(yaml.safe_dump(data))
    assert any("compute_memory_overlap" in p for p in check_file(str(f)))
