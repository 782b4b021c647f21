"""Transform a quantized model with a plan, and describe (inspect) a model's conv layers
(and, when asked, its quantized matrix products: fully connected and attention).

    model -> name nodes -> survey convs -> resolve plan -> assign per layer -> rewrite
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import onnx

from axonnx import __version__
from axonnx.assign import LayerAssignment, assign_layer
from axonnx.errors import AxonnxError
from axonnx.multipliers import EXACT
from axonnx.model import load_model, tensor_shapes
from axonnx.multipliers.operands import DEFAULT_FORMATS, layer_operand_formats
from axonnx.passes import (
    CONV, ConvLayer, GraphIndex, canonicalize, name_unnamed_nodes, rewrite_to_roupconv, survey_convs,
)
from axonnx.plan import Plan

META_VERSION = "axonnx.version"
META_PLAN = "axonnx.plan"
META_DIGEST = "axonnx.plan_digest"
META_RECOVERY = "axonnx.recovery"
META_NOTES = "axonnx.notes"  # how the plan was adapted to layers it did not quite fit


@dataclass
class LayerInfo:
    name: str
    form: str
    kind: str  # conv | fully connected | attention (activation x activation)
    weight_shape: tuple[int, ...]
    strides: tuple[int, ...]
    group: int
    output_hw: tuple[int, int]  # a matrix product's: (rows M, 1)
    macs_per_image: int
    multiplications: dict[str, int]  # per multiplier name, per image
    rule: dict | None = None
    operand_formats: str = DEFAULT_FORMATS  # what the multipliers see: rounded x encoded

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class ModelInfo:
    layers: list[LayerInfo]
    refused: list[tuple[str, str]] = field(default_factory=list)
    fully_connected: dict[str, str] = field(default_factory=dict)  # exact products: kind
    plan: Plan | None = None
    plan_verified: bool | None = None
    axonnx_version: str | None = None

    @property
    def multiplications(self) -> dict[str, dict[str, int]]:
        """Per layer, multiplications per multiplier and image: the energy model's input."""
        return {layer.name: dict(layer.multiplications) for layer in self.layers}

    @property
    def operand_formats(self) -> dict[str, str]:
        """Per layer, the operand formats its multipliers see (the energy model's other input)."""
        return {layer.name: layer.operand_formats for layer in self.layers}

    @property
    def kinds(self) -> dict[str, str]:
        """Per layer, its kind (conv, fully connected, attention): the report's labels."""
        return {layer.name: layer.kind for layer in self.layers}

    def as_dict(self) -> dict:
        return {
            "layers": [layer.as_dict() for layer in self.layers],
            "left_alone": [{"node": n, "reason": r} for n, r in self.refused],
            "fully_connected_exact": [{"node": n, "kind": k} for n, k in self.fully_connected.items()],
            "plan": None if self.plan is None else self.plan.to_dict(),
            "plan_verified": self.plan_verified,
            "axonnx_version": self.axonnx_version,
        }


def prepared(model: onnx.ModelProto, matmul: bool = False
             ) -> tuple[onnx.ModelProto, list[ConvLayer], object]:
    """A named copy of the model and its quantized 2-D convs, and with ``matmul`` its
    quantized matrix products (error if there are none)."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    name_unnamed_nodes(work)  # before folding, so names follow the original's node order
    canonical = canonicalize(work)
    survey = survey_convs(work, matmul)
    survey.canonical = canonical
    if not survey.layers:
        # The real reason first: refused convs say why; only a model without convs is
        # pointed at --matmul.
        reasons = "; ".join(f"{r.node}: {r.reason}" for r in survey.refused[:3])
        if survey.fully_connected and not survey.refused:
            raise AxonnxError(f"the model has no quantized 2-D convolution, but "
                              f"{len(survey.fully_connected)} matrix products (MatMul/Gemm): "
                              "pass --matmul (matmul: true in a plan) to approximate them")
        raise AxonnxError("the model has no quantized 2-D convolution (QLinearConv, or "
                          "DequantizeLinear->Conv->QuantizeLinear) that axonnx can rewrite"
                          + (f" ({len(survey.refused)} refused: {reasons})" if reasons else
                             "; quantize it with onnxruntime's quantize_static first"))
    return work, survey.layers, survey


def assign_plan(plan: Plan, layers: list[ConvLayer]) -> tuple[Plan, dict[str, LayerAssignment]]:
    resolved = plan.resolve([layer.name for layer in layers])
    assignments = {layer.name: layer_assignment(rule, layer)
                   for layer, rule in zip(layers, resolved.rules)}
    return resolved, assignments


def layer_assignment(rule, layer: ConvLayer) -> LayerAssignment:
    """The rule's assignment for a layer; an activation x activation product has no
    constant weights to rank or skip by (``assign_layer``'s notes say how that is handled)."""
    return assign_layer(rule, layer.real_weight, layer.name, shape=layer.weight_shape)


def transform_model(model, plan: Plan, *, recovery=None) -> onnx.ModelProto:
    """The model with every quantized conv rewritten to ROUPConv as the plan says.
    Layers the plan does not match become exact ROUPConv nodes.

    ``recovery`` (an :class:`axonnx.recovery.Recovery`) also tunes the approximated
    layers' weights and/or corrects their biases; the assignment is always computed from
    the original weights, and the settings are recorded in ``axonnx.recovery``."""
    work, layers, _ = prepared(load_model(model), plan.matmul)
    resolved, assignments = assign_plan(plan, layers)
    out = rewrite_to_roupconv(work, layers, assignments, plan.encoded_operand).model
    meta = {p.key: p.value for p in out.metadata_props}
    meta.pop(META_RECOVERY, None)
    meta.pop(META_NOTES, None)
    notes = [a.note for a in assignments.values() if a.note]
    if notes:
        meta[META_NOTES] = json.dumps(notes)
    if recovery is not None:
        # Recovery measures conv windows; matrix products are left as the plan made them.
        convs = [layer for layer in layers if layer.kind == CONV]
        changes = recovery.apply(out, convs, assignments, plan.encoded_operand)
        meta[META_RECOVERY] = json.dumps({**recovery.describe(), "layers": changes})
    meta.update({META_VERSION: __version__, META_PLAN: json.dumps(resolved.to_dict()),
                 META_DIGEST: resolved.digest()})
    del out.metadata_props[:]
    onnx.helper.set_model_props(out, meta)
    return out


def notes_of(model) -> list[str]:
    """The notes a transform recorded (e.g. a classed rule on a layer with fewer groups)."""
    meta = {p.key: p.value for p in load_model(model).metadata_props}
    return list(json.loads(meta.get(META_NOTES, "[]")))


def plan_of(model) -> Plan | None:
    """The resolved plan a transformed model records, or None."""
    meta = {p.key: p.value for p in load_model(model).metadata_props}
    if META_PLAN not in meta:
        return None
    return Plan.from_dict(json.loads(meta[META_PLAN]), source="model metadata")


def verify_plan(plan: Plan, layers: list[ConvLayer]) -> bool:
    """True when every ROUPConv's attributes equal what the plan gives its weights."""
    if len(plan.rules) != len(layers):
        return False
    for layer, rule in zip(layers, plan.rules):
        if layer.assignment is None or rule.match != (layer.name,):
            return False
        expected = layer_assignment(rule, layer)
        got = layer.assignment
        want_names = np.asarray([m.name for m in expected.multipliers], dtype=object)[expected.index]
        if not np.array_equal(want_names, got.per_position_names()):
            return False
        if got.encoded_operand != plan.encoded_operand:
            return False
    return True


def operand_formats(layer: ConvLayer, index: GraphIndex, encoded_operand: str | None = None) -> str:
    """The ``rounded x encoded`` operand formats of a layer's multipliers, from the stored
    dtypes and zero points (a zero point that is not a constant: the widest, s9). The
    encoded operand is the layer's own (a ROUPConv's attribute) unless given."""
    x_zp = index.constant(layer.inputs[2]) if layer.inputs[2] else None
    if x_zp is None:
        x_dtype, x_zp = np.int8, np.array([-128, 127])  # unknown: any offset (s9)
    else:
        x_dtype = x_zp.dtype
    encoded = encoded_operand or (layer.assignment.encoded_operand if layer.assignment is not None
                                  else "weight")
    return layer_operand_formats(x_dtype, x_zp, layer.weight_dtype, layer.w_zero_point, encoded)


def inspect_model(model, input_shape: str | tuple[int, ...] | None = None,
                  matmul: bool | None = None) -> ModelInfo:
    """The model's quantized conv layers, their multiplications per image and its plan.
    A model with dynamic spatial sizes needs ``input_shape`` (e.g. ``"1,3,224,224"``).
    ``matmul`` includes the quantized matrix products (default: as the recorded plan says,
    else no)."""
    model = load_model(model)
    plan = plan_of(model)
    if matmul is None:
        matmul = plan is not None and plan.matmul
    work, layers, survey = prepared(model, matmul)
    shapes = tensor_shapes(work, [layer.output for layer in layers], input_shape)
    index = GraphIndex(work.graph)
    infos = []
    for layer in layers:
        positions = int(np.prod(layer.weight_shape))
        pixels = layer.pixels(shapes[layer.output])
        out_hw = ((pixels, 1) if layer.kind != CONV
                  else tuple(int(v) for v in shapes[layer.output][2:4]))
        if layer.assignment is not None and layer.assignment.index is not None:
            # Counted on the index (np.unique on names sorts millions of strings).
            assignment = layer.assignment
            counts = np.bincount(assignment.index.ravel(), minlength=len(assignment.multipliers))
            mults = {}
            for mult, count in sorted(zip(assignment.multipliers, counts), key=lambda p: p[0].name):
                if count:
                    mults[mult.name] = mults.get(mult.name, 0) + int(count) * pixels
        else:
            # Not rewritten yet: every multiplication is exact.
            mults = {EXACT.name: positions * pixels}
        infos.append(LayerInfo(
            name=layer.name, form=layer.form, kind=layer.kind, weight_shape=layer.weight_shape,
            strides=tuple(layer.attributes.get("strides", (1, 1))),
            group=int(layer.attributes.get("group", 1)), output_hw=out_hw,
            macs_per_image=positions * pixels, multiplications=mults,
            operand_formats=operand_formats(layer, index),
        ))
    meta = {p.key: p.value for p in model.metadata_props}
    verified = None
    if plan is not None:
        verified = verify_plan(plan, layers)
        for info, rule in zip(infos, plan.rules if verified else ()):
            info.rule = rule.to_dict(with_match=False)
    return ModelInfo(
        layers=infos, refused=[(r.node, r.reason) for r in survey.refused],
        fully_connected=dict(survey.fully_connected), plan=plan, plan_verified=verified,
        axonnx_version=meta.get(META_VERSION),
    )
