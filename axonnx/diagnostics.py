"""How large a plan's expected error is against each layer's output step.

A layer's accumulator is requantized with the step ``y_scale / (x_scale * w_scale[m])``:
an expected accumulated error of a few steps moves every output of the channel by that
much. Perforation without bias correction does exactly that (its error has a mean), and a
network then collapses without any other sign. :func:`estimate_errors` gives, per
approximated layer, the error's mean (bias) and spread in output steps, from measured
activation statistics when there are some, or else from a stated proxy distribution;
:func:`error_warnings` turns the large ones into one-line warnings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from axonnx.plan import Plan
from axonnx.recovery import LEVELS, ActivationStats, LayerActivations, Recovery, stored_min

# An expected error of this many output steps (RMS over the layer's channels, mean and spread
# together) or more is flagged. One step is the rounding the exact model already has. On the
# ResNet-8 of bench/real_models.py (quantize_static defaults and symmetric int8), the plans
# that cost ~23 points of accuracy (llam ROUP(1,4) or ROUP(2,6) without bias correction) reach
# 5-9 steps (proxy) or 5-7 (measured) in several layers; ROUP_M (~1 point) stays below 2.2.
WARN_STEPS = 3.0

# Without calibration data: activations as after a ReLU, an exponential distribution over
# the stored values above the zero point whose mean is 1/16 of that range. Calibrated 8-bit
# activations usually sit that low, their range set by rare large values.
PROXY_MEAN_FRACTION = 1 / 16


@dataclass(frozen=True)
class LayerErrorEstimate:
    layer: str
    bias_steps: float  # RMS over output channels of the expected accumulated error
    spread_steps: float  # RMS over output channels of its standard deviation
    measured: bool  # from calibration statistics (else the proxy distribution)
    activation: str = "ReLU"  # the proxy's activation function (when not measured)

    @property
    def steps(self) -> float:
        return math.hypot(self.bias_steps, self.spread_steps)


# Ops that move values without changing their distribution: looked through when finding the
# activation function before a layer.
_PASS_THROUGH = {"QuantizeLinear", "DequantizeLinear", "Reshape", "Flatten", "Transpose",
                 "Identity", "MaxPool", "Pad", "Squeeze", "Unsqueeze", "Resize", "Split",
                 "Slice", "Gather", "Concat"}
_ACTIVATIONS = {"Relu": "ReLU", "HardSwish": "HardSwish", "Sigmoid": "Sigmoid",
                "HardSigmoid": "Sigmoid", "QLinearSigmoid": "Sigmoid", "Clip": "ReLU"}
NO_ACTIVATION = "linear (no activation function)"


def preceding_activation(index, tensor: str) -> str:
    """The activation function whose output a layer reads (``ReLU``, ``HardSwish``,
    ``Sigmoid``), or :data:`NO_ACTIVATION`; looks through Q/DQ and reshaping ops."""
    seen = set()
    while tensor and tensor not in seen:
        seen.add(tensor)
        node = index.producer.get(tensor)
        if node is None:
            return NO_ACTIVATION
        if node.op_type in _ACTIVATIONS:
            return _ACTIVATIONS[node.op_type]
        if node.op_type == "QuantizeLinear" and len(node.input) > 2:
            zp = index.constant(node.input[2])  # quantize_static folds a ReLU into the range
            if zp is not None and zp.size == 1 and int(zp.reshape(-1)[0]) == stored_min(zp.dtype):
                return "ReLU"
        if node.op_type == "Mul" and any(  # x * HardSigmoid(x): HardSwish as exported
                (p := index.producer.get(i)) is not None and p.op_type == "HardSigmoid"
                for i in node.input):
            return "HardSwish"
        if node.op_type not in _PASS_THROUGH:
            return NO_ACTIVATION
        tensor = node.input[0]
    return NO_ACTIVATION


def _proxy_weights(values: np.ndarray, zero: int, x_scale: float | None, activation: str
                   ) -> np.ndarray:
    """Relative frequency of each stored activation value under ``activation``. The scale
    of each shape is PROXY_MEAN_FRACTION of the stored range above the zero point."""
    span = max(values[-1] - zero, 1)
    decay = span * PROXY_MEAN_FRACTION
    above = np.where(values >= zero, np.exp(-(values - zero) / decay), 0.0)
    if activation == "ReLU":
        return above
    if activation == "Sigmoid":  # outputs over (0, 1): spread evenly over that range
        top = zero + (1.0 / x_scale if x_scale else span)
        return ((values >= zero) & (values <= top)).astype(float)
    below = np.where(values < zero, np.exp(-(zero - values) / decay), 0.0)
    if activation == "HardSwish":  # negatives down to -0.375 only, about 40% of the mass
        floor = zero - (0.375 / x_scale if x_scale else span)
        below = np.where(values >= floor, below, 0.0)
        return 0.6 * above / above.sum() + 0.4 * below / max(below.sum(), 1e-300)
    return above + below  # linear: two-sided around the zero point


def proxy_statistics(layers, index) -> ActivationStats:
    """Activation statistics without data, shaped by the activation function before each
    layer (:func:`preceding_activation`); padding is ignored."""
    out = {}
    for layer in layers:
        zx = index.constant(layer.inputs[2]) if layer.inputs[2] else None
        if zx is None:
            continue
        zx = np.asarray(zx)
        x_scale = index.constant(layer.inputs[1])
        x_scale = float(np.asarray(x_scale).reshape(-1)[0]) if x_scale is not None else None
        dtype, lo = str(zx.dtype), stored_min(zx.dtype)
        zero = int(zx.reshape(-1)[0])
        values = np.arange(LEVELS) + lo
        weights = _proxy_weights(values, zero, x_scale, preceding_activation(index, layer.inputs[0]))
        counts = np.rint(weights / weights.sum() * 1e6).astype(np.int64)
        channels = layer.weight.shape[1] * int(layer.attributes.get("group", 1))
        taps = np.broadcast_to(counts, (channels, *layer.weight.shape[2:], LEVELS)).copy()
        out[layer.name] = LayerActivations(taps, int(counts.sum()), dtype, (0, 0), zero)
    return ActivationStats(out, 0, "proxy")


def estimate_errors(model, plan: Plan, *, stats: ActivationStats | None = None,
                    recovery: Recovery | None = None,
                    input_shape=None) -> list[LayerErrorEstimate]:
    """Per approximated layer, the expected error of ``plan`` in output steps. ``recovery``
    (which carries its statistics) accounts for its weight tuning and bias correction."""
    from axonnx.passes import CONV, GraphIndex
    from axonnx.transform import assign_plan, prepared

    work, every_layer, _ = prepared(model, plan.matmul, input_shape)
    _, assignments = assign_plan(plan, every_layer)
    layers = [layer for layer in every_layer if layer.kind == CONV]  # the model covers convs
    index = GraphIndex(work.graph)
    if recovery is not None:
        stats = recovery.stats
    measured = stats is not None
    stats = stats if measured else proxy_statistics(layers, index)
    tables = Recovery(stats, correct_bias=True)
    encoded = plan.encoded_operand
    estimates = []
    for layer in layers:
        assignment = assignments[layer.name]
        scales = [index.constant(layer.inputs[k]) for k in (1, 6)]
        if (assignment.is_exact or layer.name not in stats.layers
                or any(s is None for s in scales)):
            continue
        x_scale, y_scale = (float(np.asarray(s).reshape(-1)[0]) for s in scales)
        step = y_scale / (x_scale * layer.w_scale.astype(np.float64))
        weights = (recovery.layer_weights(layer, assignment, encoded) if recovery is not None
                   else layer.weight)
        bias = tables.expected_channel_error(layer, assignment, weights, encoded)
        if recovery is not None and recovery.correct_bias:
            bias = bias - np.rint(bias)  # what the corrected bias leaves
        spread = np.sqrt(tables.channel_error_variance(layer, assignment, weights, encoded))
        estimates.append(LayerErrorEstimate(
            layer.name, float(np.sqrt(np.mean((bias / step) ** 2))),
            float(np.sqrt(np.mean((spread / step) ** 2))), measured,
            preceding_activation(index, layer.inputs[0])))
    return estimates


def error_warnings(estimates: list[LayerErrorEstimate], *,
                   threshold: float = WARN_STEPS) -> list[str]:
    """One line per layer whose expected error reaches ``threshold`` output steps."""
    lines = []
    for e in estimates:
        if e.steps < threshold:
            continue
        source = ("measured activations" if e.measured
                  else f"assumed {e.activation} activations (no calibration data)")
        fix = ("bias correction (--recovery bias) removes the mean part"
               if e.bias_steps >= e.spread_steps else "choose a milder multiplier here")
        lines.append(f"layer {e.layer}: expected error {e.steps:.1f} output steps (mean "
                     f"{e.bias_steps:.1f}, spread {e.spread_steps:.1f}; {source}); {fix}")
    return lines
