"""The stall watchdog of a training run: no progress for ``stall_timeout_s`` fails the run, naming the stage.

A run can wait forever without an error: workers that Ray cannot schedule, a Ray Data pipeline that
never gets a CPU (``backpressured: ResourceBudget``), a collective that a dead peer never joins.
:class:`Watchdog` runs beside the driver's blocking call. Progress is

- a beat from a worker (:class:`ProgressBoard`, a zero-CPU actor the loop's session calls at every
  stage: loading the model, waiting for data, a training step, a checkpoint), or
- on the driver, a change of a probe (the decode stage: files appearing in the frame cache) or a
  new driver stage.

When nothing moved for the timeout it interrupts the driver's wait (``KeyboardInterrupt`` in the
main thread) and the ``with`` block raises :class:`StallError` naming the stage that stalled; the
driver's exit then tears the run down (its Ray Train controller and workers are owned by it).
"""

from __future__ import annotations

import _thread
import logging
import signal
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

log = logging.getLogger(__name__)
FINISHED = "finished"


class StallError(RuntimeError):
    """A stage made no progress for the configured time; the message names it."""


class ProgressBoard:
    """Last stage of each worker rank and when it began, by the board's own clock (no skew)."""

    def __init__(self) -> None:
        self._beats: dict[int, tuple[float, str]] = {}

    def beat(self, rank: int, stage: str) -> None:
        self._beats[rank] = (time.monotonic(), stage)

    def ages(self) -> dict[int, tuple[float, str]]:
        """rank -> (seconds since its last beat, its stage)."""
        now = time.monotonic()
        return {rank: (now - t, stage) for rank, (t, stage) in self._beats.items()}


def start_board():
    """A :class:`ProgressBoard` actor (zero CPU: it must never compete with the run for resources)."""
    import ray

    return ray.remote(num_cpus=0, max_restarts=0)(ProgressBoard).remote()


class Watchdog:
    """``with Watchdog(timeout, "train sft") as dog: dog.stage("...", probe=...); blocking_call()``."""

    def __init__(self, timeout_s: float | None, what: str, board: Any = None, poll_s: float | None = None) -> None:
        self.timeout_s, self.what, self.board = timeout_s, what, board
        self.poll_s = poll_s if poll_s is not None else min(5.0, (timeout_s or 20.0) / 4)
        self.fired: str | None = None
        self._stage = "starting"
        self._probe: Callable[[], Hashable] | None = None
        self._signature: Hashable = None
        self._last = self._stage_started = time.monotonic()
        self._worker_stage: tuple[float, str] | None = None  # (when its rank last beat, "stage (rank r)")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_sigint: Any = None  # SIGINT's handler before __enter__, put back by __exit__

    def stage(self, name: str, probe: Callable[[], Hashable] | None = None) -> None:
        """The driver enters stage ``name``; ``probe()`` changing value counts as progress."""
        self._stage, self._probe = name, probe
        self._signature = probe() if probe else None
        self._last = self._stage_started = time.monotonic()

    def __enter__(self) -> Watchdog:
        if self.timeout_s is not None:
            if threading.current_thread() is threading.main_thread():
                # The stall interrupts the blocking call through interrupt_main(), i.e. SIGINT's handler:
                # make sure it is the one that raises KeyboardInterrupt, whatever the process set before.
                self._saved_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
            self._thread = threading.Thread(target=self._watch, name="stall-watchdog", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._saved_sigint is not None:
            signal.signal(signal.SIGINT, self._saved_sigint)
            self._saved_sigint = None
        if self.fired is not None:
            raise StallError(self.fired) from exc

    def _idle(self) -> tuple[float, str]:
        """(seconds without progress, the stage that is stuck). A board that does not answer
        counts as no progress: the watchdog still fires on what it last heard."""
        now = time.monotonic()
        if self._probe is not None:
            signature = self._probe()
            if signature != self._signature:
                self._signature, self._last = signature, now
        if self.board is not None:
            import ray

            try:
                ages = ray.get(self.board.ages.remote(), timeout=10)
            except Exception as exc:
                log.debug("watchdog: progress board did not answer: %s", exc)
                ages = {}
            if ages:
                self._last = max(self._last, now - min(age for age, _ in ages.values()))
            working = {rank: v for rank, v in ages.items() if v[1] != FINISHED}
            if working:  # the rank that has waited longest names the stage
                rank, (age, stage) = max(working.items(), key=lambda item: item[1][0])
                self._worker_stage = (now - age, f"{stage} (rank {rank})")
        stage = self._stage
        if self._worker_stage is not None and self._worker_stage[0] >= self._stage_started:
            stage = self._worker_stage[1]
        return now - self._last, stage

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                idle, stage = self._idle()
            except Exception as exc:  # a failing probe must not kill the run: report and keep watching
                log.debug("watchdog probe failed: %s", exc)
                continue
            if self.timeout_s is not None and idle > self.timeout_s:
                self.fired = (
                    f"{self.what}: stage '{stage}' made no progress for {idle:.0f} s "
                    f"(stall_timeout_s={self.timeout_s:g})"
                )
                log.error("%s", self.fired)
                _thread.interrupt_main()
                return
