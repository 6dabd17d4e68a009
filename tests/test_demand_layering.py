"""Demand Layering's variants as its code runs them: hand-checked timelines, buffers and memory,
O_DIRECT sector rounding, the multi-request reader, budget scopes, and depth=auto."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwprofiles import load_profile
from hwprofiles.runtime import RuntimeProfile
from sim import plan, simulate
from sim.capacity import min_feasible_budget
from sim.errors import SimError
from sim.policies.demand_layering import SLACK, darknet_layers, ring_waits, window_bytes
from sim.schedule import Schedule
from workloads import Model, Op, Tensor, Workload, chain, repeated, single
from workloads.workload import Invocation

from helpers import random_workload

GB = 10**9

# toy profile: flash 1 GB/s, copy 2 GB/s, 1 TFLOPS fp16, DRAM 1000 GB/s, no latencies.
# layer i: weights W[i] GB (fp16, whole 512-byte sectors) -> read W s, copy W/2 s;
# K[i] TFLOP -> kernel K s (its 1 GB of weights at 1000 GB/s is faster)
W = (1.024, 0.512, 1.024)
K = (0.3, 1.0, 0.2)


def three_stage_layers() -> Workload:
    ops = [Op(f"l{i}", "linear", flops=round(K[i] * 1e12),
              weights=(Tensor(f"m/w{i}", (round(W[i] * GB / 2 / 1000), 1000), "fp16"),),
              input_elems=1000, output_elems=1000) for i in range(3)]
    return single(chain("m", ops))


def lock_step() -> tuple[float, list[float]]:
    """The sync pipeline by its definition: step s reads layer s, copies s-1, runs s-2 and
    lasts as long as the longest of them; returns the total and each step's end."""
    ends, t = [], 0.0
    for s in range(5):
        stages = [W[s] if s < 3 else 0.0, W[s - 1] / 2 if 0 <= s - 1 < 3 else 0.0,
                  K[s - 2] if 0 <= s - 2 < 3 else 0.0]
        t += max(stages)
        ends.append(t)
    return t, ends


# the toy profile with room for sync's four 1 GB buffers under the app memory limit
ROOM = ["dram.app_memory=7GB"]


@pytest.fixture(scope="module")
def toy():
    from conftest import DATA

    return load_profile(str(DATA / "toy.yaml"), ROOM)


@pytest.fixture(scope="module")
def toy_zc():
    from conftest import DATA

    return load_profile(str(DATA / "toy.yaml"), ["transfer.zero_copy=true", *ROOM])


def latency(wl, profile, **options) -> tuple[float, Schedule]:
    s = plan("demand-layering", wl, profile, **options)
    m = simulate(s, profile).metrics
    assert m.feasible, m.error
    return m.latency_s, s


def test_sequential_reads_copies_and_runs_each_layer_alone(toy):
    t, s = latency(three_stage_layers(), toy, variant="sequential")
    assert t == pytest.approx(sum(w + w / 2 + k for w, k in zip(W, K, strict=True)), rel=1e-9)
    # one host and one GPU buffer of the largest layer + the code's 1,152 floats each
    slot = round(1.024 * GB) + SLACK["sequential"]
    assert {n: b["bytes"] for n, b in s.buffers.items()} == {"host buffer": slot,
                                                            "gpu buffer": slot}


def test_sync_is_a_lock_step_pipeline_with_a_barrier_per_step(toy):
    # s0 R0=1.024 | s1 max(R1=.512, C0=.512) | s2 max(R2=1.024, C1=.256, K0=.3)
    # | s3 max(C2=.512, K1=1) | s4 K2=.2
    t, s = latency(three_stage_layers(), toy, variant="sync")
    assert t == pytest.approx(1.024 + 0.512 + 1.024 + 1 + 0.2, rel=1e-9)
    assert t == pytest.approx(lock_step()[0], rel=1e-9)
    m = simulate(s, toy).metrics
    # two host and two GPU buffers of the largest layer + 2,048 floats, held from the start
    slot = round(1.024 * GB) + SLACK["sync"]
    assert m.peak_weight_bytes == 4 * slot
    assert m.avg_memory_by_category["weights"] == pytest.approx(2 * slot)
    assert s.buffers["host buffer A"] == {"bytes": slot, "category": "staging"}


def test_sync_kernel_waits_for_the_next_read(toy):
    """The barrier: layer 1's kernel cannot start before layer 2's read ends (2.56 s), although
    its copy ended at 1.792 s and the kernel before it at 1.836 s."""
    s = plan("demand-layering", three_stage_layers(), toy, variant="sync")
    tr = simulate(s, toy).trace
    k1 = next(i for i in tr.intervals if i.resource == "gpu" and i.name == "l1")
    assert k1.start == pytest.approx(2.56, rel=1e-9) == lock_step()[1][2]


@pytest.mark.parametrize("depth,expected", [
    # depth 1: read i waits copy i-1, copy i waits kernel i-1:
    # R0 [0, 1.024] C0 [1.024, 1.536] K0 [1.536, 1.836]; R1 [1.536, 2.048] C1 [2.048, 2.304]
    # K1 [2.304, 3.304]; R2 [2.304, 3.328] C2 [3.328, 3.84] K2 [3.84, 4.04]
    (1, 4.04),
    # depth 2: R1 [1.024, 1.536] C1 [1.536, 1.792] K1 [1.836, 2.836]; R2 waits C0 (1.536):
    # [1.536, 2.56]; C2 waits K0 and its read [2.56, 3.072]; K2 [3.072, 3.272]
    (2, 3.272),
])
def test_async_rings_overlap_read_copy_and_kernel(toy, depth, expected):
    t, s = latency(three_stage_layers(), toy, variant="async", depth=depth)
    assert t == pytest.approx(expected, rel=1e-9)
    window = window_bytes([round(w * GB) for w in W], depth)
    assert {n: b["bytes"] for n, b in s.buffers.items()} == {"host ring": window,
                                                            "gpu ring": window}


@pytest.mark.parametrize("options,expected", [
    ({"depth": 1}, sum(W) + sum(K)),
    # depth 2: R1 [1.024, 1.536], K1 [1.536, 2.536]; R2 waits K0 (1.324) but storage is busy
    # to 1.536: [1.536, 2.56]; K2 [2.56, 2.76]
    ({"depth": 2}, 2.76),
    # a 1.536 GB ring: layer 2 wraps onto layer 0's bytes and waits for its kernel: as depth 2
    ({"buffer": "1.536GB"}, 2.76),
])
def test_two_stage_kernels_read_the_ring_in_place(toy_zc, options, expected):
    t, s = latency(three_stage_layers(), toy_zc, variant="two-stage", **options)
    assert t == pytest.approx(expected, rel=1e-9)
    m = simulate(s, toy_zc).metrics
    assert m.peak_weight_bytes == sum(b["bytes"] for b in s.buffers.values())
    assert m.utilisation["copy"] == 0  # zero-copy: no copy at all


def test_two_stage_needs_zero_copy_and_knobs_belong_to_rings(toy):
    wl = three_stage_layers()
    with pytest.raises(SimError, match="zero_copy.*valid variants here"):
        plan("demand-layering", wl, toy, variant="two-stage")
    with pytest.raises(SimError, match="fixed buffers"):
        plan("demand-layering", wl, toy, variant="sync", depth=2)
    with pytest.raises(SimError, match="valid: auto, sequential"):
        plan("demand-layering", wl, toy, variant="fast")
    with pytest.raises(SimError, match="smaller than the largest layer"):
        plan("demand-layering", wl, toy, variant="async", buffer="1GB")


def test_extra_is_the_papers_p_over_the_largest_layer(toy_zc):
    s = plan("demand-layering", three_stage_layers(), toy_zc, variant="two-stage",
             extra="4MiB")
    assert s.buffers["ring"]["bytes"] == 1.024 * GB + 4 * 2**20
    s0 = plan("demand-layering", three_stage_layers(), toy_zc, variant="two-stage", extra=0)
    assert s0.buffers["ring"]["bytes"] == 1.024 * GB + SLACK["two-stage"]


def test_ring_waits_follow_the_codes_head_and_tail():
    # ring of 10: fills of 4, 4 -> [0,4) [4,8); 4 wraps to [0,4) over fill 0;
    # 3 -> [4,7) over fill 1; 5 -> wraps: [0,5) over fills 2 and 3 (latest: 3)
    assert ring_waits([4, 4, 4, 3, 5], 10) == [None, None, 0, 1, 3]
    assert ring_waits([10, 1], 10) == [None, 0]
    assert window_bytes([1, 5, 2, 6], 2) == 8


def test_a_layer_is_a_conv_with_its_norm_and_reads_whole_sectors():
    """Without fusion a BatchNorm's weights are still read with its convolution; a layer at file
    offset o of n bytes reads align_up(o + n, 512) - align_down(o, 512)."""
    ops = [Op("c0", "conv", flops=10, weights=(Tensor("c0.w", (250,), "fp32"),),
              input_elems=10, output_elems=10),
           Op("b0", "batchnorm", flops=10, weights=(Tensor("b0.s", (25,), "fp32"),
                                                    Tensor("b0.b", (25,), "fp32")),
              input_elems=10, output_elems=10),
           Op("r0", "relu", flops=10, input_elems=10, output_elems=10),
           Op("c1", "conv", flops=10, weights=(Tensor("c1.w", (250,), "fp32"),),
              input_elems=10, output_elems=10)]
    wl = single(chain("net", ops))
    layers = darknet_layers(wl)
    assert [[u.op.name for u in lay.units] for lay in layers] == [["c0", "b0"], ["r0"], ["c1"]]
    assert [lay.nbytes for lay in layers] == [1200, 0, 1000]
    # c0+b0 at [0, 1200): sectors 0..2 -> 1536; c1 at [1200, 2200): 1024..2560 -> 1536
    assert [lay.read_bytes for lay in layers] == [1536, 0, 1536]
    toy = load_profile("tests/data/toy.yaml")
    m = simulate(plan("demand-layering", wl, toy, variant="sequential"), toy).metrics
    assert m.flash_bytes_read == 1536 + 1536


def test_each_inference_drains_its_pipeline(toy_zc):
    """The code's forward pass ends by synchronising the device: the next inference's first read
    waits for the last kernel, and its rings start afresh (two passes of 2.76 s)."""
    one, _ = latency(three_stage_layers(), toy_zc, variant="two-stage", depth=3)
    two, _ = latency(repeated(three_stage_layers().invocations[0].model, 2), toy_zc,
                     variant="two-stage", depth=3)
    assert one == pytest.approx(2.76, rel=1e-9) and two == pytest.approx(2 * one, rel=1e-9)


def test_repeated_inference_reads_every_layer_again(toy_zc):
    wl = repeated(three_stage_layers().invocations[0].model, 2)
    for variant, opts in (("two-stage", {"depth": 4}), ("async", {"depth": 2}), ("sync", {}),
                          ("sequential", {})):
        s = plan("demand-layering", wl, toy_zc, variant=variant, **opts)
        m = simulate(s, toy_zc).metrics
        assert m.feasible and m.flash_bytes_read == 2 * sum(round(w * GB) for w in W)
        assert m.latency_s >= m.flash_bytes_read / GB  # never faster than the flash


def test_preallocated_buffers_over_the_budget_are_infeasible(toy):
    s = plan("demand-layering", three_stage_layers(), toy, 4 * GB, variant="sync")
    m = simulate(s, toy).metrics
    assert not m.feasible and "preallocated buffers need" in m.error


def test_multi_request_reader_hides_request_latency_behind_the_previous_read(toy_zc):
    """Two 1 GB reads submitted together with 0.1 s request latency: one at a time they take
    2 x 1.1 s; a reader that keeps both submitted overlaps the second's latency."""
    prof = replace(toy_zc, storage=replace(toy_zc.storage, request_latency=0.1))
    ops = [Op(f"l{i}", "linear", flops=0, weights=(Tensor(f"w{i}", (GB // 2 // 1000, 1000),
                                                          "fp16"),),
              input_elems=1000, output_elems=1000) for i in range(2)]
    wl = single(chain("two", ops))
    s = plan("demand-layering", wl, prof, variant="two-stage", depth=2)
    one = simulate(s, prof, runtime=RuntimeProfile("one")).metrics
    many = simulate(s, prof, runtime=RuntimeProfile("uring", reads_in_flight=4)).metrics
    kernel = 0.001 + 4000 / 1e12  # reading 1 GB of weights at 1000 GB/s
    assert one.latency_s == pytest.approx(2 * 1.1 + kernel, rel=1e-9)
    assert many.latency_s == pytest.approx(0.1 + 2 * 1.0 + kernel, rel=1e-9)
    # the storage trace never overlaps itself: the hidden latency is not counted twice
    assert many.utilisation["storage"] * many.latency_s == pytest.approx(2.1, rel=1e-9)


def test_weights_scope_budgets_parameter_memory_only(toy_zc):
    """Activations of 2 GB do not count against a weights-scope budget (the papers' parameter
    memory); under a total budget the same plan does not fit."""
    ops = [Op(f"l{i}", "linear", flops=10**9, weights=(Tensor(f"w{i}", (250_000, 1000),
                                                               "fp16"),),
              input_elems=10**9, output_elems=10**9) for i in range(3)]
    wl = single(chain("acts", ops))
    budget = int(1.2 * GB)
    w = plan("demand-layering", wl, toy_zc, budget, variant="two-stage",
             budget_scope="weights")
    m = simulate(w, toy_zc).metrics
    assert m.feasible and m.budget_scope == "weights"
    assert m.peak_weight_bytes <= budget < m.peak_memory_bytes
    t = plan("demand-layering", wl, toy_zc, budget, variant="two-stage", depth=1)
    assert not simulate(t, toy_zc).metrics.feasible


def small_cnn(n: int = 9) -> Workload:
    ops = []
    for i in range(n):
        c = 16 * (1 + i % 4)
        ops.append(Op(f"c{i}", "conv", flops=(3 + 5 * (i % 3)) * 10**8,
                      weights=(Tensor(f"cnn/c{i}", (c, c, 3, 3 * (1 + i % 2) * 1000), "fp16"),),
                      input_elems=10**5, output_elems=10**5))
    return single(Model("cnn", ops, [(f"c{i}", f"c{i + 1}") for i in range(n - 1)]))


@pytest.mark.parametrize("variant", ["async", "two-stage"])
@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.6, 1.0])
def test_auto_is_never_slower_than_a_fixed_depth_that_fits(toy_zc, variant, fraction):
    """Budgets from the smallest that holds the largest layer to all layers at once."""
    wl = small_cnn()
    layers = [lay for lay in darknet_layers(wl) if lay.tensors]
    rings = 2 if variant == "async" else 1
    act = max(wl.activation_profile())
    least = rings * max(lay.read_bytes for lay in layers) + act
    total = rings * sum(lay.read_bytes for lay in layers) + act
    budget = int(least + fraction * (total - least))
    auto = simulate(plan("demand-layering", wl, toy_zc, budget, variant=variant), toy_zc).metrics
    assert auto.feasible and auto.peak_memory_bytes <= budget
    for d in range(1, len(layers) + 1):
        need = rings * window_bytes([lay.read_bytes for lay in layers], d) + act
        if need > budget:
            continue
        fixed = simulate(plan("demand-layering", wl, toy_zc, budget, variant=variant, depth=d),
                         toy_zc).metrics
        assert auto.latency_s <= fixed.latency_s + 1e-12, d


@pytest.mark.parametrize("slack", [1.0, 1.5, 2.5, None])
def test_pipeline_auto_is_never_slower_than_a_fixed_depth_that_fits_at_any_timing(toy, slack):
    from sim.policies.search import fits_at_any_timing

    wl = small_cnn()
    budget = None if slack is None else int(min_feasible_budget("pipeline", wl, toy) * slack)
    auto = simulate(plan("pipeline", wl, toy, budget), toy).metrics
    assert auto.feasible
    act = wl.activation_profile()
    for d in range(1, 10):
        s = plan("pipeline", wl, toy, budget, depth=d)
        fixed = simulate(s, toy).metrics
        if fixed.feasible and (d == 1 or fits_at_any_timing(s, toy, budget, None, act)):
            assert auto.latency_s <= fixed.latency_s + 1e-12, d


def test_pipeline_auto_passes_over_a_depth_that_fits_only_at_the_nominal_timing(toy_profile):
    """Random graph 2 (11 ops, 2 runs) at 1.875x its smallest budget: depth 6 is the fastest
    at the profile's timing, but with durations jittered by up to 30 % its reads run ahead,
    staging buffers fill the budget and a copy waits forever behind them. auto takes the
    fastest depth that fits at any timing, which completes under the same jitter."""
    from sim.engine import jitter_hook
    from sim.policies.search import fits_at_any_timing

    from helpers import random_workload

    wl = random_workload(2, 11, 2)
    budget = int(min_feasible_budget("pipeline", wl, toy_profile) * 1.875)
    six = plan("pipeline", wl, toy_profile, budget, depth=6)
    assert simulate(six, toy_profile).metrics.feasible  # at the nominal timing
    stuck = simulate(six, toy_profile, hook=jitter_hook(0.3, 2)).metrics
    assert not stuck.feasible and "waiting for memory" in stuck.error
    assert not fits_at_any_timing(six, toy_profile, budget, None, wl.activation_profile())
    auto = plan("pipeline", wl, toy_profile, budget)
    assert auto.meta["depth"] != 6 and auto.meta["auto_rejected_fragile"] >= 1
    for seed in range(5):
        m = simulate(auto, toy_profile, hook=jitter_hook(0.3, seed)).metrics
        assert m.feasible and m.peak_memory_bytes <= budget


def test_schedule_round_trips_with_buffers_and_barriers(toy, tmp_path):
    s = plan("demand-layering", three_stage_layers(), toy, variant="sync")
    s.save(tmp_path / "s.json")
    back = Schedule.load(tmp_path / "s.json")
    assert back.buffers == s.buffers and back.steps == s.steps
    assert simulate(back, toy).metrics.latency_s == pytest.approx(lock_step()[0],
                                                                          rel=1e-9)


def test_multi_model_files_start_at_their_own_offset():
    a = three_stage_layers().invocations[0].model
    b = Model("other", [Op("x", "linear", flops=1, weights=(Tensor("o/w", (700,), "fp32"),),
                           input_elems=1, output_elems=1)], [])
    wl = Workload("ab", (Invocation(a, "a"), Invocation(b, "b"), Invocation(a, "a2")))
    reads = [lay.read_bytes for lay in darknet_layers(wl) if lay.tensors]
    assert reads == [round(w * GB) for w in W] + [3072] + [round(w * GB) for w in W]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), n=st.integers(1, 14), repeats=st.integers(1, 2),
       variant=st.sampled_from(["sequential", "sync", "async", "two-stage"]),
       slack=st.floats(1.0, 3.0), jitter=st.sampled_from([0.0, 0.3]),
       scope=st.sampled_from(["total", "weights"]))
def test_invariants_hold_on_random_graphs(toy_zc, seed, n, repeats, variant, slack, jitter,
                                          scope):
    from sim.bounds import lower_bound
    from sim.engine import jitter_hook

    wl = random_workload(seed, n, repeats)
    free = plan("demand-layering", wl, toy_zc, None, variant=variant, budget_scope=scope)
    held = sum(b["bytes"] for b in free.buffers.values())
    act = max(wl.activation_profile()) if scope == "total" else 0
    budget = int((held + act) * slack) + 1
    s = plan("demand-layering", wl, toy_zc, budget, variant=variant, budget_scope=scope)
    r = simulate(s, toy_zc, hook=jitter_hook(jitter, seed) if jitter else None)
    m = r.metrics
    assert m.feasible, m.error
    capped = m.peak_memory_bytes if scope == "total" else m.peak_weight_bytes
    assert capped <= budget
    gpu = [i for i in r.trace.intervals if i.resource == "gpu"]
    ran = [(s.steps[i.step].invocation, s.steps[i.step].op) for i in gpu]
    assert sorted(ran) == sorted((k, o) for k, inv in enumerate(wl.invocations)
                                 for o in inv.model.order)
    ordered = sorted(gpu, key=lambda i: i.start)
    for a, b in zip(ordered, ordered[1:], strict=False):
        assert a.end <= b.start + 1e-12
    assert m.latency_s >= m.compute_s - 1e-12
    assert m.latency_s >= m.flash_bytes_read / toy_zc.storage.read_bandwidth * (1 - jitter) \
        - 1e-12
    assert m.flash_bytes_read >= sum(inv.model.weight_bytes for inv in wl.invocations)
    if not jitter:
        assert m.latency_s >= lower_bound(wl, toy_zc, budget, budget_scope=scope) - 1e-12
