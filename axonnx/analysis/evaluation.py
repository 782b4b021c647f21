"""Scoring plans: the metric's score of the transformed model on a data set, serially,
in local worker processes, or on a Dask cluster.

A :class:`Workload` is everything needed to score plans (the model's bytes, the data, the
metric with the exact model's reference outputs, the recovery settings and their
activation statistics); it is sent once to each worker, which keeps one
:class:`PlanEvaluator` for it. Each plan is transformed once and scored with one
onnxruntime session (``axonnx.evaluate.evaluate``), in memory. Results come back in
submission order, so a search is deterministic whatever the backend.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import tempfile
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx

from axonnx.errors import AxonnxError
from axonnx.recovery import canonical_recovery, recovery_flags
from axonnx.plan import Plan

@dataclass(frozen=True)
class Workload:
    """A model, a data set, a metric and recovery settings: picklable, sent to workers.

    ``metric`` is a metric name or a module-level callable (:mod:`axonnx.metrics`), so that
    every worker makes its own; ``reference`` holds the exact model's outputs on the data,
    computed once here, for the metrics that compare against them."""

    model_bytes: bytes = field(repr=False)
    data: object = field(repr=False)  # axonnx.data.Dataset
    metric: object = "top1"
    reference: dict | None = field(default=None, repr=False)
    recovery: str = "none"
    stats: object = field(default=None, repr=False)  # axonnx.recovery.ActivationStats
    threads: int | None = 1
    key: str = ""

    @classmethod
    def create(cls, model: onnx.ModelProto, data, *, metric=None, recovery: str = "none",
               stats=None, threads: int | None = 1) -> "Workload":
        from axonnx.data.load import as_dataset
        from axonnx.evaluate import Runner, resolve_metric
        from axonnx.metrics import make_metric

        recovery = canonical_recovery(recovery)
        tune, bias = recovery_flags(recovery)
        if (tune or bias) and stats is None:
            raise AxonnxError("recovery needs activation statistics from calibration data")
        data = as_dataset(data, model)
        metric = resolve_metric(metric, data, model)
        probe = make_metric(metric)
        if probe.needs_labels and not data.has_labels:
            raise AxonnxError(f"metric {probe.name} needs labels but {data.source} has none; "
                              "give labelled data or a label-free metric (agreement, snr, "
                              "cosine, iou)")
        reference = None
        if probe.needs_reference:  # the exact model's outputs, once
            reference = Runner(model, threads).outputs(data)
        model_bytes = model.SerializeToString()
        digest = hashlib.sha256(model_bytes)
        data.digest(digest)
        digest.update(probe.name.encode())
        digest.update(recovery.encode())
        if stats is not None and (tune or bias):
            for name, la in stats.layers.items():
                digest.update(name.encode())
                digest.update(la.taps.tobytes())
        return cls(model_bytes, data, metric, reference, recovery,
                   stats if (tune or bias) else None, threads, digest.hexdigest()[:16])

    @property
    def measure(self):
        """A fresh :class:`axonnx.metrics.Metric` for this workload's metric."""
        from axonnx.metrics import make_metric

        return make_metric(self.metric)

    @property
    def metric_info(self) -> dict:
        return self.measure.describe()

    def __len__(self) -> int:
        return len(self.data)


class PlanEvaluator:
    """Transforms plans and scores them on one workload."""

    def __init__(self, workload: Workload):
        self.workload = workload
        self.model = onnx.load_from_string(workload.model_bytes)
        self.recovery = None
        tune, bias = recovery_flags(workload.recovery)
        if tune or bias:
            from axonnx.recovery import Recovery

            self.recovery = Recovery(workload.stats, tune_weights=tune, correct_bias=bias)
        self._lock = threading.Lock()  # one Recovery cache, threads of a Dask worker

    def model_for(self, plan: Plan) -> onnx.ModelProto:
        from axonnx.transform import transform_model

        with self._lock:
            return transform_model(self.model, plan, recovery=self.recovery)

    def score(self, plan: Plan | None) -> float:
        """The metric's primary score of the model transformed by ``plan`` (``None``: the
        original model)."""
        model = self.model if plan is None else self.model_for(plan)
        return self.model_score(model)

    def model_score(self, model: onnx.ModelProto) -> float:
        from axonnx.evaluate import evaluate

        w = self.workload
        return evaluate(model, w.data, w.metric, reference=w.reference, threads=w.threads).score


# ---- workers ---------------------------------------------------------------------------------

_EVALUATORS: dict[str, PlanEvaluator] = {}
_EVALUATORS_LOCK = threading.Lock()


def _evaluator(workload: Workload) -> PlanEvaluator:
    with _EVALUATORS_LOCK:
        found = _EVALUATORS.get(workload.key)
        if found is None:
            if len(_EVALUATORS) >= 4:  # keep memory bounded in long-lived Dask workers
                _EVALUATORS.pop(next(iter(_EVALUATORS)))
            found = _EVALUATORS[workload.key] = PlanEvaluator(workload)
        return found


def score(plan_dict: dict | None, workload: Workload) -> float:
    """The score of one plan (a ``Plan.to_dict()``; ``None``: the untransformed model)."""
    plan = None if plan_dict is None else Plan.from_dict(plan_dict, source="candidate plan")
    return _evaluator(workload).score(plan)


def _score_from_file(key: str, path: str, plan_dict: dict | None) -> float:
    """In a worker process: the workload comes from a file written once by the parent."""
    with _EVALUATORS_LOCK:
        known = key in _EVALUATORS
    if not known:
        import pickle

        with open(path, "rb") as fh:
            workload = pickle.load(fh)
        _evaluator(workload)
    return _EVALUATORS[key].score(
        None if plan_dict is None else Plan.from_dict(plan_dict, source="candidate plan"))


def _init_process() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


class Backend:
    """Scores lists of plans; results in submission order."""

    name = "serial"

    def map(self, workload: Workload, plans: Sequence[Plan | None],
            done: Callable[[int], None] | None = None) -> list[float]:
        out = []
        for plan in plans:
            out.append(score(None if plan is None else plan.to_dict(), workload))
            if done:
                done(1)
        return out

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM until the block ends. A worker is spawned by writing its start-up
    data down a pipe; a signal that ends this process half-way through leaves the new worker
    reading a closed pipe, and it prints multiprocessing's EOFError traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda number, _frame: pending.append(number)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])


class ProcessBackend(Backend):
    """Local worker processes (spawned once). Each workload is written once to a temporary
    file, which a worker reads the first time it meets it."""

    name = "processes"

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = None
        self._tmp: Path | None = None
        self._files: dict[str, str] = {}

    def _file_for(self, workload: Workload) -> str:
        import pickle

        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="axonnx-workloads-"))
            # Also removed at exit when close() is never reached (an interrupted search).
            weakref.finalize(self, shutil.rmtree, self._tmp, ignore_errors=True)
        if workload.key not in self._files:
            path = self._tmp / f"{workload.key}.pkl"
            path.write_bytes(pickle.dumps(workload, protocol=pickle.HIGHEST_PROTOCOL))
            self._files[workload.key] = str(path)
        return self._files[workload.key]

    def _get_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_process)
        return self._pool

    def map(self, workload, plans, done=None):
        path = self._file_for(workload)
        pool = self._get_pool()
        with _signals_deferred():  # submitting spawns the workers
            futures = [pool.submit(_score_from_file, workload.key, path,
                                   None if p is None else p.to_dict()) for p in plans]
        out = []
        for f in futures:
            try:
                out.append(f.result())
            except AxonnxError:
                raise
            except Exception as exc:  # a worker died (BrokenProcessPool) or similar
                raise AxonnxError(f"a worker process failed: {type(exc).__name__}: {exc}") from None
            if done:
                done(1)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            self._files = {}


class DaskBackend(Backend):
    """A dask.distributed cluster: ``tcp://host:port`` (a running scheduler) or
    ``local:N`` (a LocalCluster of N workers; ``local:N:threads`` runs them as threads
    in this process)."""

    name = "dask"

    def __init__(self, address: str):
        local = address == "local" or address.startswith("local:")
        if local:  # checked before dask loads
            parts = address.split(":")
            try:
                n = int(parts[1]) if len(parts) > 1 and parts[1] else 2
            except ValueError:
                n = 0
            if n < 1 or len(parts) > 3 or (len(parts) == 3 and parts[2] != "threads"):
                raise AxonnxError(f"--dask {address!r}: use local:N (N >= 1 workers), "
                                  "local:N:threads, or tcp://host:port")
            check_workers(n, f"--dask {address}")
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise AxonnxError("--dask needs dask.distributed: pip install 'dask[distributed]'") from None
        self.address = address
        self._cluster = None
        if local:
            processes = not (len(parts) > 2 and parts[2] == "threads")
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                                         dashboard_address=None)
            self.client = Client(self._cluster)
        else:
            try:
                self.client = Client(address, timeout=20)
            except Exception as exc:  # bad addresses raise ValueError, unreachable ones OSError
                raise AxonnxError(f"cannot reach the Dask scheduler at {address!r}: {exc}; give "
                                  "tcp://host:port of a running scheduler, or local:N") from None
        self._scattered: dict[str, object] = {}

    def _workload_future(self, workload: Workload):
        if workload.key not in self._scattered:
            self._scattered[workload.key] = self.client.scatter(workload, broadcast=True)
        return self._scattered[workload.key]

    def map(self, workload, plans, done=None):
        from dask.distributed import as_completed

        wl = self._workload_future(workload)
        dicts = [None if p is None else p.to_dict() for p in plans]
        futures = [self.client.submit(score, d, wl, pure=False) for d in dicts]
        if done:
            for _ in as_completed(futures):
                done(1)
        try:
            return list(self.client.gather(futures))
        except AxonnxError:
            raise
        except Exception as exc:
            raise AxonnxError(f"a Dask task failed: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def worker_threads(backend: Backend) -> int | None:
    """Intra-op threads per scoring session: all cores when scoring in this process, one
    per worker when the backend runs several workers side by side."""
    return None if type(backend) is Backend else 1


def make_backend(workers: int | None = None, dask: str | None = None) -> Backend:
    if dask:
        return DaskBackend(dask)
    workers = default_workers() if workers is None else workers
    check_workers(workers, "--workers")
    return Backend() if workers == 1 else ProcessBackend(workers)


def check_workers(n: int, what: str) -> None:
    """1 .. MAX_WORKERS worker processes (axonnx.limits)."""
    from axonnx.limits import MAX_WORKERS

    if not 1 <= n <= MAX_WORKERS:
        raise AxonnxError(f"{what} asks for {n} workers; give 1 to {MAX_WORKERS} (4 per usable "
                          "CPU core of this machine)")


def default_workers() -> int:
    from axonnx.limits import usable_cpus

    return usable_cpus()
