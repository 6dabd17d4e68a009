"""`weightstream models list | show | import` through the real CLI entry point."""

from __future__ import annotations

import json

from click.testing import CliRunner

from experiments.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_models_list():
    r = run("models", "list")
    assert r.exit_code == 0, r.output
    for name in ("resnet50", "llama-2-7b", "sd15-unet", "sam-vit-b-encoder"):
        assert name in r.output
    assert "25.56M" in r.output and "6.738B" in r.output and "fp16 size" in r.output


def test_models_show_totals_and_largest():
    r = run("models", "show", "gpt2", "--dtype", "int8")
    assert r.exit_code == 0, r.output
    assert "124,439,808" in r.output and "peak activation" in r.output
    assert "largest tensors" in r.output and "gpt2/transformer.wte.weight" in r.output
    assert "largest layers" in r.output and "lm_head" in r.output


def test_models_show_unknown_name_is_a_clean_error():
    r = run("models", "show", "resnet51")
    assert r.exit_code == 2
    assert "error: unknown model 'resnet51'" in r.output and "resnet50" in r.output
    assert "Traceback" not in r.output


def test_models_import_config_and_onnx(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "gpt2", "n_embd": 768, "n_head": 12, "n_layer": 12,
                               "n_positions": 1024, "vocab_size": 50257}))
    r = run("models", "import", str(cfg))
    assert r.exit_code == 0, r.output
    assert "124,439,808" in r.output

    from test_onnx_import import small_cnn
    r = run("models", "import", str(small_cnn(tmp_path)), "--dtype", "int8")
    assert r.exit_code == 0, r.output
    assert "2,682" in r.output and "cnn/w2" in r.output


def test_models_import_bad_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage" * 20)
    r = run("models", "import", str(junk))
    assert r.exit_code == 2 and "error:" in r.output and "junk.onnx" in r.output
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    r = run("models", "import", str(other))
    assert r.exit_code == 2 and "expected a .onnx file or a config.json" in r.output


def test_models_import_onnx_dims_warnings_and_json():
    from pathlib import Path

    det = str(Path(__file__).parent / "data" / "onnx" / "tiny_detector_dynamic.onnx")
    r = run("models", "import", det)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "height (input 'images' axis 2)" in r.output and "--dim height=VALUE" in r.output
    r = run("models", "import", det, "--dim", "height=640", "--dim", "width=640")
    assert r.exit_code == 0, r.output
    assert "297,622,424" in r.output and "68,360" in r.output
    assert "warning: symbolic dim 'batch'" in r.output
    r = run("models", "import", det, "--dim", "height=640", "--dim", "width=640", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["flops"] == 297_622_424 and d["params"] == 68_360
    assert len(d["warnings"]) == 1 and "batch" in d["warnings"][0]
    r = run("models", "import", det, "--dim", "height=big")
    assert r.exit_code == 2 and "bad dim height=big" in r.output
    r = run("models", "import", det, "--branch", "x=maybe")
    assert r.exit_code == 2 and "NODE=then or NODE=else" in r.output


def test_models_import_refuses_relabelled_config(tmp_path):
    from pathlib import Path

    cfg = json.loads((Path(__file__).parent / "data" / "hf_configs" / "mixtral-8x7b.json")
                     .read_text())
    cfg["model_type"] = "llama"
    del cfg["architectures"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    r = run("models", "import", str(path))
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "llama has no such field" in r.output and "mixtral" in r.output
    r = run("models", "import", str(Path(__file__).parent / "data" / "hf_configs" /
                                     "qwen1.5-moe-a2.7b.json"), "--tokens", "16", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["params"] == 14_315_784_192
