"""QDQConvRule: DequantizeLinear -> Conv -> QuantizeLinear becomes a ROUPConv."""

from __future__ import annotations

import numpy as np
import pytest

from axonnx.passes import GraphIndex, QDQConvRule
from axonnx.passes.testing import conv_weights, exact_rewrite_is_identical, model_from_text

GRAPH = """
<ir_version: 8, opset_import: ["" : 17]>
g (uint8[1, 2, 6, 6] xq) => (uint8[1, 3, 6, 6] yq) {
  x = DequantizeLinear (xq, xs, zx)
  w = DequantizeLinear <axis = 0> (wq, ws, zw)
  b = DequantizeLinear <axis = 0> (bq, bs)
  y = Conv <pads = [1, 1, 1, 1]> (x, w, b)
  yq = QuantizeLinear (y, ys, zy)
}
"""


def initializers(rng):
    ws = np.array([0.01, 0.02, 0.015], np.float32)
    return {"xs": np.float32(0.02), "zx": np.uint8(3), "wq": conv_weights(rng, (3, 2, 3, 3)),
            "ws": ws, "zw": np.zeros(3, np.int8),
            "bq": rng.integers(-500, 500, 3).astype(np.int32),
            "bs": (np.float32(0.02) * ws).astype(np.float32), "ys": np.float32(0.5),
            "zy": np.uint8(7)}


def test_rewrites_bit_identically_and_drops_the_dequantizers():
    rng = np.random.default_rng(0)
    model = model_from_text(GRAPH, initializers(rng))
    x = rng.integers(0, 256, (1, 2, 6, 6)).astype(np.uint8)
    assert exact_rewrite_is_identical(model, {"xq": x}) == 1
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    layer = QDQConvRule().match(conv, GraphIndex(model.graph))
    assert layer.form == "qdq" and layer.inputs[8] == "bq"
    assert len(layer.replaced_nodes) == 2 and len(layer.maybe_dead_nodes) == 3


@pytest.mark.parametrize("change, reason", [
    ("float bias scale", "the bias scale is not x_scale * w_scale"),
    ("float output", "the float Conv output is a graph output"),
    ("weight axis", "per-channel weights quantized along axis 1, not 0"),
])
def test_refusals_say_why(change, reason):
    rng = np.random.default_rng(1)
    inits = initializers(rng)
    graph = GRAPH
    if change == "float bias scale":
        inits["bs"] = np.full(3, 0.5, np.float32)
    elif change == "float output":
        graph = graph.replace("=> (uint8[1, 3, 6, 6] yq)", "=> (uint8[1, 3, 6, 6] yq, float[1, 3, 6, 6] y)")
    else:
        inits["wq"] = conv_weights(rng, (3, 3, 3, 3))
        inits["ws"] = np.full(3, 0.01, np.float32)
        graph = (graph.replace("<axis = 0>", "<axis = 1>").replace("[1, 2, 6, 6]", "[1, 3, 6, 6]"))
    model = model_from_text(graph, inits)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    refused = QDQConvRule().match(conv, GraphIndex(model.graph))
    assert not refused and reason in refused.reason


TRANSPOSE_GRAPH = """
<ir_version: 8, opset_import: ["" : 17]>
g (uint8[1, 4, 5, 5] xq) => (uint8[1, 6, 10, 10] yq) {
  x = DequantizeLinear (xq, xs, zx)
  w = DequantizeLinear <axis = 1> (wq, ws, zw)
  y = ConvTranspose <strides = [2, 2], pads = [1, 1, 1, 1], group = GROUP> (x, w)
  yq = QuantizeLinear (y, ys, zy)
}
"""


def transpose_model(group=1, per_channel=True, float_weight=False):
    rng = np.random.default_rng(2)
    inits = {"xs": np.float32(0.02), "zx": np.uint8(3), "ys": np.float32(0.5), "zy": np.uint8(7),
             "wq": conv_weights(rng, (4, 6 // group, 4, 4)),
             "ws": np.linspace(0.01, 0.02, 6 // group if per_channel else 1).astype(np.float32),
             "zw": np.zeros(6 // group if per_channel else 1, np.int8)}
    graph = TRANSPOSE_GRAPH.replace("GROUP", str(group))
    if not per_channel:
        graph = graph.replace("<axis = 1> ", "")
    if float_weight:  # QOperator: quantize_static leaves ConvTranspose in float
        graph = graph.replace("w = DequantizeLinear <axis = 1> (wq, ws, zw)", "w = Identity (wf)")
        inits = {k: v for k, v in inits.items() if k not in ("wq", "ws", "zw")}
        inits["wf"] = rng.standard_normal((4, 6, 4, 4)).astype(np.float32)
    return model_from_text(graph, inits)


def test_convtranspose_is_planned_in_conv_layout_and_written_back_in_its_own():
    from types import SimpleNamespace

    from axonnx.multipliers import EXACT, parse
    from axonnx.ops.roupconv import read_assignment
    from axonnx.ops.roupconvtranspose import from_conv_layout
    from axonnx.passes import QDQConvTransposeRule, rewrite_to_roupconv

    model = transpose_model()
    node = next(n for n in model.graph.node if n.op_type == "ConvTranspose")
    layer = QDQConvTransposeRule().match(node, GraphIndex(model.graph))
    assert layer.kind == "transposed conv" and layer.weight_shape == (6, 4, 4, 4)
    wq = next(t for t in model.graph.initializer if t.name == "wq")
    stored = np.frombuffer(wq.raw_data, np.int8).reshape(4, 6, 4, 4)
    assert np.array_equal(layer.weight, stored.transpose(1, 0, 2, 3))  # filter = output channel
    index = np.zeros(layer.weight_shape, np.uint8)
    index[2] = 1  # output channel 2
    done = rewrite_to_roupconv(model, [layer], {layer.name: SimpleNamespace(
        multipliers=(EXACT, parse("ROUP(1,4)")), index=index)}).model
    written = next(n for n in done.graph.node if n.op_type == "ROUPConvTranspose")
    got = read_assignment(written).index
    assert got.shape == (4, 6, 4, 4) and np.array_equal(got, from_conv_layout(index, 1))
    assert (got[:, 2] == 1).all() and (np.delete(got, 2, axis=1) == 0).all()


@pytest.mark.parametrize("case, reason", [
    (dict(group=2), "3 weight scales for 6 output channels"),
    (dict(float_weight=True), "a float ConvTranspose"),
])
def test_convtranspose_refusals_say_why(case, reason):
    from axonnx.passes import QDQConvTransposeRule

    model = transpose_model(**case)
    node = next(n for n in model.graph.node if n.op_type == "ConvTranspose")
    refused = QDQConvTransposeRule().match(node, GraphIndex(model.graph))
    assert not refused and reason in refused.reason


def test_grouped_per_tensor_convtranspose_is_a_layer():
    from axonnx.passes import survey_convs

    model = transpose_model(group=2, per_channel=False)
    assert [layer.kind for layer in survey_convs(model).layers] == ["transposed conv"]
