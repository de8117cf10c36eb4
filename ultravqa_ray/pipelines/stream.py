"""The Kafka bridge (``ultravqa-ray stream``): upload events in, score events or dead letters out.

A consumer group on the uploads topic feeds the Scorer deployment. Work in flight is bounded
(``max_in_flight``): when it is full the consumer is paused (it stays in the group, fetches
nothing) until answers come back, so a slow Scorer slows the bridge instead of filling its memory.
Records polled together go to the Scorer in chunks of up to ``records_per_call`` (one
``Scorer.score_many`` request each): Serve's per-request cost is paid per chunk, not per upload.
Answers are written as they come (score event -> scores topic, failure -> dead-letter topic with
the original bytes), and offsets are committed only after the producer acknowledged them, and only
up to the lowest record still open in each partition (:mod:`.commits`). So every input ends as
exactly one score event or dead letter, at least once (DESIGN.md section 6): a crash or a restart
re-delivers only what was not committed.

No record can stop a partition: an output that cannot be written as it is (larger than the
producer's limit, refused by the broker) is replaced by a dead letter carrying what fits
(:func:`.kafka_client.deliver`), and a dead letter carries at most ``dead_letter_max_original_bytes``
of the original. Only if even that fails (the broker or a topic is gone) does :meth:`Bridge.run`
raise :class:`.kafka_client.OutputLost` naming the partition and offset, with nothing of that batch
committed.

Infrastructure failures (a replica killed mid-request, Serve restarting, a timeout) are retried
with backoff up to ``max_attempts``; only then does the record become an ``internal`` dead letter.
More bridges in the same group share the partitions. :meth:`Bridge.run` returns when ``stop`` is
set (SIGTERM in the CLI): it stops polling, drains what is in flight for up to
``drain_timeout_s``, writes and commits it, and closes.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from connectors.kafka import KafkaSettings, Topics
from connectors.kafka.serde import dead_letter_for, decode_upload, encode_key
from connectors.kafka.sink import KafkaSink, OutgoingRecord
from connectors.kafka.source import ConsumedRecord, KafkaSource, next_offsets
from connectors.kafka.topics import check_topics
from connectors.kafka.transactions import check_transactions
from connectors.wire.errors import ErrorKind, ProcessingError
from connectors.wire.messages import UploadEvent
from ultravqa_ray.pipelines.commits import CommitTracker
from ultravqa_ray.pipelines.kafka_client import (
    FALLBACK_ORIGINAL_BYTES,
    KafkaClientConfig,
    Output,
    OutputLost,
    deliver,
    describe_failure,
)
from ultravqa_ray.pipelines.serve_client import ScorerClient, ScorerTargetConfig
from ultravqa_ray.serve.outcome import ScoreOutcome

log = logging.getLogger(__name__)


class StreamConfig(KafkaClientConfig):
    """Settings of one bridge process (``ultravqa-ray stream --config FILE``)."""

    topics: Topics = Field(default_factory=Topics, description="Input, output and dead-letter topic names.")
    group_id: str = Field("ultravqa-stream", min_length=1, description="Consumer group of all bridge replicas.")
    scorer: ScorerTargetConfig = Field(default_factory=ScorerTargetConfig, description="Where the Scorer is.")
    max_in_flight: int = Field(
        32, ge=1, le=4096, description="Records sent to the Scorer and not yet answered (back-pressure bound)."
    )
    records_per_call: int = Field(
        8, ge=1, le=256, description="Most uploads sent to the Scorer in one request (Scorer.score_many)."
    )
    poll_timeout_s: float = Field(0.5, gt=0, description="Longest wait for new records when idle.")
    max_attempts: int = Field(8, ge=1, description="Tries per record on infrastructure errors before 'internal'.")
    retry_backoff_s: float = Field(0.5, gt=0, description="First retry delay; doubles per try, capped at 5 s.")
    drain_timeout_s: float = Field(30.0, ge=0, description="On stop, how long to wait for records in flight.")
    delivery: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description="at_least_once: commit after the outputs are acknowledged (duplicates only of uncommitted "
        "records); exactly_once: outputs and offsets in one transaction (a broker with transactions only).",
    )
    transaction_check_topic: str = Field(
        "vqa.txn-check", min_length=1, description="exactly_once: topic of the start-up check that the broker hides aborted records."
    )
    transaction_check: bool = Field(
        True, description="exactly_once: run that check (false only for a broker already verified; never on Tansu)."
    )


@dataclass
class BridgeStats:
    consumed: int = 0
    scored: int = 0
    dead_lettered: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    written: int = 0
    replaced: int = 0  # outputs that could not be written as they were: their fallback dead letter was

    def count(self, kind: ErrorKind) -> None:
        self.dead_lettered[kind.value] = self.dead_lettered.get(kind.value, 0) + 1


class Bridge:
    """One bridge replica: a group consumer, a producer and a client of the Scorer."""

    def __init__(
        self,
        config: StreamConfig,
        client: ScorerClient,
        *,
        settings: KafkaSettings | None = None,
        metrics=None,
    ) -> None:
        self.config = config
        self._client = client
        self._settings = settings or config.kafka_settings()
        self._metrics = metrics  # ScoringMetrics or None
        self.stats = BridgeStats()
        self._source: KafkaSource | None = None
        self._abort = threading.Event()  # stop retrying: the drain deadline passed
        self._exactly_once = config.delivery == "exactly_once"
        self._held: dict[tuple[str, int, int], tuple[ConsumedRecord, ScoreOutcome]] = {}  # exactly_once
        self.last_loop = time.monotonic()

    # -- probes ---------------------------------------------------------------------------------

    def live(self) -> tuple[bool, str]:
        stalled = time.monotonic() - self.last_loop
        limit = max(30.0, 4 * self.config.poll_timeout_s)
        return (stalled < limit, f"loop stalled for {stalled:.0f}s" if stalled >= limit else "ok")

    def ready(self) -> tuple[bool, str]:
        source = self._source
        if source is None:
            return False, "consumer not started"
        if not source.assignment():
            return False, "no partitions assigned (joining the group, or more replicas than partitions)"
        return True, "ok"

    # -- the loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> BridgeStats:
        cfg = self.config
        probe = self._exactly_once and cfg.transaction_check
        names = [cfg.topics.uploads, cfg.topics.scores, cfg.topics.dead_letters]
        check_topics(self._settings, names + ([cfg.transaction_check_topic] if probe else []),
                     create=cfg.create_topics, partitions=cfg.topic_partitions)  # fmt: skip
        if probe:
            check_transactions(self._settings, cfg.transaction_check_topic)  # raises TransactionsUnsupported
        if not self._wait_for_scorer(stop):
            return self.stats
        try:
            return self._run(stop)
        finally:
            self._abort.set()  # pool threads stop retrying: nothing may call the Scorer after this

    def _run(self, stop: threading.Event) -> BridgeStats:
        cfg = self.config
        tracker = CommitTracker()
        pending: dict[Future, list[ConsumedRecord]] = {}  # one Scorer call -> the records it scores
        in_flight = 0
        paused = False
        with (
            KafkaSource(self._settings, [cfg.topics.uploads], cfg.group_id, max_poll_records=cfg.max_in_flight,
                        isolation_level="read_committed" if self._exactly_once else "read_uncommitted") as source,
            KafkaSink(self._settings, transactional_id=self._transactional_id()) as sink,
            _Pool(max_workers=cfg.max_in_flight, thread_name_prefix="score") as pool,
        ):
            self._source = source
            log.info("bridge %s: %s -> %s / %s", cfg.group_id, cfg.topics.uploads, cfg.topics.scores, cfg.topics.dead_letters)
            while not stop.is_set():
                self.last_loop = time.monotonic()
                room = cfg.max_in_flight - in_flight
                if room > 0 and paused:
                    source.resume()
                    paused = False
                elif room <= 0 and not paused:
                    source.pause()  # back-pressure: stay in the group, fetch nothing
                    paused = True
                records = source.poll(0.05 if pending else cfg.poll_timeout_s, max(room, 1)) if room > 0 else []
                if room <= 0:
                    source.poll(0.0, 1)  # keeps the group session moving while paused (returns nothing)
                done: list[tuple[ConsumedRecord, ScoreOutcome]] = []
                ready: list[tuple[ConsumedRecord, UploadEvent]] = []
                for record in records:
                    self.stats.consumed += 1
                    tracker.started(record)
                    try:
                        ready.append((record, decode_upload(record.value)))
                    except ProcessingError as exc:
                        done.append((record, ScoreOutcome.failed(exc)))
                for start in range(0, len(ready), cfg.records_per_call):
                    chunk = ready[start : start + cfg.records_per_call]
                    pending[pool.submit(self._score_chunk, [upload for _, upload in chunk])] = [r for r, _ in chunk]
                    in_flight += len(chunk)
                if pending:
                    finished, _ = wait(list(pending), timeout=0 if records or done else 0.2, return_when=FIRST_COMPLETED)
                    for future in finished:
                        chunk_records = pending.pop(future)
                        in_flight -= len(chunk_records)
                        done += zip(chunk_records, future.result(), strict=True)
                if done:
                    self._write(sink, source, tracker, done)
            self._drain(sink, source, tracker, pending)
            self._source = None
        log.info("bridge stopped: %s", self.stats)
        return self.stats

    def _wait_for_scorer(self, stop: threading.Event) -> bool:
        """Block until the Scorer answers (it may still be deploying); False when stopped first."""
        delay = cfg_delay = self.config.retry_backoff_s
        while not stop.is_set():
            self.last_loop = time.monotonic()
            try:
                self._client.ping()
                return True
            except Exception as exc:  # not deployed yet, or the cluster is not reachable yet
                log.warning("scorer not reachable (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, 10 * cfg_delay)
        return False

    def _drain(self, sink, source, tracker, pending) -> None:
        if not pending:
            return
        count = sum(len(records) for records in pending.values())
        log.info("draining %d records in flight (up to %.0fs)", count, self.config.drain_timeout_s)
        finished, unfinished = wait(list(pending), timeout=self.config.drain_timeout_s)
        self._abort.set()
        done = [pair for f in finished for pair in zip(pending.pop(f), f.result(), strict=True)]
        if done:
            self._write(sink, source, tracker, done)
        if unfinished:
            left = sum(len(pending[f]) for f in unfinished)
            log.warning("%d records left uncommitted; they will be re-delivered", left)

    def _score_chunk(self, uploads: list[UploadEvent]) -> list[ScoreOutcome]:
        """One answer per upload, in order; infrastructure errors retry the chunk (in a pool thread).

        A retried chunk is scored again as a whole; nothing of it was written yet, so no duplicate.
        """
        cfg = self.config
        delay = cfg.retry_backoff_s
        for attempt in range(1, cfg.max_attempts + 1):
            try:
                return self._client.score_many(uploads)
            except Exception as exc:  # a replica died, Serve is restarting, a timeout: try again
                if attempt == cfg.max_attempts or self._abort.is_set():
                    failed = ScoreOutcome(
                        error_kind=ErrorKind.INTERNAL,
                        error=f"scorer failed {attempt} time(s), last: {type(exc).__name__}: {exc}"[:2000],
                    )
                    return [failed] * len(uploads)
                self.stats.retries += 1
                log.warning("scoring %d upload(s) from %s failed (%s: %s); retry %d in %.1fs", len(uploads),
                            uploads[0].video_id, type(exc).__name__,
                            str(exc).splitlines()[0][:200] if str(exc) else "", attempt, delay)  # fmt: skip
                if self._abort.wait(delay):
                    continue
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def _transactional_id(self) -> str | None:
        """exactly_once: one id per bridge process (KIP-447: the group metadata fences zombies)."""
        if not self._exactly_once:
            return None
        import os
        import socket

        return f"{self.config.group_id}-{socket.gethostname()}-{os.getpid()}"

    def _write(self, sink: KafkaSink, source: KafkaSource, tracker: CommitTracker, done) -> None:
        if self._exactly_once:
            self._write_transaction(sink, source, tracker, done)
        else:
            self._write_acked(sink, source, tracker, done)

    def _write_transaction(self, sink: KafkaSink, source: KafkaSource, tracker: CommitTracker, done) -> None:
        """exactly_once: hold answers until nothing below them is open, then write their outputs and
        commit their offsets in one transaction. A failure aborts it (its outputs stay invisible to
        read_committed consumers) and stops the bridge; the records are read again."""
        for record, outcome in done:
            self._held[(record.topic, record.partition, record.offset)] = (record, outcome)
        tracker.finished(record for record, _ in done)
        ready = tracker.take_ready()
        if not ready:
            return
        pairs = [self._held.pop((r.topic, r.partition, r.offset)) for r in ready]
        sink.begin()
        try:
            replaced = set(deliver(sink, [self._output(r, o) for r, o in pairs]))
            sink.send_offsets(next_offsets(ready), source.group_metadata())
            sink.commit()
        except Exception as exc:
            try:
                sink.abort()
            except Exception:  # the producer may be fenced or closed: its transaction is aborted anyway
                log.warning("abort failed", exc_info=True)
            first = ready[0]
            raise OutputLost(
                f"transaction for {len(ready)} record(s) from {first.topic}[{first.partition}]@{first.offset} "
                f"aborted: {describe_failure(exc)}"
            ) from exc
        self._count(pairs, replaced)
        assigned = source.assignment()
        tracker.forget(assigned)
        self._held = {k: v for k, v in self._held.items() if (k[0], k[1]) in assigned}

    def _write_acked(self, sink: KafkaSink, source: KafkaSource, tracker: CommitTracker, done) -> None:
        """Write the answers (each replaced by its fallback if it cannot be written), then commit."""
        outputs = [self._output(record, outcome) for record, outcome in done]
        replaced = set(deliver(sink, outputs))  # raises OutputLost: nothing committed, the caller stops
        self._count(done, replaced)
        tracker.finished(record for record, _ in done)
        commit = tracker.committable()
        if commit:
            try:
                source.commit(commit)
            except Exception as exc:  # a rebalance moved the partition: its new owner re-reads
                log.warning("commit failed (%s); those records will be re-delivered", exc)
            tracker.forget(source.assignment())

    def _count(self, done, replaced: set[int]) -> None:
        for i, (_, outcome) in enumerate(done):
            if i in replaced:
                self.stats.replaced += 1
            if outcome.ok and i not in replaced:
                assert outcome.event is not None
                self.stats.scored += 1
                if self._metrics is not None:
                    self._metrics.record_scored(outcome.event.timings_ms.total)
            else:
                kind = outcome.error_kind if not outcome.ok else ErrorKind.INTERNAL
                assert kind is not None
                self.stats.count(kind)
                if self._metrics is not None:
                    self._metrics.record_failed(kind)
        self.stats.written += len(done)

    def _output(self, record: ConsumedRecord, outcome: ScoreOutcome) -> Output:
        """The record to write for one answer, and its fallback dead letter."""
        topics, cap = self.config.topics, self.config.dead_letter_max_original_bytes
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        kind = outcome.error_kind or ErrorKind.INTERNAL
        reason = outcome.error or kind.value

        def fallback(exc: BaseException) -> OutgoingRecord:
            if outcome.ok:
                why, fall_kind = f"score event could not be written ({describe_failure(exc)})", ErrorKind.INTERNAL
            else:
                why, fall_kind = f"{reason} [dead letter cut: {describe_failure(exc)}]", kind
            letter = dead_letter_for(record, fall_kind, why, max_original_bytes=min(cap, FALLBACK_ORIGINAL_BYTES))
            return OutgoingRecord(topics.dead_letters, record.key, letter.to_bytes())

        try:
            if outcome.ok:
                assert outcome.event is not None
                value = outcome.event.to_bytes()
                return Output(OutgoingRecord(topics.scores, encode_key(outcome.event.video_id), value), where, fallback)
            letter = dead_letter_for(record, kind, reason, max_original_bytes=cap)
            return Output(OutgoingRecord(topics.dead_letters, record.key, letter.to_bytes()), where, fallback)
        except Exception as exc:  # serialisation failed: write the fallback in its place
            return Output(fallback(exc), where, fallback)


class _Pool(ThreadPoolExecutor):
    """The Scorer-call pool: on an error exit it does not wait for calls in flight (they stop
    retrying when the bridge's abort event is set) and drops queued ones."""

    def __exit__(self, exc_type, exc, tb):
        self.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)
        return False
