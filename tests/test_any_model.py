"""Your model, your data (issue 18's bars): a detector with a sigmoid probability map, a CNN +
attention sequence model with a CTC-style head and an ImageNet-style classifier, built by
axonnx.architectures and quantized with quantize_static's defaults in both formats, scored
from the CLI on folders of images of any size with label-free metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from axonnx.architectures import mobilenet_v2, text_detector, text_recognizer
from axonnx.cli import app
from axonnx.data.preprocess import PREPROCESS_KEY, parse_preprocess
from axonnx.zoo import quantize_float

runner = CliRunner()

# kind: (float model, its preprocessing, image sizes in the folder, the label-free metric)
KINDS = {
    "detector": (lambda: text_detector(48, width=8, blocks=1),
                 '{"range": "0-1", "normalisation": {"mean": [0.485, 0.456, 0.406], '
                 '"std": [0.229, 0.224, 0.225]}}', [(40, 60), (64, 48), (48, 48)], "iou"),
    "recognizer": (lambda: text_recognizer(32, 64, d=16, heads=2, classes=12),
                   '{"range": "0-1"}', [(30, 90), (32, 64), (40, 100)], "agreement"),
    "classifier": (lambda: mobilenet_v2(32, classes=10),
                   '{"range": "0-1", "resize": "36", "crop": "32", "normalisation": '
                   '{"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}',
                   [(50, 40), (36, 36), (45, 60)], "agreement"),
}


def images(folder: Path, sizes, n: int, seed: int) -> Path:
    """Smooth random images of the given sizes (cycled), text-like bright strokes on dark."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(n):
        h, w = sizes[k % len(sizes)]
        base = rng.integers(0, 60, (h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
        img = np.kron(base, np.ones((4, 4, 1), np.uint8))[:h, :w]
        for _ in range(3):
            y, x = rng.integers(0, h - 4), rng.integers(0, w - 8)
            img[y:y + 4, x:x + rng.integers(4, w - x)] = rng.integers(150, 256)
        Image.fromarray(img).save(folder / f"{k:03d}.png")
    return folder


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Quantized models per (kind, format) and a folder of images per kind."""
    from axonnx.data.load import read_data

    root = tmp_path_factory.mktemp("any_model")
    out = {}
    for kind, (build, prep, sizes, _) in KINDS.items():
        model = build()
        onnx.helper.set_model_props(model, {PREPROCESS_KEY: prep})
        fp32 = root / f"{kind}_fp32.onnx"
        onnx.save(model, fp32)
        folder = images(root / f"{kind}_images", sizes, 10, seed=len(kind))
        calib = read_data(folder, model).feeds()["input"]
        if kind == "recognizer":  # a fixed batch of 1
            calib = calib[:1]
        for fmt in ("qdq", "qoperator"):
            out[kind, fmt] = quantize_float(fp32, root / f"{kind}_{fmt}.onnx", calib, fmt=fmt)
        out[kind] = folder
    return out


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_sensitivity_and_explore_on_a_folder_with_a_label_free_metric(zoo, kind, fmt, tmp_path):
    model, folder, metric = zoo[kind, fmt], zoo[kind], KINDS[kind][3]
    common = ["--data", str(folder), "--metric", metric, "--workers", "1", "--json"]
    matmul = ["--matmul"] if kind == "recognizer" else []
    r = runner.invoke(app, ["sensitivity", str(model), "--multipliers", "ROUP_H",
                            "--out", str(tmp_path / "s"), *common, *matmul])
    assert r.exit_code == 0, r.output
    sens = json.loads(r.stdout)
    assert sens["metric"]["name"] == metric and sens["images"] == 10
    assert sens["baseline"] == 1.0  # the exact plan agrees with the model it came from
    assert (tmp_path / "s" / "sensitivity_single.png").stat().st_size > 1000
    assert any(row["score"] < 1.0 for row in sens["rows"])  # ROUP_H costs something somewhere
    r = runner.invoke(app, ["explore", str(model), "--approach", "llam", "--multipliers",
                            "ROUP(0,0),ROUP_H", "--subset", "5", "--pop", "4", "--gens", "1",
                            "--reeval", "2", "--out", str(tmp_path / "e"), *common, *matmul])
    assert r.exit_code == 0, r.output
    front = json.loads(r.stdout)
    assert front["metric"]["name"] == metric
    assert "search split (5" in front["search_data"] and "report split (5" in front["report_data"]
    assert (tmp_path / "e" / "explore.png").stat().st_size > 1000
    run = json.loads((tmp_path / "e" / "run.json").read_text())
    assert run["metric"]["name"] == metric and run["report_data"]["samples"] == 5


def test_eval_reports_fidelity_between_exact_and_approximate(zoo, tmp_path):
    model, folder = zoo["detector", "qoperator"], zoo["detector"]
    for plan, name in ((["--llam", "ROUP(0,0)"], "exact"), (["--llam", "ROUP(2,6)"], "approx")):
        r = runner.invoke(app, ["transform", str(model), "-o", str(tmp_path / f"{name}.onnx"), *plan])
        assert r.exit_code == 0, r.output
    scores = {}
    for name in ("exact", "approx"):
        r = runner.invoke(app, ["eval", str(tmp_path / f"{name}.onnx"), "--reference", str(model),
                                "--data", str(folder), "--metric", "snr,cosine,iou", "--json"])
        assert r.exit_code == 0, r.output
        scores[name] = json.loads(r.stdout)["scores"]
    assert scores["exact"] == {"snr": 120.0, "cosine": pytest.approx(1.0), "iou": 1.0}
    assert 0 < scores["approx"]["snr"] < 60 and scores["approx"]["cosine"] < 1.0
    human = runner.invoke(app, ["eval", str(tmp_path / "approx.onnx"), "--reference", str(model),
                                "--data", str(folder), "--metric", "snr"])
    assert human.exit_code == 0 and "snr:" in human.stdout and "dB" in human.stdout


def _biases(path: Path) -> dict[str, bytes]:
    model = onnx.load(str(path))
    values = {t.name: numpy_helper.to_array(t).tobytes() for t in model.graph.initializer}
    return {n.name: values.get(n.input[8], b"") if len(n.input) > 8 else b""  # none: zero
            for n in model.graph.node if n.op_type in ("ROUPConv", "ROUPMatMul")}


def test_matmul_bias_correction_changes_fully_connected_biases_and_helps(zoo, tmp_path):
    """--matmul --recovery bias: every fully connected layer (the attention block's Q/K/V and
    output projections and the feed-forward and head layers) gets a corrected bias, and the
    output is closer to the exact model's on held-out lines."""
    model, folder = zoo["recognizer", "qoperator"], zoo["recognizer"]
    held_out = images(tmp_path / "held_out", KINDS["recognizer"][2], 6, seed=99)
    base = ["transform", str(model), "--matmul", "--llam", "ROUP(1,4)"]
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "plain.onnx")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "fixed.onnx"), "--recovery", "bias",
                            "--calib-data", str(folder), "--json"])
    assert r.exit_code == 0, r.output
    plain, fixed = _biases(tmp_path / "plain.onnx"), _biases(tmp_path / "fixed.onnx")
    from axonnx.transform import prepared

    kinds = {layer.name: layer.kind for layer in prepared(onnx.load(str(model)), True)[1]}
    fully_connected = [n for n, k in kinds.items() if k == "fully connected"]
    assert len(fully_connected) >= 6
    assert all(fixed[n] != plain[n] for n in fully_connected), "an FC bias was left alone"
    snr = {}
    for name in ("plain", "fixed"):
        r = runner.invoke(app, ["eval", str(tmp_path / f"{name}.onnx"), "--reference", str(model),
                                "--data", str(held_out), "--metric", "snr", "--json"])
        assert r.exit_code == 0, r.output
        snr[name] = json.loads(r.stdout)["score"]
    assert snr["fixed"] > snr["plain"] + 3.0, snr


def test_search_and_report_splits_are_disjoint(zoo, tmp_path):
    from axonnx.data.load import DataOptions, search_and_report

    model = onnx.load(str(zoo["classifier", "qdq"]))
    search, report = search_and_report(DataOptions(zoo["classifier"]), model, subset=4, seed=2)
    rows = lambda d: {d.arrays["input"][k].tobytes() for k in range(len(d))}  # noqa: E731
    assert len(search) == 4 and len(report) == 6 and not rows(search) & rows(report)
    from axonnx.errors import AxonnxError

    with pytest.raises(AxonnxError, match="same samples"):
        search_and_report(DataOptions(), model, subset=4, search_data=zoo["classifier"],
                          eval_data=zoo["classifier"])


def test_cifar_search_split_is_a_validation_split_of_the_training_batches(cifar_dir):
    """With the official batches, explore searches data_batch_5 and reports on test_batch."""
    from axonnx.data.load import DataOptions, search_and_report
    from axonnx.model import load_model

    model = load_model("zoo:resnet8")
    search, report = search_and_report(DataOptions(cifar_dir), model, subset=200)
    assert "validation split (data_batch_5)" in search.source and len(search) == 200
    assert "test" in report.source and len(report) == 10_000
    assert np.bincount(search.labels).tolist() == [20] * 10
    rows = lambda d: {d.arrays[next(iter(d.arrays))][k].tobytes() for k in range(len(d))}  # noqa: E731
    assert not rows(search) & rows(report)


def test_data_in_the_wrong_range_is_named(zoo, tmp_path):
    """A folder of raw 0..255 arrays fed to a model whose input quantizer covers the
    normalised range: a warning that says so."""
    model, folder = zoo["detector", "qdq"], zoo["detector"]
    from axonnx.data.load import input_range_note, read_data

    loaded = onnx.load(str(model))
    assert input_range_note(read_data(folder, loaded), loaded) is None
    raw = tmp_path / "raw.npy"
    np.save(raw, np.random.default_rng(0).uniform(0, 255, (4, 3, 48, 48)).astype(np.float32))
    note = input_range_note(read_data(raw, loaded), loaded)
    assert note and "not preprocessed as the model expects" in note
    r = runner.invoke(app, ["eval", str(model), "--reference", str(model), "--data", str(raw),
                            "--metric", "snr"])
    assert r.exit_code == 0 and "warning:" in r.stderr and "input quantizer" in r.stderr
    assert parse_preprocess(KINDS["detector"][1]).mean is not None


def test_recovery_that_hurts_is_dropped_and_said(zoo):
    """The guard scores the model with and without recovery on the calibration data and
    keeps the closer one: a 'recovery' that shifts every bias far off is dropped."""
    from axonnx.data.load import read_data
    from axonnx.passes import ConstantEdit, edit_constants
    from axonnx.plan import plan_from_options
    from axonnx.recovery.guard import guarded_transform

    class ShiftsBiases:  # the Recovery interface transform uses
        def apply(self, model, layers, assignments, encoded):
            edit_constants(model, {layer.name: ConstantEdit(
                None, np.full(layer.weight.shape[0], -5000, np.int64)) for layer in layers})
            return {}

        def describe(self):
            return {"bias_correction": True}

    model = onnx.load(str(zoo["detector", "qoperator"]))
    data = read_data(zoo["detector"], model)
    plan = plan_from_options(llam="ROUP(1,4)")
    out, _, verdict = guarded_transform(model, plan, ShiftsBiases(), data)
    assert not verdict.kept and verdict.score_with < verdict.score_without
    assert "dropped" in verdict.line("bias") and "without it" in verdict.line("bias")
    meta = {p.key for p in out.metadata_props}
    assert "axonnx.recovery" not in meta  # the written model is the one without recovery
