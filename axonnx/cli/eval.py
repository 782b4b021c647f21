"""``axonnx eval``: score a model on CIFAR-10 or on your own data, against labels or against
the exact model's outputs."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from axonnx.cli._app import JsonOption, app, emit_json, progress_bar, stderr, stdout
from axonnx.cli._options import (DataOption, LabelsOption, LimitOption, MetricOption,
                                 ModelArgument, PreprocessOption, SampleOption, data_options)
from axonnx.limits import MAX_THREADS


@app.command("eval")
def eval_command(
    model: ModelArgument,
    data: DataOption = None, labels: LabelsOption = None, sample: SampleOption = False,
    limit: LimitOption = None, preprocess: PreprocessOption = None,
    metric: MetricOption = None,
    reference: Annotated[Optional[str], typer.Option(
        "--reference", help="The exact model (an .onnx file or a zoo name) that label-free "
        "metrics compare MODEL against, e.g. the original of a transformed model.")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Samples per onnxruntime run.")] = 250,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", min=1, max=MAX_THREADS, help="onnxruntime intra-op threads (default: "
        f"onnxruntime's choice; at most {MAX_THREADS}, 4 per usable CPU core here).")] = None,
    download: Annotated[bool, typer.Option(
        "--download", help="Download the official CIFAR-10 tarball (163 MB) into the cache "
        "(or --data) if the batches are not found.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Score MODEL: top-1 on the CIFAR-10 test set by default; on your own data with labels
    or, against --reference, label-free fidelity (agreement, SNR, cosine, IoU) or your metric."""
    from axonnx.data.load import input_range_note, load_data
    from axonnx.evaluate import evaluate
    from axonnx.model import load_model

    loaded = load_model(model)  # a bad model fails before any data is read
    options = data_options(data, labels=labels, sample=sample, limit=limit,
                           preprocess=preprocess, download=download)
    metrics = None if metric is None else [m for m in metric.split(",") if m.strip()]
    with progress_bar(not json_output) as bar:
        dataset = load_data(options, loaded, progress=bar)
        note = input_range_note(dataset, loaded)
        result = evaluate(model, dataset, metrics,
                          reference=None if reference is None else load_model(reference),
                          batch=batch, threads=threads, progress=bar)
    if result.preprocess_source.startswith("assumed"):
        stderr.print(f"note: {result.path} has no axonnx.preprocess metadata; fed raw 0..255 "
                     "float32 NCHW pixels (the standard contract)", highlight=False, soft_wrap=True)
    if note:
        stderr.print(f"warning: {note}", highlight=False, soft_wrap=True)
    if json_output:
        emit_json(result.as_dict())
        return
    if result.per_class:
        table = Table()
        table.add_column("class", no_wrap=True)
        table.add_column("top-1 %", justify="right")
        for name, acc in result.per_class.items():
            table.add_row(name, "-" if acc is None else f"{100 * acc:.1f}")
        stdout.print(table)
    stdout.print(f"model: {result.path}", highlight=False, soft_wrap=True)
    if reference is not None:
        stdout.print(f"reference: {reference}", highlight=False, soft_wrap=True)
    stdout.print(f"data:  {result.data}", highlight=False, soft_wrap=True)
    stdout.print(f"speed: {result.images_per_s:,.0f} samples/s (batch {result.batch}, "
                 f"{result.threads or 'default'} threads, {result.session})", highlight=False,
                 soft_wrap=True)
    for name, value in result.scores.items():
        if name == "top1" and result.correct is not None:
            stdout.print(f"[bold]top-1: {100 * value:.2f}%[/] ({result.correct}/{result.n})")
        else:
            stdout.print(f"[bold]{name}: {format_score(value, name)}[/]",
                         highlight=False)


def format_score(value: float, name: str) -> str:
    """A score in its metric's units: dB, fractions as percentages, cosine (near 1) with
    five decimals, a user's entries as plain numbers."""
    from axonnx.errors import AxonnxError
    from axonnx.metrics import make_metric

    if name == "cosine":
        return f"{value:.5f}"
    try:
        unit = make_metric(name).unit
    except AxonnxError:  # a user metric's extra entries
        unit = ""
    return {"dB": f"{value:.2f} dB", "fraction": f"{100 * value:.2f}%"}.get(unit, f"{value:.6g}")
