"""Topic names, and the start-up check of the topics a service uses (create them, or name the missing).

In production the topics are declared elsewhere (Strimzi ``KafkaTopic`` resources, with their
partitions, replication and retention) and a service only checks that they exist; in development
the service may create what is missing (``create_topics``, on by default in the development
configs), so ``ultravqa-ray broker`` plus ``stream`` works without a separate step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from connectors.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)


class Topics(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    uploads: str = Field("vqa.uploads", description="Input: upload events.")
    scores: str = Field("vqa.scores", description="Output: score events, keyed by video_id.")
    dead_letters: str = Field("vqa.dead-letters", description="Output: inputs that could not be scored.")
    moderation: str = Field("vqa.moderation", description="Output: moderation actions.")

    def all(self) -> tuple[str, ...]:
        return (self.uploads, self.scores, self.dead_letters, self.moderation)


class MissingTopicError(RuntimeError):
    """A topic a service needs does not exist and creating it was not allowed."""


def ensure_topics(settings: KafkaSettings, names: Sequence[str], partitions: int = 2) -> list[str]:
    """Create the topics that do not exist yet (idempotent; for development brokers); the created."""
    return check_topics(settings, names, create=True, partitions=partitions)


def check_topics(
    settings: KafkaSettings, names: Sequence[str], *, create: bool, partitions: int = 2
) -> list[str]:
    """Check that ``names`` exist; create the missing ones when ``create``, else raise
    :class:`MissingTopicError` naming them. Returns the names created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**settings.admin_kwargs())
    try:
        existing = set(admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if not missing:
            return []
        if not create:
            raise MissingTopicError(
                f"topic(s) {', '.join(repr(n) for n in missing)} do not exist on {settings.bootstrap_servers}: "
                "create them (production: the KafkaTopic resources) or set create_topics: true (development)"
            )
        try:
            admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing])
        except TopicAlreadyExistsError:  # another replica created them meanwhile
            pass
        log.info("created topic(s) %s with %d partitions", ", ".join(missing), partitions)
        return missing
    finally:
        admin.close()
