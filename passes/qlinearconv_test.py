"""QLinearConvRule: a QLinearConv becomes a ROUPConv; what it refuses, and why."""

from __future__ import annotations

import numpy as np
import pytest

from axonnx.passes import GraphIndex, QLinearConvRule
from axonnx.passes.testing import conv_weights, exact_rewrite_is_identical, model_from_text

GRAPH = """
<ir_version: 8, opset_import: ["" : 17]>
g (uint8[1, 2, 6, 6] x) => (uint8[1, 3, 6, 6] y) {
  y = QLinearConv <pads = [1, 1, 1, 1]> (x, xs, zx, w, ws, zw, ys, zy, b)
}
"""


def initializers(rng, weight_shape=(3, 2, 3, 3), w_scale=None):
    return {"xs": np.float32(0.02), "zx": np.uint8(3), "w": conv_weights(rng, weight_shape, np.int8),
            "ws": np.full(weight_shape[0], 0.01, np.float32) if w_scale is None else w_scale,
            "zw": np.zeros(weight_shape[0], np.int8), "ys": np.float32(0.5), "zy": np.uint8(7),
            "b": rng.integers(-500, 500, weight_shape[0]).astype(np.int32)}


def test_rewrites_bit_identically():
    rng = np.random.default_rng(0)
    model = model_from_text(GRAPH, initializers(rng))
    x = rng.integers(0, 256, (1, 2, 6, 6)).astype(np.uint8)
    assert exact_rewrite_is_identical(model, {"x": x}) == 1
    layer = QLinearConvRule().match(model.graph.node[0], GraphIndex(model.graph))
    assert layer.form == "qoperator" and layer.weight.shape == (3, 2, 3, 3)
    assert layer.attributes["pads"] == [1, 1, 1, 1] and layer.w_scale.shape == (3,)


@pytest.mark.parametrize("change, reason", [
    ("runtime weight", "is a graph input, not a constant"),
    ("runtime scale", "the weight scale or zero point is not constant"),
    ("1-D", "a 1-D convolution; axonnx rewrites 2-D convolutions only"),
])
def test_refusals_say_why(change, reason):
    rng = np.random.default_rng(1)
    inits = initializers(rng)
    graph = GRAPH
    if change == "runtime weight":
        del inits["w"]
        graph = graph.replace("(uint8[1, 2, 6, 6] x)", "(uint8[1, 2, 6, 6] x, int8[3, 2, 3, 3] w)")
    elif change == "runtime scale":
        del inits["ws"]
        graph = graph.replace("(uint8[1, 2, 6, 6] x)", "(uint8[1, 2, 6, 6] x, float[3] ws)")
    else:
        inits["w"] = conv_weights(rng, (3, 2, 3), np.int8)
        graph = (graph.replace("[1, 2, 6, 6]", "[1, 2, 6]").replace("[1, 3, 6, 6]", "[1, 3, 6]")
                 .replace("pads = [1, 1, 1, 1]", "pads = [1, 1]"))
    model = model_from_text(graph, inits)
    refused = QLinearConvRule().match(model.graph.node[0], GraphIndex(model.graph))
    assert not refused and refused.node == model.graph.node[0].name
    assert reason in refused.reason
