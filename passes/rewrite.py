"""The passes: name nodes, find quantized convs, rewrite them into ROUPConv.

The passes *consume* per-layer assignments; they never choose multipliers (that is
``axonnx.assign``'s job, driven by a plan).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from axonnx.errors import AxonnxError
from axonnx.ops.roupconv import DOMAIN, OPSET_VERSION, make_roupconv_node

from .patterns import (
    FULLY_CONNECTED, RULES, UNSUPPORTED_CONVS, ConvLayer, GraphIndex, NoMatch,
)

# onnxruntime 1.31 loads models up to this IR version.
MAX_LOADABLE_IR_VERSION = 10


@dataclass
class ConvSurvey:
    layers: list[ConvLayer]
    refused: list[NoMatch] = field(default_factory=list)  # convs left alone, with reasons
    fully_connected: list[str] = field(default_factory=list)  # stay exact for now


def name_unnamed_nodes(model: onnx.ModelProto) -> bool:
    """Give every unnamed node a stable name (op type and position), so plans can name
    layers. Returns whether anything changed."""
    taken = {n.name for n in model.graph.node if n.name}
    changed = False
    for i, node in enumerate(model.graph.node):
        if not node.name:
            candidate = f"{node.op_type}_{i}"
            while candidate in taken:
                candidate += "_"
            node.name = candidate
            taken.add(candidate)
            changed = True
    return changed


def survey_convs(model: onnx.ModelProto) -> ConvSurvey:
    """Every quantized 2-D conv the rules recognise, in graph order."""
    index = GraphIndex(model.graph)
    survey = ConvSurvey([])
    for node in model.graph.node:
        if node.op_type in FULLY_CONNECTED:
            survey.fully_connected.append(node.name)
            continue
        if node.op_type in UNSUPPORTED_CONVS:
            survey.refused.append(NoMatch(node.name, f"{node.op_type} is not supported"))
            continue
        rule = next((r for r in RULES if r.anchor == node.op_type), None)
        if rule is None:
            continue
        found = rule.match(node, index)
        (survey.layers if found else survey.refused).append(found)
    return survey


def _zero_point_initializer(model: onnx.ModelProto, name: str, dtype) -> str:
    """An explicit zero point for an input that was omitted (the ONNX default is 0 uint8)."""
    tensor = numpy_helper.from_array(np.zeros((), dtype=dtype), name=name)
    model.graph.initializer.append(tensor)
    return name


def rewrite_to_roupconv(model: onnx.ModelProto, layers: list[ConvLayer], assignments: dict,
                        encoded_operand: str = "weight") -> onnx.ModelProto:
    """Replace each layer with a ROUPConv carrying ``assignments[layer.name]``
    (an ``axonnx.assign.LayerAssignment``). Works on a copy; other nodes are untouched."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    by_anchor: dict[str, onnx.NodeProto] = {}
    remove: set[str] = set()
    for layer in layers:
        assignment = assignments[layer.name]
        if assignment.index.shape != layer.weight.shape:
            raise AxonnxError(f"layer {layer.name!r}: the assignment has shape "
                              f"{assignment.index.shape}, the weight {layer.weight.shape}")
        inputs = list(layer.inputs)
        for slot, dtype_of in ((2, "x"), (5, "w"), (7, "y")):
            if not inputs[slot]:
                dtype = layer.weight.dtype if dtype_of == "w" else np.uint8
                inputs[slot] = _zero_point_initializer(out, f"{layer.name}_{dtype_of}_zero_point", dtype)
        while inputs and not inputs[-1]:
            inputs.pop()
        node = make_roupconv_node(
            inputs, [layer.output], name=layer.name, multipliers=assignment.multipliers,
            multiplier_index=assignment.index, encoded_operand=encoded_operand,
            conv_attributes=layer.attributes,
        )
        by_anchor[layer.replaced_nodes[-1]] = node
        remove.update(layer.replaced_nodes)
        _declare_output_type(out, layer.output, inputs[7])

    new_nodes = []
    for node in graph.node:
        if node.name in by_anchor:
            new_nodes.append(by_anchor[node.name])
        elif node.name not in remove:
            new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    _remove_dead(out, {n for layer in layers for n in layer.maybe_dead_nodes})

    if not any(o.domain == DOMAIN for o in out.opset_import):
        out.opset_import.append(onnx.helper.make_opsetid(DOMAIN, OPSET_VERSION))
    out.ir_version = min(out.ir_version, MAX_LOADABLE_IR_VERSION)
    return out


def _declare_output_type(model: onnx.ModelProto, output: str, y_zero_point: str) -> None:
    """Record the ROUPConv output's element type (that of y_zero_point) as value_info.
    ONNX shape inference cannot see into a custom op, and onnxruntime's QDQ fusions
    downstream (e.g. DequantizeLinear -> GlobalAveragePool -> QuantizeLinear) only fire
    when they know the type of the tensor they start from."""
    graph = model.graph
    elem_type = None
    for t in graph.initializer:
        if t.name == y_zero_point:
            elem_type = t.data_type
    if elem_type is None or output in {o.name for o in graph.output}:
        return
    kept = [v for v in graph.value_info if v.name != output]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    graph.value_info.append(onnx.helper.make_tensor_value_info(output, elem_type, None))


def _remove_dead(model: onnx.ModelProto, candidates: set[str]) -> None:
    """Drop candidate nodes whose outputs nobody reads any more, then unused initializers."""
    graph = model.graph
    changed = True
    while changed:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        keep = [n for n in graph.node
                if n.name not in candidates or any(o in used for o in n.output)]
        changed = len(keep) != len(graph.node)
        if changed:
            del graph.node[:]
            graph.node.extend(keep)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep_init = [t for t in graph.initializer if t.name in used]
    if len(keep_init) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep_init)
