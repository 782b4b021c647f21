"""int8 activations stored as uint8: every int8 activation tensor that only Q/DQ and ROUP
nodes touch is stored +128, with its zero points +128 as uint8.

Why: on x86 onnxruntime runs uint8-activation QDQ groups (DQ -> Conv -> Q, MatMul, Add...)
as its fused u8s8 kernels (MLAS, NHWC), but computes int8-activation convs in float:
``quantize_static``'s default QDQ int8 ResNet-50 runs 3x slower than its uint8 form. Layers a
plan keeps exact can then stay onnxruntime's own, at its uint8 speed.

It changes no number downstream of a DequantizeLinear, as ONNX defines the ops (onnxruntime's
own fusions of uint8 groups can round differently from its float path for int8 ones: README):

- ``DequantizeLinear(x + 128, zp + 128) = (x - zp) * scale``, the same integer difference;
- ``QuantizeLinear(f, zp + 128)`` in uint8 is the int8 result + 128 (both saturate
  ``round(f / scale)`` to ``[-128 - zp, 127 - zp]`` before adding the zero point);
- a ROUP node sees the zero-point-free ``x - zp`` (and an unsigned LUT the stored int8 value
  + 128, which the uint8 value now is); it requantizes to ``y_zero_point + 128`` likewise.

A tensor read by any other op (a graph output, an int8 MaxPool...) keeps its int8 type.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from axonnx.ops.roupconv import DOMAIN

from ._layer import GraphIndex

# Per op type, for a quantized tensor it reads at an input slot: the slot of that tensor's
# zero point. ROUP nodes: x (0) and an activation B / weight (3).
_READ_ZERO_POINTS = {"DequantizeLinear": {0: 2}, "ROUP": {0: 2, 3: 5}}
# Per op type, the zero point of the quantized tensor it writes (output 0).
_WRITE_ZERO_POINT = {"QuantizeLinear": 2, "ROUP": 7}


def _kind(node: onnx.NodeProto) -> str:
    return "ROUP" if node.domain == DOMAIN else node.op_type


def _subgraph_reads(graph: onnx.GraphProto) -> set[str]:
    """Names the subgraphs of ``graph``'s nodes (If, Loop, Scan bodies) read, at any depth:
    readers the pass cannot rewrite, and initializers it must keep."""
    names: set[str] = set()
    for node in graph.node:
        for attr in node.attribute:
            bodies = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for body in bodies:
                names.update(name for inner in body.node for name in inner.input)
                names.update(_subgraph_reads(body))
    return names


def shift_int8_activations(model: onnx.ModelProto) -> int:
    """Store every int8 activation tensor of ``model`` that can be as uint8 (in place);
    returns how many were. A tensor is left as it is when anything else reads it: another op,
    a subgraph, the graph's outputs, or a reader whose zero point is absent (its default
    would be uint8's 0) or not a constant."""
    graph = model.graph
    index = GraphIndex(graph)
    blocked = {o.name for o in graph.output} | _subgraph_reads(graph)
    shifted: list[tuple[onnx.NodeProto, int, list[tuple[onnx.NodeProto, int]]]] = []
    for node in graph.node:
        zp_slot = _WRITE_ZERO_POINT.get(_kind(node))
        if zp_slot is None or len(node.input) <= zp_slot or not node.output:
            continue
        tensor = node.output[0]
        zero_point = index.constant(node.input[zp_slot])
        if zero_point is None or zero_point.dtype != np.int8 or tensor in blocked:
            continue
        if node.op_type == "QuantizeLinear" and index.constant(node.input[0]) is not None:
            continue  # a constant (a weight): its readers are not activations
        readers = []
        for reader in {id(n): n for n in index.consumers.get(tensor, [])}.values():
            slots = _READ_ZERO_POINTS.get(_kind(reader), {})
            for i, name in enumerate(reader.input):
                if name == tensor:
                    slot = slots.get(i)
                    known = (slot is not None and slot < len(reader.input) and reader.input[slot]
                             and index.constant(reader.input[slot]) is not None)
                    readers.append((reader, slot if known else None))
        if not readers or any(slot is None for _, slot in readers):
            continue
        shifted.append((node, zp_slot, readers))

    taken = ({t.name for t in graph.initializer} | {i.name for i in graph.input}
             | {o for n in graph.node for o in n.output})
    made: dict[str, str] = {}

    def as_uint8(name: str) -> str:
        if name not in made:
            value = index.constant(name).astype(np.int16) + 128
            new = f"{name}_as_uint8"
            while new in taken:
                new += "_"
            taken.add(new)
            graph.initializer.append(numpy_helper.from_array(value.astype(np.uint8), new))
            made[name] = new
        return made[name]

    tensors = set()
    for writer, zp_slot, readers in shifted:
        writer.input[zp_slot] = as_uint8(writer.input[zp_slot])
        for attr in writer.attribute:
            if attr.name == "output_dtype":
                attr.i = onnx.TensorProto.UINT8
        for reader, slot in readers:
            reader.input[slot] = as_uint8(reader.input[slot])
        tensors.add(writer.output[0])
    for info in graph.value_info:
        if info.name in tensors:
            info.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    # The int8 zero points nothing reads any more (a graph input, IR < 4, stays).
    used = ({name for node in graph.node for name in node.input} | blocked
            | {i.name for i in graph.input})
    unused = [t for t in graph.initializer if t.name in made and t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    return len(tensors)
