"""Sweep specs: the YAML file that names workloads x profiles x policies x budgets x dtypes.

A spec is parsed and checked in full before anything runs, so a typo fails in a second with a
message that names the key and the valid choices, not after an hour of simulation.

    name: my-sweep
    models: [resnet50, gpt2]                 # zoo models, one inference each
    #   or model files: {file: det.onnx, dims: {height: 640, width: 640}}, {file: config.json}
    workloads: [llama-3.2-1b-p128-d32]       # scenarios (optional)
    profiles:
      - snapdragon-8-gen-3
      - {name: snapdragon-8-gen-3, label: sd8g3-ufs3, set: {storage.read_bandwidth: 2.1GB/s}}
    runtimes: [ideal, mnn]                   # runtime profiles (optional; default [ideal])
    policies:
      - preload
      - {name: pipeline, options: {depth: 2}}
      - {name: flashmem, runtime: flashmem}  # a policy pinned to one runtime
    budgets: {auto: 6}                       # or a list: [64MiB, 256MiB, unlimited]
    budget_scope: total                      # or weights: the budget caps weights + staging
    dtypes: [fp16, q4_0, "q4_0,lm_head=q6_k"]   # weight formats or mixed precision
    summary: {speedup: cold, memory: total}  # references of the summary's speedup (cold or
                                             # warm preload) and memory reduction (total or
                                             # weights: the papers' parameter memory)
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from experiments.errors import ExperimentError

SPEC_KEYS = ("name", "description", "models", "workloads", "profiles", "runtimes", "policies",
             "budgets", "budget_scope", "dtypes", "summary")
BUDGET_SCOPES = ("total", "weights")
SUMMARY_KEYS = ("speedup", "memory")
SPEEDUP_REFS = ("cold", "warm")
MEMORY_REFS = ("total", "weights")
WORKLOAD_KEYS = ("name", "label", "factory", "args", "file", "dims", "branches", "tokens")
PROFILE_KEYS = ("name", "label", "set")
POLICY_KEYS = ("name", "label", "options", "runtime")
DEFAULT_RUNTIMES = ("ideal",)
AUTO_KEYS = ("auto",)
UNLIMITED = ("unlimited", "none", "inf")
DEFAULT_DTYPES = ("fp16",)


def _hint(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(data: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
    for k in data:
        if k not in valid:
            raise ExperimentError(f"unknown key {k!r} in {where}{_hint(str(k), valid)}; "
                                  f"valid keys: {', '.join(valid)}")


def digest_of(obj: Any, n: int = 16) -> str:
    """Short sha256 of the sorted JSON of `obj`: stable across runs, machines and processes."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _canon(value: Any, where: str = "value") -> Any:
    """A JSON-stable form of an option or argument value (non-finite numbers refused)."""
    try:
        return json.loads(json.dumps(value, sort_keys=True, default=str, allow_nan=False))
    except ValueError:
        raise ExperimentError(f"{where} holds a number that is not finite (.nan or .inf): "
                              f"{value!r}") from None


@dataclass(frozen=True)
class WorkloadRef:
    """One entry of the workload axis: a zoo model, a scenario or a Python factory."""

    kind: str  # "model" | "workload" | "factory" | "file" (an ONNX file or a config.json)
    name: str
    label: str
    args: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        # a model file counts by its name and content digest (in args), not by where it lies
        name = Path(self.name).name if self.kind == "file" else self.name
        return {"kind": self.kind, "name": name, "args": dict(self.args)}


@dataclass(frozen=True)
class ProfileRef:
    """A hardware profile name or YAML path plus `--set` style overrides."""

    name: str
    label: str
    overrides: tuple[str, ...] = ()
    digest: str = ""  # hash of the resolved profile's numbers: an edited file re-runs its rows

    def to_dict(self) -> dict[str, Any]:
        # a YAML file counts by its file name and content, not by where it lies on this machine
        name = Path(self.name).name if self.name.endswith((".yaml", ".yml")) else self.name
        return {"name": name, "set": list(self.overrides), "digest": self.digest}


@dataclass(frozen=True)
class PolicyRef:
    """A policy name with its keyword options (label names it in tables and plots) and, where
    the spec pins one, the runtime it always runs with (else every runtime of the spec)."""

    name: str
    label: str
    options: tuple[tuple[str, Any], ...] = ()
    runtime: ProfileRef | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": dict(self.options)}


@dataclass(frozen=True)
class Budgets:
    """Explicit budgets in bytes (None = unlimited), or `auto` log-spaced points."""

    values: tuple[int | None, ...] = ()
    auto: int | None = None


@dataclass(frozen=True)
class SummaryRefs:
    """What the summary's speedup and memory reduction compare against: a cold preload (load
    + run) or a warm one (weights already resident), and total or weight memory."""

    speedup: str = "cold"
    memory: str = "total"


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, checked sweep: the cross product of its axes is the list of runs."""

    name: str
    workloads: tuple[WorkloadRef, ...]
    profiles: tuple[ProfileRef, ...]
    policies: tuple[PolicyRef, ...]
    budgets: Budgets
    dtypes: tuple[str, ...] = DEFAULT_DTYPES
    description: str = ""
    runtimes: tuple[ProfileRef, ...] = ()  # runtime profiles: a ProfileRef of the runtime kind
    budget_scope: str = "total"
    summary: SummaryRefs = SummaryRefs()
    source: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def size_hint(self) -> str:
        nb = self.budgets.auto if self.budgets.auto else len(self.budgets.values)
        rt = f" x {len(self.runtimes)} runtime(s)" if len(self.runtimes) > 1 else ""
        return (f"{len(self.workloads)} workload(s) x {len(self.profiles)} profile(s){rt} x "
                f"{len(self.policies)} polic(ies) x {nb} budget(s) x {len(self.dtypes)} dtype(s)")

    def series(self, pol: PolicyRef, rt: ProfileRef) -> str:
        """The label of a (policy, runtime) pair in tables and plots."""
        return pol.label if pol.runtime or rt.label == "ideal" else f"{pol.label}@{rt.label}"

    def pairs(self) -> list[tuple[PolicyRef, ProfileRef]]:
        """Every (policy, runtime) the spec runs: a pinned policy with its runtime only."""
        out = []
        for pol in self.policies:
            for rt in ((pol.runtime,) if pol.runtime else self.runtimes):
                out.append((pol, rt))
        return out


# --- parsing -------------------------------------------------------------------------------------
def _axis(data: Mapping[str, Any], key: str, required: bool = True) -> list[Any]:
    raw = data.get(key)
    if raw is None:
        if required:
            raise ExperimentError(f"sweep spec needs a non-empty {key!r} list")
        return []
    if isinstance(raw, str | Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise ExperimentError(f"{key!r} must be a list, found {type(raw).__name__}")
    if not raw and required:
        raise ExperimentError(f"{key!r} is empty; give at least one entry")
    return raw


def _entry(item: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if isinstance(item, str):
        return {"name": item}
    if not isinstance(item, Mapping):
        raise ExperimentError(f"each entry of {where} must be a name or a mapping, found {item!r}")
    _check_keys(item, keys, f"an entry of {where}")
    return dict(item)


def _model_file(e: Mapping[str, Any], base: Path | None, check_names: bool) -> WorkloadRef:
    """A models entry naming an ONNX file or a config.json (relative to the spec's folder
    first), with its dims / branches (ONNX) or tokens (config)."""
    path = Path(str(e["file"]))
    if base is not None and not path.is_absolute() and (base / path).exists():
        path = (base / path).resolve()
    args: dict[str, Any] = {}
    for key in ("dims", "branches"):
        if e.get(key) is not None:
            if not isinstance(e[key], Mapping):
                raise ExperimentError(f"{key!r} of model file {str(path)!r} must be a mapping, "
                                      f"e.g. {{height: 640}}")
            args[key] = dict(e[key])
    if e.get("tokens") is not None:
        args["tokens"] = e["tokens"]
    if e.get("args"):
        raise ExperimentError(f"'args' is only valid with 'factory' (model file {str(path)!r})")
    label = str(e.get("label") or e.get("name") or path.stem)
    if check_names:
        from workloads.model import WorkloadError
        from workloads.model_file import load_model_file

        if not path.exists():
            raise ExperimentError(f"model file {str(path)!r} in sweep spec not found (relative "
                                  "paths are looked up next to the spec, then in the cwd)")
        try:  # a bad file or dim fails now, not after an hour of simulation
            load_model_file(path, **args)
        except WorkloadError as exc:
            raise ExperimentError(f"model file {path.name!r} in sweep spec: {exc}") from None
        target = path / "config.json" if path.is_dir() else path
        args["digest"] = hashlib.sha256(target.read_bytes()).hexdigest()[:16]
    return WorkloadRef("file", str(path), label, tuple(sorted(_canon(args).items())))


def _workloads(data: Mapping[str, Any], check_names: bool,
               base: Path | None = None) -> tuple[WorkloadRef, ...]:
    models = _axis(data, "models", required=False)
    scenarios = _axis(data, "workloads", required=False)
    if not models and not scenarios:
        raise ExperimentError("sweep spec needs a non-empty 'models' or 'workloads' list")
    out: list[WorkloadRef] = []
    for kind, items in (("model", models), ("workload", scenarios)):
        for item in items:
            e = _entry(item, WORKLOAD_KEYS, f"'{kind}s'")
            if e.get("file"):
                out.append(_model_file(e, base, check_names))
                continue
            for key in ("dims", "branches", "tokens"):
                if e.get(key) is not None:
                    raise ExperimentError(f"{key!r} is only valid with 'file' ({kind} entry {e!r})")
            args = e.get("args") or {}
            if not isinstance(args, Mapping):
                raise ExperimentError(f"'args' of {kind} entry {e!r} must be a mapping")
            if e.get("factory"):
                fac = str(e["factory"])
                if ":" not in fac:
                    raise ExperimentError(f"factory {fac!r} must look like 'package.module:function'")
                name = str(e.get("name") or fac.split(":")[1])
                ref = WorkloadRef("factory", fac, str(e.get("label") or name),
                                  tuple(sorted(_canon(dict(args), f"'args' of {name!r}").items())))
            else:
                if not e.get("name"):
                    raise ExperimentError(f"{kind} entry {e!r} needs a 'name'")
                if args:
                    raise ExperimentError(f"'args' is only valid with 'factory' ({kind} {e['name']!r})")
                name = str(e["name"])
                ref = WorkloadRef(kind, name, str(e.get("label") or name))
                if check_names:
                    _check_workload_name(kind, name)
            out.append(ref)
    _unique([w.label for w in out], "workload labels")
    return tuple(out)


def _check_workload_name(kind: str, name: str) -> None:
    """A zoo model, a named scenario or a scenario pattern, as `run --model/--workload` takes."""
    from experiments.resolve import known_names

    try:
        from workloads.scenarios import PATTERNS, is_workload_name
    except ImportError:
        is_workload_name, PATTERNS = None, ()
    if is_workload_name is not None and is_workload_name(name):
        return
    known = known_names(kind)
    if known is not None and name not in known:
        others = known_names("workload" if kind == "model" else "model") or []
        raise ExperimentError(f"unknown {kind} {name!r} in sweep spec"
                              f"{_hint(name, [*known, *others])}; valid {kind}s: "
                              f"{', '.join(known)}; scenario patterns: {', '.join(PATTERNS)}")


def _profile_ref(item: Any, check_names: bool, base: Path | None, kind: str) -> ProfileRef:
    """One entry of the profiles (kind 'profile') or runtimes (kind 'runtime') axis."""
    e = _entry(item, PROFILE_KEYS, f"'{kind}s'")
    if not e.get("name"):
        raise ExperimentError(f"{kind} entry {e!r} needs a 'name'")
    sets = e.get("set") or {}
    if not isinstance(sets, Mapping):
        raise ExperimentError(f"'set' of {kind} {e['name']!r} must be a mapping of "
                              "field: value, e.g. {storage.read_bandwidth: 2.1GB/s}")
    overrides = tuple(f"{k}={v}" for k, v in sorted(sets.items()))
    name = str(e["name"])
    short = Path(name).stem if name.endswith((".yaml", ".yml")) else name
    label = str(e.get("label") or (short if not overrides else f"{short}+{','.join(overrides)}"))
    if base is not None and name.endswith((".yaml", ".yml")) and not Path(name).is_absolute():
        if (base / name).exists():  # relative to the spec file first, then to the cwd
            name = str((base / name).resolve())
    digest = ""
    if check_names:
        from hwprofiles.loader import ProfileError, load_profile, load_runtime

        try:
            loaded = (load_profile if kind == "profile" else load_runtime)(name, overrides)
        except ProfileError as exc:
            raise ExperimentError(f"{kind} entry {name!r} in sweep spec: {exc}") from None
        digest = digest_of(loaded.to_dict())
    return ProfileRef(name, label, overrides, digest)


def _profiles(data: Mapping[str, Any], check_names: bool, base: Path | None = None,
              kind: str = "profile") -> tuple[ProfileRef, ...]:
    if kind == "runtime" and data.get("runtimes") is None:
        items: list[Any] = list(DEFAULT_RUNTIMES)
    else:
        items = _axis(data, f"{kind}s")
    out = [_profile_ref(item, check_names, base, kind) for item in items]
    _unique([p.label for p in out], f"{kind} labels")
    return tuple(out)


def _policies(data: Mapping[str, Any], check_names: bool,
              base: Path | None = None) -> tuple[PolicyRef, ...]:
    out: list[PolicyRef] = []
    for item in _axis(data, "policies"):
        e = _entry(item, POLICY_KEYS, "'policies'")
        if not e.get("name"):
            raise ExperimentError(f"policy entry {e!r} needs a 'name'")
        name = str(e["name"])
        opts = e.get("options") or {}
        if not isinstance(opts, Mapping):
            raise ExperimentError(f"'options' of policy {name!r} must be a mapping, e.g. {{depth: 2}}")
        if check_names:
            from sim.policies import list_policies, policy_options

            valid = list_policies()
            if name not in valid:
                raise ExperimentError(f"unknown policy {name!r} in sweep spec{_hint(name, valid)}; "
                                      f"valid policies: {', '.join(valid)}")
            known = policy_options(name)
            for k in opts:
                if k not in known:
                    raise ExperimentError(f"policy {name!r} has no option {k!r}; valid options: "
                                          f"{', '.join(known) or 'none'}")
        options = tuple(sorted(_canon(dict(opts), f"'options' of policy {name!r}").items()))
        label = str(e.get("label") or (name if not options else
                                       f"{name}({','.join(f'{k}={v}' for k, v in options)})"))
        runtime = None
        if e.get("runtime") is not None:
            if not isinstance(e["runtime"], str):
                raise ExperimentError(f"'runtime' of policy {name!r} must be the name or file of "
                                      f"one runtime profile, found {e['runtime']!r}")
            runtime = _profile_ref(e["runtime"], check_names, base, "runtime")
            if not e.get("label"):
                label = f"{label}@{runtime.label}"
        out.append(PolicyRef(name, label, options, runtime))
    _unique([p.label for p in out], "policy labels")
    return tuple(out)


def _budgets(data: Mapping[str, Any]) -> Budgets:
    from hwprofiles.units import UnitError, parse_bytes

    raw = data.get("budgets", {"auto": 6})
    if isinstance(raw, Mapping):
        _check_keys(raw, AUTO_KEYS, "'budgets'")
        n = raw.get("auto")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ExperimentError(f"budgets: {{auto: N}} needs a whole number N >= 1, found {n!r}")
        return Budgets(auto=n)
    items = _axis(data, "budgets")
    values: list[int | None] = []
    for item in items:
        if item is None or (isinstance(item, str) and item.strip().lower() in UNLIMITED):
            values.append(None)
            continue
        try:
            b = parse_bytes(item)
        except UnitError as exc:
            raise ExperimentError(f"bad budget {item!r} in 'budgets': {exc}") from None
        if b <= 0:
            raise ExperimentError(f"budget {item!r} in 'budgets' must be positive")
        values.append(b)
    return Budgets(values=tuple(dict.fromkeys(values)))


def _budget_scope(data: Mapping[str, Any]) -> str:
    scope = data.get("budget_scope", "total")
    if scope not in BUDGET_SCOPES:
        raise ExperimentError(f"unknown budget_scope {scope!r}{_hint(str(scope), BUDGET_SCOPES)}; "
                              f"valid: {', '.join(BUDGET_SCOPES)}")
    return str(scope)


def _summary(data: Mapping[str, Any], scope: str) -> SummaryRefs:
    raw = data.get("summary") or {}
    if not isinstance(raw, Mapping):
        raise ExperimentError("'summary' must be a mapping such as {speedup: warm, memory: "
                              "weights}")
    _check_keys(raw, SUMMARY_KEYS, "'summary'")
    speedup = raw.get("speedup", "cold")
    memory = raw.get("memory", "weights" if scope == "weights" else "total")
    for key, value, valid in (("speedup", speedup, SPEEDUP_REFS), ("memory", memory, MEMORY_REFS)):
        if value not in valid:
            raise ExperimentError(f"summary {key}: unknown reference {value!r}"
                                  f"{_hint(str(value), valid)}; valid: {', '.join(valid)}")
    return SummaryRefs(str(speedup), str(memory))


def _dtypes(data: Mapping[str, Any]) -> tuple[str, ...]:
    """Weight formats or mixed precisions ('q4_0,lm_head=q6_k', or a mapping with 'base'),
    in canonical form."""
    from workloads.formats import list_formats
    from workloads.model import WorkloadError
    from workloads.precision import parse_precision

    items = _axis(data, "dtypes", required=False) if "dtypes" in data else list(DEFAULT_DTYPES)
    if not items:
        raise ExperimentError("'dtypes' is empty; give at least one of "
                              + ", ".join(list_formats(examples=True)))
    out = []
    for d in items:
        if not isinstance(d, str | Mapping):
            raise ExperimentError(f"bad entry {d!r} in 'dtypes': expected a format name such as "
                                  "fp16 or q4_0, or a mapping {base: q4_0, lm_head: q8_0}")
        try:
            out.append(parse_precision(d).name)
        except WorkloadError as exc:
            hint = _hint(str(d), list_formats(examples=True)) if isinstance(d, str) else ""
            raise ExperimentError(f"bad entry {d!r} in 'dtypes'{hint}: {exc}") from None
    return tuple(dict.fromkeys(out))


def _unique(labels: list[str], what: str) -> None:
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ExperimentError(f"duplicate {what} in sweep spec: {', '.join(dup)}; give each "
                              "entry a distinct 'label'")


def parse_spec(data: Any, check_names: bool = True, default_name: str = "sweep",
               base: Path | None = None) -> SweepSpec:
    """Check a spec mapping and build the SweepSpec; raises ExperimentError on any problem.
    Relative profile file paths are looked up in `base` (the spec's folder) first."""
    if not isinstance(data, Mapping):
        raise ExperimentError(f"a sweep spec must be a mapping of {', '.join(SPEC_KEYS)}; "
                              f"found {type(data).__name__}")
    _check_keys(data, SPEC_KEYS, "sweep spec")
    scope = _budget_scope(data)
    return SweepSpec(
        name=str(data.get("name") or default_name),
        description=str(data.get("description") or ""),
        workloads=_workloads(data, check_names, base),
        profiles=_profiles(data, check_names, base),
        runtimes=_profiles(data, check_names, base, "runtime"),
        policies=_policies(data, check_names, base),
        budgets=_budgets(data),
        dtypes=_dtypes(data),
        budget_scope=scope,
        summary=_summary(data, scope),
        source=_canon(dict(data), "the sweep spec"),
    )


def builtin_specs() -> dict[str, Path]:
    """Shipped specs by name (experiments/specs/*.yaml)."""
    root = Path(__file__).with_name("specs")
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


def load_spec(ref: str, check_names: bool = True) -> SweepSpec:
    """A spec from a YAML file path or the name of a built-in spec ('default')."""
    path = Path(ref)
    builtins = builtin_specs()
    if not path.exists():
        if ref in builtins:
            path = builtins[ref]
        else:
            raise ExperimentError(f"sweep spec {ref!r} is neither a file nor a built-in spec; "
                                  f"built-in specs: {', '.join(builtins)}")
    from hwprofiles.loader import load_yaml, yaml_problem

    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ExperimentError(f"sweep spec {path} is not valid YAML{yaml_problem(exc)}") from None
    except OSError as exc:
        raise ExperimentError(f"cannot read sweep spec {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ExperimentError(f"sweep spec {path} is not UTF-8 text (byte {exc.start}: "
                              f"{exc.reason})") from None
    return parse_spec(data, check_names, default_name=path.stem, base=path.parent)

