"""`weightstream profiles list | show NAME [--set k=v] | check FILE`: browse and check hardware profiles.

Tables are printed with rich; every value is shown in human units next to its source so an
estimate can never pass for a measurement. Profile errors (ProfileError) propagate to the main
group, which prints `error: ...` and exits 2; `check` instead lists every problem and exits 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hwprofiles import ProfileError, check_file, list_profiles, load_profile
from hwprofiles.display import field_rows
from hwprofiles.units import format_bandwidth, format_bytes


def _console() -> Console:
    """A console on the current stdout; wide when piped so rows are not folded."""
    tty = sys.stdout.isatty()
    return Console(file=sys.stdout, width=None if tty else 200, highlight=False,
                   no_color=not tty)


@click.group("profiles")
def profiles() -> None:
    """Hardware profiles: list the library, show one profile, check a profile file."""


@profiles.command("list")
def list_cmd() -> None:
    """Table of the shipped profiles: GPU, storage, DRAM and fp16 peak."""
    table = Table(title="hardware profiles")
    for col in ("name", "GPU", "storage", "storage BW", "DRAM", "fp16 TFLOPS"):
        table.add_column(col, no_wrap=col == "name")
    for name in list_profiles():
        try:
            p = load_profile(name)
        except ProfileError as exc:
            table.add_row(Text(name), Text(f"invalid: {exc}", style="red"), "", "", "", "")
            continue
        dram = f"{p.dram.kind}, {format_bytes(p.dram.capacity)}, {format_bandwidth(p.dram.bandwidth)}"
        table.add_row(Text(name), Text(p.gpu.name), Text(p.storage.kind),
                      format_bandwidth(p.storage.read_bandwidth), Text(dram),
                      f"{p.gpu.flops_for('fp16') / 1e12:.2f}")
    _console().print(table)


@profiles.command("show")
@click.argument("name")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field, e.g. --set storage.read_bandwidth=2.1GB/s (repeatable).")
def show_cmd(name: str, overrides: tuple[str, ...]) -> None:
    """Every field of profile NAME (a shipped name or a .yaml path) with value and source."""
    p = load_profile(name, overrides)
    print_fields(p.name, p.description, p.extends, field_rows(p), len(p.sources))


def print_fields(name: str, description: str, extends: str | None, rows: list,
                 n_sourced: int) -> None:
    """The `show` view of a profile: a header, then every field's value next to its source
    (estimates marked), then how many of the sourced values are estimates."""
    console = _console()
    console.print(Text(f"{name}: {description}"))
    if extends:
        console.print(Text(f"extends {extends}"))
    table = Table()
    table.add_column("field", no_wrap=True)
    table.add_column("value", no_wrap=True)
    table.add_column("source")
    for row in rows:
        source = Text(f"(estimate) {row.source}" if row.estimate else row.source,
                      style="yellow" if row.estimate else "")
        table.add_row(Text(row.path), Text(row.value), source)
    console.print(table)
    n_est = sum(r.estimate for r in rows)
    console.print(Text(f"{n_est} of {n_sourced} sourced values are estimates"))


@profiles.command("check")
@click.argument("file")
def check_cmd(file: str) -> None:
    """Check profile FILE; list every problem (field, expected, found); exit 1 if any."""
    problems = check_file(file)
    if not problems:
        name = load_profile(file).name
        stem = Path(file).stem
        note = (f" (named {name!r}, not {stem!r} like its file: results are labelled {name!r})"
                if name != stem else "")
        click.echo(f"OK: {file}{note}")
        return
    print_problems(file, problems)
    sys.exit(1)


def print_problems(file: str, problems: list[str]) -> None:
    """The `check` listing: an `error:` line, then one line per problem (field, expected,
    found)."""
    click.echo(f"error: {file}: {len(problems)} problem(s)")
    for problem in problems:
        click.echo(f"  - {problem}")
