"""ROUPConvRule: a rewritten model is surveyed again (re-planning), its assignment read back."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx

from axonnx.multipliers import ROUP, Skip
from axonnx.passes import GraphIndex, ROUPConvRule, rewrite_to_roupconv, survey_convs
from axonnx.passes.testing import model_from_text

from .qlinearconv_test import GRAPH, initializers


def rewritten():
    rng = np.random.default_rng(0)
    model = model_from_text(GRAPH, initializers(rng))
    layer = survey_convs(model).layers[0]
    index = rng.integers(0, 2, layer.weight_shape).astype(np.uint8)
    assignment = SimpleNamespace(multipliers=(ROUP(1, 4), Skip()), index=index)
    return rewrite_to_roupconv(model, [layer], {layer.name: assignment}).model, index


def test_a_rewritten_node_is_a_layer_with_its_assignment():
    model, index = rewritten()
    survey = survey_convs(model)
    assert [layer.form for layer in survey.layers] == ["roupconv"]
    layer = survey.layers[0]
    assert [m.name for m in layer.assignment.multipliers] == ["ROUP(1,4)", "SKIP"]
    assert np.array_equal(layer.assignment.index, index)


def test_a_runtime_weight_without_an_index_is_refused():
    model, _ = rewritten()
    node = next(n for n in model.graph.node if n.op_type == "ROUPConv")
    node.input[3] = "runtime_w"
    kept = [a for a in node.attribute if a.name != "multiplier_index"]
    del node.attribute[:]
    node.attribute.extend(kept)
    model.graph.input.append(onnx.helper.make_tensor_value_info("runtime_w", onnx.TensorProto.INT8,
                                                                [3, 2, 3, 3]))
    refused = ROUPConvRule().match(node, GraphIndex(model.graph))
    assert not refused and "needs its multiplier_index" in refused.reason
