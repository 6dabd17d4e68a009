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

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sim.planner.problem import Problem

DEFAULT_LOOKAHEAD = 256  # how many ops before its use a load may be issued
MAX_WINDOW = 8  # deepest fixed window tried as a candidate
BATCH_SIZES = (2**20, 4 * 2**20, 16 * 2**20)  # bytes per read tried as candidates
BATCH_DEPTHS = (1, 2, 3, 4)  # batches in flight tried as candidates
GROW_FIRST = (2**16, 2**20)  # first read of a growing batch sequence (bytes)
GROW_FACTORS = (1.5, 2.0)  # how much larger each next read of it may be


@dataclass
class Plan:
    """Decisions: resident group ids, the issue position of each streamed unit, and which
    streamed units (issued at one position, consecutive) are read together as one load."""

    resident: frozenset[int]
    issue: dict[int, int] = field(default_factory=dict)  # unit index -> position
    planner: str = "greedy"
    batches: tuple[tuple[int, ...], ...] = ()  # units read by one load (others: one each)

    def streamed(self, problem: Problem) -> list[int]:
        return [u.index for u in problem.units if u.group not in self.resident]


def resident_bytes(problem: Problem, resident: frozenset[int]) -> int:
    return sum(problem.groups[g].bytes for g in resident)


def memory_profile(problem: Problem, plan: Plan) -> list[int]:
    """Planned bytes in use while each op runs."""
    return _memory(problem, plan).tolist()


def _memory(problem: Problem, plan: Plan) -> np.ndarray:
    a = problem.arrays
    base = resident_bytes(problem, plan.resident) + staging(problem, plan)
    diff = np.zeros(problem.n + 1, dtype=np.int64)
    if plan.issue:
        idx = np.fromiter(plan.issue.keys(), dtype=np.int64, count=len(plan.issue))
        pos = np.fromiter(plan.issue.values(), dtype=np.int64, count=len(plan.issue))
        size = a.group_bytes[a.unit_group[idx]]
        np.add.at(diff, pos, size)
        np.add.at(diff, a.unit_pos[idx] + 1, -size)
    return np.cumsum(diff[:-1]) + a.act + base


def staging(problem: Problem, plan: Plan) -> int:
    """Host staging kept free without zero-copy: room for the largest single load, a batch's
    groups together (build_schedule reads a batch as one load, staged whole)."""
    reserve = problem.staging_reserve()
    if not reserve or not plan.batches:
        return reserve
    groups, units = problem.groups, problem.units
    return max(reserve, *(sum(groups[g].bytes for g in {units[i].group for i in b})
                          for b in plan.batches))


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
    # `anchor`; -1 = the start); with a host issue interval, op by op instead
    issued = None
    if problem.profile.gpu.kernel_issue_interval > 0.0:
        issued = _Issued(problem.compute_s, problem.profile.gpu.kernel_issue_interval, ready0)
    anchor, anchor_end = -1, 0.0
    if ready0 > 0.0:  # op 0 waits for the resident loads
        anchor, anchor_end = 0, ready0 + (prefix[1] - prefix[0])
    upos = a.unit_pos_list
    loads = a.unit_loads  # per unit: (read, copy) seconds of each of its loads
    batch: dict[int, tuple[int, ...]] = {}  # first unit of a batch -> its units
    member: set[int] = set()  # later units of a batch: read with its first
    for b in plan.batches:
        batch[b[0]] = b
        member.update(b[1:])
    streamed = list(plan.issue)
    issue = list(plan.issue.values())
    if any(b < a for a, b in zip(issue, issue[1:], strict=False)) or \
            any(b < a for a, b in zip(streamed, streamed[1:], strict=False)):
        streamed = sorted(plan.issue, key=lambda i: (plan.issue[i], i))  # storage's order
        issue = [plan.issue[i] for i in streamed]
    uses = sorted(streamed)  # units are numbered in position order
    avail = [0.0] * len(upos)
    ugroup = a.unit_group_list
    held: dict[int, int] = {}  # group -> last use of the units that claimed its load
    gavail: dict[int, float] = {}  # group -> when that load is in
    m, nxt = len(streamed), 0
    for i in uses:
        u = upos[i]
        # the loads issued up to op u: each asks when op p-1 ends (at the start for p = 0)
        while nxt < m and issue[nxt] <= u:
            p, j = issue[nxt], streamed[nxt]
            nxt += 1
            if j in member:
                continue  # read with the first unit of its batch
            together = batch.get(j) or (j,)
            # a group still loaded for an earlier unit is not read again (build_schedule's
            # claims): its later unit takes it as it is
            fresh = []
            for k in together:
                g = ugroup[k]
                if held.get(g, -1) >= p:
                    held[g] = max(held[g], upos[k])
                    avail[k] = gavail[g]
                    if issued is not None:
                        issued.loaded(upos[k], avail[k])
                else:
                    fresh.append(k)
            if not fresh:
                continue
            if p == 0:
                ready = 0.0
            elif issued is not None:
                ready = issued.end_of(p - 1) + after_kernel
            else:
                ready = anchor_end + (prefix[p] - prefix[anchor + 1]) + after_kernel
            if len(fresh) == 1:
                stages = loads[fresh[0]]
            else:
                stages = [problem.load_s(b, r)
                          for b, r in _parts(problem, tuple(fresh), a.unit_group)]
            # one load for the texture tensors, one for the buffer ones (build_schedule's)
            done = ready
            for read, cp in stages:
                start = ready if ready > storage else storage
                storage = (start if start > floor else floor) + read
                done = storage
                if not zc:
                    copy = max(storage + into_copy, copy) + cp
                    done = copy
            done += into_kernel
            for k in fresh:
                g = ugroup[k]
                avail[k] = done
                if issued is not None:
                    issued.loaded(upos[k], done)
                if held.get(g, -1) < p:
                    held[g], gavail[g] = upos[k], done
                else:  # two units of one group read together
                    held[g] = max(held[g], upos[k])
        if issued is not None:
            continue
        # op u starts when op u-1 has ended and its load is in
        prev = ready0 if u == 0 else anchor_end + (prefix[u] - prefix[anchor + 1])
        if avail[i] > prev:
            anchor, anchor_end = u, avail[i] + (prefix[u + 1] - prefix[u])
    if issued is not None:
        return issued.end_of(n - 1)
    return anchor_end + (prefix[n] - prefix[anchor + 1])


class _Issued:
    """`makespan`'s op timeline where the host issues kernels one per `interval`
    (`gpu.kernel_issue_interval`), op by op as the executors run it (`sim.flow.issue_time`):
    an op starts when the op before it has ended and the host has issued it, one interval
    after the op before it and not before its load is in."""

    def __init__(self, compute_s: Sequence[float], interval: float, ready0: float):
        self.d, self.interval = compute_s, interval
        self.avail: dict[int, float] = {0: ready0} if ready0 > 0.0 else {}
        self.cur, self.end, self.host = -1, 0.0, -interval

    def loaded(self, pos: int, t: float) -> None:
        """The load of op `pos` is in (sync hop included) at `t`."""
        if t > self.avail.get(pos, 0.0):
            self.avail[pos] = t

    def end_of(self, v: int) -> float:
        """When op `v` ends (asked in increasing order)."""
        for u in range(self.cur + 1, v + 1):
            h = self.host + self.interval
            a = self.avail.get(u, 0.0)
            if a > h:
                h = a
            self.host = h
            self.end = (self.end if self.end > h else h) + self.d[u]
        self.cur = max(self.cur, v)
        return self.end


def _parts(problem: Problem, units: tuple[int, ...], unit_group: np.ndarray
           ) -> list[tuple[int, int | None]]:
    """(bytes, piece size) of the texture load and of the buffer load that read these units'
    groups together (build_schedule's)."""
    groups = problem.groups
    out: dict[str, list] = {}
    for g in dict.fromkeys(int(unit_group[k]) for k in units):
        for dst, nbytes, pieces in groups[g].parts:
            acc = out.setdefault(dst, [0, None])
            acc[0] += nbytes
            if pieces:
                acc[1] = pieces if acc[1] is None else min(acc[1], pieces)
    return [(b, r) for dst in ("texture", "buffer") if dst in out for b, r in (out[dst],)]


def earliest_issue(problem: Problem, resident: frozenset[int],
                   lookahead: int = DEFAULT_LOOKAHEAD, cap: int | None = None) -> Plan | None:
    """Issue every streamed load as early as memory and issue order allow (memory: the
    problem's budget, or the tighter `cap`); None if a unit cannot fit even when loaded just
    in time."""
    budget = problem.budget if cap is None else cap
    base = resident_bytes(problem, resident) + problem.staging_reserve()
    a = problem.arrays
    # free[k]: bytes still free while op k runs, given the loads issued so far
    free = None if budget is None else budget - base - a.act
    index, positions = _streamed(problem, resident)
    sizes = a.group_bytes[a.unit_group[index]]
    positions = positions.tolist()
    if free is None:
        lows = np.maximum(np.asarray(positions, dtype=np.int64) - lookahead, 0)
        return Plan(resident, dict(zip(index.tolist(),
                                       np.maximum.accumulate(lows).tolist() if len(lows)
                                       else [], strict=True)))
    issue_at: list[int] = []
    p_prev = 0
    for pos, s in zip(positions, sizes.tolist(), strict=True):
        lo = pos - lookahead
        if lo < p_prev:
            lo = p_prev
        window = free[lo:pos + 1]
        short = (window < s).nonzero()[0]
        if short.size:
            if short[-1] == pos - lo:
                return None
            p = lo + int(short[-1]) + 1
            free[p:pos + 1] -= s
        else:
            p = lo
            window -= s
        issue_at.append(p)
        p_prev = p
    return Plan(resident, dict(zip(index.tolist(), issue_at, strict=True)))


def window_issue(problem: Problem, resident: frozenset[int], depth: int) -> Plan | None:
    """Demand-Layering style issue points: streamed unit i is issued right after streamed unit
    i - depth has run (its weights freed); None if the plan does not fit the budget."""
    index, positions = _streamed(problem, resident)
    # unit j is issued after unit j - depth's op, never before an earlier unit's issue point
    # nor after its own op: positions grow, so the running maximum is all three
    after = np.zeros(len(positions), dtype=np.int64)
    if depth < len(positions):
        after[depth:] = positions[:-depth] + 1
    issue = np.minimum(np.maximum.accumulate(after), positions) if len(after) else after
    plan = Plan(resident, dict(zip(index.tolist(), issue.tolist(), strict=True)))
    return plan if fits(problem, plan) else None


def _streamed(problem: Problem, resident: frozenset[int]) -> tuple[np.ndarray, np.ndarray]:
    """Indices and positions of the units whose groups are not resident, in position order."""
    a = problem.arrays
    if not resident:
        return np.arange(len(a.unit_pos)), a.unit_pos
    keep = ~np.isin(a.unit_group, np.fromiter(resident, dtype=np.int64, count=len(resident)))
    return np.flatnonzero(keep), a.unit_pos[keep]


def batched_window(problem: Problem, resident: frozenset[int], depth: int,
                   size: int) -> Plan | None:
    """Consecutive streamed units read together until a batch holds `size` bytes (one load
    each batch: one request latency instead of one per unit), batch j issued once batch
    j - depth has run; None if it does not fit the budget."""
    streamed = [u for u in problem.units if u.group not in resident]
    if not streamed or min(problem.groups[u.group].bytes for u in streamed) >= size:
        return None  # every unit fills a read alone: the plain window plans cover it
    batches: list[list] = []
    held = size
    alone = _gathered(problem)
    for u in streamed:
        if held >= size or u.group in alone:
            batches.append([])
            held = 0
        batches[-1].append(u)
        held = size if u.group in alone else held + problem.groups[u.group].bytes
    issue: dict[int, int] = {}
    p_prev = 0
    for j, b in enumerate(batches):
        p = batches[j - depth][-1].pos + 1 if j >= depth else 0
        p = min(max(p, p_prev), b[0].pos)
        for u in b:
            issue[u.index] = p
        p_prev = p
    plan = Plan(resident, issue, batches=tuple(tuple(u.index for u in b) for b in batches
                                               if len(b) > 1))
    return plan if fits(problem, plan) else None


def _gathered(problem: Problem) -> set[int]:
    """Groups read in pieces (gathered rows): a load takes one piece size for all it reads, so
    they are read alone, never in a batch with contiguous tensors."""
    return {g.gid for g in problem.groups if any(r for _, _, r in g.parts)}


def coalesced(problem: Problem, plan: Plan, size: int) -> Plan | None:
    """`plan` with consecutive streamed units issued at the same position read together, up
    to `size` bytes a read (the same memory, as they are issued there anyway, but for the host
    staging of a batch without zero-copy); None if no two units share a read or it does not fit.
    Batches that do not grow."""
    return grown(problem, plan, size, 1.0)


def grown(problem: Problem, plan: Plan, first: int, factor: float) -> Plan | None:
    """`plan` with consecutive streamed units issued at the same position read together in
    batches that grow: the first up to `first` bytes, each next one `factor` times the one
    before. The first kernels wait only for a small read, later ones (further from the start,
    with more compute before them) for larger reads that pay fewer request latencies; None if
    no two units share a read or it does not fit."""
    batches: list[list[int]] = []
    alone = _gathered(problem)
    cap, held, at = float(first), -1.0, -1
    for i, p in plan.issue.items():
        g = problem.units[i].group
        if held < 0 or held >= cap or p != at or g in alone:
            if held >= 0:
                cap *= factor
            batches.append([])
            held, at = 0.0, p
        batches[-1].append(i)
        held = float("inf") if g in alone else held + problem.groups[g].bytes
    merged = tuple(tuple(b) for b in batches if len(b) > 1)
    if not merged:
        return None
    out = Plan(plan.resident, plan.issue, plan.planner, merged)
    return out if fits(problem, out) else None  # a batch is staged whole without zero-copy


def residency_candidates(problem: Problem, steps: int = 8) -> list[frozenset[int]]:
    """Resident sets to try: prefixes of the reused groups (most reuses first) filling
    0, 1/steps, ..., all of the memory left after the largest activation footprint, and the
    largest such prefixes that still leave room to stream 1, 2 or 3 of the largest groups
    left out."""
    reused = sorted((g for g in problem.groups if len(g.uses) > 1),
                    key=lambda g: (-len(g.uses), g.uses[0]))
    if not reused:
        return [frozenset()]
    if problem.budget is None:
        return [frozenset(g.gid for g in reused), frozenset()]
    avail = problem.budget - max(problem.act_bytes, default=0) - problem.staging_reserve()

    def fill(cap: float) -> frozenset[int]:
        chosen, total = [], 0
        for g in reused:
            if total + g.bytes <= cap:
                chosen.append(g.gid)
                total += g.bytes
        return frozenset(chosen)

    caps = [avail * s / steps for s in range(steps + 1)]
    full = fill(avail)
    left = [g.bytes for g in problem.groups if g.gid not in full]
    if left:
        caps += [avail - k * max(left) for k in (1, 2, 3)]
    return list(dict.fromkeys(fill(c) for c in caps if c >= 0))


def bound(problem: Problem, resident: frozenset[int]) -> float:
    """No plan with this residency ends sooner: every op runs, and storage reads the resident
    groups once and each streamed unit's group once per use."""
    a = problem.arrays
    reads = a.read_s
    streamed = sum(reads[g.gid] * len(g.uses) for g in problem.groups if g.gid not in resident)
    storage = sum(reads[g] for g in resident) + streamed
    return max(a.prefix[-1], storage + (problem.hops[0] if storage else 0.0))


VIRTUAL_FRACTIONS = (1.0, 0.85, 0.7, 0.5)  # of the weights: budgets whose issue points are tried


def virtual_budgets(problem: Problem) -> list[int]:
    """Budgets below `problem.budget` (any, without one) whose earliest-issue plans are tried as
    well: VIRTUAL_FRACTIONS of the weights' bytes, as a sweep over budgets relative to the
    weights sets them; only where every weight fits the real budget (below that, the budget
    shapes the plans itself)."""
    weights = sum(g.bytes for g in problem.groups)
    if problem.budget is not None and weights > problem.budget:
        return []
    caps = [int(weights * f) for f in VIRTUAL_FRACTIONS]
    return [c for c in dict.fromkeys(caps) if problem.budget is None or c < problem.budget]


def greedy(problem: Problem, lookahead: int = DEFAULT_LOOKAHEAD,
           quick: bool = False, phase: dict[int, tuple[Plan, float]] | None = None
           ) -> tuple[Plan, float] | None:
    """Best (by analytical makespan) over the residency candidates of the earliest-issue plan
    and the fixed-window plans (depth 1..MAX_WINDOW), which contain the pipeline policy's
    issue pattern.

    Candidates are tried in order of their lower bound (`bound`) and skipped once it exceeds
    the best makespan found: the plan chosen is the one trying all of them in turn would
    choose (the first, in that order, to be better than every one before it).

    Where every weight fits the budget (or there is none), the earliest-issue plans of tighter
    budgets (`virtual_budgets`) are merged into reads too: they fit this budget, so a larger
    budget does not lose the plans a smaller one finds.

    `quick`: only the earliest-issue plans (to compare workloads, e.g. tile sizes, cheaply).
    `phase`: a dict the earliest-issue plans are recorded in (pass an empty one with `quick`),
    or taken from (pass it back without `quick`): the full search then does not plan them
    again, with the same result."""
    found: dict[int, tuple[Plan, float]] = {}  # candidate's turn -> (plan, makespan)
    best = [float("inf")]
    reuse = bool(phase) and not quick
    if reuse:
        found.update(phase)
        best[0] = min((t for _, t in phase.values()), default=float("inf"))

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
    if not reuse:
        bounds = [bound(problem, r) for r in candidates]
        for turn in sorted(range(len(candidates)), key=lambda k: bounds[k]):
            attempt(turn, bounds[turn],
                    lambda r=candidates[turn]: earliest_issue(problem, r, lookahead))
    first = winner(len(candidates))
    if quick:
        if phase is not None:
            phase.update(found)
        return first
    turn = len(candidates)
    # fixed windows for the residency the earliest-issue plans preferred (and for none)
    chosen = first[0].resident if first else frozenset()
    for resident in dict.fromkeys([chosen, frozenset()]):
        lb = bound(problem, resident)
        for d in range(1, MAX_WINDOW + 1):
            attempt(turn, lb, lambda r=resident, d=d: window_issue(problem, r, d))
            turn += 1
    # fewer, larger reads (each read pays the storage's request latency): the earliest-issue
    # plan with the loads it issues together merged, and batched windows
    lb = batched_bound(problem, chosen)
    t0 = problem.profile.storage.request_latency
    small = sorted(problem.groups[u.group].bytes for u in problem.units
                   if u.group not in chosen)
    # where every weight fits (or without a budget) earliest issue puts loads as early as
    # `lookahead` allows and merges them into reads of at most `size`; the issue points a
    # tighter budget imposes group them differently, and a plan that fits a tighter budget
    # fits this one: merged too, so a larger budget keeps what a smaller one would find
    shaped = [first[0]] if first is not None else []
    for cap in virtual_budgets(problem):
        plan = earliest_issue(problem, chosen, lookahead, cap)
        if plan is not None and plan.issue not in [q.issue for q in shaped]:
            shaped.append(plan)
    for size in BATCH_SIZES:
        # a read of several units saves at most one request latency per unit it takes in
        if bisect.bisect_left(small, size) * t0 < 1e-3 * best[0]:
            turn += len(shaped) + len(BATCH_DEPTHS)
            continue
        for plan in shaped:
            attempt(turn, lb, lambda size=size, plan=plan: coalesced(problem, plan, size))
            turn += 1
        for d in BATCH_DEPTHS:
            attempt(turn, lb, lambda d=d, size=size: batched_window(problem, chosen, d, size))
            turn += 1
    # batches that grow from a small first read; they save at most the request latencies of
    # the reads they merge: tried where those are at least 1% of the best plan
    if len(small) * t0 >= 1e-2 * best[0]:
        for first in GROW_FIRST:
            for factor in GROW_FACTORS:
                for plan in shaped:
                    attempt(turn, lb, lambda plan=plan, first=first, factor=factor:
                            grown(problem, plan, first, factor))
                    turn += 1
    return winner(turn)


def keep_more(problem: Problem, plan: Plan, est: float, tries: int = 16) -> tuple[Plan, float]:
    """The plan with more reused groups kept resident where that fits the budget and does not
    end later: a tie on latency goes to the plan reading fewer bytes (solvers and candidates
    only compare makespans). The most re-read bytes are tried first, at most `tries` groups;
    groups read as part of a batch are left as they are."""
    batched = {i for b in plan.batches for i in b}
    units_of: dict[int, list[int]] = {}
    for u in problem.units:
        units_of.setdefault(u.group, []).append(u.index)
    mem = _memory(problem, plan)
    room = (problem.budget - int(mem.min(initial=0))) if problem.budget is not None else None
    options = sorted((g for g in problem.groups
                      if len(g.uses) > 1 and g.gid not in plan.resident
                      and (room is None or g.bytes <= room)
                      and not batched.intersection(units_of.get(g.gid, ()))),
                     key=lambda g: (-g.bytes * (len(g.uses) - 1), g.uses[0]))
    for g in options[:tries]:
        drop = set(units_of.get(g.gid, ()))
        trial = Plan(plan.resident | {g.gid},
                     {i: k for i, k in plan.issue.items() if i not in drop},
                     plan.planner, plan.batches)
        if not fits(problem, trial):
            continue
        t = makespan(problem, trial)
        if t <= est + 1e-12:
            plan, est = trial, min(est, t)
    return plan, est


def batched_bound(problem: Problem, resident: frozenset[int]) -> float:
    """`bound` for plans that may read streamed units together: the streamed bytes as one read."""
    a = problem.arrays
    streamed = sum(g.bytes * len(g.uses) for g in problem.groups if g.gid not in resident)
    storage = sum(a.read_s[g] for g in resident) + (problem.load_s(streamed)[0]
                                                    if streamed else 0.0)
    return max(a.prefix[-1], storage + (problem.hops[0] if storage else 0.0))


def just_in_time(problem: Problem) -> Plan:
    """Every load issued at its own op: the least memory any streamed plan can use."""
    return Plan(frozenset(), {u.index: u.pos for u in problem.units}, "just-in-time")
