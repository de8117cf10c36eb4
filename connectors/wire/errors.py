"""Error kinds carried by dead letters and error lines (DESIGN.md section 6).

Every failure that concerns one input (a message, a URI, a video) is a :class:`ProcessingError`
with one of these kinds and a message a person can act on. The edge turns it into a dead letter;
the batch goes on.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    INVALID_MESSAGE = "invalid_message"  # the record is not a valid upload event
    NOT_FOUND = "not_found"  # the URI names nothing
    FORBIDDEN = "forbidden"  # the URI is outside the allow-list, or access was denied
    NOT_A_VIDEO = "not_a_video"  # the bytes are not a container with a video stream
    CORRUPT_VIDEO = "corrupt_video"  # a video stream that cannot be decoded
    TOO_LARGE = "too_large"  # over the byte or pixel limit
    TOO_LONG = "too_long"  # over the duration limit
    TIMEOUT = "timeout"  # decoding or scoring exceeded its deadline
    INTERNAL = "internal"  # a fault of ours, not of the input


class ProcessingError(Exception):
    """A failure tied to one input, with the kind that decides where it goes."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = ErrorKind(kind)
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"

    def __reduce__(self):  # keep kind and message across Ray's pickling
        return (type(self), (self.kind, self.message))


def describe_validation_error(exc) -> str:
    """One line naming every invalid field of a pydantic ``ValidationError``: ``a.b: problem; ...``."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors(include_url=False)
    )
