"""``QDQConvRule``: ``DequantizeLinear(x), DequantizeLinear(w) [, DequantizeLinear(bias)]
-> Conv -> QuantizeLinear``, as onnxruntime's ``quantize_static`` writes it."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from axonnx.ops.roupconv import conv_attributes

from ._layer import (
    QUANT_TYPES, ConvLayer, GraphIndex, NoMatch, per_channel, rank_refusal, run_time_weight_reason,
)


class QDQConvRule:
    anchor = "Conv"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != "Conv" or node.domain not in ("", "ai.onnx"):
            return NoMatch(node.name, "not a Conv")
        producers = [index.producer.get(i) for i in node.input]
        dq_x, dq_w = producers[0], producers[1]
        if dq_x is None or dq_x.op_type != "DequantizeLinear":
            return NoMatch(node.name, "the activation does not come from DequantizeLinear")
        if dq_w is None or dq_w.op_type != "DequantizeLinear":
            return NoMatch(node.name, "the weight does not come from DequantizeLinear")
        weight = index.constant(dq_w.input[0])
        if weight is None:
            return NoMatch(node.name, run_time_weight_reason(index, dq_w.input[0]))
        if weight.dtype.type not in QUANT_TYPES:
            return NoMatch(node.name, f"the weight is {weight.dtype}, not int8/uint8")
        refused = rank_refusal(node, weight)
        if refused is not None:  # a NoMatch is falsy
            return refused
        m = weight.shape[0]
        w_axis = next((helper.get_attribute_value(a) for a in dq_w.attribute if a.name == "axis"), 1)
        w_scale = index.constant(dq_w.input[1])
        w_zp = index.constant(dq_w.input[2]) if len(dq_w.input) > 2 and dq_w.input[2] else None
        if w_scale is None:
            return NoMatch(node.name, "the weight scale is not constant")
        if w_scale.size > 1 and w_axis != 0:
            return NoMatch(node.name, f"per-channel weights quantized along axis {w_axis}, not 0")
        w_zp = np.zeros(1, weight.dtype) if w_zp is None else w_zp
        consumers = index.consumers.get(node.output[0], [])
        if len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear":
            return NoMatch(node.name, "the Conv output does not go only to a QuantizeLinear")
        if node.output[0] in index.graph_outputs:
            return NoMatch(node.name, "the float Conv output is a graph output")
        q = consumers[0]
        x_scale = index.constant(dq_x.input[1])
        if x_scale is None:
            return NoMatch(node.name, "the activation scale is not constant")
        bias_name = ""
        replaced = [node.name, q.name]
        dead = [dq_x.name, dq_w.name]
        if len(node.input) > 2 and node.input[2]:
            dq_b = producers[2]
            if dq_b is None or dq_b.op_type != "DequantizeLinear":
                return NoMatch(node.name, "the bias is not an int32 DequantizeLinear")
            bias = index.constant(dq_b.input[0])
            b_scale = index.constant(dq_b.input[1])
            if bias is None or bias.dtype != np.int32 or b_scale is None:
                return NoMatch(node.name, "the bias is not a constant int32 initializer")
            expected = (np.float32(x_scale) * per_channel(w_scale, m, "w_scale", node.name)
                        .astype(np.float32)).astype(np.float32)
            if not np.allclose(per_channel(b_scale, m, "bias scale", node.name), expected,
                               rtol=1e-6, atol=0):
                return NoMatch(node.name, "the bias scale is not x_scale * w_scale")
            bias_name = dq_b.input[0]
            dead.append(dq_b.name)
        inputs = [dq_x.input[0], dq_x.input[1], dq_x.input[2] if len(dq_x.input) > 2 else "",
                  dq_w.input[0], dq_w.input[1], dq_w.input[2] if len(dq_w.input) > 2 else "",
                  q.input[1], q.input[2] if len(q.input) > 2 else "", bias_name]
        return ConvLayer(
            name=node.name, form="qdq", inputs=inputs, output=q.output[0],
            attributes=conv_attributes(node), weight=weight,
            w_scale=per_channel(w_scale, m, "w_scale", node.name).astype(np.float32),
            w_zero_point=per_channel(w_zp, m, "w_zero_point", node.name),
            replaced_nodes=replaced, maybe_dead_nodes=dead,
        )
