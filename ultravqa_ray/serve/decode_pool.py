"""Where a Scorer replica decodes: a pool of worker processes (the default) or of worker threads.

Decoding is CPU work, much of it Python (container and stream handling, sampling, colour
conversion). In threads it shares the replica's GIL with the asyncio loop that serves requests and
the thread that runs the model, so a busy replica cannot keep its cores busy: on the 2-core
development VM a replica decoding in threads used ~1.2 cores at saturation. Worker processes each
have their own interpreter; the frames come back pickled (the tiny model's 8 x 64 x 64 RGB frames
are 98 KB). ``bench/bench_serve.py`` measures both side by side.

Processes are started with ``spawn`` (a Ray worker has many threads; forking it is unsafe) and all
at once when the pool is made, so the first requests do not pay for interpreter start-up and the
decoder's imports.

A worker process that dies (killed for memory, or a crash inside a codec on a hostile file) breaks
the whole ``ProcessPoolExecutor``: every decode in flight fails with ``BrokenProcessPool``, and
which upload did it is unknown. The pool is replaced by a fresh one for new work, and each of those
decodes is tried again alone, in a process of its own: the uploads that were merely in flight
beside the culprit are decoded normally, and the culprit, dying alone, becomes an ``internal``
error naming it (never a crashed replica, never a lost message).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

from connectors.wire.errors import ErrorKind, ProcessingError
from ultravqa_ray.video import DecodeConfig, DecodedVideo, decode_uri, decode_video

log = logging.getLogger(__name__)

PoolKind = Literal["processes", "threads"]


def _ready() -> bool:
    """Run once in each new worker process: it has started and imported the decoder."""
    return True


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: leave when the replica is gone. A replica killed outright (``ray.kill``,
    the OOM killer) cannot shut its pool down, and its workers would wait for work forever."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _process_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent, initargs=(os.getpid(),),
    )  # fmt: skip


class DecodePool:
    """Decodes URIs with fixed decode settings, in ``workers`` processes or threads.

    ``decode_fn`` is what runs in the workers (``decode_uri``; tests swap in a function that
    crashes its process); it must be importable by name for processes.
    """

    def __init__(
        self,
        kind: PoolKind,
        workers: int | None,
        decode: DecodeConfig,
        storage_kwargs: dict[str, Any],
        *,
        decode_fn: Callable[..., DecodedVideo] = decode_uri,
    ) -> None:
        if kind not in ("processes", "threads"):
            raise ValueError(f"decode pool kind must be 'processes' or 'threads', not {kind!r}")
        self.kind = kind
        self.workers = workers or (1 if kind == "processes" else None)
        self._decode_fn = decode_fn
        self._decode = decode
        self._storage = storage_kwargs
        self._lock = threading.Lock()
        # re-runs after a crash wait here, not in the event loop's default executor (the model's)
        self._alone = ThreadPoolExecutor(self.workers or 1, thread_name_prefix="decode-alone")
        self._executor = self._new_executor()

    def _new_executor(self) -> Executor:
        if self.kind == "threads":
            return ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
        workers = self.workers or 1  # processes: always set in __init__
        executor = _process_pool(workers)
        # submitted together, these start every worker now (the pool adds one per task it cannot place)
        for started in [executor.submit(_ready) for _ in range(workers)]:
            started.result()
        return executor

    def _run_in(self, executor: Executor, uri: str, local_name: str | None = None) -> Future:
        if local_name is not None:  # a file of the replica's own (an HTTP upload): no allow-list
            return executor.submit(decode_video, uri, self._decode, name=local_name)
        return executor.submit(self._decode_fn, uri, self._decode, **self._storage)

    def _submit(self, uri: str, local_name: str | None = None) -> tuple[Executor, Future]:
        """Hand ``uri`` to the current pool; a pool found broken here is replaced and used."""
        with self._lock:
            try:
                return self._executor, self._run_in(self._executor, uri, local_name)
            except BrokenProcessPool:
                self._swap(self._executor)
                return self._executor, self._run_in(self._executor, uri, local_name)

    def _replace(self, broken: Executor) -> None:
        """Swap in a fresh process pool, once per broken one (many decodes see the same break)."""
        with self._lock:
            if self._executor is broken:
                self._swap(broken)

    def _swap(self, broken: Executor) -> None:  # holding self._lock
        log.warning("a decode worker process died; starting a fresh pool of %d", self.workers)
        broken.shutdown(wait=False, cancel_futures=True)
        self._executor = self._new_executor()

    def _decode_alone(self, uri: str, local_name: str | None = None) -> DecodedVideo:
        """Decode ``uri`` in a fresh process of its own (after a break): its death is its own."""
        with _process_pool(1) as solo:
            try:
                return self._run_in(solo, uri, local_name).result()
            except BrokenProcessPool:
                raise ProcessingError(
                    ErrorKind.INTERNAL,
                    f"{local_name or uri}: the decode worker process died while decoding this upload",
                ) from None

    async def decode(self, uri: str, *, local_name: str | None = None) -> DecodedVideo:
        """Frames of ``uri``; raises :class:`ProcessingError` only (no deadline: the caller sets one).

        ``local_name``: ``uri`` is a local file of the replica's own (an HTTP upload it spooled),
        decoded without the allow-list and called ``local_name`` in messages.
        """
        executor, future = self._submit(uri, local_name)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._replace(executor)
            return await asyncio.get_running_loop().run_in_executor(
                self._alone, self._decode_alone, uri, local_name
            )

    def decode_many(self, uris: Sequence[str]) -> list[DecodedVideo | ProcessingError]:
        """Decode ``uris`` concurrently and wait (the benchmark's plain loop): frames or the error, in order."""
        results: list[DecodedVideo | ProcessingError | None] = [None] * len(uris)
        for i, (executor, future) in enumerate([self._submit(uri) for uri in uris]):
            try:
                results[i] = future.result()
            except BrokenProcessPool:
                self._replace(executor)
                try:
                    results[i] = self._decode_alone(uris[i])
                except ProcessingError as exc:
                    results[i] = exc
            except ProcessingError as exc:
                results[i] = exc
        return results  # type: ignore[return-value]

    def close(self) -> None:
        with self._lock:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._alone.shutdown(wait=False, cancel_futures=True)
