"""`weightstream validate published`: predicted vs published phone measurements, fit and check
rows apart, and `--fit` to set a runtime profile's numbers from its fit rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from validate.errors import ValidateError


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"


def outcome_lines(outcomes: list) -> list[str]:
    """One line per simulated row: id, role, runtime, model, metric, published, predicted, error."""
    lines = [f"{'row':46s} {'role':5s} {'runtime':22s} {'metric':16s} {'published':>10s} "
             f"{'predicted':>10s} {'error':>7s}"]
    for o in outcomes:
        if o.predicted is None and not o.note.startswith("failed"):
            continue
        r = o.row
        rt = r.runtime or "-"
        if r.runtime_set:
            rt += "*"
        err = "-" if o.error is None else f"{o.error:+.0%}"
        lines.append(f"{r.id[:46]:46s} {r.role:5s} {rt[:22]:22s} {r.metric:16s} "
                     f"{_fmt(r.value):>10s} {_fmt(o.predicted):>10s} {err:>7s}"
                     + (f"  {o.note}" if o.note else ""))
    return lines


@click.command("published")
@click.option("--table", type=click.Path(dir_okay=False), default=None,
              help="a published-measurements YAML table (default: the shipped one)")
@click.option("--role", type=click.Choice(["all", "fit", "check"]), default="all",
              show_default=True, help="which rows to simulate")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="write the predicted-vs-published log-log plot (.png/.svg)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--fit", "fit_runtime", default=None, metavar="RUNTIME",
              help="fit --param fields of RUNTIME to its fit rows and print them")
@click.option("--param", "params", multiple=True, metavar="FIELD",
              help="runtime field to fit, e.g. efficiency.gemv, or VARIANT:FIELD for a runtime extending RUNTIME (repeatable; with --fit)")
@click.option("--rows", "match", default=None, metavar="REGEX",
              help="with --fit: only fit rows whose id matches")
def published(table: str | None, role: str, plot_path: str | None, as_json: bool,
              fit_runtime: str | None, params: tuple[str, ...], match: str | None) -> None:
    """Simulate every row of the published-measurements table and report the errors.

    Prints predicted vs published per row and, for fit and check rows apart, the median
    absolute error and the share of rows within 25% and within 2x.
    """
    from validate.published import evaluate, load_table, plot, summarise
    from validate.published import fit_runtime as fit

    if plot_path and Path(plot_path).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ValidateError(f"cannot tell the image format of {plot_path!r}; use .png, .svg "
                            "or .pdf")
    rows = load_table(table)
    if fit_runtime:
        if not params:
            raise ValidateError("--fit needs at least one --param FIELD, e.g. --param "
                                "efficiency.gemv")
        values, outs = fit(rows, fit_runtime, params, match)
        for line in outcome_lines(outs):
            click.echo(line)
        click.echo(f"fitted {fit_runtime} on {len(outs)} fit row(s):")
        for k, v in values.items():
            click.echo(f"  {k} = {v:.6g}")
        return
    if role != "all":
        rows = [r for r in rows if r.role == role]
    outcomes = evaluate(rows)
    summaries = [summarise(outcomes, r) for r in ("fit", "check")]
    if plot_path:
        plot(outcomes, plot_path)
    if as_json:
        click.echo(json.dumps({
            "rows": [{"id": o.row.id, "role": o.row.role, "runtime": o.row.runtime,
                      "model": o.row.model_label, "metric": o.row.metric,
                      "published": o.row.value, "predicted": o.predicted, "error": o.error,
                      "note": o.note} for o in outcomes],
            "summary": {s.role: {"rows": s.rows, "simulated": s.simulated,
                                 "median_abs_error": s.median_abs_error,
                                 "within_25": s.within_25, "within_2x": s.within_2x}
                        for s in summaries}}))
    else:
        for line in outcome_lines(outcomes):
            click.echo(line)
        skipped = [o for o in outcomes if o.predicted is None
                   and not o.note.startswith("failed")]
        if skipped:
            click.echo(f"{len(skipped)} row(s) not simulated (the table says why for each: "
                       "aggregates over unpublished model sets, CPU/NPU figures, bounds)")
        for s in summaries:
            click.echo(s.line())
        if plot_path:
            click.echo(f"wrote {plot_path}")
    failed = [o for o in outcomes if o.note.startswith("failed")]
    if failed:
        click.echo(f"error: {len(failed)} row(s) could not be simulated: "
                   + "; ".join(f"{o.row.id}: {o.note}" for o in failed[:3]), err=True)
        sys.exit(1)
