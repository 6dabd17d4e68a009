"""Load, derive and check HardwareProfile YAML files.

A profile file is a mapping with `name`, `description`, optional `extends: <profile>` and the
sections of `schema.FIELDS`. Every numeric leaf is written `{value: "4.2 GB/s", source: "..."}`
or `{value: "27 us", estimate: "why this guess"}`. `check_dict` collects every problem at once.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hwprofiles import units
from hwprofiles.runtime import RUNTIME_FIELDS, RUNTIME_SECTIONS, RuntimeProfile, build_runtime
from hwprofiles.schema import (
    FIELDS,
    SECTIONS,
    DramSpec,
    EnergySpec,
    GpuSpec,
    HardwareProfile,
    OsSpec,
    Source,
    StorageSpec,
    TransferSpec,
)

TOP_KEYS = {"name", "description", "extends", *SECTIONS}


@dataclass(frozen=True)
class Schema:
    """What one kind of profile file holds: its field table, sections and where shipped files lie.
    Hardware profiles and runtime profiles share the loader through it."""

    noun: str  # "profile" or "runtime", for messages
    fields: Mapping[str, str]
    sections: tuple[str, ...]
    folder: str  # package folder of the shipped files
    required_sections: tuple[str, ...] = ()

    @property
    def top_keys(self) -> set[str]:
        return {"name", "description", "extends", *self.sections}


class ProfileError(ValueError):
    """A profile could not be found, parsed or validated; the message lists every problem."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]


@dataclass(frozen=True)
class Problem:
    path: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected}, found {self.found}"


_PARSERS = {
    "bandwidth": (units.parse_bandwidth, "a bandwidth such as '4.2 GB/s'"),
    "time": (units.parse_time, "a time such as '27 us'"),
    "bytes": (units.parse_bytes, "a size such as '3 MiB'"),
    "rate": (units.parse_rate, "a rate such as '2.77 TFLOPS'"),
    "energy": (units.parse_energy, "an energy such as '0.4 nJ/B'"),
}


def _parse_value(kind: str, raw: Any) -> Any:
    """Parse one leaf value by kind; raises ValueError with what was expected."""
    if kind.startswith("choice:"):
        choices = kind.split(":", 1)[1].split("|")
        if raw not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return raw
    if kind.startswith("list:"):
        choices = kind.split(":", 1)[1].split("|")
        if not isinstance(raw, list) or any(r not in choices for r in raw):
            raise ValueError(f"a list of names from {', '.join(choices)}")
        return tuple(dict.fromkeys(raw))
    if kind == "ratio":
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw) \
                or raw <= 0:
            raise ValueError("a positive number")
        return float(raw)
    if kind == "text":
        if not isinstance(raw, str) or not raw.strip():
            raise ValueError("a non-empty text")
        return raw
    if kind == "bool":
        if not isinstance(raw, bool):
            raise ValueError("true or false")
        return raw
    if kind == "count":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError("a whole number")
        if raw <= 0:
            raise ValueError("a positive whole number")
        return raw
    if kind in ("factor", "fraction", "number") and isinstance(raw, float) \
            and not math.isfinite(raw):
        raise ValueError(f"{_describe(kind)} (a finite number)")
    if kind == "factor":
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 1:
            raise ValueError("a factor of at least 1")
        return float(raw)
    if kind in ("fraction", "number"):
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ValueError("a number" if kind == "number" else "a fraction in (0, 1]")
        if kind == "fraction" and not 0 < raw <= 1:
            raise ValueError("a fraction in (0, 1]")
        if kind == "number" and raw < 0:
            raise ValueError("a non-negative number")
        return float(raw)
    parse, what = _PARSERS[kind]
    if isinstance(raw, int | float) and not isinstance(raw, bool) and kind != "bytes":
        raise ValueError(f"{what} (with its unit)")
    try:
        value = parse(raw)
    except units.UnitError as exc:
        raise ValueError(f"{what} ({exc})") from None
    if value <= 0 and kind != "time":
        raise ValueError(f"a positive {what.split(' ', 1)[1]}")
    if value < 0:
        raise ValueError(f"a non-negative {what.split(' ', 1)[1]}")
    return value


def _leaf(data: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    obj: Any = data
    for part in path.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return False, None
        obj = obj[part]
    return True, obj


def _walk_unknown(data: Mapping[str, Any], schema: Schema) -> list[Problem]:
    """Keys that no field in the schema has."""
    FIELDS, SECTIONS, TOP_KEYS = schema.fields, schema.sections, schema.top_keys  # noqa: N806
    problems: list[Problem] = []
    known_prefixes = {p.rsplit(".", 1)[0] for p in FIELDS} | {
        ".".join(p.split(".")[:i]) for p in FIELDS for i in range(1, p.count(".") + 1)}

    def walk(obj: Any, prefix: str) -> None:
        if not isinstance(obj, Mapping):
            return
        for key, val in obj.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if path in FIELDS:
                continue
            if path in known_prefixes:
                if isinstance(val, Mapping):
                    walk(val, path)
                else:
                    problems.append(Problem(path, "a mapping of fields", type(val).__name__))
            else:
                valid = sorted(p.split(".")[-1] for p in FIELDS if p.rsplit(".", 1)[0] == prefix)
                problems.append(Problem(path, f"one of the known keys ({', '.join(valid)})",
                                        "an unknown key"))

    for key, val in data.items():
        if key in SECTIONS:
            if not isinstance(val, Mapping):
                problems.append(Problem(key, "a mapping of fields", type(val).__name__))
            else:
                walk(val, key)
        elif key not in TOP_KEYS:
            problems.append(Problem(key, f"one of {', '.join(sorted(TOP_KEYS))}",
                                    "an unknown key"))
    return problems


def _under_non_mapping(data: Mapping[str, Any], path: str) -> bool:
    """True if a section above `path` exists but is not a mapping (reported once already)."""
    obj: Any = data
    for part in path.split(".")[:-1]:
        if part not in obj:
            return False
        obj = obj[part]
        if not isinstance(obj, Mapping):
            return True
    return False


def check_dict(data: Any, schema: Schema | None = None
               ) -> tuple[dict[str, Any], dict[str, Source], list[Problem]]:
    """Parse every field of a (merged) profile mapping; return values, sources and all problems."""
    schema = schema or HARDWARE
    FIELDS = schema.fields  # noqa: N806
    if not isinstance(data, Mapping):
        return {}, {}, [Problem("<file>", f"a mapping of {schema.noun} sections",
                                type(data).__name__)]
    problems = _walk_unknown(data, schema)
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for key in ("name",):
        if not isinstance(data.get(key), str) or not data.get(key):
            problems.append(Problem(key, "a non-empty text", repr(data.get(key))))
    has_energy = isinstance(data.get("energy"), Mapping)
    for path, spec in FIELDS.items():
        optional = spec.endswith("?") or (path.startswith("energy.") and not has_energy)
        kind = spec.rstrip("?")
        present, raw = _leaf(data, path)
        if not present:
            if not optional and not _under_non_mapping(data, path):
                problems.append(Problem(path, f"{_describe(kind)}", "nothing (missing field)"))
            continue
        if kind != "text":
            if not isinstance(raw, Mapping) or "value" not in raw:
                problems.append(Problem(path, "{value: ..., source: ...} or {value: ..., estimate: ...}",
                                        repr(raw)))
                continue
            extra = set(raw) - {"value", "source", "estimate"}
            if extra:
                problems.append(Problem(path, "only value, source and estimate",
                                        f"unknown keys {sorted(extra)}"))
            src, est = raw.get("source"), raw.get("estimate")
            if not src and not est:
                problems.append(Problem(path, "a source or an estimate note", "neither"))
            else:
                text = str(src or est)
                if src and est:
                    text = f"{src}; {est}"
                sources[path] = Source(text, estimate=bool(est))
            raw = raw["value"]
        try:
            values[path] = _parse_value(kind, raw)
        except ValueError as exc:
            problems.append(Problem(path, str(exc), repr(raw)))
    if schema is HARDWARE:
        problems.extend(_check_consistency(values))
    elif schema is RUNTIME:
        problems.extend(_check_runtime_consistency(values))
    return values, sources, problems


# (smaller field, larger field): physical orderings a valid profile must respect
_AT_MOST = (("dram.app_memory", "dram.capacity"), ("gpu.max_alloc", "dram.capacity"),
            ("os.reserved_memory", "dram.capacity"))


def _check_consistency(values: Mapping[str, Any]) -> list[Problem]:
    """Cross-field problems (one app cannot use more memory than the device has)."""
    problems = []
    for small, large in _AT_MOST:
        if small in values and large in values and values[small] > values[large]:
            problems.append(Problem(small, f"at most {large} ({units.format_bytes(values[large])})",
                                    units.format_bytes(values[small])))
    return problems


# (field, its value, the field that value needs): a runtime field whose meaning needs another
_NEEDS = (("load.transform", "gpu", "load.transform_bandwidth"),
          ("load.transform", "cpu", "load.transform_bandwidth"),
          ("init.programs_per", "runtime", "init.program_count"),
          ("init.cached", True, "init.program_load"))


def _check_runtime_consistency(values: Mapping[str, Any]) -> list[Problem]:
    """A runtime field that needs another (a CPU transform needs its bandwidth)."""
    return [Problem(need, f"a value, since {path} is {value!r}", "nothing (missing field)")
            for path, value, need in _NEEDS if values.get(path) == value and need not in values]


def _describe(kind: str) -> str:
    if ":" in kind:
        return _parse_error(kind, None)
    if kind in _PARSERS:
        return _PARSERS[kind][1]
    return {"text": "a text", "bool": "true or false", "count": "a whole number",
            "fraction": "a fraction in (0, 1]", "number": "a number",
            "factor": "a factor of at least 1", "ratio": "a positive number"}[kind]


def _parse_error(kind: str, raw: Any) -> str:
    try:
        _parse_value(kind, raw)
    except ValueError as exc:
        return str(exc)
    return kind


def _build(data: Mapping[str, Any], values: dict[str, Any], sources: dict[str, Source]) -> HardwareProfile:
    def sec(prefix: str) -> dict[str, Any]:
        return {p.split(".", 1)[1]: v for p, v in values.items()
                if p.startswith(prefix + ".") and p.count(".") == 1}

    flops = {p.rsplit(".", 1)[1]: v for p, v in values.items() if p.startswith("gpu.peak_flops.")}
    energy = sec("energy")
    os_spec = sec("os")
    return HardwareProfile(
        name=str(data["name"]),
        description=str(data.get("description", "")),
        storage=StorageSpec(**sec("storage")),
        dram=DramSpec(**sec("dram")),
        gpu=GpuSpec(peak_flops=flops, **sec("gpu")),
        transfer=TransferSpec(**sec("transfer")),
        energy=EnergySpec(**energy) if energy else None,
        sources=sources,
        extends=data.get("extends"),
        os=OsSpec(**os_spec),
    )


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, val in over.items():
        if key in out and isinstance(out[key], Mapping) and isinstance(val, Mapping) \
                and not ("value" in val and "value" in out[key]):
            out[key] = _deep_merge(out[key], val)
        else:
            out[key] = copy.deepcopy(val)
    return out


HARDWARE = Schema("profile", FIELDS, SECTIONS, "profiles")


def builtin_dir(schema: Schema = HARDWARE) -> Path:
    """Folder of the shipped profile YAML files (of `schema`'s kind)."""
    return Path(str(resources.files("hwprofiles") / schema.folder))


def list_profiles(schema: Schema = HARDWARE) -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(p.stem for p in builtin_dir(schema).glob("*.yaml"))


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (PyYAML would
    silently keep the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: the base constructor reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    """Parse YAML like yaml.safe_load, refusing a key given twice in one mapping."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """' at line L, column C: what' for a YAML parse error (one line, no parser internals)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{where}: {what}"


def _read_yaml(path: Path, noun: str = "profile") -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"cannot read {noun} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{noun} file {path} is not UTF-8 text (byte {exc.start}: "
                           f"{exc.reason}); save it as UTF-8 YAML") from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{noun} file {path} is not valid YAML{yaml_problem(exc)}") from None


def _locate(ref: str, base_dir: Path | None = None, schema: Schema = HARDWARE) -> Path:
    """The YAML file a profile reference names: a path (relative to `base_dir` first) or the
    name of a shipped profile."""
    noun = schema.noun
    if not isinstance(ref, str) or not ref.strip():
        raise ProfileError(f"a {noun} reference must be a name or a .yaml path, found {ref!r}")
    path = Path(ref)
    if base_dir is not None and not path.is_absolute() and (base_dir / path).exists() \
            and path.suffix in (".yaml", ".yml"):
        path = base_dir / path
    if path.suffix in (".yaml", ".yml") and path.is_dir():
        raise ProfileError(f"{noun} file {ref} is a folder, not a YAML file")
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        builtin = builtin_dir(schema) / f"{ref}.yaml"
        if "/" in ref or not builtin.exists():
            if path.suffix in (".yaml", ".yml"):
                raise ProfileError(f"{noun} file {ref} does not exist")
            raise ProfileError(
                f"unknown {noun} {ref!r}; valid {noun}s: {', '.join(list_profiles(schema))} "
                "(or a path to a .yaml file)")
        path = builtin
    return path


def _name_problems(path: Path, data: Mapping[str, Any], schema: Schema = HARDWARE
                   ) -> list[Problem]:
    """A user file must not carry the name of a shipped profile: its results would be labelled
    as that profile's (a copy, or `extends` without a `name:` of its own)."""
    name = data.get("name")
    shipped = list_profiles(schema)
    if not isinstance(name, str) or name not in shipped:
        return []
    if path.resolve() == (builtin_dir(schema) / f"{name}.yaml").resolve():
        return []
    own = path.stem if path.stem not in shipped else f"my-{path.stem}"
    return [Problem("name", f"a name of its own (this file is not the shipped {schema.noun} "
                            f"{name!r}; e.g. name: {own})", repr(name))]


def _resolve(ref: str, seen: tuple[str, ...] = (), base_dir: Path | None = None,
             schema: Schema = HARDWARE) -> dict[str, Any]:
    """Raw merged mapping of a profile name or file, following `extends` chains; a relative
    file path in `extends` is looked up next to the file that names it first."""
    noun = schema.noun
    path = _locate(ref, base_dir, schema)
    key = str(path.resolve())
    if key in seen:
        raise ProfileError(f"{noun} {ref!r} extends itself through {' -> '.join(seen)}")
    data = _read_yaml(path, noun)
    if not isinstance(data, Mapping):
        raise ProfileError(f"{noun} file {path} must hold a mapping, found {type(data).__name__}")
    parent = data.get("extends")
    if parent is not None and (not isinstance(parent, str) or not parent.strip()):
        raise ProfileError(f"{noun} file {path}: extends: expected the name or path of one "
                           f"{noun}, found {parent!r}")
    if parent:
        base = _resolve(parent, (*seen, key), path.parent, schema)
        base.pop("description", None)
        merged = _deep_merge(base, {k: v for k, v in data.items() if k != "extends"})
        merged["extends"] = parent
        return merged
    return dict(data)


def apply_overrides(data: dict[str, Any], overrides: Iterable[str],
                    schema: Schema = HARDWARE) -> dict[str, Any]:
    """Apply `key=value` overrides ('storage.read_bandwidth=2.1GB/s') to a raw profile mapping;
    the overridden field's source says it was set by the user."""
    fields = schema.fields
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ProfileError(f"override {item!r} must look like key=value, e.g. "
                               "storage.read_bandwidth=2.1GB/s")
        path, raw = (s.strip() for s in item.split("=", 1))
        if path not in fields:
            raise ProfileError(f"unknown {schema.noun} field {path!r} in override; valid fields: "
                               f"{', '.join(fields)}")
        try:
            value: Any = yaml.safe_load(raw) if raw else raw
        except yaml.YAMLError:
            value = raw  # not a YAML scalar: the field's check names what was expected
        node = out
        parts = path.split(".")
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ProfileError(f"cannot override {path}: {'.'.join(parts[:i + 1])} in the "
                                   f"{schema.noun} is not a mapping of fields")
        if fields[path] == "text":
            node[parts[-1]] = str(value)
        else:
            node[parts[-1]] = {"value": value, "source": f"override --set {path}={raw}"}
    return out


def load_checked(ref: str, overrides: Iterable[str] = (), schema: Schema = HARDWARE
                 ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Source]]:
    """The raw mapping, parsed values and sources of a profile of `schema`'s kind; raises
    ProfileError listing every problem."""
    overrides = list(overrides)
    data = _resolve(ref, schema=schema)
    problems = _name_problems(_locate(ref, schema=schema), data, schema)
    if overrides:
        data = apply_overrides(data, overrides, schema)
        data["name"] = f"{data.get('name', ref)}+" + ",".join(overrides)
    values, sources, more = check_dict(data, schema)
    problems += more
    if problems:
        raise ProfileError(f"{schema.noun} {ref!r} has {len(problems)} problem(s):\n  - "
                           + "\n  - ".join(map(str, problems)), [str(p) for p in problems])
    return data, values, sources


def load_profile(ref: str, overrides: Iterable[str] = ()) -> HardwareProfile:
    """Load a shipped profile by name or a YAML file by path, applying `--set` style overrides."""
    return _build(*load_checked(ref, overrides))


def check_file(path: str, schema: Schema = HARDWARE) -> list[str]:
    """Every problem of a profile file (empty list = valid), `extends` resolved."""
    try:
        data = _resolve(path, schema=schema)
        problems = _name_problems(_locate(path, schema=schema), data, schema)
    except ProfileError as exc:
        return [str(exc)]
    return [str(p) for p in problems + check_dict(data, schema)[2]]


RUNTIME = Schema("runtime", RUNTIME_FIELDS, RUNTIME_SECTIONS, "runtimes")
DEFAULT_RUNTIME = "ideal"


def list_runtimes() -> list[str]:
    """Names of the shipped runtime profiles, sorted."""
    return list_profiles(RUNTIME)


def load_runtime(ref: str = DEFAULT_RUNTIME, overrides: Iterable[str] = ()) -> RuntimeProfile:
    """Load a shipped runtime profile by name or a YAML file by path (with `--set` overrides)."""
    return build_runtime(*load_checked(ref, overrides, RUNTIME))


def check_runtime_file(path: str) -> list[str]:
    """Every problem of a runtime profile file (empty list = valid)."""
    return check_file(path, RUNTIME)
