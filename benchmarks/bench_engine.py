"""Execution speed, before and after, measured side by side: building a workload, planning it,
executing it (the one-pass evaluator by default; the SimPy engine), events per op, the cost of
garbage collection and of trace recording, peak memory, and how the cost grows with size.

    python benchmarks/bench_engine.py [--baseline DIR] [--rounds 3] [--quick]

`--baseline DIR` is a checkout of the version to compare with (e.g. `git worktree add --detach
/tmp/base <commit>`); every measurement runs in a fresh interpreter, the two versions in
alternating rounds, and the tables give medians and before/after ratios.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import in_tree, machine, peak_rss_mib, ratio, table  # noqa: E402

PROFILE = "snapdragon-8-gen-3"
GIB, MIB = 2**30, 2**20
CASES = {  # name -> (workload, budget, policies)
    "llama-2-7b-decode-128": ("llama-2-7b-decode-128", 2 * GIB,
                              ("flashmem", "sequential", "pipeline")),
    "llama-3.2-1b-p128-d32": ("llama-3.2-1b-p128-d32", 1 * GIB,
                              ("flashmem", "sequential", "pipeline")),
    "resnet50": ("resnet50", 64 * MIB, ("flashmem", "sequential", "pipeline")),
    "gpt2": ("gpt2", 256 * MIB, ("flashmem", "sequential", "pipeline")),
}
QUICK = ("llama-3.2-1b-p128-d32", "resnet50")
# flashmem on llama-3.2-1b-p128-d32 at 1 GiB with ever smaller tiles: the cost per simulated
# op (a tile is an op: a partial kernel and its load) should stay flat as tiles multiply steps
TILES = ("off", "64MiB", "16MiB", "4MiB", "1MiB")


def measure_tiles() -> dict:
    """Per tile size: steps, kernels, and the seconds of each executor (after only: the
    baseline cannot tile)."""
    from hwprofiles import load_profile
    from sim import plan, simulate
    from workloads.scenarios import resolve_workload

    prof = load_profile(PROFILE)
    wl = resolve_workload("llama-3.2-1b-p128-d32", "fp16")
    out = {}
    for tile in TILES:
        s = plan("flashmem", wl, prof, GIB, tile=tile)
        t = time.perf_counter()
        m = simulate(s, prof, record_trace=False).metrics
        ev = time.perf_counter() - t
        t = time.perf_counter()
        e = simulate(s, prof, record_trace=False, engine="simpy").metrics
        out[tile] = {"steps": len(s.steps), "ops": len(s.computes), "exec_s": ev,
                     "engine_s": time.perf_counter() - t, "events": e.sim_events,
                     "executor": m.executor, "latency_s": m.latency_s,
                     "same": (m.latency_s, m.peak_memory_bytes) == (e.latency_s,
                                                                   e.peak_memory_bytes)}
    return out


def measure(case: str) -> dict:
    """One case in this interpreter: build, then per policy plan and execute (the default
    executor, and the SimPy engine with its events, collections and trace cost)."""
    import sim
    from hwprofiles import load_profile
    from sim import plan, simulate
    from workloads.scenarios import resolve_workload

    new = hasattr(sim, "ENGINES")
    name, budget, policies = CASES[case]
    prof = load_profile(PROFILE)
    t = time.perf_counter()
    wl = resolve_workload(name, "fp16")
    out: dict = {"build_s": time.perf_counter() - t, "new": new}
    for policy in policies:
        t = time.perf_counter()
        s = plan(policy, wl, prof, budget)
        planned = time.perf_counter() - t
        t = time.perf_counter()
        m = simulate(s, prof, record_trace=False).metrics
        default = time.perf_counter() - t
        stats = gc.get_stats()
        t = time.perf_counter()
        e = (simulate(s, prof, record_trace=False, engine="simpy") if new
             else simulate(s, prof, record_trace=False)).metrics
        engine = time.perf_counter() - t
        collections = sum(a["collections"] - b["collections"]
                          for a, b in zip(gc.get_stats(), stats, strict=True))
        row = {"plan_s": planned, "exec_s": default, "engine_s": engine,
               "events": e.sim_events, "steps": len(s.steps), "ops": len(s.computes),
               "collections": collections, "latency_s": m.latency_s,
               "peak": m.peak_memory_bytes, "same": (m.latency_s, m.peak_memory_bytes) ==
               (e.latency_s, e.peak_memory_bytes),
               "executor": getattr(m, "executor", "simpy")}
        if policy == "flashmem":
            t = time.perf_counter()
            if new:
                simulate(s, prof, record_trace=True, engine="simpy")
            else:
                simulate(s, prof, record_trace=True)
            row["engine_trace_s"] = time.perf_counter() - t
        out[policy] = row
    out["rss_mib"] = peak_rss_mib()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="checkout of the version to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="the small cases only")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.emit:
        print(json.dumps(measure_tiles() if args.case == "tiles" else measure(args.case)))
        return
    cases = QUICK if args.quick else tuple(CASES)
    trees = {"after": None, **({"before": args.baseline} if args.baseline else {})}
    runs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.rounds):  # alternate versions: load on a shared machine hits both
        for case in cases:
            for label, tree in trees.items():
                runs.setdefault((label, case), []).append(
                    in_tree(tree, "bench_engine.py", "--case", case))
        runs.setdefault(("after", "tiles"), []).append(
            in_tree(None, "bench_engine.py", "--case", "tiles"))
    print(f"Machine: {machine()}; profile {PROFILE}; medians of {args.rounds} rounds\n")

    def med(label: str, case: str, *path: str) -> float | None:
        vals = []
        for r in runs.get((label, case), []):
            v = r
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            if v is not None:
                vals.append(v)
        return statistics.median(vals) if vals else None

    rows = []
    for case in cases:
        _, budget, policies = CASES[case]
        for policy in policies:
            after = runs[("after", case)][0][policy]
            b_exec = med("before", case, policy, "exec_s")
            a_exec = med("after", case, policy, "exec_s")
            rows.append([case, policy, after["ops"], med("before", case, policy, "events") or "-",
                         after["events"], b_exec or "-", a_exec, ratio(b_exec, a_exec),
                         med("after", case, policy, "engine_s"),
                         ratio(b_exec, med("after", case, policy, "engine_s")),
                         after["executor"], "yes" if all(
                             r[policy]["same"] for r in runs[("after", case)]) else "NO"])
    table("Executing one schedule (s): before = the SimPy engine of the baseline; after = "
          "the default executor, and the SimPy engine alone",
          ["workload", "policy", "ops", "events before", "events after", "exec before",
           "exec after", "ratio", "engine after", "engine ratio", "executor",
           "evaluator = engine"], rows)

    rows = []
    for case in cases:
        b = [med("before", case, "build_s")]
        a = [med("after", case, "build_s")]
        for policy in CASES[case][2]:
            b.append(med("before", case, policy, "plan_s"))
            a.append(med("after", case, policy, "plan_s"))
        rows.append([case, *(f"{x:.3g} -> {y:.3g} ({ratio(x, y)})" if x else f"{y:.3g}"
                             for x, y in zip(b, a, strict=True))])
    table("Building the workload and planning (s, before -> after)",
          ["workload", "build", *(f"plan {p}" for p in CASES[cases[0]][2])], rows)

    rows = []
    for case in cases:
        total_b = sum(filter(None, [med("before", case, "build_s"),
                                    med("before", case, "flashmem", "plan_s"),
                                    med("before", case, "flashmem", "exec_s")]))
        total_a = (med("after", case, "build_s") + med("after", case, "flashmem", "plan_s")
                   + med("after", case, "flashmem", "exec_s"))
        rows.append([case, CASES[case][1] // MIB, total_b or "-", total_a,
                     ratio(total_b, total_a), med("before", case, "rss_mib") or "-",
                     med("after", case, "rss_mib")])
    table("flashmem end to end: build + plan + execute (s), and peak RSS of the process (MiB)",
          ["workload", "budget MiB", "before", "after", "ratio", "RSS before", "RSS after"],
          rows)

    rows = []
    for case in cases:
        for label in trees:
            e = med(label, case, "flashmem", "engine_s")
            tr = med(label, case, "flashmem", "engine_trace_s")
            ops = runs[(label, case)][0]["flashmem"]["ops"]
            rows.append([case, label, med(label, case, "flashmem", "collections"),
                         med(label, case, "flashmem", "events") / ops, e / ops * 1e6,
                         f"{(tr / e - 1):+.0%}" if e and tr else "-"])
    table("The SimPy engine on flashmem: GC collections during a run, events per op, cost per "
          "op, and what recording the trace adds",
          ["workload", "version", "collections", "events/op", "us/op", "trace adds"], rows)

    rows = []
    for tile in TILES:
        first = runs[("after", "tiles")][0][tile]
        ev = med("after", "tiles", tile, "exec_s")
        en = med("after", "tiles", tile, "engine_s")
        rows.append([tile, first["ops"], first["steps"], ev, ev / first["ops"] * 1e6,
                     ev / first["steps"] * 1e6, en, en / first["ops"] * 1e6,
                     first["events"] / first["ops"], first["executor"],
                     "yes" if all(r[tile]["same"] for r in runs[("after", "tiles")]) else "NO"])
    table("Tiles multiply steps: flashmem on llama-3.2-1b-p128-d32 at 1 GiB with a fixed tile "
          "size (after only); cost per simulated op (kernel)",
          ["tile", "ops", "steps", "exec s", "us/op", "us/step", "engine s", "engine us/op",
           "events/op",
           "executor", "evaluator = engine"], rows)


if __name__ == "__main__":
    main()
