"""The CIFAR-10 loader: search order, download (from a local server), md5 checks, sample."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from axonnx.data import cifar10
from axonnx.data.cifar10 import BATCH_DIR, CLASSES, load_sample, load_split
from axonnx.errors import AxonnxError

N_FAKE = 20  # images per fake batch


def _fake_batch(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"fake",
        b"labels": [int(v) for v in rng.integers(0, 10, N_FAKE)],
        b"data": rng.integers(0, 256, (N_FAKE, 3072), dtype=np.uint8),
        b"filenames": [b"f%d.png" % i for i in range(N_FAKE)],
    }
    return pickle.dumps(batch, protocol=2)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Tiny fake batches, their tarball, and the md5 tables patched to match them."""
    batches = {name: _fake_batch(i) for i, name in enumerate(cifar10.BATCH_MD5)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, blob in batches.items():
            info = tarfile.TarInfo(f"{BATCH_DIR}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        readme = b"not a batch"
        info = tarfile.TarInfo(f"{BATCH_DIR}/readme.html")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    served = tmp_path / "served"
    served.mkdir()
    tarball = served / cifar10.TARBALL_NAME
    tarball.write_bytes(buf.getvalue())
    monkeypatch.setattr(cifar10, "BATCH_MD5",
                        {n: hashlib.md5(b).hexdigest() for n, b in batches.items()})
    monkeypatch.setattr(cifar10, "TARBALL_MD5", hashlib.md5(buf.getvalue()).hexdigest())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AXONNX_DATA", raising=False)
    return {"batches": batches, "served": served, "tmp": tmp_path}


@pytest.fixture
def server(fake):
    """An HTTP server on 127.0.0.1 serving the fake tarball; yields its URL."""
    handler = functools.partial(_QuietHandler, directory=str(fake["served"]))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    httpd.requests = []
    yield httpd, f"http://{host}:{port}/{cifar10.TARBALL_NAME}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        self.server.requests.append(self.path)


def _expected(blob: bytes):
    batch = pickle.loads(blob, encoding="bytes")
    return batch[b"data"].reshape(-1, 3, 32, 32), np.asarray(batch[b"labels"])


def test_download_from_local_server_verifies_and_unpacks(fake, server):
    httpd, url = server
    split = load_split("test", download=True, url=url, progress=False)
    images, labels = _expected(fake["batches"]["test_batch"])
    assert split.images.dtype == np.uint8 and split.images.shape == (N_FAKE, 3, 32, 32)
    np.testing.assert_array_equal(split.images, images)
    np.testing.assert_array_equal(split.labels, labels)
    target = cifar10.cache_dir() / BATCH_DIR
    assert {p.name for p in target.iterdir()} == {*cifar10.BATCH_MD5, "readme.html"}
    assert not [p for p in cifar10.cache_dir().iterdir() if p.name != BATCH_DIR]  # no leftovers
    assert httpd.requests == [f"/{cifar10.TARBALL_NAME}"]
    train = load_split("train", download=True, url=url, progress=False)  # cached: no request
    assert len(train) == 5 * N_FAKE and len(httpd.requests) == 1


def test_download_into_explicit_dir(fake, server):
    _, url = server
    target = fake["tmp"] / "mydata"
    split = load_split("test", target, download=True, url=url, progress=False)
    assert len(split) == N_FAKE and (target / BATCH_DIR / "test_batch").is_file()
    assert not (cifar10.cache_dir() / BATCH_DIR).exists()


def test_download_with_wrong_md5_keeps_nothing(fake, server, monkeypatch):
    _, url = server
    monkeypatch.setattr(cifar10, "TARBALL_MD5", "0" * 32)
    with pytest.raises(AxonnxError, match="corrupt CIFAR-10 download"):
        load_split("test", download=True, url=url, progress=False)
    assert not cifar10.cache_dir().exists() or not any(cifar10.cache_dir().iterdir())


def test_download_failure_says_where_to_put_the_files(fake):
    url = "http://127.0.0.1:9/nothing-here.tar.gz"  # discard port: connection refused
    with pytest.raises(AxonnxError, match="could not download CIFAR-10") as info:
        load_split("test", download=True, url=url, progress=False)
    assert str(cifar10.cache_dir()) in str(info.value)


def test_missing_data_error_names_the_place(fake):
    with pytest.raises(AxonnxError) as info:
        load_split("test")
    message = str(info.value)
    assert str(cifar10.cache_dir() / BATCH_DIR) in message and "AXONNX_DATA" in message
    assert "\n" not in message
    explicit = fake["tmp"] / "empty"
    explicit.mkdir()
    with pytest.raises(AxonnxError, match=str(explicit / BATCH_DIR)):
        load_split("test", explicit)


def _write_batches(fake, root: Path) -> Path:
    folder = root / BATCH_DIR
    folder.mkdir(parents=True)
    for name, blob in fake["batches"].items():
        (folder / name).write_bytes(blob)
    return folder


def test_env_var_and_explicit_dir(fake, monkeypatch):
    folder = _write_batches(fake, fake["tmp"] / "env")
    monkeypatch.setenv("AXONNX_DATA", str(fake["tmp"] / "env"))
    assert len(load_split("test")) == N_FAKE
    assert len(load_split("test", folder)) == N_FAKE  # the batch folder itself works too


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_batch_is_named_and_never_unpickled(fake, monkeypatch, damage):
    folder = _write_batches(fake, fake["tmp"] / "data")
    path = folder / "test_batch"
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2] if damage == "truncate"
                     else blob[:100] + bytes([blob[100] ^ 1]) + blob[101:])

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a corrupt batch was unpickled")

    monkeypatch.setattr(cifar10.pickle, "load", no_unpickling)
    with pytest.raises(AxonnxError) as info:
        load_split("test", fake["tmp"] / "data")
    message = str(info.value)
    assert message.startswith(f"corrupt CIFAR-10 batch {path}") and "\n" not in message


def test_missing_batch_is_named(fake):
    folder = _write_batches(fake, fake["tmp"] / "data")
    (folder / "data_batch_3").unlink()
    with pytest.raises(AxonnxError, match="missing CIFAR-10 batch .*data_batch_3"):
        load_split("train", folder)


def test_sample_is_balanced_and_in_test_batch_order():
    sample = load_sample()
    assert sample.images.shape == (1000, 3, 32, 32) and sample.images.dtype == np.uint8
    assert sample.labels.dtype == np.int64
    assert np.bincount(sample.labels, minlength=10).tolist() == [100] * len(CLASSES)
    with np.load(cifar10.sample_path()) as data:
        indices = data["indices"]
        assert "test_batch" in str(data["provenance"])
    assert np.all(np.diff(indices) > 0) and indices.max() < 10000


def _shared_data() -> Path | None:
    value = os.environ.get("AXONNX_DATA")
    if not value or not (Path(value) / BATCH_DIR / "test_batch").is_file():
        return None
    return Path(value)


needs_data = pytest.mark.skipif(
    _shared_data() is None,
    reason="needs the official CIFAR-10 batches: set AXONNX_DATA to a folder holding "
           "cifar-10-batches-py/ (e.g. AXONNX_DATA=../shared/data)",
)


@needs_data
def test_sample_matches_the_official_test_batch():
    test = load_split("test", _shared_data(), progress=False)
    assert len(test) == 10000 and np.bincount(test.labels).tolist() == [1000] * 10
    sample = load_sample()
    with np.load(cifar10.sample_path()) as data:
        indices = data["indices"]
    expected = np.sort(np.concatenate(
        [np.flatnonzero(test.labels == c)[:100] for c in range(10)]))
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(sample.images, test.images[indices])
    np.testing.assert_array_equal(sample.labels, test.labels[indices])
