"""ONNX import: real .onnx files built with onnx.helper, and broken files."""

from __future__ import annotations

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
    nodes = [helper.make_node("Hardmax", ["x"], ["h"], name="hm"),
             helper.make_node("Det", ["h"], ["d"], name="det")]
    graph = helper.make_graph(
        nodes, "u", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [])])
    path = _save(tmp_path, graph)
    with pytest.raises(WorkloadError, match="unsupported ONNX op types Det, Hardmax"):
        load_onnx(path)
    m = load_onnx(path, allow_unsupported=True)
    assert [op.attrs.get("unsupported") for op in m.ops] == [True, True]
    assert "Det, Hardmax" in m.description


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
