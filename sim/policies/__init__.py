"""Policies turn (workload, profile, budget) into a Schedule. `plan` is the one entry point."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.errors import SimError
from sim.hardware import IDEAL
from sim.lowering import lower
from sim.policies.baselines import pipeline, preload, sequential
from sim.policies.builder import Builder, expected_ops
from sim.schedule import BUDGET_SCOPES, Schedule, validate_schedule
from workloads.workload import Workload

PolicyFn = Callable[..., Builder]
# inputs `plan` hands to the policies that take them (not user options)
PLANNER_INPUTS = ("runtime", "budget_scope")


def _registry() -> dict[str, PolicyFn]:
    from sim.policies.demand_layering import demand_layering

    reg: dict[str, PolicyFn] = {"preload": preload, "sequential": sequential,
                                "pipeline": pipeline, "demand-layering": demand_layering}
    try:
        from sim.policies.flashmem import flashmem
        from sim.policies.flashmem_opg import flashmem_opg
    except ImportError:  # the planner modules need OR-Tools
        return reg
    reg["flashmem"] = flashmem
    reg["flashmem-opg"] = flashmem_opg
    return reg


def list_policies() -> list[str]:
    return list(_registry())


def policy_options(name: str) -> dict[str, Any]:
    """The keyword options a policy accepts, with their defaults."""
    fn = get_policy(name)
    return {p.name: p.default for p in list(inspect.signature(fn).parameters.values())[3:]
            if p.name not in PLANNER_INPUTS}


def get_policy(name: str) -> PolicyFn:
    reg = _registry()
    if name not in reg:
        raise SimError(f"unknown policy {name!r}; valid policies: {', '.join(reg)}")
    return reg[name]


def plan(policy: str, workload: Workload, profile: HardwareProfile, budget: int | None = None,
         runtime: RuntimeProfile | None = None, budget_scope: str = "total",
         **options: Any) -> Schedule:
    """Build and validate the schedule of `policy` for `workload` on `profile` under `budget`
    (capping every category, or with `budget_scope` 'weights' weights + staging only), for the
    ops as `runtime` lowers them (default: the `ideal` runtime, no fusion)."""
    fn = get_policy(policy)
    valid = policy_options(policy)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise SimError(f"policy {policy!r} has no option(s) {unknown}; valid options: "
                       f"{', '.join(valid) or 'none'}")
    if budget is not None and budget <= 0:
        raise SimError(f"budget must be positive, found {budget} bytes")
    if budget_scope not in BUDGET_SCOPES:
        raise SimError(f"unknown budget scope {budget_scope!r}; valid: {', '.join(BUDGET_SCOPES)}")
    runtime = runtime or IDEAL
    workload = lower(workload, runtime)
    params = inspect.signature(fn).parameters
    if "runtime" in params:
        options = {**options, "runtime": runtime}
    if "budget_scope" in params:
        options = {**options, "budget_scope": budget_scope}
    schedule = fn(workload, profile, budget, **options).schedule
    schedule.runtime = runtime.name
    schedule.budget_scope = budget_scope
    validate_schedule(schedule, expected_ops(workload))
    return schedule


__all__ = ["get_policy", "list_policies", "plan", "policy_options"]
