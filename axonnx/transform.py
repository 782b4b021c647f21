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
from axonnx.model import fix_input_shape, load_model, tensor_shapes
from axonnx.multipliers.operands import DEFAULT_FORMATS, layer_operand_formats
from axonnx.passes import (
    CONV, REWRITTEN_FORMS, TRANSPOSED_CONV, ConvLayer, GraphIndex, canonicalize,
    name_unnamed_nodes, rewrite_to_roupconv, shift_int8_activations, survey_convs,
)
from axonnx.plan import Coverage, Plan

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
    # Nodes left alone (refused, float ConvTranspose, products without --matmul) with their exact
    # multiplications per image (None where they could not be counted).
    left_alone: list[LeftAlone] = field(default_factory=list)
    left_alone_macs: dict[str, int | None] = field(default_factory=dict)
    canonical: str = ""

    @property
    def all_multiplications(self) -> dict[str, dict[str, int]]:
        """Every multiplication of the model per layer and multiplier: the rewritten layers'
        and, at the exact multiplier, those of the nodes left alone (the energy total)."""
        counts = self.multiplications
        for node, macs in self.left_alone_macs.items():
            if macs:
                counts[node] = {EXACT.name: macs}
        return counts

    @property
    def all_kinds(self) -> dict[str, str]:
        return {**self.kinds, **{a.node: a.kind for a in self.left_alone}}

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
            "left_alone": [{**a.as_dict(), "macs_per_image": self.left_alone_macs.get(a.node)}
                           for a in self.left_alone],
            "canonicalized": self.canonical,
            "fully_connected_exact": [{"node": n, "kind": k} for n, k in self.fully_connected.items()],
            "plan": None if self.plan is None else self.plan.to_dict(),
            "plan_verified": self.plan_verified,
            "axonnx_version": self.axonnx_version,
        }


# Kinds of the products left alone, by op type (the rewritten layers carry their own).
_OP_KINDS = {"ConvTranspose": TRANSPOSED_CONV, "QLinearConvTranspose": TRANSPOSED_CONV,
             "Conv": CONV, "QLinearConv": CONV, "ConvInteger": CONV}


@dataclass(frozen=True)
class LeftAlone:
    """A node with multiplications that axonnx did not rewrite: they stay exact."""

    node: str
    kind: str
    reason: str

    def as_dict(self) -> dict:
        return {"node": self.node, "kind": self.kind, "reason": self.reason}


def left_alone(survey) -> list[LeftAlone]:
    """The survey's refused nodes and the matrix products not asked for, with reasons."""
    ops = {}
    if survey.graph is not None:
        ops = {n.name: n.op_type for n in survey.graph.node}
    out = [LeftAlone(r.node, _OP_KINDS.get(ops.get(r.node), "matrix product"), r.reason)
           for r in survey.refused]
    out += [LeftAlone(n, kind, "matrix products stay exact without --matmul (a plan's "
                      "matmul: true)") for n, kind in survey.fully_connected.items()]
    return out


@dataclass
class TransformSummary:
    """What a transform did: layers approximated, layers rewritten but exact (the plan gives
    them only exact multipliers), nodes left alone; each with its kind, and the reasons."""

    approximated: list[tuple[str, str]]  # (layer, kind)
    exact: list[tuple[str, str]]
    left_alone: list[LeftAlone]
    canonical: str = ""  # what canonicalisation did, if anything
    # exact layers left as the model's own op (``left_to_onnxruntime``), not rewritten
    kept_original: list[str] = field(default_factory=list)
    # per rewritten layer, the multipliers it uses and its operand formats (energy checks)
    multipliers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    operand_formats: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "approximated": [{"layer": n, "kind": k} for n, k in self.approximated],
            "kept_exact": [{"layer": n, "kind": k, "reason": "the plan gives it only exact "
                            "multipliers", "op": "original" if n in self.kept_original
                            else "ROUP"} for n, k in self.exact],
            "left_alone": [a.as_dict() for a in self.left_alone],
            "canonicalized": self.canonical,
        }

    def lines(self) -> list[str]:
        """The text summary: counts by kind, then each node left alone with its reason."""
        def by_kind(pairs) -> str:
            counts: dict[str, int] = {}
            for _, kind in pairs:
                counts[kind] = counts.get(kind, 0) + 1
            return ", ".join(f"{n} {k} layer{'s' if n != 1 else ''}"
                             for k, n in counts.items()) or "none"
        out = [f"approximated: {by_kind(self.approximated)}",
               f"kept exact (the plan gives them only exact multipliers): {by_kind(self.exact)}"
               + (f"; {len(self.kept_original)} of them left as the model's own op (uint8 "
                  "activations or a transposed conv: onnxruntime runs those faster)"
                  if self.kept_original else ""),
               f"left alone (exact, not rewritten): "
               f"{by_kind([(a.node, a.kind) for a in self.left_alone])}"]
        out += [f"  {a.node} ({a.kind}): {a.reason}" for a in self.left_alone]
        if self.canonical:
            out.append(f"canonicalized: {self.canonical}")
        return out


def summarize(layers: list[ConvLayer], assignments: dict, survey,
              formats: dict[str, str] | None = None, kept: set[str] = frozenset()
              ) -> TransformSummary:
    uses = {l.name: assignments[l.name].used_multipliers for l in layers}
    exact = {l.name: assignments[l.name].is_exact for l in layers}
    return TransformSummary(
        approximated=[(l.name, l.kind) for l in layers if not exact[l.name]],
        exact=[(l.name, l.kind) for l in layers if exact[l.name]],
        left_alone=left_alone(survey), kept_original=sorted(kept),
        canonical=survey.canonical.describe() if survey.canonical is not None else "",
        multipliers={name: tuple(dict.fromkeys(m.name for m in ms)) for name, ms in uses.items()},
        operand_formats=dict(formats or {}))


def prepared(model: onnx.ModelProto, matmul: bool = False, input_shape=None,
             uint8_activations: bool = False
             ) -> tuple[onnx.ModelProto, list[ConvLayer], object]:
    """A named, canonical copy of the model (constant chains folded, see
    ``axonnx.passes.canonicalize``; with ``input_shape`` its input dims fixed, so that
    attention with dynamic shapes can be matched; with ``uint8_activations`` its int8
    activations stored as uint8, ``axonnx.passes.shift_int8_activations``) and its quantized
    2-D convs, and with ``matmul`` its quantized matrix products (error if there are none)."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    if input_shape is not None:
        fix_input_shape(work, input_shape)
    name_unnamed_nodes(work)  # before folding, so names follow the original's node order
    canonical = canonicalize(work, matmul)
    if uint8_activations:
        canonical.uint8_activations = shift_int8_activations(work)
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


def plan_coverage(model, plan: Plan, input_shape=None) -> tuple[Coverage, list[str]]:
    """How a plan fits a model (``axonnx plan check``): which layers each rule takes, and
    the notes of the layers' assignments (e.g. a classed rule on a layer with fewer groups)."""
    _, layers, _ = prepared(load_model(model), plan.matmul, input_shape)
    coverage = plan.coverage([layer.name for layer in layers])
    if coverage.unused:
        return coverage, []
    _, assignments = assign_plan(plan, layers)
    return coverage, [a.note for a in assignments.values() if a.note]


def layer_assignment(rule, layer: ConvLayer) -> LayerAssignment:
    """The rule's assignment for a layer; an activation x activation product has no
    constant weights to rank or skip by (``assign_layer``'s notes say how that is handled)."""
    return assign_layer(rule, layer.real_weight, layer.name, shape=layer.weight_shape)


def transform_model(model, plan: Plan, *, recovery=None, input_shape=None,
                    exact_layers: str = "onnxruntime") -> onnx.ModelProto:
    """:func:`transform_with_summary` without the summary."""
    return transform_with_summary(model, plan, recovery=recovery, input_shape=input_shape,
                                  exact_layers=exact_layers)[0]


# Where a layer the plan leaves exact runs: "onnxruntime" keeps the original op where
# onnxruntime is faster (left_to_onnxruntime), "roup" always writes an exact ROUP node.
EXACT_LAYERS = ("onnxruntime", "roup")


def check_exact_layers(value: str) -> None:
    if value not in EXACT_LAYERS:
        raise AxonnxError(f"unknown --exact-layers {value!r}; use one of "
                          f"{', '.join(EXACT_LAYERS)}")


def left_to_onnxruntime(layer: ConvLayer, index: GraphIndex) -> bool:
    """Whether a layer the plan leaves exact is better left as the model had it than
    rewritten into an exact ROUP node (same bytes either way). Measured on x86 with
    AVX-512 VNNI and AMX (README, "Speed"): onnxruntime's uint8-activation convs and
    products (MLAS, NHWC, prepacked) beat ROUPConv's exact path, and it keeps the model's
    own NHWC layout around them; with int8 activations onnxruntime falls back to slower
    paths (3.6x slower on MobileNetV2), so ROUP nodes are faster; a QDQ ConvTranspose runs
    onnxruntime's float path, faster than ROUPConvTranspose's exact one. A node already
    rewritten (re-planning) has no original op to go back to."""
    if layer.form in REWRITTEN_FORMS:
        return False
    if layer.kind == TRANSPOSED_CONV:
        return True
    # Input and output: onnxruntime fuses a QDQ group into its uint8 kernels only when both
    # are uint8 (an output stays int8 where something but Q/DQ reads it). An int32 product
    # (MatMulInteger) has no output zero point.
    x_zero_point, y_zero_point = (_zero_point(layer, index, slot) for slot in (2, 7))
    if x_zero_point is not None:
        x_dtype = x_zero_point.dtype
    elif layer.x_dtype is not None:  # known from x itself (MatMulInteger's a)
        x_dtype = np.dtype(layer.x_dtype)
    else:  # omitted: uint8's default; not a constant: unknown
        x_dtype = np.dtype(np.uint8) if not layer.inputs[2] else None
    y_dtype = y_zero_point.dtype if y_zero_point is not None else (
        np.dtype(np.uint8) if not layer.inputs[7] else None)
    return x_dtype == np.uint8 and y_dtype == np.uint8


def _zero_point(layer: ConvLayer, index: GraphIndex, slot: int) -> np.ndarray | None:
    """The constant zero point at one of the layer's input slots (QLinearConv's order), None
    when the slot is empty or not a constant."""
    return index.constant(layer.inputs[slot]) if layer.inputs[slot] else None


def transform_with_summary(model, plan: Plan, *, recovery=None, input_shape=None,
                           exact_layers: str = "onnxruntime"
                           ) -> tuple[onnx.ModelProto, TransformSummary]:
    """The model with every quantized conv rewritten to ROUPConv as the plan says.
    Layers the plan gives only exact multipliers stay onnxruntime's own op where
    onnxruntime runs them faster (:func:`left_to_onnxruntime`; ``exact_layers="roup"``
    rewrites them too, into exact ROUP nodes).

    ``recovery`` (an :class:`axonnx.recovery.Recovery`) also tunes the approximated
    layers' weights and/or corrects their biases; the assignment is always computed from
    the original weights, and the settings are recorded in ``axonnx.recovery``. ``input_shape`` fixes the input dims
    first (a model with dynamic shapes whose attention products need static ones). The
    summary says what was approximated, kept exact and left alone, and why."""
    check_exact_layers(exact_layers)
    # Layers left to onnxruntime run fastest on uint8 activations; the ROUP nodes run the
    # same values either way.
    work, layers, survey = prepared(load_model(model), plan.matmul, input_shape,
                                    uint8_activations=exact_layers == "onnxruntime")
    resolved, assignments = assign_plan(plan, layers)
    index = GraphIndex(work.graph)  # before the rewrite: the layers' zero points
    formats = {layer.name: operand_formats(layer, index, plan.encoded_operand) for layer in layers}
    kept = {layer.name for layer in layers if exact_layers == "onnxruntime"
            and assignments[layer.name].is_exact and left_to_onnxruntime(layer, index)}
    out = rewrite_to_roupconv(work, [layer for layer in layers if layer.name not in kept],
                              assignments, plan.encoded_operand).model
    meta = {p.key: p.value for p in out.metadata_props}
    meta.pop(META_RECOVERY, None)
    meta.pop(META_NOTES, None)
    notes = [a.note for a in assignments.values() if a.note]
    if notes:
        meta[META_NOTES] = json.dumps(notes)
    if recovery is not None:
        # Convs, transposed convs and fully connected layers; an activation x activation
        # product has no constant weight to tune nor a bias to correct, nor has ROUPMatMul's
        # int32 form (MatMulInteger) a bias or requantization of its own.
        constant = [layer for layer in layers
                    if layer.weight is not None and (layer.matmul is None or layer.inputs[6])]
        changes = recovery.apply(out, constant, assignments, plan.encoded_operand)
        meta[META_RECOVERY] = json.dumps({**recovery.describe(), "layers": changes})
    meta.update({META_VERSION: __version__, META_PLAN: json.dumps(resolved.to_dict()),
                 META_DIGEST: resolved.digest()})
    del out.metadata_props[:]
    onnx.helper.set_model_props(out, meta)
    return out, summarize(layers, assignments, survey, formats, kept)


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


def rules_by_layer(plan: Plan, layers: list[ConvLayer]) -> dict | None:
    """Each layer's rule in a resolved plan (one rule per layer, by name), or None when the
    plan does not name exactly these layers. By name, not position: a layer left as the
    model's op keeps its place while a rewritten one takes its QuantizeLinear's."""
    rules = {rule.match[0]: rule for rule in plan.rules if len(rule.match) == 1}
    if len(plan.rules) != len(layers) or set(rules) != {layer.name for layer in layers}:
        return None
    return rules


def verify_plan(plan: Plan, layers: list[ConvLayer]) -> bool:
    """True when every ROUPConv's attributes equal what the plan gives its weights."""
    rules = rules_by_layer(plan, layers)
    if rules is None:
        return False
    for layer in layers:
        expected = layer_assignment(rules[layer.name], layer)
        if layer.assignment is None:  # left as the model's op: only if the plan keeps it exact
            if not expected.is_exact:
                return False
            continue
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
    x_zp = _zero_point(layer, index, 2)
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
    work, layers, survey = prepared(model, matmul, input_shape)
    alone = left_alone(survey)
    index = GraphIndex(work.graph)
    nodes = {n.name: n for n in work.graph.node}
    extra = [t for a in alone if a.node in nodes for t in _product_tensors(nodes[a.node])
             if t and t not in index.initializers]
    wanted = [t for layer in layers for t in layer.shape_tensors()] + extra
    shapes = tensor_shapes(work, list(dict.fromkeys(wanted)), input_shape)
    infos = []
    for layer in layers:
        positions = int(np.prod(layer.weight_shape))
        pixels = layer.pixels(shapes)
        out_hw = ((pixels, 1) if layer.kind not in (CONV, TRANSPOSED_CONV)
                  else tuple(int(v) for v in shapes[layer.output][2:4]))
        weight_shape = layer.weight_shape
        if layer.kind == TRANSPOSED_CONV:  # as the model stores it: [C_in, C_out/group, kH, kW]
            m, c_g, kh, kw = weight_shape
            group = int(layer.attributes.get("group", 1))
            weight_shape = (c_g * group, m // group, kh, kw)
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
            name=layer.name, form=layer.form, kind=layer.kind, weight_shape=weight_shape,
            strides=tuple(layer.attributes.get("strides", (1, 1))),
            group=int(layer.attributes.get("group", 1)), output_hw=out_hw,
            macs_per_image=positions * pixels, multiplications=mults,
            operand_formats=operand_formats(layer, index),
        ))
    meta = {p.key: p.value for p in model.metadata_props}
    verified = None
    if plan is not None:
        verified = verify_plan(plan, layers)
        rules = rules_by_layer(plan, layers) if verified else {}
        for info in infos:
            if info.name in rules:
                info.rule = rules[info.name].to_dict(with_match=False)
    return ModelInfo(
        layers=infos, refused=[(r.node, r.reason) for r in survey.refused],
        fully_connected=dict(survey.fully_connected), plan=plan, plan_verified=verified,
        axonnx_version=meta.get(META_VERSION), left_alone=alone,
        left_alone_macs={a.node: _product_macs(nodes.get(a.node), shapes, index) for a in alone},
        canonical=survey.canonical.describe() if survey.canonical is not None else "",
    )


# Per op type: (activation input, weight input) of a node with multiplications; for a
# matrix product the "weight" is its second operand.
_PRODUCT_INPUTS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3),
                   "ConvTranspose": (0, 1), "QLinearConvTranspose": (0, 3),
                   "MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3),
                   "Gemm": (0, 1), "QGemm": (0, 3)}


def _product_tensors(node: onnx.NodeProto) -> list[str]:
    slots = _PRODUCT_INPUTS.get(node.op_type)
    if slots is None:
        return []
    return [node.input[slots[0]], node.input[slots[1]], node.output[0]]


def _product_macs(node: onnx.NodeProto | None, shapes: dict, index: GraphIndex) -> int | None:
    """Multiplications per image of a node left alone, from measured shapes (batch 1)."""
    if node is None or node.op_type not in _PRODUCT_INPUTS:
        return None
    x_name, w_name, y_name = _product_tensors(node)
    def shape(name):
        if name in index.initializers:
            return tuple(index.initializers[name].dims)
        return shapes.get(name)
    x, w, y = shape(x_name), shape(w_name), shape(y_name)
    if x is None or w is None or y is None:
        return None
    if "ConvTranspose" in node.op_type:  # every input pixel meets every weight
        return int(np.prod(w)) * int(np.prod(x[2:]))
    if "Conv" in node.op_type:
        return int(np.prod(w)) * int(np.prod(y[2:]))
    k = x[0] if node.op_type in ("Gemm", "QGemm") and _attr(node, "transA") else x[-1]
    return int(np.prod(y)) * int(k)


def _attr(node: onnx.NodeProto, name: str, default=0):
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name),
                default)
