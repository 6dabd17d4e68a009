"""Sweep specs: parsing, validation messages, expansion and stable run keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from experiments.errors import ExperimentError
from experiments.runs import BudgetPoints, budget_groups, expand, log_points
from experiments.spec import load_spec, parse_spec

TOY = str(Path(__file__).parent / "data" / "toy.yaml")
CHAIN = {"factory": "helpers:linear_chain", "name": "chain",
         "args": {"n": 3, "weight_elems": 5_000_000, "flops": 10**9}}


def spec(**over):
    data = {"name": "t", "models": [CHAIN], "profiles": [TOY],
            "policies": ["sequential", {"name": "pipeline", "options": {"depth": 2}}],
            "budgets": ["64MiB", "unlimited"], "dtypes": ["fp16"]}
    data.update(over)
    return {k: v for k, v in data.items() if v is not ...}


def test_parse_and_expand():
    s = parse_spec(spec())
    assert [p.label for p in s.policies] == ["sequential", "pipeline(depth=2)"]
    assert s.budgets.values == (64 * 2**20, None)
    runs = expand(s)
    assert len(runs) == 4
    assert len({r.key for r in runs}) == 4
    # keys are stable: the same spec parsed again gives the same keys
    assert [r.key for r in expand(parse_spec(spec()))] == [r.key for r in runs]
    # profile overrides and options change the key
    s2 = parse_spec(spec(profiles=[{"name": TOY, "set": {"storage.read_bandwidth": "2GB/s"}}]))
    assert {r.key for r in expand(s2)}.isdisjoint(r.key for r in runs)
    assert s2.profiles[0].label == "toy+storage.read_bandwidth=2GB/s"


@pytest.mark.parametrize("data, words", [
    (spec(polices=["preload"]), ["unknown key 'polices'", "did you mean 'policies'", "valid keys"]),
    (spec(policies=[]), ["'policies' is empty"]),
    (spec(profiles=...), ["non-empty 'profiles'"]),
    (spec(models=[], workloads=[]), ["'models' or 'workloads'"]),
    (spec(policies=["preloud"]), ["unknown policy 'preloud'", "valid policies", "preload"]),
    (spec(policies=[{"name": "pipeline", "options": {"deep": 2}}]), ["no option 'deep'", "depth"]),
    (spec(policies=[{"name": "pipeline", "opts": {}}]), ["unknown key 'opts'", "options"]),
    (spec(profiles=["no-such-phone"]), ["unknown profile 'no-such-phone'", "valid profiles"]),
    (spec(profiles=[{"name": TOY, "set": {"storage.speed": "1GB/s"}}]), ["storage.speed"]),
    (spec(budgets=["64 MiBs"]), ["bad budget '64 MiBs'", "valid units"]),
    (spec(budgets=["-3MiB"]), ["must be positive"]),
    (spec(budgets={"auto": 0}), ["auto: N"]),
    (spec(budgets={"automatic": 4}), ["unknown key 'automatic'", "auto"]),
    (spec(dtypes=["fp6"]), ["unknown format 'fp6'", "fp16", "q4_0"]),
    (spec(dtypes=["q4_0,lmhead=q8_0"]), ["lmhead", "lm_head"]),
    (spec(models=["resnet-50"]), ["unknown model 'resnet-50'", "resnet50"]),
    (spec(policies=["sequential", "sequential"]), ["duplicate policy labels"]),
    ([1, 2], ["must be a mapping"]),
])
def test_bad_specs_are_rejected_with_clear_messages(data, words):
    if any("resnet" in w for w in words):
        pytest.importorskip("workloads.zoo")
    with pytest.raises(ExperimentError) as exc:
        parse_spec(data)
    for w in words:
        assert w in str(exc.value)


def test_load_spec_file_and_builtin(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(spec(name=None, profiles=["../data/toy.yaml"])))
    with pytest.raises(ExperimentError, match="does not exist"):
        load_spec(str(p))  # a relative profile path is looked up next to the spec
    (tmp_path / "toy.yaml").write_text(Path(TOY).read_text())
    p.write_text(yaml.safe_dump(spec(name=None, profiles=["toy.yaml"])))
    s = load_spec(str(p))
    assert s.name == "s" and s.profiles[0].label == "toy"
    with pytest.raises(ExperimentError, match="built-in specs: default"):
        load_spec("nonexistent")
    p.write_text("models: [a\n")
    with pytest.raises(ExperimentError, match="not valid YAML"):
        load_spec(str(p))


def test_default_spec_is_small():
    pytest.importorskip("workloads.zoo")
    s = load_spec("default")
    assert s.budgets.auto and len(s.profiles) == 2 and len(s.workloads) == 2
    assert {"preload", "sequential", "pipeline"} <= {p.name for p in s.policies}


def test_auto_budget_points():
    assert log_points(100, 100, 6) == (100,)
    pts = log_points(10, 1000, 3)
    assert pts == (10, 100, 1000)
    s = parse_spec(spec(budgets={"auto": 3}))
    groups = budget_groups(s)
    assert len(groups) == 1
    with pytest.raises(KeyError):
        expand(s)
    auto = {groups[0].key: BudgetPoints(groups[0].key, (10, 20, 40), 10, 40)}
    runs = expand(s, auto)
    assert sorted({r.budget_bytes for r in runs}) == [10, 20, 40] and len(runs) == 6


def test_dtypes_accept_formats_and_mixed_precision_in_canonical_form():
    s = parse_spec(spec(dtypes=["q4_0", "q4_0,lm_head=q4_0", {"base": "q4_0", "lm_head": "q8_0"},
                                "awq-g64"]))
    assert s.dtypes == ("q4_0", "q4_0,lm_head=q8_0", "awq-g64")


def test_model_files_in_a_spec(tmp_path):
    import shutil

    from experiments.resolve import load_workload
    from experiments.runners import SerialRunner
    from experiments.sweep import run_sweep

    data = Path(__file__).parent / "data"
    shutil.copy(data / "onnx" / "tiny_detector_dynamic.onnx", tmp_path / "det.onnx")
    shutil.copy(data / "hf_configs" / "opt-125m.json", tmp_path / "opt.json")
    entries = [{"file": "det.onnx", "dims": {"height": 320, "width": 320}},
               {"file": "opt.json", "tokens": 16, "label": "opt"}]
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(spec(models=entries, profiles=[TOY], budgets=["unlimited"],
                                     policies=["sequential"])))
    s = load_spec(str(p))
    det, opt = s.workloads
    assert (det.kind, det.label, opt.label) == ("file", "det", "opt")
    assert det.to_dict()["name"] == "det.onnx" and len(dict(det.args)["digest"]) == 16
    w = load_workload(det, "fp16")
    (inv,) = w.invocations
    from workloads.onnx_import import load_onnx

    direct = load_onnx(tmp_path / "det.onnx", dims={"height": 320, "width": 320})
    assert inv.model.dtypes == {"fp16"} and inv.model.total_flops == direct.total_flops
    assert abs(direct.total_flops - 297_622_424 / 4) < 100  # a quarter of the 640x640 FLOPs
    assert load_workload(opt, "fp16").invocations[0].model.param_count == 125_239_296
    out = run_sweep(s, tmp_path / "out", SerialRunner(), progress=False).results
    assert len(out) == 2 and set(out["status"]) == {"ok"}
    # a bad dim or a missing file fails at parse time, naming the file
    p.write_text(yaml.safe_dump(spec(models=[{"file": "det.onnx", "dims": {"heigth": 320}}])))
    with pytest.raises(ExperimentError, match="model file 'det.onnx'.*no symbolic input dim "
                                              "named heigth"):
        load_spec(str(p))
    p.write_text(yaml.safe_dump(spec(models=[{"file": "nope.onnx"}])))
    with pytest.raises(ExperimentError, match="nope.onnx' in sweep spec not found"):
        load_spec(str(p))
    with pytest.raises(ExperimentError, match="'dims' is only valid with 'file'"):
        parse_spec(spec(models=[{"name": "resnet50", "dims": {"h": 1}}]))
