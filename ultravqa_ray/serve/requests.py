"""Turn an HTTP request body into an upload event, naming the problem when it is not one.

The route takes either a full upload event (DESIGN.md section 6) or the short form
``{"uri": "..."}`` with any of ``video_id`` (default: :func:`connectors.uris.video_id_for`, the
URI's file name with its extension, as everywhere), ``dimensions``,
``want_rationale`` and ``metadata``; ``event_time`` defaults to now. Unknown fields are refused, as
on Kafka.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import ValidationError

from connectors.uris import video_id_for
from connectors.wire.errors import ErrorKind, ProcessingError, describe_validation_error
from connectors.wire.messages import UploadEvent

# HTTP status of each error kind: the caller's fault is 4xx, ours 5xx.
STATUS_OF_KIND = {
    ErrorKind.INVALID_MESSAGE: 422,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_A_VIDEO: 415,
    ErrorKind.CORRUPT_VIDEO: 422,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.TOO_LONG: 413,
    ErrorKind.TIMEOUT: 504,
    ErrorKind.INTERNAL: 500,
}


def upload_from_request(body: bytes) -> UploadEvent:
    """Parse a request body; raises ``ProcessingError(invalid_message)`` naming the problem."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProcessingError(ErrorKind.INVALID_MESSAGE, f"request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProcessingError(
            ErrorKind.INVALID_MESSAGE, f"request body must be a JSON object, got {type(data).__name__}"
        )
    uri = data.get("uri")
    if isinstance(uri, str) and uri:
        data.setdefault("video_id", video_id_for(uri))
    data.setdefault("event_time", datetime.now(UTC).isoformat())
    try:
        return UploadEvent.model_validate(data)
    except ValidationError as exc:
        raise ProcessingError(
            ErrorKind.INVALID_MESSAGE, f"not a valid upload event: {describe_validation_error(exc)}"
        ) from None
