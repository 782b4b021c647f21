"""Recovery on any model: --calib-data (axonnx.data.calibration) fed through the model's own
input, measure_activations(inputs=...) (the README's Python path: tests/test_readme.py), --input-shape for
models with dynamic sizes (inspect, energy)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from axonnx.cli import app
from axonnx.data.calibration import fit_to_input, load_calibration
from axonnx.errors import AxonnxError
from axonnx.model import model_inputs
from axonnx.recovery import measure_activations
from test_analysis import tiny  # noqa: F401  (a tiny CIFAR-shaped model, a fixture)

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def float_cnn(dims, seed: int = 0) -> onnx.ModelProto:
    """conv3x3(3->6)+relu, conv3x3(6->8, stride 2)+relu, global pool, flatten, matmul(8->5)."""
    rng = np.random.default_rng(seed)

    def init(name, *shape, scale=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [init("w1", 6, 3, 3, 3, scale=0.02), init("b1", 6, scale=0.1),
             init("w2", 8, 6, 3, 3), init("b2", 8, scale=0.1), init("wf", 8, 5)]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1],
                              strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="pool"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "wf"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # onnx writes IR 14, which onnxruntime cannot load
    return model


def quantize_default(dims, folder: Path, name: str) -> Path:
    """onnxruntime's quantize_static with its defaults (QDQ, uint8 activations)."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    rng = np.random.default_rng(1)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": rng.uniform(0, 255, (2, 3, 16, 16)).astype(np.float32)}
                                 for _ in range(3)])

        def get_next(self):
            return next(self.batches, None)

    src, dst = folder / f"{name}_fp32.onnx", folder / f"{name}.onnx"
    onnx.save(float_cnn(dims), src)
    quantize_static(str(src), str(dst), Reader())
    return dst


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib_models")
    return {"dynamic": quantize_default(["N", 3, "H", "W"], folder, "dynamic"),
            "fixed": quantize_default(["N", 3, 16, 16], folder, "fixed")}


def pixels(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def transform(model: Path, out: Path, *extra: str):
    return runner.invoke(app, ["transform", str(model), "-o", str(out), "--llam", "ROUP(1,4)",
                               *extra])


def initializers(path: Path) -> dict[str, bytes]:
    return {t.name: t.raw_data or numpy_helper.to_array(t).tobytes()
            for t in onnx.load(str(path)).graph.initializer}


@pytest.fixture(scope="module")
def plain(models, tmp_path_factory):
    """The no-recovery transforms, to compare biases against."""
    folder = tmp_path_factory.mktemp("plain")
    out = {}
    for kind, path in models.items():
        out[kind] = folder / f"{kind}.onnx"
        result = transform(path, out[kind])
        assert result.exit_code == 0, result.output
    return out


def _write_pngs(folder: Path, n: int, hw: int) -> None:
    from PIL import Image

    folder.mkdir()
    for k in range(n):
        Image.fromarray(pixels((hw, hw, 3), k).astype(np.uint8)).save(folder / f"{k:03d}.png")


@pytest.mark.parametrize("kind", ["npy-folder", "npz", "png-folder"])
def test_calib_data_end_to_end(models, plain, tmp_path, kind):
    """--recovery bias --calib-data writes a model whose biases differ from the
    no-recovery one, and records where its statistics come from."""
    model = "dynamic" if kind == "npy-folder" else "fixed"
    if kind == "npy-folder":  # a single sample without batch axis, and a batch of another size
        data = tmp_path / "calib"
        data.mkdir()
        np.save(data / "a.npy", pixels((3, 24, 20), 1))
        np.save(data / "b.npy", pixels((5, 3, 24, 20), 2))
        samples = 6
    elif kind == "npz":  # two arrays: two batches
        data = tmp_path / "calib.npz"
        np.savez(data, first=pixels((4, 3, 16, 16), 3), second=pixels((3, 3, 16, 16), 4))
        samples = 7
    else:
        data = tmp_path / "images"
        _write_pngs(data, 5, 16)
        samples = 5
    out = tmp_path / "fixed.onnx"
    # Images need their preprocessing said (the model carries no axonnx.preprocess)
    extra = ["--preprocess", "range=0-255"] if kind == "png-folder" else []
    result = transform(models[model], out, "--recovery", "bias", "--calib-data", str(data), *extra)
    assert result.exit_code == 0, (result.output, result.exception)
    before, after = initializers(plain[model]), initializers(out)
    assert any(before.get(name) != value for name, value in after.items())
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert f'"calibration_images": {samples}' in meta["axonnx.recovery"]
    assert str(data) in meta["axonnx.recovery"]


def test_calib_limit_and_key_named_like_the_input(models, tmp_path):
    data = tmp_path / "calib.npz"
    np.savez(data, other=pixels((9, 3, 8, 8)), x=pixels((6, 3, 16, 16)))
    calibration = load_calibration(data, models["fixed"], limit=4)
    assert [a.shape for a in calibration.arrays.values()] == [(4, 3, 16, 16)]
    assert len(calibration) == 4 and calibration.arrays["x"].dtype == np.float32


def one_line_error(result) -> str:
    """The CLI's error boundary: exit status 1 and one 'error:' line on stderr."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0][len("error: "):]


def test_wrong_shape_names_the_expected_shape(models, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, pixels((4, 3, 20, 20)))
    message = one_line_error(transform(models["fixed"], tmp_path / "o.onnx", "--recovery", "bias",
                                       "--calib-data", str(bad)))
    assert "[4, 3, 20, 20]" in message and "[?, 3, 16, 16]" in message
    assert not (tmp_path / "o.onnx").exists()


def test_images_are_resized_and_their_preprocessing_is_never_guessed(models, tmp_path):
    _write_pngs(tmp_path / "images", 2, 12)
    message = one_line_error(transform(models["fixed"], tmp_path / "o.onnx", "--recovery", "bias",
                                       "--calib-data", str(tmp_path / "images")))
    assert "not guessed" in message and "--preprocess" in message
    result = transform(models["fixed"], tmp_path / "o.onnx", "--recovery", "bias",
                       "--calib-data", str(tmp_path / "images"), "--preprocess", "range=0-255")
    assert result.exit_code == 0, result.output  # 12x12 resized to the input's 16x16
    # a dynamic-size model fixes no size: images of two sizes need a resize
    _write_pngs(tmp_path / "mixed", 1, 12)
    _write_pngs(tmp_path / "mixed2", 1, 14)
    (tmp_path / "mixed2" / "000.png").rename(tmp_path / "mixed" / "001.png")
    message = one_line_error(transform(models["dynamic"], tmp_path / "d.onnx", "--recovery", "bias",
                                       "--calib-data", str(tmp_path / "mixed"),
                                       "--preprocess", "range=0-255"))
    assert "resize=HxW" in message


def test_calibration_errors(models, tmp_path):
    spec = model_inputs(onnx.load(str(models["fixed"])))[0]
    with pytest.raises(AxonnxError, match="convert the data to float32"):
        fit_to_input(np.zeros((1, 3, 16, 16), np.complex64), spec, "x")
    with pytest.raises(AxonnxError, match="does not exist"):
        load_calibration(tmp_path / "missing", models["fixed"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(AxonnxError, match="holds no"):
        load_calibration(tmp_path / "empty", models["fixed"])
    np.save(tmp_path / "a.npy", pixels((1, 3, 16, 16)))
    message = one_line_error(transform(models["fixed"], tmp_path / "o.onnx",
                                       "--calib-data", str(tmp_path / "a.npy")))
    assert "--recovery" in message
    # measure_activations checks pre-made inputs before onnxruntime sees them
    with pytest.raises(AxonnxError, match=re.escape("[?, 3, 16, 16]")):
        measure_activations(models["fixed"], inputs=[pixels((2, 3, 8, 8))])
    with pytest.raises(AxonnxError, match="onnxruntime cannot run"):  # odd H: conv shapes clash
        measure_activations(models["dynamic"], inputs=[{"x": pixels((1, 3, 2, 2))[:, :, :0]}])


@pytest.mark.parametrize("command", ["inspect", "energy"])
def test_dynamic_model_needs_input_shape(models, command):
    message = one_line_error(runner.invoke(app, [command, str(models["dynamic"])]))
    assert "--input-shape" in message and "dynamic" in message
    result = runner.invoke(app, [command, str(models["dynamic"]), "--input-shape", "1,3,16,16",
                                 "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    small = result.output
    result = runner.invoke(app, [command, str(models["dynamic"]), "--input-shape", "1x3x32x32",
                                 "--json"])
    assert result.exit_code == 0 and result.output != small  # counted at the given size
    fixed = runner.invoke(app, [command, str(models["fixed"]), "--json"])
    assert fixed.exit_code == 0 and fixed.output == small
    bad = one_line_error(runner.invoke(app, [command, str(models["fixed"]), "--input-shape",
                                             "1,3,20,20"]))
    assert "does not fit" in bad


def test_sensitivity_and_explore_take_calib_data(tiny, tmp_path):
    """The studies' --calib-data: the statistics come from the user's arrays."""
    import json

    from axonnx.recovery import ActivationStats

    path, _ = tiny
    data = tmp_path / "calib.npy"
    np.save(data, pixels((6, 3, 32, 32)))
    r = runner.invoke(app, ["sensitivity", str(path), "--mult", "ROUP_H", "--sample", "--limit",
                            "5", "--recovery", "bias", "--calib-data", str(data),
                            "--out", str(tmp_path / "s"), "--workers", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["images"] == 5
    r = runner.invoke(app, ["explore", str(path), "--approach", "llam", "--library",
                            "ROUP(0,0),ROUP_H", "--sample", "--subset", "10", "--pop", "4",
                            "--gens", "1", "--reeval", "0", "--workers", "1", "--recovery", "bias",
                            "--calib-data", str(data), "--out", str(tmp_path / "e"), "--json"])
    assert r.exit_code == 0, r.output
    stats = ActivationStats.load(tmp_path / "e" / "activations.npz")
    assert stats.images == 6 and str(data) in stats.source
    r = runner.invoke(app, ["explore", str(path), "--approach", "llam", "--library", "ROUP_H",
                            "--sample", "--calib-data", str(data), "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "--recovery" in r.output
