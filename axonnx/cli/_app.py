"""The typer app, the shared output sink and the error boundary."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from axonnx.errors import AxonnxError

# Data goes to stdout; tables for humans, progress and errors go to stderr.
# Piped output keeps wide tables readable instead of rich's 80-column default.
stdout = Console(width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class _ErrorBoundary(typer.core.TyperGroup):
    """The one place a library error becomes a CLI error: one line on stderr and exit status
    1, for every command (and under typer's CliRunner as from the shell); the traceback only
    with AXONNX_DEBUG=1. Commands themselves never catch AxonnxError."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AxonnxError as exc:
            if os.environ.get("AXONNX_DEBUG"):
                raise
            fail(exc.render(command_options(ctx)))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            _bare_flags(command, ctx)
        return command

    def format_help(self, ctx, formatter):
        _bare_flags(self, ctx)
        return super().format_help(ctx, formatter)


def _bare_flags(command, ctx) -> None:
    """Typer shows a flag's type in --help (``--json <bool>``), as if it took a value: an
    empty metavar shows none. Sub-groups' commands too (``axonnx hw ...``)."""
    for param in command.get_params(ctx) if ctx is not None else command.params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _bare_flags(sub, ctx)


def command_options(ctx) -> set[str]:
    """The option names of the sub-command ``ctx`` (the group's context) is running."""
    name = getattr(ctx, "invoked_subcommand", None)
    command = ctx.command.get_command(ctx, name) if name else None
    if command is None:
        return set()
    return {opt for param in command.params for opt in getattr(param, "opts", [])}


app = typer.Typer(
    name="axonnx",
    help="Approximate arithmetic (ROUP multipliers) in quantized ONNX DNNs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_ErrorBoundary,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def _print_version(value: bool) -> None:
    if value:
        from axonnx import __version__

        stdout.print(f"axonnx {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the axonnx version and exit.")] = False) -> None:
    """Approximate arithmetic (ROUP multipliers) in quantized ONNX DNNs."""


@contextmanager
def progress_bar(enabled: bool = True):
    """A rich progress bar on stderr (terminals only); yields ``callback(kind, advance,
    total)``."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=stderr, transient=True,
                  disable=not (enabled and stderr.is_terminal)) as bar:
        tasks: dict[str, int] = {}

        def callback(kind: str, advance: int, total: int | None) -> None:
            if kind not in tasks:
                tasks[kind] = bar.add_task(kind, total=total)
            elif total is not None:
                bar.reset(tasks[kind], total=total)
            if advance:
                bar.advance(tasks[kind], advance)

        yield callback


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def fail(message: str) -> None:
    """Print one actionable line and exit non-zero."""
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def main() -> None:
    """Entry point: library errors become one line; tracebacks only with AXONNX_DEBUG=1.
    Exit status: 0 on success, 1 on an error, 2 on a usage error, 130 on Ctrl-C."""
    try:
        # Outside standalone mode click returns (not raises) the code of a typer.Exit.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort as exc:
        if isinstance(exc.__cause__, EOFError):  # click turns any EOFError into an Abort
            _internal_error(exc.__cause__)
        stderr.print("aborted")
        sys.exit(130)
    except Exception as exc:
        # Usage errors (typer >= 0.26 vendors click: its exceptions derive from
        # typer.TyperException) print themselves and carry their exit status.
        if isinstance(exc, typer.TyperException) and hasattr(exc, "show"):
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        _internal_error(exc)


INTERNAL_ERROR = "internal error, please report"


def _internal_error(exc: BaseException) -> None:
    """The last resort: an exception no check caught is a bug of axonnx (bad input gets an
    AxonnxError), so it says so, with its type, and asks for a report."""
    if os.environ.get("AXONNX_DEBUG"):
        raise exc
    from rich.markup import escape

    message = escape(" ".join(str(exc).split())[:300])
    stderr.print(f"[bold red]error:[/] {INTERNAL_ERROR}: {type(exc).__name__}: {message} (rerun "
                 "with AXONNX_DEBUG=1 for the traceback)", highlight=False, soft_wrap=True)
    sys.exit(1)
