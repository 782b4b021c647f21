"""The transformer encoder (dynamic batch and sequence) quantized by onnxruntime's
quantize_dynamic (DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul [-> Add]): every
MatMulInteger becomes ROUPMatMul's int32 form, the exact plan is bit-identical, ROUP(1,4)
equals the oracle, and inspect counts the multiplications."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime.quantization import QuantType, quantize_dynamic

from axonnx import InferenceSession
from axonnx.architectures import transformer_encoder
from axonnx.ops.roupconv import read_assignment
from axonnx.ops.roupmatmul import OP_TYPE, roup_matmul
from axonnx.passes import ATTENTION, FULLY_CONNECTED_KIND
from axonnx.plan import Plan, plan_from_options
from axonnx.transform import inspect_model, prepared, transform_model

from test_encoder import D, HIDDEN, inputs, roup14_products_equal_the_oracle

# quantize_dynamic's default weight type (QInt8) and QUInt8.
WEIGHT_TYPES = {"s8": QuantType.QInt8, "u8": QuantType.QUInt8}


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("dynamic")
    onnx.save(transformer_encoder(), root / "float.onnx")
    for name, weight_type in WEIGHT_TYPES.items():
        quantize_dynamic(root / "float.onnx", root / f"{name}.onnx",
                         **({} if weight_type == QuantType.QInt8 else {"weight_type": weight_type}))
    return {name: onnx.load(root / f"{name}.onnx") for name in WEIGHT_TYPES} | {"root": root}


def session(model):
    # Basic optimizations: at the extended level onnxruntime fuses the original's
    # MatMulInteger -> Cast -> Mul into MatMulIntegerToFloat, whose float epilogue rounds
    # differently (by up to ~1e-6 here); the int32 products themselves are the same.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return InferenceSession(model.SerializeToString(), sess_options=options)


@pytest.mark.parametrize("weights", WEIGHT_TYPES)
def test_every_matmulinteger_is_approximated_and_the_exact_plan_is_bit_identical(encoders,
                                                                                 weights):
    original = encoders[weights]
    _, layers, survey = prepared(original, matmul=True)
    assert len(layers) == 12 and {layer.kind for layer in layers} == {FULLY_CONNECTED_KIND}
    assert {layer.form for layer in layers} == {"integer"}
    # quantize_dynamic leaves attention's activation x activation MatMuls in float.
    assert len(survey.refused) == 4
    rewritten = transform_model(original, Plan(matmul=True), exact_layers="roup")
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops.count(OP_TYPE) == 12 and "MatMulInteger" not in ops
    want, got = session(original), session(rewritten)
    for shape in ((1, 5), (3, 17)):
        a, b = want.run(None, inputs(*shape))[0], got.run(None, inputs(*shape))[0]
        assert a.tobytes() == b.tobytes(), shape
    # By default the exact products stay MatMulInteger (uint8 a, from DynamicQuantizeLinear).
    kept = [n.op_type for n in transform_model(original, Plan(matmul=True)).graph.node]
    assert kept.count("MatMulInteger") == 12 and OP_TYPE not in kept


def test_approximate_plan_equals_the_oracle(encoders):
    # int32 outputs, as MatMulInteger's; the plan changes them
    assert roup14_products_equal_the_oracle(encoders["s8"], dtype=np.int32) >= 10


def test_inspect_lists_the_products_with_their_multiplications(encoders):
    seq = 9
    info = inspect_model(encoders["u8"], input_shape=f"1,{seq},{D}", matmul=True)
    per_layer = [seq * D * D] * 4 + [seq * D * HIDDEN, seq * HIDDEN * D]
    assert sorted(layer.macs_per_image for layer in info.layers) == sorted(per_layer * 2)
    done = subprocess.run(
        [sys.executable, "-P", "-m", "axonnx", "inspect", str(encoders["root"] / "u8.onnx"),
         "--matmul", "--input-shape", f"1,{seq},{D}"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("integer") >= 12 and f"{seq * D * HIDDEN:,}" in done.stdout



def test_activation_b_is_bit_identical():
    """Both operands from DynamicQuantizeLinear (b's zero point computed at run), batched."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("DynamicQuantizeLinear", [x], [f"{x}q", f"{x}s", f"{x}z"])
             for x in ("x", "w")]
    nodes.append(helper.make_node("MatMulInteger", ["xq", "wq", "xz", "wz"], ["y"], name="mm"))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 5, 8]),
                     helper.make_tensor_value_info("w", TensorProto.FLOAT, ["b", 8, 6])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    _, layers, _ = prepared(model, matmul=True)
    assert [layer.kind for layer in layers] == [ATTENTION]
    rewritten = transform_model(model, Plan(matmul=True), exact_layers="roup")
    assert [n.op_type for n in rewritten.graph.node].count(OP_TYPE) == 1
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((3, 5, 8)).astype(np.float32),
             "w": rng.standard_normal((3, 8, 6)).astype(np.float32)}
    want, got = (session(m).run(None, feeds)[0] for m in (model, rewritten))
    assert got.dtype == np.int32 and want.tobytes() == got.tobytes()
