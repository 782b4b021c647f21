"""What the rules' ``_test.py`` files share: models written as ONNX text with numpy
initializers, and the positive check (the rewrite count, a full ``onnx.checker`` run and the
same output bytes as the original under an all-exact assignment)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx
from onnx import numpy_helper

from axonnx.multipliers import EXACT

from .rewrite import name_unnamed_nodes, rewrite_to_roupconv, survey_convs


def model_from_text(text: str, initializers: dict[str, np.ndarray]) -> onnx.ModelProto:
    """``onnx.parser`` text (the graph) plus named numpy initializers; nodes get names, as
    ``axonnx.transform`` gives them before the rules run."""
    model = onnx.parser.parse_model(text)
    name_unnamed_nodes(model)
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), name=k)
                                   for k, v in initializers.items())
    onnx.checker.check_model(model)
    return model


def conv_weights(rng: np.random.Generator, shape, dtype=np.int8) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


def exact_rewrite_is_identical(model: onnx.ModelProto, feeds: dict[str, np.ndarray], *,
                               matmul: bool = False) -> int:
    """Rewrite every layer the rules match with an all-exact assignment, check the model and
    compare its outputs with the original's byte for byte (graph optimisations off, so that
    onnxruntime's fusions do not differ between the two). Returns the number of ROUPConv/ROUPMatMul nodes."""
    from axonnx._library import InferenceSession

    import onnxruntime as ort

    survey = survey_convs(model, matmul=matmul)
    # What the rewrite reads of an axonnx.assign.LayerAssignment (a layer above the passes).
    assignments = {layer.name: SimpleNamespace(multipliers=(EXACT,),
                                               index=np.zeros(layer.weight_shape, np.uint8))
                   for layer in survey.layers}
    result = rewrite_to_roupconv(model, survey.layers, assignments)
    assert result.modified == bool(survey.layers)
    rewritten = result.model
    onnx.checker.check_model(rewritten)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = InferenceSession(model, options).run(None, feeds)
    got = InferenceSession(rewritten, options).run(None, feeds)
    assert all(a.dtype == b.dtype and a.tobytes() == b.tobytes() for a, b in zip(want, got))
    return sum(n.op_type in ("ROUPConv", "ROUPMatMul") for n in rewritten.graph.node)
