"""Policies turn (workload, profile, budget) into a Schedule. `plan` is the one entry point."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.errors import SimError
from sim.gcpause import paused_gc
from sim.hardware import IDEAL
from sim.lowering import lower
from sim.policies.baselines import pipeline, preload, sequential
from sim.policies.builder import Builder, expected_ops
from sim.schedule import BUDGET_SCOPES, Schedule, validate_schedule
from workloads.workload import Workload

PolicyFn = Callable[..., Builder]


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


# inputs `plan` hands to the policies that take them (not options a user sets)
PLANNER_INPUTS = ("runtime", "budget_scope", "problem")


def policy_options(name: str) -> dict[str, Any]:
    """The keyword options a policy accepts, with their defaults."""
    fn = get_policy(name)
    return {p.name: p.default for p in list(inspect.signature(fn).parameters.values())[3:]
            if p.name not in PLANNER_INPUTS}


def budget_free(name: str, options: dict[str, Any]) -> bool:
    """Whether `name` with `options` plans the same schedule at every budget (the budget then
    only gates memory when it runs): preload, sequential, a pipeline of fixed depth."""
    get_policy(name)
    if name in ("preload", "sequential"):
        return True
    return name == "pipeline" and options.get("depth", "auto") != "auto"


def get_policy(name: str) -> PolicyFn:
    reg = _registry()
    if name not in reg:
        raise SimError(f"unknown policy {name!r}; valid policies: {', '.join(reg)}")
    return reg[name]


def plan(policy: str, workload: Workload, profile: HardwareProfile, budget: int | None = None,
         runtime: RuntimeProfile | None = None, budget_scope: str = "total",
         problem: Any = None, **options: Any) -> Schedule:
    """Build and validate the schedule of `policy` for `workload` on `profile` under `budget`
    (capping every category, or with `budget_scope` 'weights' weights + staging only), for the
    ops as `runtime` lowers them (default: the `ideal` runtime, no fusion).
    `problem`: the planning problem of these same inputs, already extracted (sweeps share it
    between budgets); used by the policies that plan over one."""
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
    if problem is not None and "problem" in params:
        options = {**options, "problem": problem}
    with paused_gc():  # planning allocates much and frees it all (see sim.gcpause)
        built = fn(workload, profile, budget, **options)
        schedule = built.schedule
        schedule.runtime = runtime.name
        schedule.budget_scope = budget_scope
        # against the workload the policy planned (its ops tiled, its lookups reading rows)
        validate_schedule(schedule, expected_ops(built.workload))
    return schedule


__all__ = ["budget_free", "get_policy", "list_policies", "plan", "policy_options"]
