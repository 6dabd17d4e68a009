"""The OS memory limit: anonymous weights are killed past it, mmap'd weights are evicted (LRU) and
faulted back from flash. Hand-checked on four 1 GiB layers and the toy profile's 1 GB/s flash."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from experiments.cli import main
from hwprofiles.loader import load_runtime
from sim import plan, simulate
from workloads import Op, Tensor, chain, single

GiB = 2**30
LOAD = GiB / 1e9  # seconds to read 1 GiB at 1 GB/s
KERNEL = GiB / 1e12  # 1 GiB of weights at 1000 GB/s (above the 1 ms of 1e9 FLOPs)
MMAP = load_runtime("ideal", ["weights.holding=mmap"])


@pytest.fixture
def four_gib():
    """Four 1 GiB fp16 layers with no activations, so memory is weights alone."""
    ops = [Op(f"l{i}", "linear", 10**9, (Tensor(f"m/w{i}", (2**19, 2**10)),))
           for i in range(4)]
    return single(chain("m", ops))


def limited(profile, app_memory: int):
    return replace(profile, dram=replace(profile.dram, app_memory=app_memory))


def test_a_model_that_fits_reads_once(toy_profile, four_gib):
    prof = limited(toy_profile, 8 * GiB)
    m = simulate(plan("preload", four_gib, prof, None, MMAP), prof, runtime=MMAP).metrics
    assert m.memory_outcome == "fits" and m.feasible
    assert m.page_faults == 0 and m.refault_bytes == 0 and m.evicted_bytes == 0
    assert m.flash_bytes_read == 4 * GiB
    assert m.latency_s == pytest.approx(4 * LOAD + 4 * KERNEL, rel=1e-12)
    assert m.peak_memory_bytes == 4 * GiB


def test_mmap_at_twice_the_limit_rereads_every_weight(toy_profile, four_gib):
    """Limit 2.5 GiB, weights 4 GiB, read in order A B C D: loading C evicts half of A, loading
    D the rest of A and half of B. Inference then touches A, B, C, D cyclically, and LRU always
    evicts what is needed next: every tensor is faulted back in full (4 GiB re-read, 8192
    readahead-sized faults of 128 KiB each), each fault before its kernel; memory never goes
    above the limit."""
    prof = limited(toy_profile, 5 * GiB // 2)
    m = simulate(plan("preload", four_gib, prof, None, MMAP), prof, runtime=MMAP).metrics
    assert m.feasible and m.memory_outcome == "thrashed"
    assert m.refault_bytes == 4 * GiB
    assert m.flash_bytes_read == 8 * GiB
    assert m.page_faults == 4 * GiB // (128 * 1024)
    assert m.peak_memory_bytes == 5 * GiB // 2
    assert m.init_s == pytest.approx(4 * LOAD + LOAD, rel=1e-12)  # A is faulted before op 0
    assert m.latency_s == pytest.approx(8 * LOAD + 4 * KERNEL, rel=1e-12)
    assert m.evicted_bytes == 1.5 * GiB + 4 * GiB  # at load, then one tensor per fault
    assert m.gpu_stall_s == pytest.approx(m.latency_s - 4 * KERNEL, rel=1e-12)


def test_anonymous_weights_over_the_limit_are_killed(toy_profile, four_gib):
    prof = limited(toy_profile, 5 * GiB // 2)
    m = simulate(plan("preload", four_gib, prof), prof).metrics
    assert not m.feasible and m.memory_outcome == "killed"
    # A is read (1.074 s), copied (0.537 s) and transformed (0.268 s); B's copy then needs a
    # GPU buffer beside its host staging and A's texture: 3 GiB > 2.5 GiB at 2.953 s
    assert "killed by the low-memory killer at 2.953 s" in m.error
    assert "3.00 GiB in use, above the 2.50 GiB one app may hold" in m.error


def test_reserve_for_other_apps_lowers_the_limit(toy_profile, four_gib):
    prof = replace(toy_profile, os=replace(toy_profile.os, reserved_memory=5 * GiB))
    assert prof.memory_limit() == 8 * 10**9 - 5 * GiB  # capacity 8 GB - reserve < app 4 GB
    m = simulate(plan("preload", four_gib, prof), prof).metrics
    assert m.memory_outcome == "killed" and "less os.reserved_memory" in m.error


def test_streaming_within_the_limit_is_not_killed(toy_profile, four_gib):
    prof = limited(toy_profile, 5 * GiB // 2)
    m = simulate(plan("sequential", four_gib, prof, 2 * GiB), prof, budget=2 * GiB).metrics
    assert m.feasible and m.memory_outcome == "fits"
    assert m.peak_memory_bytes <= 2 * GiB


def test_preload_larger_than_app_memory_is_never_silently_fine():
    runner = CliRunner()
    r = runner.invoke(main, ["run", "--model", "llama-2-7b", "--profile", "tensor-g3",
                             "--policy", "preload", "--json"])
    assert r.exit_code == 3
    m = json.loads(r.stdout.splitlines()[0])
    assert m["memory_outcome"] == "killed" and not m["feasible"]
    assert "low-memory killer" in r.stderr and "Traceback" not in r.output
    r = runner.invoke(main, ["run", "--model", "gpt-neo-2.7b", "--profile", "tensor-g3",
                             "--policy", "preload", "--runtime-set", "weights.holding=mmap",
                             "--json"])
    assert r.exit_code == 0
    m = json.loads(r.stdout)
    assert m["memory_outcome"] == "thrashed" and m["page_faults"] > 0
    assert m["flash_bytes_read"] > 2 * m["weight_bytes"] * 0.9
    assert m["peak_memory_bytes"] <= m["memory_limit_bytes"]
