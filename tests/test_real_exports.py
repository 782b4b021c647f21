"""Issue 21 on export-shaped models (tests/export_model.py) quantized with quantize_static
defaults: weights behind Constant -> QuantizeLinear, neighbours' fusions kept, honest
summaries and energy totals, dynamic H and W, warnings that see the activation."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnxruntime.quantization import QuantType
from typer.testing import CliRunner

from axonnx.cli import app
from axonnx.diagnostics import NO_ACTIVATION, estimate_errors, preceding_activation
from axonnx.energy import energy_report
from axonnx.energy.report import network_gain
from axonnx.errors import AxonnxError
from axonnx.model import tensor_shapes
from axonnx.passes import GraphIndex
from axonnx.plan import Plan, plan_from_options
from axonnx.transform import inspect_model, prepared, transform_with_summary

from export_model import build_export_model, quantize_defaults

CONVS = {"stem", "body", "left", "right", "down"}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    return {
        "constant": quantize_defaults(build_export_model(constant_weights=True, transpose=True),
                                      root / "constant"),
        "int8": quantize_defaults(build_export_model(transpose=True), root / "int8"),
        "uint8": quantize_defaults(build_export_model(transpose=True), root / "uint8",
                                   activation_type=QuantType.QUInt8),
        "dynamic": quantize_defaults(build_export_model(dynamic_hw=True, activation="Relu"),
                                     root / "dynamic"),
    }


def test_constant_weights_quantized_at_run_time_are_folded_and_every_conv_rewritten(exports):
    _, layers, survey = prepared(onnx.load(exports["constant"]), matmul=True)
    assert {layer.name for layer in layers} == CONVS | {"fc", "up"}
    assert next(layer for layer in layers if layer.name == "fc").kind == "fully connected"
    assert survey.canonical.folded["QuantizeLinear"] == 7  # 6 conv-like weights and fc's
    model, summary = transform_with_summary(exports["constant"], Plan(matmul=True), exact_layers="roup")
    assert sum(n.op_type == "ROUPConv" for n in model.graph.node) == 5  # and fc:
    assert sum(n.op_type == "ROUPMatMul" for n in model.graph.node) == 1
    assert sum(n.op_type == "ROUPConvTranspose" for n in model.graph.node) == 1  # "up"
    assert summary.left_alone == []
    assert "folded" in summary.canonical and "QuantizeLinear" in summary.canonical


def _optimized_ops(model: onnx.ModelProto, path) -> Counter:
    from axonnx import get_library_path

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.optimized_model_filepath = str(path)
    options.register_custom_ops_library(get_library_path())
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(path).graph.node)


# What replaces a rewritten layer, and the Q/DQ it absorbs; every other op must match.
REPLACED = {"Conv", "QLinearConv", "ROUPConv", "Gemm", "QGemm", "QuantizeLinear",
            "DequantizeLinear", "Reshape", "Transpose", "ConvTranspose", "ROUPConvTranspose"}
# The Concat feeds "up": once "up" is rewritten its QuantizeLinear feeds the custom node
# directly, and onnxruntime no longer fuses QLinearConcat there (the same with a ROUPConv in
# that place; before ConvTranspose was rewritten, its DequantizeLinear hid this).
CONCAT = {"Concat", "QLinearConcat"}


@pytest.mark.parametrize("form", ["int8", "uint8"])
def test_neighbours_keep_their_onnxruntime_fusions(exports, form, tmp_path):
    original = onnx.load(exports[form])
    rewritten, _ = transform_with_summary(original, Plan(), exact_layers="roup")
    before = _optimized_ops(original, tmp_path / "original.onnx")
    after = _optimized_ops(rewritten, tmp_path / "rewritten.onnx")
    assert after["ROUPConv"] == len(CONVS)
    assert {"QLinearConcat", "QLinearGlobalAveragePool", "QGemm", "QLinearSoftmax"} <= set(before)
    if form == "uint8":
        assert "QLinearAdd" in before
    assert ({k: v for k, v in after.items() if k not in REPLACED | CONCAT}
            == {k: v for k, v in before.items() if k not in REPLACED | CONCAT})
    assert after["ROUPConvTranspose"] == 1
    assert after["QGemm"] == before["QGemm"]


def test_summary_counts_exact_plans_as_exact_and_lists_what_was_left_alone(exports, tmp_path):
    out = tmp_path / "exact.onnx"
    result = CliRunner().invoke(app, ["transform", str(exports["int8"]), "-o", str(out),
                                      "--llam", "ROUP(0,0)", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert summary["approximated"] == []
    assert {r["layer"] for r in summary["kept_exact"]} == CONVS | {"up"}
    assert {(r["node"], r["kind"]) for r in summary["left_alone"]} == {("fc", "fully connected")}
    text = CliRunner().invoke(app, ["transform", str(exports["int8"]), "-o", str(out),
                                    "--llam", "ROUP(1,4)", "--layers", "b*", "--matmul",
                                    "--exact-layers", "roup"])
    assert text.exit_code == 0, text.output
    assert "approximated: 1 conv layer" in text.output
    assert "4 conv layers, 1 transposed conv layer, 1 fully connected layer" in text.output
    # Each layer is named by the op it became: 5 convs, the transposed conv, the product.
    assert "layers rewritten: 5 as ROUPConv, 1 as ROUPConvTranspose, 1 as ROUPMatMul" in text.output


def test_energy_totals_include_exact_multiplications_and_agree_to_the_last_digit(exports):
    info = inspect_model(exports["int8"])
    assert info.left_alone_macs == {"fc": 4 * 8}
    up = next(layer for layer in info.layers if layer.name == "up")
    assert up.kind == "transposed conv" and up.macs_per_image == 8 * 8 * 2 * 2 * 16 * 16
    model, _ = transform_with_summary(exports["int8"], plan_from_options(llam="ROUP_M"))
    info = inspect_model(model)
    report = energy_report(info.all_multiplications, formats=info.operand_formats,
                           kinds=info.all_kinds)
    convs = sum(layer.macs_per_image for layer in info.layers)  # "up" included
    assert report.multiplications == convs + 4 * 8
    kinds = report.per_kind
    assert set(kinds) == {"conv", "transposed conv", "fully connected"}
    assert kinds["transposed conv"]["gain"] > 0.1 and kinds["conv"]["gain"] > 0.1
    assert report.gain < kinds["conv"]["gain"]  # the exact ones dilute the model's gain
    conv_only = energy_report({n: c for n, c in info.multiplications.items()
                               if info.kinds[n] == "conv"},
                              formats=info.operand_formats, kinds=info.kinds)
    assert conv_only.gain == conv_only.per_kind["conv"]["gain"]  # the same function
    assert report.gain == network_gain(report.layers)


def test_dynamic_h_and_w_need_and_take_an_input_shape(exports, tmp_path):
    with pytest.raises(AxonnxError, match="--input-shape"):
        inspect_model(exports["dynamic"])
    info = inspect_model(exports["dynamic"], "1,3,20,24")
    assert next(layer for layer in info.layers if layer.name == "stem").output_hw == (20, 24)
    out = tmp_path / "dyn.onnx"
    result = CliRunner().invoke(app, ["transform", str(exports["dynamic"]), "-o", str(out),
                                      "--llam", "ROUP_M", "--input-shape", "1,3,20,24",
                                      "--matmul"])
    assert result.exit_code == 0, result.output
    ops = [n.op_type for n in onnx.load(out).graph.node]
    assert ops.count("ROUPConv") == 4 and ops.count("ROUPMatMul") == 1


def test_a_shape_the_model_cannot_run_is_a_one_line_error(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.zeros((1, 3, 8, 8), np.float32), "c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(AxonnxError) as error:
        tensor_shapes(model, ["y"], "1,3,7,9")
    message = str(error.value)
    assert "\n" not in message and "cannot run on input x [1, 3, 7, 9]" in message
    assert "give a shape the model accepts" in message


def test_warnings_see_the_activation_before_each_layer(exports):
    for path, want in ((exports["int8"], "HardSwish"), (exports["dynamic"], "ReLU")):
        work, layers, _ = prepared(onnx.load(path))
        index = GraphIndex(work.graph)
        found = {layer.name: preceding_activation(index, layer.inputs[0]) for layer in layers}
        assert found["stem"] == NO_ACTIVATION  # the image
        assert found["body"] == want
    estimates = estimate_errors(onnx.load(exports["int8"]), plan_from_options(llam="ROUP(2,6)"))
    by_layer = {e.layer: e for e in estimates}
    assert by_layer["body"].activation == "HardSwish" and not by_layer["body"].measured


@pytest.mark.parametrize("build", ["mobilenet_v2", "text_detector"])
def test_uint8_networks_keep_every_fusion_and_gain_no_quantize_pairs(build, tmp_path):
    """On uint8 QDQ networks (residual Adds, Concat, Resize, Sigmoid, pooling, Gemm head) the
    exact-plan model's optimized graph is the original's with QLinearConv -> ROUPConv: not
    one QuantizeLinear/DequantizeLinear more (onnxruntime's layout Transposes aside)."""
    import numpy as np

    from axonnx import architectures
    from axonnx.zoo import quantize_float

    size = 32 if build == "mobilenet_v2" else 48
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(getattr(architectures, build)(size), fp32)
    calib = np.random.default_rng(0).uniform(-2, 2, (4, 3, size, size)).astype(np.float32)
    original = onnx.load(str(quantize_float(fp32, tmp_path / "q.onnx", calib, activations="uint8")))
    rewritten, _ = transform_with_summary(original, Plan(), exact_layers="roup")
    before = _optimized_ops(original, tmp_path / "original.onnx")
    after = _optimized_ops(rewritten, tmp_path / "rewritten.onnx")
    assert after["ROUPConv"] == before["QLinearConv"] > 10
    layout = {"QLinearConv", "ROUPConv", "Transpose"}
    assert ({k: v for k, v in after.items() if k not in layout}
            == {k: v for k, v in before.items() if k not in layout})
