"""The moderation consumer (``ultravqa-ray moderate``): score events in, moderation events out.

Rules come from a YAML file of thresholds per dimension, e.g.::

    default_action: allow
    rules:
      - name: blurry
        action: block
        when: {clarity_quality: {below: 1.5}}
      - name: thin-content
        action: review
        when: {content_quality: {below: 2.5}}

A rule fires when every condition in its ``when`` holds (``below``: score < value; ``at_least``:
score >= value) on the event's expected scores; a condition on a dimension the event did not score
does not hold. Of the rules that fire, the most severe action wins (block > review > allow), the
first written among equals; when none fires the event gets ``default_action`` and the rule
``default``. The ``rule`` of a moderation event is the rule as written: ``blurry: block when
clarity_quality < 1.5``.

The file is re-read when its modification time changes (checked at most every
``reload_interval_s``), so rules change without a restart; a file that no longer parses is
refused with an error in the log and the previous rules stay in force.

Delivery is the bridge's: manual commits after the moderation events are acknowledged; a record
that is not a valid score event becomes a dead letter naming the problem (carrying at most
``dead_letter_max_original_bytes`` of it), and an output that cannot be written is replaced by its
fallback dead letter (:func:`.kafka_client.deliver`), so no record can stop a partition.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from connectors.kafka import KafkaSettings, Topics
from connectors.kafka.serde import dead_letter_for, encode_key
from connectors.kafka.sink import KafkaSink, OutgoingRecord
from connectors.kafka.source import ConsumedRecord, KafkaSource
from connectors.kafka.topics import check_topics
from connectors.wire.dimensions import Dimension
from connectors.wire.errors import ErrorKind, describe_validation_error
from connectors.wire.messages import ModerationEvent, ScoreEvent
from ultravqa_ray.pipelines.kafka_client import (
    FALLBACK_ORIGINAL_BYTES,
    KafkaClientConfig,
    Output,
    deliver,
    describe_failure,
)

log = logging.getLogger(__name__)

Action = Literal["allow", "review", "block"]
SEVERITY = {"allow": 0, "review": 1, "block": 2}


class Condition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    below: float | None = Field(None, description="Holds when the score is strictly below this.")
    at_least: float | None = Field(None, description="Holds when the score is at least this.")

    @model_validator(mode="after")
    def _one(self) -> Condition:
        if self.below is None and self.at_least is None:
            raise ValueError("a condition needs 'below' or 'at_least'")
        return self

    def holds(self, score: float) -> bool:
        return (self.below is None or score < self.below) and (self.at_least is None or score >= self.at_least)

    def describe(self, dimension: str) -> str:
        parts = ([f"{dimension} < {self.below:g}"] if self.below is not None else []) + (
            [f"{dimension} >= {self.at_least:g}"] if self.at_least is not None else []
        )
        return " and ".join(parts)


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Name shown in moderation events.")
    action: Action
    when: dict[Dimension, Condition] = Field(min_length=1, description="All must hold for the rule to fire.")

    def fires(self, scores: dict[Dimension, float]) -> bool:
        return all(d in scores and c.holds(scores[d]) for d, c in self.when.items())

    def describe(self) -> str:
        return f"{self.name}: {self.action} when " + " and ".join(c.describe(d.value) for d, c in self.when.items())


class RuleSet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default_action: Action = Field("allow", description="Action when no rule fires.")
    rules: list[Rule] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> RuleSet:
        """Parse a rules file; raises ``ValueError`` naming the problem."""
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
            return cls.model_validate(data)
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read moderation rules {path}: {exc}") from exc
        except ValidationError as exc:
            raise ValueError(f"invalid moderation rules {path}: {describe_validation_error(exc)}") from None

    def decide(self, event: ScoreEvent) -> ModerationEvent:
        scores = {d: s.score for d, s in event.scores.items()}
        fired = [r for r in self.rules if r.fires(scores)]
        if fired:
            worst = max(fired, key=lambda r: SEVERITY[r.action])  # max keeps the first among equals
            action, rule = worst.action, worst.describe()
        else:
            action, rule = self.default_action, "default"
        return ModerationEvent(video_id=event.video_id, model=event.model, action=action, rule=rule, scores=scores)


class ReloadingRules:
    """The rules of a file, re-read when its modification time changes."""

    def __init__(self, path: Path, reload_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self._interval = reload_interval_s
        self._mtime = self.path.stat().st_mtime_ns
        self.rules = RuleSet.load(self.path)  # a bad file at start is an error, not a warning
        self._checked = time.monotonic()

    def current(self) -> RuleSet:
        now = time.monotonic()
        if now - self._checked >= self._interval:
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime_ns
            except OSError as exc:
                log.error("moderation rules %s unreadable (%s); keeping the previous rules", self.path, exc)
                return self.rules
            if mtime != self._mtime:
                self._mtime = mtime
                try:
                    self.rules = RuleSet.load(self.path)
                    log.info("moderation rules reloaded from %s (%d rules)", self.path, len(self.rules.rules))
                except ValueError as exc:
                    log.error("%s; keeping the previous rules", exc)
        return self.rules


class ModerationConfig(KafkaClientConfig):
    """Settings of one moderation consumer (``ultravqa-ray moderate --rules FILE --config FILE``)."""

    topics: Topics = Field(default_factory=Topics, description="Scores in, moderation and dead letters out.")
    group_id: str = Field("ultravqa-moderate", min_length=1, description="Consumer group of the moderators.")
    max_batch: int = Field(64, ge=1, description="Score events handled per poll.")
    poll_timeout_s: float = Field(0.5, gt=0, description="Longest wait for new records when idle.")
    reload_interval_s: float = Field(1.0, gt=0, description="How often the rules file's mtime is checked.")


class Moderator:
    """The consumer loop; :meth:`run` returns when ``stop`` is set."""

    def __init__(self, config: ModerationConfig, rules: ReloadingRules, *, settings: KafkaSettings | None = None):
        self.config = config
        self.rules = rules
        self._settings = settings or config.kafka_settings()
        self._source: KafkaSource | None = None
        self.last_loop = time.monotonic()
        self.actions: dict[str, int] = {}

    def live(self) -> tuple[bool, str]:
        stalled = time.monotonic() - self.last_loop
        return (stalled < 30, "ok" if stalled < 30 else f"loop stalled for {stalled:.0f}s")

    def ready(self) -> tuple[bool, str]:
        source = self._source
        if source is None or not source.assignment():
            return False, "no partitions assigned yet"
        return True, "ok"

    def run(self, stop: threading.Event) -> dict[str, int]:
        cfg = self.config
        check_topics(self._settings, [cfg.topics.scores, cfg.topics.moderation, cfg.topics.dead_letters],
                     create=cfg.create_topics, partitions=cfg.topic_partitions)  # fmt: skip
        with (
            KafkaSource(self._settings, [cfg.topics.scores], cfg.group_id, max_poll_records=cfg.max_batch) as source,
            KafkaSink(self._settings) as sink,
        ):
            self._source = source
            while not stop.is_set():
                self.last_loop = time.monotonic()
                records = source.poll(cfg.poll_timeout_s, cfg.max_batch)
                if not records:
                    continue
                rules = self.rules.current()
                outputs = [self._output(rules, record) for record in records]
                deliver(sink, outputs)  # acknowledged (or replaced) first, committed after; raises OutputLost
                source.commit(records)
            self._source = None
        log.info("moderation stopped: %s", self.actions)
        return self.actions

    def _count(self, what: str) -> None:
        self.actions[what] = self.actions.get(what, 0) + 1

    def _output(self, rules: RuleSet, record: ConsumedRecord) -> Output:
        """The moderation event of one record, or its dead letter; with the fallback of either."""
        cfg = self.config
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        cap = cfg.dead_letter_max_original_bytes

        def letter(kind: ErrorKind, reason: str, max_bytes: int) -> OutgoingRecord:
            dead = dead_letter_for(record, kind, reason, max_original_bytes=max_bytes)
            return OutgoingRecord(cfg.topics.dead_letters, record.key, dead.to_bytes())

        def fallback(exc: BaseException) -> OutgoingRecord:
            self._count("replaced")
            reason = f"moderation output could not be written ({describe_failure(exc)})"
            return letter(ErrorKind.INTERNAL, reason, min(cap, FALLBACK_ORIGINAL_BYTES))

        try:
            decision = rules.decide(ScoreEvent.from_bytes(record.value))
        except ValidationError as exc:
            self._count("dead_letter")
            reason = f"not a valid score event: {describe_validation_error(exc)}"
            return Output(letter(ErrorKind.INVALID_MESSAGE, reason, cap), where, fallback)
        except Exception as exc:  # a fault of ours on this record: it must not stop the partition
            self._count("dead_letter")
            return Output(letter(ErrorKind.INTERNAL, f"moderation failed: {describe_failure(exc)}", cap), where, fallback)
        self._count(decision.action)
        return Output(
            OutgoingRecord(cfg.topics.moderation, encode_key(decision.video_id), decision.to_bytes()), where, fallback
        )
