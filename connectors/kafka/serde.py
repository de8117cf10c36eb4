"""Serialisation of Kafka records, kept apart from the transport.

- Keys are the ``video_id`` in UTF-8, so every message about one video lands on one partition and
  re-running a range overwrites nothing downstream that de-duplicates by ``(video_id, model)``.
- Values are the wire models of :mod:`connectors.wire.messages` (compact UTF-8 JSON).
- An upload value that is not a valid :class:`UploadEvent` (not UTF-8, not JSON, a missing or
  unknown field, an unknown schema version) becomes ``ProcessingError(invalid_message)`` naming
  every problem; :func:`dead_letter_for` then wraps the *original* bytes into a :class:`DeadLetter`.
"""

from __future__ import annotations

import base64
from typing import Protocol

from pydantic import ValidationError

from connectors.wire.errors import ErrorKind, ProcessingError, describe_validation_error
from connectors.wire.messages import DeadLetter, ScoreEvent, SourceRef, UploadEvent


class _RecordLike(Protocol):
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes: ...
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


def encode_key(video_id: str) -> bytes:
    return video_id.encode("utf-8")


def decode_key(key: bytes | None) -> str | None:
    return None if key is None else key.decode("utf-8", errors="replace")


def decode_upload(value: bytes) -> UploadEvent:
    """Validate an upload record value; raises ``ProcessingError(invalid_message)``."""
    if not value:
        raise ProcessingError(
            ErrorKind.INVALID_MESSAGE, "not a valid upload event: the record value is empty"
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProcessingError(
            ErrorKind.INVALID_MESSAGE,
            f"not a valid upload event: value is not UTF-8 ({exc.reason} at {exc.start})",
        ) from None
    try:
        return UploadEvent.from_bytes(text)
    except ValidationError as exc:
        raise ProcessingError(
            ErrorKind.INVALID_MESSAGE, f"not a valid upload event: {describe_validation_error(exc)}"
        ) from None


def decode_score(value: bytes) -> ScoreEvent:
    return ScoreEvent.from_bytes(value)


def decode_dead_letter(value: bytes) -> DeadLetter:
    return DeadLetter.from_bytes(value)


def dead_letter_for(record: _RecordLike, kind: ErrorKind, message: str) -> DeadLetter:
    """The dead letter of a consumed record: its original key and value, the kind and the reason."""
    return DeadLetter(
        key_b64=base64.b64encode(record.key).decode() if record.key is not None else None,
        value_b64=base64.b64encode(record.value).decode(),
        error_kind=kind,
        error=message,
        source=SourceRef(topic=record.topic, partition=record.partition, offset=record.offset),
    )


def dead_letter_for_input(
    *, key: bytes | None, value: bytes, kind: ErrorKind, message: str, path: str | None
) -> DeadLetter:
    """The dead letter of an input that did not come from Kafka (a manifest row, a listed object)."""
    return DeadLetter(
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        value_b64=base64.b64encode(value).decode(),
        error_kind=kind,
        error=message,
        source=SourceRef(path=path),
    )
