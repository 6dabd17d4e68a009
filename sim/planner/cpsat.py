"""Overlap plan generation as a CP-SAT model (OR-Tools).

Decisions: r[g] (reused group g stays resident) and y[i,k] (streamed unit i's load has been
issued by position k, within `lookahead` ops before its use; issue positions never decrease, so
storage serves loads in unit order as the engine does). Timing follows `plan.makespan`
exactly (integer nanoseconds); memory at every op boundary stays within the budget.
Objective: the end of the last op. The greedy plan is the starting hint; the search is
deterministic (fixed seed, interleaved workers, deterministic time limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.planner.plan import DEFAULT_LOOKAHEAD, Plan
from sim.planner.problem import Problem

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

NS = 1e9


@dataclass
class SolverResult:
    plan: Plan | None
    status: str
    objective_s: float | None
    bound_s: float | None
    wall_s: float


def _ns(t: float) -> int:
    return int(round(t * NS))


def solve(problem: Problem, hint: Plan | None = None, time_limit_s: float = 10.0,
          lookahead: int = DEFAULT_LOOKAHEAD, workers: int = 1,
          free: set[int] | None = None) -> SolverResult:
    """Solve the overlap plan; returns the best plan found (or None) with its bound. With
    `free` (unit indices), only those units' issue positions are decided: every other unit and
    the resident set stay as in `hint` (one window of a rolling-window solve)."""
    # here, not at the top: OR-Tools (and the pandas it imports) costs 0.2 s to import, and
    # most plans never run the solver
    from ortools.sat.python import cp_model

    m = cp_model.CpModel()
    n, units, groups = problem.n, problem.units, problem.groups
    zc = problem.zero_copy
    c = [_ns(t) for t in problem.compute_s]
    horizon = (sum(c) + sum(_ns(g.read_s + g.copy_s) * len(g.uses) for g in groups)
               + 1) * 2

    r = {g.gid: m.new_bool_var(f"r{g.gid}") for g in groups if len(g.uses) > 1}
    streamed = {}
    for u in units:
        if u.group in r:
            streamed[u.index] = r[u.group].Not()
        else:
            streamed[u.index] = m.new_constant(1)

    # resident loads: read back to back from t=0 in first-use order, then copied (no zero-copy)
    order = sorted(r, key=lambda g: groups[g].uses[0])
    res_read_end = sum(_ns(groups[g].read_s) * r[g] for g in order)
    ready0 = m.new_int_var(0, horizon, "ready0")
    cum = 0
    copy_end = m.new_constant(0)
    for g in order:
        cum = cum + _ns(groups[g].read_s) * r[g]
        if not zc:
            ce = m.new_int_var(0, horizon, f"rce{g}")
            m.add(ce >= copy_end + _ns(groups[g].copy_s) * r[g])
            m.add(ce >= cum + _ns(groups[g].copy_s) * r[g])
            copy_end = ce
    m.add(ready0 >= res_read_end)
    if not zc:
        m.add(ready0 >= copy_end)

    S = [m.new_int_var(0, horizon, f"S{k}") for k in range(n)]
    for k in range(1, n):
        m.add(S[k] >= S[k - 1] + c[k - 1])
    if n:
        m.add(S[0] >= ready0)

    # y[i][k]: streamed unit i's load has been issued at or before position k (monotone in k)
    y: dict[int, dict[int, cp_model.IntVar]] = {}
    p_prev = None
    F_prev: object = res_read_end
    C_prev: object = copy_end
    fixed: dict[int, int | None] = {}  # unit -> its fixed issue position (None: resident)
    if free is not None and hint is not None:
        fixed = {u.index: hint.issue.get(u.index) for u in units if u.index not in free}
    const_terms: list[int] = [0] * n  # bytes of fixed streamed loads held at each position
    for u in units:
        g = groups[u.group]
        if u.index in fixed:  # a decision outside the window: constants from the hint
            q = fixed[u.index]
            if q is None:
                continue
            p = m.new_constant(q)
            if p_prev is not None:
                m.add(p >= p_prev)
            p_prev = p
            ls = m.new_int_var(0, horizon, f"Ls{u.index}")
            m.add(ls >= F_prev)
            if q >= 1:
                m.add(ls >= S[q - 1] + c[q - 1])
            F = m.new_int_var(0, horizon, f"F{u.index}")
            m.add(F >= F_prev)
            m.add(F >= ls + _ns(g.read_s))
            ready = ls + _ns(g.read_s)
            if not zc:
                C = m.new_int_var(0, horizon, f"C{u.index}")
                m.add(C >= C_prev)
                m.add(C >= ls + _ns(g.read_s) + _ns(g.copy_s))
                m.add(C >= C_prev + _ns(g.copy_s))
                C_prev = C
                ready = C
            m.add(S[u.pos] >= ready)
            F_prev = F
            for k in range(q, u.pos + 1):
                const_terms[k] += g.bytes
            continue
        lo = max(0, u.pos - lookahead)
        if hint is not None and u.index in hint.issue:
            lo = min(lo, hint.issue[u.index])  # the hint's own issue point stays expressible
        yi = {k: m.new_bool_var(f"y{u.index}_{k}") for k in range(lo, u.pos + 1)}
        y[u.index] = yi
        for k in range(lo + 1, u.pos + 1):
            m.add_implication(yi[k - 1], yi[k])
        m.add(yi[u.pos] == 1).only_enforce_if(streamed[u.index])
        m.add(yi[u.pos] == 0).only_enforce_if(streamed[u.index].Not())
        p = m.new_int_var(0, n, f"p{u.index}")
        m.add(p == u.pos + 1 - sum(yi.values())).only_enforce_if(streamed[u.index])
        if p_prev is not None:
            m.add(p >= p_prev)
        p_prev = p
        ls = m.new_int_var(0, horizon, f"Ls{u.index}")
        m.add(ls >= F_prev)
        for k in range(max(lo, 1), u.pos + 1):
            # not issued before k -> the load cannot start before op k-1 ends
            if k - 1 >= lo:
                m.add(ls >= S[k - 1] + c[k - 1]).only_enforce_if(yi[k - 1].Not())
            else:
                m.add(ls >= S[k - 1] + c[k - 1])
        F = m.new_int_var(0, horizon, f"F{u.index}")
        m.add(F >= F_prev)
        m.add(F >= ls + _ns(g.read_s)).only_enforce_if(streamed[u.index])
        ready = ls + _ns(g.read_s)
        if not zc:
            cs = m.new_int_var(0, horizon, f"Cs{u.index}")
            m.add(cs >= ls + _ns(g.read_s))
            m.add(cs >= C_prev)
            C = m.new_int_var(0, horizon, f"C{u.index}")
            m.add(C >= C_prev)
            m.add(C >= cs + _ns(g.copy_s)).only_enforce_if(streamed[u.index])
            C_prev = C
            ready = cs + _ns(g.copy_s)
        m.add(S[u.pos] >= ready).only_enforce_if(streamed[u.index])
        F_prev = F

    if problem.budget is not None:
        base = sum(groups[g].bytes * r[g] for g in r) + problem.staging_reserve()
        terms: list[list[object]] = [[] for _ in range(n)]
        for u in units:
            s = groups[u.group].bytes
            for k, v in y.get(u.index, {}).items():
                terms[k].append(s * v)
        for k in range(n):
            m.add(base + sum(terms[k]) + const_terms[k] + problem.act_bytes[k]
                  <= problem.budget)

    makespan = S[n - 1] + c[n - 1] if n else 0
    m.minimize(makespan)

    if hint is not None:
        for g, v in r.items():
            m.add_hint(v, g in hint.resident)
            if free is not None:
                m.add(v == (g in hint.resident))
        for i, yi in y.items():
            for k, v in yi.items():
                m.add_hint(v, i in hint.issue and hint.issue[i] <= k)

    solver = cp_model.CpSolver()
    solver.parameters.max_deterministic_time = time_limit_s
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = 0
    if workers > 1:
        solver.parameters.interleave_search = True
    status = solver.solve(m)
    name = solver.status_name(status)
    wall = solver.wall_time
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return SolverResult(None, name, None, None, wall)
    resident = frozenset(g for g, v in r.items() if solver.boolean_value(v))
    issue = {i: q for i, q in fixed.items() if q is not None}
    for i, yi in y.items():
        issued = [k for k, v in yi.items() if solver.boolean_value(v)]
        if issued:
            issue[i] = min(issued)
    plan = Plan(resident, issue, "cp-sat")
    return SolverResult(plan, name, solver.objective_value / NS,
                        solver.best_objective_bound / NS, wall)
