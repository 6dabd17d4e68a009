"""Replay overhead on an OpenCL device (PoCL by default): how much time the replay driver adds
beyond the work it times.

A `sequential` schedule overlaps nothing, so its measured latency minus the sum of every timed
interval (reads, copies, transforms, kernels) is the driver's own per-step cost. Setup (weight
files, pre-allocation, kernel builds) is `wall - latency`.

    python benchmarks/bench_replay.py [--device pocl]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, table  # noqa: E402

from hwprofiles import load_profile  # noqa: E402
from sim import plan, simulate  # noqa: E402
from validate.device import open_device  # noqa: E402
from validate.replay import ReplayOptions, replay  # noqa: E402
from workloads import Op, Tensor, chain, single  # noqa: E402


def layers(n: int, weight_kib: int, mflops: int):
    """`n` chained ops with `weight_kib` KiB of fp16 weights and `mflops` MFLOPs each."""
    ops = [Op(f"l{i}", "linear", mflops * 10**6,
              (Tensor(f"bench/w{i}", (weight_kib * 512,), "fp16"),), 4096, 4096)
           for i in range(n)]
    return single(chain("bench", ops))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="pocl")
    args = ap.parse_args()
    dev = open_device(args.device)
    prof = load_profile("calibrated-pocl-cpu")
    rows = []
    for n, kib, mflops in ((16, 16, 1), (64, 16, 1), (64, 1024, 10), (256, 16, 1)):
        wl = layers(n, kib, mflops)
        for path in ("via_buffer", "direct"):
            s = plan("sequential", wl, prof, None, path=path)
            r = replay(dev, s, ReplayOptions())
            busy = sum(i.end - i.start for i in r.trace.intervals)
            steps = len(s.steps)
            sim = simulate(s, prof, record_trace=False).metrics.latency_s
            rows.append([f"{n} x {kib} KiB, {mflops} MFLOP", path, steps, r.latency_s * 1e3,
                         busy * 1e3, (r.latency_s - busy) / steps * 1e6,
                         (r.wall_s - r.latency_s) * 1e3, sim * 1e3])
    table(f"Replay overhead on {dev.info.name if hasattr(dev, 'info') else args.device} "
          f"({machine()})",
          ["schedule", "path", "steps", "measured ms", "timed work ms", "driver us/step",
           "setup ms", "simulated ms (calibrated-pocl-cpu)"], rows)


if __name__ == "__main__":
    main()
