"""Shared helpers for the benchmark scripts: timing, peak memory, a small table printer."""

from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Median wall seconds of `repeat` calls of `fn`, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable in a terminal)."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = [f"### {title}", "",
             "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
              for r in cells]
    out = "\n".join(lines) + "\n"
    print(out, flush=True)
    return out


def in_tree(tree: str | None, script: str, *args: str, timeout: float = 3600) -> Any:
    """Run `script` (a benchmark of this folder) with `--emit` in a fresh process importing
    weightstream from `tree` (None: this tree) and return the JSON it prints last: how two
    versions are measured side by side, each in a clean interpreter."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    env = dict(os.environ)
    root = str(Path(tree).resolve()) if tree else str(here.parent)
    env["PYTHONPATH"] = root + os.pathsep + str(here)
    out = subprocess.run([sys.executable, str(here / script), *args, "--emit"], env=env,
                         cwd=root, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} in {root} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ratio(before: float | None, after: float | None) -> str:
    """before / after as 'N.Nx' (how many times faster), or '-'."""
    if not before or not after:
        return "-"
    return f"{before / after:.1f}x"
