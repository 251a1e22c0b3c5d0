"""Micro-batching for the search server: one thread owns the models and runs queued work in
batches, so concurrent queries share a forward pass (and a mask-model run, and a faiss search).

Requests decode their uploads on their own threads, then :meth:`MicroBatcher.submit` a job and
wait for its result. The model thread takes the first queued job and, while other requests are
still decoding (they announced themselves with :meth:`MicroBatcher.arriving`), waits up to the
batch window for them; jobs sharing a key then run as one call. A lone query waits for nobody:
with no request decoding it runs at once. Under load, jobs that queue while a batch runs form
the next batch without any window.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

BatchRun = Callable[[list[Any]], list[Any]]  # payloads -> one result per payload, in order


@dataclass
class _Job:
    key: Hashable
    run: BatchRun
    payload: Any
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """One worker thread running submitted jobs in batches of up to ``max_batch``.

    ``window_s``: how long the worker waits for announced requests before running a batch;
    ``name``: the worker thread's name. The thread starts with the first job and stops at
    :meth:`close` (a later job starts a new one)."""

    def __init__(self, window_s: float = 0.005, max_batch: int = 16, name: str = "bgbias-model"):
        if max_batch < 1 or window_s < 0:
            raise ValueError("max_batch must be >= 1 and window_s >= 0")
        self.window_s = window_s
        self.max_batch = max_batch
        self.name = name
        self._jobs: deque[_Job] = deque()
        self._announced = 0
        self._closing = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def queued(self) -> int:
        """Jobs waiting for the worker (not counting the batch it runs)."""
        with self._changed:
            return len(self._jobs)

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Announces a request that will submit soon (it is decoding): a batch forming now
        waits for it, up to the window."""
        with self._changed:
            self._announced += 1
        try:
            yield
        finally:
            with self._changed:
                self._announced -= 1
                self._changed.notify_all()

    def submit(self, key: Hashable, run: BatchRun, payload: Any) -> Future:
        """Queue ``payload``; jobs of one batch with equal ``key`` run as ``run(payloads)``.
        The future holds this payload's result, or the exception ``run`` raised."""
        job = _Job(key, run, payload)
        with self._changed:
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()
            self._jobs.append(job)
            self._changed.notify_all()
        return job.future

    def close(self, timeout: float | None = 30) -> None:
        """Runs what is queued, then stops the worker thread."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _next_batch(self) -> list[_Job]:
        with self._changed:
            while not self._jobs and not self._closing:
                self._changed.wait()
            if not self._jobs:
                return []
            deadline = time.monotonic() + self.window_s
            while self._announced and len(self._jobs) < self.max_batch and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            count = min(len(self._jobs), self.max_batch)
            return [self._jobs.popleft() for _ in range(count)]

    def _work(self) -> None:
        while batch := self._next_batch():
            groups: dict[Hashable, list[_Job]] = {}
            for job in batch:
                # a job whose request went away (its future cancelled) is dropped; the others
                # can no longer be cancelled, so setting their results cannot fail
                if job.future.set_running_or_notify_cancel():
                    groups.setdefault(job.key, []).append(job)
            for jobs in groups.values():
                _run_group(jobs)


def _run_group(jobs: list[_Job]) -> None:
    """One call for the group; a failure of the call fails its jobs, never the worker."""
    try:
        results = jobs[0].run([job.payload for job in jobs])
        if len(results) != len(jobs):
            raise RuntimeError(f"a batch of {len(jobs)} gave {len(results)} results")
    except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests
        for job in jobs:
            job.future.set_exception(exc)
        return
    for job, result in zip(jobs, results, strict=True):
        job.future.set_result(result)
