"""How long work reports progress without drawing anything itself: a callback
``progress(kind, advance, total)`` that the CLI turns into a rich progress bar on stderr
(``axonnx.cli._app.progress_bar``). ``kind`` names the task ("eval model.onnx"), ``advance``
is how much was done since the last call, ``total`` the task's size when first (or newly)
known, else None. Library functions take ``progress=None`` for silence."""

from __future__ import annotations

from typing import Callable, Optional

Progress = Optional[Callable[[str, int, Optional[int]], None]]
