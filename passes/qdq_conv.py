"""``QDQConvRule``: ``DequantizeLinear(x), DequantizeLinear(w) [, DequantizeLinear(bias)]
-> Conv -> QuantizeLinear``, as onnxruntime's ``quantize_static`` writes it; and
``QDQConvTransposeRule``, the same around a ConvTranspose (the only quantized form of
ConvTranspose onnxruntime's quantizer writes: in QOperator format it stays float)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from axonnx.ops.roupconv import conv_attributes
from axonnx.ops.roupconvtranspose import to_conv_layout, transpose_attributes

from ._layer import (
    QUANT_TYPES, TRANSPOSED_CONV, ConvLayer, GraphIndex, NoMatch, attribute, per_channel,
    rank_refusal, run_time_weight_reason,
)


class QDQConvRule:
    anchor = "Conv"
    channel_axis = 0  # the weight axis of the output channels (per-channel scales)

    def out_channels(self, node: onnx.NodeProto, weight: np.ndarray) -> int:
        return weight.shape[0]

    def layer(self, node: onnx.NodeProto, **fields) -> ConvLayer:
        return ConvLayer(attributes=conv_attributes(node), **fields)

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        if node.op_type != self.anchor or node.domain not in ("", "ai.onnx"):
            return NoMatch(node.name, f"not a {self.anchor}")
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
        m = self.out_channels(node, weight)
        w_axis = attribute(dq_w, "axis", 1)
        w_scale = index.constant(dq_w.input[1])
        w_zp = index.constant(dq_w.input[2]) if len(dq_w.input) > 2 and dq_w.input[2] else None
        if w_scale is None:
            return NoMatch(node.name, "the weight scale is not constant")
        if w_scale.size > 1 and w_axis != self.channel_axis:
            return NoMatch(node.name, f"per-channel weights quantized along axis {w_axis}, "
                                      f"not {self.channel_axis}")
        if w_scale.size not in (1, m):  # a grouped ConvTranspose's axis 1 holds C_out / group
            return NoMatch(node.name, f"{w_scale.size} weight scales for {m} output channels "
                                      "(per-channel scales shared by the groups); it stays exact")
        w_zp = np.zeros(1, weight.dtype) if w_zp is None else w_zp
        consumers = index.consumers.get(node.output[0], [])
        if len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear":
            return NoMatch(node.name, f"the {self.anchor} output does not go only to a "
                                      "QuantizeLinear")
        if node.output[0] in index.graph_outputs:
            return NoMatch(node.name, f"the float {self.anchor} output is a graph output")
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
        return self.layer(
            node, name=node.name, form="qdq", inputs=inputs, output=q.output[0], weight=weight,
            w_scale=per_channel(w_scale, m, "w_scale", node.name).astype(np.float32),
            w_zero_point=per_channel(w_zp, m, "w_zero_point", node.name),
            replaced_nodes=replaced, maybe_dead_nodes=dead,
        )


class QDQConvTransposeRule(QDQConvRule):
    anchor = "ConvTranspose"
    channel_axis = 1  # [C_in, C_out / group, kH, kW]; quantize_static's per-channel axis

    def out_channels(self, node: onnx.NodeProto, weight: np.ndarray) -> int:
        return weight.shape[1] * int(attribute(node, "group", 1))

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> ConvLayer | NoMatch:
        dq_w = index.producer.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type == self.anchor and (dq_w is None or dq_w.op_type != "DequantizeLinear"):
            return NoMatch(node.name, "a float ConvTranspose (its weight is not quantized: "
                                      "onnxruntime's QOperator quantizer leaves ConvTranspose "
                                      "in float); quantize the model in QDQ format "
                                      "(quantize_static's default) to approximate it; it stays "
                                      "exact")
        return super().match(node, index)

    def layer(self, node: onnx.NodeProto, **fields) -> ConvLayer:
        group = int(attribute(node, "group", 1))
        fields["weight"] = to_conv_layout(fields["weight"], group)
        return ConvLayer(attributes=transpose_attributes(node), kind=TRANSPOSED_CONV, **fields)
