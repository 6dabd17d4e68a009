"""weightstream report: one self-contained HTML page holding every run of the results, with
each run's configuration on hover, filters, and a Gantt timeline simulated again from the
stored inputs; it renders in a headless browser where Debian's chromium is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from experiments.cli import main
from experiments.report import build_report, write_report
from experiments.runners import SerialRunner
from experiments.spec import parse_spec
from experiments.store import load_results
from experiments.sweep import run_sweep

pytest.importorskip("plotly")
TOY = str(Path(__file__).parent / "data" / "toy.yaml")


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    spec = parse_spec({
        "models": [{"factory": "helpers:linear_chain", "name": f"chain{n}",
                    "args": {"n": n, "weight_elems": 5_000_000, "flops": 10**9, "name": f"c{n}"}}
                   for n in (3, 5)],
        "profiles": [TOY], "budgets": {"auto": 3}, "dtypes": ["fp16", "q4_0"],
        "policies": ["preload", "sequential", "pipeline",
                     {"name": "flashmem", "options": {"solver": "greedy"}}]})
    out = tmp_path_factory.mktemp("sweep")
    run_sweep(spec, out, SerialRunner(), progress=False)
    return out


def embedded(text: str, element: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{element}">(.*?)</script>', text, re.S)
    assert m, element
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_report_holds_every_run_with_its_configuration(results_dir, tmp_path):
    path = write_report(results_dir, tmp_path / "r.html")
    text = path.read_text()
    df = load_results(results_dir)
    assert len(df) == 2 * 2 * 4 * 3 - df.duplicated("key").sum()
    table_keys = re.findall(r'<tr class="run" data-key="([0-9a-f]+)"', text)
    assert sorted(table_keys) == sorted(df["key"])  # every run, once
    figs = embedded(text, "figures")
    assert {"tradeoff", "pareto", "speedup"} <= set(figs)
    hovered = set()
    for trace in figs["pareto"]["data"]:
        for cd in trace.get("customdata") or []:
            hovered.update(re.findall(r"key: ([0-9a-f]+)", cd))
    ok = df[df["feasible"].astype(bool)]
    assert hovered == set(ok["key"])  # every feasible run is a point with its configuration
    one = next(t for t in figs["pareto"]["data"] if t.get("customdata"))["customdata"][0]
    for field in ("model:", "profile:", "policy:", "dtype:", "budget_bytes:", "latency_s:",
                  "peak_memory_bytes:"):
        assert field in one
    metas = [t["meta"] for t in figs["tradeoff"]["data"]]
    assert {m["dtype"] for m in metas} == {"fp16", "q4_0"}
    assert {m["model"] for m in metas} == {"chain3", "chain5"}
    # self-contained: plotly.js inlined, nothing fetched from the network
    assert "Plotly" in text and not re.search(r'<script[^>]+src=', text)
    assert 'data-filter="policy"' in text and 'data-filter="dtype"' in text


def test_gantt_of_a_chosen_run_matches_its_stored_latency(results_dir, tmp_path):
    df = load_results(results_dir)
    run = df[df["feasible"] & (df["policy"] == "pipeline")].iloc[0]
    text = build_report(df, "t", [run["key"]])
    gantts = embedded(text, "gantts")
    assert list(gantts) == [run["key"]]
    g = gantts[run["key"]]
    lanes = {t["name"] for t in g["data"] if t["type"] == "bar"}
    assert {"storage", "gpu"} <= lanes
    ends = [b + x for t in g["data"] if t["type"] == "bar" for b, x in zip(t["base"], t["x"],
                                                                             strict=True)]
    assert max(ends) == pytest.approx(run["latency_s"] * 1e3, rel=1e-9)
    assert "simulated again" not in text  # the stored and the re-simulated latency agree


def test_sweep_and_tune_can_write_it_and_bad_input_is_refused(results_dir, tmp_path):
    r = CliRunner().invoke(main, ["report", str(results_dir), "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and ".html" in r.output
    r = CliRunner().invoke(main, ["report", str(results_dir), "--gantt", "nope"])
    assert r.exit_code == 2 and "no run with key 'nope'" in r.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["report", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "no results" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["report", str(results_dir), "--out", str(tmp_path / "ok.html")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ok.html").stat().st_size > 1_000_000  # plotly.js is in the file


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium not installed")
def test_report_renders_in_headless_chromium(results_dir, tmp_path):
    path = write_report(results_dir, tmp_path / "r.html")
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
             "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120).stdout
    # plotly drew every figure and the Gantt (its SVG exists only after the page's script ran)
    for fid in ("tradeoff", "pareto", "speedup", "gantt"):
        block = dom.split(f'id="{fid}"', 1)[1][:3000]
        assert "main-svg" in block, fid
    assert dom.count('class="run"') == len(load_results(results_dir))
