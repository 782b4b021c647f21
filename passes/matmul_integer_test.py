"""MatMulIntegerRule: dynamic quantization's int32 products as ROUPMatMul's int32 form, and the
refusal of a per-row a_zero_point."""

from __future__ import annotations

import numpy as np

from axonnx.passes import GraphIndex, survey_convs
from axonnx.passes.matmul_integer import MatMulIntegerRule
from axonnx.passes.testing import model_from_text

GRAPH = """
<ir_version: 8, opset_import: ["" : 17]>
g (uint8[4, 8] a) => (int32[4, 5] y) {
  y = MatMulInteger (a, b, za, zb)
}
"""


def test_constant_b_is_a_fully_connected_layer():
    rng = np.random.default_rng(0)
    model = model_from_text(GRAPH, {"b": rng.integers(-128, 128, (8, 5)).astype(np.int8),
                                    "za": np.uint8(3), "zb": np.arange(5, dtype=np.int8)})
    layer = MatMulIntegerRule().match(model.graph.node[0], GraphIndex(model.graph, model))
    assert layer and layer.form == "integer" and layer.kind == "fully connected"
    assert layer.weight_shape == (5, 8, 1, 1) and layer.inputs[6] == ""
    assert list(layer.w_zero_point) == list(range(5)) and layer.x_dtype == np.uint8


def test_per_row_a_zero_point_is_refused_with_the_reason():
    rng = np.random.default_rng(0)
    model = model_from_text(GRAPH, {"b": rng.integers(-128, 128, (8, 5)).astype(np.int8),
                                    "za": np.arange(4, dtype=np.uint8), "zb": np.int8(0)})
    refused = MatMulIntegerRule().match(model.graph.node[0], GraphIndex(model.graph, model))
    assert not refused and "one value per row of a" in refused.reason
    survey = survey_convs(model, matmul=True)
    assert survey.layers == [] and [r.reason for r in survey.refused] == [refused.reason]
