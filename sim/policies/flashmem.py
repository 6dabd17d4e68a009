"""FlashMem-style policy: solver-planned overlap and on-demand streaming into texture memory.

For every weight group the planner decides whether it stays resident (loaded before the first
op) or is streamed, and for streamed loads the op at whose start the load may begin, so that
loads hide behind compute while memory stays within the budget at every op boundary. Streamed
weights go straight into 2.5D textures (`direct`: pre-laid-out on flash, no transform), split
across image2d_array layers or kept in a buffer when they exceed the image limits.

At run time the plan is dynamic: each load starts as soon as its issue point and the memory
budget allow (the engine's gating), so it stays good when real durations differ.

LLM-scale streaming (workloads.streaming): with `embedding="rows"` (the default) a lookup reads
only its tokens' rows from flash, a row at a time, and the table never has to be resident; with
`tile="auto"` (the default) a linear, matmul or convolution whose weights exceed what one
allocation holds (`gpu.max_alloc`) or half the budget left after the activations runs as
partial kernels over row tiles of them; where the weights do not all fit the budget, tiles of
a quarter of that are tried too (finer pieces fill the memory kept resident across
invocations, e.g. across an LLM's tokens, more fully); where they all fit (or without a
budget) tiles of 1/4, 1/16 and 1/64 of the limit are tried (a partial kernel starts as soon as
its piece lands, so a larger budget never rules out the tiling a smaller one would pick), and
the planner picks the tile size by
the plans' estimated latency (never below 256 KiB; untiled where every op fits); `tile=N` tiles at N bytes,
`tile="off"` never. The smallest budget is then a tile and the live activations.

Data-dependent streaming (workloads.routing), only when asked: `routing="uniform"` or
`"skewed:S"` (with `routing_seed`) routes every MoE layer's tokens to their experts and streams
only those (an expert cache: the experts the planner keeps resident across tokens);
`sparsity=F` (or a YAML file of per-block fractions) keeps a fraction F of each MLP block's
neurons per token, picked by a rank-`predictor_rank` predictor and read as bundles of `bundle`
neurons (row-column bundling: one request each).

KV cache spill (workloads.kvcache), only when asked: `kv_spill=N` keeps each attention layer's
N most recent tokens of KV in memory and reads older ones back from flash at attention, in
requests of `kv_block` tokens; `kv_spill="auto"` keeps all of it while it takes at most a
quarter of the budget, else the most recent whole blocks that fit in that quarter (at least
one). Spilled KV is streamed like a weight used once (`Metrics.kv_bytes_read`); the blocks
written to flash are counted (`kv_bytes_written`), not timed (the profiles model reads only).

Planner: the greedy planner, then CP-SAT (sim.planner.cpsat) within a (deterministic) time
limit, warm-started from the greedy plan, unless the greedy plan already meets the latency
lower bound: with solver="auto" on the whole graph when it has at most `solver_max_units`
weighted ops ("cp-sat" forces it on any graph); with solver="rolling" in rolling windows of
`solver_window` weighted ops (the other decisions and the resident set fixed to the incumbent
plan, each window's time a share of the limit), for zoo-sized graphs of up to
`rolling_max_units` weighted ops. Issue points are at most `solver_lookahead` ops ahead. Every
candidate is scored with the executors' timing (`plan.makespan`) and the best wins; meta records
which planner produced the plan, the solver status (and on whole graphs its bound and gap), the
windows that improved it, the plan time and the gap to the latency lower bound. (Rolling
windows are opt-in: on the zoo models tried each window proved the greedy plan optimal given
the rest, at 1-30 s of planning; `benchmarks/bench_planner.py` measures it.)
"""

from __future__ import annotations

import time
from dataclasses import replace

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from hwprofiles.units import UnitError, parse_bytes
from sim.bounds import lower_bound
from sim.errors import SimError
from sim.planner.build import build_schedule
from sim.planner.cpsat import solve
from sim.planner.plan import (
    DEFAULT_LOOKAHEAD,
    Plan,
    greedy,
    just_in_time,
    keep_more,
    makespan,
)
from sim.planner.problem import Problem, build_problem
from sim.policies.builder import Builder
from workloads.kvcache import cached_tokens, kv_token_bytes, spill_kv
from workloads.model import WorkloadError
from workloads.routing import Routing, route_experts, sparse_ffn
from workloads.streaming import TILEABLE, gather_rows, tile_workload
from workloads.workload import Workload

SOLVERS = ("auto", "cp-sat", "rolling", "greedy")
EMBEDDINGS = ("rows", "table")


MIN_TILE = 256 * 1024  # bytes: smaller tiles cost more in kernel launches than they save


def tile_limit(workload: Workload, profile: HardwareProfile, budget: int | None,
               budget_scope: str = "total") -> int:
    """The largest tile `tile="auto"` allows: one allocation, and half of what the budget
    leaves after the activations (so a tile can stream in while the one before it runs), but
    never below MIN_TILE."""
    limit = profile.gpu.max_alloc
    if budget is not None:
        acts = max(workload.activation_profile(), default=0) if budget_scope == "total" else 0
        room = (budget - acts) // 2
        limit = min(limit, max(room, MIN_TILE))
    return limit


def parse_routing(routing: str, seed: int) -> Routing | None:
    """'off' | 'uniform' | 'skewed' (skew 1) | 'skewed:S' -> a Routing (None for off)."""
    text = str(routing)
    if text == "off":
        return None
    if text == "uniform":
        return Routing(0.0, int(seed))
    if text.startswith("skewed"):
        rest = text[len("skewed"):]
        try:
            skew = float(rest[1:]) if rest.startswith(":") else 1.0 if not rest else None
        except ValueError:
            skew = None
        if skew is not None:
            try:
                return Routing(skew, int(seed))
            except WorkloadError as exc:
                raise SimError(str(exc)) from None
    raise SimError(f"unknown routing {routing!r}; valid: off, uniform, skewed, skewed:S "
                   "(S >= 0: how strongly a few experts or neurons are preferred)")


def parse_sparsity(sparsity: object) -> dict[int, float] | None:
    """None | a fraction in (0, 1] for every MLP block | a YAML file mapping block index (or
    'all') to its fraction -> {block: fraction} (-1 = every block)."""
    if sparsity is None or sparsity == "off":
        return None
    if isinstance(sparsity, int | float) and not isinstance(sparsity, bool):
        return {-1: float(sparsity)}
    path = str(sparsity)
    try:
        import yaml

        with open(path) as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise SimError(f"sparsity must be a fraction in (0, 1] or a YAML file of them; cannot "
                       f"read {path!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SimError(f"sparsity file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise SimError(f"sparsity file {path} must map MLP block indices (or 'all') to "
                       "fractions in (0, 1]")
    out: dict[int, float] = {}
    for k, v in data.items():
        key = -1 if k == "all" else k
        if not isinstance(key, int) or not isinstance(v, int | float) or isinstance(v, bool):
            raise SimError(f"sparsity file {path}: {k!r}: {v!r} is not a block index (or "
                           "'all') and a fraction")
        out[key] = float(v)
    return out


def kv_window(workload: Workload, kv_spill: object, kv_block: int,
              budget: int | None) -> int | None:
    """Tokens of KV each attention layer keeps in memory under `kv_spill` ('off' | 'auto' | N;
    see the module docstring); None: all of them."""
    if not isinstance(kv_block, int) or isinstance(kv_block, bool) or kv_block < 1:
        raise SimError(f"flashmem kv_block must be a whole number of tokens >= 1, "
                       f"found {kv_block!r}")
    if kv_spill == "off":
        return None
    per_token = kv_token_bytes(workload)
    if kv_spill == "auto":
        if budget is None or not per_token:
            return None
        window = max(kv_block, (budget // 4) // per_token // kv_block * kv_block)
        return window if window < cached_tokens(workload) else None
    if not isinstance(kv_spill, int) or isinstance(kv_spill, bool) or kv_spill < 1:
        raise SimError(f"flashmem kv_spill must be 'off', 'auto' or a number of tokens >= 1 "
                       f"kept in memory per layer, found {kv_spill!r}")
    if not per_token:
        raise SimError(f"kv_spill: {workload.name} has no growing KV cache to spill (no "
                       "attention op carries kv_token_elems: the zoo's and the config "
                       "importers' LLMs do, ONNX graphs do not)")
    return kv_spill


def streamed_workload(workload: Workload, embedding: str = "rows", routing: str = "off",
                      routing_seed: int = 0, sparsity: object = None, bundle: int = 64,
                      predictor_rank: int = 128, kv_spill: object = "off", kv_block: int = 16,
                      budget: int | None = None) -> tuple[Workload, int]:
    """The workload flashmem plans before tiling: MoE layers routed, MLP blocks sparse, KV
    caches spilled (when asked), lookups reading rows (or whole tables); and the KV bytes the
    spill writes to flash."""
    if embedding not in EMBEDDINGS:
        raise SimError(f"unknown flashmem embedding {embedding!r}; valid: "
                       f"{', '.join(EMBEDDINGS)}")
    route = parse_routing(routing, routing_seed)
    fractions = parse_sparsity(sparsity)
    window = kv_window(workload, kv_spill, kv_block, budget)
    written = 0
    try:
        if route is not None:
            workload = route_experts(workload, route)
        if fractions is not None:
            workload = sparse_ffn(workload, fractions, route or Routing(0.0, routing_seed),
                                  bundle, predictor_rank)
        if window is not None:
            workload, written = spill_kv(workload, window, kv_block)
    except WorkloadError as exc:
        raise SimError(str(exc)) from None
    return (gather_rows(workload) if embedding == "rows" else workload), written


def flashmem(workload: Workload, profile: HardwareProfile, budget: int | None = None,
             solver: str = "auto", time_limit: float = 2.0, solver_max_units: int = 48,
             lookahead: int = DEFAULT_LOOKAHEAD, solver_lookahead: int = 24,
             embedding: str = "rows", tile: str | int = "auto", routing: str = "off",
             routing_seed: int = 0, sparsity: object = None, bundle: int = 64,
             predictor_rank: int = 128, kv_spill: object = "off", kv_block: int = 16,
             solver_window: int = 32, rolling_max_units: int = 2000,
             runtime: RuntimeProfile | None = None, budget_scope: str = "total",
             problem: Problem | None = None) -> Builder:
    if solver not in SOLVERS:
        raise SimError(f"unknown flashmem solver {solver!r}; valid: {', '.join(SOLVERS)}")
    t0 = time.perf_counter()
    # a budget of weights alone leaves the KV cache (an activation) out of it: nothing to spill
    window = kv_window(workload, kv_spill, kv_block,
                       budget if budget_scope == "total" or kv_spill != "auto" else None)
    workload, kv_written = streamed_workload(workload, embedding, routing, routing_seed,
                                             sparsity, bundle, predictor_rank, window or "off",
                                             kv_block)
    if tile == "auto":
        limit = tile_limit(workload, profile, budget, budget_scope)
        distinct = {id(op): op for inv in workload.invocations for op in inv.model.ops}
        largest = max((op.weight_bytes for op in distinct.values() if op.kind in TILEABLE),
                      default=0)
        # untiled where every op's weights fit one allocation and the limit; tiles at the
        # limit; and quarter tiles where some op is larger and the weights do not all fit
        # (finer pieces fill the memory kept resident across invocations more fully)
        sizes: list[int | None] = []
        if largest <= profile.gpu.max_alloc:
            sizes.append(None)
        if largest > limit:
            sizes.append(limit)
        quarter = max(MIN_TILE, limit // 4)
        if budget is not None and workload.weight_bytes > budget:
            if largest > quarter:
                sizes.append(quarter)
        else:  # every weight fits: tiles only let partial kernels start as their pieces land
            sizes += [s for s in dict.fromkeys((limit // 4, limit // 16, limit // 64))
                      if MIN_TILE <= s < largest]
    elif tile == "off":
        sizes = [None]
    else:
        size = None
        if not isinstance(tile, bool):
            try:
                size = parse_bytes(tile)
            except UnitError:
                pass
        if size is None or size < MIN_TILE // 256:
            raise SimError(f"flashmem tile must be 'auto', 'off' or a size of at least "
                           f"{MIN_TILE // 256} bytes (e.g. 64MiB), found {tile!r}")
        sizes = [size]
    # several tile sizes: compared by their earliest-issue plans, the full search on the best
    best: tuple | None = None
    for size in sizes:
        wl = workload if size is None else tile_workload(workload, size)
        if problem is not None and problem.workload is wl and budget_scope == "total":
            prob = replace(problem, budget=budget)
        else:
            prob = build_problem(wl, profile, budget, runtime, budget_scope)
        phase: dict = {}
        found = greedy(prob, lookahead, quick=len(sizes) > 1, phase=phase)
        if best is None or (found is not None and (best[2] is None
                                                   or found[1] < best[2][1] - 1e-15)):
            best = (wl, prob, found, size, phase)
    workload, problem, found, size, phase = best  # type: ignore[misc]
    if len(sizes) > 1 and found is not None:
        found = greedy(problem, lookahead, phase=phase)
    meta: dict[str, object] = {"planner": "greedy"}
    if found is None:
        plan, est = just_in_time(problem), None
        meta["planner"] = "just-in-time (no plan fits the budget)"
    else:
        plan, est = found
    lb = lower_bound(workload, profile, budget, problem)
    n_units = len(problem.units)
    use_solver = solver == "cp-sat" or (solver == "auto" and n_units <= solver_max_units)
    rolling = solver == "rolling" and n_units <= rolling_max_units
    if solver in ("auto", "rolling") and est is not None and est <= lb * (1 + 1e-9):
        use_solver = rolling = False
        meta["solver_skipped"] = "the greedy plan meets the latency lower bound: optimal"
    elif solver == "auto" and not use_solver:
        meta["solver_skipped"] = (f"{n_units} weighted ops > solver_max_units "
                                  f"({solver_max_units}); solver=rolling runs CP-SAT in windows")
    elif solver == "rolling" and not rolling:
        meta["solver_skipped"] = (f"{n_units} weighted ops > rolling_max_units "
                                  f"({rolling_max_units})")
    if rolling and found is not None:
        plan, est = _rolling(problem, plan, est, time_limit, min(lookahead, solver_lookahead),
                             solver_window, meta)
    if use_solver and found is not None:
        res = solve(problem, plan, time_limit, min(lookahead, solver_lookahead))
        meta.update(solver_status=res.status, solver_wall_s=res.wall_s,
                    solver_objective_s=res.objective_s, solver_bound_s=res.bound_s)
        if res.objective_s:
            meta["solver_gap"] = (res.objective_s - res.bound_s) / res.objective_s
        if res.plan is not None:
            t = makespan(problem, res.plan)
            if est is None or t < est - 1e-12:
                plan, est = res.plan, t
                meta["planner"] = "cp-sat"
    if est is not None:
        plan, est = keep_more(problem, plan, est)
    b = build_schedule(problem, plan)
    if window is not None:
        meta.update(kv_window_tokens=window, kv_bytes_written=kv_written)
    if size is not None:
        meta["tile_bytes"] = size
        meta["tiled_ops"] = sum(1 for inv in workload.invocations[:1] for op in inv.model.ops
                                if "tile" in op.attrs)
    meta.update(estimated_latency_s=est, lower_bound_s=lb,
                gap_to_lower_bound=(est - lb) / est if est else None,
                plan_time_s=time.perf_counter() - t0,
                streamed_units=len(plan.issue), weighted_units=len(problem.units))
    b.schedule.meta.update(meta)
    return b


def _rolling(problem: Problem, plan: Plan, est: float, time_limit: float, lookahead: int,
             window: int, meta: dict[str, object]) -> tuple[Plan, float]:
    """CP-SAT over consecutive windows of `window` weighted ops, each warm-started from the
    best plan so far with every other decision fixed; keeps a window's plan only if the
    executors' timing (`makespan`) says it is faster."""
    n = len(problem.units)
    starts = list(range(0, n, max(1, window)))
    share = time_limit / max(1, len(starts))
    improved, statuses, wall = 0, [], 0.0
    for a in starts:
        res = solve(problem, plan, share, lookahead, free=set(range(a, min(n, a + window))))
        statuses.append(res.status)
        wall += res.wall_s
        if res.plan is not None:
            t = makespan(problem, res.plan)
            if t < est - 1e-12:
                plan, est = Plan(res.plan.resident, res.plan.issue, "cp-sat"), t
                improved += 1
    meta.update(solver_windows=len(starts), solver_windows_improved=improved,
                solver_wall_s=wall, solver_status="rolling: " + ", ".join(
                    f"{statuses.count(k)} {k}" for k in dict.fromkeys(statuses)))
    if improved:
        meta["planner"] = "cp-sat (rolling windows)"
    return plan, est
