"""Capacity search on a hand-checkable toy: 4 layers of 100 MB weights, 0.1 s compute each, on
the toy profile (flash 1 GB/s, copy 2 GB/s, transform 4 GB/s): loading a layer takes
0.1 s read + 0.05 s copy + 0.025 s transform."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from experiments.capacity import search_capacity
from experiments.cli import main

from helpers import linear_chain

MB = 1_000_000


@pytest.fixture(scope="module")
def four_layers():
    return linear_chain(4, 50_000_000, 10**11)


def test_preload_needs_its_full_footprint(four_layers, toy_profile):
    # preload: 4 x 0.175 s of loads one after another, then 4 x 0.1 s compute = 1.1 s;
    # footprint: 400 MB of weights + one 100 MB staging buffer = 500 MB
    r = search_capacity("preload", four_layers, toy_profile, 1.2)
    assert r.met and r.budget_bytes == 500 * MB and r.latency_s == pytest.approx(1.1)
    r = search_capacity("preload", four_layers, toy_profile, 1.0)
    assert not r.met and r.budget_bytes is None and r.best_latency_s == pytest.approx(1.1)
    assert "cannot meet 1.000 s" in r.message() and "1.100 s" in r.message()


def test_pipeline_bisects_to_the_depth_two_window(four_layers, toy_profile):
    # depth 1 (sequential) takes 4 x 0.275 = 1.1 s; depth 2 overlaps the next layer's load
    # with compute: 0.65 s. At the nominal timing depth 2 needs 2 x 100 MB weights + 100 MB
    # staging + 4 KB activations = 300.004 MB; the search stops within 1 % above it.
    r = search_capacity("pipeline", four_layers, toy_profile, 0.7, depth=2)
    assert r.met and r.latency_s == pytest.approx(0.65)
    assert 300_004_000 <= r.budget_bytes <= 300_004_000 * 1.01 + 1
    # depth=auto takes depth 2 only where it fits at any timing: both loads at their peaks (one
    # transforming out of its staging buffer while the next copies into its own: 2 x 200 MB)
    # + 4 KB = 400.004 MB; below it, depth 2 could wait forever for memory on a faster device
    r = search_capacity("pipeline", four_layers, toy_profile, 0.7)
    assert r.met and r.latency_s == pytest.approx(0.65)
    assert 400_004_000 <= r.budget_bytes <= 400_004_000 * 1.01 + 1
    # a looser target is met at the smallest feasible budget (sequential behaviour)
    r = search_capacity("pipeline", four_layers, toy_profile, 1.2)
    assert r.met and r.budget_bytes == r.min_feasible_bytes and r.latency_s == pytest.approx(1.1)
    # nothing beats storage: 4 x 0.1 s of reads + the last layer's copy/transform/compute
    r = search_capacity("pipeline", four_layers, toy_profile, 0.5)
    assert not r.met and r.best_latency_s == pytest.approx(0.575)


def test_capacity_cli(tmp_path):
    pytest.importorskip("workloads.zoo")
    args = ["capacity", "--model", "mobilenetv2", "--profile", "snapdragon-8-gen-3",
            "--policy", "preload,sequential", "--latency-target", "9.5ms"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "preload: cannot meet 9.50 ms" in r.output and "best achievable latency" in r.output
    assert "sequential:" in r.output and "meets 9.50 ms" in r.output
    r = CliRunner().invoke(main, [*args, "--json"])
    rows = [json.loads(line) for line in r.output.strip().splitlines()]
    assert [x["met"] for x in rows] == [False, True] and rows[1]["budget_bytes"] > 0
    r = CliRunner().invoke(main, [*args[:-1], "1us"])
    assert r.exit_code == 1 and "no policy meets" in r.output
    r = CliRunner().invoke(main, [*args[:6], "preload,warp", *args[7:]])
    assert r.exit_code == 2 and "valid policies" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, [*args[:-1], "fast"])
    assert r.exit_code == 2 and "time" in r.output
