"""`weightstream sweep`, `weightstream plot` and `weightstream capacity`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from experiments.cli_run import ENGINES
from experiments.errors import ExperimentError
from experiments.runners import DASK_TIMEOUT_S

PLOT_KINDS = ("tradeoff", "pareto", "speedup", "planners")


def format_table(rows: list[list[str]]) -> str:
    """Plain fixed-width text table (first row = header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@click.command()
@click.argument("spec_ref", metavar="SPEC.yaml|default")
@click.option("--out", "out_dir", default="results", show_default=True,
              type=click.Path(file_okay=False), help="results directory (resumable)")
@click.option("--workers", type=int,
              help="worker processes (default: one per core; 1 = run in this process)")
@click.option("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
@click.option("--dask-timeout", type=float, default=DASK_TIMEOUT_S, show_default=True,
              help="seconds to reach the Dask scheduler and to wait for a worker")
@click.option("--retry-errors/--no-retry", default=True, show_default=True,
              help="run again the runs stored as errors, or keep their error rows")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="show a progress bar on stderr")
@click.option("--plots/--no-plots", default=True, show_default=True,
              help="write tradeoff.png and tradeoff.svg into the results directory")
@click.option("--report", "html_report", is_flag=True,
              help="also write report.html (interactive, needs plotly) into the results directory")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="auto: the exact evaluator, the SimPy engine where only it is exact; "
                   "evaluator: refuse those (rows become errors); simpy: always the engine")
def sweep(spec_ref: str, out_dir: str, workers: int | None, scheduler: str | None,
          dask_timeout: float, retry_errors: bool, progress: bool, plots: bool,
          html_report: bool, engine: str) -> None:
    """Run every run of a sweep spec not yet stored in OUT, then plot and summarise.

    SPEC is a YAML file or the name of a built-in spec ('default'). Re-running the same
    command after an interruption executes only the missing runs (and the runs stored as
    errors, unless --no-retry). SIGINT/SIGTERM save the finished runs, stop the workers and
    exit 130/143. Several sweeps may write into one OUT at the same time.
    """
    from experiments.errors import Interrupted
    from experiments.runners import make_runner
    from experiments.signals import stop_on_signals
    from experiments.spec import load_spec
    from experiments.summary import summarise, summary_table
    from experiments.sweep import run_sweep

    if not out_dir.strip():
        raise ExperimentError("--out is empty; give a results directory, e.g. --out results")
    given = click.get_current_context().get_parameter_source("dask_timeout")
    if not scheduler and given is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--dask-timeout applies only with --scheduler ADDRESS")
    spec = load_spec(spec_ref)
    runner = make_runner(workers, scheduler, dask_timeout)
    if scheduler:
        _quiet_dask_logs()
    click.echo(f"sweep {spec.name}: {spec.size_hint} -> {out_dir}", err=True)
    ok = False
    with stop_on_signals():
        try:
            out = run_sweep(spec, out_dir, runner, progress=progress, retry_errors=retry_errors,
                            engine=engine)
            ok = True
        except Interrupted as exc:
            click.echo(f"error: stopped by {exc.name}: the finished runs are saved in {out_dir}; "
                       "run the same command again to resume", err=True)
            sys.exit(128 + exc.signum)
        finally:
            runner.close() if ok else runner.abort()
    df = out.results
    refs = spec.summary
    summary = summarise(df, speedup=refs.speedup, memory=refs.memory) if not df.empty else df
    if not summary.empty:
        click.echo(format_table(summary_table(summary)))
    click.echo(f"{out.total} runs: {out.executed} executed, {out.skipped} already stored, "
               f"{out.failed - out.errors} infeasible (budget below what the policy runs in), "
               f"{out.errors} errors; {out.wall_s:.1f} s. "
               f"Results: {Path(out_dir) / 'results.parquet'}")
    if out.errors:
        first = df.loc[df["status"] == "error", "error"].iloc[0]
        click.echo(f"  first error: {first}\n  (error runs are run again by the next sweep into "
                   f"{out_dir}; --no-retry keeps them)", err=True)
    if plots:
        _write_plots(df, Path(out_dir), spec.name, fresh=out.executed > 0)
    if html_report and not df.empty:
        from experiments.report import write_report

        click.echo(f"Report: {write_report(out_dir, Path(out_dir) / 'report.html')}")


def _quiet_dask_logs() -> None:
    """Dask logs every lost worker and connection with a traceback; the sweep reports those
    itself (error rows, one `error:` line), so only Dask's critical messages are shown."""
    import logging

    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def _write_plots(df, out: Path, name: str, fresh: bool) -> None:
    """tradeoff.png/.svg in the results directory; kept as they are when no run was added
    since they were drawn (so a complete, read-only directory needs no write)."""
    from experiments.plots import plot_tradeoff
    from experiments.summary import feasible_rows

    if feasible_rows(df).empty:
        return
    paths = [out / f"tradeoff.{ext}" for ext in ("png", "svg")]
    stamp = [p for p in (out / "results.parquet",) if p.exists()]
    if not fresh and stamp and all(p.exists() and p.stat().st_mtime >= stamp[0].stat().st_mtime
                                   for p in paths):
        return
    for path in paths:
        plot_tradeoff(df, path, title=f"sweep {name}")


@click.command()
@click.argument("results_dir", type=click.Path(exists=True))
@click.option("--kind", type=click.Choice(PLOT_KINDS), default="tradeoff", show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False),
              help="image file, .png/.svg/.pdf (default: RESULTS_DIR/KIND.png)")
@click.option("--title", help="figure title")
def plot(results_dir: str, kind: str, out_file: str | None, title: str | None) -> None:
    """Draw a plot from a results directory (or a results .parquet file)."""
    from experiments.plots import plot_results
    from experiments.store import load_results

    df = load_results(results_dir)
    base = Path(results_dir)
    if out_file is None:
        out_file = str((base if base.is_dir() else base.parent) / f"{kind}.png")
    path = plot_results(df, kind, out_file, title)
    click.echo(f"wrote {path}")


@click.command()
@click.option("--model", help="zoo model name (one inference)")
@click.option("--workload", help="scenario name")
@click.option("--profile", "profile_ref", required=True, help="profile name or YAML file")
@click.option("--policy", "policies", required=True,
              help="policy or comma-separated policies, e.g. pipeline,flashmem")
@click.option("--latency-target", required=True, help="latency to meet, e.g. 50ms")
@click.option("--runtime", "runtime_ref", default="ideal", show_default=True,
              help="runtime profile name or YAML file")
@click.option("--dtype", default="fp16", show_default=True,
              help="weight format (fp16, int8, int4, q4_0, q8_0, q4_k, awq-g128, fp8, ...) or mixed "
                   "precision per layer group, e.g. 'q4_0,lm_head=q6_k'")
@click.option("--set", "overrides", multiple=True, help="profile override key=value")
@click.option("--option", "options", multiple=True,
              help="policy option key=value (applied to every policy that has it)")
@click.option("--tolerance", default=0.01, show_default=True, type=float,
              help="relative width of the final budget bracket")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object per policy")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="auto: the exact evaluator, the SimPy engine where only it is exact; "
                   "evaluator: refuse those; simpy: always the engine")
@click.option("--budget-scope", type=click.Choice(["total", "weights"]), default="total",
              show_default=True,
              help="what the budget caps: all memory, or weights + staging (the papers' "
                   "parameter memory)")
def capacity(model: str | None, workload: str | None, profile_ref: str, policies: str,
             latency_target: str, runtime_ref: str, dtype: str, overrides: tuple[str, ...], options: tuple[str, ...],
             tolerance: float, as_json: bool, engine: str, budget_scope: str) -> None:
    """Smallest memory budget at which each policy meets a latency target.

    Exits 0 if at least one policy meets the target, 1 if none does (the message gives the
    best latency achievable with everything resident).
    """
    from experiments.capacity import search_capacity
    from experiments.cli_run import parse_options
    from experiments.resolve import load_workload
    from experiments.spec import WorkloadRef
    from hwprofiles import load_profile
    from hwprofiles.loader import load_runtime
    from hwprofiles.units import format_time, parse_time
    from sim.policies import get_policy, policy_options

    if bool(model) == bool(workload):
        raise click.UsageError("give exactly one of --model NAME or --workload NAME")
    target = parse_time(latency_target)
    if target <= 0:
        raise ExperimentError(f"--latency-target must be positive, found {latency_target!r}")
    if not 0 < tolerance < 1:
        raise ExperimentError(f"--tolerance must be between 0 and 1, found {tolerance}")
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        raise ExperimentError("--policy is empty; give one or more policies, e.g. pipeline,flashmem")
    for n in names:
        get_policy(n)  # unknown name -> error listing the valid policies
    opts = parse_options(options)
    for k in opts:
        if not any(k in policy_options(n) for n in names):
            raise ExperimentError(f"no policy of {', '.join(names)} has option {k!r}")
    prof = load_profile(profile_ref, overrides)
    rt = load_runtime(runtime_ref)
    ref = WorkloadRef("model" if model else "workload", str(model or workload),
                      str(model or workload))
    wl = load_workload(ref, dtype)
    results = []
    for n in names:
        mine = {k: v for k, v in opts.items() if k in policy_options(n)}
        results.append(search_capacity(n, wl, prof, target, tolerance, rt, budget_scope,
                                       engine, **mine))
    if as_json:
        for r in results:
            d = r.to_dict()
            d.update(model=wl.name, profile=prof.name, dtype=dtype, runtime=rt.name,
                     budget_scope=budget_scope)
            click.echo(json.dumps(d, default=float))
    else:
        click.echo(f"{wl.name} on {prof.name} ({dtype}), latency target "
                   f"{format_time(target)}:")
        for r in results:
            click.echo("  " + r.message())
    if not any(r.met for r in results):
        if not as_json:
            click.echo("error: no policy meets the latency target", err=True)
        sys.exit(1)
