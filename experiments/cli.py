"""The `weightstream` command line: one group, subcommands loaded lazily from their own modules.

Lazy loading keeps `weightstream profiles list` fast (no OR-Tools or OpenCL import) and keeps
each command group in the module that owns it. Errors that users cause (unknown names, bad
files, impossible budgets) are printed as one clear message with exit code 2, never a traceback.
"""

from __future__ import annotations

import errno
import importlib
import sys

import click

# command name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, str] = {
    "profiles": "experiments.cli_profiles:profiles",
    "models": "experiments.cli_models:models",
    "runtimes": "experiments.cli_runtimes:runtimes",
    "run": "experiments.cli_run:run",
    "sweep": "experiments.cli_sweep:sweep",
    "plot": "experiments.cli_sweep:plot",
    "capacity": "experiments.cli_sweep:capacity",
    "tune": "experiments.cli_tune:tune",
    "report": "experiments.cli_report:report",
    "validate": "validate.cli:validate",
}


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input, not a bug: shown as a message, exit code 2."""
    from hwprofiles.loader import ProfileError
    from hwprofiles.units import UnitError
    from workloads.model import WorkloadError

    errors: list[type[BaseException]] = [ProfileError, UnitError, WorkloadError]
    for mod, name in (("sim.errors", "SimError"), ("experiments.errors", "ExperimentError"),
                      ("validate.errors", "ValidateError")):
        try:
            errors.append(getattr(importlib.import_module(mod), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except user_errors() as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:  # a file operation no command anticipated: still one line
            if exc.errno == errno.EPIPE:
                raise
            where = f" {exc.filename}" if exc.filename else ""
            click.echo(f"error: cannot access{where}: {exc.strerror or exc}", err=True)
            sys.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="weightstream")
def main() -> None:
    """weightstream: simulate streaming DNN weights through a mobile GPU memory hierarchy."""


if __name__ == "__main__":
    main()
