"""edit_constants: new weight and bias initializers for ROUPConv nodes, in place."""

from __future__ import annotations

import numpy as np
import pytest

from axonnx.errors import AxonnxError
from axonnx.passes import ConstantEdit, GraphIndex, edit_constants

from .roupconv_test import rewritten


def test_weights_and_biases_are_replaced_and_old_constants_dropped():
    model, _ = rewritten()
    node = next(n for n in model.graph.node if n.op_type == "ROUPConv")
    index = GraphIndex(model.graph)
    old_bias = index.constant(node.input[8]).astype(np.int64)
    weight = -index.constant(node.input[3])
    result = edit_constants(model, {node.name: ConstantEdit(weight, np.array([1, -2, 3]))})
    assert result.modified and result.model is model
    index = GraphIndex(model.graph)
    assert np.array_equal(index.constant(node.input[3]), weight)
    assert np.array_equal(index.constant(node.input[8]), old_bias - [1, -2, 3])
    assert node.input[3].endswith("_tuned_weight") and node.input[8].endswith("_corrected_bias")
    assert {"w", "b"}.isdisjoint(t.name for t in model.graph.initializer)  # unused: dropped


def test_a_bias_leaving_int32_changes_nothing():
    model, _ = rewritten()
    before = model.SerializeToString()
    node = next(n for n in model.graph.node if n.op_type == "ROUPConv")
    with pytest.raises(AxonnxError, match="the corrected bias overflows int32"):
        edit_constants(model, {node.name: ConstantEdit(None, np.array([-2**31, 0, 0]))})
    assert model.SerializeToString() == before
