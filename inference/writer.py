"""The worker's write path on a thread of its own, so the next frame's inference overlaps it.

After a frame is inspected, everything that follows - NG image and mask PNG encoding and
writing, the DB insert, ``XACK``, the verdict publish - is one job per frame, run by
:class:`OrderedWriter` on one background thread, strictly in submission order. The order
inside a job is the worker's own (commit, then ack, then publish), so a stream entry is still
acknowledged only after its inspection is committed; only *which thread* runs it changes.

At most ``depth`` jobs wait behind the running one (back-pressure: inference never runs more
than ``depth + 1`` frames ahead of the log). The first job that raises stops the writer: the
jobs queued behind it are skipped (their entries stay pending in Redis and are read again),
and the exception is raised in the inference thread by the next :meth:`OrderedWriter.submit`
or :meth:`OrderedWriter.drain`, where the worker's usual error handling (back off, re-read its
pending entries) takes over. BaseExceptions (a simulated crash) travel the same way.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable

_STOP = object()


class OrderedWriter:
    """Runs submitted jobs in order on one daemon thread; errors surface in the caller."""

    def __init__(self, depth: int = 1, name: str = "inference-writer") -> None:
        """``depth``: jobs that may wait behind the running one (>= 1)."""
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._keys: set[Hashable] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not finished (queued or running)."""
        with self._lock:
            return len(self._keys)

    def keys(self) -> frozenset[Hashable]:
        """Keys (stream entry ids) of the jobs queued or running now."""
        with self._lock:
            return frozenset(self._keys)

    def holds(self, key: Hashable) -> bool:
        """Whether the job of ``key`` (a stream entry id) is queued or running."""
        with self._lock:
            return key in self._keys

    def submit(self, key: Hashable, job: Callable[[], object]) -> None:
        """Queue ``job`` (blocks while ``depth`` jobs wait); raises the exception of an
        earlier job instead, after the writer has gone idle."""
        self._raise_pending()
        with self._lock:
            self._keys.add(key)
        self._queue.put((key, job))

    def drain(self) -> None:
        """Wait until every submitted job has run (or was skipped); raise the first error."""
        self._queue.join()
        self._raise_pending()

    def close(self) -> None:
        """Finish the queued jobs and stop the thread (errors are kept, not raised)."""
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _raise_pending(self) -> None:
        if self._error is None:
            return
        self._queue.join()  # the jobs behind the failed one are skipped, not run
        with self._lock:
            error, self._error = self._error, None
        raise error

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                key, job = item  # type: ignore[misc]
                try:
                    if self._error is None:
                        job()
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self._error = exc
                finally:
                    with self._lock:
                        self._keys.discard(key)
            finally:
                self._queue.task_done()
