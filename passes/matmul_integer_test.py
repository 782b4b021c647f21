"""MatMulIntegerRule: dynamic quantization's int32 products are refused, with the fix."""

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


def test_refused_with_the_reason_and_the_fix():
    rng = np.random.default_rng(0)
    model = model_from_text(GRAPH, {"b": rng.integers(-128, 128, (8, 5)).astype(np.int8),
                                    "za": np.uint8(0), "zb": np.int8(0)})
    refused = MatMulIntegerRule().match(model.graph.node[0], GraphIndex(model.graph, model))
    assert not refused and "int32 accumulators" in refused.reason
    assert "quantize_static" in refused.reason
    survey = survey_convs(model, matmul=True)
    assert survey.layers == [] and [r.reason for r in survey.refused] == [refused.reason]
