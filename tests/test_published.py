"""`weightstream validate published`: the shipped table, its fit/check split, the errors the
simulator achieves on it, fitting, and bad tables."""

from __future__ import annotations

import json
import statistics

import pytest
import yaml
from click.testing import CliRunner

from experiments.cli import main
from validate.published import (
    METRICS,
    evaluate,
    fit_runtime,
    load_table,
    scenario_metrics,
    summarise,
)

# what the shipped runtime profiles achieve on the shipped table (docs/runtimes.md): check rows
# 24.3% median |error|, 85.7% within 2x (the issue asks for 25% / 80%); fit rows 8.3% / 91.5%
# (fit rows the profiles cannot all match remain: ConvNeXt's channel MLPs, an MLC bug report)
CHECK_MEDIAN_MAX = 0.25
CHECK_WITHIN_2X_MIN = 0.85
FIT_MEDIAN_MAX = 0.09
FIT_WITHIN_2X_MIN = 0.91


@pytest.fixture(scope="module")
def outcomes():
    return evaluate(load_table())


def test_table_rows_are_sourced_and_a_third_are_check():
    rows = load_table()
    assert len(rows) >= 60
    check = [r for r in rows if r.role == "check"]
    assert len(check) >= len(rows) / 3
    for r in rows:
        assert len(r.source) > 10 and r.value > 0
        assert r.simulate or len(r.why) > 20
        if r.simulate:
            assert r.metric in METRICS
    # every runtime with check rows is a shipped runtime profile
    from hwprofiles.loader import list_runtimes

    assert {r.runtime for r in check if r.simulate} <= set(list_runtimes())


def test_every_simulated_row_simulates(outcomes):
    failed = [(o.row.id, o.note) for o in outcomes if o.note.startswith("failed")]
    assert not failed
    assert all(o.predicted > 0 for o in outcomes if o.row.simulate)


def test_errors_stay_at_what_the_profiles_achieve(outcomes):
    check = summarise(outcomes, "check")
    assert check.simulated == 50
    assert check.median_abs_error <= CHECK_MEDIAN_MAX
    assert check.within_2x >= CHECK_WITHIN_2X_MIN
    fit = summarise(outcomes, "fit")
    assert fit.median_abs_error <= FIT_MEDIAN_MAX
    assert fit.within_2x >= FIT_WITHIN_2X_MIN


def test_llama_cpp_q8_0_prefill_is_the_build_with_the_tiled_gemm(outcomes):
    """The llama.cpp profile models builds from PR #16469 on: its Q8_0 GEMM reproduces that PR's
    pp512 on Adreno 830 (148.54 tok/s, a fit row), the earlier build's per-token figure is not
    simulated (and says why), and the fitted Q8_0 GEMM runs at the f16 GEMM's rate (the kernel
    dequantises into the same tiles; a factor far from it would be fitting something else)."""
    by_id = {o.row.id: o for o in outcomes}
    after = by_id["lcpp-pr16469-a830-qwen2-15b-q8_0-pp512"]
    assert after.row.role == "fit" and after.row.value == 148.54
    assert after.predicted == pytest.approx(148.54, rel=0.01)
    old = by_id["lcpp-pr15732-a830-llama32-1b-q8_0-pp512"]
    assert not old.row.simulate and "#16469" in old.row.why
    from hwprofiles.loader import load_runtime

    eff = load_runtime("llama.cpp-opencl").kernel_efficiency
    assert eff["matmul.q8_0"] == pytest.approx(eff["matmul.fp16"], rel=0.05)


def test_cli_prints_both_splits_and_draws_the_plot(tmp_path):
    plot = tmp_path / "published.png"
    r = CliRunner().invoke(main, ["validate", "published", "--plot", str(plot)])
    assert r.exit_code == 0, r.output
    assert "fit " in r.output and "check" in r.output and "within 2x" in r.output
    assert plot.stat().st_size > 10_000
    r = CliRunner().invoke(main, ["validate", "published", "--role", "check", "--json"])
    d = json.loads(r.output)
    assert {row["role"] for row in d["rows"]} == {"check"}
    assert d["summary"]["check"]["simulated"] >= 20


def test_decode_tokens_per_second_is_the_inverse_step_time():
    """One decode step of llama-3.2-1b at context 0 on the toy-free path: decode at a single
    context equals 1 / the step's kernel time."""
    from hwprofiles import load_profile
    from hwprofiles.loader import load_runtime

    rows = [r for r in load_table() if r.id == "lcpp-pr14987-a830-llama32-1b-f16-tg128-fa0"]
    row = rows[0]
    prof = load_profile(row.profile)
    rt = load_runtime(row.runtime)
    one = type(row)(**{**row.__dict__, "scenario": (("kind", "decode"), ("prompt", 0),
                                                     ("tokens", 1))})
    from validate.published import _decode_step_s

    assert scenario_metrics(one, prof, rt)["decode_tok_s"] == pytest.approx(
        1 / _decode_step_s(row, prof, rt, 0))


def test_fit_recovers_a_known_efficiency(tmp_path, monkeypatch):
    """Rows made by simulating with efficiency.gemv = 0.4 are fitted back to 0.4 from 1.0."""
    from hwprofiles import load_profile
    from hwprofiles.loader import load_runtime

    rt_file = tmp_path / "probe.yaml"
    rt_file.write_text(yaml.safe_dump({"name": "probe", "efficiency": {
        "gemv": {"value": 1.0, "estimate": "start of the fit"}}}))
    base = {"role": "fit", "source": "synthetic, made by the test", "profile":
            "snapdragon-8-gen-3", "runtime": str(rt_file), "dtype": "fp16",
            "models": [["gpt2", {}]], "metric": "decode_tok_s"}
    truth = load_runtime(str(rt_file), ["efficiency.gemv=0.4"])
    rows = []
    for i, ctx in enumerate((0, 64)):
        row = {**base, "id": f"r{i}", "value": 1.0,
               "scenario": {"kind": "decode", "prompt": ctx, "tokens": 1}}
        table = tmp_path / "t.yaml"
        table.write_text(yaml.safe_dump([row]))
        r = load_table(table)[0]
        row["value"] = scenario_metrics(r, load_profile(r.profile), truth)["decode_tok_s"]
        rows.append(row)
    table = tmp_path / "t.yaml"
    table.write_text(yaml.safe_dump(rows))
    values, outs = fit_runtime(load_table(table), str(rt_file), ["efficiency.gemv"])
    assert values["efficiency.gemv"] == pytest.approx(0.4, rel=1e-3)
    assert all(abs(o.error) < 1e-3 for o in outs)


@pytest.mark.parametrize("rows, needle", [
    ("- {id: a, role: fit, metric: exec_ms, value: 1}", "missing field(s) source"),
    ("- {id: a, role: maybe, metric: exec_ms, value: 1, source: somewhere}", "role must be"),
    ("- {id: a, role: fit, metric: exec_ms, value: -3, source: somewhere}",
     "value must be a positive number"),
    ("- {id: a, role: fit, metric: speed, value: 3, source: somewhere, profile: tensor-g3}",
     "unknown metric 'speed'"),
    ("- {id: a, role: fit, metric: exec_ms, value: 3, source: somewhere, simulate: false}",
     "needs a `why`"),
    ("- {id: a, role: fit, metric: decode_tok_s, value: 3, source: somewhere, profile: x, "
     "scenario: {kind: cold}, models: [[gpt2, {}]]}", "needs a scenario of kind decode"),
    ("[unclosed", "not valid YAML"),
    ("{}", "non-empty list of rows"),
])
def test_bad_tables_are_refused_cleanly(tmp_path, rows, needle):
    path = tmp_path / "t.yaml"
    path.write_text(rows)
    r = CliRunner().invoke(main, ["validate", "published", "--table", str(path)])
    assert r.exit_code == 2
    assert needle in r.output and "Traceback" not in r.output


def test_fit_refuses_check_rows_and_unknown_fields(tmp_path):
    rows = load_table()
    with pytest.raises(Exception, match="no fit rows for runtime 'litert-lm'"):
        fit_runtime(rows, "litert-lm", ["efficiency.gemv"])  # it has check rows only
    with pytest.raises(Exception, match="unknown runtime field 'efficiency.tensor'"):
        fit_runtime(rows, "mlc-llm", ["efficiency.tensor"])


def test_fit_cli_refuses_a_bad_row_pattern_and_names_the_runtimes_with_fit_rows():
    r = CliRunner().invoke(main, ["validate", "published", "--fit", "litert-gpu", "--param",
                                  "init.fixed", "--rows", "["])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "--rows '[' is not a regular expression" in r.output
    r = CliRunner().invoke(main, ["validate", "published", "--fit", "nosuch", "--param",
                                  "init.fixed"])
    assert r.exit_code == 2 and "runtimes with fit rows:" in r.output and "litert-gpu" in r.output


def test_adreno_740_prefill_split_by_the_gemm_gate(outcomes):
    """On the Galaxy S23 (Adreno 740, A7X compiler) llama.rn prefills Qwen3-1.7B Q4_0 (1,024 K/V
    columns) ~4x faster per token than Qwen2.5-1.5B Q4_0 (256: its K/V projections miss the
    Adreno GEMM). The a7x variant reproduces that split from the gate, and the same models on
    the Snapdragon 8 Gen 3 profile (base runtime, no fallback figure) are not slowed."""
    by_id = {o.row.id: o for o in outcomes}
    fast = by_id["pocketpal-s23-qwen3-17b-q40-opencl-pp256"]
    slow = by_id["pocketpal-s23-qwen25-15b-q40-opencl-pp256"]
    assert fast.row.runtime == slow.row.runtime == "llama.cpp-opencl-a7x"
    published = fast.row.value / slow.row.value
    predicted = fast.predicted / slow.predicted
    assert published > 4 and predicted == pytest.approx(published, rel=0.25)
    sd8g3 = by_id["lcpp-i14337-sd8g3-qwen-1.5b-prefill"]  # the same architecture, check row
    assert sd8g3.row.runtime == "llama.cpp-opencl" and sd8g3.predicted > 3 * slow.predicted


def test_fit_reaches_a_variant_field_jointly(tmp_path):
    """A base runtime and a variant extending it: rows made with base gemv = 0.4 and variant
    gemv.fp32 = 0.2 are fitted back jointly (`VARIANT:field`); a field set on the base reaches
    the variant's rows only where the variant inherits it."""
    from hwprofiles import load_profile
    from hwprofiles.loader import load_runtime

    base = tmp_path / "probe.yaml"
    base.write_text(yaml.safe_dump({"name": "probe", "efficiency": {
        "gemv": {"value": 1.0, "estimate": "start of the fit"}}}))
    var = tmp_path / "probe-v.yaml"
    var.write_text(yaml.safe_dump({"name": "probe-v", "extends": str(base), "kernel_efficiency":
                                   {"gemv": {"fp32": {"value": 1.0, "estimate": "start"}}}}))
    truth = {str(base): load_runtime(str(base), ["efficiency.gemv=0.4"]),
             str(var): load_runtime(str(var), ["kernel_efficiency.gemv.fp32=0.2"])}
    rows = []
    for i, (rt, dtype, ctx) in enumerate([(base, "fp16", 0), (base, "fp16", 64),
                                          (var, "fp16", 0), (var, "fp32", 0)]):
        row = {"id": f"r{i}", "role": "fit", "source": "synthetic, made by the test",
               "profile": "snapdragon-8-gen-3", "runtime": str(rt), "dtype": dtype,
               "models": [["gpt2", {}]], "metric": "decode_tok_s", "value": 1.0,
               "scenario": {"kind": "decode", "prompt": ctx, "tokens": 1}}
        table = tmp_path / "t.yaml"
        table.write_text(yaml.safe_dump([row]))
        r = load_table(table)[0]
        got = scenario_metrics(r, load_profile(r.profile), truth[str(rt)])
        if rt == var and dtype == "fp16":  # the variant inherits the base's 0.4
            got = scenario_metrics(r, load_profile(r.profile),
                                   load_runtime(str(var), ["efficiency.gemv=0.4"]))
        row["value"] = got["decode_tok_s"]
        rows.append(row)
    table = tmp_path / "t.yaml"
    table.write_text(yaml.safe_dump(rows))
    values, outs = fit_runtime(load_table(table), str(base),
                               ["efficiency.gemv", f"{var}:kernel_efficiency.gemv.fp32"])
    assert len(outs) == 4
    assert values["efficiency.gemv"] == pytest.approx(0.4, rel=2e-3)
    assert values[f"{var}:kernel_efficiency.gemv.fp32"] == pytest.approx(0.2, rel=2e-3)
    with pytest.raises(Exception, match="is not a runtime whose fit rows"):
        fit_runtime(load_table(table), str(base), ["nosuch:efficiency.gemv"])


def test_et_vk_prefill_records_its_command_buffers_once_per_shape(outcomes):
    """ET-VK re-encodes its command buffers when a run's shape differs from the run before: the
    per-kernel cost fitted on PR #18407's 4-token prefill (60 ms, a fit row) predicts the same
    build's 197-token prefill (a check row) within 25% (+26% without it); decode rates barely
    move (the first step after the prompt re-records once over the whole generation)."""
    by_id = {o.row.id: o for o in outcomes}
    fit = by_id["et-vulkan-pr18407-s24-llama32-1b-prefill-4"]
    check = by_id["et-vulkan-pr18407-s24-llama32-1b-prefill-197"]
    assert (fit.row.role, check.row.role) == ("fit", "check")
    assert fit.predicted == pytest.approx(67.2, rel=0.01)
    assert abs(check.predicted / check.row.value - 1) <= 0.25
    decode = by_id["et-vulkan-pr12444-s24-llama32-1b-decode"]
    assert decode.predicted == pytest.approx(49, rel=0.02)


def test_mlc_2023_prompt_gemm_is_the_schedule_before_the_2024_one(outcomes):
    """mlc-llm-2023 models builds before the Adreno schedules: its prompt GEMM is fitted on PR
    #17187's earlier column (27 tok/s, a fit row), not inherited from the schedule that PR added
    (50 tok/s, mlc-llm's fit row); both rows reproduce, and the older kernel is the slower."""
    from hwprofiles.loader import load_runtime

    by_id = {o.row.id: o for o in outcomes}
    before = by_id["tvm-pr17187-sd8g3-llama2-7b-prefill-before"]
    after = by_id["tvm-pr17187-sd8g3-llama2-7b-prefill"]
    assert before.row.role == after.row.role == "fit"
    assert before.predicted == pytest.approx(27, rel=0.02)
    assert after.predicted == pytest.approx(50, rel=0.02)
    old, new = load_runtime("mlc-llm-2023"), load_runtime("mlc-llm")
    assert old.efficiency["matmul"] < new.efficiency["matmul"]


def test_llm_rates_on_the_8_gen_3_meet_the_tables_check_tolerance(outcomes):
    """Issue 16: decode tokens/s and prompt rates (TTFT = prompt / rate) of LLMs on the
    snapdragon-8-gen-3 profile, over the table's check rows for them, within the tolerance the
    table holds its check rows to (median |error| <= 25%, at least 80% within 2x). The rows
    past 2x are the two the docs explain: ET-VK's October 2025 build (+149%) and an MLC bug
    report (+286%)."""
    rows = [o for o in outcomes if o.row.role == "check" and o.row.simulate
            and o.row.profile == "snapdragon-8-gen-3"
            and o.row.metric in ("decode_tok_s", "prefill_tok_s")]
    assert len(rows) >= 10
    errs = {o.row.id: o.predicted / o.row.value - 1 for o in rows}
    assert statistics.median(abs(e) for e in errs.values()) <= CHECK_MEDIAN_MAX
    within = [k for k, e in errs.items() if 0.5 <= 1 + e <= 2]
    assert len(within) / len(errs) >= 0.8
    assert set(errs) - set(within) == {"et-vulkan-s24-llama32-1b-prefill",
                                       "mlc-i1359-xiaomi14-llama2-7b-prefill"}
