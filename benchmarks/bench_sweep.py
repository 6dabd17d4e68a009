"""Sweep throughput, before and after, side by side: the built-in default sweep (serial, two
worker processes, and the automatic choice), and a 1,000-point LLM sweep (llama-3.2-1b prefill
128 + decode 32 x 5 phones x 4 policies x 50 budgets) measured on a 100-point slice (every
tenth budget) and extrapolated.

    python benchmarks/bench_sweep.py [--baseline DIR] [--rounds 2]

The slice keeps the full sweep's structure (every phone and policy, budgets spread over the
same range), so per-chunk costs (building the workload once per chunk) weigh ten times more in
it than in the full sweep: the extrapolation (x10) overestimates the full sweep's wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import in_tree, machine, peak_rss_mib, ratio, table  # noqa: E402

PHONES = ["snapdragon-8-gen-3", "snapdragon-8-gen-2", "snapdragon-8-elite", "dimensity-9300",
          "tensor-g3"]
POLICIES = ["preload", "sequential", "pipeline", "flashmem"]
LLM = "llama-3.2-1b-p128-d32"


def llm_budgets(points: int = 50) -> list[str]:
    """`points` log-spaced budgets from 96 MiB to 6 GiB (in MiB)."""
    lo, hi = 96, 6 * 1024
    return [f"{round(lo * (hi / lo) ** (k / (points - 1)))}MiB" for k in range(points)]


def llm_spec(every: int = 10) -> dict:
    return {"name": "llm-slice" if every > 1 else "llm-1000", "workloads": [LLM],
            "profiles": PHONES, "policies": POLICIES, "budgets": llm_budgets()[::every],
            "dtypes": ["fp16"]}


def measure(mode: str, runner: str) -> dict:
    """Run one sweep in this interpreter; wall seconds, runs, and the plotting time."""
    from experiments.runners import PoolRunner, SerialRunner, make_runner
    from experiments.spec import load_spec, parse_spec
    from experiments.sweep import run_sweep

    spec = load_spec("default") if mode == "default" else parse_spec(llm_spec())
    r = {"serial": SerialRunner, "pool2": lambda: PoolRunner(2),
         "auto": lambda: make_runner(None)}[runner]()
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        try:
            outcome = run_sweep(spec, out, r, progress=False)
        finally:
            r.close()
        wall = time.perf_counter() - t
        plot = None
        if mode == "default":
            from experiments.plots import plot_tradeoff
            from experiments.summary import feasible_rows

            t = time.perf_counter()
            if not feasible_rows(outcome.results).empty:
                for ext in ("png", "svg"):
                    plot_tradeoff(outcome.results, Path(out) / f"tradeoff.{ext}")
            plot = time.perf_counter() - t
        df = outcome.results
        executors = (df["executor"].value_counts().to_dict()
                     if "executor" in df else {"simpy": len(df)})
    return {"wall_s": wall, "runs": outcome.executed, "infeasible": outcome.failed,
            "plot_s": plot, "runner": r.name, "rss_mib": peak_rss_mib(),
            "executors": executors}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="checkout of the version to compare with")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--runner", help=argparse.SUPPRESS)
    ap.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.emit:
        print(json.dumps(measure(args.mode, args.runner)))
        return
    trees = {"after": None, **({"before": args.baseline} if args.baseline else {})}
    plan = [("default", "serial"), ("default", "pool2"), ("default", "auto"),
            ("llm", "serial"), ("llm", "pool2"), ("llm", "auto")]
    runs: dict[tuple, list[dict]] = {}
    for _ in range(args.rounds):
        for mode, runner in plan:
            for label, tree in trees.items():
                if label == "before" and runner == "auto":
                    continue  # the baseline's default was a pool of one process per core
                runs.setdefault((label, mode, runner), []).append(
                    in_tree(tree, "bench_sweep.py", "--mode", mode, "--runner", runner))
    print(f"Machine: {machine()}; medians of {args.rounds} rounds\n")

    def med(label: str, mode: str, runner: str, key: str) -> float | None:
        vals = [r[key] for r in runs.get((label, mode, runner), []) if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    rows = []
    for mode, runner in plan:
        a = runs[("after", mode, runner)][-1]
        b = med("before", mode, runner, "wall_s")
        w = med("after", mode, runner, "wall_s")
        rows.append([mode if mode == "default" else f"{LLM}, 100-point slice", runner,
                     a["runner"], a["runs"], a["infeasible"], b or "-", w, ratio(b, w),
                     a["runs"] / w, ", ".join(f"{k} {v}" for k, v in a["executors"].items())])
    table("Sweep wall time (s), before -> after", [
        "sweep", "runner", "ran as", "runs", "infeasible", "wall before", "wall after", "ratio",
        "runs/s after", "executors after"], rows)
    pb, pa = med("before", "default", "serial", "plot_s"), med("after", "default", "serial",
                                                                "plot_s")
    print(f"Plotting the default sweep (png + svg): before {pb or '-'} s, after {pa:.2f} s\n")

    best = min((med("after", "llm", r, "wall_s"), r) for r in ("serial", "pool2", "auto"))
    before = [(med("before", "llm", r, "wall_s"), r) for r in ("serial", "pool2")]
    before = [b for b in before if b[0]]
    rows = [["after", best[1], best[0], best[0] * 10, math.ceil(best[0] * 10 / 60)]]
    if before:
        b = min(before)
        rows.insert(0, ["before", b[1], b[0], b[0] * 10, math.ceil(b[0] * 10 / 60)])
    table(f"1,000-point sweep of {LLM} x {len(PHONES)} phones x {len(POLICIES)} policies x 50 "
          "budgets on this machine, extrapolated from the 100-point slice (x10)",
          ["version", "runner", "slice s", "1,000 points s (extrapolated)", "minutes"], rows)


if __name__ == "__main__":
    main()
