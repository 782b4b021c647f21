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
from axonnx.ops.roupconv import DOMAIN, OPSET_VERSION, OP_TYPE, make_roupconv_node
from axonnx.ops.roupconvtranspose import OP_TYPE as TRANSPOSE_OP_TYPE
from axonnx.ops.roupconvtranspose import from_conv_layout
from axonnx.ops.roupmatmul import make_roupmatmul_node, matmul_index

from .canonicalize import Canonicalized
from ._layer import FULLY_CONNECTED_KIND, TRANSPOSED_CONV, ConvLayer, GraphIndex, NoMatch
from .rules import MATMUL_RULES, RULES, UNSUPPORTED_CONVS

# onnxruntime 1.31 loads models up to this IR version.
MAX_LOADABLE_IR_VERSION = 10


@dataclass(frozen=True)
class PassResult:
    """What a pass gives back (as ir-py's passes do): the new model and whether it changed."""

    model: onnx.ModelProto
    modified: bool


@dataclass
class ConvSurvey:
    layers: list[ConvLayer]
    refused: list[NoMatch] = field(default_factory=list)  # convs left alone, with reasons
    # Matrix products left exact (not asked for), by name: their kind.
    fully_connected: dict[str, str] = field(default_factory=dict)
    canonical: Canonicalized | None = None  # what canonicalisation did before the survey
    graph: onnx.GraphProto | None = None  # the graph surveyed (for the op types of nodes)


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


def survey_convs(model: onnx.ModelProto, matmul: bool = False) -> ConvSurvey:
    """Every quantized 2-D conv the rules recognise, in graph order; with ``matmul``, the
    quantized matrix products (MatMul, Gemm: fully connected and attention) too. Without
    it they are listed in ``fully_connected`` with their kind. Nodes already rewritten to
    ROUPConv are always layers."""
    index = GraphIndex(model.graph, model)
    survey = ConvSurvey([], graph=model.graph)
    matmul_rules = {r.anchor: r for r in MATMUL_RULES}
    for node in model.graph.node:
        if node.op_type in UNSUPPORTED_CONVS:
            survey.refused.append(NoMatch(node.name, UNSUPPORTED_CONVS[node.op_type]))
            continue
        if node.op_type in matmul_rules:
            found = matmul_rules[node.op_type].match(node, index)
            if not matmul:
                survey.fully_connected[node.name] = found.kind if found else FULLY_CONNECTED_KIND
                continue
        else:
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


def _unit_scale_initializer(model: onnx.ModelProto) -> str:
    """The scales of an int32-form ROUPMatMul: 1.0, shared (the op checks them, applies none)."""
    name = "axonnx_unit_scale"
    if not any(t.name == name for t in model.graph.initializer):
        model.graph.initializer.append(numpy_helper.from_array(np.float32(1.0), name))
    return name


def rewrite_to_roupconv(model: onnx.ModelProto, layers: list[ConvLayer], assignments: dict,
                        encoded_operand: str = "weight") -> PassResult:
    """Replace each layer with a ROUPConv carrying ``assignments[layer.name]``
    (an ``axonnx.assign.LayerAssignment``). Functional: works on a copy, other nodes are
    untouched; ``modified`` says whether any layer was rewritten."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    known = _inferred_value_infos(model)
    by_anchor: dict[str, list[onnx.NodeProto]] = {}
    remove = {n for layer in layers for n in layer.replaced_nodes}
    for layer in layers:
        assignment = assignments[layer.name]
        if assignment.index.shape != layer.weight_shape:
            raise AxonnxError(f"layer {layer.name!r}: the assignment has shape "
                              f"{assignment.index.shape}, the weight {layer.weight_shape}")
        inputs = list(layer.inputs)
        # MatMulInteger's ROUPMatMul (int32 form): no y_scale; unit scales, which it does not apply.
        integer = layer.matmul is not None and not inputs[6]
        for slot, dtype_of in ((2, "x"), (5, "w")) + (() if integer else ((7, "y"),)):
            if not inputs[slot]:
                dtype = layer.weight_dtype if dtype_of == "w" else (
                    layer.x_dtype if dtype_of == "x" and layer.x_dtype is not None else np.uint8)
                inputs[slot] = _zero_point_initializer(out, f"{layer.name}_{dtype_of}_zero_point", dtype)
        if integer:
            for slot in (1, 4):
                inputs[slot] = inputs[slot] or _unit_scale_initializer(out)
        while inputs and not inputs[-1]:
            inputs.pop()
        # The ROUPConv writes the replaced QuantizeLinear's output tensor itself. (Keeping
        # that QuantizeLinear behind an exact DequantizeLinear round trip for the neighbours'
        # QDQ groups was tried: onnxruntime left the extra pairs in uint8 models, e.g. 5 in
        # MobileNetV2, and it did not bring back the int8 fusions either.)
        if layer.matmul is not None:
            node = _matmul_node(out, layer, inputs, assignment, encoded_operand)
        else:
            index, op_type = assignment.index, OP_TYPE
            if layer.kind == TRANSPOSED_CONV:  # plans see the conv layout, the node its weight's
                index = from_conv_layout(index, int(layer.attributes.get("group", 1)))
                op_type = TRANSPOSE_OP_TYPE
            node = make_roupconv_node(
                inputs, [layer.output], name=layer.name, multipliers=assignment.multipliers,
                multiplier_index=index, encoded_operand=encoded_operand,
                conv_attributes=layer.attributes, op_type=op_type,
            )
        by_anchor[layer.replaced_nodes[-1]] = [node]
        _declare_output_type(out, layer.output, "" if integer else inputs[7],
                             known.get(layer.output), onnx.TensorProto.INT32 if integer else None)

    new_nodes = []
    for node in graph.node:
        if node.name in by_anchor:
            new_nodes.extend(by_anchor[node.name])
        elif node.name not in remove:
            new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    _remove_dead(out, {n for layer in layers for n in layer.maybe_dead_nodes})

    if not any(o.domain == DOMAIN for o in out.opset_import):
        out.opset_import.append(onnx.helper.make_opsetid(DOMAIN, OPSET_VERSION))
    out.ir_version = min(out.ir_version, MAX_LOADABLE_IR_VERSION)
    return PassResult(out, bool(layers))


def _matmul_node(model: onnx.ModelProto, layer: ConvLayer, inputs: list[str], assignment,
                 encoded_operand: str) -> onnx.NodeProto:
    """The ROUPMatMul of a matrix product: a constant b is written as ``[..., K, N]`` (a
    Gemm's transB, or a folded chain, gives another layout), the plan's conv-layout index
    goes back to the node's ``[..., K, N]`` layout (_layer.MatMulOperands)."""
    operands = layer.matmul
    existing = {t.name: t for t in model.graph.initializer}
    for slot in (1, 4, 6):  # float16 scales (QLinearMatMul), widened exactly
        source = existing.get(inputs[slot]) if slot < len(inputs) else None
        if source is not None and source.data_type == onnx.TensorProto.FLOAT16:
            wide = numpy_helper.to_array(source).astype(np.float32)
            inputs[slot] = f"{source.name}_float32"
            if inputs[slot] not in existing:
                model.graph.initializer.append(numpy_helper.from_array(wide, inputs[slot]))
                existing[inputs[slot]] = model.graph.initializer[-1]
    if layer.weight is not None:
        values = matmul_index(layer.weight, operands.index_shape)
        source = existing.get(operands.b)
        if source is None or tuple(source.dims) != values.shape or not np.array_equal(
                numpy_helper.to_array(source), values):
            taken = set(existing) | {t for n in model.graph.node for t in n.output}
            name = f"{layer.name}_b_matrix"
            while name in taken:
                name += "_"
            model.graph.initializer.append(numpy_helper.from_array(values, name))
            inputs[3] = name
        else:
            inputs[3] = operands.b
    return make_roupmatmul_node(
        inputs, [layer.output], name=layer.name, multipliers=assignment.multipliers,
        multiplier_index=matmul_index(assignment.index, operands.index_shape),
        encoded_operand=encoded_operand)


def _inferred_value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Type and shape of every tensor ONNX shape inference can see, before the rewrite."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # an op shape inference does not know: types only, below
        return {}
    return {v.name: v for v in inferred.graph.value_info}


def _declare_output_type(model: onnx.ModelProto, output: str, y_zero_point: str,
                         known: onnx.ValueInfoProto | None = None,
                         elem_type: int | None = None) -> None:
    """Record the ROUPConv output's element type (that of y_zero_point), and the shape the
    replaced tensor had (``known``), as value_info. ONNX shape inference cannot see into a
    custom op, and onnxruntime's QDQ fusions downstream only fire when they know the type
    (DequantizeLinear -> GlobalAveragePool -> QuantizeLinear) or the rank (QLinearSoftmax
    after a fully connected layer) of the tensor they start from."""
    graph = model.graph
    for t in graph.initializer:
        if elem_type is None and t.name == y_zero_point:
            elem_type = t.data_type
    if elem_type is None or output in {o.name for o in graph.output}:
        return
    kept = [v for v in graph.value_info if v.name != output]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    if known is not None and known.type.tensor_type.elem_type == elem_type:
        graph.value_info.append(known)
    else:
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
