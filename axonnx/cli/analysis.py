"""``axonnx sensitivity``, ``axonnx explore`` and ``axonnx reproduce``: the paper's studies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import onnx
import typer
from rich.table import Table

from axonnx.cli._app import JsonOption, app, emit_json, progress_bar, stderr, stdout
from axonnx.cli._options import (CalibDataOption, CalibOption, DataOption, EncodedOption,
                                 EnergyTableOption, InputShapeOption, LabelsOption, LimitOption,
                                 MatMulOption, MetricOption, PreprocessOption, RecoveryOption,
                                 SampleOption, data_options)
from axonnx.errors import AxonnxError
from axonnx.limits import MAX_POP, MAX_WORKERS

OutOption = Annotated[Path, typer.Option("--out", help="Folder for the results (created).")]
WorkersOption = Annotated[Optional[int], typer.Option(
    "--workers", help="Local worker processes scoring plans (default: the usable CPU cores; "
    f"1 scores in this process; at most {MAX_WORKERS} on this machine).")]
DaskOption = Annotated[Optional[str], typer.Option(
    "--dask", help="Score plans on a Dask cluster: tcp://host:port of a running scheduler, or "
    "local:N for a LocalCluster of N worker processes (local:N:threads for threads; N at "
    f"most {MAX_WORKERS} on this machine).")]


def _backend(workers, dask):
    from axonnx.analysis.evaluation import make_backend

    if dask and workers is not None:
        raise AxonnxError("give either --workers or --dask, not both")
    return make_backend(workers, dask)


def _table(path):
    from axonnx.analysis.cost import load_table

    return load_table(path)


def _load(model: str, input_shape: str | None = None):
    """The model, loaded once; with ``--input-shape`` its input dims fixed (dynamic batch
    and sequence, e.g. for attention products that need static shapes)."""
    from axonnx.model import fix_input_shape, load_model

    loaded = load_model(model)
    if input_shape is not None:
        fixed = onnx.ModelProto()
        fixed.CopyFrom(loaded)
        fix_input_shape(fixed, input_shape)
        return fixed
    return loaded


def _resolve_metric(metric, data, loaded) -> str:
    """The metric name, the default one (top1 with labels, else label-free) when not given."""
    from axonnx.evaluate import resolve_metric
    from axonnx.metrics import make_metric

    spec = resolve_metric(metric, data, loaded)
    make_metric(spec)  # an unknown name or unimportable function fails here
    return spec


def _warn_range(data, loaded, what: str) -> None:
    from axonnx.data.load import input_range_note

    note = input_range_note(data, loaded, what)
    if note:
        stderr.print(f"warning: {note}", soft_wrap=True, highlight=False)


def _score_text(value: float, metric: dict) -> str:
    return (f"{100 * value:.2f}" if metric.get("unit") == "fraction" else f"{value:.2f}")


def _score_unit(metric: dict) -> str:
    return {"fraction": "%", "dB": "dB"}.get(metric.get("unit"), "")


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
    limit: LimitOption = None,
    data: DataOption = None, labels: LabelsOption = None, sample: SampleOption = False,
    preprocess: PreprocessOption = None, metric: MetricOption = None,
    recovery: RecoveryOption = "none", calib: CalibOption = 512,
    calib_data: CalibDataOption = None,
    encoded_operand: EncodedOption = "weight", matmul: MatMulOption = False,
    input_shape: InputShapeOption = None,
    workers: WorkersOption = None, dask: DaskOption = None,
    energy_table: EnergyTableOption = None, json_output: JsonOption = False,
) -> None:
    """The metric's score (top-1, or fidelity to the exact model on unlabelled data) when
    layer-level approximation covers one layer, or layers 1..m, for each multiplier: CSV,
    JSON and a PNG line plot in --out."""
    from axonnx.analysis.data import load_data, recovery_statistics
    from axonnx.recovery import canonical_recovery
    from axonnx.analysis.sensitivity import MODES, sensitivity, write_sensitivity
    from axonnx.multipliers.names import split_names
    from axonnx.model import results_folder
    from axonnx.plan import check_encoded_operand

    results_folder(out)  # a bad --out fails before the work, not after it
    if mode not in MODES:
        raise AxonnxError(f"unknown --mode {mode!r}; use single or cumulative")
    check_encoded_operand(encoded_operand)  # before the images load
    aliases = split_names(mult)
    recovery = canonical_recovery(recovery)
    loaded = _load(model, input_shape)
    table = _table(energy_table)
    options = data_options(data, labels=labels, sample=sample, limit=limit, preprocess=preprocess)
    dataset = load_data(options, loaded)
    _warn_range(dataset, loaded, str(dataset.source))
    metric = _resolve_metric(metric, dataset, loaded)
    stats = recovery_statistics(loaded, recovery, options, calib, calib_data=calib_data,
                                fallback=dataset, matmul=matmul)
    with _backend(workers, dask) as backend, progress_bar(not json_output) as bar:
        result = sensitivity(loaded, aliases, mode, dataset, metric=metric, backend=backend,
                             energy_table=table, recovery=recovery, stats=stats,
                             encoded_operand=encoded_operand, matmul=matmul,
                             progress=bar)
    result.model = model
    paths = write_sensitivity(result, out)
    if json_output:
        emit_json({**result.as_dict(), "files": {k: str(v) for k, v in paths.items()}})
        return
    unit = _score_unit(result.metric)
    t = Table(title=f"{mode} sensitivity, {result.images} samples of {result.data}, "
                    f"{result.metric['name']} baseline "
                    f"{_score_text(result.baseline, result.metric)} {unit}")
    t.add_column("layer", justify="right")
    t.add_column("approximated")
    for n in result.aliases:
        t.add_column(f"{n} {result.metric['name']} {unit}", justify="right")
    for m, layer in enumerate(result.layers, start=1):
        row = {r["alias"]: r for r in result.rows if r["layer"] == m}
        covered = layer if mode == "single" else f"1..{m}"
        t.add_row(str(m), covered, *[_score_text(row[a]["score"], result.metric)
                                     for a in result.aliases])
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
    pop: Annotated[int, typer.Option("--pop", help="NSGA-II population size (4 to "
                                     f"{MAX_POP} on this machine).")] = 24,
    gens: Annotated[int, typer.Option("--gens", help="Generations (a finished run can be "
                                      "extended by running it again with more).")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Random seed, >= 0 (the run is "
                                      "deterministic for a seed).")] = 1,
    subset: Annotated[int, typer.Option(
        "--subset", help="Samples scored during the search: class-balanced from the search "
        "split (CIFAR-10: a validation split of the training batches); 0: all.")] = 1000,
    floor: Annotated[Optional[float], typer.Option(
        "--floor", help="Minimum score on the search split, in the metric's units (a "
        "fraction or a percentage; dB for snr), a constraint.")] = None,
    reeval: Annotated[int, typer.Option(
        "--reeval", help="Pareto plans re-scored on the report split (the test set; spread "
        "along the front; 0: none).")] = 30,
    reeval_max_loss: Annotated[Optional[float], typer.Option(
        "--reeval-max-loss", help="Re-score only Pareto plans within this loss on the search "
        "split (metric units; fractions also in percentage points if > 1).")] = None,
    klms_keep: Annotated[str, typer.Option(
        "--klms-keep", help="klms: inside (perform the multiplications near the mean, as the "
        "paper) or outside.")] = "inside",
    recovery: RecoveryOption = "none", calib: CalibOption = 512,
    calib_data: CalibDataOption = None,
    encoded_operand: EncodedOption = "weight", matmul: MatMulOption = False,
    data: DataOption = None, labels: LabelsOption = None, sample: SampleOption = False,
    limit: LimitOption = None, preprocess: PreprocessOption = None, metric: MetricOption = None,
    search_data: Annotated[Optional[Path], typer.Option(
        "--search-data", help="Your search split (with --eval-data): scored for every "
        "candidate.")] = None,
    eval_data: Annotated[Optional[Path], typer.Option(
        "--eval-data", help="Your report split (with --search-data), disjoint from it: the "
        "Pareto plans are re-scored on it.")] = None,
    split_seed: Annotated[int, typer.Option(
        "--split-seed", help="Seed of the split of one --data folder (or of --sample) into "
        "search and report parts.")] = 0,
    input_shape: InputShapeOption = None,
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
        options = data_options(data, labels=labels, sample=sample, limit=limit,
                               preprocess=preprocess)
        result = _explore(targets[0], out, approach, classes, library, pop, gens, seed, subset,
                          floor, (reeval, reeval_max_loss), klms_keep, recovery,
                          (calib, calib_data), (encoded_operand, matmul), options,
                          (metric, search_data, eval_data, split_seed, input_shape), workers, dask,
                          energy_table, json_output)
    except KeyboardInterrupt:
        _interrupted("explore")
    _show_explore(result, json_output)


def _explore(model, out, approach, classes, library, pop, gens, seed, subset, floor, reeval,
             klms_keep, recovery, calib, encoded_operand, options, splits, workers, dask,
             energy_table, quiet):
    from axonnx.analysis.data import calibration_data, search_and_report
    from axonnx.analysis.explore import ExploreConfig, explore
    from axonnx.metrics import make_metric
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
    metric, search_data, eval_data, split_seed, input_shape = splits
    loaded = _load(model, input_shape)
    reeval, reeval_max_loss = reeval
    config = ExploreConfig(approach=approach, library=names, classes=classes, pop=pop, gens=gens,
                           seed=seed, subset=subset or None, recovery=recovery,
                           calib=calib, klms_keep=klms_keep, reeval=reeval,
                           encoded_operand=encoded_operand, matmul=matmul)
    config.check()  # the settings, before any data is read
    table = _table(energy_table)
    search, report = search_and_report(options, loaded, subset=subset or None, seed=split_seed,
                                       search_data=search_data, eval_data=eval_data)
    _warn_range(search, loaded, str(search.source))
    config.metric = _resolve_metric(metric, search, loaded)
    if (reeval_max_loss is not None and reeval_max_loss > 1
            and make_metric(config.metric).unit == "fraction"):
        reeval_max_loss /= 100.0
    config.floor, config.reeval_max_loss = floor, reeval_max_loss
    config.check()  # the floor, in the metric's units
    if calib_data is not None and config.recovery == "none":
        raise AxonnxError("--calib-data feeds the recovery statistics: add --recovery tune, "
                          "bias or tune+bias, or drop --calib-data")
    calibration = None
    if config.recovery != "none":  # (check() made the name canonical)
        calibration = calibration_data(options, loaded, calib, calib_data=calib_data,
                                       fallback=search)
    with _backend(workers, dask) as backend, progress_bar(not quiet) as bar:
        return explore(loaded, config, out, search_data=search, report_data=report,
                       calibration=calibration, backend=backend, energy_table=table,
                       progress=bar)


def _show_explore(result, json_output: bool) -> None:
    front = [{"label": e["record"].label, "energy_gain": e["record"].gain,
              "score_search": e["record"].accuracy, "loss_search": e["record"].loss,
              "score_report": e.get("full")} for e in result.pareto]
    metric = result.metric
    if json_output:
        emit_json({"out": str(result.out), "metric": metric,
                   "search_data": result.search_data, "report_data": result.report_data,
                   "baseline_search": result.baseline_search,
                   "baseline_report": result.baseline_report, "evaluations": result.evaluations,
                   "generations": result.generations_done, "seconds": result.seconds,
                   "resumed": result.resumed, "pareto": front})
        return
    unit = {"fraction": "pp", "dB": "dB"}.get(metric.get("unit"), "")
    scale = 100 if metric.get("unit") == "fraction" else 1
    t = Table(title=f"Pareto front ({len(front)} plans) of {result.config.approach}, "
                    f"{metric.get('name')}")
    for col in ("#", "energy gain %", f"loss (search) {unit}", f"loss (report) {unit}", "label"):
        t.add_column(col, justify="left" if col == "label" else "right",
                     overflow="fold" if col == "label" else "ellipsis")
    from axonnx.metrics import make_metric

    measure = make_metric(result.config.metric or "top1")
    for k, f in enumerate(front):
        report = ("-" if f["score_report"] is None or result.baseline_report is None
                  else f"{scale * measure.loss(result.baseline_report, f['score_report']):.2f}")
        t.add_row(str(k), f"{100 * f['energy_gain']:.1f}", f"{scale * f['loss_search']:.2f}",
                  report, f["label"])
    stdout.print(t)
    stderr.print(f"search split: {result.search_data}", soft_wrap=True, highlight=False)
    if result.report_data:
        stderr.print(f"report split: {result.report_data}", soft_wrap=True, highlight=False)
    base_report = ("" if result.baseline_report is None
                   else f", report split {_score_text(result.baseline_report, metric)}")
    stderr.print(f"baseline {metric.get('name')}: search split "
                 f"{_score_text(result.baseline_search, metric)}{base_report} "
                 f"{_score_unit(metric)}; {result.evaluations} plans scored in "
                 f"{result.seconds:.0f} s; results in {result.out}", soft_wrap=True,
                 highlight=False)


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
    data: DataOption = None, sample: SampleOption = False, metric: MetricOption = None,
    matmul: MatMulOption = False,
    model: Annotated[str, typer.Option("--model", help="The model to study.")] = "zoo:resnet8",
    workers: WorkersOption = None, dask: DaskOption = None,
    energy_table: EnergyTableOption = None, json_output: JsonOption = False,
) -> None:
    """The paper's study on ResNet-8 (full CIFAR-10 test set): Fig. 3a/3b, the exploration of
    every approach, a Fig. 4 overlay, Table I with uniform EvoApprox rows, and what accuracy
    recovery buys; writes --out/report.md."""
    from axonnx.analysis.reproduce import StudyConfig, reproduce

    try:
        loaded = _load(model)
        config = StudyConfig.quick() if quick else StudyConfig.full()
        if not quick and not json_output:
            from axonnx.transform import prepared

            layers = len(prepared(loaded)[1])
            stderr.print(f"the full study scores about {config.estimated_plans(layers):,} plans and may "
                         "take hours on a small machine (use --quick for a few minutes); it "
                         "resumes where it stopped if interrupted", soft_wrap=True,
                         highlight=False)
        table = _table(energy_table)
        with _backend(workers, dask) as backend, progress_bar(not json_output) as bar:
            summary = reproduce(loaded, out, config, data=data, backend=backend,
                                energy_table=table, progress=bar, metric=metric,
                                matmul=matmul, sample=sample, name=model,
                                log=None if json_output else
                                (lambda msg: stderr.print(msg, soft_wrap=True, highlight=False)))
    except KeyboardInterrupt:
        _interrupted("reproduce")
    if json_output:
        emit_json(summary)
        return
    stdout.print(f"report: {summary['report']}")
