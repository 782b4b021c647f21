"""Each op's oracle as an ``onnx.reference`` op (``reference_op``, one ``oracle_op`` factory)
runs a model in pure Python with the same bytes as the C++ kernel: ROUPConv, ROUPConvTranspose,
ROUPMatMul (its requantized and int32 forms)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from axonnx import InferenceSession
from axonnx.multipliers import parse
from axonnx.ops import roupconv, roupconvtranspose, roupmatmul

MULTIPLIERS = [parse("ROUP(0,0)"), parse("ROUP(1,4)"), parse("SKIP")]


def _model(node: onnx.NodeProto, x_shape, inits: dict, out_type=TensorProto.UINT8) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node], "one", [helper.make_tensor_value_info(node.input[0], TensorProto.UINT8, x_shape)],
        [helper.make_tensor_value_info(node.output[0], out_type, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(roupconv.DOMAIN, 1)])
    model.ir_version = 8
    return model


def _quant(rng, w_shape):
    return {"xs": np.float32(0.02), "xz": np.uint8(120),
            "w": rng.integers(-100, 100, w_shape).astype(np.int8),
            "ws": np.float32(0.01), "wz": np.int8(0), "ys": np.float32(0.3), "yz": np.uint8(128)}


CASES = ["conv", "conv_transpose", "matmul", "matmul_int32"]


@pytest.mark.parametrize("case", CASES)
def test_reference_op_equals_the_kernel(case):
    rng = np.random.default_rng(CASES.index(case))
    names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    out_type = TensorProto.UINT8
    if case == "conv":
        inits, x_shape = _quant(rng, (6, 4, 3, 3)), (2, 4, 7, 7)
        node = roupconv.make_roupconv_node(
            names, ["y"], name="n", multipliers=MULTIPLIERS,
            multiplier_index=rng.integers(0, 3, (6, 4, 3, 3)),
            conv_attributes={"pads": [1, 1, 1, 1], "strides": [2, 2]})
    elif case == "conv_transpose":
        inits, x_shape = _quant(rng, (4, 3, 4, 4)), (1, 4, 5, 6)
        node = roupconv.make_roupconv_node(
            names, ["y"], name="n", multipliers=MULTIPLIERS,
            multiplier_index=rng.integers(0, 3, (4, 3, 4, 4)),
            conv_attributes={"pads": [1, 1, 1, 1], "strides": [2, 2]},
            op_type=roupconvtranspose.OP_TYPE)
    else:
        inits, x_shape = _quant(rng, (8, 5)), (3, 7, 8)
        if case == "matmul_int32":  # MatMulInteger's form: no y_scale, y_zero_point
            names, out_type = names[:6], TensorProto.INT32
            del inits["ys"], inits["yz"]
        node = roupmatmul.make_roupmatmul_node(
            names, ["y"], name="n", multipliers=MULTIPLIERS,
            multiplier_index=rng.integers(0, 3, (8, 5)))
    model = _model(node, x_shape, inits, out_type)
    x = rng.integers(0, 256, x_shape).astype(np.uint8)
    reference = ReferenceEvaluator(model, new_ops=[roupconv.reference_op(),
                                                   roupconvtranspose.reference_op(),
                                                   roupmatmul.reference_op()])
    expected = reference.run(None, {"x": x})[0]
    got = InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert len(np.unique(got)) > 3  # the outputs spread over the range: a real comparison
