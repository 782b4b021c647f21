"""QGemmRule: onnxruntime's QGemm (transB, int32 bias) becomes a ROUPMatMul."""

from __future__ import annotations

import numpy as np
import pytest

from axonnx.passes import GraphIndex, QGemmRule
from axonnx.passes.testing import conv_weights, exact_rewrite_is_identical, model_from_text

GRAPH = """
<ir_version: 8, opset_import: ["" : 17, "com.microsoft" : 1]>
g (uint8[4, 8] a) => (uint8[4, 5] y) {
  y = com.microsoft.QGemm <transB = 1> (a, as, za, b, bs, zb, c, ys, zy)
}
"""


def initializers(rng):
    return {"as": np.float32(0.02), "za": np.uint8(5), "b": conv_weights(rng, (5, 8)),
            "bs": np.float32(0.01), "zb": np.int8(0),
            "c": rng.integers(-300, 300, 5).astype(np.int32), "ys": np.float32(0.3),
            "zy": np.uint8(9)}


def test_rewrites_bit_identically():
    rng = np.random.default_rng(0)
    model = model_from_text(GRAPH, initializers(rng))
    a = rng.integers(0, 256, (4, 8)).astype(np.uint8)
    assert exact_rewrite_is_identical(model, {"a": a}, matmul=True) == 1
    layer = QGemmRule().match(model.graph.node[0], GraphIndex(model.graph, model))
    assert layer.inputs[8] == "c" and layer.weight.shape == (5, 8, 1, 1)


@pytest.mark.parametrize("edit, reason", [
    (("<transB = 1>", "<transB = 1, transA = 1>"), "Gemm with transA=1"),
    (("<transB = 1>", "<transB = 1, alpha = 2.0>"), "alpha or beta other than 1"),
    (("c, ys, zy)", "c)"), "QGemm with a float output"),
])
def test_refusals_say_why(edit, reason):
    rng = np.random.default_rng(1)
    graph = GRAPH.replace(*edit)
    if "float output" in reason:
        graph = graph.replace("uint8[4, 5] y", "float[4, 5] y")
    model = model_from_text(graph, initializers(rng))
    refused = QGemmRule().match(model.graph.node[0], GraphIndex(model.graph, model))
    assert not refused and reason in refused.reason
