"""``axonnx reproduce``: the paper's study on the zoo ResNet-8, end to end.

1. Fig. 3a/3b: LLAM sensitivity (one layer / layers 1..m) for ROUP_L, ROUP_M, ROUP_H.
2. NSGA-II exploration of every approach (LLAM, FLAM, KLAM-chan/row/col, KLMS), without
   recovery as in the paper, and with weight tuning + bias correction.
3. Fig. 4: every run overlaid, uniform EvoApprox multipliers as crosses.
4. Table I: per run, the best Pareto plans (largest energy gain within 1, 2 and 4 points of
   accuracy loss on the full test set), next to uniform EvoApprox rows.
5. Recovery at equal energy: the no-recovery Pareto plans scored again with weight
   tuning, bias correction and both.

Every step writes its results under the output folder and is skipped when they are
already there with the same settings, and the explorations resume from their checkpoints,
so an interrupted study continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from axonnx.analysis.report import write_report
from axonnx.analysis.study import (  # noqa: F401  (StudyConfig: reproduce's settings)
    ENCODING_RECOVERIES, EVO_MULTIPLIERS, RECOVERY_VARIANTS, SENSITIVITY_MULTIPLIERS,
    StudyConfig,
)
from axonnx.errors import AxonnxError
from axonnx.model import results_folder

def _run_dir(out: Path, approach: str, classes: int, encoded: str, recovery: str) -> Path:
    name = approach + (f"-{classes}" if classes > 1 else "")
    return out / "explore" / f"{encoded[:3]}-enc" / (name + ("" if recovery == "none" else f"+{recovery}"))


def _cached(path: Path, identity: dict):
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
        if data.get("identity") == identity:
            return data
    return None


def reproduce(model, out: str | Path, config: StudyConfig, *, data=None, test_split=None,
              backend=None, energy_table=None, progress: Callable | None = None,
              log: Callable[[str], None] | None = None, metric=None, matmul: bool = False,
              sample: bool = False, name: str | None = None) -> dict:
    """Run (or resume) the study; ``test_split`` replaces the official test set (tests).
    ``metric`` (default top1) scores every plan, its losses in the metric's units;
    ``matmul`` studies the matrix products too; ``sample`` runs on the packaged sample,
    split in two."""
    from axonnx.analysis.cost import PlanCost
    from axonnx.analysis.evaluation import Backend, Workload, worker_threads
    from axonnx.data.load import DataOptions, as_dataset, calibration_data, search_and_report
    from axonnx.analysis.explore import ExploreConfig, explore, load_run
    from axonnx.analysis.sensitivity import sensitivity, write_sensitivity
    from axonnx.model import load_model
    from axonnx.recovery import ActivationStats, measure_activations

    say = log or (lambda msg: None)
    t_start = time.perf_counter()
    out = Path(out)
    results_folder(out)
    backend = backend or Backend()
    loaded = load_model(model)
    name = name or (str(model) if isinstance(model, (str, Path)) else loaded.graph.name)
    cost = PlanCost.for_model(loaded, energy_table, matmul)
    from axonnx.metrics import make_metric

    measure = make_metric(metric or "top1")
    # Honest splits: the explorations search a validation split of the training batches and
    # every reported figure is on the test set (a given test_split is cut in two instead).
    options = DataOptions(data, sample=sample)
    if test_split is not None:
        search, test = as_dataset(test_split, loaded).split(
            min(config.subset, len(test_split) // 2), config.seed)
    else:
        search, test = search_and_report(options, loaded, subset=config.subset, seed=config.seed)
    evaluation = test.balanced(config.eval_images)
    sens_split = test.balanced(config.sensitivity_images)
    timings: dict[str, float] = {}

    # Every cached step is tied to the model's content, the energy table and the calibration,
    # so a rerun into the same folder with other inputs recomputes instead of mixing results.
    model_digest = hashlib.sha256(loaded.SerializeToString()).hexdigest()[:16]
    # Calibration statistics (training images), shared by every recovery.
    stats_path = out / f"activations-{model_digest}-{config.calib}{'-matmul' if matmul else ''}.npz"
    if stats_path.exists():
        stats = ActivationStats.load(stats_path)
    else:
        calibration = (calibration_data(options, loaded, config.calib, fallback=search)
                       if test_split is None else
                       replace(search.head(config.calib),
                               source=f"first {config.calib} samples of {search.source}"))
        stats = measure_activations(loaded, data=calibration, matmul=matmul)
        stats.save(stats_path)
    threads = worker_threads(backend)
    study = {"model_sha256": model_digest, "energy_table": getattr(cost.table, "origin", ""),
             "calibration": [stats.source, stats.images]}
    if measure.name != "top1":  # (top1 studies keep the caches written before metrics)
        study["metric"] = measure.name
    if matmul:
        study["matmul"] = True

    def workload(split, recovery="none"):
        return Workload.create(loaded, split, metric=metric or "top1", recovery=recovery,
                               stats=stats, threads=threads)

    # 0. Baselines.
    t0 = time.perf_counter()
    identity = {**study, "data": evaluation.source, "n": len(evaluation)}
    base = _cached(out / "baseline.json", identity)
    if base is None:
        say(f"baseline: {len(evaluation)} images")
        [acc] = backend.map(workload(evaluation), [None])
        base = {"identity": identity, "accuracy": acc}
        (out / "baseline.json").write_text(json.dumps(base, indent=2))
    baseline = base["accuracy"]
    timings["baseline"] = time.perf_counter() - t0

    # 1. Sensitivity (Fig. 3a, 3b), in the primary setting.
    t0 = time.perf_counter()
    encoded0, recovery0 = config.variants[0]
    sens: dict[str, dict] = {}
    for mode in ("single", "cumulative"):
        identity = {**study, "data": sens_split.source, "n": len(sens_split),
                    "multipliers": list(SENSITIVITY_MULTIPLIERS), "mode": mode,
                    "variant": [encoded0, recovery0]}
        cached = _cached(out / "sensitivity" / f"sensitivity_{mode}.state.json", identity)
        if cached is None:
            say(f"sensitivity ({mode}): {len(sens_split)} images")
            result = sensitivity(loaded, list(SENSITIVITY_MULTIPLIERS), mode, sens_split,
                                 backend=backend, energy_table=energy_table,
                                 recovery=recovery0, stats=stats, encoded_operand=encoded0,
                                 progress=progress, metric=metric or "top1", matmul=matmul)
            result.model = name
            write_sensitivity(result, out / "sensitivity")
            cached = {"identity": identity, "result": result.as_dict()}
            (out / "sensitivity" / f"sensitivity_{mode}.state.json").write_text(json.dumps(cached))
        sens[mode] = cached["result"]
    encodings = _encoding_rows(study, cost, sens_split, backend, workload, out, say, matmul)
    timings["sensitivity"] = time.perf_counter() - t0

    # 2. Explorations.
    t0 = time.perf_counter()
    search_base = None
    runs = []
    for encoded, recovery in config.variants:
        for approach, classes in config.approaches:
            run_dir = _run_dir(out, approach, classes, encoded, recovery)
            if search_base is None:
                [search_base] = backend.map(workload(search), [None])
            econf = ExploreConfig(
                approach=approach, library=() if approach == "klms" else config.library,
                classes=classes, pop=config.pop, gens=config.gens, seed=config.seed,
                subset=config.subset,
                floor=(max(0.0, search_base - config.floor_drop)
                       if measure.unit == "fraction" and measure.higher_is_better else None),
                recovery=recovery, calib=config.calib, reeval=config.reeval,
                reeval_max_loss=config.reeval_max_loss, encoded_operand=encoded,
                matmul=matmul, metric=metric)
            if recovery != "none" and not (run_dir / "activations.npz").exists():
                # (a run folder holding other statistics refuses to resume: explore checks)
                run_dir.mkdir(parents=True, exist_ok=True)
                stats.save(run_dir / "activations.npz")
            say(f"explore {run_dir.name}: population {config.pop}, {config.gens} generations")
            explore(loaded, econf, run_dir, search_data=search, report_data=evaluation,
                    backend=backend, energy_table=energy_table, progress=progress)
            runs.append(load_run(run_dir))
    timings["exploration"] = time.perf_counter() - t0

    # 3. Uniform EvoApprox multipliers (LLAM on every layer), with and without recovery.
    t0 = time.perf_counter()
    evo_split = evaluation if config.evo_images is None else test.balanced(config.evo_images)
    evo = _evo_rows(study, cost, evo_split, search, backend, workload, out, say, matmul)
    timings["evoapprox"] = time.perf_counter() - t0

    # 4. Recovery at equal energy.
    t0 = time.perf_counter()
    recovered = _recovery_rows(study, runs, config, evaluation, backend, workload, baseline, out,
                               say)
    timings["recovery"] = time.perf_counter() - t0

    # 5. Figures, tables, report.
    from axonnx.analysis.plots import plot_runs

    fig4 = plot_runs(runs, out / "fig4_explore.png",
                     extra_points=[{"label": r["name"].replace("mul8u_", ""),
                                    "loss": r["loss_search"], "energy": 1 - r["gain"]}
                                   for r in evo if r["recovery"] == "none"
                                   and r.get("loss_search") is not None and r["loss_search"] <= 0.3],
                     max_loss=0.3, title="ResNet-8: energy vs accuracy loss, all approaches")
    table1 = _table_one(runs)
    timings["total"] = time.perf_counter() - t_start
    summary = {
        "model": name, "config": config.identity(), "baseline": baseline,
        "evaluation": {"source": evaluation.source, "images": len(evaluation)},
        "search": {"source": search.source, "images": len(search)},
        "evo_images": len(evo_split), "calibration": stats.source,
        "sensitivity": sens, "encodings": encodings, "table1": table1, "evoapprox": evo, "recovery": recovered,
        "energy_table": _table_origin(cost.table), "timings": timings,
        "machine": f"{platform.machine()}, {_cpus()} CPUs", "figure4": str(fig4),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    report = write_report(out, summary, runs, config)
    summary["report"] = str(report)
    return summary


def _table_origin(table) -> str:
    """Where the energy table came from; the built-in one by its place in the package."""
    origin = getattr(table, "origin", "")
    package = Path(__file__).resolve().parent.parent
    try:
        return "axonnx/" + Path(origin).resolve().relative_to(package).as_posix()
    except ValueError:
        return origin


def _cpus() -> int:
    from axonnx.analysis.evaluation import default_workers

    return default_workers()


def _encoding_rows(study, cost, split, backend, workload, out, say, matmul=False) -> list[dict]:
    """Uniform ROUP_L/M/H on every layer, with either operand encoded, without and with
    bias correction: why the encoding matters for int8 activations."""
    from axonnx.multipliers import parse
    from axonnx.plan import LayerRule, Plan

    identity = {**study, "data": split.source, "n": len(split),
                "multipliers": list(SENSITIVITY_MULTIPLIERS)}
    cached = _cached(out / "encodings.json", identity)
    if cached is not None:
        return cached["rows"]
    rows = []
    for recovery in ENCODING_RECOVERIES:
        jobs = [(enc, m, Plan((LayerRule(("*",), "llam", (parse(m).name,)),), enc, matmul=matmul))
                for enc in ("weight", "activation") for m in SENSITIVITY_MULTIPLIERS]
        say(f"encodings ({recovery}): {len(jobs)} plans")
        accs = backend.map(workload(split, recovery), [j[2] for j in jobs])
        for (enc, m, plan), acc in zip(jobs, accs):
            rows.append({"multiplier": m, "encoded_operand": enc, "recovery": recovery,
                         "accuracy": acc, "gain": 1 - cost.relative(plan)})
    [base] = backend.map(workload(split), [None])
    rows.append({"multiplier": "baseline", "encoded_operand": "-", "recovery": "none",
                 "accuracy": base, "gain": 0.0})
    (out / "encodings.json").write_text(json.dumps({"identity": identity, "rows": rows}, indent=2))
    return rows


def _evo_rows(study, cost, split, search, backend, workload, out, say, matmul=False) -> list[dict]:
    """Uniform EvoApprox multipliers (LLAM on every layer), without recovery and with
    weight tuning + bias correction (ALWANN tunes weights), scored on ``split`` for Table I
    and on the search subset for Fig. 4."""
    from axonnx.multipliers import parse
    from axonnx.plan import LayerRule, Plan

    identity = {**study, "data": split.source, "n": len(split), "search": search.source,
                "multipliers": list(EVO_MULTIPLIERS)}
    cached = _cached(out / "evoapprox.json", identity)
    if cached is not None:
        return cached["rows"]
    results, available = [], []
    for name in EVO_MULTIPLIERS:
        try:
            plan = Plan((LayerRule(("*",), "llam", (parse(f"LUT({name})").name,)),), matmul=matmul)
            available.append((name, plan, 1 - cost.relative(plan)))
        except AxonnxError as exc:
            results.append({"name": name, "recovery": "none", "gain": None, "accuracy": None,
                            "loss": None, "unavailable": str(exc)})
    if available:
        # (the table-driven LUT kernel is slow: when both sets are the same images, score once)
        same = workload(split).key == workload(search).key
        [base] = backend.map(workload(split), [None])
        [base_search] = [base] if same else backend.map(workload(search), [None])
        for recovery in ("none", "tune+bias"):
            say(f"uniform EvoApprox ({recovery}): {len(available)} multipliers")
            plans = [a[1] for a in available]
            accs = backend.map(workload(split, recovery), plans)
            search_accs = ([None] * len(plans) if recovery != "none" else accs if same
                           else backend.map(workload(search, recovery), plans))
            for (name, _, gain), acc, acc_s in zip(available, accs, search_accs):
                results.append({"name": name, "recovery": recovery, "gain": gain,
                                "accuracy": acc, "loss": base - acc,
                                "loss_search": None if acc_s is None else base_search - acc_s})
    (out / "evoapprox.json").write_text(json.dumps({"identity": identity, "rows": results}, indent=2))
    return results


def _recovery_rows(study, runs, config, evaluation, backend, workload, baseline, out,
                   say) -> list[dict]:
    """The no-recovery Pareto plans with full-set accuracy, re-scored with each recovery."""
    from axonnx.plan import Plan

    picks = []
    for run in runs:
        if run.info["config"]["recovery"] != "none":
            continue
        scored = [p for p in run.pareto if p.get("score_report") not in (None, "")]
        # The most energy-saving plans whose loss is still moderate, spread over the front.
        scored = [p for p in scored if float(p["loss_report"]) <= 0.25]
        scored.sort(key=lambda p: -float(p["energy_gain"]))
        for p in scored[: config.recovery_plans]:
            picks.append((run, p))
    # (the plans keep their encoded operand: each is re-scored exactly as it was searched)
    identity = {**study, "data": evaluation.source, "n": len(evaluation),
                "plans": [[str(run.path), p["plan_digest"]] for run, p in picks]}
    cached = _cached(out / "recovery.json", identity)
    if cached is not None:
        return cached["rows"]
    rows = []
    if picks:
        plans = [Plan.load(run.path / p["plan"]) for run, p in picks]
        for variant in RECOVERY_VARIANTS:
            say(f"recovery at equal energy ({variant}): {len(plans)} plans")
            accs = backend.map(workload(evaluation, variant), plans)
            for (run, p), acc in zip(picks, accs):
                rows.append({"run": run.name, "label": p["label"], "gain": float(p["energy_gain"]),
                             "recovery": variant, "accuracy_none": float(p["score_report"]),
                             "accuracy": acc, "recovered": acc - float(p["score_report"]),
                             "loss": baseline - acc})
    (out / "recovery.json").write_text(json.dumps({"identity": identity, "rows": rows}, indent=2))
    return rows


def _table_one(runs) -> list[dict]:
    from axonnx.analysis.compare import best_gain, front_points

    rows = []
    for run in runs:
        pts = [p for p in front_points(run) if p["on"] == "full"]
        for limit in (0.01, 0.02, 0.04):
            best = best_gain(pts, limit)
            rows.append({"run": run.name, "approach": run.approach,
                         "recovery": run.info["config"].get("recovery", "none"),
                         "max_loss": limit, "label": best and best["label"],
                         "gain": best and best["gain"], "loss": best and best["loss"],
                         "plan": best and best["plan"]})
    return rows
