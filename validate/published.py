"""The published-measurements check: simulate every row of a table of published on-device
measurements and report predicted vs published, for `fit` and `check` rows apart.

Each row names a device profile, a runtime profile, the model(s), the dtype, a scenario and a
metric. Scenarios:
- `cold`: one inference from a cold start (preload): init, load (read + parse), transform,
  program build, exec, total, peak and average memory;
- `warm`: the kernels of one inference with every weight already resident (benchmark loops);
- `prefill` (prompt P): P / the time of the prompt's forward pass, weights resident (a runtime
  that records command buffers per input shape records them for it: the run before it, a
  runner's warm-up decode, had another shape);
- `decode` (prompt P, tokens N): tokens per second over N decode steps, each attending to the
  context so far (timed at the first, middle and last context and averaged; the first step's
  re-recording after the prompt, where the runtime has one, counts once over the N);
- `generate`: prefill + N decode steps, in ms (load excluded);
- `storage`: the storage model's throughput at one request size.
`fit_runtime` fits named runtime-profile numbers to a runtime's `fit` rows only (least squares
on log ratios); `check` rows never set a number.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from validate.errors import ValidateError

ROLES = ("fit", "check")
SCENARIOS = ("cold", "warm", "prefill", "decode", "generate", "storage")
# metric -> (scenario kinds that produce it, unit it is published in)
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "init_ms": (("cold",), "ms"), "load_ms": (("cold",), "ms"),
    "transform_ms": (("cold",), "ms"), "program_build_ms": (("cold",), "ms"),
    "exec_ms": (("cold", "warm"), "ms"), "total_ms": (("cold", "generate"), "ms"),
    "peak_mb": (("cold",), "MB"), "avg_mb": (("cold",), "MB"),
    "prefill_tok_s": (("prefill",), "tok/s"), "decode_tok_s": (("decode",), "tok/s"),
    "storage_read_mb_s": (("storage",), "MB/s"),
}
REQUIRED = ("id", "role", "metric", "value", "source")


@dataclass(frozen=True)
class Row:
    """One published measurement and how to simulate it."""

    id: str
    role: str
    metric: str
    value: float
    source: str
    profile: str | None = None
    runtime: str | None = None
    runtime_set: tuple[str, ...] = ()
    models: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    dtype: str | None = None
    scenario: tuple[tuple[str, Any], ...] = ()
    simulate: bool = True
    why: str = ""
    bound: str | None = None
    device: str = ""
    assumption: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def kind(self) -> str:
        return dict(self.scenario).get("kind", "")

    @property
    def model_label(self) -> str:
        return "+".join(m for m, _ in self.models) or "-"


def _freeze(obj: Any) -> Any:
    if isinstance(obj, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in obj.items()))
    if isinstance(obj, list):
        return tuple(_freeze(v) for v in obj)
    return obj


def _row(data: Any, where: str) -> Row:
    """A checked Row from one YAML mapping; ValidateError names the row and the field."""
    if not isinstance(data, dict):
        raise ValidateError(f"{where}: expected a mapping, found {type(data).__name__}")
    rid = data.get("id", where)
    missing = [k for k in REQUIRED if data.get(k) in (None, "")]
    if missing:
        raise ValidateError(f"row {rid}: missing field(s) {', '.join(missing)}")
    if data["role"] not in ROLES:
        raise ValidateError(f"row {rid}: role must be one of {', '.join(ROLES)}, found "
                            f"{data['role']!r}")
    value = data["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value <= 0:
        raise ValidateError(f"row {rid}: value must be a positive number, found {value!r}")
    simulate = data.get("simulate", True) is not False
    scenario = data.get("scenario") or {}
    if simulate:
        if data["metric"] not in METRICS:
            raise ValidateError(f"row {rid}: unknown metric {data['metric']!r}; valid metrics: "
                                f"{', '.join(METRICS)} (or `simulate: false` with `why`)")
        kinds, _ = METRICS[data["metric"]]
        if not isinstance(scenario, dict) or scenario.get("kind") not in kinds:
            raise ValidateError(f"row {rid}: metric {data['metric']} needs a scenario of kind "
                                f"{' or '.join(kinds)}, found {scenario!r}")
        if not data.get("profile"):
            raise ValidateError(f"row {rid}: a simulated row needs a `profile`")
        if scenario.get("kind") != "storage" and not data.get("models"):
            raise ValidateError(f"row {rid}: a simulated row needs `models`")
    elif not data.get("why"):
        raise ValidateError(f"row {rid}: `simulate: false` needs a `why`")
    sets = data.get("runtime_set") or {}
    models = []
    for item in data.get("models") or []:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], dict)):
            raise ValidateError(f"row {rid}: each entry of `models` must be [name, {{args}}], "
                                f"found {item!r}")
        models.append((item[0], _freeze(item[1])))
    return Row(id=str(rid), role=data["role"], metric=str(data["metric"]), value=float(value),
               source=str(data["source"]), profile=data.get("profile"),
               runtime=data.get("runtime"),
               runtime_set=tuple(f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
                                 for k, v in sorted(sets.items())),
               models=tuple(models), dtype=data.get("dtype"), scenario=_freeze(scenario),
               simulate=simulate, why=str(data.get("why", "")), bound=data.get("bound"),
               device=str(data.get("device", "")), assumption=str(data.get("assumption", "")),
               raw=data)


def default_table() -> Path:
    """The table shipped with weightstream (validate/data/published.yaml)."""
    return Path(str(resources.files("validate") / "data" / "published.yaml"))


def load_table(path: str | Path | None = None) -> list[Row]:
    """Every row of a published-measurements YAML table, checked."""
    path = Path(path) if path is not None else default_table()
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValidateError(f"cannot read published table {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValidateError(f"published table {path} is not valid YAML: {exc}") from None
    if not isinstance(data, list) or not data:
        raise ValidateError(f"published table {path} must be a non-empty list of rows")
    rows = [_row(d, f"row {i}") for i, d in enumerate(data)]
    ids = [r.id for r in rows]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValidateError(f"published table {path}: duplicate row id(s) {', '.join(dup)}")
    return rows


# --- simulation ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """A row with its prediction: `ratio` = predicted / published (None when not simulated)."""

    row: Row
    predicted: float | None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.predicted is None:
            return None
        r = self.predicted / self.row.value
        if self.row.bound == "upper":  # "under X": anything below X agrees
            return max(r, 1.0)
        return r

    @property
    def error(self) -> float | None:
        """Relative error (predicted / published - 1)."""
        return None if self.ratio is None else self.ratio - 1.0


RuntimeLoader = Callable[[str, tuple[str, ...]], Any]


@cache
def _inherited(name: str) -> dict[str, frozenset[str]]:
    """For each runtime `name` extends (directly or not): the fields `name` inherits from it
    unchanged (a variant that sets a field itself keeps its own value)."""
    from hwprofiles.loader import RUNTIME, load_runtime
    from hwprofiles.runtime import runtime_value

    out: dict[str, frozenset[str]] = {}
    rt = load_runtime(name)
    parent = rt.extends
    while parent and parent not in out:
        base = load_runtime(parent)
        out[parent] = frozenset(p for p in RUNTIME.fields
                                if runtime_value(rt, p) == runtime_value(base, p))
        parent = base.extends
    return out


def family_of(name: str) -> tuple[str, ...]:
    """`name` and every runtime it extends, nearest first."""
    return (name, *_inherited(name))


def _runtime_loader(overrides: dict[str, dict[str, Any]] | None) -> RuntimeLoader:
    """load_runtime with extra `--set` style values per runtime name (for fitting); values set
    on a runtime also reach the variants that extend it and inherit that field."""
    from hwprofiles.loader import load_runtime

    extra = overrides or {}

    def load(name: str, sets: tuple[str, ...]) -> Any:
        values = dict(extra.get(name, {}))
        if extra:
            for parent, fields in _inherited(name).items():
                for k, v in extra.get(parent, {}).items():
                    if k in fields:
                        values.setdefault(k, v)
        mine = tuple(f"{k}={v}" for k, v in sorted(values.items()))
        return load_runtime(name, (*mine, *sets))

    return load


@cache
def _model(name: str, dtype: str, args: tuple[tuple[str, Any], ...]):
    from workloads.zoo import get_model

    return get_model(name, dtype, **dict(args))


def _workload(row: Row, steady: bool = False, **override: Any):
    """The row's models as one workload; `steady`: a run like the one before it (a decode step,
    a benchmark loop), so a runtime that records command buffers per shape records none."""
    from workloads.workload import Invocation, Workload

    invs = []
    for name, args in row.models:
        m = _model(name, row.dtype or "fp16", _freeze({**dict(args), **override}))
        invs.append(Invocation(m, name, False if steady else None))
    return Workload(row.model_label, tuple(invs))


def _run(workload: Any, profile: Any, runtime: Any) -> Any:
    from sim import plan, simulate

    sched = plan("preload", workload, profile, None, runtime)
    return simulate(sched, profile, runtime=runtime, record_trace=False).metrics


def _decode_step_s(row: Row, profile: Any, runtime: Any, context: int) -> float:
    return _run(_workload(row, steady=True, tokens=1, past=context), profile, runtime).exec_s


def scenario_metrics(row: Row, profile: Any, runtime: Any) -> dict[str, float]:
    """Every metric the row's scenario produces, in the units the table uses."""
    sc = dict(row.scenario)
    kind = sc["kind"]
    if kind == "storage":
        from hwprofiles.storage import throughput

        return {"storage_read_mb_s": throughput(profile.storage, int(sc["request_bytes"])) / 1e6}
    if kind in ("cold", "warm"):
        m = _run(_workload(row, steady=kind == "warm"), profile, runtime)
        if m.memory_outcome == "killed":
            raise ValidateError(m.error or "killed")
        b = m.init_breakdown_s
        return {"init_ms": 1e3 * m.init_s, "exec_ms": 1e3 * m.exec_s,
                "total_ms": 1e3 * (m.init_s + m.exec_s),
                "load_ms": 1e3 * (b.get("read", 0.0) + b.get("parse", 0.0)),
                "transform_ms": 1e3 * b.get("transform", 0.0),
                "program_build_ms": 1e3 * b.get("build", 0.0),
                "peak_mb": m.peak_memory_bytes / 1e6, "avg_mb": m.avg_memory_bytes / 1e6}
    prompt = int(sc.get("prompt", 0))
    out: dict[str, float] = {}
    prefill_s = 0.0
    if kind in ("prefill", "generate") and prompt > 0:
        prefill_s = _run(_workload(row, tokens=prompt), profile, runtime).exec_s
        out["prefill_tok_s"] = prompt / prefill_s
    if kind in ("decode", "generate"):
        n = int(sc["tokens"])
        ctx = sorted({prompt, prompt + (n - 1) // 2, prompt + n - 1})
        steps = [_decode_step_s(row, profile, runtime, c) for c in ctx]
        # trapezoid over the sampled contexts: step time grows linearly with the context
        mean = steps[0] if len(steps) == 1 else (
            sum((a + b) * (y - x) for a, b, x, y in zip(steps, steps[1:], ctx, ctx[1:],
                                                        strict=False)) / 2 / (ctx[-1] - ctx[0]))
        if runtime is not None and runtime.record_per_kernel:
            first = _run(_workload(row, tokens=1, past=prompt), profile, runtime).exec_s
            mean += (first - steps[0]) / n
        out["decode_tok_s"] = 1.0 / mean
        out["total_ms"] = 1e3 * (prefill_s + n * mean)
    return out


def evaluate(rows: Iterable[Row], runtimes: dict[str, dict[str, Any]] | None = None
             ) -> list[Outcome]:
    """Predict every row (`runtimes`: extra field values per runtime name, for fitting)."""
    from hwprofiles.loader import ProfileError, load_profile
    from workloads.model import WorkloadError

    load_rt = _runtime_loader(runtimes)
    memo: dict[tuple, dict[str, float]] = {}
    profiles = cache(load_profile)
    out = []
    for row in rows:
        if not row.simulate:
            out.append(Outcome(row, None, f"not simulated: {row.why}"))
            continue
        key = (row.profile, row.runtime, row.runtime_set, row.models, row.dtype, row.scenario)
        try:
            if key not in memo:
                rt = load_rt(row.runtime or "ideal", row.runtime_set)
                memo[key] = scenario_metrics(row, profiles(row.profile), rt)
            out.append(Outcome(row, memo[key][row.metric]))
        except (ProfileError, WorkloadError, ValidateError) as exc:
            out.append(Outcome(row, None, f"failed: {exc}"))
    return out


# --- summaries ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    """Agreement over one role's simulated rows."""

    role: str
    rows: int
    simulated: int
    median_abs_error: float | None
    within_25: float | None  # share of rows within +-25 %
    within_2x: float | None  # share of rows within a factor of 2

    def line(self) -> str:
        if not self.simulated:
            return f"{self.role}: {self.rows} rows, none simulated"
        return (f"{self.role:5s} {self.simulated:3d} of {self.rows:3d} rows simulated: median "
                f"|error| {self.median_abs_error:.1%}, within 25% {self.within_25:.0%}, "
                f"within 2x {self.within_2x:.0%}")


def summarise(outcomes: Sequence[Outcome], role: str) -> Summary:
    mine = [o for o in outcomes if o.row.role == role]
    sim = [o for o in mine if o.ratio is not None]
    if not sim:
        return Summary(role, len(mine), 0, None, None, None)
    errs = [abs(o.error) for o in sim]  # type: ignore[arg-type]
    return Summary(role, len(mine), len(sim), statistics.median(errs),
                   sum(e <= 0.25 for e in errs) / len(sim),
                   sum(0.5 <= o.ratio <= 2.0 for o in sim) / len(sim))  # type: ignore[operator]


def plot(outcomes: Sequence[Outcome], path: str | Path) -> Path:
    """Predicted vs published on log-log axes, one marker per role, x=y and 2x bands."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.2, 6.0))
    ax = fig.add_subplot(1, 1, 1)
    sim = [o for o in outcomes if o.predicted is not None]
    lo = min([o.row.value for o in sim] + [o.predicted for o in sim], default=1.0)
    hi = max([o.row.value for o in sim] + [o.predicted for o in sim], default=10.0)
    lo, hi = lo / 2, hi * 2
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="predicted = published")
    for f, style in ((2.0, ":"), (1.25, "--")):
        ax.plot([lo, hi], [lo * f, hi * f], color="grey", lw=0.8, ls=style)
        ax.plot([lo, hi], [lo / f, hi / f], color="grey", lw=0.8, ls=style,
                label=f"x{f:g}" if f == 2.0 else "+-25%")
    for role, marker, color in (("fit", "o", "tab:blue"), ("check", "s", "tab:red")):
        pts = [o for o in sim if o.row.role == role]
        ax.scatter([o.row.value for o in pts], [o.predicted for o in pts], marker=marker,
                   color=color, s=22, alpha=0.8, label=f"{role} ({len(pts)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("published (ms, MB, tok/s, MB/s as the row says)", fontsize=8)
    ax.set_ylabel("weightstream prediction", fontsize=8)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("published phone measurements vs weightstream", fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    return path


# --- fitting -------------------------------------------------------------------------------
def fit_runtime(rows: Sequence[Row], runtime: str, params: Sequence[str],
                match: str | None = None) -> tuple[dict[str, float], list[Outcome]]:
    """Fit `params` (runtime fields holding numbers, e.g. 'efficiency.gemv', 'load.parse_bandwidth';
    'a,b' ties several fields to one value; 'VARIANT:field' is a field of a runtime that extends
    `runtime`, fitted jointly) to the `fit` rows of `runtime` and of the variants that extend
    it (optionally only ids matching `match`): least squares on log(predicted / published),
    searched in log space. A field set on `runtime` reaches the variants that inherit it.
    Returns the values and the fitted rows."""
    try:
        from scipy.optimize import minimize
    except ImportError:
        raise ValidateError("fitting needs SciPy: pip install 'weightstream[validate]'") from None

    from hwprofiles.loader import RUNTIME, load_runtime
    from hwprofiles.runtime import runtime_value

    try:
        pattern = None if match is None else re.compile(match)
    except re.error as exc:
        raise ValidateError(f"--rows {match!r} is not a regular expression: {exc}") from None
    mine = [r for r in rows if r.role == "fit" and r.simulate and r.runtime
            and runtime in family_of(r.runtime) and (pattern is None or pattern.search(r.id))]
    if not mine:
        have = sorted({r.runtime for r in rows if r.role == "fit" and r.simulate and r.runtime})
        raise ValidateError(f"no fit rows for runtime {runtime!r}"
                            + (f" matching {match!r}" if match else "")
                            + f"; runtimes with fit rows: {', '.join(have)}")
    variants = sorted({r.runtime for r in mine if r.runtime != runtime})
    groups: list[tuple[tuple[str, str], ...]] = []
    for spec in params:
        group = []
        for item in (p.strip() for p in spec.split(",") if p.strip()):
            owner, _, field = item.rpartition(":")
            owner = owner or runtime
            if owner != runtime and owner not in variants:
                raise ValidateError(f"--param {item!r}: {owner!r} is not a runtime whose fit rows "
                                    f"this fit uses; use {runtime!r}"
                                    + (f" or one of {', '.join(variants)}" if variants else ""))
            if field not in RUNTIME.fields:
                raise ValidateError(f"unknown runtime field {field!r}; valid fields: "
                                    f"{', '.join(RUNTIME.fields)}")
            group.append((owner, field))
        groups.append(tuple(group))
    start = []
    for group in groups:
        v = runtime_value(load_runtime(group[0][0]), group[0][1])
        start.append(math.log(float(v) if v else 1.0))

    def values(x: Sequence[float]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for g, v in zip(groups, x, strict=True):
            for owner, field in g:
                out.setdefault(owner, {})[field] = (
                    f"{math.exp(v)}{_unit_of(RUNTIME.fields[field])}")
        return out

    def loss(x: Sequence[float]) -> float:
        outs = evaluate(mine, values(x))
        return sum(math.log(o.ratio) ** 2 if o.ratio else 25.0 for o in outs)

    # the first simplex spans a factor of 2 on every field (the default step is tiny at log 1 = 0)
    simplex = [list(start)] + [[s + (math.log(2.0) if i == j else 0.0)
                                for j, s in enumerate(start)] for i in range(len(start))]
    res = minimize(loss, start, method="Nelder-Mead",
                   options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 200 * len(start),
                            "initial_simplex": simplex})
    fitted = {",".join(f if o == runtime else f"{o}:{f}" for o, f in g): math.exp(v)
              for g, v in zip(groups, res.x, strict=True)}
    return fitted, evaluate(mine, values(res.x))


def _unit_of(kind: str) -> str:
    """The unit suffix that writes an SI value back as a field of `kind`."""
    return {"bandwidth": " B/s", "time": " s"}.get(kind.rstrip("?"), "")
