"""Pickled state is unpickled only when this user's axonnx signed it (axonnx.signed)."""

from __future__ import annotations

import pickle

import pytest

from axonnx import signed
from axonnx.analysis.explore import CHECKPOINT, ExploreConfig, prepare_out
from axonnx.errors import AxonnxError


class Planted:
    """Unpickling this creates a file: the harm a foreign pickle could do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AXONNX_CACHE", str(tmp_path / "cache"))


def test_round_trip_and_refusals(tmp_path):
    data = signed.dumps({"generation": 3})
    assert signed.loads(data, "state") == {"generation": 3}
    key = tmp_path / "cache" / "signing.key"
    assert key.stat().st_mode & 0o077 == 0  # the user's only
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    for bad in (tampered, pickle.dumps({"generation": 3}), b""):
        with pytest.raises(AxonnxError, match="not written by this user's axonnx"):
            signed.loads(bad, "state")


def test_explore_refuses_a_foreign_checkpoint_before_unpickling(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    planted = tmp_path / "planted"
    (out / CHECKPOINT).write_bytes(pickle.dumps(Planted(planted)))
    with pytest.raises(AxonnxError, match="delete it to start over"):
        prepare_out(out, ExploreConfig(approach="llam", library=("ROUP(0,0)", "ROUP_M")))
    assert not planted.exists()
    # Another user's key: the same refusal.
    (out / CHECKPOINT).write_bytes(signed.dumps({"format": 1}))
    (tmp_path / "cache" / "signing.key").write_bytes(b"k" * 32)
    with pytest.raises(AxonnxError, match="not written by this user's axonnx"):
        prepare_out(out, ExploreConfig(approach="llam", library=("ROUP(0,0)", "ROUP_M")))
