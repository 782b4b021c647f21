"""Pickled state that only this user's axonnx wrote gets unpickled.

Unpickling runs code, so a checkpoint or cache file copied from someone else (a shared
results folder, a downloaded study) must not be loaded blindly. Every pickle axonnx writes
carries an HMAC-SHA256 under a key kept in the user's cache folder (created on first use,
readable by the user only); a file without a valid tag is refused before unpickling.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
from pathlib import Path

from axonnx.errors import AxonnxError

MAGIC = b"axonnx-signed-pickle/1\n"
_TAG = hashlib.sha256().digest_size


def cache_root() -> Path:
    """axonnx's cache folder: ``$AXONNX_CACHE``, else ``$XDG_CACHE_HOME/axonnx`` or
    ``~/.cache/axonnx``."""
    root = os.environ.get("AXONNX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "axonnx")
    return Path(root)


def _key() -> bytes:
    path = cache_root() / "signing.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # O_EXCL: two processes creating it at once agree on the first one's key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    except FileExistsError:
        pass
    return path.read_bytes()


def dumps(obj) -> bytes:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return MAGIC + hmac.new(_key(), body, hashlib.sha256).digest() + body


def loads(data: bytes, what: str):
    """Unpickle ``data`` if this user's axonnx signed it; else a one-line error naming
    ``what`` (e.g. the file)."""
    head, tag, body = data[:len(MAGIC)], data[len(MAGIC):len(MAGIC) + _TAG], data[len(MAGIC) + _TAG:]
    if head != MAGIC or not hmac.compare_digest(tag, hmac.new(_key(), body, hashlib.sha256).digest()):
        raise AxonnxError(f"{what} was not written by this user's axonnx (or was changed), so "
                          "it is not unpickled; delete it to start over")
    return pickle.loads(body)
