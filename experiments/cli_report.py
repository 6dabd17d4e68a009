"""`weightstream report`: one self-contained interactive HTML page of a results folder."""

from __future__ import annotations

import click


@click.command()
@click.argument("results_dir", type=click.Path(exists=True))
@click.option("--out", "out_file", type=click.Path(dir_okay=False),
              help="HTML file (default: RESULTS_DIR/report.html)")
@click.option("--gantt", "gantt_keys", multiple=True, metavar="KEY",
              help="run key(s) whose Gantt timeline to include (default: the fastest feasible "
                   "run of each policy, or of each tune search)")
@click.option("--title", help="page title")
def report(results_dir: str, out_file: str | None, gantt_keys: tuple[str, ...],
           title: str | None) -> None:
    """Write an interactive HTML report of RESULTS_DIR (a sweep or tune results folder):
    tradeoff curves, Pareto fronts, speedup bars, tune convergence and Gantt timelines, with
    each run's configuration on hover and filters by model, profile, policy and precision."""
    from experiments.report import write_report

    path = write_report(results_dir, out_file, list(gantt_keys) or None, title)
    click.echo(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, opens offline)")
