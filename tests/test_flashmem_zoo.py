"""Budget sweeps of zoo models on several phones and boards: flashmem is never slower than
pipeline or sequential at the same budget, never exceeds it, and reports its lower bound."""

from __future__ import annotations

import pytest

from hwprofiles import load_profile
from sim import plan, simulate
from sim.capacity import min_feasible_budget
from workloads.scenarios import resolve_workload

PROFILES = ["snapdragon-8-gen-3", "tensor-g3", "jetson-agx-orin"]
MODELS = ["mobilenetv2", "resnet50", "gpt2"]


@pytest.mark.parametrize("profile_name", PROFILES)
@pytest.mark.parametrize("model", MODELS)
def test_flashmem_dominates_baselines_over_a_budget_sweep(model, profile_name):
    profile = load_profile(profile_name)
    wl = resolve_workload(model, "fp16")
    least = min_feasible_budget("flashmem", wl, profile)
    seq_least = min_feasible_budget("sequential", wl, profile)
    if profile.gpu.prefers_texture:
        assert least < seq_least  # no GPU buffer to transform from
    else:
        assert least <= seq_least
    for budget in sorted({least, int(1.5 * least), wl.weight_bytes // 2,
                          int(1.2 * wl.weight_bytes)} - {b for b in [wl.weight_bytes // 2]
                                                          if b < least}):
        fm = simulate(plan("flashmem", wl, profile, budget), profile)
        m = fm.metrics
        assert m.feasible, (budget, m.error)
        assert m.peak_memory_bytes <= budget
        assert max(row[1] for row in fm.trace.memory) <= budget
        lb = m.meta["lower_bound_s"]
        assert 0 < lb <= m.latency_s
        assert m.meta["gap_to_lower_bound"] >= 0
        assert m.meta["estimated_latency_s"] == pytest.approx(m.latency_s, rel=1e-6)
        for policy in ("sequential", "pipeline"):
            other = simulate(plan(policy, wl, profile, budget), profile,
                             record_trace=False).metrics
            if other.feasible:
                assert m.latency_s <= other.latency_s * (1 + 1e-9), (policy, budget)
