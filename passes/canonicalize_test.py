"""canonicalize: Constant -> QuantizeLinear -> DequantizeLinear weights become initializers
with onnxruntime's exact bytes, float biases of QDQ layers become int32, and the QDQ conv
rule then matches a layer it refused before."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from axonnx.model import with_outputs
from axonnx.passes import GraphIndex, QDQConvRule, canonicalize, quantize_linear
from axonnx.passes.testing import model_from_text

GRAPH = """
<ir_version: 8, opset_import: ["" : 17]>
g (int8[1, 2, 6, 6] xq) => (int8[1, 3, 6, 6] yq, float[3, 2, 3, 3] y2) {
  wf = Constant <value = float[3, 2, 3, 3] {WEIGHTS}> ()
  wflat = Constant <value = float[54] {WEIGHTS}> ()
  shape = Constant <value_ints = [3, 2, 3, 3]> ()
  wr = Reshape (wflat, shape)
  wq = QuantizeLinear (wf, ws, zw)
  wpc = QuantizeLinear <axis = 0> (wr, wspc, zwpc)
  x = DequantizeLinear (xq, xs, zx)
  w = DequantizeLinear (wq, ws, zw)
  y = Conv <pads = [1, 1, 1, 1]> (x, w, b)
  yq = QuantizeLinear (y, ys, zy)
  y2 = DequantizeLinear <axis = 0> (wpc, wspc, zwpc)
}
"""


def model(rng):
    # Values on and next to .5 steps, and far out of range: rounding and saturation.
    weights = np.concatenate([np.arange(-27, 27) * 0.005, ]).astype(np.float32)
    weights[:6] = [0.0125, -0.0125, 0.0375, 9.0, -9.0, 0.0025]
    text = GRAPH.replace("WEIGHTS", ", ".join(f"{v!r}" for v in weights.tolist()))
    return model_from_text(text, {
        "ws": np.float32(0.005), "zw": np.int8(3),
        "wspc": np.array([0.005, 0.0025, 0.01], np.float32), "zwpc": np.array([0, -2, 5], np.int8),
        "xs": np.float32(0.02), "zx": np.int8(-4), "b": rng.standard_normal(3).astype(np.float32),
        "ys": np.float32(0.05), "zy": np.int8(1)}), weights


def test_folded_quantize_linear_equals_onnxruntime_byte_for_byte():
    rng = np.random.default_rng(0)
    original, _ = model(rng)
    feeds = {"xq": rng.integers(-128, 128, (1, 2, 6, 6)).astype(np.int8)}
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    probe = with_outputs(original, ["wq", "wpc"])
    want = ort.InferenceSession(probe.SerializeToString(), options).run(["wq", "wpc"], feeds)
    folded = onnx.ModelProto()
    folded.CopyFrom(original)
    report = canonicalize(folded)
    assert report.folded == {"Constant": 3, "Reshape": 1, "QuantizeLinear": 2}
    assert not any(n.op_type in ("Constant", "Reshape") for n in folded.graph.node)
    index = GraphIndex(folded.graph)
    for got, name in zip(want, ("wq", "wpc")):
        assert index.constant(name).tobytes() == got.tobytes()
    assert np.unique(want[0]).size > 10 and want[0].min() == -128 and want[0].max() == 127


def test_quantize_linear_rounds_half_to_even_and_saturates():
    got = quantize_linear(np.array([0.5, 1.5, 2.5, -0.5, 1e9, -1e9], np.float32),
                          np.float32(1), np.int8(0))
    assert got.tolist() == [0, 2, 2, 0, 127, -128]


def test_qdq_conv_rule_refuses_run_time_weights_and_matches_after_canonicalize():
    original, _ = model(np.random.default_rng(1))
    conv = next(n for n in original.graph.node if n.op_type == "Conv")
    refused = QDQConvRule().match(conv, GraphIndex(original.graph))
    assert not refused and "QuantizeLinear" in refused.reason and "computed at run time" in refused.reason
    work = onnx.ModelProto()
    work.CopyFrom(original)
    report = canonicalize(work)
    assert report.quantized_biases == [conv.name]
    index = GraphIndex(work.graph)
    conv = next(n for n in work.graph.node if n.op_type == "Conv")
    layer = QDQConvRule().match(conv, index)
    assert layer, layer.reason
    bias = index.constant(layer.inputs[8])
    scale = np.float32(0.02) * np.float32(0.005)
    b = numpy_helper.to_array(next(t for t in original.graph.initializer if t.name == "b"))
    assert bias.dtype == np.int32 and bias.tolist() == np.rint(b / scale).astype(np.int32).tolist()
