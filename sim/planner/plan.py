"""A FlashMem plan (which groups stay resident, where each streamed load is issued), its
analytical timeline, and the greedy planner.

The analytical timeline mirrors the engine for the `direct` path: resident loads are read first
(back to back) and the first op waits for them; a streamed load issued at position k may start
when op k-1 ends, storage serves loads in issue order, each op starts when the previous op has
ended and its weights have arrived. Memory is checked at op boundaries: resident bytes + every
streamed load issued and not yet freed (+ its staging without zero-copy) + the activations of
the running op must fit the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.planner.problem import Problem

DEFAULT_LOOKAHEAD = 256  # how many ops before its use a load may be issued
MAX_WINDOW = 8  # deepest fixed window tried as a candidate


@dataclass
class Plan:
    """Decisions: resident group ids, and the issue position of each streamed unit."""

    resident: frozenset[int]
    issue: dict[int, int] = field(default_factory=dict)  # unit index -> position
    planner: str = "greedy"

    def streamed(self, problem: Problem) -> list[int]:
        return [u.index for u in problem.units if u.group not in self.resident]


def resident_bytes(problem: Problem, resident: frozenset[int]) -> int:
    return sum(problem.groups[g].bytes for g in resident)


def memory_profile(problem: Problem, plan: Plan) -> list[int]:
    """Planned bytes in use while each op runs."""
    base = resident_bytes(problem, plan.resident) + problem.staging_reserve()
    diff = np.zeros(problem.n + 1, dtype=np.int64)
    for i, p in plan.issue.items():
        u = problem.units[i]
        s = problem.groups[u.group].bytes
        diff[p] += s
        diff[u.pos + 1] -= s
    mem = np.cumsum(diff[:-1]) + np.asarray(problem.act_bytes, dtype=np.int64) + base
    return mem.tolist()


def fits(problem: Problem, plan: Plan) -> bool:
    return problem.budget is None or max(memory_profile(problem, plan), default=0) <= problem.budget


def makespan(problem: Problem, plan: Plan) -> float:
    """End time of the last op under the plan (the engine's timing for the direct path)."""
    storage = copy = 0.0
    zc = problem.zero_copy
    order = sorted(plan.resident, key=lambda g: problem.groups[g].uses[0])
    ready0 = 0.0
    for g in order:
        grp = problem.groups[g]
        storage += grp.read_s
        end = storage
        if not zc:
            copy = max(copy, storage) + grp.copy_s
            end = copy
        ready0 = max(ready0, end)
    issued: dict[int, list[int]] = {}
    for i, p in sorted(plan.issue.items()):
        issued.setdefault(p, []).append(i)
    unit_at = {u.pos: u.index for u in problem.units}
    ready: dict[int, float] = {}
    end_prev = 0.0
    for k in range(problem.n):
        for i in issued.get(k, ()):
            grp = problem.groups[problem.units[i].group]
            storage = max(storage, end_prev) + grp.read_s
            done = storage
            if not zc:
                copy = max(copy, storage) + grp.copy_s
                done = copy
            ready[i] = done
        start = end_prev
        if k == 0:
            start = max(start, ready0)
        i = unit_at.get(k)
        if i is not None and i in ready:
            start = max(start, ready[i])
        end_prev = start + problem.compute_s[k]
    return end_prev


def earliest_issue(problem: Problem, resident: frozenset[int],
                   lookahead: int = DEFAULT_LOOKAHEAD) -> Plan | None:
    """Issue every streamed load as early as memory and issue order allow; None if a unit
    cannot fit even when loaded just in time."""
    budget = problem.budget
    base = resident_bytes(problem, resident) + problem.staging_reserve()
    # free[k]: bytes still free while op k runs, given the loads issued so far
    free = None
    if budget is not None:
        free = budget - base - np.asarray(problem.act_bytes, dtype=np.int64)
    issue: dict[int, int] = {}
    p_prev = 0
    for u in problem.units:
        if u.group in resident:
            continue
        s = problem.groups[u.group].bytes
        lo = max(p_prev, u.pos - lookahead)
        if free is None:
            p = lo
        else:
            short = np.flatnonzero(free[lo:u.pos + 1] < s)
            if short.size and short[-1] == u.pos - lo:
                return None
            p = lo + int(short[-1]) + 1 if short.size else lo
            free[p:u.pos + 1] -= s
        issue[u.index] = p
        p_prev = p
    return Plan(resident, issue)


def window_issue(problem: Problem, resident: frozenset[int], depth: int) -> Plan | None:
    """Demand-Layering style issue points: streamed unit i is issued right after streamed unit
    i - depth has run (its weights freed); None if the plan does not fit the budget."""
    issue: dict[int, int] = {}
    streamed = [u for u in problem.units if u.group not in resident]
    p_prev = 0
    for j, u in enumerate(streamed):
        p = streamed[j - depth].pos + 1 if j >= depth else 0
        p = min(max(p, p_prev), u.pos)
        issue[u.index] = p
        p_prev = p
    plan = Plan(resident, issue)
    return plan if fits(problem, plan) else None


def residency_candidates(problem: Problem, steps: int = 8) -> list[frozenset[int]]:
    """Resident sets to try: prefixes of the reused groups (most reuses first) filling
    0, 1/steps, ..., all of the memory left after the largest activation footprint."""
    reused = sorted((g for g in problem.groups if len(g.uses) > 1),
                    key=lambda g: (-len(g.uses), g.uses[0]))
    if not reused:
        return [frozenset()]
    if problem.budget is None:
        return [frozenset(g.gid for g in reused), frozenset()]
    avail = problem.budget - max(problem.act_bytes, default=0) - problem.staging_reserve()
    out: list[frozenset[int]] = []
    for s in range(steps + 1):
        cap = avail * s / steps
        chosen, total = [], 0
        for g in reused:
            if total + g.bytes <= cap:
                chosen.append(g.gid)
                total += g.bytes
        cand = frozenset(chosen)
        if cand not in out:
            out.append(cand)
    return out


def greedy(problem: Problem, lookahead: int = DEFAULT_LOOKAHEAD) -> tuple[Plan, float] | None:
    """Best (by analytical makespan) over the residency candidates of the earliest-issue plan
    and the fixed-window plans (depth 1..MAX_WINDOW), which contain the pipeline policy's
    issue pattern."""
    best: tuple[Plan, float] | None = None

    def consider(plan: Plan | None) -> None:
        nonlocal best
        if plan is not None:
            t = makespan(problem, plan)
            if best is None or t < best[1] - 1e-15:
                best = (plan, t)

    candidates = residency_candidates(problem)
    for resident in candidates:
        consider(earliest_issue(problem, resident, lookahead))
    # fixed windows for the residency the earliest-issue plans preferred (and for none)
    for resident in dict.fromkeys([best[0].resident if best else frozenset(), frozenset()]):
        for d in range(1, MAX_WINDOW + 1):
            consider(window_issue(problem, resident, d))
    return best


def just_in_time(problem: Problem) -> Plan:
    """Every load issued at its own op: the least memory any streamed plan can use."""
    return Plan(frozenset(), {u.index: u.pos for u in problem.units}, "just-in-time")
