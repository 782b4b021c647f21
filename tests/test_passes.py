"""Graph passes and `axonnx transform`/`inspect` on models quantized by onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from axonnx.assign import assign_layer
from axonnx.cli import app
from axonnx.errors import AxonnxError
from axonnx.ops.roupconv import DOMAIN, OP_TYPE, read_assignment
from axonnx.plan import Plan, make_rule, plan_from_options
from axonnx.transform import inspect_model, plan_of, prepared, transform_model

from conftest import build_float_model, quantize

FORMS = [("qoperator", "int8", True), ("qoperator", "uint8", False), ("qdq", "int8", True),
         ("qdq", "uint8", True), ("qoperator", "int8", False), ("qdq", "int8", False)]
PLANS = {
    "exact": Plan(),
    "llam": plan_from_options(llam="ROUP(1,4)"),
    "flam": plan_from_options(flam="ROUP(0,0),ROUP(1,4),ROUP(2,6)"),
    "klam-chan": plan_from_options(klam_chan="ROUP(0,3),SKIP", policy="index"),
    "klam-row": plan_from_options(klam_row="ROUP(0,0),ROUP(2,6)"),
    "klam-col": plan_from_options(klam_col="ROUP(1,4),ROUP(0,0)"),
    "klms": plan_from_options(klms=1),
}


def session(model: onnx.ModelProto, optimize: bool):
    from axonnx import InferenceSession

    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return InferenceSession(model.SerializeToString(), sess_options=options)


def run(model, x, optimize):
    return session(model, optimize).run(None, {"x": x})[0]


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    return probe


@pytest.mark.parametrize("form", FORMS, ids=lambda f: "-".join(map(str, f)))
def test_exact_plan_gives_identical_output_bytes(quantized_models, form, random_input):
    original = onnx.load(quantized_models[form])
    rewritten = transform_model(original, Plan(), exact_layers="roup")
    assert sum(n.op_type == OP_TYPE for n in rewritten.graph.node) == 4
    x = random_input(5)
    # The whole model, as written (no graph optimisations): identical bytes.
    assert run(rewritten, x, False).tobytes() == run(original, x, False).tobytes()
    # Every conv output, also where onnxruntime fuses a QDQ model into QLinearConv.
    _, layers, _ = prepared(original)
    names = [layer.output for layer in layers]
    for optimize in (False, True):
        want = session(with_outputs(original, names), optimize).run(names, {"x": x})
        got = session(with_outputs(rewritten, names), optimize).run(names, {"x": x})
        for name, a, b in zip(names, want, got):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), (name, optimize)


@pytest.mark.parametrize("form", FORMS[:3], ids=lambda f: "-".join(map(str, f)))
@pytest.mark.parametrize("plan_name", list(PLANS))
def test_every_approach_assigns_what_the_policy_says(quantized_models, form, plan_name):
    original = onnx.load(quantized_models[form])
    plan = PLANS[plan_name]
    rewritten = transform_model(original, plan, exact_layers="roup")
    onnx.checker.check_model(rewritten, full_check=True)
    onnx.shape_inference.infer_shapes(rewritten, strict_mode=False)
    assert rewritten.ir_version == original.ir_version
    assert any(o.domain == DOMAIN for o in rewritten.opset_import)
    # Independent dequantisation of each conv's weights from the original initializers.
    _, layers, _ = prepared(original)
    nodes = {n.name: n for n in rewritten.graph.node if n.op_type == OP_TYPE}
    for layer in layers:
        inits = {t.name: numpy_helper.to_array(t) for t in original.graph.initializer}
        w = inits[layer.inputs[3]].astype(np.float64)
        scale = inits[layer.inputs[4]].astype(np.float64).reshape(-1, 1, 1, 1)
        zero = inits[layer.inputs[5]].astype(np.float64).reshape(-1, 1, 1, 1)
        expected = assign_layer(plan.rule_for(layer.name), (w - zero) * scale, layer.name)
        got = read_assignment(nodes[layer.name])
        want = np.asarray([m.name for m in expected.multipliers], dtype=object)[expected.index]
        assert np.array_equal(got.per_position_names(), want), layer.name
    # Depthwise (group 8) and grouped (group 2) layers are rewritten too.
    groups = {n.name: next((a.i for a in n.attribute if a.name == "group"), 1)
              for n in nodes.values()}
    assert sorted(groups.values()) == [1, 1, 2, 8]


@pytest.mark.parametrize("plan_name", ["flam", "klms", "klam-chan"])
def test_plan_round_trips_through_the_model(quantized_models, plan_name, tmp_path):
    original = onnx.load(quantized_models[("qoperator", "int8", True)])
    plan = PLANS[plan_name]
    rewritten = transform_model(original, plan, exact_layers="roup")
    _, layers, _ = prepared(original)
    resolved = plan.resolve([layer.name for layer in layers])
    read_back = plan_of(rewritten)
    assert read_back == resolved
    meta = {p.key: p.value for p in rewritten.metadata_props}
    assert meta["axonnx.plan_digest"] == resolved.digest()
    info = inspect_model(rewritten)
    assert info.plan_verified
    # The read-back plan, applied to the transformed model again, changes nothing.
    again = transform_model(rewritten, read_back, exact_layers="roup")
    for a, b in zip([n for n in rewritten.graph.node if n.op_type == OP_TYPE],
                    [n for n in again.graph.node if n.op_type == OP_TYPE]):
        assert a == b
    # Hand-editing the attributes is detected.
    node = next(n for n in rewritten.graph.node if n.op_type == OP_TYPE)
    for attr in node.attribute:
        if attr.name == "multipliers":
            attr.strings[0] = b"ROUP(3,8)"
    assert not inspect_model(rewritten).plan_verified


def test_approximate_model_runs_in_plain_onnxruntime(quantized_models, random_input):
    from axonnx import get_library_path

    original = onnx.load(quantized_models[("qdq", "int8", True)])
    rewritten = transform_model(original, PLANS["flam"])
    options = ort.SessionOptions()
    options.register_custom_ops_library(get_library_path())
    plain = ort.InferenceSession(rewritten.SerializeToString(), options,
                                 providers=["CPUExecutionProvider"])
    x = random_input(4)
    y = plain.run(None, {"x": x})[0]
    assert np.array_equal(y, run(rewritten, x, True))
    assert not np.array_equal(y, run(original, x, True))  # the approximation shows


def test_inspect_counts_multiplications(quantized_models):
    original = onnx.load(quantized_models[("qoperator", "int8", True)])
    info = inspect_model(original)
    by_name = {layer.name: layer for layer in info.layers}
    # 12x12 input: stem 3x3 pad 1 -> 12x12; dw stride 2 -> 6x6; grouped -> 6x6; 1x1/2 -> 3x3
    assert by_name["stem_quant"].macs_per_image == 8 * 3 * 9 * 144
    assert by_name["dw_quant"].macs_per_image == 8 * 1 * 9 * 36
    assert by_name["grouped_quant"].macs_per_image == 8 * 4 * 9 * 36
    assert by_name["pointwise_quant"].macs_per_image == 6 * 8 * 9
    assert info.fully_connected == {"fc_quant": "fully connected"}
    rewritten = inspect_model(transform_model(original, PLANS["klms"]))
    for layer in rewritten.layers:
        assert sum(layer.multiplications.values()) == layer.macs_per_image
        assert set(layer.multiplications) == {"ROUP(0,0)", "SKIP"}


# ---- bad input, through the CLI: one line, non-zero exit ---------------------------------

def cli(*args):
    from axonnx.cli._app import main
    import sys

    argv = sys.argv
    sys.argv = ["axonnx", *map(str, args)]
    try:
        main()
    except SystemExit as exc:
        return exc.code
    finally:
        sys.argv = argv
    return 0


def conv_model(tmp_path, rank: int):
    """A QLinearConv with a rank-(rank+2) weight."""
    shape_x = [1, 2] + [5] * rank
    w = np.ones([3, 2] + [3] * rank, np.int8)
    inits = [numpy_helper.from_array(np.asarray(v), n) for v, n in [
        (np.float32(0.1), "xs"), (np.int8(0), "zx"), (w, "w"), (np.float32(0.1), "ws"),
        (np.int8(0), "zw"), (np.float32(0.1), "ys"), (np.int8(0), "zy")]]
    node = helper.make_node("QLinearConv", ["x", "xs", "zx", "w", "ws", "zw", "ys", "zy"], ["y"],
                            name=f"conv{rank}d")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.INT8, shape_x)],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / f"conv{rank}d.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture
def qmodel(quantized_models):
    return quantized_models[("qoperator", "int8", True)]


def test_bad_inputs_give_one_line_errors(tmp_path, qmodel, capsys):
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("hello")
    float_model = tmp_path / "float.onnx"
    onnx.save(build_float_model(), float_model)
    out = tmp_path / "out.onnx"
    cases = [
        ((not_onnx, "-o", out, "--llam", "ROUP(1,4)"), "is not an ONNX model"),
        ((tmp_path / "missing.onnx", "-o", out, "--llam", "ROUP(1,4)"), "no model file"),
        ((float_model, "-o", out, "--llam", "ROUP(1,4)"), "no quantized 2-D convolution"),
        ((conv_model(tmp_path, 1), "-o", out, "--llam", "ROUP(1,4)"), "1-D convolution"),
        ((conv_model(tmp_path, 3), "-o", out, "--llam", "ROUP(1,4)"), "3-D convolution"),
        ((qmodel, "-o", out, "--llam", "ROUP(1,4)", "--layers", "nosuch*"), "matches no quantized conv"),
        ((qmodel, "-o", out, "--llam", "ROUP(7,1)"), "perforation"),
        ((qmodel, "-o", out, "--flam", "MUL8(1)"), "unknown multiplier"),
        ((qmodel, "-o", qmodel, "--llam", "ROUP(1,4)"), "would overwrite an input"),
        ((qmodel, "-o", tmp_path / "nodir" / "x.onnx", "--llam", "ROUP(1,4)"), "does not exist"),
    ]
    before = qmodel.read_bytes()
    for args, message in cases:
        capsys.readouterr()
        assert cli("transform", *args) != 0, args
        err = capsys.readouterr().err.strip()
        assert message in err, (args, err)
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert qmodel.read_bytes() == before  # the input is never touched
    assert not out.exists()


def test_more_classes_than_filters_falls_back_with_a_note(tmp_path, qmodel, capsys):
    """7 FLAM classes on the 6-filter pointwise layer: its filters take the first 6 classes,
    one each, and the transform says so; the 8-filter layers use all 7."""
    from axonnx.ops.roupconv import read_assignment
    from axonnx.transform import notes_of

    names = [f"ROUP(0,{r})" for r in range(7)]
    out = tmp_path / "out.onnx"
    capsys.readouterr()
    assert cli("transform", qmodel, "-o", out, "--flam", ",".join(names)) == 0
    err = capsys.readouterr().err
    assert "note: layer pointwise_quant: flam has 7 classes but the layer only 6 filters" in err
    assert notes_of(out) == [line[len("note: "):] for line in err.splitlines()
                             if line.startswith("note: ")]
    nodes = {n.name: n for n in onnx.load(str(out)).graph.node if n.op_type == "ROUPConv"}
    used = {name: {a.per_position_names()[m].flat[0] for m in range(a.index.shape[0])}
            for name, a in ((k, read_assignment(v)) for k, v in nodes.items())}
    assert used["pointwise_quant"] == set(names[:6])
    assert used["stem_quant"] == set(names)


def test_unwritable_output(tmp_path, qmodel, capsys):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        # root writes anywhere on disk, but not into /proc
        target = locked if not os.access(locked, os.W_OK) else Path("/proc")
        assert cli("transform", qmodel, "-o", target / "x.onnx", "--llam", "ROUP(1,4)") != 0
        err = capsys.readouterr().err
        assert "cannot write" in err and len(err.strip().splitlines()) == 1
    finally:
        locked.chmod(0o700)


def test_cli_transform_and_inspect_json(tmp_path, qmodel, capsys):
    out = tmp_path / "approx.onnx"
    plan_file = tmp_path / "plan.yaml"
    assert cli("transform", qmodel, "-o", out, "--flam", "ROUP(0,0),ROUP_H", "--skip-first",
               "--save-plan", plan_file) == 0
    capsys.readouterr()
    assert cli("inspect", out, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["plan_verified"] is True
    assert info["layers"][0]["rule"] == {"approach": "exact"}
    assert info["layers"][1]["rule"]["approach"] == "flam"
    assert set(info["layers"][1]["multiplications"]) == {"ROUP(0,0)", "ROUP(2,6)"}
    assert Plan.load(plan_file) == plan_of(onnx.load(out))
    # the saved plan transforms the original model to the same graph
    out2 = tmp_path / "again.onnx"
    assert cli("transform", qmodel, "-o", out2, "--plan", plan_file) == 0
    assert onnx.load(out2).graph == onnx.load(out).graph


def test_a_plan_serves_the_qdq_and_qoperator_forms_of_one_model(tmp_path, quantized_models, capsys):
    """Saved from either form, a resolved plan transforms the other: QOperator's `_quant`
    suffix is ignored when matching, and both give the same assignment per layer."""
    from axonnx.ops.roupconv import read_assignment

    forms = {f: quantized_models[(f, "int8", True)] for f in ("qdq", "qoperator")}
    for source, target in (("qdq", "qoperator"), ("qoperator", "qdq")):
        plan = tmp_path / f"{source}.yaml"
        assert cli("transform", forms[source], "-o", tmp_path / f"{source}.onnx", "--flam",
                   "ROUP(0,0),ROUP(1,4),ROUP(2,6)", "--save-plan", plan) == 0
        assert cli("transform", forms[target], "-o", tmp_path / f"{target}_shared.onnx",
                   "--plan", plan) == 0, capsys.readouterr().err
        got = {}
        for name in (f"{source}.onnx", f"{target}_shared.onnx"):
            nodes = [n for n in onnx.load(str(tmp_path / name)).graph.node
                     if n.op_type == "ROUPConv"]
            got[name] = [read_assignment(n).per_position_names() for n in nodes]
        a, b = got.values()
        assert len(a) == len(b) == 4
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("args, message", [
    (("--llam", "ROUP(1,4)", "--encoded-operand", "both"), "must be weight or activation"),
    (("--llam", "ROUP(1,4;N=16)"), "need N=8"),
    (("--plan", "nan.yaml"), "'fractions' needs 2 non-negative numbers"),
    (("--plan", "utf16.yaml"), "is not UTF-8 text"),
])
def test_no_model_is_written_for_an_invalid_plan(tmp_path, qmodel, capsys, args, message):
    (tmp_path / "nan.yaml").write_text("version: 1\nlayers:\n  - {match: '*', approach: flam, "
                                       "multipliers: [ROUP_L, ROUP_H], fractions: [.nan, .nan]}\n")
    (tmp_path / "utf16.yaml").write_bytes("version: 1\n".encode("utf-16"))
    args = tuple(str(tmp_path / a) if a.endswith(".yaml") else a for a in args)
    out = tmp_path / "out.onnx"
    capsys.readouterr()
    assert cli("transform", qmodel, "-o", out, *args) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()
