"""Trace: every interval on every resource, plus the memory-in-use timeline.

The same format is produced by the simulator and by `validate replay`, so the two can be
compared and overlaid. Exports: a pandas DataFrame and Chrome/Perfetto trace-event JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

RESOURCES = ("storage", "copy", "transform", "gpu")
MEMORY_COLUMNS = ("time_s", "total", "weights", "staging", "activations", "workspace", "kv")


@dataclass(frozen=True, slots=True)
class Interval:
    """One busy interval of one resource for one schedule step."""

    resource: str
    name: str
    step: int
    start: float
    end: float
    bytes: int = 0
    invocation: str = ""


@dataclass
class Trace:
    """Intervals (sorted by start, then resource) and memory samples of one run."""

    intervals: list[Interval] = field(default_factory=list)
    memory: list[tuple[float, ...]] = field(default_factory=list)
    source: str = "sim"

    def to_dataframe(self) -> pd.DataFrame:
        """One row per interval: resource, name, step, start, end, duration, bytes, invocation."""
        import pandas as pd  # here, not at the top: importing it costs every use of `sim` 0.2 s

        df = pd.DataFrame([(i.resource, i.name, i.step, i.start, i.end, i.bytes, i.invocation)
                           for i in self.intervals],
                          columns=["resource", "name", "step", "start", "end", "bytes", "invocation"])
        df["duration"] = df["end"] - df["start"]
        return df

    def memory_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.memory, columns=list(MEMORY_COLUMNS))

    def busy_time(self, resource: str) -> float:
        return sum(i.end - i.start for i in self.intervals if i.resource == resource)

    def to_chrome(self) -> dict[str, Any]:
        """Chrome trace-event format (open in ui.perfetto.dev or chrome://tracing)."""
        tids = {r: n for n, r in enumerate(RESOURCES, start=1)}
        events: list[dict[str, Any]] = [
            {"ph": "M", "pid": 1, "tid": tid, "name": "thread_name", "args": {"name": r}}
            for r, tid in tids.items()
        ]
        events.append({"ph": "M", "pid": 1, "name": "process_name",
                       "args": {"name": f"weightstream ({self.source})"}})
        for i in self.intervals:
            events.append({"ph": "X", "pid": 1, "tid": tids.get(i.resource, 9), "name": i.name,
                           "ts": i.start * 1e6, "dur": (i.end - i.start) * 1e6,
                           "args": {"step": i.step, "bytes": i.bytes, "invocation": i.invocation}})
        for row in self.memory:
            events.append({"ph": "C", "pid": 1, "name": "memory (MiB)", "ts": row[0] * 1e6,
                           "args": {c: row[k] / 2**20 for k, c in enumerate(MEMORY_COLUMNS[2:], 2)}})
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def save_chrome(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_chrome()))
        tmp.replace(path)
