"""`weightstream report`: one self-contained interactive HTML page of a results folder.

Plotly figures (plotly.js inlined, so the file opens offline): latency/budget tradeoff curves,
every feasible run against its peak memory with the Pareto front, speedup and memory reduction
versus preload at each policy's knee, tune convergence (best found vs evaluations, for the
search and the grid) where the results come from `tune`, and the Gantt timeline of chosen runs
(simulated again from their stored inputs). Hovering a point shows the run's full
configuration; filters by model, profile, policy, precision and runtime hide the other traces
and table rows; the table at the bottom lists every run of the results.
"""

from __future__ import annotations

import html
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.errors import ExperimentError
from experiments.store import load_results
from experiments.summary import feasible_rows, pareto_front, summarise
from hwprofiles.units import format_bytes, format_time

MIB = 2**20
FILTERS = ("model", "profile", "policy", "dtype", "runtime")
LANES = ("storage", "copy", "transform", "gpu")
LANE_COLORS = {"storage": "#4c72b0", "copy": "#dd8452", "transform": "#c44e52", "gpu": "#55a868"}
MEMORY = ("weights", "staging", "activations", "workspace", "kv")
POLICY_COLORS = {"preload": "#7f7f7f", "sequential": "#1f77b4", "pipeline": "#ff7f0e",
                 "flashmem": "#2ca02c"}
EXTRA = ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
MAX_GANTTS = 6
MAX_INTERVALS = 20000  # per Gantt: larger traces keep the longest intervals


def _go():
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ExperimentError("weightstream report needs Plotly: pip install "
                              "'weightstream[tune]' (or plotly)") from None
    return go


def _none(v: Any) -> bool:
    return v is None or (not isinstance(v, list | tuple | np.ndarray) and pd.isna(v))


def _fmt(col: str, v: Any) -> str:
    if _none(v):
        return "-"
    if col.endswith("_s"):
        return format_time(float(v))
    if col.endswith("_bytes") or col.endswith("_read"):
        return format_bytes(float(v))
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


CONFIG_COLUMNS = ("key", "model", "profile", "policy", "dtype", "budget_bytes", "runtime",
                  "profile_overrides", "policy_options", "status", "latency_s",
                  "cold_latency_s", "warm_latency_s", "peak_memory_bytes", "avg_memory_bytes",
                  "weight_bytes", "flash_bytes_read", "gpu_stall_s", "energy_j", "ppl_delta",
                  "search", "trial", "error")


def hover_text(r: pd.Series) -> str:
    """Every input and headline result of one run, one per line (shown on hover)."""
    lines = []
    for col in CONFIG_COLUMNS:
        if col not in r.index:
            continue
        v = r[col]
        if col == "budget_bytes" and _none(v):
            text = "unlimited"
        elif _none(v) or (isinstance(v, str) and v in ("[]", "{}", "")):
            continue
        else:
            text = _fmt(col, v)
        lines.append(f"{col}: {html.escape(text)}")
    return "<br>".join(lines)


class Colors:
    """A stable colour per policy label (built-in policies keep their plot colours)."""

    def __init__(self, policies: list[str], names: dict[str, str]):
        extra = iter(EXTRA * 8)
        self.map = {p: POLICY_COLORS.get(p) or POLICY_COLORS.get(names.get(p, "")) or next(extra)
                    for p in policies}

    def __call__(self, policy: str) -> str:
        return self.map.get(policy, "#1f77b4")


DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _dashes(df: pd.DataFrame) -> dict[str, str]:
    """A line dash per precision (colour is the policy)."""
    return {d: DASHES[i % len(DASHES)] for i, d in enumerate(dict.fromkeys(df["dtype"]))}


def _first(g: pd.DataFrame, col: str) -> Any:
    return g[col].iloc[0] if col in g and len(g) else None


def _meta(**kw: Any) -> dict[str, str]:
    return {k: str(v) for k, v in kw.items() if v is not None}


def fig_tradeoff(ok: pd.DataFrame, colors: Colors) -> Any:
    """Latency vs memory budget (unlimited runs at the memory they used), one line per model,
    profile, policy and precision."""
    go = _go()
    fig = go.Figure()
    dash = _dashes(ok)
    for (m, p, pol, dt), g in ok.groupby(["model", "profile", "policy", "dtype"], sort=False):
        g = g.sort_values("eff_budget")
        fig.add_trace(go.Scatter(
            x=g["eff_budget"] / MIB, y=g["latency_s"] * 1e3, mode="lines+markers",
            name=f"{pol} ({dt}) {m} @ {p}", line={"color": colors(pol), "dash": dash[dt]},
            customdata=[hover_text(r) for _, r in g.iterrows()],
            hovertemplate="%{customdata}<extra></extra>",
            meta=_meta(model=m, profile=p, policy=pol, dtype=dt, runtime=_first(g, "runtime"))))
    fig.update_layout(title="latency vs memory budget", xaxis_title="memory budget (MiB)",
                      yaxis_title="latency (ms)", xaxis_type="log", yaxis_type="log")
    return fig


def fig_pareto(ok: pd.DataFrame, colors: Colors) -> Any:
    """Every feasible run (latency vs peak memory) with the Pareto front of each model and
    profile."""
    go = _go()
    fig = go.Figure()
    symbols = ("circle", "diamond", "square", "triangle-up", "x", "star")
    sym = {d: symbols[i % len(symbols)] for i, d in enumerate(dict.fromkeys(ok["dtype"]))}
    for (m, p, pol, dt), g in ok.groupby(["model", "profile", "policy", "dtype"], sort=False):
        fig.add_trace(go.Scatter(
            x=g["peak_memory_bytes"] / MIB, y=g["latency_s"] * 1e3, mode="markers",
            name=f"{pol} ({dt}) {m} @ {p}",
            marker={"color": colors(pol), "size": 8, "symbol": sym[dt]},
            customdata=[hover_text(r) for _, r in g.iterrows()],
            hovertemplate="%{customdata}<extra></extra>",
            meta=_meta(model=m, profile=p, policy=pol, dtype=dt, runtime=_first(g, "runtime"))))
    for (m, p), g in ok.groupby(["model", "profile"], sort=False):
        front = pareto_front(g, "peak_memory_bytes", "latency_s")
        fig.add_trace(go.Scatter(
            x=front["peak_memory_bytes"] / MIB, y=front["latency_s"] * 1e3, mode="lines",
            line={"color": "black", "shape": "hv", "width": 1}, name=f"Pareto front {m} @ {p}",
            customdata=[hover_text(r) for _, r in front.iterrows()],
            hovertemplate="%{customdata}<extra></extra>", meta=_meta(model=m, profile=p)))
    fig.update_layout(title="feasible runs and Pareto fronts", xaxis_title="peak memory (MiB)",
                      yaxis_title="latency (ms)", xaxis_type="log", yaxis_type="log")
    return fig


def fig_speedup(df: pd.DataFrame, colors: Colors) -> Any | None:
    """Speedup and memory reduction versus preload at each policy's knee."""
    go = _go()
    from plotly.subplots import make_subplots

    s = summarise(df)
    s = s[(s["policy_name"] != "preload") & s["speedup"].notna()]
    if s.empty:
        return None
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("speedup vs preload (x)", "memory reduction vs preload (x)"))
    for row, col in ((1, "speedup"), (2, "memory_reduction")):
        for pol, g in s.groupby("policy", sort=False):
            for _, r in g.iterrows():
                text = (f"{r['model']} @ {r['profile']} ({r['dtype']})<br>policy {pol}<br>"
                        f"{col} {r[col]:.2f}x at knee budget "
                        f"{format_bytes(r['knee_budget_bytes'])}<br>knee latency "
                        f"{format_time(r['knee_latency_s'])}, preload "
                        f"{format_time(r['preload_latency_s'])}")
                fig.add_trace(go.Bar(
                    x=[f"{r['model']}<br>{r['profile']}<br>{r['dtype']}"], y=[r[col]],
                    name=str(pol), marker_color=colors(str(pol)), showlegend=False,
                    hovertext=[text], hovertemplate="%{hovertext}<extra></extra>",
                    offsetgroup=str(pol),
                    meta=_meta(model=r["model"], profile=r["profile"], policy=pol,
                               dtype=r["dtype"])), row=row, col=1)
    fig.update_layout(title="at each policy's knee (smallest budget within 10% of its best "
                            "latency)", barmode="group", height=620)
    return fig


def fig_convergence(df: pd.DataFrame) -> Any | None:
    """Tune results: the best feasible value of each tune's first objective found so far,
    against evaluations, for the search and the grid."""
    if "search" not in df or "evaluation" not in df:
        return None
    go = _go()
    fig = go.Figure()
    tunes = df.dropna(subset=["search"])
    units = set()
    for (tune, search), g in tunes.groupby(["tune", "search"], sort=False):
        g = g.sort_values("evaluation")
        metric, direction = str(g["tune_objective"].iloc[0]), str(g["tune_direction"].iloc[0])
        met = g["constraints_met"].astype(bool) & (g["status"] == "ok")
        v = g[metric].where(met).astype(float)
        best = (v.cummin() if direction == "minimize" else v.cummax()).ffill()
        scale, unit = (1e3, "ms") if metric.endswith("_s") else \
            (1 / MIB, "MiB") if metric.endswith("_bytes") else (1.0, "")
        units.add(f"{direction} {metric}" + (f" ({unit})" if unit else ""))
        fig.add_trace(go.Scatter(
            x=g["evaluation"], y=best * scale, mode="lines",
            line={"shape": "hv", "dash": "dash" if search == "grid" else "solid"},
            name=f"{tune}: {search}", customdata=[hover_text(r) for _, r in g.iterrows()],
            hovertemplate="evaluation %{x}: best so far %{y:.4g}<br>this trial:<br>"
                          "%{customdata}<extra></extra>", meta=_meta()))
    fig.update_layout(title="tune: best feasible value found vs evaluations (equal budgets)",
                      xaxis_title="evaluations", yaxis_title=", ".join(sorted(units)))
    return fig


def fig_gantt(trace: Any, title: str) -> Any:
    """Gantt timeline of one simulated run: a lane per resource, memory in use below."""
    go = _go()
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38],
                        vertical_spacing=0.06)
    intervals = [i for i in trace.intervals if i.end > i.start]
    if len(intervals) > MAX_INTERVALS:
        intervals = sorted(intervals, key=lambda i: i.start - i.end)[:MAX_INTERVALS]
    for lane in LANES:
        iv = [i for i in intervals if i.resource == lane]
        if not iv:
            continue
        fig.add_trace(go.Bar(
            y=[lane] * len(iv), x=[(i.end - i.start) * 1e3 for i in iv],
            base=[i.start * 1e3 for i in iv], orientation="h", name=lane,
            marker_color=LANE_COLORS[lane], marker_line_width=0,
            hovertext=[f"{i.name} ({i.invocation})<br>{(i.end - i.start) * 1e3:.3f} ms"
                       + (f", {format_bytes(i.bytes)}" if i.bytes else "") for i in iv],
            hovertemplate="%{hovertext}<extra></extra>"), row=1, col=1)
    if trace.memory:
        arr = np.asarray(trace.memory, dtype=float)
        for k, cat in enumerate(MEMORY):
            fig.add_trace(go.Scatter(x=arr[:, 0] * 1e3, y=arr[:, 2 + k] / MIB, name=cat,
                                     stackgroup="mem", line={"shape": "hv", "width": 0.5},
                                     hovertemplate=f"{cat} %{{y:.2f}} MiB<extra></extra>"),
                          row=2, col=1)
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(LANES)), row=1, col=1)
    fig.update_yaxes(title_text="memory (MiB)", row=2, col=1)
    fig.update_xaxes(title_text="time (ms)", row=2, col=1)
    fig.update_layout(title=title, barmode="overlay", height=520)
    return fig


def gantt_runs(df: pd.DataFrame, keys: list[str] | None) -> pd.DataFrame:
    """Runs to draw: the given keys, else the fastest feasible run of each policy (tune: the
    best trial of each search), at most MAX_GANTTS."""
    if keys:
        missing = [k for k in keys if k not in set(df["key"])]
        if missing:
            raise ExperimentError(f"no run with key {missing[0]!r} in the results; keys look "
                                  f"like {df['key'].iloc[0]!r} (see the table in the report)")
        return df[df["key"].isin(keys)]
    ok = feasible_rows(df)
    if "constraints_met" in ok:
        ok = ok[ok["constraints_met"].astype(bool)]
    if ok.empty:
        return ok
    by = "search" if "search" in ok and ok["search"].notna().any() else "policy"
    return (ok.sort_values("latency_s", kind="stable").groupby(by, sort=False).head(1)
            .head(MAX_GANTTS))


def simulate_row(row: pd.Series) -> tuple[Any, Any]:
    """Plan and simulate a stored run again, with its trace: (metrics, trace)."""
    from experiments.resolve import load_profile_ref, load_runtime_ref, load_workload
    from experiments.runs import run_of_row
    from sim import plan, simulate

    run = run_of_row(row)
    wl = load_workload(run.workload, run.dtype)
    prof = load_profile_ref(run.profile)
    rt = load_runtime_ref(run.runtime)
    sched = plan(run.policy.name, wl, prof, run.budget_bytes, rt, **dict(run.policy.options))
    res = simulate(sched, prof, budget=run.budget_bytes, runtime=rt)
    return res.metrics, res.trace


def _table(df: pd.DataFrame) -> str:
    cols = [c for c in ("key", "model", "profile", "policy", "dtype", "budget_bytes", "status",
                        "latency_s", "peak_memory_bytes", "flash_bytes_read", "search", "trial")
            if c in df]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    inputs = ("key", "model", "profile", "policy", "dtype", "budget_bytes", "status", "search",
              "trial")
    rows = []
    for _, r in df.iterrows():
        attrs = " ".join(f'data-{f}="{html.escape(str(r[f]))}"' for f in FILTERS if f in r)
        ok = r.get("status", "ok") == "ok"

        def cell(c: str, r: pd.Series = r, ok: bool = ok) -> str:
            if c == "budget_bytes" and _none(r[c]):
                return "unlimited"
            return _fmt(c, r[c]) if ok or c in inputs else "-"

        cells = "".join(f"<td>{html.escape(cell(c))}</td>" for c in cols)
        rows.append(f'<tr class="run" data-key="{html.escape(str(r["key"]))}" {attrs} '
                    f'title="{html.escape(hover_text(r).replace("<br>", chr(10)))}">{cells}</tr>')
    return f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _filters(df: pd.DataFrame) -> str:
    out = []
    for f in FILTERS:
        if f not in df:
            continue
        opts = "".join(f'<option value="{html.escape(str(v))}">{html.escape(str(v))}</option>'
                       for v in dict.fromkeys(df[f].astype(str)))
        out.append(f'<label>{f} <select data-filter="{f}"><option value="all">all</option>'
                   f"{opts}</select></label>")
    return " ".join(out)


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.2em; color: #222; }}
h1 {{ font-size: 1.3em; }} h2 {{ font-size: 1.05em; margin-top: 1.6em; }}
.filters {{ position: sticky; top: 0; background: #fff; padding: .5em 0; z-index: 5;
            border-bottom: 1px solid #ddd; }}
.filters label {{ margin-right: 1em; }}
.plot {{ width: 100%; min-height: 420px; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: right; }}
tr.sel {{ background: #ffe9a8; }}
#detail {{ font-family: monospace; font-size: 12px; white-space: pre; background: #f6f6f6;
           padding: .5em; min-height: 2em; }}
</style>
<script>{plotlyjs}</script>
</head><body>
<h1>{title}</h1>
<p>{summary}</p>
<div class="filters">{filters}</div>
<p>Hover a point for its run's configuration; click it to show it below and highlight its row
in the table. Filters can be set in the address too: <code>report.html#model=NAME&amp;policy=NAME</code>.</p>
<div id="detail">(click a point)</div>
{sections}
<h2>Gantt timeline of a chosen run</h2>
{gantt_select}
<div id="gantt" class="plot"></div>
<h2>Every run ({n_runs})</h2>
{table}
<script type="application/json" id="figures">{figures}</script>
<script type="application/json" id="gantts">{gantts}</script>
<script>
const FIGS = JSON.parse(document.getElementById('figures').textContent);
const GANTTS = JSON.parse(document.getElementById('gantts').textContent);
const F = {{}};
function match(meta) {{
  for (const k in F) {{
    if (F[k] !== 'all' && meta && meta[k] !== undefined && meta[k] !== F[k]) return false;
  }}
  return true;
}}
function apply() {{
  for (const id in FIGS) {{
    const gd = document.getElementById(id);
    Plotly.restyle(gd, {{visible: gd.data.map(t => match(t.meta) ? true : false)}});
  }}
  document.querySelectorAll('tr.run').forEach(tr => {{
    tr.style.display = match(tr.dataset) ? '' : 'none';
  }});
}}
function show(text) {{
  document.getElementById('detail').textContent = text.replaceAll('<br>', '\\n');
  const key = (text.match(/key: ([^<\\n]+)/) || [])[1];
  document.querySelectorAll('tr.run').forEach(tr => {{
    tr.classList.toggle('sel', tr.dataset.key === key);
  }});
  if (key && GANTTS[key]) {{ document.getElementById('gantt-select').value = key; gantt(key); }}
}}
function gantt(key) {{
  const g = GANTTS[key];
  if (g) Plotly.react('gantt', g.data, g.layout, {{responsive: true}});
}}
for (const id in FIGS) {{
  Plotly.newPlot(id, FIGS[id].data, FIGS[id].layout, {{responsive: true}});
  document.getElementById(id).on('plotly_click', ev => {{
    const p = ev.points[0];
    const cd = p.customdata !== undefined ? p.customdata : p.hovertext;
    if (cd) show(String(cd));
  }});
}}
const HASH = new URLSearchParams(location.hash.slice(1));
document.querySelectorAll('select[data-filter]').forEach(s => {{
  const want = HASH.get(s.dataset.filter);
  if (want !== null && [...s.options].some(o => o.value === want)) s.value = want;
  F[s.dataset.filter] = s.value;
  s.addEventListener('change', () => {{ F[s.dataset.filter] = s.value; apply(); }});
}});
apply();
const sel = document.getElementById('gantt-select');
if (sel) {{ sel.addEventListener('change', () => gantt(sel.value)); gantt(sel.value); }}
</script>
</body></html>
"""


def build_report(df: pd.DataFrame, title: str, gantt_keys: list[str] | None = None) -> str:
    """The report page (HTML text) for a results table."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    if df.empty:
        raise ExperimentError("no results to report")
    df = df.reset_index(drop=True)
    names = dict(zip(df["policy"], df["policy_name"], strict=False))
    colors = Colors(list(dict.fromkeys(df["policy"])), names)
    ok = feasible_rows(df)
    figs: dict[str, Any] = {}
    sections = []
    for fid, heading, fig in (
            ("tradeoff", "Tradeoff curves", fig_tradeoff(ok, colors) if not ok.empty else None),
            ("pareto", "Pareto fronts", fig_pareto(ok, colors) if not ok.empty else None),
            ("speedup", "Speedup bars", fig_speedup(df, colors)),
            ("convergence", "Tune convergence", fig_convergence(df))):
        if fig is None:
            sections.append(f"<h2>{heading}</h2><p>(nothing to draw: "
                            + {"speedup": "needs feasible preload runs and another policy",
                               "convergence": "not a tune result"}.get(fid, "no feasible run")
                            + ")</p>")
            continue
        fig.update_layout(legend={"font": {"size": 10}}, margin={"t": 50})
        figs[fid] = json.loads(pio.to_json(fig, validate=False))
        sections.append(f'<h2>{heading}</h2><div id="{fid}" class="plot"></div>')
    gantts: dict[str, Any] = {}
    notes = []
    for _, r in gantt_runs(df, gantt_keys).iterrows():
        m, trace = simulate_row(r)
        if not _none(r.get("latency_s")) and abs(m.latency_s - float(r["latency_s"])) > \
                1e-9 * max(1.0, float(r["latency_s"])):
            notes.append(f"run {r['key']}: simulated again in {format_time(m.latency_s)}, stored "
                         f"{format_time(float(r['latency_s']))} (the code or profile changed)")
        label = f"{r['model']} @ {r['profile']}: {r['policy']} ({r['dtype']}), " \
                f"{format_time(m.latency_s)}"
        gantts[str(r["key"])] = {"label": label,
                                 **json.loads(pio.to_json(fig_gantt(trace, label),
                                                          validate=False))}
    if gantts:
        opts = "".join(f'<option value="{html.escape(k)}">{html.escape(g["label"])}</option>'
                       for k, g in gantts.items())
        gantt_select = f'<select id="gantt-select">{opts}</select>'
    else:
        gantt_select = "<p>(no feasible run to draw)</p>"
    n_ok = int(df["feasible"].astype(bool).sum())
    summary = (f"{len(df)} runs ({n_ok} feasible) of {df['model'].nunique()} model(s) on "
               f"{df['profile'].nunique()} profile(s), policies: "
               f"{', '.join(map(str, dict.fromkeys(df['policy'])))}; precisions: "
               f"{', '.join(map(str, dict.fromkeys(df['dtype'])))}.")
    if notes:
        summary += "<br>" + "<br>".join(html.escape(n) for n in notes)

    def script_json(obj: Any) -> str:  # JSON safe inside <script>
        return json.dumps(obj, default=str).replace("</", "<\\/")

    return PAGE.format(title=html.escape(title), plotlyjs=get_plotlyjs(), summary=summary,
                       filters=_filters(df), sections="\n".join(sections),
                       gantt_select=gantt_select, n_runs=len(df), table=_table(df),
                       figures=script_json(figs), gantts=script_json(gantts))


def write_report(results: str | Path, out: str | Path | None = None,
                 gantt_keys: list[str] | None = None, title: str | None = None) -> Path:
    """Write the report of a results folder (or .parquet file) to `out` (default
    RESULTS/report.html), atomically."""
    results = Path(results)
    df = load_results(results)
    if out is None:
        out = (results if results.is_dir() else results.parent) / "report.html"
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ExperimentError(f"the report is HTML: give --out a .html file, found {str(out)!r}")
    text = build_report(df, title or f"weightstream results: {results.name}", gantt_keys)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
