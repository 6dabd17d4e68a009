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
from sim.schedule import Schedule, validate_schedule
from workloads.workload import Workload

PolicyFn = Callable[..., Builder]


def _registry() -> dict[str, PolicyFn]:
    reg: dict[str, PolicyFn] = {"preload": preload, "sequential": sequential,
                                "pipeline": pipeline}
    try:
        from sim.policies.flashmem import flashmem
    except ImportError:  # the planner module is optional while it is being built
        return reg
    reg["flashmem"] = flashmem
    return reg


def list_policies() -> list[str]:
    return list(_registry())


# inputs `plan` passes to the policies that take them (not options a user sets)
CONTEXT = ("runtime", "problem")


def policy_options(name: str) -> dict[str, Any]:
    """The keyword options a policy accepts, with their defaults."""
    fn = get_policy(name)
    return {p.name: p.default for p in list(inspect.signature(fn).parameters.values())[3:]
            if p.name not in CONTEXT}


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
         runtime: RuntimeProfile | None = None, problem: Any = None,
         **options: Any) -> Schedule:
    """Build and validate the schedule of `policy` for `workload` on `profile` under `budget`,
    for the ops as `runtime` lowers them (default: the `ideal` runtime, no fusion).
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
    runtime = runtime or IDEAL
    workload = lower(workload, runtime)
    params = inspect.signature(fn).parameters
    if "runtime" in params:
        options = {**options, "runtime": runtime}
    if problem is not None and "problem" in params:
        options = {**options, "problem": problem}
    built = fn(workload, profile, budget, **options)
    schedule = built.schedule
    schedule.runtime = runtime.name
    # against the workload the policy planned (its ops tiled, its lookups reading rows)
    validate_schedule(schedule, expected_ops(built.workload))
    return schedule


__all__ = ["budget_free", "get_policy", "list_policies", "plan", "policy_options"]
