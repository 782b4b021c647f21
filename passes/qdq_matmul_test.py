"""QDQMatMulRule / QDQGemmRule: DequantizeLinear -> MatMul|Gemm -> QuantizeLinear, fully
connected or activation x activation (attention), rewritten to ROUPMatMul."""

from __future__ import annotations

import numpy as np
import pytest

from axonnx.passes import ATTENTION, GraphIndex, QDQGemmRule, QDQMatMulRule
from axonnx.passes.testing import exact_rewrite_is_identical, model_from_text

ATTENTION_GRAPH = """
<ir_version: 8, opset_import: ["" : 17]>
g (uint8[2, 4, 8] aq, uint8[2, 8, 4] bq) => (uint8[2, 4, 4] yq) {
  a = DequantizeLinear (aq, as, za)
  b = DequantizeLinear (bq, bs, zb)
  y = MatMul (a, b)
  yq = QuantizeLinear (y, ys, zy)
}
"""
QUANT = {"as": np.float32(0.02), "za": np.uint8(3), "bs": np.float32(0.03), "zb": np.uint8(128),
         "bs2": np.full(4, 0.03, np.float32),
         "ys": np.float32(0.4), "zy": np.uint8(10)}


def test_attention_product_is_bit_identical_for_any_batch_and_sequence():
    rng = np.random.default_rng(0)
    model = model_from_text(ATTENTION_GRAPH, QUANT)
    feeds = {"aq": rng.integers(0, 256, (2, 4, 8)).astype(np.uint8),
             "bq": rng.integers(0, 256, (2, 8, 4)).astype(np.uint8)}
    assert exact_rewrite_is_identical(model, feeds, matmul=True) == 1
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul")
    layer = QDQMatMulRule().match(matmul, GraphIndex(model.graph, model))
    assert layer.kind == ATTENTION and layer.weight is None
    # One [K, N] index for both batch matrices: N=4 filters of K=8.
    assert layer.matmul.index_shape == (8, 4) and layer.weight_shape == (4, 8, 1, 1)
    # Dynamic batch and sequence: the dims that are not static get one multiplier each.
    dynamic = model_from_text(ATTENTION_GRAPH.replace("[2, 4, 8] aq", "[B, S, 8] aq")
                              .replace("[2, 8, 4] bq", "[B, 8, S] bq")
                              .replace("[2, 4, 4] yq", "[B, S, S] yq"), QUANT)
    for shape in ((1, 5), (3, 17)):
        b, s = shape
        feeds = {"aq": rng.integers(0, 256, (b, s, 8)).astype(np.uint8),
                 "bq": rng.integers(0, 256, (b, 8, s)).astype(np.uint8)}
        assert exact_rewrite_is_identical(dynamic, feeds, matmul=True) == 1
    matmul = next(n for n in dynamic.graph.node if n.op_type == "MatMul")
    layer = QDQMatMulRule().match(matmul, GraphIndex(dynamic.graph, dynamic))
    assert layer.matmul.index_shape == (8, 1) and layer.weight_shape == (1, 8, 1, 1)


@pytest.mark.parametrize("rule, graph, reason", [
    (QDQMatMulRule(), ATTENTION_GRAPH.replace("bs, zb)", "bs2, zb)"),
     "without a per-tensor scale and zero point for the second operand"),
    (QDQMatMulRule(), ATTENTION_GRAPH.replace("yq = QuantizeLinear (y, ys, zy)",
                                              "yq = QuantizeLinear (y, ys, zy)\n  z = Relu (y)")
     .replace("=> (uint8[2, 4, 4] yq)", "=> (uint8[2, 4, 4] yq, float[2, 4, 4] z)"),
     "does not go only to a QuantizeLinear"),
    (QDQGemmRule(), ATTENTION_GRAPH.replace("[2, 4, 8] aq", "[4, 8] aq")
     .replace("[2, 8, 4] bq", "[8, 4] bq").replace("[2, 4, 4] yq", "[4, 4] yq")
     .replace("y = MatMul (a, b)", "y = Gemm <alpha = 0.5> (a, b)"), "alpha or beta other than 1"),
])
def test_refusals_say_why(rule, graph, reason):
    model = model_from_text(graph, QUANT)
    anchor = next(n for n in model.graph.node if n.op_type == rule.anchor)
    refused = rule.match(anchor, GraphIndex(model.graph, model))
    assert not refused and reason in refused.reason
