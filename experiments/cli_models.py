"""`weightstream models`: list the zoo, show one model's totals and largest tensors/layers, and
import an ONNX file or a Hugging Face config.json with the same summary."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from hwprofiles.units import format_bytes

DTYPE_HELP = ("weight format (fp16, int4, q4_0, q8_0, q4_k, awq-g128, fp8, ...) or mixed "
              "precision per layer group, e.g. 'q4_0,lm_head=q6_k'")


def _console() -> Console:
    return Console(width=120, soft_wrap=False, highlight=False)


def _count(n: int) -> str:
    """A parameter count as 25.56M / 6.738B."""
    return f"{n / 1e9:.3f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def print_summary(model, top: int, formats: bool = True) -> None:
    """Totals, then the largest tensors and layers (which set the smallest streaming budget),
    the bytes per layer group and, with `formats`, the weight bytes in every format."""
    from workloads.summary import format_sizes, group_sizes, summarize

    s = summarize(model, top)
    con = _console()
    con.print(f"[bold]{s.name}[/bold]  ({s.family or 'model'}, weights {s.dtype})")
    if s.description:
        con.print(f"  {s.description}")
    if s.source:
        con.print(f"  source: {s.source}")
    for w in s.warnings:
        con.print(f"  [yellow]warning:[/yellow] {w}", soft_wrap=True)
    rows = [("ops", f"{s.ops:,}"),
            ("params", f"{s.params:,} ({_count(s.params)})"
             + (f"; published {s.published_params:,}" if s.published_params else "")),
            ("weight bytes", f"{s.weight_bytes:,} ({format_bytes(s.weight_bytes)})"),
            ("FLOPs", f"{s.flops:,} ({s.flops / 1e9:,.2f} GFLOPs)"),
            ("peak activation", format_bytes(s.peak_activation_bytes)),
            ("min streaming", f"{format_bytes(s.min_streaming_bytes)} "
                              "(largest layer weights + live activations)")]
    for k, v in rows:
        con.print(f"  {k:<16} {v}")
    t = Table(title="largest tensors", title_justify="left")
    for col in ("tensor", "shape", "bytes"):
        t.add_column(col, justify="right" if col == "bytes" else "left")
    for name, shape, nbytes in s.largest_tensors:
        t.add_row(name, "x".join(map(str, shape)) or "scalar", format_bytes(nbytes))
    con.print(t)
    t = Table(title="largest layers", title_justify="left")
    for col in ("op", "kind", "weights", "GFLOPs"):
        t.add_column(col, justify="left" if col in ("op", "kind") else "right")
    for name, kind, wbytes, flops in s.largest_layers:
        t.add_row(name, kind, format_bytes(wbytes), f"{flops / 1e9:.3f}")
    con.print(t)
    t = Table(title="weights by layer group", title_justify="left")
    for col in ("group", "params", "format", "bytes"):
        t.add_column(col, justify="right" if col in ("params", "bytes") else "left")
    for group, params, fmts, nbytes in group_sizes(model):
        t.add_row(group, _count(params), fmts, format_bytes(nbytes))
    con.print(t)
    if formats:
        t = Table(title="weight bytes per format (every layer in it; 1-D tensors stay fp16; "
                        "scales, zero points and indices included)", title_justify="left")
        for col in ("format", "family", "bits/param", "bytes"):
            t.add_column(col, justify="left" if col in ("format", "family") else "right")
        for f in format_sizes(model):
            t.add_row(f.format, f.family, f"{f.bits_per_param:.3f}",
                      f"{format_bytes(f.weight_bytes)} ({f.weight_bytes:,})")
        con.print(t)


@click.group()
def models() -> None:
    """Zoo models, their sizes, and importers (ONNX, Hugging Face config.json)."""


@models.command("list")
@click.option("--dtype", default="fp16", show_default=True, help=DTYPE_HELP)
def list_cmd(dtype: str) -> None:
    """One row per zoo model: family, params, size in DTYPE, GFLOPs of one inference."""
    from workloads.zoo import ZOO, get_model

    t = Table(title=f"weightstream model zoo ({len(ZOO)} models)")
    t.add_column("name")
    t.add_column("family")
    t.add_column("params", justify="right")
    t.add_column(f"{dtype} size", justify="right")
    t.add_column("GFLOPs", justify="right")
    for name, entry in ZOO.items():
        m = get_model(name, dtype)
        t.add_row(name, entry.family, _count(m.param_count), format_bytes(m.weight_bytes),
                  f"{m.total_flops / 1e9:,.1f}")
    _console().print(t)


@models.command("show")
@click.argument("name")
@click.option("--dtype", default="fp16", show_default=True, help=DTYPE_HELP)
@click.option("--top", default=5, show_default=True, help="how many tensors / layers to list")
def show(name: str, dtype: str, top: int) -> None:
    """Totals, largest tensors / layers, bytes per layer group and per format of model NAME."""
    from workloads.zoo import get_model

    print_summary(get_model(name, dtype), top)


@models.command("import")
@click.argument("file", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--dtype", default=None,
              help="convert weights to this format or mixed precision (default: as stored / "
                   "fp16 for configs)")
@click.option("--dim", "dims", multiple=True, metavar="NAME=VALUE",
              help="ONNX: value of a symbolic input dim, e.g. --dim height=640 (repeatable; "
                   "INPUT:AXIS=VALUE for an unnamed dim)")
@click.option("--branch", "branches", multiple=True, metavar="NODE=then|else",
              help="ONNX: which branch of an If node runs (repeatable)")
@click.option("--tokens", type=click.IntRange(min=1), default=None,
              help="config.json: tokens of one inference (default 128)")
@click.option("--allow-unsupported", is_flag=True,
              help="ONNX: import unknown op types as 0-FLOP ops (flagged) instead of failing")
@click.option("--top", default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object (with warnings)")
def import_cmd(file: Path, dtype: str | None, dims: tuple[str, ...], branches: tuple[str, ...],
               tokens: int | None, allow_unsupported: bool, top: int, as_json: bool) -> None:
    """Import FILE (.onnx, or a config.json / folder holding one) and print its summary, with a
    warning line for every number the importer could not know."""
    import dataclasses
    import json

    from workloads.model import WorkloadError
    from workloads.model_file import load_model_file
    from workloads.onnx_import import parse_dims
    from workloads.precision import parse_precision

    if dtype is not None:
        parse_precision(dtype)  # a bad --dtype is reported before the file is read
    picks: dict[str, str] = {}
    for b in branches:
        node, _, which = b.rpartition("=")
        if not node or which not in ("then", "else"):
            raise WorkloadError(f"bad --branch {b!r}: give NODE=then or NODE=else")
        picks[node] = which
    model = load_model_file(file, dtype, dims=parse_dims(dims), branches=picks,
                            allow_unsupported=allow_unsupported, tokens=tokens)
    if as_json:
        from workloads.summary import summarize

        click.echo(json.dumps(dataclasses.asdict(summarize(model, top))))
        return
    print_summary(model, top)
