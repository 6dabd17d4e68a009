"""Turn a FlashMem Plan into Schedule steps: direct loads into textures (or buffers where a
tensor exceeds the image limits), issued after the op before their issue position, freed after
their last planned use."""

from __future__ import annotations

from sim.planner.plan import Plan
from sim.planner.problem import Problem
from sim.policies.builder import Builder


def _emit(b: Builder, problem: Problem, tensors: tuple[str, ...], after: list[int],
          layouts: dict[str, dict], dst_of: dict[str, str]) -> dict[str, int]:
    """Load `tensors` directly: one load for those that fit textures, one for buffers
    (`layouts`: each tensor's layout, as the schedule records it)."""
    ids: dict[str, int] = {}
    if len(tensors) == 1:
        t = tensors[0]
        ids[t] = b.load(tensors, after=after, path="direct", dst=dst_of[t],
                        layout={t: layouts[t]})
        return ids
    for dst in ("texture", "buffer"):
        part = tuple([t for t in tensors if dst_of[t] == dst])
        if not part:
            continue
        lid = b.load(part, after=after, path="direct", dst=dst,
                     layout={t: layouts[t] for t in part})
        for t in part:
            ids[t] = lid
    return ids


def build_schedule(problem: Problem, plan: Plan, policy: str = "flashmem") -> Builder:
    """The schedule that executes `plan`."""
    b = Builder(policy, problem.workload, problem.profile, problem.budget)
    layouts = {t: lay.to_dict() for t, lay in problem.layouts.items()}
    dst_of = {t: lay.dst for t, lay in problem.layouts.items()}
    loaded: dict[str, int] = {}  # tensor -> load id while resident
    for g in sorted(plan.resident, key=lambda g: problem.groups[g].uses[0]):
        loaded.update(_emit(b, problem, problem.groups[g].tensors, [], layouts, dst_of))
    resident_ids = sorted(set(loaded.values()))
    pinned = {t for g in plan.resident for t in problem.groups[g].tensors}
    issued: dict[int, list[int]] = {}
    for i, p in sorted(plan.issue.items()):
        issued.setdefault(p, []).append(i)
    # per position: the group of the streamed unit that runs there (its loads end after it)
    streamed_at = {u.pos: u.group for u in problem.units if u.index in plan.issue}
    groups = problem.groups
    units = problem.units
    claims: dict[str, int] = {}
    users: dict[str, list[int]] = {}
    last: int | None = None
    batch_of = {i: bt for bt in plan.batches for i in bt}
    weight_names = b.weight_names
    compute = b.compute
    for u in problem.seq:
        pos = u.pos
        here = issued.get(pos)
        if here is not None:
            for i in here:
                tensors = groups[units[i].group].tensors
                together = batch_of.get(i)
                if together is None or i == together[0]:  # a batch's tensors: one load
                    want = tensors if together is None else tuple(dict.fromkeys(
                        t for k in together for t in groups[units[k].group].tensors))
                    need = tuple([t for t in want if t not in loaded])
                    if need:
                        loaded.update(_emit(b, problem, need, [last] if last is not None else [],
                                            layouts, dst_of))
                for t in tensors:
                    claims[t] = claims.get(t, 0) + 1
        names = weight_names(u.op)
        if names:
            after = [loaded[t] for t in names]
            if pos == 0:
                after += resident_ids
            last = cid = compute(u, after)
            for t in names:
                used = users.get(t)
                if used is None:
                    users[t] = [cid]
                else:
                    used.append(cid)
        else:
            last = cid = compute(u, resident_ids if pos == 0 else ())
        g = streamed_at.get(pos)
        if g is not None:
            done = []
            for t in groups[g].tensors:
                claims[t] -= 1
                if claims[t] == 0 and t not in pinned:
                    done.append(t)
            if done:
                b.free(done, after=[c for t in done for c in users.get(t, [])])
                for t in done:
                    del loaded[t]
                    users.pop(t, None)
    b.schedule.meta["resident_bytes"] = sum(problem.groups[g].bytes for g in plan.resident)
    return b
