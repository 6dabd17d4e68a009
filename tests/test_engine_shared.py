"""gpu.shared_with_transfers: copies, transforms and computes served by one FIFO unit (a CPU
OpenCL device), hand-checked against the toy profile; the default keeps separate units."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from hwprofiles import check_file, load_profile
from sim import plan, simulate

# toy profile (tests/data/toy.yaml) with 10 GB/s flash: one 1 GB fp16 layer reads in 0.1 s,
# copies in 0.5 s, transforms in 0.25 s; compute = 1 GB / 1000 GB/s + 4 KB / 1000 GB/s
READ, COPY, XFORM = 0.1, 0.5, 0.25
COMPUTE = 1e-3 + 4000 / 1e12


def shared(p, on: bool = True):
    return replace(p, gpu=replace(p.gpu, shared_with_transfers=on))


def test_default_is_separate_units(toy_profile):
    assert toy_profile.gpu.shared_with_transfers is False
    assert "gpu.shared_with_transfers" not in toy_profile.to_dict()  # digests unchanged
    assert shared(toy_profile).to_dict()["gpu.shared_with_transfers"] is True


def test_pipeline_separate_units(fast_flash, three_layers):
    # reads end at 0.1, 0.2, 0.3; copies run back to back from 0.1 (end 0.6, 1.1, 1.6); each
    # transform follows its copy on its own unit (end 0.85, 1.35, 1.85); the last compute
    # starts when the last transform ends
    s = plan("pipeline", three_layers, fast_flash, depth=3)
    m = simulate(s, fast_flash).metrics
    assert m.latency_s == pytest.approx(READ + 3 * COPY + XFORM + COMPUTE, rel=1e-12)


def test_pipeline_shared_unit_serialises_copies_transforms_and_computes(fast_flash,
                                                                         three_layers):
    # one FIFO unit, in order of arrival: copy1 [0.1, 0.6], copy2 (arrived 0.2) [0.6, 1.1],
    # copy3 (0.3) [1.1, 1.6], transform1 (0.6) [1.6, 1.85], transform2 (1.1) [1.85, 2.1],
    # transform3 (1.6) [2.1, 2.35], then the three computes back to back
    p = shared(fast_flash)
    s = plan("pipeline", three_layers, p, depth=3)
    r = simulate(s, p)
    m = r.metrics
    assert m.latency_s == pytest.approx(READ + 3 * (COPY + XFORM + COMPUTE), rel=1e-12)
    assert m.compute_s == pytest.approx(3 * COMPUTE, rel=1e-12)
    # nothing on the shared unit overlaps
    unit = sorted((i.start, i.end) for i in r.trace.intervals
                  if i.resource in ("copy", "transform", "gpu"))
    assert all(a[1] <= b[0] + 1e-12 for a, b in zip(unit, unit[1:], strict=False))
    # storage still overlaps the unit: the second read runs during the first copy
    reads = sorted(i.start for i in r.trace.intervals if i.resource == "storage")
    assert reads == pytest.approx([0.0, READ, 2 * READ])
    # busy time is still accounted per resource
    assert m.utilisation["copy"] * m.latency_s == pytest.approx(3 * COPY)
    assert m.utilisation["transform"] * m.latency_s == pytest.approx(3 * XFORM)


def test_sequential_is_unchanged_by_sharing(toy_profile, three_layers):
    # nothing overlaps in a sequential schedule, so one unit or three give the same latency
    s = plan("sequential", three_layers, toy_profile)
    a = simulate(s, toy_profile).metrics.latency_s
    b = simulate(s, shared(toy_profile)).metrics.latency_s
    assert a == b == pytest.approx(3 * (1.0 + COPY + XFORM + COMPUTE), rel=1e-12)


def test_shared_is_deterministic(fast_flash, three_layers):
    p = shared(fast_flash)
    s = plan("pipeline", three_layers, p, depth=2)
    a, b = simulate(s, p), simulate(s, p)
    assert a.metrics.to_dict() == b.metrics.to_dict()
    assert a.trace.intervals == b.trace.intervals


def test_field_is_optional_in_yaml(tmp_path):
    src = tmp_path / "toy-shared.yaml"
    data = yaml.safe_load((Path(__file__).parent / "data" / "toy.yaml").read_text())
    data["name"] = "toy-shared"
    data["gpu"]["shared_with_transfers"] = {"value": True, "source": "test"}
    src.write_text(yaml.safe_dump(data))
    assert check_file(str(src)) == []
    assert load_profile(str(src)).gpu.shared_with_transfers is True
    data["gpu"]["shared_with_transfers"] = {"value": "yes", "source": "test"}
    src.write_text(yaml.safe_dump(data))
    assert check_file(str(src)) != []
