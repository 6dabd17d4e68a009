"""storage.compute_contention: reads progress k times slower while a kernel runs (a CPU device's
cores or DRAM bandwidth shared between I/O and compute). Hand-checked on the toy profile; the
calibration's estimate inverts the same model."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hwprofiles import check_file
from sim import plan, simulate
from tests.helpers import linear_chain
from validate.stagefit import contention_estimate

READ, COPY, XFORM = 1.0, 0.5, 0.25  # toy profile, one 1 GB fp16 layer


def contended(p, k: float):
    return replace(p, storage=replace(p.storage, compute_contention=k))


@pytest.fixture
def heavy():
    return linear_chain(flops=2 * 10**11)  # 0.2 s kernels on the toy profile's 1 TFLOPS


def test_default_is_one_and_left_out(toy_profile):
    assert toy_profile.storage.compute_contention == 1.0
    assert "storage.compute_contention" not in toy_profile.to_dict()
    assert contended(toy_profile, 2.0).to_dict()["storage.compute_contention"] == 2.0


def test_reads_overlapping_kernels_slow_down(toy_profile, heavy):
    # reads at [0, 1], then from 1: kernel 1 runs at 1.75 for C, during which read 2 moves at
    # half speed (C/2 lost); read 3 runs wholly over kernel 2 (C/2 lost again); the last layer
    # follows read 3 by copy + transform + kernel: 3 READ + COPY + XFORM + C + 2 x C/2
    base = simulate(s := plan("pipeline", heavy, toy_profile, depth=3), toy_profile)
    c = next(i.end - i.start for i in base.trace.intervals if i.resource == "gpu")
    assert c == pytest.approx(0.2, rel=1e-3)
    assert base.metrics.latency_s == pytest.approx(3 * READ + COPY + XFORM + c, rel=1e-12)
    r = simulate(s, contended(toy_profile, 2.0))
    assert r.metrics.latency_s == pytest.approx(3 * READ + COPY + XFORM + 2 * c, rel=1e-12)
    reads = sorted((i.start, i.end) for i in r.trace.intervals if i.resource == "storage")
    assert [t for iv in reads for t in iv] == pytest.approx(
        [0, READ, READ, 2 * READ + c / 2, 2 * READ + c / 2, 3 * READ + c])


def test_no_overlap_no_change(toy_profile, heavy):
    # sequential: a layer's read waits for the previous kernel's free, so none overlap
    s = plan("sequential", heavy, toy_profile)
    assert simulate(s, contended(toy_profile, 3.0)).metrics.latency_s == pytest.approx(
        simulate(s, toy_profile).metrics.latency_s, rel=1e-12)


def test_estimate_inverts_the_model():
    # 1 s alone, measured 1.25 s of which 0.5 s under a kernel: 0.5 / k + 0.75 = 1 -> k = 2
    assert contention_estimate([(1.25, 1.0, 0.5)]) == pytest.approx(2.0)
    # slowed over its whole length: measured / alone
    assert contention_estimate([(3.0, 1.0, 3.0)]) == pytest.approx(3.0)
    # reads under 30% overlapped or no slower than alone say nothing / no contention
    assert contention_estimate([(2.0, 1.0, 0.1)]) == 1.0
    assert contention_estimate([(0.9, 1.0, 0.9)]) == 1.0
    # several reads: the factor gives them their measured time in total (the median of each
    # read's own factor, 2, would not): 1.25 + 1.1 + 1.5 = 3 + 2 (1 - 1/k) -> k = 2 / 1.15
    reads = [(1.25, 1.0, 0.5), (1.1, 1.0, 0.5), (1.5, 1.0, 1.0)]
    k = contention_estimate(reads)
    assert k == pytest.approx(2 / 1.15)
    assert sum(a + b * (1 - 1 / k) for _, a, b in reads) == pytest.approx(3.85)


def test_factor_below_one_is_rejected(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("name: x\nextends: pocl-cpu\nstorage:\n  compute_contention:\n"
                 "    value: 0.5\n    estimate: true\n")
    problems = check_file(str(f))
    assert any("compute_contention" in p and "at least 1" in p for p in problems), problems
