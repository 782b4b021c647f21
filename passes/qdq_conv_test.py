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
