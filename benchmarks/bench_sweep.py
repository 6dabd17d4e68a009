"""Sweep throughput: runs per second of the built-in default sweep, serial vs process pool.

    python benchmarks/bench_sweep.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, peak_rss_mib, table  # noqa: E402

from experiments.runners import make_runner  # noqa: E402
from experiments.spec import load_spec  # noqa: E402
from experiments.sweep import run_sweep  # noqa: E402


def main() -> None:
    spec = load_spec("default")
    rows = []
    for label, workers in (("serial", 1), ("process pool (all cores)", None)):
        with tempfile.TemporaryDirectory() as out:
            runner = make_runner(workers)
            try:
                t0 = time.perf_counter()
                outcome = run_sweep(spec, out, runner, progress=False)
                secs = time.perf_counter() - t0
            finally:
                runner.close()
            n = outcome.executed
            rows.append([label, n, secs, n / secs])
    table(f"Default sweep ({machine()})", ["runner", "runs", "wall s", "runs/s"], rows)
    print(f"peak RSS (this process): {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
