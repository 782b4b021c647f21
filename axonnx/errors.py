"""The one exception type the CLI turns into a one-line message."""

from __future__ import annotations


class AxonnxError(Exception):
    """A user-facing error: the message names the problem and the fix.

    ``options`` are further fixes that are command-line options, ``{"--sample": "use the
    packaged 1,000-image sample"}``: the library cannot know which command runs it, so the
    CLI's error boundary offers only the options the running command has, and Python users
    read them in the message after "with the command line:"."""

    def __init__(self, message: str, options: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.options = dict(options or {})

    def render(self, available: set[str] | None = None) -> str:
        """The message, with the option fixes in ``available`` (all when None)."""
        fixes = [f"{text} ({name})" for name, text in self.options.items()
                 if available is None or name in available]
        return self.message + ("; or " + "; or ".join(fixes) if fixes else "")

    def __str__(self) -> str:
        return self.render()
