"""FlashMem's OPG planner as the paper states it: the CP-SAT model equals an exhaustive search
of its own objective on small graphs, its fallbacks, and on the zoo it respects M_peak and the
load capacities with a plan the engine runs."""

from __future__ import annotations

import itertools
import random

import pytest

from hwprofiles import load_profile
from sim import plan, simulate
from sim.errors import SimError
from sim.planner.opg import OpgSolution, instance, objective, plan_opg, solve, violations
from sim.planner.problem import build_problem
from workloads import Model, Op, Tensor, Workload
from workloads.scenarios import resolve_workload
from workloads.workload import Invocation

MB = 10**6


@pytest.fixture(scope="module")
def toy_zc():
    from conftest import DATA

    return load_profile(str(DATA / "toy.yaml"), ["transfer.zero_copy=true"])


def small(seed: int, n_ops: int, repeats: int = 1) -> Workload:
    rng = random.Random(seed)
    ops = []
    for i in range(n_ops):
        weights = ()
        if i == 0 or rng.random() < 0.7:
            weights = (Tensor(f"o{seed}/w{i}", (rng.randint(1, 4) * 500, 1000), "fp16"),)
        kind = rng.choice(["linear", "relu", "layernorm"]) if i else "linear"
        ops.append(Op(f"op{i}", kind, flops=10**6, weights=weights,
                      input_elems=rng.randint(1, 3) * 10**6, output_elems=10**6))
    model = Model(f"o{seed}", ops, [(f"op{i}", f"op{i + 1}") for i in range(n_ops - 1)])
    return Workload(model.name, tuple(Invocation(model, f"r{k}") for k in range(repeats)))


def splits(k: int, layers: list[int]):
    """Every way to put k chunks into the layers (order matters, zeros allowed)."""
    if not layers:
        if k == 0:
            yield {}
        return
    for c in range(k + 1):
        for rest in splits(k - c, layers[1:]):
            yield {layers[0]: c, **rest} if c else rest


def exhaustive(inst) -> float | None:
    """The least objective over every plan of the model that breaks no constraint."""
    groups = sorted({u.group for u in inst.units})
    best = None
    for r in range(len(groups) + 1):
        for pre in itertools.combinations(groups, r):
            pre = frozenset(pre)
            streamed = [u for u in inst.units if u.group not in pre]
            options = []
            for u in streamed:
                opts = []
                for z in u.layers(inst.window):
                    for sp in splits(u.chunks, list(range(z, u.pos))):
                        opts.append((z, sp))
                options.append(opts)
            for choice in itertools.product(*options):
                sol = OpgSolution(pre, {u.index: z for u, (z, _) in zip(streamed, choice,
                                                                          strict=True)},
                                  {u.index: sp for u, (_, sp) in zip(streamed, choice,
                                                                     strict=True)})
                if not violations(inst, sol):
                    v = objective(inst, sol)
                    best = v if best is None else min(best, v)
    return best


@pytest.mark.parametrize("seed,n_ops,repeats,m_peak,cap", [
    (1, 4, 1, 9, {"matmul": 0.2, "elementwise": 3.0, "norm": 0.0}),
    (2, 5, 1, 8, {"matmul": 0.3, "elementwise": 1.0, "norm": 0.0}),
    (3, 3, 2, 10, {"matmul": 0.2, "elementwise": 3.0, "norm": 0.0}),
    (4, 4, 1, 30, {"matmul": 0.0, "elementwise": 0.5, "norm": 0.0}),
    (5, 5, 1, 12, {"matmul": 0.6, "elementwise": 3.0, "norm": 0.0}),
])
def test_opg_equals_an_exhaustive_search_of_its_objective(toy_zc, seed, n_ops, repeats, m_peak,
                                                           cap):
    problem = build_problem(small(seed, n_ops, repeats), toy_zc, None)
    inst = instance(problem, m_peak * MB, lam=0.9, window=3, chunk=1 * MB, capacity=cap)
    best = exhaustive(inst)
    sol = solve(inst, 20.0)
    if best is None:
        assert sol.objective is None and sol.status == "INFEASIBLE"
        return
    assert sol.status == "OPTIMAL"
    assert sol.objective == pytest.approx(best)
    assert not violations(inst, sol)


def test_relaxed_model_finds_the_strict_optimum_when_one_exists(toy_zc):
    problem = build_problem(small(2, 5), toy_zc, None)
    inst = instance(problem, 8 * MB, window=3, chunk=MB,
                    capacity={"matmul": 0.3, "elementwise": 1.0, "norm": 0.0})
    strict, relaxed = solve(inst, 20.0), solve(inst, 20.0, relaxed=True)
    assert not relaxed.over_capacity
    assert relaxed.objective == pytest.approx(strict.objective)


def test_fallback_preloads_the_largest_violating_weight_then_gives_up(toy_zc):
    """No load capacity anywhere and an M_peak below all weights: no strict plan exists, so the
    relaxed plan's violating weights are preloaded, largest first, until M_peak refuses more;
    the policy then falls back to the greedy planner and says so."""
    wl = small(5, 5)
    problem = build_problem(wl, toy_zc, None)
    total = sum(problem.groups[g].bytes for g in {u.group for u in problem.units})
    cap = total + max(problem.act_bytes) - 1  # everything preloaded does not fit
    inst = instance(problem, cap, window=3, chunk=MB, capacity={})
    assert solve(inst, 20.0).status == "INFEASIBLE"
    out = plan_opg(inst, 20.0)
    assert out.solution is None and out.preloaded_by_fallback
    assert "preload group" in out.steps[0] and "no plan fits M_peak" in out.steps[-1]
    sizes = [inst.group_bytes[g] for g in out.preloaded_by_fallback]
    assert sizes == sorted(sizes, reverse=True)
    s = plan("flashmem-opg", wl, toy_zc, cap, time_limit=20, window=3, chunk=MB, capacity={})
    assert s.meta["planner"] == "greedy (OPG fallback)" and s.meta["fallback"]
    assert simulate(s, toy_zc).metrics.feasible


def test_greedy_is_the_last_fallback_and_says_so(toy_zc):
    wl = small(1, 4)
    # M_peak below one weight + its activations: no OPG plan; the greedy planner finds none
    # either, so every load runs just in time and the engine reports the budget infeasible
    s = plan("flashmem-opg", wl, toy_zc, m_peak="1MB", time_limit=5)
    assert "no plan fits M_peak" in " ".join(s.meta["opg_steps"])
    assert s.meta["planner"].startswith(("greedy", "just-in-time"))
    assert s.meta["fallback"]


def test_options_are_checked(toy_zc):
    wl = small(1, 4)
    for opts, msg in (({"lam": 2}, "between 0 and 1"), ({"window": 0}, "window"),
                      ({"m_peak": "lots"}, "m_peak"), ({"time_limit": -1}, "time_limit"),
                      ({"capacity": {"gemm": 0.2}}, "op classes")):
        with pytest.raises(SimError, match=msg):
            plan("flashmem-opg", wl, toy_zc, **opts)


@pytest.mark.parametrize("name", ["mobilenetv2", "resnet50"])
def test_on_the_zoo_it_respects_m_peak_and_the_load_capacities(name):
    prof = load_profile("snapdragon-8-gen-3")
    wl = resolve_workload(name, "fp16")
    full = simulate(plan("preload", wl, prof), prof).metrics.peak_memory_bytes
    s = plan("flashmem-opg", wl, prof, full, time_limit=1)  # validated against the IR
    assert s.meta["planner"].startswith("opg"), s.meta
    assert s.meta["model_violations"] == 0
    assert s.meta["planned_peak_bytes"] <= full
    m = simulate(s, prof).metrics
    assert m.feasible and m.peak_memory_bytes <= full
    assert m.latency_s >= s.meta["lower_bound_s"] - 1e-12
    assert s.meta["estimated_latency_s"] == pytest.approx(m.latency_s, rel=1e-6)


def test_greedy_start_respects_the_capacities(toy_zc):
    """The solver's starting plan: every use's chunks within its window and the capacities
    (M_peak unbounded here), uses that do not fit preloaded."""
    from sim.planner.opg import greedy_opg

    for seed in range(1, 6):
        problem = build_problem(small(seed, 5, 2), toy_zc, None)
        inst = instance(problem, 10**12, window=3, chunk=MB,
                        capacity={"matmul": 0.3, "elementwise": 1.0, "norm": 0.0})
        start = greedy_opg(inst)
        assert not violations(inst, start)
        assert solve(inst, 20.0).objective <= start.objective + 1e-12


@pytest.mark.parametrize(("seed", "n", "repeats", "slack"),
                         [(727502, 1, 3, 1.274), (989228, 7, 2, 1.958), (460827, 15, 3, 1.553)])
def test_it_runs_wherever_the_capacity_search_says_it_can(toy_profile, seed, n, repeats, slack):
    """The capacity search gives flashmem-opg flashmem's floor (its last fallback is flashmem's
    greedy planner). On these random graphs, above that floor, the OPG found no plan and its
    old fallback (whole tensors, just in time) needed a staging copy and a texture of a weight
    at once: the schedule could not start. Now it completes, under jitter too."""
    from sim.capacity import min_feasible_budget
    from sim.engine import jitter_hook

    from helpers import random_workload

    wl = random_workload(seed, n, repeats)
    budget = int(min_feasible_budget("flashmem-opg", wl, toy_profile) * slack)
    s = plan("flashmem-opg", wl, toy_profile, budget)
    for hook in (None, jitter_hook(0.3, seed)):
        m = simulate(s, toy_profile, hook=hook, record_trace=False).metrics
        assert m.feasible and m.peak_memory_bytes <= budget, (s.meta["planner"], m.error)
