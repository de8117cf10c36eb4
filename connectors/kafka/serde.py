"""Serialisation of Kafka records, kept apart from the transport.

- Keys are the ``video_id`` in UTF-8, so every message about one video lands on one partition and
  re-running a range overwrites nothing downstream that de-duplicates by ``(video_id, model)``.
- Values are the wire models of :mod:`connectors.wire.messages` (compact UTF-8 JSON).
- An upload value that is not a valid :class:`UploadEvent` (not UTF-8, not JSON, a missing or
  unknown field, an unknown schema version) becomes ``ProcessingError(invalid_message)`` naming
  every problem; :func:`dead_letter_for` then wraps the *original* bytes into a :class:`DeadLetter`.
- A dead letter carries at most ``max_original_bytes`` of the original key and of the value
  (:data:`DEFAULT_MAX_ORIGINAL_BYTES` unless the writer's config says otherwise): a larger field
  travels as its first bytes plus its size and SHA-256 (``DeadLetter.truncated``), so the dead
  letter of a record of any size fits a Kafka record. The reason is cut to :data:`MAX_ERROR_CHARS`.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Literal, Protocol

from pydantic import ValidationError

from connectors.wire.errors import ErrorKind, ProcessingError, describe_validation_error
from connectors.wire.messages import DeadLetter, ScoreEvent, SourceRef, Truncation, UploadEvent

#: Default cap on the original key and value bytes a dead letter carries (each); base64 makes a
#: dead letter at most ~4/3 of twice this plus the reason, far below Kafka's default 1 MiB record.
DEFAULT_MAX_ORIGINAL_BYTES = 64 * 1024
#: Longest reason a dead letter carries (a traceback or a validation report can be longer).
MAX_ERROR_CHARS = 2000


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


def _carried(
    field: Literal["key", "value"], data: bytes, cap: int, cut: list[Truncation]
) -> str:
    """``data`` in base64, or its first ``cap`` bytes when longer (noted in ``cut``)."""
    if len(data) > cap:
        cut.append(Truncation(field=field, size=len(data), sha256=hashlib.sha256(data).hexdigest(), kept=cap))
        data = data[:cap]
    return base64.b64encode(data).decode()


def _letter(
    key: bytes | None, value: bytes, kind: ErrorKind, message: str, source: SourceRef, cap: int
) -> DeadLetter:
    if cap < 0:
        raise ValueError(f"max_original_bytes must be >= 0, got {cap}")
    cut: list[Truncation] = []
    key_b64 = _carried("key", key, cap, cut) if key is not None else None
    value_b64 = _carried("value", value, cap, cut)
    reason = message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"
    return DeadLetter(
        key_b64=key_b64, value_b64=value_b64, truncated=cut or None, error_kind=kind,
        error=reason or kind.value, source=source,
    )  # fmt: skip


def dead_letter_for(
    record: _RecordLike, kind: ErrorKind, message: str, *, max_original_bytes: int = DEFAULT_MAX_ORIGINAL_BYTES
) -> DeadLetter:
    """The dead letter of a consumed record: its original key and value (up to the cap), the kind
    and the reason."""
    source = SourceRef(topic=record.topic, partition=record.partition, offset=record.offset)
    return _letter(record.key, record.value, kind, message, source, max_original_bytes)


def dead_letter_for_input(
    *,
    key: bytes | None,
    value: bytes,
    kind: ErrorKind,
    message: str,
    path: str | None,
    max_original_bytes: int = DEFAULT_MAX_ORIGINAL_BYTES,
) -> DeadLetter:
    """The dead letter of an input that did not come from Kafka (a manifest row, a listed object)."""
    return _letter(key, value, kind, message, SourceRef(path=path), max_original_bytes)
