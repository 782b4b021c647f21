"""``docs/cli.md``: every command's ``--help``, generated so that it cannot drift
(``tests/test_docs.py`` compares). Regenerate with
``.venv/bin/python -P -m axonnx.cli.reference > docs/cli.md``."""

from __future__ import annotations

import os
import subprocess
import sys

# A fixed width and no colour: the same text on every machine.
_ENV = {"TERMINAL_WIDTH": "100", "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb",
        "_TYPER_FORCE_DISABLE_TERMINAL": "1"}


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of ``axonnx``, parents first, in name order."""
    import typer

    from axonnx.cli import app

    out: list[tuple[str, ...]] = []

    def walk(command, path: tuple[str, ...]) -> None:
        out.append(path)
        for name in sorted(getattr(command, "commands", {})):
            walk(command.commands[name], path + (name,))

    walk(typer.main.get_command(app), ())
    return out


def help_text(path: tuple[str, ...]) -> str:
    result = subprocess.run([sys.executable, "-P", "-m", "axonnx", *path, "--help"],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, **_ENV})
    lines = [line.rstrip() for line in result.stdout.replace("python -m axonnx", "axonnx")
             .splitlines()]
    return "\n".join(lines).strip("\n")


def render() -> str:
    parts = ["# axonnx command-line reference", "",
             "Generated from `--help` by `.venv/bin/python -P -m axonnx.cli.reference > "
             "docs/cli.md`; `tests/test_docs.py` fails when this page and the commands differ.", ""]
    for path in command_paths():
        parts += [f"## {' '.join(('axonnx',) + path)}", "", "```text", help_text(path), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())
