"""Errors the simulator raises for bad input; the CLI prints them as one clear message."""


class SimError(ValueError):
    """Base of every simulator error caused by input (schedule, policy, budget)."""


class ScheduleError(SimError):
    """A schedule breaks an IR rule or its file is malformed; the message names the step."""


class InfeasibleBudget(SimError):
    """The budget is below the smallest working set the policy can run in."""

    def __init__(self, message: str, min_budget: int | None = None):
        super().__init__(message)
        self.min_budget = min_budget
