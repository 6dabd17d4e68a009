"""`weightstream tune`: search a design space with Optuna and compare with a grid sweep of
the same number of evaluations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from hwprofiles.units import format_bytes, format_time


def _value(metric: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if metric.endswith("_s"):
        return format_time(float(v))
    if metric.endswith("_bytes") or metric.endswith("_read"):
        return format_bytes(float(v))
    return f"{float(v):.4g}"


def _config_text(cfg: dict[str, Any]) -> str:
    parts = [str(cfg.get("policy")), str(cfg.get("dtype")),
             "unlimited" if cfg.get("budget") is None else format_bytes(cfg["budget"])]
    if cfg.get("options"):
        parts.append(",".join(f"{k}={v}" for k, v in cfg["options"].items()))
    if cfg.get("runtime") not in (None, "ideal"):
        parts.append(f"runtime {cfg['runtime']}")
    if cfg.get("profile"):
        parts.append(Path(str(cfg["profile"])).stem)
    if cfg.get("set"):
        parts.append(" ".join(cfg["set"]))
    return "  ".join(parts)


def trial_table(df: Any, metrics: list[str]) -> list[list[str]]:
    rows = [["search", "trial", *metrics, "configuration"]]
    for _, r in df.iterrows():
        rows.append([str(r["search"]), str(r["trial"]), *[_value(m, r[m]) for m in metrics],
                     _config_text(json.loads(r["config"]))])
    return rows


def print_outcome(out: Any) -> None:
    """Best trials, Pareto front and the equal-evaluation comparison with the grid."""
    from experiments.cli_sweep import format_table

    spec = out.spec
    metrics = list(dict.fromkeys([o.metric for o in spec.objectives] + ["peak_memory_bytes"]))
    if out.best.empty:
        click.echo("no trial met every constraint")
    elif spec.multi:
        click.echo(f"Pareto front ({len(out.pareto)} configurations, both searches):")
        click.echo(format_table(trial_table(out.pareto, metrics)))
    else:
        click.echo("best configurations (both searches):")
        click.echo(format_table(trial_table(out.best, metrics)))
    if "grid" in out.states:
        what = "hypervolume" if spec.multi else f"best {spec.objectives[0].metric}"
        s, g = out.best_value("search"), out.best_value("grid")
        metric = "" if spec.multi else spec.objectives[0].metric
        fmt = (lambda v: f"{v:.4g}") if spec.multi else (lambda v: _value(metric, v))
        click.echo(f"equal evaluations ({spec.trials} each; grid of {out.grid_points} points): "
                   f"{spec.sampler} {what} {fmt(s) if s is not None else 'none feasible'}, "
                   f"grid {fmt(g) if g is not None else 'none feasible'}")
    for search, counts in out.states.items():
        click.echo(f"{search}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
                   + f"; {out.executed.get(search, 0)} run now")


@click.command()
@click.argument("spec_path", metavar="SPEC.yaml|NAME")
@click.option("--out", "out_dir", default="tune-results", show_default=True,
              type=click.Path(file_okay=False), help="results folder (Parquet rows, study.db)")
@click.option("--storage", help="Optuna RDB storage URL shared by workers, e.g. "
                                "sqlite:///study.db or postgresql://host/db "
                                "(default: sqlite in --out)")
@click.option("--workers", type=int, default=1, show_default=True,
              help="worker processes sharing the study (1 = in this process)")
@click.option("--scheduler", help="Dask scheduler address: run the workers there (they must "
                                  "reach --storage)")
@click.option("--runtime", help="runtime profile for every trial (default: the spec's, else "
                                "ideal); a `runtime` axis in the space takes precedence")
@click.option("--report/--no-report", default=True, show_default=True,
              help="write report.html (interactive) into the results folder")
@click.option("--plots/--no-plots", default=True, show_default=True,
              help="write convergence.png (best found vs evaluations)")
def tune(spec_path: str, out_dir: str, storage: str | None, workers: int, scheduler: str | None,
         runtime: str | None, report: bool, plots: bool) -> None:
    """Search the design space of SPEC.yaml (or a shipped spec NAME) with Optuna, and a grid
    sweep of the same number of evaluations.

    Trials are kept in an Optuna RDB storage, so the same command resumes an interrupted tune
    and several workers may share one study. Every trial's row lands in OUT/results.parquet.
    """
    from experiments.tune import run_tune
    from experiments.tune_spec import load_tune

    spec = load_tune(spec_path, runtime)
    click.echo(f"tune {spec.name}: {len(spec.axes)} axes, {spec.trials} trials "
               f"({spec.sampler}{' + grid' if spec.grid else ''}) -> {out_dir}", err=True)
    out = run_tune(spec, out_dir, storage, workers, scheduler)
    print_outcome(out)
    base = Path(out_dir)
    (base / "tune-summary.json").write_text(json.dumps(out.summary(), indent=1, default=str))
    written = [base / "results.parquet", base / "tune-summary.json"]
    if plots and not out.curves.empty:
        from experiments.plots import plot_convergence

        written.append(plot_convergence(out.curves, base / "convergence.png", spec))
    if report and not out.results.empty:
        from experiments.report import write_report

        written.append(write_report(base, base / "report.html"))
    click.echo(f"{out.exported} new rows stored; {out.wall_s:.1f} s. Wrote "
               + ", ".join(str(p) for p in written))
