"""Demand Layering (Ji et al., RTSS'22, arXiv 2210.04024) as its code runs
(AveesLab/demand-layering: Darknet with ONDEMAND_LOAD, DIRECT_IO and one pipeline switch).

A *layer* is Darknet's: a convolution with its BatchNorm (and activation), which the weight file
stores together and one read brings in; layers without weights (route, shortcut, pooling) only
run their kernel. Plans use the ops as the runtime lowers them (the `darknet` runtime folds
BatchNorm into the convolution); where a runtime leaves a norm right behind its convolution, the
norm's weights are still read with the convolution's, as Darknet's file stores them (and an op
that reuses the weights of the layer before it joins that layer: one read for tied weights).

Variants (the code's compile-time switches):
- `sequential`: per layer: read into one host buffer, copy (cudaMemcpy) into one GPU buffer, run
  the kernel, synchronise; nothing overlaps. Buffers: one host and one GPU buffer.
- `sync`: a lock-step three-stage pipeline over all layers: step s reads layer s, copies layer
  s-1 and runs layer s-2, and ends when all three have ended (a barrier); reads and copies
  alternate between two host and two GPU buffers.
- `async`: a host ring and a GPU ring: a layer is read as soon as the host ring has room (freed
  when a layer's copy ends), copied as soon as the GPU ring has room (freed when its kernel
  ends), and run once copied.
- `two-stage`: one ring in host memory the GPU maps (zero-copy): a layer is read as soon as the
  ring has room (freed when its kernel ends) and its kernel reads it there; needs a GPU that maps
  host memory (`transfer.zero_copy`).

Buffers are allocated once before the first layer and held (`Schedule.buffers`); memory is the
buffers, as the paper counts it. Sizes follow the code: the largest layer plus the code's slack
(sequential 1,152 floats, sync 2,048 floats, async 4 KiB + 512 B, two-stage 1,024 floats), and
for the rings plus the paper's trade-off `extra` p (the code steps it by 1 MiB). The knob of the
ring variants is `extra` (p), `buffer` (the ring size) or `depth` (a window of layers in flight
instead of a byte ring, each ring sized for the largest such window); `depth="auto"` (the
default) simulates the candidates on the engine and takes the fastest whose buffers (with the
activation peak when the budget scope is total) fit the budget, the least memory among equals
(see `_auto`).

Reads are O_DIRECT: whole 512-byte sectors of the weight file (a layer stored at [o, o + n)
reads align_up(o + n) - align_down(o) bytes; the file holds each model's layers back to back
from offset 0, as the repository's headerless weight files do). How many reads are in flight at
once is the runtime's reader (`load.reads_in_flight`; glibc's POSIX AIO serves one request per
file descriptor at a time). Not modelled: the published code's rings are allocated at 20x the
largest layer and used up to the logical size modelled here; its two-stage ring re-reads the
sector two layers share (one sector per layer, counted in `read_bytes` but not in ring room).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from hwprofiles.units import UnitError, format_bytes, parse_bytes
from sim.bounds import lower_bound
from sim.errors import SimError
from sim.hardware import IDEAL
from sim.planner.problem import build_problem
from sim.policies.builder import Builder, Unit, units
from sim.policies.search import simulated
from workloads.fusion import fusion_chains
from workloads.workload import Workload

VARIANTS = ("auto", "sequential", "sync", "async", "two-stage")
RING_VARIANTS = ("async", "two-stage")
SECTOR = 512  # O_DIRECT alignment the code rounds reads to
MIB = 1 << 20  # the code's trade-off step ("p MB": 256 x 1024 floats)
FLOAT = 4
# bytes the code adds to the largest layer for each buffer (see the module docstring)
SLACK = {"sequential": (128 + 1024) * FLOAT, "sync": 2048 * FLOAT, "async": 4096 + 512,
         "two-stage": 1024 * FLOAT}


@dataclass
class Layer:
    """One Darknet layer of one invocation: its kernels and the weights one read brings in."""

    units: list[Unit]
    tensors: tuple[str, ...] = ()
    nbytes: int = 0
    read_bytes: int = 0
    first_compute: int = -1  # schedule step ids, set while building
    last_compute: int = -1
    load: int = -1
    free: int = -1


@dataclass(frozen=True)
class Config:
    """One buffer configuration of a variant: a ring of `ring` bytes or a window of `depth`."""

    ring: int | None = None
    depth: int | None = None

    def label(self) -> str:
        if self.depth is not None:
            return f"depth {self.depth}"
        return f"ring {format_bytes(self.ring)}" if self.ring is not None else "fixed buffers"


@dataclass
class _Plan:
    config: Config
    builder: Builder
    buffer_bytes: int
    latency: float | None = None


def _sector_span(offset: int, nbytes: int) -> int:
    lo = offset // SECTOR * SECTOR
    hi = -(-(offset + nbytes) // SECTOR) * SECTOR
    return hi - lo


def darknet_layers(workload: Workload) -> list[Layer]:
    """Every layer of every invocation in GPU order, each weighted layer with the sectors its
    read covers in its model's weight file."""
    out: list[Layer] = []
    seq = units(workload)
    offsets: dict[str, dict[str, int]] = {}  # model -> head op -> file offset of its weights
    pos = 0
    for inv in workload.invocations:
        model = inv.model
        # a norm right behind its convolution: read with it (Darknet's file stores them together)
        follower = {c[1]: c[0] for c in fusion_chains(model, ("conv_bn",))}
        known = offsets.get(model.name)
        file_pos = {} if known is None else None
        end = 0
        layer: Layer | None = None
        for op in model.ops:
            u = seq[pos]
            pos += 1
            head = follower.get(op.name)
            shares = layer is not None and any(t.name in layer.tensors for t in op.weights)
            if layer is not None and (shares or head is not None
                                      and layer.units[-1].op.name == head):
                # a norm behind its convolution, or an op reusing the layer's weights (tied)
                layer.units.append(u)
            else:
                layer = Layer([u])
                out.append(layer)
            names = [t.name for t in op.weights if t.name not in layer.tensors]
            if names:
                layer.tensors += tuple(dict.fromkeys(names))
                layer.nbytes += sum(t.nbytes for t in dict.fromkeys(op.weights)
                                    if t.name in names)
                key = layer.units[0].op.name
                if file_pos is not None:
                    file_pos.setdefault(key, end)
                    end = file_pos[key] + layer.nbytes
        if file_pos is not None:
            offsets[model.name] = file_pos
    # sector spans: the offsets of each model's file, per layer head
    for layer in out:
        if layer.tensors:
            model = workload.invocations[layer.units[0].inv].model.name
            off = offsets[model].get(layer.units[0].op.name, 0)
            layer.read_bytes = _sector_span(off, layer.nbytes)
    return out


def ring_waits(sizes: list[int], capacity: int) -> list[int | None]:
    """For each buffer fill in order (sizes in bytes), the latest earlier fill whose region of a
    ring of `capacity` bytes it overwrites (None: free space), placing each fill right after the
    one before and wrapping to the start when it does not fit before the end (the code's
    head/tail indices)."""
    prev: deque[tuple[int, int, int]] = deque()  # (start, end, fill) of earlier laps, by start
    curr: list[tuple[int, int, int]] = []
    out: list[int | None] = []
    pos = 0
    for i, s in enumerate(sizes):
        if s > capacity:
            raise SimError(f"a {s}-byte read does not fit a {capacity}-byte ring")
        if pos + s > capacity:  # wrap: what this lap wrote is now the oldest data ahead
            prev = deque([*curr, *prev])
            curr = []
            pos = 0
        a, b = pos, pos + s
        wait: int | None = None
        while prev and prev[0][0] < b:
            start, end, j = prev[0]
            if end > a:
                wait = j if wait is None else max(wait, j)
            if end <= b:
                prev.popleft()
            else:
                break
        curr.append((a, b, i))
        out.append(wait)
        pos = b
    return out


def window_waits(n: int, depth: int) -> list[int | None]:
    """A window of `depth` fills: fill i waits for fill i - depth to be released."""
    return [i - depth if i >= depth else None for i in range(n)]


def window_bytes(sizes: list[int], depth: int) -> int:
    """The most bytes any `depth` consecutive fills hold at once."""
    best = run = 0
    for i, s in enumerate(sizes):
        run += s
        if i >= depth:
            run -= sizes[i - depth]
        best = max(best, run)
    return best


class _Emitter:
    """Builds one variant's schedule, one inference at a time (shared bookkeeping).

    Each inference is one pass of the code's forward function, which ends by synchronising the
    device: the pipelines and rings start afresh, and the reads of an inference wait for the
    last kernel of the one before."""

    def __init__(self, workload: Workload, profile: HardwareProfile, budget: int | None,
                 layers: list[Layer], scope: str):
        self.b = Builder("demand-layering", workload, profile, budget)
        self.b.schedule.budget_scope = scope
        self.invocations: list[list[Layer]] = []
        for layer in layers:
            inv = layer.units[0].inv
            if not self.invocations or self.invocations[-1][0].units[0].inv != inv:
                self.invocations.append([])
            self.invocations[-1].append(Layer(list(layer.units), layer.tensors, layer.nbytes,
                                              layer.read_bytes))
        self.last_occurrence: dict[str, int] = {}  # tensor -> free step of its latest layer
        self.last_compute: int | None = None
        self.gate: int | None = None  # the previous inference's last kernel

    def begin(self) -> None:
        """A new inference: its reads wait for the device to finish the one before."""
        self.gate = self.last_compute

    def load(self, layer: Layer, path: str, after: list[int], copy_after: list[int] = ()
             ) -> None:
        # a tensor read again (tied weights) waits for its earlier free
        after = list(after) + [self.last_occurrence[t] for t in layer.tensors
                               if t in self.last_occurrence]
        if self.gate is not None:  # no read of this inference before the last one ends
            after.append(self.gate)
        layer.load = self.b.load(layer.tensors, after=after, path=path, dst="buffer",
                                 read_bytes=layer.read_bytes, copy_after=copy_after,
                                 preallocated=True)

    def run(self, layer: Layer, after_read: list[int] = ()) -> None:
        users = []
        for k, u in enumerate(layer.units):
            after = [layer.load] if u.op.weights else []
            cid = self.b.compute(u, after, after_read if k == 0 else ())
            if k == 0:
                layer.first_compute = cid
            if u.op.weights:
                users.append(cid)
            layer.last_compute = self.last_compute = cid
        if layer.tensors:
            layer.free = self.b.free(layer.tensors, after=users)
            for t in layer.tensors:
                self.last_occurrence[t] = layer.free

    def buffers(self, **sizes: tuple[int, str]) -> int:
        self.b.schedule.buffers = {name.replace("_", " "): {"bytes": n, "category": cat}
                                   for name, (n, cat) in sizes.items()}
        return sum(n for n, _ in sizes.values())


def _sequential(em: _Emitter, largest: int) -> int:
    for layers in em.invocations:
        em.begin()
        for layer in layers:
            if layer.tensors:
                em.load(layer, "staged",
                        [em.last_compute] if em.last_compute is not None else [])
            em.run(layer)
    slot = largest + SLACK["sequential"]
    return em.buffers(host_buffer=(slot, "staging"), gpu_buffer=(slot, "weights"))


def _sync_pass(em: _Emitter, layers: list[Layer]) -> None:
    """One inference of the lock-step pipeline."""
    n = len(layers)
    # barrier[s]: the stages step s waits for, as ('R'|'C'|'K', layer); a stage with nothing to
    # do (a layer without weights has no read or copy) ends with the step before it
    barrier: list[set[tuple[str, int]]] = []
    for s in range(n + 2):
        members: set[tuple[str, int]] = set()
        for kind, j in (("R", s), ("C", s - 1), ("K", s - 2)):
            if not 0 <= j < n:
                continue
            if kind == "K" or layers[j].tensors:
                members.add((kind, j))
            elif s > 0:
                members |= barrier[s - 1]
        barrier.append(members)

    def deps(events: set[tuple[str, int]], own: int) -> tuple[list[int], list[int]]:
        after, reads = [], []
        for kind, j in sorted(events):
            if kind == "K":
                after.append(layers[j].last_compute)
            elif kind == "C":
                after.append(layers[j].load)
            elif j != own:
                reads.append(layers[j].load)
        return after, reads

    def emit_load(t: int) -> None:
        if 0 <= t < n and layers[t].tensors:
            after, _ = deps(barrier[t - 1] if t > 0 else set(), t)
            copy_after, _ = deps(barrier[t], t)
            em.load(layers[t], "staged", after, copy_after)

    emit_load(0)
    for t in range(n):
        emit_load(t + 1)  # its read belongs to the step whose barrier layer t's kernel waits on
        # the kernel waits for the step barrier: the next layer's read, this layer's copy (its
        # own load) and the kernel before it (the in-order GPU queue)
        _, reads = deps(barrier[t + 1], -1)
        em.run(layers[t], reads)


def _sync(em: _Emitter, largest: int) -> int:
    for layers in em.invocations:
        em.begin()
        _sync_pass(em, layers)
    slot = largest + SLACK["sync"]
    return em.buffers(host_buffer_A=(slot, "staging"), host_buffer_B=(slot, "staging"),
                      gpu_buffer_A=(slot, "weights"), gpu_buffer_B=(slot, "weights"))


def _ring(em: _Emitter, variant: str, config: Config, largest: int) -> int:
    reads = [[lay.read_bytes for lay in layers if lay.tensors] for layers in em.invocations]
    if config.depth is not None:
        ring = max((window_bytes(r, config.depth) for r in reads), default=0)
    else:
        ring = int(config.ring)  # type: ignore[arg-type]
    for layers, sizes in zip(em.invocations, reads, strict=True):
        em.begin()
        weighted = [layer for layer in layers if layer.tensors]
        waits = (window_waits(len(sizes), config.depth) if config.depth is not None
                 else ring_waits(sizes, ring))
        k = 0
        for layer in layers:
            if layer.tensors:
                w = waits[k]
                k += 1
                held = weighted[w] if w is not None else None
                if variant == "async":
                    # the host slot frees when its copy ends, the GPU slot when its kernel ends
                    em.load(layer, "staged", [held.load] if held else [],
                            [held.last_compute] if held else [])
                else:
                    em.load(layer, "direct", [held.last_compute] if held else [])
            em.run(layer)
    if variant == "async":
        return em.buffers(host_ring=(ring, "staging"), gpu_ring=(ring, "weights"))
    return em.buffers(ring=(ring, "weights"))


def _size(value: Any, what: str) -> int:
    try:
        n = parse_bytes(value)
    except UnitError as exc:
        raise SimError(f"demand-layering {what}: {exc}") from None
    if n < 0:
        raise SimError(f"demand-layering {what} must not be negative, found {value!r}")
    return n


def demand_layering(workload: Workload, profile: HardwareProfile, budget: int | None = None,
                    variant: str = "auto", depth: int | str | None = "auto",
                    buffer: int | str | None = None, extra: int | str | None = None,
                    runtime: RuntimeProfile | None = None,
                    budget_scope: str = "total") -> Builder:
    """Demand Layering's `variant` (auto: two-stage where the GPU maps host memory, else
    async) with its buffers set by `extra` (p over the largest layer), `buffer` (ring bytes) or
    `depth` (layers in flight, or 'auto': the fastest fitting configuration)."""
    if variant not in VARIANTS:
        raise SimError(f"unknown demand-layering variant {variant!r}; valid: "
                       f"{', '.join(VARIANTS)}")
    zero_copy = profile.transfer.zero_copy
    if variant == "auto":
        variant = "two-stage" if zero_copy else "async"
    if variant == "two-stage" and not zero_copy:
        raise SimError(f"demand-layering two-stage needs a GPU that reads host memory in place "
                       f"(transfer.zero_copy); {profile.name} has none; valid variants here: "
                       "sequential, sync, async")
    rt = runtime or IDEAL
    if rt.holding == "mmap":
        raise SimError(f"demand-layering reads layers with O_DIRECT into its own buffers; runtime "
                       f"{rt.name} maps its weight file (weights.holding mmap)")
    knobs = [k for k, v in (("buffer", buffer), ("extra", extra)) if v is not None]
    if variant not in RING_VARIANTS:
        if knobs or depth not in ("auto", None):
            raise SimError(f"demand-layering {variant} has fixed buffers; depth, buffer and "
                           f"extra apply to the ring variants ({', '.join(RING_VARIANTS)})")
    if len(knobs) > 1:
        raise SimError("give demand-layering one of buffer or extra, not both")
    if depth not in ("auto", None) and (not isinstance(depth, int) or isinstance(depth, bool)
                                        or depth < 1):
        raise SimError(f"demand-layering depth must be a whole number >= 1 or 'auto', found "
                       f"{depth!r}")
    if knobs and depth not in ("auto", None):
        raise SimError(f"give demand-layering one of depth or {knobs[0]}, not both")

    layers = darknet_layers(workload)
    weighted = [layer for layer in layers if layer.tensors]
    largest = max((layer.nbytes for layer in weighted), default=0)
    biggest_read = max((layer.read_bytes for layer in weighted), default=0)
    act = max(workload.activation_profile(), default=0) if budget_scope == "total" else 0

    def build(config: Config) -> _Plan:
        em = _Emitter(workload, profile, budget, layers, budget_scope)
        if variant == "sequential":
            total = _sequential(em, largest)
        elif variant == "sync":
            total = _sync(em, largest)
        else:
            total = _ring(em, variant, config, largest)
        return _Plan(config, em.b, total)

    def evaluate(p: _Plan) -> _Plan:
        p.latency = simulated(p.builder, profile, budget, rt)[0]
        return p

    def fits(total: int) -> bool:
        return budget is None or total + act <= budget

    def ring_size(p_bytes: int) -> int:
        slack = SLACK[variant] if p_bytes == 0 else (4096 if variant == "async" else 0)
        return max(largest + slack + p_bytes, biggest_read)

    meta: dict[str, Any] = {"variant": variant, "layers": len(layers),
                            "weighted_layers": len(weighted), "largest_layer_bytes": largest}
    if variant not in RING_VARIANTS:
        chosen = build(Config())
    elif buffer is not None or extra is not None:
        ring = (_size(buffer, "buffer") if buffer is not None
                else ring_size(_size(extra, "extra")))
        if ring < biggest_read:
            raise SimError(f"demand-layering buffer {format_bytes(ring)} is smaller than the "
                           f"largest layer's read ({biggest_read} bytes)")
        chosen = build(Config(ring=ring))
    elif isinstance(depth, int):
        chosen = build(Config(depth=depth))
    else:
        chosen = _auto(weighted, variant, ring_size, build, evaluate, fits, meta)
    buffers = chosen.builder.schedule.buffers
    fixed = {"sequential": "one host + one GPU buffer",
             "sync": "two host + two GPU buffers, alternating"}
    meta.update(config=fixed.get(variant) or chosen.config.label(),
                buffer_bytes=sum(b["bytes"] for b in buffers.values()))
    if chosen.config.depth is not None:
        meta["depth"] = chosen.config.depth
    if chosen.config.ring is not None:
        meta["ring_bytes"] = chosen.config.ring
        meta["extra_bytes"] = max(0, chosen.config.ring - largest - SLACK[variant])
    meta["lower_bound_s"] = lower_bound(workload, profile, budget, build_problem(
        workload, profile, budget, rt, budget_scope))
    chosen.builder.schedule.meta.update(meta)
    return chosen.builder


def _auto(weighted: list[Layer], variant: str, ring_size: Callable[[int], int],
          build: Callable[[Config], _Plan], evaluate: Callable[[_Plan], _Plan],
          fits: Callable[[int], bool], meta: dict[str, Any]) -> _Plan:
    """The fastest configuration whose buffers fit (the least memory among equals).

    Depth windows: the buffers are held from the start, so the memory pool never gates a load
    and a deeper window only releases reads earlier: latency never grows with depth. The
    deepest fitting window is therefore the fastest; a bisection finds the shallowest as fast.
    Rings: the largest layer + p for p = 0, 1, 2, 4, ... MiB while they fit (wrap-around makes
    ring latency not monotone in p, so each is simulated)."""
    per_inv: dict[int, list[int]] = {}
    for layer in weighted:
        per_inv.setdefault(layer.units[0].inv, []).append(layer.read_bytes)
    rings = 2 if variant == "async" else 1  # async holds a host ring and a GPU ring

    def window(d: int) -> int:  # the rings start afresh with each inference
        return max((window_bytes(r, d) for r in per_inv.values()), default=0)

    n = max([1, *(len(r) for r in per_inv.values())])
    lo, hi = 1, 0  # hi: the deepest fitting depth (bytes grow with depth: bisect)
    top = n
    while lo <= top:
        mid = (lo + top) // 2
        if fits(rings * window(mid)):
            hi, lo = mid, mid + 1
        else:
            top = mid - 1
    scored: list[_Plan] = []
    if hi >= 1:
        deepest = evaluate(build(Config(depth=hi)))
        scored.append(deepest)
        a, b = 1, hi  # the shallowest depth as fast as the deepest
        while a < b:
            mid = (a + b) // 2
            cand = evaluate(build(Config(depth=mid)))
            scored.append(cand)
            if cand.latency <= deepest.latency:
                b = mid
            else:
                a = mid + 1
    total, p_mib = max((sum(r) for r in per_inv.values()), default=0), 0
    while True:
        ring = ring_size(p_mib * MIB)
        if not fits(rings * ring):
            break
        scored.append(evaluate(build(Config(ring=ring))))
        if ring >= total:
            break
        p_mib = 1 if p_mib == 0 else 2 * p_mib
    if not scored:  # nothing fits: the smallest configuration, which the engine will refuse
        scored = [evaluate(build(Config(depth=1)))]
    meta["auto_candidates"] = len(scored)
    return min(scored, key=lambda p: (p.latency, p.buffer_bytes))
