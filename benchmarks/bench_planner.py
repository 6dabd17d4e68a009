"""FlashMem planner time vs graph size and budget (CP-SAT on small graphs, greedy on large),
including Llama-2-7B decode and the Stable Diffusion pipeline.

    python benchmarks/bench_planner.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, peak_rss_mib, table, timed  # noqa: E402

from hwprofiles import load_profile  # noqa: E402
from sim import plan  # noqa: E402
from sim.planner.problem import build_problem  # noqa: E402
from workloads.scenarios import resolve_workload  # noqa: E402

PROFILE = "snapdragon-8-gen-3"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    prof = load_profile(PROFILE)
    names = ["mobilenetv2", "resnet50", "gpt2", "vit-b16", "llama-3.2-1b"]
    if not args.quick:
        names += ["sd15-20steps", "llama-2-7b-decode-128"]
    rows = []
    for name in names:
        wl = resolve_workload(name, "fp16")
        weights = wl.weight_bytes
        n_units = len(build_problem(wl, prof, None).units)
        for frac in (0.1, 0.3, 0.6):
            budget = int(weights * frac)
            secs, s = timed(lambda wl=wl, budget=budget: plan("flashmem", wl, prof, budget),
                            1 if n_units > 1000 else 3)
            m = s.meta
            rows.append([name, n_units, f"{frac:.0%}", m["planner"], m.get("solver_status", "-"),
                         m.get("solver_gap", float("nan")), secs])
    table(f"FlashMem planning time on {PROFILE} ({machine()})",
          ["workload", "weighted ops", "budget / weights", "planner", "solver status",
           "solver gap", "plan s"], rows)
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
