"""Results store and sweep overhead: append a part, read the stored keys, load, consolidate,
and the default sweep end to end (serial), optionally side by side with another source tree.

    python benchmarks/bench_store.py                        # this tree
    python benchmarks/bench_store.py --baseline /tmp/main   # and another tree, with ratios

The baseline runs in a subprocess with PYTHONPATH set to its tree; both use the same rows (the
96 rows of the built-in default sweep, copied into 100 parts of 32 rows with distinct keys).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS, ROWS = 100, 32


def measure() -> dict[str, float]:
    """Seconds per operation in whatever `experiments` this interpreter imports."""
    from common import timed

    from experiments.runners import SerialRunner
    from experiments.spec import load_spec
    from experiments.store import ResultsStore
    from experiments.sweep import run_sweep

    out: dict[str, float] = {}
    spec = load_spec("default")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        rows = run_sweep(spec, Path(d) / "s", SerialRunner(), progress=False).results
        out["default sweep, serial (96 runs)"] = time.perf_counter() - t0
    records = rows.to_dict("records")
    with tempfile.TemporaryDirectory() as d:
        store = ResultsStore(d)
        times = []
        for i in range(PARTS):
            part = [{**r, "key": f"{r['key']}-{i}-{j}"}
                    for j, r in enumerate(records[(i * ROWS) % 64:(i * ROWS) % 64 + ROWS])]
            t0 = time.perf_counter()
            store.append(part)
            times.append(time.perf_counter() - t0)
        out["append one part (32 rows)"] = sorted(times)[len(times) // 2]
        out[f"done_keys, {PARTS} parts"] = timed(store.done_keys)[0]
        out[f"load, {PARTS} parts"] = timed(store.load)[0]
        t0 = time.perf_counter()
        store.consolidate()
        out[f"consolidate {PARTS} parts ({PARTS * ROWS} rows)"] = time.perf_counter() - t0
        out["done_keys, consolidated"] = timed(store.done_keys)[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="source tree of the version to compare with")
    ap.add_argument("--json", action="store_true", help="print the measurements as JSON")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    if args.json:
        print(json.dumps(measure()))
        return
    from common import machine, table

    base = None
    if args.baseline:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([args.baseline, str(HERE)])}
        r = subprocess.run([sys.executable, __file__, "--json"], env=env, capture_output=True,
                           text=True, check=True, cwd=args.baseline)
        base = json.loads(r.stdout.strip().splitlines()[-1])
    now = measure()
    if base is None:
        table(f"Results store ({machine()})", ["operation", "s"], [[k, v] for k, v in now.items()])
        return
    table(f"Results store, baseline vs this tree ({machine()})",
          ["operation", "baseline s", "this tree s", "this / baseline"],
          [[k, base.get(k, float("nan")), v, v / base[k] if k in base else float("nan")]
           for k, v in now.items()])


if __name__ == "__main__":
    main()
