"""Weight tuning and bias correction (axonnx.recovery), on a tiny CIFAR-shaped model."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from axonnx.errors import AxonnxError
from axonnx.ops.roupconv import roup_conv
from axonnx.passes import GraphIndex
from axonnx.plan import LayerRule, Plan
from axonnx.recovery import ActivationStats, Recovery, measure_activations
from axonnx.transform import assign_plan, prepared, transform_model
from test_analysis import quantize_tiny, tiny_images

MULTIPLIERS = ("ROUP(1,4)", "ROUP(2,6)", "ROUP(3,8)", "SKIP")


@pytest.fixture(scope="module", params=["int8", "defaults", "uint8-weights"])
def setup(tmp_path_factory, request):
    path = quantize_tiny(tmp_path_factory.mktemp("rec"), request.param)
    model = onnx.load(str(path))
    images = tiny_images(32, seed=5)
    return model, images, measure_activations(model, images, source="tiny")


def _mixed_plan(encoded="weight"):
    return Plan((LayerRule(("*",), "klam-chan", ("ROUP(0,0)",) + MULTIPLIERS[:2] + ("SKIP",)),),
                encoded)


def test_statistics_cover_every_layer_and_round_trip(setup, tmp_path):
    model, images, stats = setup
    _, layers, _ = prepared(model)
    assert list(stats.layers) == [layer.name for layer in layers]
    for layer in layers:
        la = stats.layers[layer.name]
        assert la.taps.shape == (layer.weight.shape[1], *layer.weight.shape[2:], 256)
        p = la.tap_distribution()
        assert np.allclose(p.sum(axis=-1), 1.0)
    first = stats.layers[layers[0].name]  # 3x3, stride 2, pad 1 on 32x32: 16x16 windows
    assert first.windows == 32 * 16 * 16 and first.input_hw == (32, 32)
    assert (first.taps[:, 1, 1].sum(axis=-1) == first.windows).all()  # the centre never pads
    assert (first.taps[:, 0, 0].sum(axis=-1) == 32 * 15 * 15).all()
    stats.save(tmp_path / "a.npz")
    again = ActivationStats.load(tmp_path / "a.npz")
    assert again.images == 32 and again.source == "tiny"
    for name, la in stats.layers.items():
        assert np.array_equal(again.layers[name].taps, la.taps)
        assert again.layers[name].zero_point == la.zero_point


@pytest.mark.parametrize("encoded", ["weight", "activation"])
@pytest.mark.parametrize("bias", [False, True])
def test_weight_tuning_never_increases_the_expected_error(setup, encoded, bias):
    model, _, stats = setup
    _, layers, _ = prepared(model)
    rec = Recovery(stats, tune_weights=True, correct_bias=bias)
    for mult in MULTIPLIERS + ("ROUP(0,8)",):
        plan = Plan((LayerRule(("*",), "llam", (mult,)),), encoded)
        _, assignments = assign_plan(plan, layers)
        for layer in layers:
            a = assignments[layer.name]
            tuned = rec.layer_weights(layer, a, encoded)
            before = rec.layer_error(layer, a, layer.weight, encoded)
            after = rec.layer_error(layer, a, tuned, encoded)
            assert after <= before, (mult, layer.name)
            assert tuned.dtype == layer.weight.dtype
    # and it does something for a coarse multiplier
    plan = Plan((LayerRule(("*",), "llam", ("ROUP(2,6)",)),), encoded)
    _, assignments = assign_plan(plan, layers)
    layer = layers[1]
    a = assignments[layer.name]
    assert rec.layer_error(layer, a, rec.layer_weights(layer, a, encoded), encoded) < \
        rec.layer_error(layer, a, layer.weight, encoded)


def _layer_io(model, images, layer):
    """The layer's quantized input on ``images`` and its constant operands."""
    import onnxruntime as ort

    from axonnx.data.preprocess import model_preprocess

    work, _, _ = prepared(model)
    probe = onnx.ModelProto()
    probe.CopyFrom(work)
    probe.graph.output.append(onnx.ValueInfoProto(name=layer.inputs[0]))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    x = session.run([layer.inputs[0]], {"x": model_preprocess(model).apply(images)})[0]
    index = GraphIndex(work.graph)
    consts = [index.constant(n) if n else None for n in layer.inputs]
    return x, consts


@pytest.mark.parametrize("encoded", ["weight", "activation"])
def test_bias_correction_predicts_the_measured_mean_error(setup, encoded):
    """On the calibration images themselves, the predicted per-channel accumulator error
    is the one the oracle measures (the per-tap histograms make it exact)."""
    model, images, stats = setup
    _, layers, _ = prepared(model)
    plan = _mixed_plan(encoded)
    _, assignments = assign_plan(plan, layers)
    rec = Recovery(stats, correct_bias=True)
    for layer in layers[1:]:
        a = assignments[layer.name]
        x, c = _layer_io(model, images, layer)
        kw = {k: v for k, v in layer.attributes.items() if k != "kernel_shape"}
        args = (x, c[1], c[2], layer.weight, c[4], c[5], c[6], c[7], c[8])
        exact = roup_conv(*args, return_accumulator=True, **kw)
        approx = roup_conv(*args, multipliers=a.multipliers, multiplier_index=a.index,
                           encoded_operand=encoded, return_accumulator=True, **kw)
        measured = (approx - exact).mean(axis=(0, 2, 3))
        predicted = rec.expected_channel_error(layer, a, layer.weight, encoded)
        assert np.allclose(predicted, measured, rtol=1e-9, atol=1e-6), layer.name


def test_transform_with_recovery_changes_only_weights_and_biases(setup):
    model, _, stats = setup
    plan = _mixed_plan()
    plain = transform_model(model, plan)
    both = transform_model(model, plan, recovery=Recovery(stats, tune_weights=True,
                                                          correct_bias=True))
    meta = {p.key: p.value for p in both.metadata_props}
    info = json.loads(meta["axonnx.recovery"])
    assert info["weight_tuning"] and info["bias_correction"] and info["calibration_images"] == 32
    assert info["layers"]
    onnx.checker.check_model(both)
    a = {n.name: n for n in plain.graph.node if n.op_type == "ROUPConv"}
    b = {n.name: n for n in both.graph.node if n.op_type == "ROUPConv"}
    inits = {t.name: numpy_helper.to_array(t) for t in both.graph.initializer}
    plain_inits = {t.name: numpy_helper.to_array(t) for t in plain.graph.initializer}
    _, layers, _ = prepared(model)
    for layer in layers:
        na, nb = a[layer.name], b[layer.name]
        assert na.attribute == nb.attribute  # the assignment is untouched
        w_plain, w_tuned = plain_inits[na.input[3]], inits[nb.input[3]]
        index = numpy_helper.to_array(next(x.t for x in nb.attribute if x.name == "multiplier_index"))
        exact_pos = index == 0  # class 0 is ROUP(0,0)
        assert np.array_equal(w_plain[exact_pos], w_tuned[exact_pos])
        assert len(nb.input) == 9 and nb.input[8] in inits
    # An all-exact plan is left alone by recovery.
    exact = transform_model(model, Plan(), recovery=Recovery(stats, correct_bias=True))
    assert json.loads({p.key: p.value for p in exact.metadata_props}["axonnx.recovery"])["layers"] == {}
    assert [t.name for t in exact.graph.initializer] == [t.name for t in transform_model(model, Plan()).graph.initializer]


def test_recovery_errors(setup):
    model, _, stats = setup
    with pytest.raises(AxonnxError, match="weight tuning, bias correction or both"):
        Recovery(stats)
    other = ActivationStats({}, 1)
    with pytest.raises(AxonnxError, match="no activation statistics"):
        transform_model(model, _mixed_plan(), recovery=Recovery(other, correct_bias=True))
    with pytest.raises(AxonnxError, match="at least one calibration image"):
        measure_activations(model, tiny_images(0))


def test_cli_transform_with_recovery_recovers_accuracy(tmp_path):
    """axonnx transform --recovery writes the tuned, bias-corrected model: on the zoo
    ResNet-8 with ROUP_H everywhere it wins back most of the accuracy ROUP_H costs."""
    from typer.testing import CliRunner

    from axonnx.cli import transform as _transform  # noqa: F401  (registers the command)
    from axonnx.cli._app import app
    from axonnx.data import load_sample
    from axonnx.evaluate import evaluate

    runner = CliRunner()
    plain, fixed = tmp_path / "plain.onnx", tmp_path / "fixed.onnx"
    common = ["transform", "zoo:resnet8", "--llam", "ROUP_H"]
    assert runner.invoke(app, common + ["-o", str(plain)]).exit_code == 0
    # Calibrate on the sample's first images, score on the rest (no training batches here).
    r = runner.invoke(app, common + ["-o", str(fixed), "--recovery", "tune+bias", "--sample",
                                     "--calib", "300"])
    assert r.exit_code == 0, r.output
    meta = {p.key: p.value for p in onnx.load(str(fixed)).metadata_props}
    recorded = json.loads(meta["axonnx.recovery"])
    assert recorded["weight_tuning"] and recorded["bias_correction"]
    assert recorded["calibration_images"] == 300
    held_out = load_sample()
    held_out = type(held_out)(held_out.images[300:], held_out.labels[300:], "held out")
    before = evaluate(plain, held_out, progress=False).top1
    after = evaluate(fixed, held_out, progress=False).top1
    assert after > before + 0.03, (before, after)

    bad = runner.invoke(app, common + ["-o", str(tmp_path / "x.onnx"), "--recovery", "magic"])
    # (the command raises; axonnx.cli.main turns it into a one-line error)
    assert bad.exit_code == 1 and "error:" in bad.stderr and "unknown recovery" in bad.stderr
