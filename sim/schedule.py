"""The Schedule IR: an explicit, inspectable plan of loads, computes and frees with dependencies.

A schedule is self-contained: it carries every byte count and FLOP the engine needs, so the same
file can be simulated on any profile and replayed on a real device. Steps are listed in issue
order; `after` names earlier steps that must finish first. Computes run on one in-order GPU
queue in list order. Every allocation (staging buffers, weights, activations, workspace, KV
state) additionally waits for room in the memory budget.

Rules (checked by `validate_schedule`):
- step ids are 0..n-1 in list order; `after`/`inputs` name earlier steps only;
- each (invocation, op) is computed exactly once;
- a compute's weights are resident and its `after` names the load that made each resident;
- a free names resident tensors and its `after` names every compute that used them since load;
- a tensor is not loaded again while resident;
- `copy_after` and `after_read` name earlier steps (`after_read`: loads only);
- a `preallocated` load needs the schedule's `buffers` and fits its largest one.

Preallocated buffers (`Schedule.buffers`) are held from the start to the end of the run, as a
runtime that allocates its staging rings once (Demand Layering): loads into them and the frees
of their tensors take nothing from and give nothing back to the memory budget.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import ScheduleError

PATHS = ("direct", "via_buffer", "staged")
DESTINATIONS = ("texture", "buffer")
BUDGET_SCOPES = ("total", "weights")
BUFFER_CATEGORIES = ("staging", "weights")
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Load:
    """Read `tensors` (stored contiguously, `bytes` in all) from flash into GPU memory.

    `direct`: pre-laid-out data streamed straight into its destination (no transform).
    `via_buffer`: read into a host staging buffer, copy to a GPU buffer, then (if `dst` is
    texture) transform into the texture layout. The copy is skipped where the GPU maps host
    memory (zero-copy).
    `staged`: as `via_buffer`, but the copy to a GPU buffer happens even where the GPU could map
    host memory (Demand Layering's sync and async pipelines copy every layer with cudaMemcpy).

    `read_bytes`: bytes read from flash when they differ from what the runtime's file format
    gives (O_DIRECT reads whole 512-byte sectors). `copy_after`: steps that must finish before
    the stages after the read (copy, transform) start: the GPU buffer they write is still in
    use. `preallocated`: the data goes into the schedule's preallocated buffers.
    """

    id: int
    tensors: tuple[str, ...]
    bytes: int
    path: str = "via_buffer"
    dst: str = "texture"
    after: tuple[int, ...] = ()
    src: str = "flash"
    layout: dict[str, Any] | None = None  # e.g. {"image": "image2d_array", "w":.., "h":.., "layers":..}
    read_bytes: int | None = None
    copy_after: tuple[int, ...] = ()
    preallocated: bool = False


@dataclass(frozen=True, slots=True)
class Compute:
    """Run one op of one invocation on the GPU. `after_read`: loads whose storage read must
    have finished first (the step barrier of a lock-step pipeline)."""

    id: int
    op: str
    invocation: int
    kind: str = "op"
    dtype: str = "fp16"
    flops: int = 0
    weights: tuple[str, ...] = ()
    input_bytes: int = 0
    output_bytes: int = 0
    workspace_bytes: int = 0
    state_bytes: int = 0
    inputs: tuple[int, ...] = ()  # computes whose outputs this op reads
    after: tuple[int, ...] = ()
    op_class: str = ""  # kernel class for runtime efficiencies ('' = from `kind`)
    after_read: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Free:
    """Release the memory of resident `tensors`."""

    id: int
    tensors: tuple[str, ...]
    after: tuple[int, ...] = ()


Step = Load | Compute | Free
_KINDS: dict[str, type] = {"load": Load, "compute": Compute, "free": Free}
_NAMES = {v: k for k, v in _KINDS.items()}
_TUPLES = ("after", "inputs", "tensors", "weights", "copy_after", "after_read")
# optional fields left out of the JSON at their defaults (older files stay byte-identical)
_OPTIONAL = {"layout": None, "read_bytes": None, "copy_after": [], "preallocated": False,
             "after_read": []}


@dataclass
class InvocationInfo:
    """Which model an invocation runs and how it appears in traces."""

    label: str
    model: str


@dataclass
class Schedule:
    """A plan for one workload on one profile under one budget.

    `budget_scope`: what the budget caps: `total` (every category) or `weights` (weights and
    staging only: the papers' parameter memory). `buffers`: name -> {"bytes", "category"} of
    buffers allocated at the start and held to the end (see the module docstring)."""

    policy: str
    workload: str
    profile: str
    budget_bytes: int | None
    tensor_bytes: dict[str, int]
    invocations: list[InvocationInfo]
    steps: list[Step] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    runtime: str = "ideal"  # the runtime profile it was planned for (its ops as it fuses them)
    budget_scope: str = "total"
    buffers: dict[str, dict[str, Any]] = field(default_factory=dict)

    # --- building -------------------------------------------------------------------------
    def add(self, step_type: type, **kwargs: Any) -> int:
        """Append a step of `kind` (Load/Compute/Free) with the next id; returns the id."""
        sid = len(self.steps)
        for key in _TUPLES:
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        self.steps.append(step_type(id=sid, **kwargs))
        return sid

    # --- views -----------------------------------------------------------------------------
    def of_kind(self, kind: type) -> Iterator[Any]:
        return (s for s in self.steps if isinstance(s, kind))

    @property
    def computes(self) -> list[Compute]:
        return list(self.of_kind(Compute))

    @property
    def loads(self) -> list[Load]:
        return list(self.of_kind(Load))

    @property
    def streamed_bytes(self) -> int:
        """Bytes read from flash by all loads."""
        return sum(s.bytes for s in self.of_kind(Load))

    @property
    def total_flops(self) -> int:
        return sum(s.flops for s in self.of_kind(Compute))

    # --- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        steps = []
        for s in self.steps:
            d = asdict(s)
            d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
            for key, default in _OPTIONAL.items():
                if key in d and d[key] == default:
                    d.pop(key)
            steps.append({"step": _NAMES[type(s)], **d})
        out = {
            "format": "weightstream-schedule", "version": FORMAT_VERSION,
            "policy": self.policy, "workload": self.workload, "profile": self.profile,
            "runtime": self.runtime, "budget_bytes": self.budget_bytes, "tensor_bytes": self.tensor_bytes,
            "invocations": [asdict(i) for i in self.invocations], "meta": self.meta,
            "steps": steps,
        }
        if self.budget_scope != "total":
            out["budget_scope"] = self.budget_scope
        if self.buffers:
            out["buffers"] = self.buffers
        return out

    def save(self, path: str | Path) -> None:
        """Write as JSON (atomically: a temp file renamed into place)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), separators=(",", ":")))
        tmp.replace(path)

    @classmethod
    def from_dict(cls, data: Any) -> Schedule:
        if not isinstance(data, dict) or data.get("format") != "weightstream-schedule":
            raise ScheduleError("not a weightstream schedule (missing \"format\": "
                                "\"weightstream-schedule\")")
        try:
            steps: list[Step] = []
            for i, raw in enumerate(data["steps"]):
                raw = dict(raw)
                kind = raw.pop("step", None)
                if kind not in _KINDS:
                    raise ScheduleError(f"step {i}: unknown step type {kind!r}; valid types: "
                                        f"{', '.join(_KINDS)}")
                for key in _TUPLES:
                    if key in raw:
                        raw[key] = tuple(raw[key])
                try:
                    steps.append(_KINDS[kind](**raw))
                except TypeError as exc:
                    raise ScheduleError(f"step {i} ({kind}): {exc}") from None
            return cls(
                policy=str(data["policy"]), workload=str(data["workload"]),
                profile=str(data["profile"]), budget_bytes=data.get("budget_bytes"),
                tensor_bytes={str(k): int(v) for k, v in data["tensor_bytes"].items()},
                invocations=[InvocationInfo(**i) for i in data["invocations"]],
                steps=steps, meta=dict(data.get("meta") or {}),
                runtime=str(data.get("runtime", "ideal")),
                budget_scope=str(data.get("budget_scope", "total")),
                buffers={str(k): dict(v) for k, v in (data.get("buffers") or {}).items()},
            )
        except KeyError as exc:
            raise ScheduleError(f"schedule is missing the field {exc.args[0]!r}") from None
        except ScheduleError:
            raise
        except (TypeError, ValueError, AttributeError) as exc:
            raise ScheduleError(f"malformed schedule: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> Schedule:
        """Read a schedule JSON file; malformed files raise ScheduleError naming the problem."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ScheduleError(f"cannot read schedule file {path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScheduleError(f"schedule file {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _check_refs(step: Step, refs: Iterable[int], what: str) -> None:
    for r in refs:
        if not isinstance(r, int) or r < 0 or r >= step.id:
            raise ScheduleError(f"step {step.id}: {what} names step {r!r}, which is not an "
                                "earlier step")


def validate_schedule(s: Schedule, expected_ops: dict[int, Iterable[str]] | None = None) -> None:
    """Raise ScheduleError naming the first offending step if `s` breaks an IR rule.

    `expected_ops` maps invocation index -> op names that must all be computed (optional).
    """
    resident: dict[str, int] = {}  # tensor -> id of the load that made it resident
    users: dict[str, set[int]] = {}  # tensor -> computes that used it since that load
    done: set[tuple[int, str]] = set()
    kinds: dict[int, type] = {}
    if s.budget_scope not in BUDGET_SCOPES:
        raise ScheduleError(f"unknown budget scope {s.budget_scope!r}; valid: "
                            f"{', '.join(BUDGET_SCOPES)}")
    largest_buffer = 0
    for name, buf in s.buffers.items():
        nbytes, cat = buf.get("bytes"), buf.get("category")
        if not isinstance(nbytes, int) or nbytes < 0:
            raise ScheduleError(f"buffer {name!r}: 'bytes' must be a whole number >= 0, found "
                                f"{nbytes!r}")
        if cat not in BUFFER_CATEGORIES:
            raise ScheduleError(f"buffer {name!r}: unknown category {cat!r}; valid: "
                                f"{', '.join(BUFFER_CATEGORIES)}")
        largest_buffer = max(largest_buffer, nbytes)
    for pos, step in enumerate(s.steps):
        if step.id != pos:
            raise ScheduleError(f"step at position {pos} has id {step.id}; ids must be 0..n-1 "
                                "in list order")
        _check_refs(step, step.after, "after")
        kinds[pos] = type(step)
        if isinstance(step, Load):
            if step.path not in PATHS:
                raise ScheduleError(f"step {pos} (load): unknown path {step.path!r}; valid: "
                                    f"{', '.join(PATHS)}")
            if step.dst not in DESTINATIONS:
                raise ScheduleError(f"step {pos} (load): unknown destination {step.dst!r}; "
                                    f"valid: {', '.join(DESTINATIONS)}")
            if step.bytes < 0:
                raise ScheduleError(f"step {pos} (load): negative size {step.bytes}")
            if step.read_bytes is not None and step.read_bytes < 0:
                raise ScheduleError(f"step {pos} (load): negative read size {step.read_bytes}")
            _check_refs(step, step.copy_after, "copy_after")
            if step.preallocated:
                if not s.buffers:
                    raise ScheduleError(f"step {pos} (load) is preallocated but the schedule "
                                        "declares no buffers")
                held = max(step.bytes, step.read_bytes or 0)
                if held > largest_buffer:
                    raise ScheduleError(f"step {pos} (load) needs {held} bytes, more than the "
                                        f"largest preallocated buffer ({largest_buffer} bytes)")
            if not step.tensors:
                raise ScheduleError(f"step {pos} (load) loads no tensor")
            total = 0
            for t in step.tensors:
                if t not in s.tensor_bytes:
                    raise ScheduleError(f"step {pos} (load): unknown tensor {t!r}")
                if t in resident:
                    raise ScheduleError(f"step {pos} (load): tensor {t!r} is loaded again while "
                                        f"still resident from step {resident[t]}")
                resident[t] = pos
                users[t] = set()
                total += s.tensor_bytes[t]
            if total != step.bytes:
                raise ScheduleError(f"step {pos} (load): bytes {step.bytes} differ from the "
                                    f"tensors' total {total}")
        elif isinstance(step, Compute):
            _check_refs(step, step.inputs, "inputs")
            _check_refs(step, step.after_read, "after_read")
            for r in step.after_read:
                if kinds[r] is not Load:
                    raise ScheduleError(f"step {pos} (compute {step.op}): after_read names step "
                                        f"{r}, which is not a load")
            for r in step.inputs:
                if kinds[r] is not Compute:
                    raise ScheduleError(f"step {pos} (compute {step.op}): input {r} is not a compute")
            if not 0 <= step.invocation < len(s.invocations):
                raise ScheduleError(f"step {pos} (compute {step.op}): invocation {step.invocation} "
                                    f"out of range (0..{len(s.invocations) - 1})")
            key = (step.invocation, step.op)
            if key in done:
                raise ScheduleError(f"step {pos}: op {step.op!r} of invocation {step.invocation} "
                                    "is computed twice")
            done.add(key)
            for attr in ("flops", "input_bytes", "output_bytes", "workspace_bytes", "state_bytes"):
                if getattr(step, attr) < 0:
                    raise ScheduleError(f"step {pos} (compute {step.op}): negative {attr}")
            after = set(step.after)
            for t in step.weights:
                if t not in resident:
                    raise ScheduleError(f"step {pos} (compute {step.op}) uses tensor {t!r} "
                                        "before it is loaded")
                if resident[t] not in after:
                    raise ScheduleError(f"step {pos} (compute {step.op}) uses tensor {t!r} but does "
                                        f"not wait for its load (step {resident[t]})")
                users[t].add(pos)
        elif isinstance(step, Free):
            after = set(step.after)
            for t in step.tensors:
                if t not in resident:
                    raise ScheduleError(f"step {pos} (free) frees tensor {t!r}, which is not "
                                        "resident")
                missing = sorted(users[t] - after)
                if missing:
                    raise ScheduleError(f"step {pos} (free) frees tensor {t!r} before its last use "
                                        f"(it does not wait for compute step(s) {missing})")
                del resident[t]
                del users[t]
        else:
            raise ScheduleError(f"step {pos}: unknown step type {type(step).__name__}")
    if expected_ops is not None:
        for inv, ops in expected_ops.items():
            missing = [o for o in ops if (inv, o) not in done]
            if missing:
                raise ScheduleError(f"invocation {inv} never computes op(s) {missing[:5]}"
                                    + (" ..." if len(missing) > 5 else ""))
