"""Layer sensitivity (paper Fig. 3): the metric's score (top-1, or fidelity to the exact
model, or the user's) when layer-level (LLAM) approximation covers one layer (``single``,
Fig. 3a) or layers 1..m (``cumulative``, Fig. 3b), for each multiplier. Every point is one
plan, transformed once and scored with one session."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from axonnx.errors import AxonnxError
from axonnx.model import results_folder
from axonnx.plan import LayerRule, Plan, check_encoded_operand

MODES = ("single", "cumulative")


def sensitivity_plans(layers: list[str], multiplier: str, mode: str,
                      encoded_operand: str = "weight", matmul: bool = False) -> list[Plan]:
    """Plan m (m = 1..len(layers)) approximates layer m alone, or layers 1..m."""
    if mode not in MODES:
        raise AxonnxError(f"unknown --mode {mode!r}; use single or cumulative")
    plans = []
    for m in range(1, len(layers) + 1):
        match = (layers[m - 1],) if mode == "single" else tuple(layers[:m])
        plans.append(Plan((LayerRule(match, "llam", (multiplier,)),), encoded_operand,
                          matmul=matmul))
    return plans


@dataclass
class SensitivityResult:
    model: str
    mode: str
    data: str
    images: int
    baseline: float
    layers: list[str]
    rows: list[dict] = field(default_factory=list)  # multiplier, alias, layer, layers, score, loss, ...
    recovery: str = "none"
    encoded_operand: str = "weight"
    calibration: str = ""  # where the recovery statistics came from
    metric: dict = field(default_factory=dict)  # axonnx.metrics.Metric.describe()
    matmul: bool = False

    @property
    def aliases(self) -> list[str]:
        """The multipliers as the user named them, in order."""
        return list(dict.fromkeys(row["alias"] for row in self.rows))

    def as_dict(self) -> dict:
        return {"model": self.model, "mode": self.mode, "data": self.data, "images": self.images,
                "baseline": self.baseline, "layers": self.layers, "recovery": self.recovery,
                "encoded_operand": self.encoded_operand, "calibration": self.calibration,
                "metric": self.metric, "matmul": self.matmul, "rows": self.rows}


def sensitivity(model, multipliers: list[str], mode: str, data, *, metric=None, backend=None,
                energy_table=None, recovery: str = "none", stats=None,
                encoded_operand: str = "weight", matmul: bool = False,
                progress: Callable | None = None, input_shape=None) -> SensitivityResult:
    """Score every (multiplier, m) plan on ``data`` (a Dataset, a CIFAR Split, ...) with
    ``metric`` (default: top1 with labels, else a label-free one; :mod:`axonnx.metrics`).
    ``input_shape`` (e.g. ``"1,128,768"``): where the model's input has dynamic dims, the
    size at which multiplications are counted."""
    from axonnx.analysis.cost import PlanCost
    from axonnx.analysis.evaluation import Backend, Workload, worker_threads
    from axonnx.model import load_model
    from axonnx.multipliers import parse
    from axonnx.transform import prepared

    if mode not in MODES:
        raise AxonnxError(f"unknown --mode {mode!r}; use single or cumulative")
    if not multipliers:
        raise AxonnxError("give at least one multiplier (--multipliers)")
    check_encoded_operand(encoded_operand)
    loaded = load_model(model)
    _, layers, _ = prepared(loaded, matmul, input_shape)
    names = [layer.name for layer in layers]
    if not names:
        raise AxonnxError("the model has no quantized layer to approximate")
    canonical = [parse(m).name for m in multipliers]
    alias: dict[str, str] = {}  # canonical name -> the name the user gave
    for given, name in zip(multipliers, canonical):
        if name in alias:
            raise AxonnxError(f"--multipliers names {alias[name]!r} and {given!r} are the same "
                              f"multiplier ({name}); give each once")
        alias[name] = given
    backend = backend or Backend()
    threads = worker_threads(backend)
    workload = Workload.create(loaded, data, metric=metric, recovery=recovery, stats=stats,
                               threads=threads)
    info = workload.metric_info
    cost = PlanCost.for_model(loaded, energy_table, matmul, input_shape)

    jobs: list[tuple[str, int, Plan | None]] = [("", 0, None)]
    for mult in canonical:
        for m, plan in enumerate(sensitivity_plans(names, mult, mode, encoded_operand, matmul), start=1):
            jobs.append((mult, m, plan))
    if progress:
        progress("sensitivity", 0, len(jobs))
    accs = backend.map(workload, [j[2] for j in jobs],
                       done=(lambda n: progress("sensitivity", n, None)) if progress else None)
    baseline = accs[0]
    model_name = str(model) if isinstance(model, (str, Path)) else loaded.graph.name
    result = SensitivityResult(model_name, mode, workload.data.source, len(workload.data),
                               baseline, names, recovery=recovery,
                               encoded_operand=encoded_operand,
                               calibration=stats.source if stats is not None and recovery != "none"
                               else "", metric=info, matmul=matmul)
    measure = workload.measure
    for (mult, m, plan), acc in zip(jobs[1:], accs[1:]):
        approximated = [names[m - 1]] if mode == "single" else names[:m]
        result.rows.append({
            "multiplier": mult, "alias": alias[mult], "layer": m,
            "layers": approximated, "score": acc, "loss": measure.loss(baseline, acc),
            "energy_relative": cost.relative(plan),
        })
    return result


def write_sensitivity(result: SensitivityResult, out: Path) -> dict[str, Path]:
    """sensitivity_<mode>.csv, .json and .png in ``out``."""
    from axonnx.analysis.plots import plot_sensitivity

    results_folder(out)
    stem = f"sensitivity_{result.mode}"
    paths = {"csv": out / f"{stem}.csv", "json": out / f"{stem}.json", "png": out / f"{stem}.png"}
    with open(paths["csv"], "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["multiplier", "alias", "layer", "layers_approximated", "score",
                    "loss", "energy_relative"])
        w.writerow(["(none)", "baseline", 0, "", f"{result.baseline:.6f}", "0.000000", "1.000000"])
        for r in result.rows:
            w.writerow([r["multiplier"], r["alias"], r["layer"], " ".join(r["layers"]),
                        f"{r['score']:.6f}", f"{r['loss']:.6f}",
                        f"{r['energy_relative']:.6f}"])
    paths["json"].write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    what = "one layer at a time" if result.mode == "single" else "layers 1..m"
    extra = "" if result.recovery == "none" else f", +{result.recovery}"
    plot_sensitivity(result.rows, paths["png"], baseline=result.baseline, metric=result.metric,
                     title=f"LLAM, {what} ({result.images} samples; {result.encoded_operand} "
                           f"encoded{extra})")
    return paths
