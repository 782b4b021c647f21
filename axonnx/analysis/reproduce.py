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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from axonnx.errors import AxonnxError

EVO_MULTIPLIERS = ("mul8u_2AC", "mul8u_2HH", "mul8u_NGR", "mul8u_ZFB", "mul8u_7C1")
SENSITIVITY_MULTIPLIERS = ("ROUP_L", "ROUP_M", "ROUP_H")
RECOVERY_VARIANTS = ("tune", "bias", "tune+bias")
ENCODING_RECOVERIES = ("none", "bias", "tune+bias")


@dataclass
class StudyConfig:
    name: str
    eval_images: int | None  # None: the full official test set
    sensitivity_images: int | None
    subset: int  # search subset
    pop: int
    gens: int
    library: tuple[str, ...]
    approaches: tuple[tuple[str, int], ...]  # (approach, classes)
    # (encoded operand, recovery) of the explorations; the first is the primary setting,
    # also used for Fig. 3.
    variants: tuple[tuple[str, str], ...] = (("weight", "none"), ("weight", "tune+bias"))
    reeval: int = 12
    reeval_max_loss: float = 0.06  # re-score the front where it matters (<= 6 pp on the subset)
    evo_images: int | None = None  # None: the evaluation images
    recovery_plans: int = 4  # Pareto plans per run scored with each recovery variant
    calib: int = 512
    seed: int = 1
    floor_drop: float = 0.10  # explorations keep accuracy within this of the baseline

    @classmethod
    def full(cls) -> "StudyConfig":
        # Sized for about an hour and a half on 2 cores: every accuracy in the report is on
        # the 10,000 test images; the search scores a 1,000-image class-balanced subset.
        return cls(name="full", eval_images=None, sensitivity_images=None, subset=1000, pop=20,
                   gens=30, library=DEFAULT_LIBRARY,
                   approaches=(("llam", 1), ("flam", 3), ("klam-chan", 3), ("klam-row", 3),
                               ("klam-col", 3), ("klms", 1)),
                   variants=(("weight", "none"), ("weight", "tune+bias")),
                   reeval=16, recovery_plans=3)

    @classmethod
    def quick(cls) -> "StudyConfig":
        return cls(name="quick", eval_images=1000, sensitivity_images=500, subset=200, pop=12,
                   gens=4, library=DEFAULT_LIBRARY,
                   approaches=(("llam", 1), ("flam", 3), ("klam-chan", 3), ("klam-row", 3),
                               ("klam-col", 3), ("klms", 1)),
                   reeval=4, recovery_plans=1, calib=256, evo_images=200)

    def estimated_plans(self, layers: int) -> int:
        """Plans the study scores on a model with ``layers`` conv layers (roughly: the
        sensitivity curves and the searches)."""
        sens = 2 * len(SENSITIVITY_MULTIPLIERS) * layers + 2
        search = len(self.approaches) * len(self.variants) * self.pop * self.gens
        return sens + search

    def identity(self) -> dict:
        d = asdict(self)
        d["library"] = list(self.library)
        d["approaches"] = [list(a) for a in self.approaches]
        d["variants"] = [list(v) for v in self.variants]
        return d


# ROUP(0,0) first, then ROUPs on the error/energy front of the energy table (each saves
# more energy than the one before), and SKIP.
DEFAULT_LIBRARY = ("ROUP(0,0)", "ROUP_L", "ROUP_M", "ROUP(1,6)", "ROUP_H", "ROUP(2,7)",
                   "ROUP(2,8)", "ROUP(3,8)", "SKIP")


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
              log: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) the study; ``test_split`` replaces the official test set (tests)."""
    from axonnx.analysis.cost import PlanCost
    from axonnx.analysis.data import balanced_subset, calibration_images, evaluation_split
    from axonnx.analysis.evaluation import Backend, Workload, worker_threads
    from axonnx.analysis.explore import ExploreConfig, explore, load_run
    from axonnx.analysis.sensitivity import sensitivity, write_sensitivity
    from axonnx.model import load_model
    from axonnx.recovery import ActivationStats, measure_activations

    say = log or (lambda msg: None)
    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    backend = backend or Backend()
    loaded = load_model(model)
    cost = PlanCost.for_model(loaded, energy_table)
    test = test_split if test_split is not None else evaluation_split(data)
    evaluation = balanced_subset(test, config.eval_images)
    sens_split = balanced_subset(test, config.sensitivity_images)
    search = balanced_subset(test, config.subset)
    timings: dict[str, float] = {}

    # Every cached step is tied to the model's content, the energy table and the calibration,
    # so a rerun into the same folder with other inputs recomputes instead of mixing results.
    model_digest = hashlib.sha256(loaded.SerializeToString()).hexdigest()[:16]
    # Calibration statistics (training images), shared by every recovery.
    stats_path = out / f"activations-{model_digest}-{config.calib}.npz"
    if stats_path.exists():
        stats = ActivationStats.load(stats_path)
    else:
        images, source = calibration_images(data, False, config.calib, search)
        stats = measure_activations(loaded, images, source=source)
        stats.save(stats_path)
    threads = worker_threads(backend)
    study = {"model_sha256": model_digest, "energy_table": getattr(cost.table, "origin", ""),
             "calibration": [stats.source, stats.images]}

    def workload(split, recovery="none"):
        return Workload.create(loaded, split, recovery=recovery, stats=stats, threads=threads)

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
                                 progress=progress)
            result.model = str(model)
            write_sensitivity(result, out / "sensitivity")
            cached = {"identity": identity, "result": result.as_dict()}
            (out / "sensitivity" / f"sensitivity_{mode}.state.json").write_text(json.dumps(cached))
        sens[mode] = cached["result"]
    encodings = _encoding_rows(study, cost, sens_split, backend, workload, out, say)
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
                subset=config.subset, floor=max(0.0, search_base - config.floor_drop),
                recovery=recovery, calib=config.calib, reeval=config.reeval,
                reeval_max_loss=config.reeval_max_loss, encoded_operand=encoded)
            if recovery != "none" and not (run_dir / "activations.npz").exists():
                # (a run folder holding other statistics refuses to resume: explore checks)
                run_dir.mkdir(parents=True, exist_ok=True)
                stats.save(run_dir / "activations.npz")
            say(f"explore {run_dir.name}: population {config.pop}, {config.gens} generations")
            explore(loaded, econf, run_dir, search_split=search, full_split=evaluation,
                    backend=backend, energy_table=energy_table, progress=progress)
            runs.append(load_run(run_dir))
    timings["exploration"] = time.perf_counter() - t0

    # 3. Uniform EvoApprox multipliers (LLAM on every layer), with and without recovery.
    t0 = time.perf_counter()
    evo_split = evaluation if config.evo_images is None else balanced_subset(test, config.evo_images)
    evo = _evo_rows(study, cost, evo_split, search, backend, workload, out, say)
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
        "model": str(model), "config": config.identity(), "baseline": baseline,
        "evaluation": {"source": evaluation.source, "images": len(evaluation)},
        "search": {"source": search.source, "images": len(search)},
        "evo_images": len(evo_split), "calibration": stats.source,
        "sensitivity": sens, "encodings": encodings, "table1": table1, "evoapprox": evo, "recovery": recovered,
        "energy_table": _table_origin(cost.table), "timings": timings,
        "machine": f"{platform.machine()}, {_cpus()} CPUs", "figure4": str(fig4),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    report = _report(out, summary, runs, config)
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


def _strengths() -> list[str]:
    from axonnx.multipliers import NAMED_STRENGTHS

    return [f"{k} = {v}" for k, v in NAMED_STRENGTHS.items()]


def _cpus() -> int:
    from axonnx.analysis.evaluation import default_workers

    return default_workers()


def _encoding_rows(study, cost, split, backend, workload, out, say) -> list[dict]:
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
        jobs = [(enc, m, Plan((LayerRule(("*",), "llam", (parse(m).name,)),), enc))
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


def _evo_rows(study, cost, split, search, backend, workload, out, say) -> list[dict]:
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
            plan = Plan((LayerRule(("*",), "llam", (parse(f"LUT({name})").name,)),))
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
        scored = [p for p in run.pareto if p.get("accuracy_full") not in (None, "")]
        # The most energy-saving plans whose loss is still moderate, spread over the front.
        scored = [p for p in scored if float(p["accuracy_loss_full"]) <= 0.25]
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
                             "recovery": variant, "accuracy_none": float(p["accuracy_full"]),
                             "accuracy": acc, "recovered": acc - float(p["accuracy_full"]),
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


def _fmt(v, scale=100, digits=1) -> str:
    return "–" if v is None else f"{scale * v:.{digits}f}"


def _report(out: Path, s: dict, runs, config: StudyConfig) -> Path:
    lines = []
    add = lines.append
    n_eval = s["evaluation"]["images"]
    add("# MAX-DNN reproduction on ResNet-8 (axonnx)\n")
    add(f"Model `{s['model']}`, int8 baseline top-1 **{100 * s['baseline']:.2f}%** on "
        f"{n_eval:,} CIFAR-10 test images ({s['evaluation']['source']}). Study mode "
        f"`{config.name}`; machine {s['machine']}; total {s['timings']['total'] / 60:.1f} min.\n")
    add(f"Energy: multiplier energy only (paper's model, #multiplications x energy per "
        f"multiplication, SKIP free), relative to the all-exact model; table: "
        f"`{s['energy_table']}`. Accuracy loss: percentage points vs the int8 baseline. "
        f"Recovery statistics (weight tuning, bias correction): {s['calibration']}.\n")

    # headline
    table1 = s["table1"]
    best1 = max((r for r in table1 if r["max_loss"] == 0.01 and r["gain"] is not None),
                key=lambda r: r["gain"], default=None)
    best4 = max((r for r in table1 if r["max_loss"] == 0.04 and r["gain"] is not None),
                key=lambda r: r["gain"], default=None)
    add("## Headline\n")
    add("| target | best found | run | plan |\n|---|---|---|---|")
    for target, best, need in (("≥54% gain at ≤1 pp loss", best1, 0.54),
                               ("≥65% gain at ≤4 pp loss", best4, 0.65)):
        if best is None:
            add(f"| {target} | – | – | – |")
            continue
        mark = "met" if best["gain"] >= need else "not met"
        add(f"| {target} | **{_fmt(best['gain'])}%** gain at {_fmt(best['loss'], digits=2)} pp "
            f"({mark}) | {best['run']} | `{Path(best['plan']).relative_to(out)}` |")
    add("")

    add("## Fig. 3: layer sensitivity (LLAM)\n")
    sens = s["sensitivity"]
    first = next(iter(sens.values()))
    add(f"ROUP_L, ROUP_M, ROUP_H as named by axonnx ({', '.join(_strengths())}); "
        f"{first.get('encoded_operand', 'weight')} operand radix-4 encoded, recovery "
        f"{first.get('recovery', 'none')}.\n")
    for mode, fig in (("single", "3a: one layer at a time"), ("cumulative", "3b: layers 1..m")):
        r = sens[mode]
        add(f"Fig. {fig} ({r['images']:,} images, baseline {100 * r['baseline']:.2f}%)\n")
        add(f"![sensitivity {mode}](sensitivity/sensitivity_{mode}.png)\n")
        aliases = list(dict.fromkeys(row["alias"] for row in r["rows"]))
        add("| layer | " + " | ".join(f"{a} top-1 %" for a in aliases) + " |")
        add("|---|" + "---|" * len(aliases))
        for m, layer in enumerate(r["layers"], start=1):
            cells = {row["alias"]: row for row in r["rows"] if row["layer"] == m}
            add(f"| {m} `{layer}` | " + " | ".join(_fmt(cells[a]["accuracy"], digits=2)
                                                  for a in aliases) + " |")
        add("")

    add("### Which operand to encode\n")
    add("Uniform LLAM on every layer, top-1 accuracy. Perforating the encoded operand's low "
        "radix-4 digits drops `d_j 4^j` times the other operand from each product. With the "
        "weight encoded, the dropped digits are fixed per weight: the error of a channel has "
        "a mean (ReLU activations are non-negative) that bias correction removes, and weight "
        "tuning picks weights whose dropped digits are small. With the activation encoded, "
        "the dropped digits follow the data and no weight choice avoids them.\n")
    enc = s["encodings"]
    base_row = next((r for r in enc if r["multiplier"] == "baseline"), None)
    if base_row:
        add(f"Baseline {100 * base_row['accuracy']:.2f}% on {first['images']:,} images.\n")
    keys = [(e, r) for e in ("weight", "activation") for r in ENCODING_RECOVERIES]
    add("| multiplier | energy gain | " + " | ".join(
        f"{e} enc.{'' if r == 'none' else ' + ' + r}" for e, r in keys) + " |")
    add("|---|---|" + "---|" * len(keys))
    for m in SENSITIVITY_MULTIPLIERS:
        cell = {(r["encoded_operand"], r["recovery"]): r for r in enc if r["multiplier"] == m}
        if not cell:
            continue
        gain = next(iter(cell.values()))["gain"]
        add(f"| {m} | {_fmt(gain)}% | " + " | ".join(
            _fmt(cell[k]["accuracy"], digits=2) + "%" if k in cell else "–" for k in keys) + " |")
    add("")

    add("## Fig. 4: exploration of every approach\n")
    add(f"NSGA-II (pymoo), population {config.pop}, {config.gens} generations, seed "
        f"{config.seed}, searched on {s['search']['images']:,} class-balanced test images "
        f"(accuracy floor: baseline − {100 * config.floor_drop:.0f} pp), Pareto plans "
        f"re-scored on the {n_eval:,} evaluation images. Library: "
        f"{', '.join(f'{k}={m}' for k, m in enumerate(config.library))}; a plan's label "
        "lists, per conv layer, the library index of each class (most important class "
        "first); KLMS genes: 0 exact, 1 skip outside μ±1σ, 2 skip outside μ±2σ.\n")
    add("![Fig. 4](fig4_explore.png)\n")
    add("| run | evaluated | Pareto plans | search time |\n|---|---|---|---|")
    for run in runs:
        add(f"| {run.name} | {len(run.records)} | {len(run.pareto)} | "
            f"{run.info.get('seconds', 0):.0f} s |")
    add("")

    add("## Table I: best Pareto plans per approach, and uniform EvoApprox\n")
    evo_n = s.get("evo_images") or n_eval
    add("Energy gain vs the all-exact model; accuracy loss vs the int8 baseline, on the "
        f"{n_eval:,} evaluation images ({evo_n:,} for the EvoApprox rows, whose table-driven "
        "kernel is slower).\n")
    add("| approach / recovery | max loss | plan | energy gain | accuracy loss |")
    add("|---|---|---|---|---|")
    for r in table1:
        add(f"| {r['run']} | {_fmt(r['max_loss'], digits=0)} pp | "
            f"{'–' if r['label'] is None else '`' + r['label'] + '`'} | {_fmt(r['gain'])}% | "
            f"{_fmt(r['loss'], digits=2)} pp |")
    for r in s["evoapprox"]:
        if r.get("unavailable"):
            add(f"| uniform LUT({r['name']}) | – | not available: {r['unavailable']} | – | – |")
            continue
        rec = "" if r["recovery"] == "none" else f" +{r['recovery']}"
        add(f"| uniform LUT({r['name']}){rec} | – | llam, every layer | {_fmt(r['gain'])}% | "
            f"{_fmt(r['loss'], digits=2)} pp |")
    add("")

    add("## Accuracy recovery without retraining, at equal energy\n")
    add("The most energy-saving Pareto plans of the runs without recovery, scored again with "
        "weight tuning (ALWANN-style, per input channel activation histograms), bias "
        "correction, and both; the plans, hence the energy, are unchanged.\n")
    rec = s["recovery"]
    if rec:
        add("| run | plan | energy gain | top-1 without | + tune | + bias | + tune+bias |")
        add("|---|---|---|---|---|---|---|")
        keys = list(dict.fromkeys((r["run"], r["label"]) for r in rec))
        for key in keys:
            group = {r["recovery"]: r for r in rec if (r["run"], r["label"]) == key}
            first = next(iter(group.values()))
            add(f"| {key[0]} | `{key[1]}` | {_fmt(first['gain'])}% | "
                f"{_fmt(first['accuracy_none'], digits=2)}% | " +
                " | ".join(f"{_fmt(group[v]['accuracy'], digits=2)}% "
                           f"({'+' if group[v]['recovered'] >= 0 else ''}"
                           f"{_fmt(group[v]['recovered'], digits=2)})"
                           for v in RECOVERY_VARIANTS) + " |")
        mean = {v: float(np.mean([r["recovered"] for r in rec if r["recovery"] == v]))
                for v in RECOVERY_VARIANTS}
        add("\nMean accuracy recovered: " + ", ".join(f"{v} {100 * m:+.2f} pp"
                                                     for v, m in mean.items()) + ".\n")
    else:
        add("(no plan to score)\n")

    add("## Time\n")
    add("| step | seconds |\n|---|---|")
    for k, v in s["timings"].items():
        add(f"| {k} | {v:.0f} |")
    add("")
    add("## Caveats\n")
    add("- The search subset is drawn from the test set (class-balanced); the Pareto plans "
        "are re-scored on the evaluation images, which include it.")
    add("- Energy covers the conv layers' multipliers only (the classifier stays exact), "
        "as in the paper.")
    add("- Recovery statistics come from training images, never from the test set, when the "
        "training batches are available.")
    add("- KLMS performs only the multiplications whose weight lies within μ±kσ, as the paper "
        "describes: it skips the *largest* weights, which this model does not survive (its "
        "plans fall below the accuracy floor). `axonnx explore --approach klms --klms-keep "
        "outside` skips the small weights instead.")
    add("- Weight tuning minimises each product's expected squared error (its variance when bias "
        "correction follows) under per-channel activation histograms; it helps with the weight "
        "encoded, but can hurt with the activation encoded, where per-product errors are "
        "correlated across a window.")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
