"""Run a sweep: resolve automatic budgets, skip runs already stored, execute the rest on a
runner with a progress bar, store rows as they arrive, consolidate.

Interrupting a sweep (Ctrl-C, SIGTERM) saves every finished row and stops the workers; a hard
kill (SIGKILL, power loss) loses at most the rows not yet flushed. Running the same command
again executes only the missing runs (and, by default, the runs stored as errors).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from experiments.errors import ExperimentError
from experiments.runners import Lost, Runner, make_runner
from experiments.runs import (
    BudgetPoints,
    RunSpec,
    budget_groups,
    budget_points,
    error_row,
    execute_runs,
    expand,
)
from experiments.spec import SweepSpec
from experiments.store import ResultsStore, is_error

BUDGETS_FILE = "budgets.json"
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class SweepOutcome:
    """What a sweep did: the full results table and how many runs it executed vs found stored."""

    results: pd.DataFrame
    total: int
    executed: int
    skipped: int
    failed: int  # runs that did not complete: infeasible + errors
    wall_s: float
    out_dir: Path
    errors: int = 0  # of `failed`, runs that raised (bad input) rather than being infeasible


class RateColumn(ProgressColumn):
    """Runs per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} runs/s" if speed else "- runs/s", style="progress.data.speed")


def _progress(console: Console | None, enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    RateColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=console or Console(stderr=True), disable=not enabled,
                    transient=False)


def _tracked(progress: Progress, desc: str, runner: Runner, fn: Callable[[T], R],
             items: Sequence[T], size: Callable[[T], int] = lambda _item: 1,
             total: int | None = None) -> Any:
    task = progress.add_task(desc, total=len(items) if total is None else total)
    for item, result in runner.map_unordered(fn, items):
        progress.advance(task, size(item))
        yield item, result


def chunks(runs: Sequence[RunSpec], parts: int) -> list[list[RunSpec]]:
    """Runs cut into chunks that share work: one workload, dtype and profile per chunk (in the
    order they were listed), each group cut into about `parts` pieces in all so that a pool's
    workers stay busy."""
    groups: dict[tuple, list[RunSpec]] = {}
    for r in runs:
        groups.setdefault((r.workload.label, repr(r.workload.to_dict()), r.dtype, r.profile),
                          []).append(r)
    size = max(1, -(-len(runs) // max(1, parts)))
    out: list[list[RunSpec]] = []
    for group in groups.values():
        pieces = max(1, -(-len(group) // size))
        step = -(-len(group) // pieces)
        out += [group[i:i + step] for i in range(0, len(group), step)]
    return out


def resolve_budgets(spec: SweepSpec, store: ResultsStore, runner: Runner,
                    progress: Progress) -> dict[str, BudgetPoints]:
    """Automatic budget points per group, cached in the results directory by group key."""
    groups = budget_groups(spec)
    cached = store.read_json(BUDGETS_FILE) or {}
    known: dict[str, BudgetPoints] = {}
    for g in groups:
        c = cached.get(g.key) if isinstance(cached, dict) else None
        try:
            known[g.key] = BudgetPoints(c["key"], tuple(c["budgets"]), c["min_feasible_bytes"],
                                        c["full_footprint_bytes"], tuple(c.get("notes", ())))
        except (TypeError, KeyError, AttributeError):
            pass  # not cached (or a damaged entry): compute it again
    todo = [g for g in groups if g.key not in known]
    if todo:
        lost: list[str] = []
        fresh: dict[str, BudgetPoints] = {}
        for g, pts in _tracked(progress, "budgets", runner, budget_points, todo):
            if isinstance(pts, Lost):
                lost.append(f"{g.workload.label} on {g.profile.label} ({g.dtype}): {pts.message}")
            else:
                fresh[pts.key] = pts
        if fresh:
            store.update_json(BUDGETS_FILE, {k: asdict(v) for k, v in fresh.items()})
        if lost:
            raise ExperimentError("cannot compute the automatic budgets of " + "; ".join(lost))
        known.update(fresh)
    return known


def run_sweep(spec: SweepSpec, out_dir: str | Path, runner: Runner | None = None, *,
              workers: int | None = None, scheduler: str | None = None,
              progress: bool = True, console: Console | None = None,
              on_row: Callable[[dict[str, Any]], None] | None = None,
              flush_every: int = 32, flush_s: float = 2.0,
              retry_errors: bool = True, engine: str = "auto") -> SweepOutcome:
    """Execute every run of `spec` not yet stored in `out_dir`; returns the full results.

    Runs stored as errors are run again unless `retry_errors` is False. `on_row` is called
    after each row arrives (tests use it to interrupt a sweep). Rows are flushed to a part
    file every `flush_every` rows or `flush_s` seconds, and on any exit; on an exception or
    interrupt the workers are stopped at once (an own runner) before it propagates.
    """
    t0 = time.perf_counter()
    own = runner is None
    runner = runner or make_runner(workers, scheduler)
    ok = False
    try:
        out = _run(spec, out_dir, runner, progress, console, on_row, flush_every, flush_s,
                   retry_errors, t0, engine)
        ok = True
        return out
    finally:
        if own:
            runner.close() if ok else runner.abort()


def _run(spec: SweepSpec, out_dir: str | Path, runner: Runner, progress: bool,
         console: Console | None, on_row: Callable[[dict[str, Any]], None] | None,
         flush_every: int, flush_s: float, retry_errors: bool, t0: float,
         engine: str = "auto") -> SweepOutcome:
    store = ResultsStore(out_dir)
    runner.start()
    store.ensure_dir()
    with _progress(console, progress) as bar:
        auto = resolve_budgets(spec, store, runner, bar)
        runs = expand(spec, auto, engine)
        done = store.done_keys(include_errors=not retry_errors)
        seen: set[str] = set()
        todo = []
        for r in runs:
            if r.key not in done and r.key not in seen:
                todo.append(r)
                seen.add(r.key)
        if todo:
            store.write_text("spec.yaml", yaml.safe_dump(spec.source, sort_keys=False))
        pending: list[dict[str, Any]] = []
        last = time.monotonic()
        try:
            parts = 4 * getattr(runner, "workers", 1)
            for chunk, rows in _tracked(bar, f"{spec.name} ({runner.name})", runner,
                                        execute_runs, chunks(todo, parts), len, len(todo)):
                if isinstance(rows, Lost):  # the worker died: every run of the chunk is lost
                    rows = [error_row(r, rows.message) for r in chunk]
                for row in rows:
                    pending.append(row)
                    if on_row is not None:
                        on_row(row)
                    if len(pending) >= flush_every or time.monotonic() - last >= flush_s:
                        store.append(pending)
                        pending, last = [], time.monotonic()
        finally:
            store.append(pending)
    results = store.consolidate()
    keys = {r.key for r in runs}
    failed = errors = 0
    if not results.empty:
        results = results[results["key"].isin(keys)].reset_index(drop=True)
        failed = int((~results["feasible"].astype(bool)).sum())
        errors = int(is_error(results).sum())
    return SweepOutcome(results, len(keys), len(todo), len(keys) - len(todo), failed,
                        time.perf_counter() - t0, store.root, errors)
