"""`simulate`: run a Schedule with the exact one-pass evaluator where it applies, else with the
SimPy engine; both follow one timing model (`sim.flow`) and give the same numbers where both
apply (asserted by the property tests)."""

from __future__ import annotations

from hwprofiles.runtime import RuntimeProfile
from hwprofiles.schema import HardwareProfile
from sim.engine import DurationHook, SimResult
from sim.engine import simulate as simulate_engine
from sim.errors import SimError
from sim.evaluate import Handover, evaluate
from sim.flow import prepare
from sim.gcpause import paused_gc
from sim.hardware import IDEAL
from sim.schedule import Schedule

ENGINES = ("auto", "evaluator", "simpy")


def simulate(schedule: Schedule, profile: HardwareProfile, *, budget: int | None = None,
             hook: DurationHook | None = None, record_trace: bool = True,
             runtime: RuntimeProfile | None = None, engine: str = "auto") -> SimResult:
    """Run `schedule` on `profile` under `budget` (default: the schedule's own) with the costs
    `runtime` adds (default: the `ideal` runtime).

    `engine`: auto (the evaluator, handing over to the SimPy engine where only an event loop is
    exact: binding memory waits, contention, page-cache faults, hooks; `metrics.executor_note`
    says why), evaluator (refuse what it cannot do exactly) or simpy (always the engine)."""
    if engine not in ENGINES:
        raise SimError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
    runtime = runtime or IDEAL
    if budget is None:
        budget = schedule.budget_bytes
    with paused_gc():
        prep = prepare(schedule, profile, runtime)
        reason = None
        if engine != "simpy":
            if hook is not None:
                reason = "a duration hook perturbs the run: only the event loop follows it"
            else:
                try:
                    return evaluate(prep, budget, record_trace)
                except Handover as h:
                    reason = h.reason
        if engine == "evaluator":
            raise SimError(f"the evaluator cannot compute this run exactly: {reason}; use "
                           "--engine auto or simpy")
    result = simulate_engine(schedule, profile, budget=budget, hook=hook,
                             record_trace=record_trace, runtime=runtime, prepared=prep)
    result.metrics.executor_note = reason
    return result
