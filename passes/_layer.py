"""What every rule returns: a :class:`ConvLayer` (everything the rewrite needs) or a
:class:`NoMatch` carrying the reason it refused, so that ``axonnx inspect`` and the tests
can say *why* a node was left alone; and the :class:`GraphIndex` the rules look things up in.

Matrix products become ``ROUPMatMul`` nodes, but the plan sees them in conv layout, as a
1x1 conv: ``Y[M,N] = A[M,K] B[K,N]`` has filters = B's columns, so its weight is ``B^T`` as
``[N, K, 1, 1]`` (G matrices of a constant B: ``[G*N, K, 1, 1]``); a :class:`MatMulOperands`
says how the node's multiplier_index ([..., K, N]) maps to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from axonnx.errors import AxonnxError
from axonnx.ops.roupconv import Assignment

QUANT_TYPES = (np.int8, np.uint8)

# Layer kinds, as inspect and energy label them.
CONV = "conv"
# A ConvTranspose: its ConvLayer carries the weight in conv layout (``to_conv_layout``), so
# that plans rank filters (output channels) on axis 0 as for a conv.
TRANSPOSED_CONV = "transposed conv"
FULLY_CONNECTED_KIND = "fully connected"
ATTENTION = "attention (activation x activation)"


# The forms of the nodes axonnx wrote, which a re-plan rewrites in place: there is no
# original op to go back to. ROUPConv and ROUPConvTranspose are "roupconv", ROUPMatMul
# "roupmatmul" (passes/roupconv.py, passes/roupmatmul.py).
REWRITTEN_FORMS = ("roupconv", "roupmatmul")


@dataclass
class NoMatch:
    node: str
    reason: str

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class MatMulOperands:
    """A matrix product ``a [..., M, K] x b [..., K, N]`` as ROUPMatMul sees it. The plan's
    conv-layout weight ``[G*N', K', 1, 1]`` is the node's multiplier_index of shape
    ``index_shape`` = ``[..., K', N']`` (``axonnx.ops.roupmatmul.conv_index``): b's full shape
    for a constant b; for an activation b (attention), one ``[K', N']`` shared by every batch
    matrix, a dim that is not static being 1 (uniform along it)."""

    a: str
    b: str  # b's tensor; for a constant b the rewrite writes it as ``[..., K, N]``
    index_shape: tuple[int, ...]
    k: int | None  # the inner dim, None when not static (read from a's shape)


@dataclass
class ConvLayer:
    """A quantized 2-D conv found in a graph, in the terms of QLinearConv's inputs."""

    name: str
    form: str  # "qoperator" | "qdq" | "roupconv"
    inputs: list[str]  # x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp[, bias]
    output: str
    attributes: dict
    weight: np.ndarray | None  # None: not a constant (activation x activation)
    w_scale: np.ndarray  # [M] float32
    w_zero_point: np.ndarray  # [M], weight dtype
    replaced_nodes: list[str]  # nodes the ROUPConv replaces (the anchor last)
    maybe_dead_nodes: list[str] = field(default_factory=list)  # removed if unused after
    assignment: Assignment | None = None  # for ROUPConv nodes
    kind: str = CONV
    matmul: MatMulOperands | None = None  # for matrix products (ROUPMatMul)
    dynamic_weight_shape: tuple[int, ...] | None = None  # the conv weight's, when not constant
    x_dtype: np.dtype | None = None  # x's type, where its omitted zero point is not uint8's

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return tuple(self.weight.shape) if self.weight is not None else self.dynamic_weight_shape

    @property
    def weight_dtype(self) -> np.dtype:
        return self.w_zero_point.dtype

    def shape_tensors(self) -> list[str]:
        """The tensors whose shapes :meth:`pixels` reads."""
        if self.kind == TRANSPOSED_CONV:
            return [self.output, self.inputs[0]]
        return [self.output] + ([self.matmul.a] if self.matmul is not None else [])

    def pixels(self, shapes: dict) -> int:
        """How often each weight position is used per sample, from the measured shapes at
        batch 1 (:meth:`shape_tensors`): H_out x W_out of a conv; H_in x W_in of a
        transposed conv (each input pixel meets every weight position once); for a matrix
        product its multiplications (output values x K) over the index's positions."""
        if self.kind == TRANSPOSED_CONV:
            input_shape = shapes[self.inputs[0]]
            return int(input_shape[2]) * int(input_shape[3])
        output_shape = shapes[self.output]
        if self.matmul is None:  # a conv: [N, M, H, W]
            return int(output_shape[2]) * int(output_shape[3])
        k = self.matmul.k if self.matmul.k is not None else int(shapes[self.matmul.a][-1])
        return int(np.prod(output_shape)) * k // int(np.prod(self.weight_shape))

    @property
    def real_weight(self) -> np.ndarray | None:
        """Dequantised weights, the basis of the ranking policies (None when the weight is
        an activation)."""
        if self.weight is None:
            return None
        m = self.weight.shape[0]
        zw = self.w_zero_point.astype(np.float64).reshape(m, 1, 1, 1)
        scale = self.w_scale.astype(np.float64).reshape(m, 1, 1, 1)
        return (self.weight.astype(np.float64) - zw) * scale


class GraphIndex:
    """Producers, consumers and constants of a graph, looked up by tensor name."""

    def __init__(self, graph: onnx.GraphProto, model: onnx.ModelProto | None = None):
        self.graph = graph
        self._model = model  # for static shapes (ONNX shape inference), on demand
        self._shapes: dict[str, tuple[int | None, ...]] | None = None
        self.producer = {o: n for n in graph.node for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.initializers = {t.name: t for t in graph.initializer}
        self.graph_outputs = {o.name for o in graph.output}

    def constant(self, name: str) -> np.ndarray | None:
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            return constant_value(node)
        return None

    def shape(self, name: str) -> tuple[int | None, ...] | None:
        """A tensor's static shape (None where a dim is symbolic), by ONNX shape inference,
        or where that stops (com.microsoft ops) by running a model with fixed input shapes
        once on zeros; None when unknown."""
        if name in self.initializers:
            return tuple(self.initializers[name].dims)
        if self._shapes is None:
            self._shapes = {}
            if self._model is not None:
                inferred = onnx.shape_inference.infer_shapes(self._model, strict_mode=False)
                g = inferred.graph
                for v in list(g.input) + list(g.value_info) + list(g.output):
                    t = v.type.tensor_type
                    if t.HasField("shape"):
                        self._shapes[v.name] = tuple(
                            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                            for d in t.shape.dim)
        if name not in self._shapes and self._model is not None and name in self.producer:
            self._measure_shapes()
        return self._shapes.get(name)

    def _measure_shapes(self) -> None:
        from axonnx.model import tensor_shapes

        missing = [o for n in self.graph.node for o in n.output if o and o not in self._shapes]
        try:
            self._shapes.update(tensor_shapes(self._model, missing))
        except Exception:  # dynamic inputs, or a model onnxruntime cannot run: unknown
            pass
        self._model = None  # measured once


def constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The value of a ``Constant`` node (any of its attribute forms), None for strings and
    sparse tensors."""
    if not node.attribute:
        return None
    a = node.attribute[0]
    if a.name == "value":
        return numpy_helper.to_array(a.t)
    scalars = {"value_float": np.float32, "value_floats": np.float32,
               "value_int": np.int64, "value_ints": np.int64}
    if a.name in scalars:
        return np.asarray(helper.get_attribute_value(a), scalars[a.name])
    return None


def run_time_weight_reason(index: GraphIndex, name: str, what: str = "the weight") -> str:
    """Why a weight that should be constant is not, naming the node that computes it."""
    producer = index.producer.get(name)
    if producer is None:
        return (f"{what} {name!r} is a graph input, not a constant; give it as an initializer")
    return (f"{what} is computed at run time (by {producer.op_type} node {producer.name!r}) and "
            "is not a foldable constant chain (Constant, QuantizeLinear, Cast, Reshape, "
            "Transpose); fold it first (onnxruntime's quant_pre_process or onnxsim)")


def per_channel(values: np.ndarray, channels: int, what: str, layer: str) -> np.ndarray:
    values = np.asarray(values).reshape(-1)
    if values.size not in (1, channels):
        raise AxonnxError(f"layer {layer!r}: {what} has {values.size} values for "
                          f"{channels} output channels")
    return np.broadcast_to(values, (channels,)).copy()


def rank_refusal(node: onnx.NodeProto, weight: np.ndarray) -> NoMatch | None:
    """A conv that is not 2-D is refused (it stays exact), with the reason."""
    if weight.ndim == 4:
        return None
    return NoMatch(node.name, f"a {weight.ndim - 2}-D convolution; axonnx rewrites 2-D "
                              "convolutions only: it stays exact (or reshape it to 2-D)")


def attribute(node: onnx.NodeProto, name: str, default):
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def padded(inputs) -> list[str]:
    """A node's inputs with the optional ones named "", up to QLinearConv's nine."""
    return list(inputs) + [""] * (9 - len(inputs))
