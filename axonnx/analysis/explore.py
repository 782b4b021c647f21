"""Design-space exploration with NSGA-II: where to put which multiplier.

The genome (:mod:`axonnx.analysis.space`) denotes a plan; a candidate's objectives are its
accuracy loss on a search subset (relative to the untransformed model on the same images)
and its multiplier energy relative to the all-exact model (``axonnx.energy``). pymoo's
NSGA-II is driven by an ask/tell loop, so candidates can be scored in parallel (local
processes or a Dask cluster); an optional floor on the accuracy is a constraint.

Everything the loop needs to continue is checkpointed after every generation (the
algorithm with its random generator, every score so far), so an interrupted run resumes
where it stopped and ends exactly where an uninterrupted run with the same seed ends.

Outputs in the run folder:
  run.json             settings, baseline accuracies, progress, timings
  evaluated.csv        every distinct candidate: genome, label, accuracy, energy
  pareto.csv           the non-dominated candidates (over everything evaluated), with the
                       full-test-set accuracy of the re-evaluated ones
  pareto/NN.yaml       their plans (``axonnx transform --plan``)
  explore.png          energy vs accuracy loss (paper Fig. 4 style)
  checkpoint.pkl       the search state (a pickle signed with the user's key, axonnx.signed;
                       remove it to start over)
  activations.npz      calibration statistics (when recovery is on)
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from pymoo.core.repair import Repair

from axonnx.analysis.evaluation import Backend, Workload, worker_threads
from axonnx.pareto import pareto_records
from axonnx.recovery import canonical_recovery
from axonnx import signed
from axonnx.analysis.space import SearchSpace
from axonnx.errors import AxonnxError
from axonnx.model import results_folder
from axonnx.plan import CLASSED_APPROACHES, check_encoded_operand

CHECKPOINT = "checkpoint.pkl"
CHECKPOINT_FORMAT = 1


@dataclass
class ExploreConfig:
    approach: str
    library: tuple[str, ...] = ()
    classes: int = 1
    pop: int = 24
    gens: int = 10
    seed: int = 1
    subset: int | None = 1000
    floor: float | None = None  # minimum score on the search split (a constraint), metric units
    recovery: str = "none"
    calib: int = 512
    klms_keep: str = "inside"
    encoded_operand: str = "weight"
    reeval: int = 30  # Pareto points re-evaluated on the full split (0: none)
    reeval_max_loss: float | None = None  # ... chosen among those within this subset loss
    matmul: bool = False  # also the quantized matrix products (MatMul/Gemm)
    metric: object = None  # axonnx.metrics name or callable; None: top1 with labels, else label-free

    def check(self) -> None:
        from axonnx.limits import MAX_POP

        if not 4 <= self.pop <= MAX_POP:
            raise AxonnxError(f"--pop must lie in 4 .. {MAX_POP} (this machine's memory bounds "
                              f"NSGA-II's ranking), not {self.pop}")
        if self.seed < 0:
            raise AxonnxError(f"--seed must be >= 0, not {self.seed}")
        if self.gens < 1:
            raise AxonnxError(f"--gens must be at least 1, not {self.gens}")
        if self.floor is not None:
            from axonnx.metrics import check_floor, make_metric

            self.floor = check_floor(make_metric(self.metric or "top1"), self.floor)
        if self.reeval_max_loss is not None and self.reeval_max_loss != self.reeval_max_loss:
            raise AxonnxError("--reeval-max-loss must be a number")
        if self.calib < 1:
            raise AxonnxError(f"--calib must be at least 1, not {self.calib}")
        if self.reeval < 0:
            raise AxonnxError(f"--reeval must be >= 0, not {self.reeval}")
        self.recovery = canonical_recovery(self.recovery)  # "both" and "tune+bias" are one run
        check_encoded_operand(self.encoded_operand)

    @property
    def metric_name(self) -> str:
        from axonnx.metrics import make_metric

        return "top1" if self.metric is None else make_metric(self.metric).name

    def identity(self) -> dict:
        """The settings a resumed run must share (everything but gens and reeval)."""
        d = asdict(self)
        for key in ("gens", "reeval", "reeval_max_loss"):
            d.pop(key)
        if not d["matmul"]:  # conv-only runs resume from checkpoints written before it
            d.pop("matmul")
        d["metric"] = self.metric_name
        if d["metric"] == "top1":  # likewise top1 runs
            d.pop("metric")
        d["library"] = list(self.library)
        return d


@dataclass
class Record:
    genome: str
    label: str
    generation: int
    accuracy: float
    loss: float
    energy: float  # relative to all-exact
    feasible: bool
    digest: str

    @property
    def gain(self) -> float:
        return 1.0 - self.energy


@dataclass
class ExploreResult:
    out: Path
    config: ExploreConfig
    baseline_search: float
    baseline_report: float | None
    records: list[Record]
    pareto: list[dict]
    seconds: float
    evaluations: int
    generations_done: int
    resumed: bool = False
    notes: list[str] = field(default_factory=list)
    metric: dict = field(default_factory=dict)  # axonnx.metrics.Metric.describe()
    search_data: str = ""  # where each split comes from
    report_data: str | None = None


def _problem(space: SearchSpace, floor: float | None):
    from pymoo.core.problem import Problem

    return Problem(n_var=space.n_var, n_obj=2, n_ieq_constr=1 if floor is not None else 0,
                   xl=0, xu=space.upper, vtype=int)


class CanonicalRepair(Repair):
    """pymoo Repair: round, clip and sort class genes (see ``SearchSpace.canonical``)."""

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space

    def _do(self, problem, X, **kwargs):
        return self.space.canonical(X).astype(np.float64)


def _algorithm(space: SearchSpace, config: ExploreConfig, floor: float | None):
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.termination import NoTermination
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair

    rng = np.random.default_rng(config.seed)
    X0 = rng.integers(0, space.upper + 1, size=(config.pop, space.n_var))
    anchors = space.anchors()[: max(0, config.pop // 2)]
    for k, a in enumerate(anchors):  # uniform plans span the energy axis from the start
        X0[k] = a
    X0 = space.canonical(X0)
    algorithm = NSGA2(
        pop_size=config.pop, sampling=X0.astype(np.float64),
        crossover=SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
        mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
        repair=CanonicalRepair(space), eliminate_duplicates=True,
    )
    algorithm.setup(_problem(space, floor), termination=NoTermination(), seed=config.seed,
                    verbose=False)
    return algorithm


# ---- the run folder ----------------------------------------------------------------------

def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    _write_atomic(path, buf.getvalue().encode())


RECORD_HEADER = ["genome", "label", "generation", "score", "loss",
                 "energy_relative", "energy_gain", "feasible", "plan_digest"]


def _record_row(r: Record) -> list:
    return [r.genome, r.label, r.generation, f"{r.accuracy:.6f}", f"{r.loss:.6f}",
            f"{r.energy:.6f}", f"{r.gain:.6f}", int(r.feasible), r.digest]


def read_records(path: Path) -> list[Record]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:  # runs written before the metric names: accuracy, accuracy_loss
        r.setdefault("score", r.get("accuracy"))
        r.setdefault("loss", r.get("accuracy_loss"))
    return [Record(r["genome"], r["label"], int(r["generation"]), float(r["score"]),
                   float(r["loss"]), float(r["energy_relative"]), bool(int(r["feasible"])),
                   r["plan_digest"]) for r in rows]


# ---- the search ----------------------------------------------------------------------------

def prepare_out(out: Path, config: ExploreConfig) -> dict | None:
    """The checkpoint to resume from (None for a fresh run); refuses a folder that holds a
    different run."""
    results_folder(out)
    ckpt = out / CHECKPOINT
    if not ckpt.exists():
        if (out / "evaluated.csv").exists():
            raise AxonnxError(f"{out} holds the results of a finished or foreign run without a "
                              f"checkpoint; choose another --out folder")
        return None
    try:
        state = signed.loads(ckpt.read_bytes(), f"checkpoint {ckpt}")
    except AxonnxError:
        raise
    except Exception as exc:
        raise AxonnxError(f"cannot resume from {ckpt} ({type(exc).__name__}); delete it to "
                          "start over") from None
    if state.get("format") != CHECKPOINT_FORMAT:
        raise AxonnxError(f"{ckpt} was written by another axonnx version; delete it to start over")
    if state["identity"] != config.identity():
        theirs, ours = state["identity"], config.identity()
        diff = ", ".join(f"{k}: {theirs.get(k)!r} -> {ours.get(k)!r}"
                         for k in ours if theirs.get(k) != ours.get(k))
        raise AxonnxError(f"{out} holds a run with other settings ({diff}); use the same "
                          "settings to resume it, or another --out folder")
    return state


def explore(model, config: ExploreConfig, out: str | Path, *, search_data, report_data=None,
            calibration=None, backend: Backend | None = None,
            energy_table=None, progress: Callable | None = None,
            stop_after: int | None = None, input_shape=None) -> ExploreResult:
    """Run (or resume) one exploration. ``search_data`` is scored during the search;
    ``report_data`` (if given; disjoint from it, :func:`axonnx.data.load.search_and_report`)
    re-scores the Pareto set at the end. ``calibration`` (a Dataset) feeds the recovery
    statistics.
    ``progress(kind, advance, total)`` is called as work completes. ``stop_after`` ends the
    call after that many generations of this call (the run stays resumable). ``input_shape``
    (e.g. ``"1,128,768"``): where the model's input has dynamic dims, the size at which
    multiplications are counted."""
    from axonnx.analysis.cost import PlanCost
    from axonnx.model import load_model
    from axonnx.transform import prepared

    t0 = time.perf_counter()
    config.check()
    out = Path(out)
    state = prepare_out(out, config)
    model = load_model(model)
    _, layers, _ = prepared(model, config.matmul, input_shape)
    cost = PlanCost.for_model(model, energy_table, config.matmul, input_shape)
    notes: list[str] = []
    subs = None
    if config.approach != "klms":  # never offer a multiplier dominated on a layer's formats
        subs, dominated = cost.substitutes(tuple(config.library), config.encoded_operand)
        notes += dominated
    space = SearchSpace(config.approach, tuple(layer.name for layer in layers), config.library,
                        config.classes, config.klms_keep, config.encoded_operand, config.matmul,
                        substitutes=subs)
    backend = backend or Backend()

    stats = None
    if config.recovery != "none":
        stats_path = out / "activations.npz"
        from axonnx.recovery import ActivationStats, measure_activations

        if stats_path.exists():
            stats = ActivationStats.load(stats_path)
        else:
            if calibration is None:
                raise AxonnxError("recovery needs calibration data")
            stats = measure_activations(model, data=calibration, matmul=config.matmul)
            stats.save(stats_path)
        notes.append(f"recovery {config.recovery}, statistics from {stats.source}")
    # In-process scoring may use every core; workers use one thread each.
    threads = worker_threads(backend)
    workload = Workload.create(model, search_data, metric=config.metric,
                               recovery=config.recovery, stats=stats, threads=threads)
    measure = workload.measure

    table_origin = getattr(cost.table, "origin", "")
    if state is None:
        [baseline] = backend.map(workload, [None])
        algorithm = _algorithm(space, config, _floor(config))
        state = {"format": CHECKPOINT_FORMAT, "identity": config.identity(), "generation": 0,
                 "algorithm": algorithm, "records": [], "scores": {}, "baseline": baseline,
                 "full_scores": {}, "baseline_report": None, "seconds": 0.0,
                 "workload": workload.key, "energy_table": table_origin}
        resumed = False
    else:
        if state["workload"] != workload.key:
            raise AxonnxError(f"{out} holds a run on another model, other images or other "
                              "calibration statistics; use the same ones to resume it, or "
                              "another --out folder")
        if state["energy_table"] != table_origin:
            raise AxonnxError(f"{out} was priced with the energy table {state['energy_table']}, "
                              f"not {table_origin}; use the same table to resume it")
        resumed = True
        notes.append(f"resumed after generation {state['generation']}")
    algorithm = state["algorithm"]
    baseline = state["baseline"]
    records: list[Record] = state["records"]
    scores: dict[str, float] = state["scores"]
    evaluations_before = len(scores)

    from pymoo.core.evaluator import Evaluator
    from pymoo.problems.static import StaticProblem

    floor = _floor(config)
    done_this_call = 0
    if progress:
        progress("search", 0, (config.gens - state["generation"]) * config.pop)
    while state["generation"] < config.gens:
        if stop_after is not None and done_this_call >= stop_after:
            break
        generation = state["generation"] + 1
        pop = algorithm.ask()
        X = space.canonical(pop.get("X"))
        keys = [space.genome_text(x) for x in X]
        fresh: list[int] = []
        for k, key in enumerate(keys):
            if key not in scores and key not in [keys[f] for f in fresh]:
                fresh.append(k)
        plans = [space.plan(X[k]) for k in fresh]
        if progress and len(keys) > len(fresh):
            progress("search", len(keys) - len(fresh), None)  # scored before
        accs = backend.map(workload, plans,
                           done=(lambda n: progress("search", n, None)) if progress else None)
        for k, plan, acc in zip(fresh, plans, accs):
            scores[keys[k]] = acc
            energy = cost.relative(plan)
            records.append(Record(keys[k], space.label(X[k]), generation, acc,
                                  measure.loss(baseline, acc), energy,
                                  floor is None or measure.loss(floor, acc) <= 0, plan.digest()))
        energy_of = {r.genome: r.energy for r in records}
        F = np.array([[measure.loss(baseline, scores[k]), energy_of[k]] for k in keys])
        kwargs = {"F": F}
        if floor is not None:  # feasible where the score is no worse than the floor
            kwargs["G"] = np.array([[measure.loss(floor, scores[k])] for k in keys])
        Evaluator().eval(StaticProblem(algorithm.problem, **kwargs), pop)
        algorithm.tell(infills=pop)
        state["generation"] = generation
        done_this_call += 1
        _save_progress(out, state, t0)
        t0 = time.perf_counter()

    finished = state["generation"] >= config.gens
    pareto = [{"record": r} for r in pareto_records(records)]  # entries gain "full" scores
    if finished:
        _finish(out, config, space, pareto, state, workload, report_data, backend, progress, stats)
    _save_progress(out, state, t0)
    _write_run_json(out, config, space, state, finished, len(scores), notes, workload,
                    report_data)
    if finished:
        from axonnx.analysis.plots import plot_runs

        plot_runs([load_run(out)], out / "explore.png")
    return ExploreResult(out, config, baseline, state["baseline_report"], records, pareto,
                         state["seconds"],
                         len(scores) - evaluations_before, state["generation"], resumed, notes,
                         workload.metric_info, workload.data.source,
                         None if report_data is None else report_data.source)


def _floor(config: ExploreConfig) -> float | None:
    return config.floor


def _save_progress(out, state, since: float) -> None:
    """evaluated.csv and the checkpoint, with the time spent since ``since`` added."""
    state["seconds"] += time.perf_counter() - since
    _write_csv(out / "evaluated.csv", RECORD_HEADER, [_record_row(r) for r in state["records"]])
    _write_atomic(out / CHECKPOINT, signed.dumps(state))


def _spread(n_total: int, n: int) -> list[int]:
    """At most n indices spread evenly over range(n_total), ends included."""
    if n >= n_total:
        return list(range(n_total))
    if n <= 0:
        return []
    if n == 1:
        return [0]
    return sorted({int(round(k * (n_total - 1) / (n - 1))) for k in range(n)})


def _finish(out, config, space, pareto, state, workload, report_data, backend, progress,
            stats) -> None:
    """Plan files for the front, its re-evaluation on the report split, CSV and plot.
    Report scores are kept in the state, so a repeated or resumed finish scores nothing
    twice."""
    from axonnx.data.load import as_dataset

    plan_dir = out / "pareto"
    plan_dir.mkdir(exist_ok=True)
    for old in plan_dir.glob("*.yaml"):
        old.unlink()
    full_scores: dict[str, float] = state["full_scores"]
    band = [k for k, e in enumerate(pareto)
            if config.reeval_max_loss is None or e["record"].loss <= config.reeval_max_loss]
    chosen = ([band[k] for k in _spread(len(band), config.reeval)]
              if report_data is not None else [])
    if chosen:
        report_data = as_dataset(report_data, _model_of(workload))
        if report_data.same_samples(workload.data):
            state["baseline_report"] = state["baseline"]
            for k in chosen:
                r = pareto[k]["record"]
                full_scores[r.genome] = r.accuracy
        else:
            full = Workload.create(
                _model_of(workload), report_data, metric=workload.metric,
                recovery=config.recovery, stats=stats, threads=workload.threads)
            state.setdefault("full_workload", full.key)  # checkpoints from before this check
            if state["full_workload"] != full.key:
                # Scores on other full-set images (another --data) must not be reused.
                full_scores.clear()
                state["baseline_report"] = None
                state["full_workload"] = full.key
            todo = [pareto[k]["record"].genome for k in chosen
                    if pareto[k]["record"].genome not in full_scores]
            plans = ([None] if state["baseline_report"] is None else []) + \
                [space.plan(_genome(g)) for g in todo]
            if plans:
                if progress:
                    progress("full", 0, len(plans))
                accs = backend.map(full, plans,
                                   done=(lambda n: progress("full", n, None)) if progress else None)
                if state["baseline_report"] is None:
                    state["baseline_report"] = accs.pop(0)
                full_scores.update(zip(todo, accs))
    baseline_report = state["baseline_report"]
    rows = []
    for rank, entry in enumerate(pareto):
        r = entry["record"]
        name = f"{rank:02d}.yaml"
        space.plan(_genome(r.genome)).save(plan_dir / name)
        full = full_scores.get(r.genome) if baseline_report is not None else None
        entry["full"] = full
        rows.append([rank, r.label, r.genome, f"{r.energy:.6f}", f"{r.gain:.6f}",
                     f"{r.accuracy:.6f}", f"{r.loss:.6f}",
                     "" if full is None else f"{full:.6f}",
                     "" if full is None else f"{baseline_report - full:.6f}",
                     f"pareto/{name}", r.digest])
    _write_csv(out / "pareto.csv", PARETO_HEADER, rows)


PARETO_HEADER = ["rank", "label", "genome", "energy_relative", "energy_gain", "score_search",
                 "loss_search", "score_report", "loss_report", "plan",
                 "plan_digest"]


def _model_of(workload: Workload):
    import onnx

    return onnx.load_from_string(workload.model_bytes)


def _genome(text: str) -> np.ndarray:
    return np.array([int(g) for g in text.split()], np.int64)


def _write_run_json(out, config, space, state, finished, evaluations, notes, workload,
                    report_data) -> None:
    payload = {
        "config": {**asdict(config), "library": list(config.library),
                   "metric": config.metric_name},
        "metric": workload.metric_info,
        "space": space.as_dict(),
        "n_var": space.n_var,
        "baseline_search": state["baseline"],
        "baseline_report": state["baseline_report"],
        "search_data": {"source": workload.data.source, "samples": len(workload.data)},
        "report_data": None if report_data is None else {"source": report_data.source,
                                                          "samples": len(report_data)},
        "generations_done": state["generation"],
        "finished": finished,
        "evaluations": evaluations,
        "energy_table": state.get("energy_table"),
        "seconds": round(state["seconds"], 2),
        "notes": notes,
    }
    _write_atomic(out / "run.json", (json.dumps(payload, indent=2) + "\n").encode())


# ---- reading finished runs -----------------------------------------------------------------

@dataclass
class Run:
    """A run folder, read back (for --compare, plots and the report)."""

    path: Path
    info: dict
    records: list[Record]
    pareto: list[dict]  # rows of pareto.csv

    @property
    def approach(self) -> str:
        return self.info["config"]["approach"]

    @property
    def name(self) -> str:
        cfg = self.info["config"]
        label = cfg["approach"]
        if cfg["approach"] in CLASSED_APPROACHES:
            label += f" k={cfg['classes']}"
        if cfg.get("encoded_operand", "weight") != "weight":
            label += f" [{cfg['encoded_operand'][:3]}-enc]"
        if cfg.get("recovery", "none") != "none":
            label += f" +{cfg['recovery']}"
        return label


def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / "run.json").is_file() or not (path / "evaluated.csv").is_file():
        raise AxonnxError(f"{path} is not an exploration folder (no run.json / evaluated.csv)")
    info = json.loads((path / "run.json").read_text())
    records = read_records(path / "evaluated.csv")
    pareto = []
    if (path / "pareto.csv").is_file():
        with open(path / "pareto.csv", newline="") as fh:
            pareto = list(csv.DictReader(fh))
    return Run(path, info, records, pareto)
