"""Tune specs: the YAML file that names a workload, a search space, objectives and constraints
for `weightstream tune`. Everything is parsed and checked before any trial runs: unknown keys,
parameters, metrics, formats or profile fields, empty spaces and contradictory constraints fail
at once with a message that names the problem and the valid choices.

    name: gpt2-decode
    workload: gpt2-decode-16            # or `model: NAME` (one inference)
    profile: snapdragon-8-gen-3         # fixed values for axes the space does not search
    trials: 40                          # evaluations of the search, and of the grid baseline
    sampler: tpe                        # tpe | random | nsga2
    seed: 0
    objectives: [latency_s]             # or [latency_s, peak_memory_bytes], {metric, direction}
    constraints:
      memory: app_memory                # peak memory within what the OS gives the app, or a size
      latency_s: {max: 200ms}           # bounds on any metric ({min: ..., max: ...})
      accuracy: {max_ppl_delta: 0.3}    # from workloads/data/format-quality.yaml
    space:
      policy: [preload, pipeline, flashmem]
      budget: {low: 32MiB, high: 1GiB, log: true}   # or a list (sizes, unlimited)
      dtype: [fp16, q8_0, q4_0, q4_k]   # base weight format
      formats: {lm_head: [q8_0, q6_k]}  # per layer group (embeddings, attention, ffn, lm_head)
      runtime: [ideal]
      profile: [snapdragon-8-gen-3, dimensity-9300]
      set: {storage.read_bandwidth: {low: 1GB/s, high: 8GB/s, log: true}}   # profile what-ifs
      options: {pipeline: {depth: {low: 1, high: 8}}, flashmem: {lookahead: [4, 8, 16]}}
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from experiments.errors import ExperimentError
from experiments.spec import (
    UNLIMITED,
    WorkloadRef,
    _canon,
    _check_keys,
    _hint,
    digest_of,
)

SPEC_KEYS = ("name", "description", "workload", "model", "profile", "policy", "budget", "dtype",
             "runtime", "options", "trials", "sampler", "seed", "objectives", "constraints",
             "space", "grid", "stale_after")
SPACE_KEYS = ("policy", "budget", "dtype", "formats", "runtime", "profile", "set", "options")
SAMPLERS = ("tpe", "random", "nsga2")
DIRECTIONS = ("minimize", "maximize")
MAXIMIZE = ("tokens_per_s",)  # metrics where more is better (the default direction)
DERIVED = ("ppl_delta",)  # metrics the tune adds to each run from the format quality table
NOT_METRICS = ("budget_bytes", "sim_events", "steps", "memory_limit_bytes")  # inputs, counts
DEFAULT_RUNTIME = "ideal"


def metric_names() -> list[str]:
    """Numeric metrics a run reports (introspected from sim.Metrics, so new metrics become
    objectives with no change here) plus the derived `ppl_delta`."""
    from sim.metrics import Metrics

    names = []
    for f in dataclasses.fields(Metrics):
        t = str(f.type)
        if f.name in NOT_METRICS or not any(k in t for k in ("float", "int")) or "dict" in t \
                or "list" in t:
            continue
        names.append(f.name)
    return names + list(DERIVED)


def known_runtimes() -> list[str]:
    """Shipped runtime profile names (`ideal` first: the hardware alone)."""
    from hwprofiles.loader import list_runtimes

    return list(dict.fromkeys([DEFAULT_RUNTIME, *list_runtimes()]))


@dataclass(frozen=True)
class Axis:
    """One searched parameter: categorical `choices`, or an int/float range in SI units."""

    name: str  # policy | budget | dtype | formats.G | runtime | profile | set.FIELD | options.P.K
    kind: str  # categorical | int | float
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    policy: str | None = None  # options axes apply only when this policy is chosen
    unit: str = ""  # set.* ranges: the profile field's kind (bandwidth, time, bytes, ...)

    @property
    def size(self) -> float:
        """Number of distinct values (inf for a float range)."""
        if self.kind == "categorical":
            return len(self.choices)
        if self.kind == "int":
            return int(self.high) - int(self.low) + 1
        return math.inf


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # minimize | maximize


@dataclass(frozen=True)
class Bound:
    """A constraint `low <= metric <= high` (either side may be None)."""

    metric: str
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Constraints:
    memory: str | int | None = None  # 'app_memory' or a byte count: peak memory within it
    bounds: tuple[Bound, ...] = ()
    max_ppl_delta: float | None = None

    @property
    def count(self) -> int:
        return 1 + (self.memory is not None) + len(self.bounds) + (self.max_ppl_delta is not None)


@dataclass(frozen=True)
class TuneSpec:
    """A parsed, checked tune: fixed values, searched axes, objectives and constraints."""

    name: str
    workload: WorkloadRef
    fixed: dict[str, Any]  # profile, policy, budget (bytes | None), dtype, runtime, options
    axes: tuple[Axis, ...]
    objectives: tuple[Objective, ...]
    constraints: Constraints
    trials: int = 40
    sampler: str = "tpe"
    seed: int = 0
    grid: bool = True
    stale_after: float = 30.0  # s without a heartbeat before a running trial counts as dead
    description: str = ""
    source: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def digest(self) -> str:
        """Hash of what the trials mean: a stored study built from another spec is refused."""
        return digest_of({k: v for k, v in self.source.items()
                          if k not in ("trials", "description", "stale_after")}, 16)

    def axis(self, name: str) -> Axis | None:
        return next((a for a in self.axes if a.name == name), None)

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1


# --- parsing -------------------------------------------------------------------------------------
def _bytes(value: Any, where: str) -> int | None:
    from hwprofiles.units import UnitError, parse_bytes

    if value is None or (isinstance(value, str) and value.strip().lower() in UNLIMITED):
        return None
    try:
        b = parse_bytes(value)
    except UnitError as exc:
        raise ExperimentError(f"{where}: {exc}") from None
    if b <= 0:
        raise ExperimentError(f"{where}: must be positive, found {value!r}")
    return b


def _range(raw: Mapping[str, Any], name: str, parse: Any, integer: bool = False) -> Axis:
    _check_keys(raw, ("low", "high", "log"), f"the range of {name!r}")
    if "low" not in raw or "high" not in raw:
        raise ExperimentError(f"the range of {name!r} needs 'low' and 'high', e.g. "
                              "{low: 64MiB, high: 1GiB, log: true}")
    low, high = parse(raw["low"]), parse(raw["high"])
    if low is None or high is None:
        raise ExperimentError(f"the range of {name!r} cannot be unlimited; list 'unlimited' as "
                              "a choice instead")
    log = bool(raw.get("log", False))
    if not low < high:
        raise ExperimentError(f"the range of {name!r} is empty: low {raw['low']!r} is not below "
                              f"high {raw['high']!r}")
    if log and low <= 0:
        raise ExperimentError(f"a log range of {name!r} needs low > 0, found {raw['low']!r}")
    return Axis(name, "int" if integer else "float", low=low, high=high, log=log)


def _choices(raw: Any, name: str, parse: Any) -> tuple[Any, ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise ExperimentError(f"the search space is empty: {name!r} lists no values")
    out = tuple(dict.fromkeys(parse(v) for v in items))
    return out


def _policy_names() -> list[str]:
    from sim.policies import list_policies

    return list_policies()


def _check_policy(name: Any, where: str) -> str:
    valid = _policy_names()
    if name not in valid:
        raise ExperimentError(f"unknown policy {name!r} in {where}{_hint(str(name), valid)}; "
                              f"valid policies: {', '.join(valid)}")
    return str(name)


def _check_precision(value: Any, where: str) -> str:
    from workloads.model import WorkloadError
    from workloads.precision import parse_precision

    try:
        return parse_precision(value).name
    except WorkloadError as exc:
        raise ExperimentError(f"{where}: {exc}") from None


def _check_format(value: Any, where: str) -> str:
    from workloads.formats import FormatError, get_format

    try:
        return get_format(str(value)).name
    except FormatError as exc:
        raise ExperimentError(f"{where}: {exc}") from None


def _check_runtime(value: Any, where: str, base: Path | None = None) -> str:
    """A shipped runtime name or a runtime profile YAML file (checked by loading it)."""
    from hwprofiles.loader import ProfileError, load_runtime

    name = str(value)
    if name.endswith((".yaml", ".yml")):
        if base is not None and not Path(name).is_absolute() and (base / name).exists():
            name = str((base / name).resolve())
        try:
            load_runtime(name)
        except ProfileError as exc:
            raise ExperimentError(f"{where}: {exc}") from None
        return name
    valid = known_runtimes()
    if name not in valid:
        raise ExperimentError(f"unknown runtime {name!r} in {where}{_hint(name, valid)}; "
                              f"valid runtimes: {', '.join(valid)} (or a runtime YAML file)")
    return name


def _check_profile(name: Any, where: str, base: Path | None) -> str:
    from hwprofiles.loader import ProfileError, load_profile

    name = str(name)
    if base is not None and name.endswith((".yaml", ".yml")) and not Path(name).is_absolute() \
            and (base / name).exists():
        name = str((base / name).resolve())
    try:
        load_profile(name)
    except ProfileError as exc:
        raise ExperimentError(f"{where}: {exc}") from None
    return name


def _set_axis(path: str, raw: Any) -> Axis:
    """A profile what-if: `path` a dotted profile field, values as the profile writes them."""
    from hwprofiles.loader import _parse_value
    from hwprofiles.schema import FIELDS

    name = f"set.{path}"
    if path not in FIELDS:
        raise ExperimentError(f"unknown profile field {path!r} in space.set"
                              f"{_hint(path, list(FIELDS))}; valid fields: {', '.join(FIELDS)}")
    kind = FIELDS[path].rstrip("?")

    def parse(v: Any) -> Any:
        try:
            return _parse_value(kind, v)
        except ValueError as exc:
            raise ExperimentError(f"space.set {path}: expected {exc}, found {v!r}") from None

    if isinstance(raw, Mapping):
        if kind in ("text", "bool"):
            raise ExperimentError(f"space.set {path} is {kind}: give a list of values, not a range")
        axis = _range(raw, name, parse, integer=kind in ("count", "bytes"))
        return dataclasses.replace(axis, unit=kind)
    vals = _choices(raw, name, lambda v: v)
    for v in vals:
        parse(v)
    return Axis(name, "categorical", vals)


def _option_axes(raw: Any, policies: tuple[str, ...]) -> list[Axis]:
    from sim.policies import policy_options

    if not isinstance(raw, Mapping):
        raise ExperimentError("space.options must map a policy to its options, e.g. "
                              "{pipeline: {depth: {low: 1, high: 8}}}")
    out = []
    for pol, opts in raw.items():
        pol = _check_policy(pol, "space.options")
        if pol not in policies:
            raise ExperimentError(f"space.options names policy {pol!r}, which the tune never "
                                  f"runs (policies: {', '.join(policies)})")
        if not isinstance(opts, Mapping) or not opts:
            raise ExperimentError(f"the search space is empty: space.options.{pol} names no "
                                  "option")
        valid = policy_options(pol)
        for key, spec in opts.items():
            if key not in valid:
                raise ExperimentError(f"policy {pol!r} has no option {key!r}"
                                      f"{_hint(str(key), list(valid))}; valid options: "
                                      f"{', '.join(valid) or 'none'}")
            name = f"options.{pol}.{key}"
            if isinstance(spec, Mapping):
                lo, hi = spec.get("low"), spec.get("high")
                integer = isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool)
                axis = _range(spec, name, lambda v, n=name: _number(v, n), integer=integer)
            else:
                axis = Axis(name, "categorical", _choices(spec, name, _canon))
            out.append(dataclasses.replace(axis, policy=pol))
    return out


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ExperimentError(f"the range of {where!r} needs numbers, found {v!r}")
    return v


def _space(raw: Any, fixed: dict[str, Any], base: Path | None) -> tuple[Axis, ...]:
    if raw is None or (isinstance(raw, Mapping) and not raw):
        raise ExperimentError("the search space is empty: give 'space' with at least one of "
                              f"{', '.join(SPACE_KEYS)}")
    if not isinstance(raw, Mapping):
        raise ExperimentError(f"'space' must be a mapping of {', '.join(SPACE_KEYS)}")
    _check_keys(raw, SPACE_KEYS, "'space'")
    axes: list[Axis] = []
    for key in ("policy", "dtype", "runtime", "profile"):
        if key in raw:
            if key in fixed:
                raise ExperimentError(f"{key!r} is given both as a fixed value and in 'space'; "
                                      "keep one")
            check = {"policy": lambda v: _check_policy(v, "space.policy"),
                     "dtype": lambda v: _check_precision(v, "space.dtype"),
                     "runtime": lambda v: _check_runtime(v, "space.runtime", base),
                     "profile": lambda v: _check_profile(v, "space.profile", base)}[key]
            axes.append(Axis(key, "categorical", _choices(raw[key], f"space.{key}", check)))
    if "budget" in raw:
        if "budget" in fixed:
            raise ExperimentError("'budget' is given both as a fixed value and in 'space'; "
                                  "keep one")
        b = raw["budget"]
        if isinstance(b, Mapping):
            axes.append(_range(b, "budget", lambda v: _bytes(v, "space.budget"), integer=True))
        else:
            axes.append(Axis("budget", "categorical",
                             _choices(b, "space.budget", lambda v: _bytes(v, "space.budget"))))
    if "formats" in raw:
        from workloads.precision import GROUPS

        groups = raw["formats"]
        if not isinstance(groups, Mapping) or not groups:
            raise ExperimentError("the search space is empty: space.formats must map layer "
                                  f"groups ({', '.join(GROUPS)}) to format lists")
        for g, vals in groups.items():
            if g not in GROUPS:
                raise ExperimentError(f"unknown layer group {g!r} in space.formats"
                                      f"{_hint(str(g), GROUPS)}; valid groups: {', '.join(GROUPS)}")
            axes.append(Axis(f"formats.{g}", "categorical",
                             _choices(vals, f"space.formats.{g}",
                                      lambda v, g=g: _check_format(v, f"space.formats.{g}"))))
    if "set" in raw:
        sets = raw["set"]
        if not isinstance(sets, Mapping) or not sets:
            raise ExperimentError("the search space is empty: space.set must map profile fields "
                                  "to values or ranges, e.g. {storage.read_bandwidth: [2GB/s, "
                                  "4GB/s]}")
        axes += [_set_axis(str(k), v) for k, v in sets.items()]
    policies = next((a.choices for a in axes if a.name == "policy"), (fixed.get("policy"),))
    if "options" in raw:
        if fixed.get("options"):
            clash = sorted(set(fixed["options"]) & set(raw["options"] or {}))
            if clash:
                raise ExperimentError(f"options of {', '.join(clash)} are given both as fixed "
                                      "values and in 'space'; keep one")
        axes += _option_axes(raw["options"], tuple(p for p in policies if p))
    if all(a.size <= 1 for a in axes):
        raise ExperimentError("the search space is empty: every axis has a single value, so "
                              "there is nothing to tune; give at least one axis two or more values")
    return tuple(axes)


def _objectives(raw: Any, multi_ok: bool = True) -> tuple[Objective, ...]:
    valid = metric_names()
    items = raw if isinstance(raw, list) else [raw] if raw is not None else ["latency_s"]
    if not items:
        raise ExperimentError(f"'objectives' is empty; give one or more of {', '.join(valid)}")
    out: list[Objective] = []
    for item in items:
        if isinstance(item, Mapping):
            _check_keys(item, ("metric", "direction"), "an objective")
            metric, direction = item.get("metric"), item.get("direction")
        else:
            metric, direction = item, None
        if metric not in valid:
            raise ExperimentError(f"unknown objective metric {metric!r}"
                                  f"{_hint(str(metric), valid)}; valid metrics: {', '.join(valid)}")
        direction = direction or ("maximize" if metric in MAXIMIZE else "minimize")
        if direction not in DIRECTIONS:
            raise ExperimentError(f"objective {metric!r}: direction must be minimize or "
                                  f"maximize, found {direction!r}")
        if any(o.metric == metric for o in out):
            raise ExperimentError(f"objective {metric!r} is listed twice")
        out.append(Objective(str(metric), direction))
    return tuple(out)


def _limit(metric: str, value: Any) -> float:
    """A bound value in the metric's unit: times for *_s, sizes for *_bytes, else a number."""
    from hwprofiles.units import UnitError, parse_bytes, parse_time

    try:
        if metric.endswith("_s"):
            return parse_time(value)
        if metric.endswith("_bytes") or metric.endswith("_read"):
            return float(parse_bytes(value))
    except UnitError as exc:
        raise ExperimentError(f"constraint on {metric!r}: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExperimentError(f"constraint on {metric!r} needs a number, found {value!r}")
    return float(value)


def _constraints(raw: Any, spec_formats: list[str]) -> Constraints:
    if raw is None:
        return Constraints()
    if not isinstance(raw, Mapping):
        raise ExperimentError("'constraints' must be a mapping, e.g. {memory: app_memory, "
                              "latency_s: {max: 50ms}}")
    valid = metric_names()
    memory: str | int | None = None
    bounds: list[Bound] = []
    max_ppl: float | None = None
    for key, val in raw.items():
        if key == "memory":
            if val == "app_memory":
                memory = "app_memory"
            else:
                memory = _bytes(val, "constraints.memory")
                if memory is None:
                    raise ExperimentError("constraints.memory: give app_memory or a size, not "
                                          "unlimited (leave the constraint out instead)")
        elif key == "accuracy":
            if not isinstance(val, Mapping) or set(val) != {"max_ppl_delta"}:
                raise ExperimentError("constraints.accuracy must be {max_ppl_delta: NUMBER}")
            max_ppl = val["max_ppl_delta"]
            if isinstance(max_ppl, bool) or not isinstance(max_ppl, int | float) or max_ppl < 0:
                raise ExperimentError(f"constraints.accuracy.max_ppl_delta must be a number >= "
                                      f"0, found {max_ppl!r}")
            max_ppl = float(max_ppl)
        elif key in valid:
            if not isinstance(val, Mapping) or not val or set(val) - {"min", "max"}:
                raise ExperimentError(f"constraint on {key!r} must be {{min: ..., max: ...}} "
                                      "(either or both)")
            lo = _limit(key, val["min"]) if "min" in val else None
            hi = _limit(key, val["max"]) if "max" in val else None
            if lo is not None and hi is not None and lo > hi:
                raise ExperimentError(f"contradictory constraints on {key!r}: min {val['min']!r} "
                                      f"is above max {val['max']!r}; no run can meet both")
            if any(b.metric == key for b in bounds):
                raise ExperimentError(f"constraint on {key!r} is given twice")
            bounds.append(Bound(str(key), lo, hi))
        else:
            choices = ["memory", "accuracy", *valid]
            raise ExperimentError(f"unknown constraint {key!r}{_hint(str(key), choices)}; valid: "
                                  f"memory, accuracy, or a bound on a metric ({', '.join(valid)})")
    if max_ppl is not None or any(b.metric == "ppl_delta" for b in bounds):
        _check_quality(spec_formats, max_ppl)
    return Constraints(memory, tuple(bounds), max_ppl)


def _check_quality(formats: list[str], max_ppl: float | None) -> None:
    """Every format the space can pick needs a sourced figure; at least one must fit."""
    from workloads.quality import quality_table

    table = quality_table()
    missing = [f for f in formats if f not in table]
    if missing:
        raise ExperimentError(f"an accuracy constraint needs a sourced quality figure for every "
                              f"format the space can choose; none for {', '.join(missing)} "
                              f"(formats with one: {', '.join(table)}). Drop those formats or "
                              "the constraint.")
    if max_ppl is not None and min(table[f].ppl_delta for f in formats) > max_ppl:
        best = min(formats, key=lambda f: table[f].ppl_delta)
        raise ExperimentError(f"contradictory constraints: accuracy budget max_ppl_delta "
                              f"{max_ppl:g} is below every format in the space (best: {best}, "
                              f"+{table[best].ppl_delta:g})")


def _formats_of(fixed: dict[str, Any], axes: tuple[Axis, ...]) -> list[str]:
    from workloads.precision import parse_precision

    bases = next((a.choices for a in axes if a.name == "dtype"), (fixed["dtype"],))
    out: list[str] = []
    for b in bases:
        out += parse_precision(b).formats
    for a in axes:
        if a.name.startswith("formats."):
            out += list(a.choices)
    return list(dict.fromkeys(out))


def parse_tune(data: Any, default_name: str = "tune", base: Path | None = None) -> TuneSpec:
    """Check a tune mapping and build the TuneSpec; ExperimentError on any problem."""
    if not isinstance(data, Mapping):
        raise ExperimentError(f"a tune spec must be a mapping of {', '.join(SPEC_KEYS)}; found "
                              f"{type(data).__name__}")
    _check_keys(data, SPEC_KEYS, "tune spec")
    if bool(data.get("workload")) == bool(data.get("model")):
        raise ExperimentError("a tune spec needs exactly one of 'workload: NAME' (a scenario such "
                              "as gpt2-decode-16) or 'model: NAME' (one inference)")
    kind = "model" if data.get("model") else "workload"
    wname = str(data.get(kind))
    _check_workload(WorkloadRef(kind, wname, wname))
    fixed: dict[str, Any] = {}
    space = data.get("space")
    searched = set(space) if isinstance(space, Mapping) else set()
    if "profile" in data:
        fixed["profile"] = _check_profile(data["profile"], "profile", base)
    elif "profile" not in searched:
        raise ExperimentError("a tune spec needs 'profile: NAME' (or a 'profile' list in 'space')")
    if "policy" in data:
        fixed["policy"] = _check_policy(data["policy"], "'policy'")
    elif "policy" not in searched:
        raise ExperimentError("a tune spec needs 'policy: NAME' (or a 'policy' list in 'space')")
    if "budget" in data:
        fixed["budget"] = _bytes(data["budget"], "'budget'")
    if "dtype" in data:
        fixed["dtype"] = _check_precision(data["dtype"], "'dtype'")
    if "runtime" in data:
        fixed["runtime"] = _check_runtime(data["runtime"], "'runtime'", base)
    if "options" in data:
        opts = data["options"]
        if not isinstance(opts, Mapping):
            raise ExperimentError("'options' must map a policy to fixed options, e.g. "
                                  "{flashmem: {time_limit: 1.0}}")
        from sim.policies import policy_options

        for pol, o in opts.items():
            valid = policy_options(_check_policy(pol, "'options'"))
            for k in (o or {}):
                if k not in valid:
                    raise ExperimentError(f"policy {pol!r} has no option {k!r}; valid options: "
                                          f"{', '.join(valid) or 'none'}")
        fixed["options"] = _canon(dict(opts))
    axes = _space(space, fixed, base)
    fixed.setdefault("budget", None)
    fixed.setdefault("dtype", "fp16")
    fixed.setdefault("runtime", DEFAULT_RUNTIME)
    fixed.setdefault("options", {})
    objectives = _objectives(data.get("objectives"))
    constraints = _constraints(data.get("constraints"), _formats_of(fixed, axes))
    if any(o.metric == "ppl_delta" for o in objectives):
        _check_quality(_formats_of(fixed, axes), None)
    if any(o.metric == "energy_j" for o in objectives) or \
            any(b.metric == "energy_j" for b in constraints.bounds):
        _check_energy(fixed, axes)
    trials = data.get("trials", 40)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ExperimentError(f"'trials' must be a whole number >= 1, found {trials!r}")
    sampler = str(data.get("sampler", "tpe"))
    if sampler not in SAMPLERS:
        raise ExperimentError(f"unknown sampler {sampler!r}{_hint(sampler, SAMPLERS)}; valid "
                              f"samplers: {', '.join(SAMPLERS)}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ExperimentError(f"'seed' must be a whole number, found {seed!r}")
    grid = data.get("grid", True)
    if not isinstance(grid, bool):
        raise ExperimentError(f"'grid' must be true or false, found {grid!r}")
    stale = data.get("stale_after", "30s")
    from hwprofiles.units import UnitError, parse_time

    try:
        stale_s = parse_time(stale)
    except UnitError as exc:
        raise ExperimentError(f"'stale_after': {exc}") from None
    if stale_s < 2:
        raise ExperimentError(f"'stale_after' must be at least 2 s, found {stale!r}")
    return TuneSpec(
        name=str(data.get("name") or default_name), workload=WorkloadRef(kind, wname, wname),
        fixed=fixed, axes=axes, objectives=objectives, constraints=constraints, trials=trials,
        sampler=sampler, seed=seed, grid=grid, stale_after=stale_s,
        description=str(data.get("description") or ""), source=_canon(dict(data)))


def _check_workload(ref: WorkloadRef) -> None:
    """The workload must resolve (zoo model, scenario or pattern such as gpt2-p16-d8)."""
    from experiments.resolve import load_workload
    from workloads.model import WorkloadError

    try:
        load_workload(ref, "fp16")
    except WorkloadError as exc:
        raise ExperimentError(f"tune spec {ref.kind}: {exc}") from None


def _check_energy(fixed: dict[str, Any], axes: tuple[Axis, ...]) -> None:
    from hwprofiles import load_profile

    profiles = next((a.choices for a in axes if a.name == "profile"), (fixed.get("profile"),))
    lacking = [p for p in profiles if load_profile(p).energy is None]
    if lacking:
        raise ExperimentError(f"energy_j needs energy figures in the profile; "
                              f"{', '.join(lacking)} has none (profiles with energy: "
                              f"{', '.join(_energy_profiles())})")


def _energy_profiles() -> list[str]:
    from hwprofiles import list_profiles, load_profile

    return [p for p in list_profiles() if load_profile(p).energy is not None]


def builtin_tunes() -> dict[str, Path]:
    """Shipped tune specs by name (experiments/tunes/*.yaml)."""
    root = Path(__file__).with_name("tunes")
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


def load_tune(ref: str, runtime: str | None = None) -> TuneSpec:
    """A tune spec from a YAML file, or the name of a shipped one; `runtime` (the CLI's
    --runtime) sets the fixed runtime unless the space searches runtimes."""
    path = Path(ref)
    if not path.is_file():
        shipped = builtin_tunes()
        if ref not in shipped:
            raise ExperimentError(f"tune spec {ref!r} is neither a file nor a shipped spec; "
                                  f"shipped specs: {', '.join(shipped)}")
        path = shipped[ref]
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ExperimentError(f"tune spec {path} is not valid YAML: {exc}") from None
    except OSError as exc:
        raise ExperimentError(f"cannot read tune spec {path}: {exc.strerror}") from None
    if runtime is not None and isinstance(data, Mapping):
        space = data.get("space")
        if not (isinstance(space, Mapping) and "runtime" in space):
            data = {**data, "runtime": runtime}
    return parse_tune(data, default_name=path.stem, base=path.parent)


SI_UNITS = {"bandwidth": "B/s", "time": "s", "rate": "FLOPS", "energy": "J"}


def override_text(kind: str, value: float) -> str:
    """A sampled SI value of a profile field as `--set` override text, to 6 significant digits
    ('3.2e+09 B/s'); the run uses exactly the text it records."""
    if kind in ("bytes", "count"):
        return str(int(round(value)))
    unit = SI_UNITS.get(kind)
    return f"{value:.6g} {unit}" if unit else f"{value:.6g}"
