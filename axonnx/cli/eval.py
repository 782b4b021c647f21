"""``axonnx eval``: top-1 accuracy of a model (a path or a zoo name) on CIFAR-10."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from axonnx.cli._app import JsonOption, app, emit_json, progress_bar, stderr, stdout
from axonnx.errors import AxonnxError


@app.command("eval")
def eval_command(
    model: Annotated[str, typer.Argument(help="An .onnx file or a zoo name (see `axonnx zoo`), e.g. zoo:resnet8.")],
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Folder with the CIFAR-10 batches (or its cifar-10-batches-py/). "
        "Default: $AXONNX_DATA, then the user cache.")] = None,
    sample: Annotated[bool, typer.Option(
        "--sample", help="Use the packaged offline sample (1,000 test images, 100 per class) "
        "instead of the full 10,000-image test set.")] = False,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=1, help="Evaluate only the first N images.")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per onnxruntime run.")] = 250,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", min=1, help="onnxruntime intra-op threads (default: onnxruntime's choice).")] = None,
    download: Annotated[bool, typer.Option(
        "--download", help="Download the official CIFAR-10 tarball (163 MB) into the cache "
        "(or --data) if the batches are not found.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Top-1 accuracy of MODEL on the CIFAR-10 test set (or the offline sample)."""
    from axonnx.data import load_sample, load_split
    from axonnx.evaluate import evaluate
    from axonnx.zoo import resolve_model

    resolve_model(model)  # a bad model name fails before any data is read
    with progress_bar(not json_output) as bar:
        if sample:
            if data is not None or download:
                raise AxonnxError("--sample uses the packaged images; drop --data/--download")
            split = load_sample()
        else:
            split = load_split("test", data, download=download, progress=bar)
        result = evaluate(model, split.head(limit), batch=batch, threads=threads,
                          progress=bar)
    if result.preprocess_source != "model metadata":
        stderr.print(f"note: {result.path} has no axonnx.preprocess metadata; fed raw 0..255 "
                     "float32 NCHW pixels (the standard contract)", highlight=False, soft_wrap=True)
    if json_output:
        emit_json(result.as_dict())
        return
    table = Table()
    table.add_column("class", no_wrap=True)
    table.add_column("top-1 %", justify="right")
    for name, acc in result.per_class.items():
        table.add_row(name, "-" if acc is None else f"{100 * acc:.1f}")
    stdout.print(table)
    stdout.print(f"model: {result.path}", highlight=False, soft_wrap=True)
    stdout.print(f"data:  {result.data}", highlight=False, soft_wrap=True)
    stdout.print(f"speed: {result.images_per_s:,.0f} images/s (batch {result.batch}, "
                 f"{result.threads or 'default'} threads, {result.session})", highlight=False, soft_wrap=True)
    stdout.print(f"[bold]top-1: {100 * result.top1:.2f}%[/] ({result.correct}/{result.n})")
