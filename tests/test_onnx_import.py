"""ONNX import: real .onnx files built with onnx.helper, and broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workloads.model import WorkloadError
from workloads.onnx_import import load_onnx


def _save(tmp_path, graph, name="m.onnx", opset=17):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _init(name, shape, dtype=np.float32):
    return numpy_helper.from_array(np.ones(shape, dtype=dtype), name)


def small_cnn(tmp_path, dtype=np.float32, name="cnn.onnx"):
    """Conv(3->4, 3x3, pad 1) + bias -> Relu -> Flatten -> Gemm(256 -> 10) + bias."""
    et = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", et, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", et, ["batch", 10])],
        [_init("w", (4, 3, 3, 3), dtype), _init("b", (4,), dtype),
         _init("w2", (10, 256), dtype), _init("b2", (10,), dtype)])
    return _save(tmp_path, graph, name)


def test_small_cnn_flops_weights_and_edges(tmp_path):
    m = load_onnx(small_cnn(tmp_path))
    assert m.name == "cnn" and m.order == ("conv", "relu", "flatten", "fc")
    conv, relu, flat, fc = m.ops
    assert conv.flops == 2 * (4 * 8 * 8) * 27 + 4 * 8 * 8 == 14080
    assert relu.flops == 256 and flat.flops == 0
    assert fc.flops == 2 * 10 * 256 + 10 == 5130
    assert conv.input_elems == 3 * 64 and conv.output_elems == 256
    assert [t.shape for t in conv.weights] == [(4, 3, 3, 3), (4,)]
    assert m.param_count == 108 + 4 + 2560 + 10
    assert m.dtypes == {"fp32"} and m.weight_bytes == 4 * m.param_count
    assert set(m.tensors) == {"cnn/w", "cnn/b", "cnn/w2", "cnn/b2"}
    assert list(m.graph.edges) == [("conv", "relu"), ("relu", "flatten"), ("flatten", "fc")]


def test_fp16_initializers_and_symbolic_batch(tmp_path):
    m = load_onnx(small_cnn(tmp_path, np.float16))
    assert m.dtypes == {"fp16"} and m.weight_bytes == 2 * m.param_count
    assert m.ops[0].dtype == "fp16"
    big = load_onnx(small_cnn(tmp_path, name="b.onnx"), dims={"batch": 4})
    assert big.ops[0].flops == 4 * 14080


def test_matmul_and_int8_weights(tmp_path):
    nodes = [helper.make_node("DequantizeLinear", ["wq", "s"], ["w"], name="dq"),
             helper.make_node("MatMul", ["a", "w"], ["y"], name="mm")]
    graph = helper.make_graph(
        nodes, "mm", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 5, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 7])],
        [_init("wq", (10, 7), np.int8), _init("s", (), np.float32)])
    m = load_onnx(_save(tmp_path, graph))
    assert m.op("mm").flops == 2 * 5 * 7 * 10
    assert m.tensors["m/wq"].dtype == "int8"
    assert m.op("dq").dtype == "int8"
    assert m.predecessors("mm") == ("dq",)


def test_int64_shape_initializers_are_not_weights(tmp_path):
    shape = numpy_helper.from_array(np.array([1, 12], dtype=np.int64), "shape")
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")]
    graph = helper.make_graph(
        nodes, "r", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12])], [shape])
    m = load_onnx(_save(tmp_path, graph))
    assert m.param_count == 0 and m.op("reshape").output_elems == 12


def test_unsupported_ops_are_named_not_dropped(tmp_path):
    nodes = [helper.make_node("Det", ["x"], ["h"], name="det"),
             helper.make_node("FusedGemm", ["h", "w"], ["d"], name="fg", domain="com.microsoft")]
    graph = helper.make_graph(
        nodes, "u", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [None, None])], [_init("w", (3, 3))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    path = tmp_path / "u.onnx"
    onnx.save(model, str(path))
    with pytest.raises(WorkloadError, match=r"unsupported ONNX op types Det \(node 'det'\), "
                                            r"com.microsoft.FusedGemm \(node 'fg'\)"):
        load_onnx(path)
    m = load_onnx(path, allow_unsupported=True)
    assert [op.attrs.get("unsupported") for op in m.ops] == [True, True]
    assert [op.flops for op in m.ops] == [0, 0]
    assert "Det" in m.description
    assert any("unsupported ops imported as 0-FLOP ops" in w for w in m.warnings)


def test_truncated_file(tmp_path):
    good = small_cnn(tmp_path).read_bytes()
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(WorkloadError, match="trunc.onnx"):
        load_onnx(bad)


def test_garbage_and_missing_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf \xff\xfe" * 10)
    with pytest.raises(WorkloadError, match="junk.onnx"):
        load_onnx(junk)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(WorkloadError, match="empty"):
        load_onnx(empty)
    with pytest.raises(WorkloadError, match="not found"):
        load_onnx(tmp_path / "missing.onnx")


# --- real files: the model-zoo "light" models the onnx wheel ships, committed exports --------
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
DATA = Path(__file__).parent / "data" / "onnx"


@pytest.mark.parametrize("name,params", [
    # weights come from ConstantOfShape nodes; Caffe2 BatchNorm also stores running mean and
    # variance: torchvision resnet50 25,557,032 + 2 x 26,560 BN channels
    ("resnet50", 25_557_032 + 2 * 26_560),
    ("vgg19", 143_667_240),  # torchvision vgg19, no BatchNorm
    ("bvlc_alexnet", 60_965_224),  # Caffe BVLC AlexNet
    ("squeezenet", 1_235_496),  # SqueezeNet 1.1 (torchvision squeezenet1_1)
])
def test_light_model_zoo_files_count_constant_of_shape_weights(name, params):
    m = load_onnx(LIGHT / f"light_{name}.onnx")
    assert m.param_count == params
    assert m.dtypes == {"fp32"}


def test_light_resnet50_flops_match_the_zoo_model():
    from workloads.zoo import get_model

    onnx_flops = load_onnx(LIGHT / "light_resnet50.onnx").total_flops
    zoo = get_model("resnet50").total_flops
    assert abs(onnx_flops - zoo) / zoo < 0.002  # the zoo's torchvision ResNet-50, same counts


def test_lrn_and_sum_from_classic_exports():
    alex = load_onnx(LIGHT / "light_bvlc_alexnet.onnx")
    lrn = [op for op in alex.ops if op.kind == "lrn"]
    assert len(lrn) == 2 and all(op.flops == (2 * 5 + 3) * op.output_elems for op in lrn)
    res = load_onnx(LIGHT / "light_resnet50.onnx")
    sums = [op for op in res.ops if op.kind == "sum"]
    assert len(sums) == 16 and all(op.flops == op.output_elems for op in sums)  # 2 inputs


def test_dynamic_detector_with_dims_matches_the_static_export():
    # a YOLOv8-style detector exported by PyTorch with dynamic batch/height/width; the chunk /
    # reshape shapes come from Shape -> Gather -> Div -> Mul chains (tests/data/onnx/)
    static = load_onnx(DATA / "tiny_detector_640.onnx")
    dyn = load_onnx(DATA / "tiny_detector_dynamic.onnx", dims={"height": 640, "width": 640})
    assert dyn.param_count == static.param_count == 68_360  # the script's folded count
    assert abs(dyn.total_flops - static.total_flops) <= 0.05 * static.total_flops
    assert dyn.total_flops == static.total_flops
    assert dyn.warnings == ("symbolic dim 'batch' (axis 0 of input 'images') not given: taken "
                            "as 1 (batch 1); pass --dim batch=N to change",)
    half = load_onnx(DATA / "tiny_detector_dynamic.onnx", dims={"height": 320, "width": 640})
    assert 0.49 < half.total_flops / dyn.total_flops < 0.51
    two = load_onnx(DATA / "tiny_detector_dynamic.onnx",
                    dims={"batch": 2, "height": 640, "width": 640})
    # FLOPs scale with the batch (the scalar shape arithmetic does not: a few FLOPs)
    assert abs(two.total_flops - 2 * dyn.total_flops) < 100 and not two.warnings


def test_dynamic_dims_missing_or_unknown_are_refused():
    with pytest.raises(WorkloadError, match=r"height \(input 'images' axis 2\), width .*"
                                            r"--dim height=VALUE --dim width=VALUE"):
        load_onnx(DATA / "tiny_detector_dynamic.onnx")
    with pytest.raises(WorkloadError, match="no symbolic input dim named hieght.*batch, "
                                            "height, width"):
        load_onnx(DATA / "tiny_detector_dynamic.onnx", dims={"hieght": 640, "width": 640})
    with pytest.raises(WorkloadError, match="bad dim height=0"):
        load_onnx(DATA / "tiny_detector_dynamic.onnx", dims={"height": 0, "width": 640})


def _model(tmp_path, nodes, inputs, outputs, inits=(), name="m.onnx", opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return _save(tmp_path, graph, name, opset)


def _vi(name, shape, et=TensorProto.FLOAT):
    """A typed value; an int shape = that rank with unknown sizes (the checker wants a shape)."""
    return helper.make_tensor_value_info(name, et, [None] * shape if isinstance(shape, int)
                                         else shape)


def test_paddle_style_shape_chain_resolves_downstream_shapes(tmp_path):
    # x (N, C, H, W) -> Shape -> Slice[0:2] -> Concat(.., [-1]) -> Reshape: (N, C, H*W) -> MatMul
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "two"], ["nc"]),
             helper.make_node("Concat", ["nc", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["y"], name="mm")]
    ints = [numpy_helper.from_array(np.array(v, dtype=np.int64), n)
            for n, v in (("zero", [0]), ("two", [2]), ("minus1", [-1]))]
    path = _model(tmp_path, nodes, [_vi("x", ["N", 8, "H", "W"])], [_vi("y", 3)],
                  [*ints, _init("w", (100, 16))])
    m = load_onnx(path, dims={"H": 10, "W": 10})
    assert m.op("mm").flops == 2 * 8 * 16 * 100
    assert m.param_count == 1600  # the int64 shape constants are not weights


def test_einsum_flops_from_the_equation(tmp_path):
    nodes = [helper.make_node("Einsum", ["q", "k"], ["s"], name="qk",
                              equation="bhqd,bhkd->bhqk"),
             helper.make_node("Einsum", ["s", "w"], ["y"], name="proj", equation="...k,kn->...n"),
             helper.make_node("Einsum", ["y"], ["t"], name="sum", equation="bhqn->bn")]
    path = _model(tmp_path, nodes, [_vi("q", [1, 4, 16, 8]), _vi("k", [1, 4, 16, 8])],
                  [_vi("t", 2)], [_init("w", (16, 32))])
    m = load_onnx(path)
    assert m.op("qk").flops == 2 * 4 * 16 * 16 * 8  # as a batched MatMul
    assert m.op("proj").flops == 2 * (4 * 16 * 16) * 32
    assert m.op("sum").flops == 4 * 16 * 32  # one operand: additions only
    assert m.param_count == 16 * 32


def _branch(name, w_name, w_shape, inner_inits=()):
    conv = helper.make_node("Conv", ["x", w_name], [f"{name}_y"], name=f"{name}_conv",
                            pads=[1, 1, 1, 1])
    return helper.make_graph([conv], name, [], [_vi(f"{name}_y", 4)], list(inner_inits))


def _if_model(tmp_path, cond_const=None):
    # then: a 3x3 conv 3->16 whose weight lives inside the branch; else: 3->4 with an outer
    # initializer read from the enclosing graph (as silero-vad and torch exports do)
    then_g = _branch("then", "w_then", None, [_init("w_then", (16, 3, 3, 3))])
    else_g = _branch("else", "w_else", None)
    nodes = [helper.make_node("If", ["cond"], ["y"], name="pick", then_branch=then_g,
                              else_branch=else_g),
             helper.make_node("Relu", ["y"], ["z"], name="relu")]
    inits = [_init("w_else", (4, 3, 3, 3))]
    inputs = [_vi("x", [1, 3, 8, 8])]
    if cond_const is None:
        inputs.append(_vi("cond", [], TensorProto.BOOL))
    else:
        inits.append(numpy_helper.from_array(np.array(cond_const), "cond"))
    return _model(tmp_path, nodes, inputs, [_vi("z", 4)], inits,
                  name="m.onnx" if cond_const is None else "known.onnx")


def test_if_subgraph_weights_counted_and_taken_branch_said(tmp_path):
    path = _if_model(tmp_path)
    m = load_onnx(path)
    then_flops = 2 * 16 * 64 * 27
    assert m.param_count == 16 * 27 + 4 * 27  # both branches' weights are in the file
    assert m.op("pick/then/then_conv").flops == then_flops
    assert m.op("pick").weights[0].name == "m/w_else" and m.op("pick").flops == 0
    assert m.op("pick").attrs["branch"] == "then"
    assert m.predecessors("relu") == ("pick/then/then_conv",)
    (w,) = m.warnings
    assert "If node 'pick': condition unknown statically" in w and "--branch pick=then|else" in w
    assert f"'then' branch ({then_flops:,} FLOPs; the 'else' branch has {2 * 4 * 64 * 27:,})" in w
    e = load_onnx(path, branches={"pick": "else"})
    assert e.total_flops == 2 * 4 * 64 * 27 + 4 * 64 and e.param_count == m.param_count
    assert "chosen by --branch" in e.warnings[0]
    known = load_onnx(_if_model(tmp_path, cond_const=False))
    assert not known.warnings and known.op("pick/else/else_conv").flops == 2 * 4 * 64 * 27
    with pytest.raises(WorkloadError, match="must be 'then' or 'else'"):
        load_onnx(path, branches={"pick": "both"})
    with pytest.raises(WorkloadError, match="no If node named 'pik'; If nodes: pick"):
        load_onnx(path, branches={"pik": "then"})


def test_loop_body_flops_times_trip_count(tmp_path):
    body = helper.make_graph(
        [helper.make_node("MatMul", ["h", "w"], ["h2"], name="body_mm"),
         helper.make_node("Identity", ["c"], ["c2"])], "body",
        [_vi("i", [], TensorProto.INT64), _vi("c", [], TensorProto.BOOL), _vi("h", [1, 32])],
        [_vi("c2", [], TensorProto.BOOL), _vi("h2", [1, 32])])
    nodes = [helper.make_node("Loop", ["trips", "", "h0"], ["hn"], name="loop", body=body)]
    trips = numpy_helper.from_array(np.array(5, dtype=np.int64), "trips")
    m = load_onnx(_model(tmp_path, nodes, [_vi("h0", [1, 32])], [_vi("hn", 2)],
                         [trips, _init("w", (32, 32))]))
    op = m.op("loop")
    assert op.flops == 5 * 2 * 32 * 32 and op.attrs["trips"] == 5
    assert [w.name for w in op.weights] == ["m/w"] and not m.warnings


def test_constant_nodes_and_scalars(tmp_path):
    w = numpy_helper.from_array(np.ones((6, 4), dtype=np.float16), "wc")
    eps = numpy_helper.from_array(np.array(1e-5, dtype=np.float32), "eps")
    nodes = [helper.make_node("Constant", [], ["w"], value=w),
             helper.make_node("Constant", [], ["e"], value=eps),
             helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
             helper.make_node("Add", ["y", "e"], ["z"], name="add"),
             helper.make_node("ConstantOfShape", ["shape"], ["b"],
                              value=numpy_helper.from_array(np.array([0.5], np.float32))),
             helper.make_node("Add", ["z", "b"], ["out"], name="bias")]
    shape = numpy_helper.from_array(np.array([4], dtype=np.int64), "shape")
    m = load_onnx(_model(tmp_path, nodes, [_vi("x", [3, 6], TensorProto.FLOAT16)],
                         [_vi("out", 2)], [shape]))
    assert m.param_count == 24 + 4  # the fp16 Constant and the ConstantOfShape; not the scalar
    assert m.op("bias").weights[0].shape == (4,) and m.op("add").weights == ()


def test_unknown_shapes_are_flagged_not_silently_zero(tmp_path):
    nodes = [helper.make_node("NonZero", ["x"], ["nz"]),
             helper.make_node("Transpose", ["nz"], ["t"]),
             helper.make_node("Sigmoid", ["t"], ["s"], name="sig")]
    m = load_onnx(_model(tmp_path, nodes, [_vi("x", [4, 4])], [_vi("s", 2)]))
    assert m.op("sig").flops == 0
    assert any("could not infer" in w and "Sigmoid 'sig'" in w for w in m.warnings)
