"""``axonnx sensitivity``, ``axonnx explore`` and ``axonnx reproduce``: the paper's studies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.table import Table

from axonnx.cli._app import JsonOption, app, emit_json, progress_bar, stderr, stdout
from axonnx.cli._options import (CalibDataOption, CalibOption, DataOption, EncodedOption,
                                 EnergyTableOption, MatMulOption, RecoveryOption, SampleOption)
from axonnx.errors import AxonnxError

OutOption = Annotated[Path, typer.Option("--out", help="Folder for the results (created).")]
WorkersOption = Annotated[Optional[int], typer.Option(
    "--workers", help="Local worker processes scoring plans (default: the usable CPU cores; "
    "1 scores in this process).")]
DaskOption = Annotated[Optional[str], typer.Option(
    "--dask", help="Score plans on a Dask cluster: tcp://host:port of a running scheduler, or "
    "local:N for a LocalCluster of N worker processes (local:N:threads for threads).")]


def _backend(workers, dask):
    from axonnx.analysis.evaluation import make_backend

    if dask and workers is not None:
        raise AxonnxError("give either --workers or --dask, not both")
    return make_backend(workers, dask)


def _table(path):
    from axonnx.analysis.cost import load_table

    return load_table(path)


def _check_model(model: str) -> None:
    from axonnx.zoo import resolve_model

    resolve_model(model)


@app.command("sensitivity")
def sensitivity_command(
    model: Annotated[str, typer.Argument(help="An .onnx file or a zoo name, e.g. zoo:resnet8.")],
    out: OutOption,
    mult: Annotated[str, typer.Option(
        "--multipliers", "--mult",
        help="Comma-separated multipliers, one line each, e.g. ROUP_L,ROUP_M,ROUP_H.")
    ] = "ROUP_L,ROUP_M,ROUP_H",
    mode: Annotated[str, typer.Option(
        "--mode", help="single: one conv layer at a time (Fig. 3a); cumulative: layers 1..m "
        "(Fig. 3b).")] = "single",
    limit: Annotated[Optional[int], typer.Option("--limit", help="Use only the first N images.")] = None,
    data: DataOption = None, sample: SampleOption = False,
    recovery: RecoveryOption = "none", calib: CalibOption = 512,
    calib_data: CalibDataOption = None,
    encoded_operand: EncodedOption = "weight", matmul: MatMulOption = False,
    workers: WorkersOption = None, dask: DaskOption = None,
    energy_table: EnergyTableOption = None, json_output: JsonOption = False,
) -> None:
    """Accuracy when layer-level approximation covers one layer, or layers 1..m, for each
    multiplier: CSV, JSON and a PNG line plot in --out."""
    from axonnx.analysis.data import evaluation_split, recovery_statistics
    from axonnx.recovery import canonical_recovery
    from axonnx.analysis.sensitivity import MODES, sensitivity, write_sensitivity
    from axonnx.multipliers.names import split_names
    from axonnx.plan import check_encoded_operand

    if mode not in MODES:
        raise AxonnxError(f"unknown --mode {mode!r}; use single or cumulative")
    check_encoded_operand(encoded_operand)  # before the images load
    aliases = split_names(mult)
    recovery = canonical_recovery(recovery)
    _check_model(model)
    table = _table(energy_table)
    split = evaluation_split(data, sample, limit)
    stats = recovery_statistics(model, recovery, data, sample, calib, split, calib_data)
    with _backend(workers, dask) as backend, progress_bar(not json_output) as bar:
        result = sensitivity(model, aliases, mode, split, backend=backend,
                             energy_table=table, recovery=recovery, stats=stats,
                             encoded_operand=encoded_operand, matmul=matmul,
                             progress=bar)
    paths = write_sensitivity(result, out)
    if json_output:
        emit_json({**result.as_dict(), "files": {k: str(v) for k, v in paths.items()}})
        return
    t = Table(title=f"{mode} sensitivity, {result.images} images, baseline "
                    f"{100 * result.baseline:.2f}%")
    t.add_column("layer", justify="right")
    t.add_column("approximated")
    for n in result.aliases:
        t.add_column(f"{n} top-1 %", justify="right")
    for m, layer in enumerate(result.layers, start=1):
        row = {r["alias"]: r for r in result.rows if r["layer"] == m}
        covered = layer if mode == "single" else f"1..{m}"
        t.add_row(str(m), covered, *[f"{100 * row[a]['accuracy']:.2f}" for a in result.aliases])
    stdout.print(t)
    stderr.print(f"wrote {', '.join(str(p) for p in paths.values())}", soft_wrap=True,
                 highlight=False)


@app.command("explore")
def explore_command(
    targets: Annotated[List[str], typer.Argument(
        help="The model (.onnx or zoo name); with --compare, run folders to overlay.")],
    out: OutOption,
    approach: Annotated[Optional[str], typer.Option(
        "--approach", help="llam, flam, klam-chan, klam-row, klam-col or klms.")] = None,
    classes: Annotated[int, typer.Option(
        "--classes", help="Classes per layer (flam, klam-*): k genes per layer.")] = 1,
    library: Annotated[Optional[str], typer.Option(
        "--multipliers", "--library", help="Comma-separated candidate multipliers, e.g. "
        "'ROUP(0,0),ROUP_L,ROUP_M,ROUP_H' (not for klms).")] = None,
    pop: Annotated[int, typer.Option("--pop", help="NSGA-II population size.")] = 24,
    gens: Annotated[int, typer.Option("--gens", help="Generations (a finished run can be "
                                      "extended by running it again with more).")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (the run is deterministic "
                                      "for a seed).")] = 1,
    subset: Annotated[int, typer.Option(
        "--subset", help="Images scored during the search (class-balanced from the test "
        "set); 0: all.")] = 1000,
    floor: Annotated[Optional[float], typer.Option(
        "--floor", help="Minimum accuracy on the subset (0..1, or a percentage), a "
        "constraint.")] = None,
    reeval: Annotated[int, typer.Option(
        "--reeval", help="Pareto plans re-evaluated on the full test set (spread along the "
        "front; 0: none).")] = 30,
    reeval_max_loss: Annotated[Optional[float], typer.Option(
        "--reeval-max-loss", help="Re-evaluate only Pareto plans within this accuracy loss on "
        "the subset (0..1, or percentage points if > 1).")] = None,
    klms_keep: Annotated[str, typer.Option(
        "--klms-keep", help="klms: inside (perform the multiplications near the mean, as the "
        "paper) or outside.")] = "inside",
    recovery: RecoveryOption = "none", calib: CalibOption = 512,
    calib_data: CalibDataOption = None,
    encoded_operand: EncodedOption = "weight", matmul: MatMulOption = False,
    data: DataOption = None, sample: SampleOption = False,
    workers: WorkersOption = None, dask: DaskOption = None,
    energy_table: EnergyTableOption = None,
    compare: Annotated[bool, typer.Option(
        "--compare", help="Overlay finished runs (the arguments are their folders) in one "
        "plot and table.")] = False,
    json_output: JsonOption = False,
) -> None:
    """NSGA-II search for plans that keep accuracy and save multiplier energy. Resumable:
    run the same command again after an interruption."""
    try:
        if compare:
            _compare(targets, out, json_output)
            return
        if len(targets) != 1:
            raise AxonnxError(f"give one model ({len(targets)} arguments given); to overlay "
                              "finished runs, add --compare")
        if reeval_max_loss is not None and reeval_max_loss > 1:
            reeval_max_loss /= 100.0
        result = _explore(targets[0], out, approach, classes, library, pop, gens, seed, subset,
                          floor, (reeval, reeval_max_loss), klms_keep, recovery,
                          (calib, calib_data), (encoded_operand, matmul), data,
                          sample, workers, dask, energy_table, json_output)
    except KeyboardInterrupt:
        _interrupted("explore")
    _show_explore(result, json_output)


def _explore(model, out, approach, classes, library, pop, gens, seed, subset, floor, reeval,
             klms_keep, recovery, calib, encoded_operand, data, sample, workers, dask,
             energy_table, quiet):
    from axonnx.analysis.data import (balanced_subset, calibration_images, evaluation_split,
                                      own_calibration)
    from axonnx.analysis.explore import ExploreConfig, explore
    from axonnx.analysis.space import SEARCH_APPROACHES, parse_library

    calib, calib_data = calib
    encoded_operand, matmul = encoded_operand
    if approach is None:
        raise AxonnxError(f"give --approach ({', '.join(SEARCH_APPROACHES)})")
    approach = approach.lower().replace("_", "-")
    if approach not in SEARCH_APPROACHES:
        raise AxonnxError(f"unknown --approach {approach!r}; use one of {', '.join(SEARCH_APPROACHES)}")
    if approach == "klms":
        if library:
            raise AxonnxError("klms chooses per layer among exact, k=1 and k=2: drop --multipliers")
        names: tuple[str, ...] = ()
    else:
        if not library:
            raise AxonnxError(f"{approach} needs --multipliers, e.g. 'ROUP(0,0),ROUP_L,ROUP_M,ROUP_H'")
        names = parse_library(library)
    if floor is not None and floor > 1:
        floor = floor / 100.0
    _check_model(model)
    reeval, reeval_max_loss = reeval
    config = ExploreConfig(approach=approach, library=names, classes=classes, pop=pop, gens=gens,
                           seed=seed, subset=subset or None, floor=floor, recovery=recovery,
                           calib=calib, klms_keep=klms_keep, reeval=reeval,
                           reeval_max_loss=reeval_max_loss,
                           encoded_operand=encoded_operand, matmul=matmul)
    config.check()
    table = _table(energy_table)
    full = evaluation_split(data, sample)
    search = balanced_subset(full, config.subset)
    calibration = own_calibration(model, config.recovery, calib_data, calib)
    if calibration is None and config.recovery != "none":  # (check() made the name canonical)
        calibration = calibration_images(data, sample, calib, search)
    with _backend(workers, dask) as backend, progress_bar(not quiet) as bar:
        return explore(model, config, out, search_split=search, full_split=full,
                       calibration=calibration, backend=backend, energy_table=table,
                       progress=bar)


def _show_explore(result, json_output: bool) -> None:
    front = [{"label": e["record"].label, "energy_gain": e["record"].gain,
              "accuracy_subset": e["record"].accuracy, "accuracy_loss_subset": e["record"].loss,
              "accuracy_full": e.get("full")} for e in result.pareto]
    if json_output:
        emit_json({"out": str(result.out), "baseline_subset": result.baseline_subset,
                   "baseline_full": result.baseline_full, "evaluations": result.evaluations,
                   "generations": result.generations_done, "seconds": result.seconds,
                   "resumed": result.resumed, "pareto": front})
        return
    t = Table(title=f"Pareto front ({len(front)} plans) of {result.config.approach}")
    for col in ("#", "energy gain %", "loss (subset) pp", "loss (full) pp", "label"):
        t.add_column(col, justify="left" if col == "label" else "right",
                     overflow="fold" if col == "label" else "ellipsis")
    for k, f in enumerate(front):
        full = ("-" if f["accuracy_full"] is None or result.baseline_full is None
                else f"{100 * (result.baseline_full - f['accuracy_full']):.2f}")
        t.add_row(str(k), f"{100 * f['energy_gain']:.1f}", f"{100 * f['accuracy_loss_subset']:.2f}",
                  full, f["label"])
    stdout.print(t)
    base_full = ("" if result.baseline_full is None
                 else f", full test set {100 * result.baseline_full:.2f}%")
    stderr.print(f"baseline: subset {100 * result.baseline_subset:.2f}%{base_full}; "
                 f"{result.evaluations} plans scored in {result.seconds:.0f} s; results in "
                 f"{result.out}", soft_wrap=True, highlight=False)


def _compare(dirs: list[str], out: Path, json_output: bool) -> None:
    from axonnx.analysis.compare import compare_runs

    summary = compare_runs([Path(d) for d in dirs], out)
    if json_output:
        emit_json(summary)
        return
    t = Table(title="runs")
    for col in ("run", "approach", "evaluated", "front", "best gain <=1pp %", "best gain <=4pp %"):
        t.add_column(col)
    for r in summary["runs"]:
        t.add_row(r["path"], r["name"], str(r["evaluated"]), str(r["front"]),
                  _pct(r["best_gain_at_1pp"]), _pct(r["best_gain_at_4pp"]))
    stdout.print(t)
    stderr.print(f"wrote {summary['plot']} and {summary['csv']}", soft_wrap=True, highlight=False)


def _interrupted(command: str) -> None:
    stderr.print(f"interrupted: the last finished generation is saved; run the same "
                 f"`axonnx {command}` command again to resume", soft_wrap=True, highlight=False)
    raise typer.Exit(code=130)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


@app.command("reproduce")
def reproduce_command(
    out: OutOption,
    quick: Annotated[bool, typer.Option(
        "--quick", help="A small version (search subset, small populations): minutes.")] = False,
    data: DataOption = None,
    model: Annotated[str, typer.Option("--model", help="The model to study.")] = "zoo:resnet8",
    workers: WorkersOption = None, dask: DaskOption = None,
    energy_table: EnergyTableOption = None, json_output: JsonOption = False,
) -> None:
    """The paper's study on ResNet-8 (full CIFAR-10 test set): Fig. 3a/3b, the exploration of
    every approach, a Fig. 4 overlay, Table I with uniform EvoApprox rows, and what accuracy
    recovery buys; writes --out/report.md."""
    from axonnx.analysis.reproduce import StudyConfig, reproduce

    try:
        _check_model(model)
        config = StudyConfig.quick() if quick else StudyConfig.full()
        if not quick and not json_output:
            from axonnx.model import load_model
            from axonnx.transform import prepared

            layers = len(prepared(load_model(model))[1])
            stderr.print(f"the full study scores about {config.estimated_plans(layers):,} plans and may "
                         "take hours on a small machine (use --quick for a few minutes); it "
                         "resumes where it stopped if interrupted", soft_wrap=True,
                         highlight=False)
        table = _table(energy_table)
        with _backend(workers, dask) as backend, progress_bar(not json_output) as bar:
            summary = reproduce(model, out, config, data=data, backend=backend,
                                energy_table=table, progress=bar,
                                log=None if json_output else
                                (lambda msg: stderr.print(msg, soft_wrap=True, highlight=False)))
    except KeyboardInterrupt:
        _interrupted("reproduce")
    if json_output:
        emit_json(summary)
        return
    stdout.print(f"report: {summary['report']}")
