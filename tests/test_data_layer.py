"""The data and metric layer: preprocessing, Dataset splits, folders of images and arrays
with labels, the metrics, the one-pass activation histograms, and option fixes in errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from axonnx.data.load import from_iterable, read_data
from axonnx.data.preprocess import Preprocess, parse_preprocess
from axonnx.data.source import Dataset
from axonnx.errors import AxonnxError
from axonnx.metrics import make_metric


def identity_model(dims=("N", 3, 16, 16), outputs=1) -> onnx.ModelProto:
    """y = x (and y2 = 2x): the preprocessed input comes back as the output."""
    nodes = [helper.make_node("Identity", ["x"], ["y"])]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(dims))]
    if outputs == 2:
        nodes.append(helper.make_node("Add", ["x", "x"], ["y2"]))
        outs.append(helper.make_tensor_value_info("y2", TensorProto.FLOAT, list(dims)))
    graph = helper.make_graph(nodes, "id", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(dims))], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def write_images(folder, sizes, seed=0):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{k:02d}.png")


# ---- preprocessing ---------------------------------------------------------------------------

def test_preprocess_from_cli_text_over_the_model():
    base = parse_preprocess('{"range": "0-1", "layout": "NCHW"}')
    prep = parse_preprocess("mean=0.5,0.5,0.5 std=0.25,0.25,0.25 channels=BGR layout=NHWC",
                            "--preprocess", base=base)
    assert prep.range == "0-1" and prep.layout == "NHWC" and prep.channels == "BGR"
    images = np.zeros((1, 3, 2, 2), np.uint8)
    images[:, 0] = 255  # red
    x = prep.apply(images)
    assert x.shape == (1, 2, 2, 3)
    np.testing.assert_allclose(x[0, 0, 0], [-2.0, -2.0, 2.0])  # BGR: red last, (1-.5)/.25
    for bad, match in [("resize=0", "not a size"), ("mean=1,2", "both mean and std"),
                       ("colour=red", "unknown preprocessing key"), ("range", "key=value"),
                       ("dtype=uint8 range=0-1", "needs range 0-255")]:
        with pytest.raises(AxonnxError, match=match):
            parse_preprocess(bad, "--preprocess")


def test_images_of_any_size_resize_crop_and_imagefolder_labels(tmp_path):
    root = tmp_path / "images"
    write_images(root / "cat", [(20, 30), (40, 25)])
    write_images(root / "dog", [(16, 16)], seed=1)
    data = read_data(root, identity_model(), preprocess="range=0-1")
    assert len(data) == 3 and data.classes == ("cat", "dog")
    assert data.labels.tolist() == [0, 0, 1]
    assert data.arrays["x"].dtype == np.uint8 and data.arrays["x"].shape == (3, 3, 16, 16)
    feeds = data.feeds()
    assert feeds["x"].dtype == np.float32 and feeds["x"].max() <= 1.0
    # resize the shorter side to 16, then a centre crop; a crop too big is an error
    cropped = read_data(root, identity_model(), preprocess="resize=16 crop=16x16")
    assert cropped.arrays["x"].shape == (3, 3, 16, 16)
    with pytest.raises(AxonnxError, match="crop 20x20 is larger"):
        read_data(root, identity_model(), preprocess="resize=16 crop=20")


def test_labels_file_by_name_or_in_order(tmp_path):
    write_images(tmp_path / "imgs", [(16, 16)] * 3)
    (tmp_path / "named.csv").write_text("02.png,1\n00.png,7\n01.png,3\n")
    data = read_data(tmp_path / "imgs", identity_model(), labels=tmp_path / "named.csv",
                     preprocess="range=0-1")
    assert data.labels.tolist() == [7, 3, 1]
    (tmp_path / "ordered.txt").write_text("4\n5\n6\n")
    data = read_data(tmp_path / "imgs", identity_model(), labels=tmp_path / "ordered.txt",
                     preprocess="range=0-1")
    assert data.labels.tolist() == [4, 5, 6]
    (tmp_path / "short.txt").write_text("4\n")
    with pytest.raises(AxonnxError, match="1 labels for 3 files"):
        read_data(tmp_path / "imgs", identity_model(), labels=tmp_path / "short.txt",
                  preprocess="range=0-1")


def test_arrays_npz_per_input_with_labels_and_iterables(tmp_path):
    model = identity_model()
    x = np.random.default_rng(0).standard_normal((5, 3, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, labels=np.arange(5))
    data = read_data(tmp_path / "d.npz", model)
    assert data.labels.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(data.feeds()["x"], x)  # arrays are fed as they are
    with pytest.raises(AxonnxError, match="applies to images"):
        read_data(tmp_path / "d.npz", model, preprocess="range=0-1")
    it = from_iterable(iter([x[:2], {"x": x[2:]}]), model)
    assert len(it) == 5 and it.labels is None
    with pytest.raises(AxonnxError, match=r"\[\?, 3, 16, 16\]"):
        from_iterable([x[:, :, :8]], model)


def test_splits_are_disjoint_seeded_and_class_balanced():
    labels = np.repeat(np.arange(4), 25)
    data = Dataset({"x": np.arange(100, dtype=np.float32)[:, None]}, labels, "d")
    search, report = data.split(20, seed=3)
    a, b = search.arrays["x"].ravel(), report.arrays["x"].ravel()
    assert len(a) == 20 and len(b) == 80 and not set(a) & set(b)
    assert np.bincount(search.labels).tolist() == [5, 5, 5, 5]
    assert "search split" in search.source and "report split" in report.source
    again, _ = data.split(20, seed=3)
    other, _ = data.split(20, seed=4)
    assert np.array_equal(again.arrays["x"], search.arrays["x"])
    assert not np.array_equal(other.arrays["x"], search.arrays["x"])
    with pytest.raises(AxonnxError, match="cannot split"):
        data.split(100)


# ---- metrics ---------------------------------------------------------------------------------

def scored(spec, out, ref=None, labels=None):
    m = make_metric(spec)
    m.update({"y": out}, None if ref is None else {"y": ref}, labels)
    return m.compute()[m.name]


def test_metrics_against_hand_computed_values():
    ref = np.array([[1.0, 3.0, 2.0], [4.0, 0.0, 1.0]])
    out = np.array([[1.0, 2.0, 3.0], [4.0, 0.5, 1.0]])
    assert scored("top1", out, labels=np.array([2, 0])) == 1.0
    assert scored("top1", out, labels=np.array([1, 0])) == 0.5
    assert scored("top2", out, labels=np.array([0, 2])) == 0.5
    assert scored("agreement", out, ref) == 0.5
    noise = ((out - ref) ** 2).sum()
    assert scored("snr", out, ref) == pytest.approx(10 * np.log10((ref ** 2).sum() / noise))
    assert scored("snr", ref, ref) == 120.0  # identical: capped
    cos = [np.dot(o, r) / np.linalg.norm(o) / np.linalg.norm(r) for o, r in zip(out, ref)]
    assert scored("cosine", out, ref) == pytest.approx(np.mean(cos))
    maps_ref = np.array([[0.9, 0.9, 0.1, 0.1]])
    maps_out = np.array([[0.9, 0.2, 0.8, 0.1]])
    assert scored("iou", maps_out, maps_ref) == pytest.approx(1 / 3)
    assert scored("iou@0.15", maps_out, maps_ref) == pytest.approx(2 / 3)
    seq_ref = np.zeros((1, 3, 4))
    seq_ref[0, :, 1] = 1
    seq_out = seq_ref.copy()
    seq_out[0, 2] = [0, 0, 0, 2]
    assert scored("agreement", seq_out, seq_ref) == pytest.approx(2 / 3)  # per position
    assert make_metric("snr").loss(30.0, 20.0) == 10.0


def test_user_metric_from_a_file_and_bad_specs(tmp_path):
    (tmp_path / "mine.py").write_text(
        "import numpy as np\n"
        "def max_error(exact, approx, labels):\n"
        "    return float(max(np.abs(e - a).max() for e, a in zip(exact, approx)))\n"
        "max_error.higher_is_better = False\n")
    m = make_metric(f"{tmp_path / 'mine.py'}:max_error")
    assert m.name == "max_error" and not m.higher_is_better
    m.update({"y": np.array([1.0, 5.0])}, {"y": np.array([1.0, 2.0])}, None)
    assert m.compute() == {"max_error": 3.0}
    assert m.loss(0.0, 3.0) == 3.0
    for spec, match in [("nonsense", "unknown metric"), ("no_such_module_x:f", "cannot import"),
                        (f"{tmp_path / 'mine.py'}:nope", "no function"),
                        ("iou@x", "iou@T")]:
        with pytest.raises(AxonnxError, match=match):
            make_metric(spec)


def test_evaluate_with_several_outputs_and_a_reference(tmp_path):
    from axonnx.evaluate import evaluate

    model = identity_model(outputs=2)
    data = from_iterable([np.random.default_rng(1).standard_normal((6, 3, 16, 16)).astype(
        np.float32)], model)
    result = evaluate(model, data, ["snr:y2", "cosine"], reference=model)
    assert result.scores == {"snr": 120.0, "cosine": pytest.approx(1.0)}
    assert result.metric["name"] == "snr" and result.metric["output"] == "y2"
    with pytest.raises(AxonnxError, match="--reference"):
        evaluate(model, data, "snr")
    with pytest.raises(AxonnxError, match="needs labels"):
        evaluate(model, data, "top1")
    with pytest.raises(AxonnxError, match="no output 'zz'"):
        evaluate(model, data, "snr:zz", reference=model)


# ---- activation histograms -------------------------------------------------------------------

def reference_tap_histograms(layer, value):
    """One bincount per tap, straight from the definition."""
    from axonnx.recovery.statistics import LEVELS, _geometry, stored_min

    n, c, h, w = value.shape
    geom = _geometry(layer, (h, w))
    ho, wo = geom.output_size(h, w)
    idx = value.astype(np.int64) - stored_min(value.dtype) + (np.arange(c) * LEVELS)[None, :, None, None]
    kh, kw = geom.kernel
    out = np.zeros((c, kh, kw, LEVELS), np.int64)
    for i in range(kh):
        rows = np.arange(ho) * geom.strides[0] - geom.pads[0] + i * geom.dilations[0]
        rows = rows[(rows >= 0) & (rows < h)]
        for j in range(kw):
            cols = np.arange(wo) * geom.strides[1] - geom.pads[1] + j * geom.dilations[1]
            cols = cols[(cols >= 0) & (cols < w)]
            out[:, i, j] = np.bincount(idx[:, :, rows][:, :, :, cols].ravel(),
                                       minlength=c * LEVELS).reshape(c, LEVELS)
    return out, n * ho * wo


@pytest.mark.parametrize("kernel, stride, dilation, pads, hw, dtype", [
    (3, 1, 1, [1, 1, 1, 1], (9, 7), np.uint8), (3, 2, 1, [1, 1, 1, 1], (9, 8), np.int8),
    (5, 2, 1, [2, 1, 0, 2], (11, 10), np.uint8), (3, 1, 2, [2, 2, 2, 2], (8, 9), np.int8),
    (1, 1, 1, [0, 0, 0, 0], (5, 5), np.uint8), (7, 3, 1, [3, 3, 3, 3], (13, 12), np.uint8),
    (3, 2, 1, [0, 0, 0, 0], (4, 4), np.int8),
])
def test_phase_histograms_equal_one_count_per_tap(kernel, stride, dilation, pads, hw, dtype):
    from types import SimpleNamespace

    from axonnx.recovery.statistics import _tap_histograms

    rng = np.random.default_rng(kernel * 7 + stride)
    info = np.iinfo(dtype)
    value = rng.integers(info.min, info.max + 1, (2, 3, *hw)).astype(dtype)
    layer = SimpleNamespace(weight=np.zeros((4, 3, kernel, kernel), np.int8), attributes={
        "strides": [stride] * 2, "dilations": [dilation] * 2, "pads": pads})
    got, windows = _tap_histograms(layer, value)
    want, want_windows = reference_tap_histograms(layer, value)
    assert windows == want_windows
    np.testing.assert_array_equal(got, want)


# ---- option fixes in errors ------------------------------------------------------------------

def test_option_fixes_are_offered_only_where_the_command_has_them(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from axonnx.cli import app

    monkeypatch.setenv("AXONNX_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    runner = CliRunner()
    err = AxonnxError("base", {"--sample": "use the sample", "--nope": "x"})
    assert err.render({"--sample"}) == "base; or use the sample (--sample)"
    assert "--nope" in str(err)  # Python users see every fix
    eval_error = runner.invoke(app, ["eval", "zoo:resnet8"]).stderr
    sens_error = runner.invoke(app, ["sensitivity", "zoo:resnet8", "--out", str(tmp_path / "o")]).stderr
    assert "--download" in eval_error and "--sample" in eval_error
    assert "--download" not in sens_error and "--sample" in sens_error


def test_a_shape_error_names_the_shape_as_given():
    """A single sample of the wrong size is reported as the user's array, not with the batch
    axis axonnx adds to it."""
    from axonnx.data.calibration import fit_to_input
    from axonnx.model import model_inputs

    spec = model_inputs(identity_model())[0]
    with pytest.raises(AxonnxError, match=r"has shape \[3, 8, 16\] but"):
        fit_to_input(np.zeros((3, 8, 16), np.float32), spec, "sample")
    assert fit_to_input(np.zeros((3, 16, 16), np.float32), spec, "sample").shape == (1, 3, 16, 16)
