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

import difflib
import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sim.errors import ScheduleError
from workloads.formats import FormatError, get_format

PATHS = ("direct", "via_buffer", "staged")
# meta entries that are wall-clock measurements of planning, not properties of the plan
TIMING_META = ("plan_time_s", "solver_wall_s")
DESTINATIONS = ("texture", "buffer")
BUDGET_SCOPES = ("total", "weights")
BUFFER_CATEGORIES = ("staging", "weights")
FORMAT_VERSION = 1


@dataclass(slots=True)
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
    `request_bytes`: the bytes are read in pieces of this size, one request each (the rows an
    embedding lookup gathers); None = contiguous.
    """

    id: int
    tensors: tuple[str, ...]
    bytes: int
    path: str = "via_buffer"
    dst: str = "texture"
    after: tuple[int, ...] = ()
    src: str = "flash"
    layout: dict[str, Any] | None = None  # e.g. {"image": "image2d_array", "w":.., "h":.., "layers":..}
    request_bytes: int | None = None  # read in pieces of this size (gathered rows); None = whole
    read_bytes: int | None = None
    copy_after: tuple[int, ...] = ()
    preallocated: bool = False


@dataclass(slots=True)
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


@dataclass(slots=True)
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
_OPTIONAL = {"layout": None, "request_bytes": None, "read_bytes": None, "copy_after": [],
             "preallocated": False,
             "after_read": []}


@dataclass
class InvocationInfo:
    """Which model an invocation runs and how it appears in traces; `records`: a runtime that
    records command buffers per input shape records them before it (`workloads.workload.recording`)."""

    label: str
    model: str
    records: bool = False


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
    def to_dict(self, timings: bool = False) -> dict[str, Any]:
        """JSON-ready form; wall-clock planning times (`TIMING_META`) only with `timings`, so
        the same plan gives byte-identical files."""
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
            "runtime": self.runtime, "budget_bytes": self.budget_bytes,
            "tensor_bytes": self.tensor_bytes,
            "invocations": [{"label": i.label, "model": i.model, **({"records": True}
                                                                    if i.records else {})}
                            for i in self.invocations],
            "meta": self.meta if timings else without_timings(self.meta),
            "steps": steps,
        }
        if self.budget_scope != "total":
            out["budget_scope"] = self.budget_scope
        if self.buffers:
            out["buffers"] = self.buffers
        return out

    def save(self, path: str | Path, timings: bool = False) -> None:
        """Write as JSON (atomically: a temp file renamed into place; nothing is left behind
        if the write fails)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.to_dict(timings), separators=(",", ":")))
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def from_dict(cls, data: Any) -> Schedule:
        """A Schedule from its JSON form; every malformed field raises ScheduleError naming
        its path (`steps[4].flops: expected a whole number >= 0, found 'lots'`)."""
        if not isinstance(data, dict) or data.get("format") != "weightstream-schedule":
            raise ScheduleError("not a weightstream schedule (missing \"format\": "
                                "\"weightstream-schedule\")")
        _check_keys(data, _TOP_REQUIRED,
                    (*_TOP_REQUIRED, "version", "runtime", "budget_bytes", "meta", "budget_scope",
                     "buffers"), "schedule")
        version = data.get("version", FORMAT_VERSION)
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise ScheduleError(f"version: this weightstream reads schedule format version "
                                f"{FORMAT_VERSION}, found {version!r}")
        for key in ("policy", "workload", "profile"):
            _field(data[key], "text", key)
        runtime = _field(data.get("runtime", "ideal"), "text", "runtime")
        budget = data.get("budget_bytes")
        if budget is not None:
            _field(budget, "size", "budget_bytes")
            if budget == 0:
                raise ScheduleError("budget_bytes: expected a positive size or null (no "
                                    "budget), found 0")
        tb = data["tensor_bytes"]
        if not isinstance(tb, dict):
            raise ScheduleError(f"tensor_bytes: expected a mapping of tensor name to bytes, "
                                f"found {_found(tb)}")
        tensor_bytes = {str(k): _field(v, "size", f"tensor_bytes[{k!r}]") for k, v in tb.items()}
        invs = data["invocations"]
        if not isinstance(invs, list) or not invs:
            raise ScheduleError(f"invocations: expected a non-empty list, found {_found(invs)}")
        invocations = []
        for i, inv in enumerate(invs):
            where = f"invocations[{i}]"
            if not isinstance(inv, dict):
                raise ScheduleError(f"{where}: expected {{label, model}}, found {_found(inv)}")
            _check_keys(inv, ("label", "model"), ("label", "model", "records"), where)
            records = inv.get("records", False)
            if not isinstance(records, bool):
                raise ScheduleError(f"{where}.records: expected true or false, found "
                                    f"{_found(records)}")
            invocations.append(InvocationInfo(_field(inv["label"], "text", f"{where}.label"),
                                              _field(inv["model"], "text", f"{where}.model"),
                                              records))
        meta = data.get("meta") or {}
        if not isinstance(meta, dict):
            raise ScheduleError(f"meta: expected a mapping, found {_found(meta)}")
        raw_steps = data["steps"]
        if not isinstance(raw_steps, list) or not raw_steps:
            raise ScheduleError(f"steps: expected a non-empty list of steps, found "
                                f"{_found(raw_steps)}")
        steps = [_step(raw, i) for i, raw in enumerate(raw_steps)]
        scope = _field(data.get("budget_scope", "total"), "text", "budget_scope")
        buffers = data.get("buffers") or {}
        if not isinstance(buffers, dict) or not all(isinstance(v, dict) for v in buffers.values()):
            raise ScheduleError(f"buffers: expected a mapping of name to {{bytes, category}}, "
                                f"found {_found(buffers)}")
        return cls(policy=data["policy"], workload=data["workload"], profile=data["profile"],
                   budget_bytes=budget, tensor_bytes=tensor_bytes, invocations=invocations,
                   steps=steps, meta=meta, runtime=runtime, budget_scope=scope,
                   buffers={str(k): dict(v) for k, v in buffers.items()})

    @classmethod
    def load(cls, path: str | Path) -> Schedule:
        """Read a schedule JSON file; malformed files raise ScheduleError naming the problem."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ScheduleError(f"cannot read schedule file {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ScheduleError(f"schedule file {path} is not UTF-8 text (byte {exc.start}: "
                                f"{exc.reason})") from None
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except (json.JSONDecodeError, ValueError) as exc:
            raise ScheduleError(f"schedule file {path} is not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except ScheduleError as exc:
            raise ScheduleError(f"schedule file {path}: {exc}") from None


_TOP_REQUIRED = ("format", "policy", "workload", "profile", "tensor_bytes", "invocations",
                 "steps")
# field -> kind, for every field of every step type
_STEP_FIELDS = {"id": "index", "after": "refs", "inputs": "refs", "tensors": "names",
                "weights": "names", "bytes": "size", "flops": "size", "input_bytes": "size",
                "output_bytes": "size", "workspace_bytes": "size", "state_bytes": "size",
                "path": "text", "dst": "text", "src": "text", "op": "text", "kind": "text",
                "dtype": "text", "invocation": "index", "layout": "mapping?",
                "op_class": "text?", "read_bytes": "size?", "copy_after": "refs",
                "preallocated": "bool", "after_read": "refs", "request_bytes": "count?"}
_EXPECTED = {"index": "a whole number >= 0", "size": "a whole number >= 0",
             "text": "a non-empty text", "text?": "a text", "refs": "a list of step ids",
             "names": "a list of tensor names", "mapping?": "a mapping or null",
             "size?": "a whole number >= 0 or null", "bool": "true or false",
             "count?": "a whole number > 0 or null"}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a schedule may hold (only finite numbers)")


def _found(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_keys(d: dict[str, Any], required: Iterable[str], valid: Iterable[str],
                where: str) -> None:
    valid = tuple(valid)
    for k in required:
        if k not in d:
            raise ScheduleError(f"{where} is missing the field {k!r}")
    unknown = [k for k in d if k not in valid]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ScheduleError(f"{where}: unknown field {unknown[0]!r}{hint}; valid fields: "
                            f"{', '.join(valid)}")


def _whole(value: Any) -> int | None:
    """`value` as an int if it is a whole number (1e9 written as a float counts), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _field(value: Any, kind: str, where: str) -> Any:
    """`value` checked (and normalised) as a field of `kind`; ScheduleError naming `where`."""
    if kind in ("index", "size"):
        n = _whole(value)
        if n is None or n < 0:
            raise ScheduleError(f"{where}: expected {_EXPECTED[kind]}, found {_found(value)}")
        return n
    if kind == "text":
        if not isinstance(value, str) or not value:
            raise ScheduleError(f"{where}: expected {_EXPECTED[kind]}, found {_found(value)}")
        return value
    if kind == "text?":
        if not isinstance(value, str):
            raise ScheduleError(f"{where}: expected {_EXPECTED[kind]}, found {_found(value)}")
        return value
    if kind == "size?":
        return None if value is None else _field(value, "size", where)
    if kind == "count?":
        n = None if value is None else _whole(value)
        if value is not None and (n is None or n <= 0):
            raise ScheduleError(f"{where}: expected {_EXPECTED[kind]}, found {_found(value)}")
        return n
    if kind == "bool":
        if not isinstance(value, bool):
            raise ScheduleError(f"{where}: expected {_EXPECTED[kind]}, found {_found(value)}")
        return value
    if kind == "mapping?":
        if value is not None and not isinstance(value, dict):
            raise ScheduleError(f"{where}: expected {_EXPECTED[kind]}, found {_found(value)}")
        return value
    if not isinstance(value, list):
        raise ScheduleError(f"{where}: expected {_EXPECTED[kind]}, found {_found(value)}")
    item = "index" if kind == "refs" else "text"
    return tuple(_field(v, item, f"{where}[{i}]") for i, v in enumerate(value))


def _step(raw: Any, i: int) -> Step:
    where = f"steps[{i}]"
    if not isinstance(raw, dict):
        raise ScheduleError(f"{where}: expected a step mapping, found {_found(raw)}")
    kind = raw.get("step")
    if kind not in _KINDS:
        raise ScheduleError(f"{where}: unknown step type {kind!r}; valid types: "
                            f"{', '.join(_KINDS)}")
    cls = _KINDS[kind]
    names = [f.name for f in fields(cls)]
    required = [f.name for f in fields(cls) if f.default is MISSING]
    _check_keys({k: v for k, v in raw.items() if k != "step"}, required, names,
                f"{where} ({kind})")
    values = {k: _field(v, _STEP_FIELDS[k], f"{where}.{k}") for k, v in raw.items()
              if k != "step"}
    return cls(**values)


def without_timings(meta: dict[str, Any]) -> dict[str, Any]:
    """`meta` without its wall-clock entries (`TIMING_META`)."""
    return {k: v for k, v in meta.items() if k not in TIMING_META}


def _check_refs(step: Step, refs: Iterable[int], what: str) -> None:
    for r in refs:
        if not isinstance(r, int) or r < 0 or r >= step.id:
            raise ScheduleError(f"step {step.id}: {what} names step {r!r}, which is not an "
                                "earlier step")


def _refs_ok(refs: tuple[int, ...], pos: int) -> bool:
    """Every reference names an earlier step (the common case, checked fast)."""
    for r in refs:
        if type(r) is not int or r < 0 or r >= pos:
            return False
    return True


def validate_schedule(s: Schedule, expected_ops: dict[int, Iterable[str]] | None = None) -> None:
    """Raise ScheduleError naming the first offending step if `s` breaks an IR rule.

    `expected_ops` maps invocation index -> op names that must all be computed (optional).
    """
    resident: dict[str, int] = {}  # tensor -> id of the load that made it resident
    users: dict[str, set[int]] = {}  # tensor -> computes that used it since that load
    done: set[tuple[int, str]] = set()
    kinds: list[type] = []
    tensor_bytes = s.tensor_bytes
    ninv = len(s.invocations)
    known_dtypes: set[str] = set()  # weight formats already checked
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
        if not _refs_ok(step.after, pos):
            _check_refs(step, step.after, "after")
        cls = type(step)
        kinds.append(cls)
        if cls is Compute:
            if not _refs_ok(step.inputs, pos):
                _check_refs(step, step.inputs, "inputs")
            for r in step.inputs:
                if kinds[r] is not Compute:
                    raise ScheduleError(f"step {pos} (compute {step.op}): input {r} is not a compute")
            if step.after_read:
                _check_refs(step, step.after_read, "after_read")
                for r in step.after_read:
                    if kinds[r] is not Load:
                        raise ScheduleError(f"step {pos} (compute {step.op}): after_read names "
                                            f"step {r}, which is not a load")
            if not 0 <= step.invocation < ninv:
                raise ScheduleError(f"step {pos} (compute {step.op}): invocation {step.invocation} "
                                    f"out of range (0..{ninv - 1})")
            key = (step.invocation, step.op)
            if key in done:
                raise ScheduleError(f"step {pos}: op {step.op!r} of invocation {step.invocation} "
                                    "is computed twice")
            done.add(key)
            if step.dtype not in known_dtypes:
                try:
                    get_format(step.dtype)
                except FormatError as exc:
                    raise ScheduleError(f"step {pos} (compute {step.op}): {exc}") from None
                known_dtypes.add(step.dtype)
            if min(step.flops, step.input_bytes, step.output_bytes, step.workspace_bytes,
                   step.state_bytes) < 0:
                for attr in ("flops", "input_bytes", "output_bytes", "workspace_bytes",
                             "state_bytes"):
                    if getattr(step, attr) < 0:
                        raise ScheduleError(f"step {pos} (compute {step.op}): negative {attr}")
            if step.weights:
                after = step.after
                for t in step.weights:
                    r = resident.get(t)
                    if r is None:
                        raise ScheduleError(f"step {pos} (compute {step.op}) uses tensor {t!r} "
                                            "before it is loaded")
                    if r not in after:
                        raise ScheduleError(f"step {pos} (compute {step.op}) uses tensor {t!r} "
                                            f"but does not wait for its load (step {r})")
                    users[t].add(pos)
        elif cls is Load:
            if step.path not in PATHS:
                raise ScheduleError(f"step {pos} (load): unknown path {step.path!r}; valid: "
                                    f"{', '.join(PATHS)}")
            if step.dst not in DESTINATIONS:
                raise ScheduleError(f"step {pos} (load): unknown destination {step.dst!r}; "
                                    f"valid: {', '.join(DESTINATIONS)}")
            if step.bytes < 0:
                raise ScheduleError(f"step {pos} (load): negative size {step.bytes}")
            if step.request_bytes is not None and step.request_bytes <= 0:
                raise ScheduleError(f"step {pos} (load): request_bytes must be positive, found "
                                    f"{step.request_bytes}")
            if step.read_bytes is not None and step.read_bytes < 0:
                raise ScheduleError(f"step {pos} (load): negative read size {step.read_bytes}")
            if step.copy_after:
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
                if t not in tensor_bytes:
                    raise ScheduleError(f"step {pos} (load): unknown tensor {t!r}")
                if t in resident:
                    raise ScheduleError(f"step {pos} (load): tensor {t!r} is loaded again while "
                                        f"still resident from step {resident[t]}")
                resident[t] = pos
                users[t] = set()
                total += tensor_bytes[t]
            if total != step.bytes:
                raise ScheduleError(f"step {pos} (load): bytes {step.bytes} differ from the "
                                    f"tensors' total {total}")
        elif cls is Free:
            after = set(step.after)
            for t in step.tensors:
                if t not in resident:
                    raise ScheduleError(f"step {pos} (free) frees tensor {t!r}, which is not "
                                        "resident")
                if not users[t] <= after:
                    missing = sorted(users[t] - after)
                    raise ScheduleError(f"step {pos} (free) frees tensor {t!r} before its last use "
                                        f"(it does not wait for compute step(s) {missing})")
                del resident[t]
                del users[t]
        else:
            raise ScheduleError(f"step {pos}: unknown step type {type(step).__name__}")
    if not done:
        raise ScheduleError("the schedule computes nothing (no compute step): there is no "
                            "inference to simulate")
    if expected_ops is not None:
        for inv, ops in expected_ops.items():
            missing = [o for o in ops if (inv, o) not in done]
            if missing:
                raise ScheduleError(f"invocation {inv} never computes op(s) {missing[:5]}"
                                    + (" ..." if len(missing) > 5 else ""))
