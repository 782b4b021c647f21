"""A pass that gives rewritten ROUPConv (and ROUPMatMul) nodes new constants: tuned weights and shifted int32
biases (what accuracy recovery computes; ``axonnx.recovery`` decides the values, this pass
only edits the graph). In place; a new initializer per changed input, never shared ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from axonnx.errors import AxonnxError
from axonnx.ops.roupconvtranspose import OP_TYPE as TRANSPOSE_OP
from axonnx.ops.roupconvtranspose import from_conv_layout, transpose_attributes
from axonnx.ops.roupmatmul import OP_TYPE as MATMUL_OP, matmul_index

from ._layer import GraphIndex
from .rewrite import PassResult


@dataclass(frozen=True)
class ConstantEdit:
    """For one ROUPConv node: its new stored weights, and/or what to subtract from its bias."""

    weight: np.ndarray | None = None
    bias_delta: np.ndarray | None = None  # int, one per output channel


def edit_constants(model: onnx.ModelProto, edits: dict[str, ConstantEdit]) -> PassResult:
    """Apply ``edits`` (by node name) to ``model`` in place, then drop initializers nobody
    reads any more. A bias that would leave int32 is an error, before anything changes."""
    graph = model.graph
    nodes = {n.name: n for n in graph.node}
    index = GraphIndex(graph)
    taken = set(index.initializers) | {o for n in graph.node for o in n.output}
    new_biases = {}
    for name, edit in edits.items():
        if edit.bias_delta is None:
            continue
        node = nodes[name]
        old = np.zeros(len(edit.bias_delta), np.int64)
        if len(node.input) > 8 and node.input[8]:
            found = index.constant(node.input[8])
            if found is None:
                raise AxonnxError(f"layer {name!r}: its bias {node.input[8]!r} is not a constant")
            old = found.astype(np.int64)
        columns = (index.constant(node.input[3]).shape[-1] if node.op_type == MATMUL_OP
                   else len(old))
        if len(edit.bias_delta) != columns:  # a ROUPMatMul's [N] bias, G matrices of b
            raise AxonnxError(f"layer {name!r}: {len(edit.bias_delta)} bias corrections for a "
                              f"bias of {columns} columns (b has several matrices)")
        new = old - np.asarray(edit.bias_delta, np.int64)
        if np.abs(new).max(initial=0) >= 2**31:
            raise AxonnxError(f"layer {name!r}: the corrected bias overflows int32")
        new_biases[name] = new.astype(np.int32)

    def add(base: str, values: np.ndarray) -> str:
        fresh, k = base, 1
        while fresh in taken:
            k += 1
            fresh = f"{base}_{k}"
        taken.add(fresh)
        graph.initializer.append(numpy_helper.from_array(values, fresh))
        return fresh

    for name, edit in edits.items():
        node = nodes[name]
        if edit.weight is not None:
            weight = edit.weight
            if node.op_type == MATMUL_OP:  # the plan's conv layout back to b's [..., K, N]
                weight = matmul_index(weight, index.constant(node.input[3]).shape)
            elif node.op_type == TRANSPOSE_OP:  # back to ConvTranspose's [C_in, C_out/g, ...]
                weight = from_conv_layout(weight, int(transpose_attributes(node).get("group", 1)))
            node.input[3] = add(f"{name}_tuned_weight", weight)
        if name in new_biases:
            while len(node.input) < 9:
                node.input.append("")
            node.input[8] = add(f"{name}_corrected_bias", new_biases[name])
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return PassResult(model, bool(edits))
