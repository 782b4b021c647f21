"""ConvTranspose in whole models (issue 22): the UNet-like decoder of
``axonnx.architectures.unet_decoder`` (dynamic batch, height and width), quantized by
``axonnx.zoo.quantize_float`` in QDQ (onnxruntime's defaults, and uint8) and QOperator uint8.
Its transposed convs appear in ``inspect`` and ``energy``; the rewritten ones compute the
oracle's bytes inside the model at two input sizes (exact, ROUP(1,4), filter level); the
exact plan's integers differ from onnxruntime's float ConvTranspose (DequantizeLinear ->
ConvTranspose -> QuantizeLinear) by at most one step on a small share of outputs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from typer.testing import CliRunner

from axonnx import InferenceSession
from axonnx.architectures import unet_decoder
from axonnx.cli import app
from axonnx.energy import energy_report
from axonnx.ops.roupconv import read_assignment
from axonnx.ops.roupconvtranspose import OP_TYPE, roup_conv_transpose, transpose_attributes
from axonnx.plan import Plan, plan_from_options
from axonnx.transform import inspect_model, transform_with_summary
from axonnx.zoo import quantize_float

UPSAMPLERS = {"convtranspose1", "convtranspose2"}
SIZES = [(2, 32, 32), (1, 48, 40)]  # (batch, H, W): the model has dynamic axes


@pytest.fixture(scope="module")
def decoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoder")
    fp32 = root / "decoder.onnx"
    onnx.save(unet_decoder(), fp32)
    calibration = np.random.default_rng(0).random((8, 3, 32, 32)).astype(np.float32)
    return {name: quantize_float(fp32, root / f"{name}.onnx", calibration, fmt=fmt,
                                 activations=act)
            for name, fmt, act in (("qdq", "qdq", "defaults"), ("qdq-u8", "qdq", "uint8"),
                                   ("qop-u8", "qoperator", "uint8"))}


def test_transposed_convs_appear_in_inspect_and_energy(decoders):
    info = inspect_model(decoders["qdq"], "1,3,32,32")
    layers = {layer.name: layer for layer in info.layers}
    assert {n for n, l in layers.items() if l.kind == "transposed conv"} == UPSAMPLERS
    # Every input pixel meets every weight position once: C_in * C_out * k * k * H_in * W_in.
    assert layers["convtranspose1"].weight_shape == (32, 16, 2, 2)
    assert layers["convtranspose1"].macs_per_image == 32 * 16 * 2 * 2 * 8 * 8
    assert layers["convtranspose2"].macs_per_image == 16 * 8 * 4 * 4 * 16 * 16
    assert layers["convtranspose2"].output_hw == (32, 32)
    model, summary = transform_with_summary(decoders["qdq"], plan_from_options(llam="ROUP(1,4)"))
    assert {n for n, kind in summary.approximated if kind == "transposed conv"} == UPSAMPLERS
    info = inspect_model(model, "1,3,32,32")
    report = energy_report(info.all_multiplications, formats=info.operand_formats,
                           kinds=info.all_kinds)
    assert report.per_kind["transposed conv"]["layers"] == 2
    assert report.per_kind["transposed conv"]["gain"] > 0.1
    text = CliRunner().invoke(app, ["inspect", str(decoders["qdq"]), "--input-shape",
                                    "1,3,32,32"])
    assert text.exit_code == 0 and "transposed conv" in text.output, text.output


def _expose(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """The model with these (8-bit) tensors as extra graph outputs."""
    types = {t.name: t.data_type for t in model.graph.initializer}
    elem = {}
    for node in model.graph.node:  # the type of a tensor's zero point
        if node.op_type in ("DequantizeLinear", OP_TYPE) and len(node.input) > 2:
            elem[node.input[0]] = types.get(node.input[2])
        if node.op_type in ("QuantizeLinear", OP_TYPE):
            elem[node.output[0]] = types.get(node.input[2 if node.op_type != OP_TYPE else 7])
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.output.extend(helper.make_tensor_value_info(n, elem[n], None) for n in names)
    return out


def _layer_io(model: onnx.ModelProto, op_type: str):
    """Per node of ``op_type``: (node, its quantized input, its quantized output) names."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out = []
    for node in model.graph.node:
        if node.op_type != op_type:
            continue
        if op_type == OP_TYPE:
            out.append((node, node.input[0], node.output[0]))
        else:  # QDQ: DequantizeLinear(x) -> ConvTranspose -> QuantizeLinear
            out.append((node, producer[node.input[0]].input[0], consumers[node.output[0]][0].output[0]))
    return out


def _run(model: onnx.ModelProto, names: list[str], batch: int, h: int, w: int, original=False):
    x = np.random.default_rng(h * w).random((batch, 3, h, w)).astype(np.float32)
    model = _expose(model, names)
    if original:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    else:
        session = InferenceSession(model)
    return dict(zip(["y"] + names, session.run(None, {"input": x})))


def _oracle(model: onnx.ModelProto, node: onnx.NodeProto, x: np.ndarray) -> np.ndarray:
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    args = [x] + [inits[n] if n else None for n in list(node.input[1:]) + [""] * (9 - len(node.input))]
    a = read_assignment(node)
    return roup_conv_transpose(*args, multipliers=a.multipliers, multiplier_index=a.index,
                               encoded_operand=a.encoded_operand, **transpose_attributes(node))


@pytest.mark.parametrize("form", ["qdq", "qdq-u8"])
@pytest.mark.parametrize("plan", ["exact", "ROUP(1,4)", "flam"])
def test_rewritten_upsamplers_compute_the_oracle_at_two_sizes(decoders, form, plan):
    chosen = {"exact": Plan(), "ROUP(1,4)": plan_from_options(llam="ROUP(1,4)"),
              "flam": plan_from_options(flam="ROUP(0,0),ROUP(1,4),ROUP(2,6)")}[plan]
    model, _ = transform_with_summary(decoders[form], chosen, exact_layers="roup")
    io = _layer_io(model, OP_TYPE)
    assert {node.name for node, _, _ in io} == UPSAMPLERS
    if plan == "flam":  # output channels get different multipliers
        index = read_assignment(io[0][0]).index
        assert len(np.unique(index[:, 0])) == 1 and len(np.unique(index[0, :])) > 1
    for batch, h, w in SIZES:
        got = _run(model, [t for _, x, y in io for t in (x, y)], batch, h, w)
        assert got["y"].shape == (batch, 1, h, w)
        for node, x, y in io:
            assert got[y].tobytes() == _oracle(model, node, got[x]).tobytes(), (node.name, h)


def test_exact_plan_against_onnxruntimes_float_convtranspose(decoders):
    """The exact plan is QLinearConv-style integer arithmetic; onnxruntime computes a QDQ
    ConvTranspose in float. Fed the same bytes, they differ by at most one step, on a small
    share of outputs (README, "Which ops are approximated")."""
    original = onnx.load(decoders["qdq"])
    model, _ = transform_with_summary(original, Plan(), exact_layers="roup")
    io = _layer_io(original, "ConvTranspose")
    names = [t for _, x, y in io for t in (x, y)]
    for batch, h, w in SIZES:
        ours = _run(model, names, batch, h, w)
        theirs = _run(original, names, batch, h, w, original=True)
        first_input = io[0][1]  # behind only convs: identical bytes
        assert ours[first_input].tobytes() == theirs[first_input].tobytes()
        for node, x, y in io:
            ints = _oracle(model, next(n for n in model.graph.node if n.name == node.name),
                           theirs[x]).astype(np.int32)
            off = np.abs(ints - theirs[y].astype(np.int32))
            assert off.max() <= 1 and off.mean() < 0.05, (node.name, off.mean())


def test_qoperator_upsamplers_stay_float_with_their_reason(decoders):
    model, summary = transform_with_summary(decoders["qop-u8"], plan_from_options(llam="ROUP(1,4)"))
    alone = {a.node: a for a in summary.left_alone}
    assert set(alone) == UPSAMPLERS
    assert all("QOperator quantizer leaves ConvTranspose in float" in a.reason
               for a in alone.values())
    info = inspect_model(decoders["qop-u8"], "1,3,32,32")
    assert info.left_alone_macs["convtranspose1"] == 32 * 16 * 2 * 2 * 8 * 8
    for batch, h, w in SIZES:
        assert _run(model, [], batch, h, w)["y"].shape == (batch, 1, h, w)


def test_rewritten_upsamplers_can_be_replanned_and_read_back(decoders, tmp_path):
    plan = plan_from_options(klam_chan="ROUP(0,0),ROUP(2,6)")
    model, _ = transform_with_summary(decoders["qdq"], plan)
    again, _ = transform_with_summary(model, plan)
    info = inspect_model(again, "1,3,32,32")
    assert info.plan_verified
    kinds = {layer.name: layer.kind for layer in info.layers}
    assert {n for n, k in kinds.items() if k == "transposed conv"} == UPSAMPLERS
    # kernel level = (input channel, output channel) pairs of the ConvTranspose weight
    index = read_assignment(next(n for n in again.graph.node if n.name == "convtranspose2")).index
    assert (index == index[:, :, :1, :1]).all() and len(np.unique(index)) == 2
    out = tmp_path / "energy.json"
    result = CliRunner().invoke(app, ["energy", str(tmp_path / "none.onnx")])
    assert result.exit_code != 0  # a missing file is an error, not a traceback
    onnx.save(again, out.with_suffix(".onnx"))
    result = CliRunner().invoke(app, ["energy", str(out.with_suffix(".onnx")), "--input-shape",
                                      "1,3,32,32", "--json"])
    assert result.exit_code == 0, result.output
    kinds = {layer["layer"]: layer["kind"] for layer in json.loads(result.stdout)["layers"]}
    assert {n for n, k in kinds.items() if k == "transposed conv"} == UPSAMPLERS


@pytest.mark.parametrize("form", ["qdq", "qdq-u8"])
def test_bias_correction_removes_most_of_the_upsamplers_mean_error(decoders, form):
    # Statistics of what each tap multiplies (only the input pixels that land inside the
    # output); the corrected bias must bring each output channel's mean error near zero.
    from axonnx.model import with_outputs
    from axonnx.recovery import Recovery, measure_activations

    model = onnx.load(decoders[form])
    images = np.random.default_rng(3).random((8, 3, 32, 32)).astype(np.float32)
    stats = measure_activations(model, images)
    assert not stats.layers["convtranspose2"].padding and stats.layers["conv1"].padding
    plan = plan_from_options(llam="ROUP(2,6)", layers=",".join(sorted(UPSAMPLERS)))
    fixer = Recovery(stats, correct_bias=True)
    models = {"exact": transform_with_summary(model, Plan(), exact_layers="roup")[0],
              "plain": transform_with_summary(model, plan, exact_layers="roup")[0],
              "fixed": transform_with_summary(model, plan, recovery=fixer, exact_layers="roup")[0]}
    changes = json.loads({p.key: p.value for p in models["fixed"].metadata_props}["axonnx.recovery"])
    assert set(changes["layers"]) == UPSAMPLERS
    # The second upsampler alone, on the first one's exact output: its own error.
    up = next(n for n in models["fixed"].graph.node if n.name == "convtranspose2")
    outputs = {}
    for name, m in models.items():
        probe = with_outputs(m, [up.input[0], up.output[0]])
        outputs[name] = InferenceSession(probe.SerializeToString()).run(
            [up.input[0], up.output[0]], {"input": images})
    x = outputs["exact"][0]
    node_model = {k: [n for n in m.graph.node if n.name == "convtranspose2"][0]
                  for k, m in models.items()}
    inits = {k: {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
             for k, m in models.items()}

    def accumulate(which: str) -> np.ndarray:
        node = node_model[which]
        args = [inits[which][n] if n else None for n in list(node.input[1:]) + [""] * (9 - len(node.input))]
        a = read_assignment(node)
        return roup_conv_transpose(x, *args, multipliers=a.multipliers, multiplier_index=a.index,
                                   encoded_operand=a.encoded_operand, return_accumulator=True,
                                   **transpose_attributes(node))

    exact = accumulate("exact")
    before = np.abs((accumulate("plain") - exact).mean(axis=(0, 2, 3)))
    after = np.abs((accumulate("fixed") - exact).mean(axis=(0, 2, 3)))
    assert before.mean() > 100  # the plan drifts (accumulator units; about 990 here)
    assert after.mean() < 0.01 * before.mean()  # about 0.2 here


def test_tuned_upsampler_weights_are_written_in_convtranspose_layout(decoders):
    from axonnx.model import with_outputs
    from axonnx.recovery import Recovery, measure_activations

    model = onnx.load(decoders["qdq"])
    images = np.random.default_rng(4).random((4, 3, 32, 32)).astype(np.float32)
    fixer = Recovery(measure_activations(model, images), tune_weights=True, correct_bias=True)
    plan = plan_from_options(llam="ROUP(2,6)", layers=",".join(sorted(UPSAMPLERS)))
    tuned = transform_with_summary(model, plan, recovery=fixer, exact_layers="roup")[0]
    changes = json.loads({p.key: p.value for p in tuned.metadata_props}["axonnx.recovery"])
    assert all(changes["layers"][name].get("weights_changed", 0) > 0 for name in UPSAMPLERS)
    inits = {t.name: numpy_helper.to_array(t) for t in tuned.graph.initializer}
    for node, x_name, y_name in _layer_io(tuned, OP_TYPE):
        # ConvTranspose's [C_in, C_out / group, kH, kW], not the plans' conv layout
        assert inits[node.input[3]].shape == {"convtranspose1": (32, 16, 2, 2),
                                              "convtranspose2": (16, 8, 4, 4)}[node.name]
        # The kernel runs the tuned weights as the oracle does.
        probe = with_outputs(tuned, [x_name, y_name])
        x, y = InferenceSession(probe.SerializeToString()).run([x_name, y_name], {"input": images})
        assert _oracle(tuned, node, x).tobytes() == y.tobytes()
