"""QLinearMatMulRule: a fully connected QLinearMatMul becomes a ROUPMatMul."""

from __future__ import annotations

import numpy as np

from axonnx.passes import FULLY_CONNECTED_KIND, GraphIndex, QLinearMatMulRule
from axonnx.passes.testing import conv_weights, exact_rewrite_is_identical, model_from_text

GRAPH = """
<ir_version: 8, opset_import: ["" : 17]>
g (uint8[4, 8] a) => (uint8[4, 5] y) {
  y = QLinearMatMul (a, as, za, b, bs, zb, ys, zy)
}
"""


def initializers(rng, b_shape=(8, 5)):
    return {"as": np.float32(0.02), "za": np.uint8(5), "b": conv_weights(rng, b_shape),
            "bs": np.float32(0.01), "zb": np.int8(0), "ys": np.float32(0.3), "zy": np.uint8(9)}


def test_fully_connected_rewrites_bit_identically():
    rng = np.random.default_rng(0)
    model = model_from_text(GRAPH, initializers(rng))
    a = rng.integers(0, 256, (4, 8)).astype(np.uint8)
    assert exact_rewrite_is_identical(model, {"a": a}, matmul=True) == 1
    layer = QLinearMatMulRule().match(model.graph.node[0], GraphIndex(model.graph, model))
    assert layer.kind == FULLY_CONNECTED_KIND
    assert layer.weight.shape == (5, 8, 1, 1)  # one filter per output column
    weight = GraphIndex(model.graph).constant("b")
    assert np.array_equal(layer.weight[:, :, 0, 0], weight.T)


def test_a_weight_of_rank_three_is_one_group_per_matrix():
    rng = np.random.default_rng(1)
    model = model_from_text(GRAPH.replace("uint8[4, 8] a", "uint8[2, 4, 8] a")
                            .replace("uint8[4, 5] y", "uint8[2, 4, 5] y"),
                            initializers(rng, (2, 8, 5)))
    a = rng.integers(0, 256, (2, 4, 8)).astype(np.uint8)
    assert exact_rewrite_is_identical(model, {"a": a}, matmul=True) == 1
    layer = QLinearMatMulRule().match(model.graph.node[0], GraphIndex(model.graph, model))
    assert layer.weight.shape == (10, 8, 1, 1) and layer.matmul.index_shape == (2, 8, 5)
