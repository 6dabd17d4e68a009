"""FlashMem's overlap plan generation (OPG) as the paper states it (arXiv 2602.15379, section 4),
on CP-SAT (OR-Tools).

Decisions, over the layers (ops in GPU order) and the weight groups of a `Problem`:
- p_g: group g is preloaded (read before the first layer and kept): the set W;
- z_u: the earliest load layer of each use u of a streamed group (loading starts when layer z_u
  starts; at most `window` layers before its use i_u, a bound weightstream adds for size);
- x_{u,l}: how many of u's chunks are transformed into texture while layer l runs
  (z_u <= l < i_u; every chunk before the use).
Constraints: per layer l, the chunks transformed stay within the layer's load capacity
C_l = capacity(op class) x the bytes the kernel itself moves (weights + activations in and
out): 0% for norms and softmax, 20% for convolutions and matrix products, 300% for
element-wise ops (the paper's figures from its profiled-kernel model; the paper states them
for Softmax/LayerNorm, Conv/MatMul and ReLU/Add: weightstream maps its op classes onto them),
and the memory held while layer l runs (preloaded groups, every streamed weight from its
earliest load layer to its use, the layer's activations when the budget is total, a staging
buffer without zero-copy) stays within M_peak.
Objective: lambda |W| + (1 - lambda) sum_u (i_u - z_u): few preloaded weights, loads started as
late as the capacities allow (lambda = 0.9 in the paper).

Fallbacks, in the paper's order, when no plan is found within the time limit: relax the load
capacities, then preload the largest weight that still violates one and re-solve (repeatedly),
then weightstream's greedy planner (see `plan_opg` for how the steps share one solve).

What the engine runs is the plan's load windows: each streamed load may start when its earliest
load layer starts and is read whole by the storage model; the chunk split constrains the plan,
but kernels do not slow down while weights stream (the engine has no such interference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sim.lowering import op_class
from sim.planner.plan import Plan
from sim.planner.problem import Problem

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

# the paper's load capacity per op class (fraction of the kernel's own memory traffic)
CAPACITY = {"norm": 0.0, "conv": 0.2, "depthwise": 0.2, "matmul": 0.2, "gemv": 0.2,
            "attention": 0.2, "elementwise": 3.0}
M_PEAK = 500 * 10**6  # the paper's per-layer memory cap (500 MB)
LAMBDA = 0.9  # the paper's weight of |W| in the objective
TIME_LIMIT = 150.0  # the paper's solver limit, seconds
CHUNK = 1 << 20  # bytes per transformed chunk (an estimate: the paper gives no chunk size)
WINDOW = 32  # layers before its use a load may start (weightstream's bound on model size)
SCALE = 1000  # objective weights are integers: lambda x SCALE and (1 - lambda) x SCALE
MAX_PRELOAD_ROUNDS = 8  # "preload the largest violating weight and re-solve" at most this often


@dataclass(frozen=True)
class OpgUnit:
    """One use of a weight group: at layer `pos`, `chunks` chunks of `chunk_bytes`."""

    index: int
    group: int
    pos: int
    nbytes: int
    chunks: int
    chunk_bytes: int

    def layers(self, window: int) -> range:
        """The layers its chunks may be transformed during (before its use)."""
        return range(max(0, self.pos - window), self.pos)


@dataclass
class OpgInstance:
    """The OPG model in plain numbers (bytes per layer, per group, per use)."""

    n: int
    capacity: list[int]
    act: list[int]
    group_bytes: list[int]
    units: list[OpgUnit]
    m_peak: int
    base: int  # bytes always held (a staging buffer without zero-copy)
    lam: float = LAMBDA
    window: int = WINDOW

    @property
    def weights(self) -> tuple[int, int]:
        """Integer objective weights of |W| and of the load-ahead distances."""
        return round(self.lam * SCALE), round((1 - self.lam) * SCALE)


@dataclass
class OpgSolution:
    """A plan of the OPG model: preloaded groups, earliest load layers, chunk split."""

    preload: frozenset[int]
    start: dict[int, int]  # unit -> earliest load layer z_u (streamed units)
    chunks: dict[int, dict[int, int]]  # unit -> layer -> chunks transformed during it
    status: str = ""
    objective: float | None = None
    bound: float | None = None
    wall_s: float = 0.0
    over_capacity: dict[int, int] = field(default_factory=dict)  # layer -> bytes over C_l
    deterministic_s: float = 0.0


def instance(problem: Problem, m_peak: int, lam: float = LAMBDA, window: int = WINDOW,
             chunk: int = CHUNK, capacity: dict[str, float] | None = None) -> OpgInstance:
    """The OPG model of `problem` with memory cap `m_peak`."""
    caps = CAPACITY if capacity is None else capacity
    tb = problem.workload.tensors
    cap: list[int] = []
    for u in problem.seq:
        op = u.op
        traffic = op.input_bytes + op.output_bytes + sum(
            tb[t].nbytes for t in dict.fromkeys(t.name for t in op.weights))
        cap.append(int(caps.get(op_class(op), 0.0) * traffic))
    units = []
    for su in problem.units:
        b = problem.groups[su.group].bytes
        k = max(1, math.ceil(b / chunk))
        units.append(OpgUnit(su.index, su.group, su.pos, b, k, math.ceil(b / k)))
    return OpgInstance(problem.n, cap, list(problem.act_bytes),
                       [g.bytes for g in problem.groups], units, m_peak,
                       problem.staging_reserve(), lam, window)


def objective(inst: OpgInstance, sol: OpgSolution) -> float:
    """lambda |W| + (1 - lambda) sum (i_u - z_u), in the solver's integer weights / SCALE."""
    wp, wd = inst.weights
    dist = sum(u.pos - sol.start[u.index] for u in inst.units if u.group not in sol.preload)
    return (wp * len(sol.preload) + wd * dist) / SCALE


def memory(inst: OpgInstance, sol: OpgSolution) -> list[int]:
    """Bytes held while each layer runs under `sol`."""
    held = inst.base + sum(inst.group_bytes[g] for g in sol.preload)
    mem = [held + a for a in inst.act]
    for u in inst.units:
        if u.group in sol.preload:
            continue
        for layer in range(sol.start[u.index], u.pos + 1):
            mem[layer] += u.nbytes
    return mem


def violations(inst: OpgInstance, sol: OpgSolution) -> list[str]:
    """Every broken constraint of `sol` (empty: a valid plan of the model)."""
    out = []
    load = [0] * inst.n
    for u in inst.units:
        if u.group in sol.preload:
            continue
        z = sol.start.get(u.index)
        layers = u.layers(inst.window)
        if z is None or z not in layers:
            out.append(f"unit {u.index}: earliest load layer {z} outside {layers}")
            continue
        split = sol.chunks.get(u.index, {})
        if sum(split.values()) != u.chunks:
            out.append(f"unit {u.index}: {sum(split.values())} of {u.chunks} chunks loaded")
        for layer, k in split.items():
            if k and not z <= layer < u.pos:
                out.append(f"unit {u.index}: chunks in layer {layer} outside [{z}, {u.pos})")
            load[layer] += k * u.chunk_bytes
    for layer, b in enumerate(load):
        if b > inst.capacity[layer]:
            out.append(f"layer {layer}: {b} bytes transformed, capacity {inst.capacity[layer]}")
    for layer, m in enumerate(memory(inst, sol)):
        if m > inst.m_peak:
            out.append(f"layer {layer}: {m} bytes held, M_peak {inst.m_peak}")
    return out


def solve(inst: OpgInstance, time_limit: float = TIME_LIMIT,
          preload: frozenset[int] = frozenset(), relaxed: bool = False,
          hint: OpgSolution | None = None) -> OpgSolution:
    """Solve the OPG model (groups in `preload` forced preloaded; with `relaxed`, load
    capacities may be exceeded at a penalty); `objective` is None if no plan was found."""
    if not inst.units:  # nothing to load: the empty plan is optimal
        return OpgSolution(frozenset(), {}, {}, "OPTIMAL", 0.0, 0.0)
    from ortools.sat.python import cp_model  # here: importing it costs every use of sim 0.2 s

    m = cp_model.CpModel()
    wp, wd = inst.weights
    groups = sorted({u.group for u in inst.units})
    p = {g: m.new_bool_var(f"p{g}") for g in groups}
    for g in preload:
        if g in p:
            m.add(p[g] == 1)
    a: dict[int, dict[int, cp_model.IntVar]] = {}  # unit -> layer -> loading has started
    x: dict[int, dict[int, cp_model.IntVar]] = {}
    load_terms: list[list[object]] = [[] for _ in range(inst.n)]
    mem_terms: list[list[object]] = [[] for _ in range(inst.n)]
    dist_terms: list[object] = []
    for u in inst.units:
        layers = u.layers(inst.window)
        au = {layer: m.new_bool_var(f"a{u.index}_{layer}") for layer in layers}
        xu = {layer: m.new_int_var(0, u.chunks, f"x{u.index}_{layer}") for layer in layers}
        a[u.index], x[u.index] = au, xu
        for layer in layers:
            if layer + 1 in au:
                m.add_implication(au[layer], au[layer + 1])  # started stays started
            m.add(xu[layer] <= u.chunks * au[layer])
            load_terms[layer].append(u.chunk_bytes * xu[layer])
            mem_terms[layer].append(u.nbytes * au[layer])
            dist_terms.append(au[layer])
        m.add(sum(xu.values()) == u.chunks * (1 - p[u.group]))
        for v in au.values():
            m.add(v <= 1 - p[u.group])
        # the use itself: a streamed weight is held while its layer runs
        mem_terms[u.pos].append(u.nbytes * (1 - p[u.group]))
    slack = []
    for layer in range(inst.n):
        if not load_terms[layer]:
            continue
        if relaxed:
            s = m.new_int_var(0, sum(u.chunks * u.chunk_bytes for u in inst.units), f"s{layer}")
            slack.append(s)
            m.add(sum(load_terms[layer]) <= inst.capacity[layer] + s)
        else:
            m.add(sum(load_terms[layer]) <= inst.capacity[layer])
    # a violation costs more than any plan's objective: violation-free plans always win
    penalty = wp * len(groups) + wd * len(dist_terms) + 1
    held = sum(inst.group_bytes[g] * p[g] for g in groups) + inst.base
    for layer in range(inst.n):
        m.add(held + sum(mem_terms[layer]) + inst.act[layer] <= inst.m_peak)
    over = m.new_int_var(0, len(slack), "over")  # layers over capacity
    flags = []
    if slack:
        for s_var in slack:
            f = m.new_bool_var("")
            m.add(s_var == 0).only_enforce_if(f.Not())
            flags.append(f)
        m.add(over == sum(flags))
    else:
        m.add(over == 0)
    m.minimize(wp * sum(p.values()) + wd * sum(dist_terms) + penalty * over)
    if hint is not None:
        if not hint.over_capacity:  # a hint within the capacities: no slack anywhere
            for v in (*slack, *flags, over):
                m.add_hint(v, 0)
        for g, v in p.items():
            m.add_hint(v, g in hint.preload)
        for u in inst.units:
            z = hint.start.get(u.index)
            for layer, v in a[u.index].items():
                m.add_hint(v, z is not None and layer >= z)
            if u.index in hint.chunks:
                for layer, v in x[u.index].items():
                    m.add_hint(v, hint.chunks[u.index].get(layer, 0))
    solver = cp_model.CpSolver()
    solver.parameters.max_deterministic_time = time_limit
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    status = solver.solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):  # no plan: INFEASIBLE or UNKNOWN
        return OpgSolution(frozenset(), {}, {}, solver.status_name(status),
                           wall_s=solver.wall_time, deterministic_s=solver.deterministic_time)
    chosen = frozenset(g for g, v in p.items() if solver.boolean_value(v))
    start, split = {}, {}
    for u in inst.units:
        if u.group in chosen:
            continue
        started = [layer for layer, v in a[u.index].items() if solver.boolean_value(v)]
        start[u.index] = min(started) if started else u.pos
        split[u.index] = {layer: solver.value(v) for layer, v in x[u.index].items()
                          if solver.value(v)}
    sol = OpgSolution(chosen, start, split, solver.status_name(status),
                      objective=None, wall_s=solver.wall_time,
                      deterministic_s=solver.deterministic_time)
    # the bound of the objective proper: a plan with violations is not a plan of the model
    sol.bound = min(solver.best_objective_bound, solver.objective_value) / SCALE \
        if solver.value(over) == 0 else None
    sol.objective = objective(inst, sol)
    if relaxed:
        load = [0] * inst.n
        for u in inst.units:
            for layer, k in split.get(u.index, {}).items():
                load[layer] += k * u.chunk_bytes
        sol.over_capacity = {layer: b - inst.capacity[layer] for layer, b in enumerate(load)
                             if b > inst.capacity[layer]}
    return sol


@dataclass
class OpgOutcome:
    """What the planner did: the plan (None: fall back to greedy), the steps it took."""

    solution: OpgSolution | None
    steps: list[str]
    solve_s: float
    preloaded_by_fallback: list[int]
    deterministic_s: float = 0.0


def plan_opg(inst: OpgInstance, time_limit: float = TIME_LIMIT,
             hint: OpgSolution | None = None) -> OpgOutcome:
    """Solve with the paper's fallbacks within `time_limit` (deterministic) seconds in all.

    The capacities are first solved as soft constraints whose penalty exceeds any value of the
    objective, so a plan without violations is the strict model's optimum (and a solver that
    ends with violations found no strict plan in time): the paper's "relax C_l" step then needs
    no second solve. While violations remain, the largest weight loading in an over-capacity
    layer is preloaded and the model solved again (from the previous plan); when no plan fits
    M_peak, or the time is spent, the caller falls back to the greedy planner."""
    steps: list[str] = []
    wall = det = 0.0
    forced: list[int] = []
    while True:
        left = time_limit - det
        if left <= 0:
            steps.append("time limit spent")
            return OpgOutcome(None, steps, wall, forced, det)
        sol = solve(inst, left, frozenset(forced), relaxed=True, hint=hint)
        wall += sol.wall_s
        det += sol.deterministic_s
        if hint is not None and hint.objective is not None and not violations(inst, hint) \
                and (sol.objective is None or sol.over_capacity
                     or sol.objective > hint.objective):
            # the starting plan is a plan of the model and the solver found none better
            steps.append(f"solver {sol.status} without a better plan: the starting plan")
            return OpgOutcome(hint, steps, wall, forced, det)
        if sol.objective is None:
            steps.append(f"{'strict' if not forced else 're-solve'}: {sol.status} (no plan "
                         "fits M_peak)")
            return OpgOutcome(None, steps, wall, forced, det)
        if not sol.over_capacity:
            steps.append(f"{'strict' if not forced else 're-solve'}: {sol.status}")
            return OpgOutcome(sol, steps, wall, forced, det)
        over = set(sol.over_capacity)
        culprits = [u for u in inst.units if u.group not in sol.preload and u.group not in forced
                    and any(layer in over for layer in sol.chunks.get(u.index, {}))]
        if not culprits:
            steps.append("relaxed: no weight over capacity left to preload")
            return OpgOutcome(None, steps, wall, forced, det)
        g = max(culprits, key=lambda u: (u.nbytes, -u.index)).group
        forced.append(g)
        steps.append(f"relaxed: {len(over)} layer(s) over capacity; preload group {g} "
                     f"({inst.group_bytes[g]} bytes)")
        hint = sol


def greedy_opg(inst: OpgInstance) -> OpgSolution:
    """A plan of the model built greedily, as the solver's starting point: each use's chunks go
    into the latest layers before it that have capacity left; a use whose chunks do not fit
    its window is preloaded instead (the model's M_peak is not checked here)."""
    load = [0] * inst.n
    preload: set[int] = set()
    start: dict[int, int] = {}
    split: dict[int, dict[int, int]] = {}
    for u in sorted(inst.units, key=lambda u: u.pos):
        if u.group in preload:
            continue
        left, assign = u.chunks, {}
        for layer in reversed(u.layers(inst.window)):
            take = min(left, (inst.capacity[layer] - load[layer]) // max(1, u.chunk_bytes))
            if take > 0:
                assign[layer] = take
                left -= take
            if not left:
                break
        if left:
            preload.add(u.group)
            continue
        for layer, k in assign.items():
            load[layer] += k * u.chunk_bytes
        start[u.index], split[u.index] = min(assign), assign
    # uses of a group preloaded later on are covered by the preload
    start = {i: z for i, z in start.items() if inst.units[i].group not in preload}
    split = {i: c for i, c in split.items() if i in start}
    sol = OpgSolution(frozenset(preload), start, split, "GREEDY")
    sol.objective = objective(inst, sol)
    return sol


def from_plan(plan: Plan) -> OpgSolution:
    """A solver hint from an engine plan (preloaded = resident; z_u = issue position)."""
    return OpgSolution(frozenset(plan.resident), dict(plan.issue), {})


def to_plan(sol: OpgSolution) -> Plan:
    """The engine-facing plan: preloaded groups resident, each streamed load issued at its
    earliest load layer."""
    return Plan(sol.preload, dict(sol.start), "opg")

