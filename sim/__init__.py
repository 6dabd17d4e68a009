"""The discrete-event model of the memory hierarchy and the policies that produce schedules."""

from sim.engine import SimResult
from sim.errors import InfeasibleBudget, ScheduleError, SimError
from sim.execute import ENGINES, simulate
from sim.metrics import Metrics
from sim.policies import list_policies, plan
from sim.schedule import Compute, Free, Load, Schedule, validate_schedule
from sim.trace import Trace

__all__ = ["ENGINES", "Compute", "Free", "InfeasibleBudget", "Load", "Metrics", "Schedule", "ScheduleError",
           "SimError", "SimResult", "Trace", "list_policies", "plan", "simulate",
           "validate_schedule"]
