"""Errors of the experiments layer that users cause (bad spec, unknown names, bad results dir)."""


class ExperimentError(ValueError):
    """Bad sweep spec, results directory or capacity request; the CLI prints it as one message."""
