"""Sensitivity, exploration (NSGA-II, resume, Dask), Pareto extraction and the analysis
commands, on a tiny CIFAR-shaped quantized model and a few images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from axonnx.pareto import dominates, pareto_indices, pareto_mask
from axonnx.cli import analysis as _analysis  # noqa: F401  (registers the commands)
from axonnx.cli._app import app
from axonnx.data.cifar10 import Split
from axonnx.errors import AxonnxError

LIBRARY = ("ROUP(0,0)", "ROUP(1,4)", "ROUP(2,6)", "SKIP")


# ---- a tiny model and data it has opinions about ----------------------------------------------

def tiny_float_model(seed: int = 3) -> onnx.ModelProto:
    """[N,3,32,32] raw pixels -> conv3x3 s2 (3->6) relu -> conv3x3 s2 (6->8) relu ->
    conv1x1 (8->8) relu -> global pool -> gemm (8->10)."""
    rng = np.random.default_rng(seed)

    def init(name, *shape, scale):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [init("w1", 6, 3, 3, 3, scale=0.01), init("b1", 6, scale=0.1),
             init("w2", 8, 6, 3, 3, scale=0.3), init("b2", 8, scale=0.1),
             init("w3", 8, 8, 1, 1, scale=0.5), init("b3", 8, scale=0.1),
             init("wf", 8, 10, scale=1.0), init("bf", 10, scale=0.1)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="conv3"),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cifar",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def tiny_images(n: int, seed: int = 0) -> np.ndarray:
    """Noise with a random brightness per image and channel, so that predictions vary."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(20, 235, size=(n, 3, 1, 1))
    return np.clip(means + rng.normal(0, 40, size=(n, 3, 32, 32)), 0, 255).astype(np.uint8)


def quantize_tiny(folder: Path, variant: str = "int8") -> Path:
    """The tiny model quantized: ``int8`` (QOperator, int8 activations, per-channel int8
    weights), ``defaults`` (quantize_static's defaults: QDQ, uint8 activations, per-tensor
    int8 weights) or ``uint8-weights`` (QOperator, uint8 activations and per-channel uint8
    weights, whose zero points are not 0)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    images = tiny_images(16, seed=99).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": images[i:i + 4]} for i in range(0, 16, 4)])

        def get_next(self):
            return next(self.batches, None)

    options = {
        "int8": dict(quant_format=QuantFormat.QOperator, activation_type=QuantType.QInt8,
                     weight_type=QuantType.QInt8, per_channel=True),
        "defaults": {},
        "uint8-weights": dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                              weight_type=QuantType.QUInt8, per_channel=True),
    }[variant]
    src, dst = folder / "tiny_fp32.onnx", folder / f"tiny_{variant}.onnx"
    onnx.save(tiny_float_model(), src)
    quantize_static(str(src), str(dst), Reader(), **options)
    return dst


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(model path, split labelled by the int8 model itself: baseline top-1 = 100%)."""
    import onnxruntime as ort

    folder = tmp_path_factory.mktemp("tiny")
    path = quantize_tiny(folder)
    images = tiny_images(24)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels = session.run(None, {"x": images.astype(np.float32)})[0].argmax(axis=1)
    return path, Split(images, labels.astype(np.int64), "tiny images")


# ---- Pareto ---------------------------------------------------------------------------------

def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.read_text().splitlines()))


def brute_force_front(F) -> set[int]:
    return {i for i in range(len(F)) if not any(dominates(F[j], F[i]) for j in range(len(F)) if j != i)}


@pytest.mark.parametrize("seed", range(6))
def test_pareto_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    F = rng.integers(0, 6, size=(60, 2)).astype(float)  # many ties and duplicates
    assert set(np.flatnonzero(pareto_mask(F))) == brute_force_front(F)
    F3 = rng.integers(0, 4, size=(40, 3)).astype(float)
    assert set(np.flatnonzero(pareto_mask(F3))) == brute_force_front(F3)
    idx = pareto_indices(F)
    assert list(F[idx, 0]) == sorted(F[idx, 0])


def test_pareto_edge_cases():
    assert pareto_mask(np.zeros((0, 2))).size == 0
    assert pareto_mask([[1.0, 1.0], [1.0, 1.0]]).tolist() == [True, True]
    assert pareto_mask([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0], [2.0, 2.0]]).tolist() == [True, True, True, False]


# ---- search space ------------------------------------------------------------------------------

def test_space_genome_to_plan_and_canonical_order():
    from axonnx.analysis.space import SearchSpace

    space = SearchSpace("klam-chan", ("a", "b"), LIBRARY, classes=3)
    assert space.n_var == 6 and space.upper == 3
    # SKIP is the least accurate, ROUP(0,0) the most: each layer's genes are sorted.
    X = space.canonical(np.array([[3, 0, 2, 1, 1, 1]]))
    assert X.tolist() == [[0, 2, 3, 1, 1, 1]]
    plan = space.plan(X[0])
    assert plan.rules[0].approach == "klam-chan"
    assert plan.rules[0].multipliers == ("ROUP(0,0)", "ROUP(2,6)", "SKIP")
    assert plan.rules[1].approach == "llam" and plan.rules[1].multipliers == ("ROUP(1,4)",)
    assert SearchSpace("llam", ("a",), LIBRARY).plan([0]).rules[0].approach == "exact"
    klms = SearchSpace("klms", ("a", "b"))
    rules = klms.plan([0, 2]).rules
    assert rules[0].approach == "exact" and rules[1].approach == "klms" and rules[1].k == 2.0


# ---- sensitivity -------------------------------------------------------------------------------

def test_sensitivity_single_and_cumulative(tiny, tmp_path):
    from axonnx.analysis.sensitivity import sensitivity, write_sensitivity

    path, split = tiny
    for mode in ("single", "cumulative"):
        result = sensitivity(path, ["ROUP_L", "ROUP(2,6)", "SKIP"], mode, split)
        assert result.baseline == 1.0
        assert len(result.rows) == 9
        files = write_sensitivity(result, tmp_path)
        rows = read_csv(files["csv"])
        assert rows[0]["layer"] == "0" and float(rows[0]["score"]) == 1.0
        assert files["png"].stat().st_size > 1000
        skip = {r["layer"]: r for r in result.rows if r["multiplier"] == "SKIP"}
        assert skip[1]["energy_relative"] < 1.0
        if mode == "cumulative":  # every layer skipped: no multiplier energy at all
            assert skip[3]["energy_relative"] == 0.0
            assert skip[3]["layers"] == result.layers


# ---- exploration -------------------------------------------------------------------------------

def _config(**kw):
    from axonnx.analysis.explore import ExploreConfig

    base = dict(approach="flam", library=LIBRARY, classes=2, pop=6, gens=3, seed=5, subset=None,
                reeval=2)
    base.update(kw)
    return ExploreConfig(**base)


def _front(folder: Path) -> list[tuple]:
    rows = read_csv(folder / "pareto.csv")
    return [(r["genome"], r["score_search"], r["energy_relative"]) for r in rows]


def _evaluated(folder: Path) -> list[tuple]:
    return [tuple(r) for r in csv.reader((folder / "evaluated.csv").read_text().splitlines())]


def test_explore_writes_front_plans_and_plot(tiny, tmp_path):
    from axonnx.analysis.explore import explore
    from axonnx.plan import Plan

    path, split = tiny
    result = explore(path, _config(), tmp_path / "run", search_data=split.head(16),
                     report_data=split)
    run = tmp_path / "run"
    assert result.baseline_search == 1.0 and result.baseline_report == 1.0
    for name in ("run.json", "evaluated.csv", "pareto.csv", "explore.png"):
        assert (run / name).is_file(), name
    front = read_csv(run / "pareto.csv")
    assert front and all((run / r["plan"]).is_file() for r in front)
    Plan.load(run / front[0]["plan"])  # a valid plan file
    assert sum(r["score_report"] != "" for r in front) == min(2, len(front))
    # the front is the non-dominated subset of everything evaluated
    records = read_csv(run / "evaluated.csv")
    F = np.array([[float(r["loss"]), float(r["energy_relative"])] for r in records])
    on_front = {records[i]["genome"] for i in brute_force_front(F)}
    assert {r["genome"] for r in front} == on_front
    info = json.loads((run / "run.json").read_text())
    assert info["finished"] and info["generations_done"] == 3


def test_explore_resume_gives_the_same_front(tiny, tmp_path):
    from axonnx.analysis.explore import explore

    path, split = tiny
    cfg = _config(approach="klam-chan", gens=4, seed=11)
    explore(path, cfg, tmp_path / "straight", search_data=split)
    partial = explore(path, cfg, tmp_path / "resumed", search_data=split, stop_after=2)
    assert partial.generations_done == 2 and not (tmp_path / "resumed" / "pareto.csv").exists()
    resumed = explore(path, cfg, tmp_path / "resumed", search_data=split)
    assert resumed.resumed and resumed.generations_done == 4
    assert _evaluated(tmp_path / "straight") == _evaluated(tmp_path / "resumed")
    assert _front(tmp_path / "straight") == _front(tmp_path / "resumed")
    with pytest.raises(AxonnxError, match="other settings"):
        explore(path, _config(approach="klam-chan", gens=4, seed=12), tmp_path / "resumed",
                search_data=split)
    with pytest.raises(AxonnxError, match="other images"):
        explore(path, cfg, tmp_path / "resumed", search_data=split.head(10))


def test_finished_run_rescores_its_front_on_new_full_images(tiny, tmp_path):
    from axonnx.analysis.explore import explore

    path, split = tiny
    cfg = _config(approach="llam", classes=1, gens=1, reeval=3)
    first = explore(path, cfg, tmp_path / "r", search_data=split.head(12), report_data=split)
    assert first.baseline_report == 1.0  # the labels are the model's own predictions
    wrong = Split(split.images, (split.labels + 1) % 10, "mislabelled")
    again = explore(path, cfg, tmp_path / "r", search_data=split.head(12), report_data=wrong)
    assert again.baseline_report == 0.0
    assert all(e.get("full") in (None, 0.0) for e in again.pareto)


def test_dask_and_worker_processes_match_local(tiny, tmp_path):
    pytest.importorskip("dask.distributed")
    from axonnx.analysis.evaluation import DaskBackend, ProcessBackend
    from axonnx.analysis.explore import explore

    path, split = tiny
    cfg = _config(approach="klms", library=(), classes=1, gens=2, pop=4)
    explore(path, cfg, tmp_path / "local", search_data=split)
    with DaskBackend("local:2:threads") as backend:
        explore(path, cfg, tmp_path / "dask", search_data=split, backend=backend)
    assert _evaluated(tmp_path / "local") == _evaluated(tmp_path / "dask")
    with ProcessBackend(2) as backend:
        explore(path, cfg, tmp_path / "procs", search_data=split, backend=backend)
    assert _evaluated(tmp_path / "local") == _evaluated(tmp_path / "procs")


# ---- the commands ----------------------------------------------------------------------------

runner = CliRunner()


def _one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for f in fragments:
        assert f in lines[0], lines[0]


def test_cli_sensitivity_and_explore(tiny, tmp_path):
    path, _ = tiny
    r = runner.invoke(app, ["sensitivity", str(path), "--multipliers", "ROUP_L,ROUP_H", "--sample",
                            "--limit", "10", "--out", str(tmp_path / "s"), "--workers", "1",
                            "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["images"] == 10 and len(out["rows"]) == 6
    assert (tmp_path / "s" / "sensitivity_single.png").is_file()
    # A name that is not canonical (ROUP(1,2) rounds nothing: ROUP(1,0)) keeps its spelling.
    r = runner.invoke(app, ["sensitivity", str(path), "--mult", "ROUP(1,2)", "--sample",
                            "--limit", "5", "--out", str(tmp_path / "s2"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "ROUP(1,2) top1 %" in r.stdout.replace("\n", "")
    rows = json.loads((tmp_path / "s2" / "sensitivity_single.json").read_text())["rows"]
    assert {(row["alias"], row["multiplier"]) for row in rows} == {("ROUP(1,2)", "ROUP(1,0)")}
    r = runner.invoke(app, ["explore", str(path), "--approach", "llam", "--multipliers",
                            "ROUP(0,0),ROUP_H", "--sample", "--subset", "10", "--pop", "4",
                            "--gens", "1", "--reeval", "0", "--workers", "1",
                            "--out", str(tmp_path / "e"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["pareto"]
    r = runner.invoke(app, ["explore", "--compare", str(tmp_path / "e"), str(tmp_path / "e"),
                            "--out", str(tmp_path / "c"), "--json"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "c" / "compare.png").is_file()


@pytest.mark.parametrize("args, fragments", [
    (["explore", "M", "--approach", "tlam", "--library", "ROUP_L"], ["unknown --approach"]),
    (["explore", "M", "--approach", "flam", "--classes", "2"], ["needs --multipliers"]),
    (["explore", "M", "--approach", "klms", "--library", "ROUP_L"], ["klms", "drop --multipliers"]),
    (["explore", "M", "--approach", "llam", "--library", "ROUP(9,9)"], ["ROUP"]),
    (["explore", "M", "--approach", "llam", "--library", "ROUP_L,ROUP(0,4)"], ["twice"]),
    (["explore", "M", "--approach", "llam", "--library", "ROUP_L", "--pop", "2"], ["--pop"]),
    (["explore", "M", "--approach", "llam", "--library", "ROUP_L", "--recovery", "magic"], ["recovery"]),
    (["explore", "M", "N", "--approach", "llam", "--library", "ROUP_L"], ["--compare"]),
    (["explore", "--compare", "nowhere", "--out", "x"], ["not an exploration folder"]),
    (["sensitivity", "M", "--mode", "sideways"], ["--mode"]),
    (["sensitivity", "M", "--mult", "ROUP_Q"], ["unknown multiplier"]),
    (["sensitivity", "M", "--mult", "ROUP_L,ROUP(0,4)"], ["same multiplier", "once"]),
    (["sensitivity", "M", "--recovery", "bias", "--calib", "0"], ["--calib"]),
    (["explore", "M", "--approach", "llam", "--library", "ROUP_L", "--dask", "local:0",
      "--sample"],
     ["local:N"]),
    (["explore", "M", "--approach", "llam", "--library", "ROUP_L", "--dask", "no-port",
      "--sample"],
     ["cannot reach the Dask scheduler"]),
    (["sensitivity", "missing.onnx"], ["does not exist"]),
])
def test_cli_bad_arguments_are_one_line_errors(tiny, tmp_path, args, fragments):
    path, _ = tiny
    args = [str(path) if a == "M" else a for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "o")]
    _one_line_error(runner.invoke(app, args + ["--sample"] if args[0] == "sensitivity" else args),
                    *fragments)


# ---- the whole study, shrunk --------------------------------------------------------------

def test_reproduce_writes_a_consistent_report_and_resumes(tiny, tmp_path):
    from axonnx.analysis.evaluation import Backend
    from axonnx.analysis.reproduce import StudyConfig, reproduce

    path, split = tiny
    config = StudyConfig(name="tiny", eval_images=None, sensitivity_images=None, subset=12,
                         pop=4, gens=2, library=LIBRARY, approaches=(("llam", 1), ("flam", 2)),
                         reeval=2, recovery_plans=1, calib=8)
    out = tmp_path / "study"
    # A folder without CIFAR-10: the recovery statistics fall back to the test images.
    kwargs = dict(data=tmp_path / "no-cifar", test_split=split, backend=Backend())
    summary = reproduce(path, out, config, **kwargs)

    report = (out / "report.md").read_text()
    for heading in ("## Headline", "## Fig. 3", "## Fig. 4", "## Table I", "## Accuracy recovery"):
        assert heading in report
    assert (out / "fig4_explore.png").stat().st_size > 0
    assert (out / "sensitivity" / "sensitivity_single.png").is_file()
    runs = {r["run"] for r in summary["table1"]}
    assert len(runs) == len(config.approaches) * len(config.variants)
    assert any(row["gain"] is not None for row in summary["table1"])
    # Each Table I row is the most energy-saving re-scored Pareto plan within its loss.
    for row in summary["table1"]:
        if row["gain"] is None:
            continue
        assert row["loss"] <= row["max_loss"] + 1e-12
        pareto = read_csv(Path(row["plan"]).parent.parent / "pareto.csv")
        within = [float(p["energy_gain"]) for p in pareto if p["score_report"] not in ("", None)
                  and float(p["loss_report"]) <= row["max_loss"] + 1e-12]
        assert row["gain"] == pytest.approx(max(within)), row["run"]
    # A second call finds every step done and gives the same tables.
    again = reproduce(path, out, config, **kwargs)
    assert again["table1"] == summary["table1"]
    assert again["sensitivity"] == summary["sensitivity"]


def test_sensitivity_and_explore_cover_matrix_products_when_asked(tiny, tmp_path):
    """--matmul: the Gemm head is one more layer to approximate, priced M=1 row per image."""
    from axonnx.analysis.cost import PlanCost
    from axonnx.analysis.explore import explore
    from axonnx.analysis.sensitivity import sensitivity
    from axonnx.plan import Plan

    path, split = tiny
    result = sensitivity(path, ["SKIP"], "single", split, matmul=True)
    assert len(result.layers) == 4 and result.layers[-1].startswith("fc")
    fc_row = result.rows[-1]
    assert 0.0 < fc_row["energy_relative"] < 1.0
    cost = PlanCost.for_model(path, matmul=True)
    counts = cost.multiplications(Plan(matmul=True))
    fc = next(k for k in counts if k.startswith("fc"))
    weight = next(layer for layer in cost.layers if layer.name == fc).weight_shape
    assert counts[fc] == {"ROUP(0,0)": weight[0] * weight[1]}  # one row per image
    run = explore(path, _config(gens=1, matmul=True), tmp_path / "mm", search_data=split.head(8))
    plans = [Plan.load(tmp_path / "mm" / r["plan"]) for r in read_csv(tmp_path / "mm" / "pareto.csv")]
    assert run.records and plans and all(p.matmul for p in plans)


def test_reproduce_takes_a_metric_and_the_matrix_products(tiny, tmp_path):
    """reproduce --metric agreement --matmul: every score is fidelity to the exact model
    (its baseline 1.0), the Gemm head is a studied layer, and the caches are the metric's."""
    from axonnx.analysis.evaluation import Backend
    from axonnx.analysis.reproduce import StudyConfig, reproduce

    path, split = tiny
    config = StudyConfig(name="tiny", eval_images=None, sensitivity_images=None, subset=12,
                         pop=4, gens=1, library=LIBRARY, approaches=(("llam", 1),),
                         variants=(("weight", "none"),), reeval=2, recovery_plans=1, calib=8)
    summary = reproduce(path, tmp_path / "study", config, data=tmp_path / "no-cifar",
                        test_split=split, backend=Backend(), metric="agreement", matmul=True)
    single = summary["sensitivity"]["single"]
    assert single["metric"]["name"] == "agreement" and single["baseline"] == 1.0
    assert len(single["layers"]) == 4  # three convs and the Gemm head
    run = json.loads((tmp_path / "study" / "explore" / "wei-enc" / "llam" / "run.json").read_text())
    assert run["metric"]["name"] == "agreement" and run["config"]["matmul"]
