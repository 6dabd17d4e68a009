"""The discrete-event engine: exact hand-checked latencies, physical invariants, determinism."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwprofiles.storage import read_time
from sim import plan, simulate
from sim.capacity import min_feasible_budget
from sim.engine import jitter_hook
from workloads import repeated, single

from helpers import linear_chain, random_workload

GB = 10**9
# toy profile, one 1 GB fp16 layer: read 1 s, copy 0.5 s, transform 0.25 s;
# compute = max(1e9 FLOP / 1 TFLOPS, 1 GB / 1000 GB/s + 4 KB activations / 1000 GB/s)
READ, COPY, XFORM = 1.0, 0.5, 0.25
COMPUTE = 1e-3 + 4000 / 1e12


def test_sequential_is_sum_of_loads_and_computes(toy_profile, three_layers):
    m = simulate(plan("sequential", three_layers, toy_profile), toy_profile).metrics
    assert m.latency_s == pytest.approx(3 * (READ + COPY + XFORM + COMPUTE), rel=1e-12)
    assert m.compute_s == pytest.approx(3 * COMPUTE, rel=1e-12)
    assert m.gpu_stall_s == pytest.approx(3 * (READ + COPY + XFORM), rel=1e-12)
    assert m.flash_bytes_read == 3 * GB


def test_pipeline_is_fill_plus_slowest_stage_per_layer(toy_profile, three_layers):
    # storage is the slowest stage (1 s): reads run back to back, the last layer then copies,
    # transforms and computes
    s = plan("pipeline", three_layers, toy_profile, depth=3)
    m = simulate(s, toy_profile).metrics
    assert m.latency_s == pytest.approx(3 * READ + COPY + XFORM + COMPUTE, rel=1e-12)
    assert m.utilisation["storage"] == pytest.approx(3 * READ / m.latency_s)


def test_pipeline_depth_two_equals_depth_three_when_storage_bound(toy_profile, three_layers):
    # with depth 2, layer 2's read waits for layer 0's free at 1.75 s + compute, but storage is
    # busy with layer 1 until 2 s anyway: same latency, less memory
    d2 = simulate(plan("pipeline", three_layers, toy_profile, depth=2), toy_profile).metrics
    d3 = simulate(plan("pipeline", three_layers, toy_profile, depth=3), toy_profile).metrics
    assert d2.latency_s == pytest.approx(d3.latency_s)
    assert d2.peak_memory_bytes < d3.peak_memory_bytes


def test_preload_loads_everything_then_computes(toy_profile, three_layers):
    m = simulate(plan("preload", three_layers, toy_profile), toy_profile).metrics
    assert m.latency_s == pytest.approx(3 * (READ + COPY + XFORM) + 3 * COMPUTE, rel=1e-12)
    # all three 1 GB textures + the last layer's GPU buffer during its transform
    assert m.peak_memory_bytes == 4 * GB
    assert m.peak_memory_by_category["weights"] == 3 * GB


def test_direct_path_skips_transform(toy_profile, three_layers):
    m = simulate(plan("sequential", three_layers, toy_profile, path="direct"), toy_profile).metrics
    assert m.latency_s == pytest.approx(3 * (READ + COPY + COMPUTE), rel=1e-12)


def test_repeated_inference_reports_cold_and_warm(toy_profile):
    model = linear_chain(2).invocations[0].model
    m = simulate(plan("preload", repeated(model, 3), toy_profile), toy_profile).metrics
    assert m.cold_latency_s == pytest.approx(2 * (READ + COPY + XFORM) + 2 * COMPUTE)
    assert m.warm_latency_s == pytest.approx(2 * COMPUTE)
    assert m.flash_bytes_read == 2 * GB  # weights stay resident across runs


def test_storage_request_model_at_queue_depth_one(toy_profile):
    from dataclasses import replace

    st = replace(toy_profile.storage, request_latency=27e-6, max_request_size=4096)
    # 4 KB request at QD1: t0 + 4096 / BW
    assert read_time(st, 4096) == pytest.approx(27e-6 + 4096 / GB)
    # 100 requests at QD1: latency-bound, every request pays t0
    assert read_time(st, 4096 * 100) == pytest.approx(100 * (27e-6 + 4096 / GB))
    # deep queue: bandwidth-bound after the first request's latency
    deep = replace(st, queue_depth=64)
    assert read_time(deep, 4096 * 100) == pytest.approx(27e-6 + 100 * 4096 / GB)


def test_budget_below_working_set_is_infeasible(toy_profile, three_layers):
    s = plan("sequential", three_layers, toy_profile, budget=int(1.5 * GB))
    m = simulate(s, toy_profile).metrics
    assert not m.feasible
    assert "budget" in m.error
    need = min_feasible_budget("sequential", three_layers, toy_profile)
    assert 2 * GB <= need <= int(2.02 * GB)  # a 1 GB texture + its 1 GB buffer during transform
    ok = simulate(plan("sequential", three_layers, toy_profile, need), toy_profile).metrics
    assert ok.feasible and ok.peak_memory_bytes <= need


def test_same_inputs_give_identical_metrics_and_traces(toy_profile):
    wl = random_workload(7, 12)
    a = simulate(plan("pipeline", wl, toy_profile, depth=2), toy_profile)
    b = simulate(plan("pipeline", wl, toy_profile, depth=2), toy_profile)
    assert json.dumps(a.metrics.to_dict()) == json.dumps(b.metrics.to_dict())
    assert a.trace.intervals == b.trace.intervals
    assert a.trace.memory == b.trace.memory


def test_chrome_trace_and_dataframe(toy_profile, three_layers, tmp_path):
    r = simulate(plan("pipeline", three_layers, toy_profile), toy_profile)
    df = r.trace.to_dataframe()
    assert set(df["resource"]) == {"storage", "copy", "transform", "gpu"}
    assert (df["duration"] >= 0).all()
    assert len(df[df.resource == "gpu"]) == 3
    r.trace.save_chrome(tmp_path / "t.json")
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    assert sum(e["ph"] == "X" for e in events) == len(df)
    assert any(e["ph"] == "C" for e in events)


# --- invariants over random graphs ----------------------------------------------------------

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), n=st.integers(1, 25), repeats=st.integers(1, 3),
       policy=st.sampled_from(["preload", "sequential", "pipeline"]),
       slack=st.floats(1.0, 3.0), jitter=st.sampled_from([0.0, 0.3]))
def test_invariants_hold_on_random_graphs(toy_profile, seed, n, repeats, policy, slack, jitter):
    wl = random_workload(seed, n, repeats)
    need = min_feasible_budget(policy, wl, toy_profile)
    budget = int(need * slack)
    s = plan(policy, wl, toy_profile, budget)
    hook = jitter_hook(jitter, seed) if jitter else None
    r = simulate(s, toy_profile, hook=hook)
    m = r.metrics
    assert m.feasible, m.error
    # memory never above the budget, at any sample
    assert m.peak_memory_bytes <= budget
    assert max(row[1] for row in r.trace.memory) <= budget
    # every op exactly once, in dependency order, one at a time on the GPU
    gpu = [i for i in r.trace.intervals if i.resource == "gpu"]
    ran = [(s.steps[i.step].invocation, s.steps[i.step].op) for i in gpu]
    assert sorted(ran) == sorted((k, o) for k, inv in enumerate(wl.invocations)
                                 for o in inv.model.order)
    end = {i.step: i.end for i in gpu}
    start = {i.step: i.start for i in gpu}
    for c in s.computes:
        for dep in c.inputs:
            assert end[dep] <= start[c.id] + 1e-12
    ordered = sorted(gpu, key=lambda i: i.start)
    for a, b in zip(ordered, ordered[1:], strict=False):
        assert a.end <= b.start + 1e-12
    # latency lower bounds: total (measured) compute, and streamed bytes / storage bandwidth
    # (a jittered read may run up to `jitter` faster than the nominal bandwidth)
    assert m.latency_s >= m.compute_s - 1e-12
    bound = m.flash_bytes_read / toy_profile.storage.read_bandwidth * (1 - jitter)
    assert m.latency_s >= bound - 1e-12
    # a weight is read from flash at least once
    assert m.flash_bytes_read >= wl.weight_bytes


def test_single_model_workload_name(three_layers):
    assert single(three_layers.invocations[0].model).name == "m"
