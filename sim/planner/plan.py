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

from collections.abc import Callable
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
    return _memory(problem, plan).tolist()


def _memory(problem: Problem, plan: Plan) -> np.ndarray:
    a = problem.arrays
    base = resident_bytes(problem, plan.resident) + problem.staging_reserve()
    diff = np.zeros(problem.n + 1, dtype=np.int64)
    if plan.issue:
        idx = np.fromiter(plan.issue.keys(), dtype=np.int64, count=len(plan.issue))
        pos = np.fromiter(plan.issue.values(), dtype=np.int64, count=len(plan.issue))
        size = a.group_bytes[a.unit_group[idx]]
        np.add.at(diff, pos, size)
        np.add.at(diff, a.unit_pos[idx] + 1, -size)
    return np.cumsum(diff[:-1]) + a.act + base


def fits(problem: Problem, plan: Plan) -> bool:
    return problem.budget is None or int(_memory(problem, plan).max(initial=0)) <= problem.budget


def makespan(problem: Problem, plan: Plan) -> float:
    """End time of the last op under the plan: the timing of the executors (sim.flow) for the
    schedule `build_schedule` makes of it (direct loads, sync hops included), with the kernels
    between two loads summed at once.

    Resident groups are read back to back from the start (first use first) and op 0 waits for
    them; a load issued at position p asks when op p-1 ends, storage (then the copy unit) serves
    loads in issue order, and an op starts when the op before it has ended and its load is in.
    """
    a = problem.arrays
    prefix, read_s, copy_s = a.prefix, a.read_s, a.copy_s
    floor, after_kernel, into_copy, into_kernel = problem.hops
    zc = problem.zero_copy
    groups = problem.groups
    storage = copy = 0.0
    ready0 = 0.0
    for g in sorted(plan.resident, key=lambda g: groups[g].uses[0]):
        storage = max(storage, floor) + read_s[g]
        end = storage
        if not zc:
            copy = max(copy, storage + into_copy) + copy_s[g]
            end = copy
        ready0 = max(ready0, end + into_kernel)
    n = problem.n
    if n == 0:
        return 0.0
    # the op timeline: ops after `anchor` ran back to back from `anchor_end` (the end of op
    # `anchor`; -1 = the start)
    anchor, anchor_end = -1, 0.0
    if ready0 > 0.0:  # op 0 waits for the resident loads
        anchor, anchor_end = 0, ready0 + (prefix[1] - prefix[0])
    units = problem.units
    unit_group = a.unit_group
    streamed = list(plan.issue)
    issue = list(plan.issue.values())
    if any(b < a for a, b in zip(issue, issue[1:], strict=False)) or \
            any(b < a for a, b in zip(streamed, streamed[1:], strict=False)):
        streamed = sorted(plan.issue, key=lambda i: (plan.issue[i], i))  # storage's order
        issue = [plan.issue[i] for i in streamed]
    uses = sorted(streamed)  # units are numbered in position order
    avail: dict[int, float] = {}
    m, nxt = len(streamed), 0
    for i in uses:
        u = units[i].pos
        # the loads issued up to op u: each asks when op p-1 ends (at the start for p = 0)
        while nxt < m and issue[nxt] <= u:
            p, j = issue[nxt], streamed[nxt]
            nxt += 1
            ready = anchor_end + (prefix[p] - prefix[anchor + 1]) + after_kernel if p > 0 \
                else 0.0
            g = int(unit_group[j])
            start = max(ready, floor, storage)
            storage = start + read_s[g]
            done = storage
            if not zc:
                copy = max(storage + into_copy, copy) + copy_s[g]
                done = copy
            avail[j] = done + into_kernel
        # op u starts when op u-1 has ended and its load is in
        prev = ready0 if u == 0 else anchor_end + (prefix[u] - prefix[anchor + 1])
        if avail[i] > prev:
            anchor, anchor_end = u, avail[i] + (prefix[u + 1] - prefix[u])
    return anchor_end + (prefix[n] - prefix[anchor + 1])


def earliest_issue(problem: Problem, resident: frozenset[int],
                   lookahead: int = DEFAULT_LOOKAHEAD) -> Plan | None:
    """Issue every streamed load as early as memory and issue order allow; None if a unit
    cannot fit even when loaded just in time."""
    budget = problem.budget
    base = resident_bytes(problem, resident) + problem.staging_reserve()
    a = problem.arrays
    # free[k]: bytes still free while op k runs, given the loads issued so far
    free = None if budget is None else budget - base - a.act
    issue: dict[int, int] = {}
    p_prev = 0
    gbytes = a.group_bytes
    for u in problem.units:
        if u.group in resident:
            continue
        pos = u.pos
        lo = max(p_prev, pos - lookahead)
        if free is None:
            p = lo
        else:
            s = gbytes[u.group]
            short = (free[lo:pos + 1] < s).nonzero()[0]
            if short.size:
                if short[-1] == pos - lo:
                    return None
                p = lo + int(short[-1]) + 1
            else:
                p = lo
            free[p:pos + 1] -= s
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


def bound(problem: Problem, resident: frozenset[int]) -> float:
    """No plan with this residency ends sooner: every op runs, and storage reads the resident
    groups once and each streamed unit's group once per use."""
    a = problem.arrays
    reads = a.read_s
    streamed = sum(reads[g.gid] * len(g.uses) for g in problem.groups if g.gid not in resident)
    storage = sum(reads[g] for g in resident) + streamed
    return max(a.prefix[-1], storage + (problem.hops[0] if storage else 0.0))


def greedy(problem: Problem, lookahead: int = DEFAULT_LOOKAHEAD) -> tuple[Plan, float] | None:
    """Best (by analytical makespan) over the residency candidates of the earliest-issue plan
    and the fixed-window plans (depth 1..MAX_WINDOW), which contain the pipeline policy's
    issue pattern.

    Candidates are tried in order of their lower bound (`bound`) and skipped once it exceeds
    the best makespan found: the plan chosen is the one trying all of them in turn would
    choose (the first, in that order, to be better than every one before it)."""
    found: dict[int, tuple[Plan, float]] = {}  # candidate's turn -> (plan, makespan)
    best = [float("inf")]

    def attempt(turn: int, lb: float, make: Callable[[], Plan | None]) -> None:
        if lb > best[0] * (1 + 1e-9) + 1e-12:
            return  # cannot be chosen (see the docstring)
        plan = make()
        if plan is not None:
            t = makespan(problem, plan)
            found[turn] = (plan, t)
            best[0] = min(best[0], t)

    def winner(turns: int) -> tuple[Plan, float] | None:
        chosen: tuple[Plan, float] | None = None
        for turn in range(turns):
            r = found.get(turn)
            if r is not None and (chosen is None or r[1] < chosen[1] - 1e-15):
                chosen = r
        return chosen

    candidates = residency_candidates(problem)
    bounds = [bound(problem, r) for r in candidates]
    for turn in sorted(range(len(candidates)), key=lambda k: bounds[k]):
        attempt(turn, bounds[turn],
                lambda r=candidates[turn]: earliest_issue(problem, r, lookahead))
    first = winner(len(candidates))
    # fixed windows for the residency the earliest-issue plans preferred (and for none)
    turn = len(candidates)
    for resident in dict.fromkeys([first[0].resident if first else frozenset(), frozenset()]):
        lb = bound(problem, resident)
        for d in range(1, MAX_WINDOW + 1):
            attempt(turn, lb, lambda r=resident, d=d: window_issue(problem, r, d))
            turn += 1
    return winner(turn)


def just_in_time(problem: Problem) -> Plan:
    """Every load issued at its own op: the least memory any streamed plan can use."""
    return Plan(frozenset(), {u.index: u.pos for u in problem.units}, "just-in-time")
