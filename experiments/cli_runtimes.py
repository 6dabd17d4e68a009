"""`weightstream runtimes list | show NAME [--set k=v] | check FILE`: browse and check runtime
profiles (what a framework adds to the hardware), printed like hardware profiles: every value
next to its source, estimates marked."""

from __future__ import annotations

import sys

import click
from rich.table import Table
from rich.text import Text

from experiments.cli_profiles import _console, print_fields, print_problems
from hwprofiles import ProfileError
from hwprofiles.display import runtime_rows
from hwprofiles.loader import check_runtime_file, list_runtimes, load_runtime
from hwprofiles.units import format_bandwidth, format_time


@click.group("runtimes")
def runtimes() -> None:
    """Runtime profiles: list the library, show one runtime, check a runtime file."""


@runtimes.command("list")
def list_cmd() -> None:
    """Table of the shipped runtimes: weight holding, load path, init and dispatch costs."""
    table = Table(title="runtime profiles")
    for col in ("name", "weights", "parse", "transform", "program build", "dispatch", "fusion"):
        table.add_column(col, no_wrap=col == "name")
    for name in list_runtimes():
        try:
            r = load_runtime(name)
        except ProfileError as exc:
            table.add_row(Text(name), Text(f"invalid: {exc}", style="red"), "", "", "", "", "")
            continue
        transform = ("hardware" if r.transform == "hardware" else
                     f"{r.transform} {format_bandwidth(r.transform_bandwidth or 0)}")
        table.add_row(Text(name), r.holding,
                      format_bandwidth(r.parse_bandwidth) if r.parse_bandwidth else "-",
                      transform, format_time(r.program_build) if r.program_build else "-",
                      format_time(r.dispatch) if r.dispatch else "-",
                      ", ".join(r.fusion) or "-")
    _console().print(table)


@runtimes.command("show")
@click.argument("name")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field, e.g. --set load.parse_bandwidth=1GB/s (repeatable).")
def show_cmd(name: str, overrides: tuple[str, ...]) -> None:
    """Every field of runtime NAME (a shipped name or a .yaml path) with value and source."""
    r = load_runtime(name, overrides)
    print_fields(r.name, r.description, r.extends, runtime_rows(r), len(r.sources))


@runtimes.command("check")
@click.argument("file")
def check_cmd(file: str) -> None:
    """Check runtime FILE; list every problem (field, expected, found); exit 1 if any."""
    problems = check_runtime_file(file)
    if problems:
        print_problems(file, problems)
        sys.exit(1)
    click.echo(f"OK: {file}")
