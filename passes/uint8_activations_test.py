"""shift_int8_activations: int8 activations stored as uint8 change no value after a
DequantizeLinear, also through ROUP nodes; tensors other ops read keep their type."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from axonnx import get_library_path
from axonnx.ops.roupconv import DOMAIN
from axonnx.passes import shift_int8_activations
from axonnx.passes.testing import model_from_text

GRAPH = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 2, 6, 6] x) => (float[1, 3, 6, 6] y, int8[1, 2, 6, 6] xq_out, float[1, 2, 3, 3] p) {
  xq = QuantizeLinear (x, xs, zx)
  xd = DequantizeLinear (xq, xs, zx)
  w = DequantizeLinear (wq, ws, zw)
  c = Conv <pads = [1, 1, 1, 1]> (xd, w)
  cq = QuantizeLinear (c, ys, zy)
  y = DequantizeLinear (cq, ys, zy)
  xq2 = QuantizeLinear (x, xs, zx)
  xq_out = Identity (xq2)
  xq3 = QuantizeLinear (x, xs, zx)
  pq = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (xq3)
  p = DequantizeLinear (pq, xs, zx)
}
"""


def _model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    return model_from_text(GRAPH, {
        "xs": np.float32(0.02), "zx": np.int8(-7), "ys": np.float32(0.05), "zy": np.int8(4),
        "ws": np.float32(0.01), "zw": np.int8(0),
        "wq": rng.integers(-127, 128, (3, 2, 3, 3)).astype(np.int8)})


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.register_custom_ops_library(get_library_path())
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})


def test_only_tensors_that_q_dq_alone_touch_are_shifted_and_no_value_changes():
    original = _model()
    shifted = onnx.ModelProto()
    shifted.CopyFrom(original)
    assert shift_int8_activations(shifted) == 2  # xq and cq; xq2 is copied, xq3 pooled
    onnx.checker.check_model(shifted, full_check=True)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in shifted.graph.initializer}
    by_output = {n.output[0]: n for n in shifted.graph.node}
    assert inits[by_output["xq"].input[2]].tolist() == 121
    assert inits[by_output["xq"].input[2]].dtype == np.uint8
    assert inits[by_output["cq"].input[2]].tolist() == 132
    assert by_output["xq2"].input[2] == "zx" and by_output["xq3"].input[2] == "zx"
    assert by_output["w"].input[2] == "zw"  # the weight's DequantizeLinear: not an activation
    # Values past both ends of the int8 range and on .5 steps: saturation and rounding.
    x = np.concatenate([np.linspace(-4, 4, 48), np.arange(-12, 12) * 0.01 + 0.005])
    x = x.astype(np.float32).reshape(1, 2, 6, 6)
    for want, got in zip(_run(original, x), _run(shifted, x)):
        assert want.dtype == got.dtype and want.tobytes() == got.tobytes()


def test_a_model_without_int8_activations_is_unchanged():
    model = _model()
    for t in model.graph.initializer:
        if t.name in ("zx", "zy"):
            t.CopyFrom(onnx.numpy_helper.from_array(
                onnx.numpy_helper.to_array(t).astype(np.int16).clip(0).astype(np.uint8), t.name))
    before = model.SerializeToString()
    assert shift_int8_activations(model) == 0
    assert model.SerializeToString() == before


EDGES = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 2, 6, 6] x, bool flag) => (float[1, 2, 6, 6] a, float[1, 2, 6, 6] b) {
  q1 = QuantizeLinear (x, xs, zx)
  a = DequantizeLinear (q1, xs)
  q2 = QuantizeLinear (x, xs, zx)
  b = If (flag) <then_branch = t () => (float[1, 2, 6, 6] bt) { bt = DequantizeLinear (q2, xs, zx) },
                 else_branch = e () => (float[1, 2, 6, 6] be) { be = DequantizeLinear (q2, xs, zx) }>
}
"""


def test_readers_it_cannot_rewrite_keep_the_int8_type():
    # q1's reader has no zero point (its default would be uint8's 0), q2 is read in the
    # branches of an If: neither may change, and zx must stay for the branches.
    model = model_from_text(EDGES, {"xs": np.float32(0.02), "zx": np.int8(-7)})
    before = model.SerializeToString()
    assert shift_int8_activations(model) == 0
    assert model.SerializeToString() == before


def test_a_roup_node_reading_one_tensor_twice(tmp_path):
    # a @ a^T-like: one int8 tensor as both operands of a ROUPMatMul (slots 0 and 3).
    from onnx import TensorProto, helper, numpy_helper

    from axonnx.multipliers import parse
    from axonnx.ops.roupmatmul import make_roupmatmul_node

    zx = numpy_helper.from_array(np.int8(3), "zx")
    inits = [numpy_helper.from_array(np.float32(0.05), "s"), zx,
             numpy_helper.from_array(np.float32(0.2), "ys"),
             numpy_helper.from_array(np.int8(-2), "zy")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zx"], ["q"]),
             make_roupmatmul_node(["q", "s", "zx", "q", "s", "zx", "ys", "zy"], ["p"], name="mm",
                                  multipliers=[parse("ROUP(1,4)")],
                                  multiplier_index=np.zeros((4, 4), np.uint8)),
             helper.make_node("DequantizeLinear", ["p", "ys", "zy"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(DOMAIN, 1)])
    model.ir_version = 8
    original = onnx.ModelProto()
    original.CopyFrom(model)
    assert shift_int8_activations(model) == 2  # q and p
    x = np.linspace(-9, 9, 16).astype(np.float32).reshape(4, 4)
    assert _run(model, x)[0].tobytes() == _run(original, x)[0].tobytes()
