"""Video bytes posted to ``POST /score``: streamed to a bounded temporary file, never held whole.

Two forms, told apart by the ``Content-Type``:

- the raw body (``video/*`` or ``application/octet-stream``); ``video_id``, ``dimensions``
  (comma-separated) and ``want_rationale`` come from the query string;
- ``multipart/form-data`` with one file part (any field name) and optional form fields
  ``video_id``, ``dimensions``, ``want_rationale`` (the query string's are used too; the form's win).

The body is written to a temporary file as it arrives and refused as ``too_large`` as soon as it
passes the decode settings' ``max_bytes`` (a declared ``Content-Length`` over the limit is refused
before reading). Without a ``video_id`` the video is named by the one rule of docs/contracts.md: the
uploaded file's name (multipart), else ``upload-<first 16 hex of the bytes' sha256>`` (the same
bytes get the same id). The event's ``uri`` is ``upload:<video_id>``. What is not a video is found
by the decoder, as for a URI (``not_a_video``, ``corrupt_video``, ...).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from connectors.uris import video_id_for
from connectors.wire.errors import ErrorKind, ProcessingError
from connectors.wire.messages import UploadEvent
from ultravqa_ray.serve.requests import upload_from_request

BYTES_TYPES = ("application/octet-stream", "multipart/form-data")
MULTIPART_OVERHEAD = 64 * 1024  # part headers and boundaries allowed on top of the video's own limit
_CHUNK = 1 << 20


def is_bytes_upload(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith("video/") or kind in BYTES_TYPES


@dataclass
class SpooledUpload:
    """An uploaded video on local disk and the upload event that names it; ``close()`` removes it."""

    path: Path
    upload: UploadEvent

    def close(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


async def spool(chunks: AsyncIterator[bytes], target: Path, limit: int, what: str) -> str:
    """Write ``chunks`` to ``target``, refusing past ``limit`` bytes; returns the sha256 hex."""
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise ProcessingError(ErrorKind.TOO_LARGE, f"{what} is over the limit of {limit} bytes (max_bytes)")
            digest.update(chunk)
            out.write(chunk)
    if size == 0:
        raise ProcessingError(ErrorKind.INVALID_MESSAGE, f"{what} is empty")
    return digest.hexdigest()


async def receive_upload(
    headers: Mapping[str, str], query: Mapping[str, str], chunks: AsyncIterator[bytes], max_bytes: int
) -> SpooledUpload:
    """Spool a bytes upload (raw or multipart) and build its upload event; raises :class:`ProcessingError`."""
    content_type = headers.get("content-type", "")
    multipart = content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"
    limit = max_bytes + (MULTIPART_OVERHEAD if multipart else 0)
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ProcessingError(
            ErrorKind.TOO_LARGE, f"the upload declares {declared} bytes, over the limit of {max_bytes} bytes (max_bytes)"
        )
    folder = Path(tempfile.mkdtemp(prefix="uvr-upload-"))
    try:
        body = folder / "body"
        digest = await spool(chunks, body, limit, "the upload")
        fields: dict[str, str] = dict(query)
        name = None
        if multipart:
            video = folder / "video"
            form, name = await _split_multipart(headers, body, video, max_bytes)
            fields.update(form)  # the form's fields win over the query string's
            digest = _sha256(video)
            body.unlink()
        else:
            video = body
        upload = _upload_event(fields, name, digest)
        return SpooledUpload(path=video, upload=upload)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


async def _split_multipart(
    headers: Mapping[str, str], body: Path, video: Path, max_bytes: int
) -> tuple[dict[str, str], str | None]:
    """The form fields and the one file part of a spooled multipart body (copied to ``video``)."""
    from starlette.datastructures import Headers, UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream() -> AsyncGenerator[bytes, None]:
        with body.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk
        yield b""

    parser = MultiPartParser(Headers(headers=dict(headers)), stream(), max_files=1, max_fields=16)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ProcessingError(ErrorKind.INVALID_MESSAGE, f"not a valid multipart upload: {exc.message}") from None
    try:
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            raise ProcessingError(ErrorKind.INVALID_MESSAGE, "the multipart upload has no file part")
        part = files[0]

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await part.read(_CHUNK):
                yield chunk

        await spool(chunks(), video, max_bytes, "the uploaded video")
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        return fields, part.filename
    finally:
        await form.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _upload_event(fields: Mapping[str, str], filename: str | None, digest: str) -> UploadEvent:
    unknown = sorted(set(fields) - {"video_id", "dimensions", "want_rationale"})
    if unknown:
        raise ProcessingError(ErrorKind.INVALID_MESSAGE, f"unknown upload fields {unknown}")
    video_id = fields.get("video_id") or (video_id_for(filename) if filename else f"upload-{digest[:16]}")
    data: dict[str, object] = {
        "video_id": video_id,
        "uri": f"upload:{video_id}",
        "event_time": datetime.now(UTC).isoformat(),
    }
    if fields.get("dimensions"):
        data["dimensions"] = [d.strip() for d in fields["dimensions"].split(",") if d.strip()]
    if fields.get("want_rationale"):
        data["want_rationale"] = fields["want_rationale"].strip().lower() in ("1", "true", "yes")
    return upload_from_request(json.dumps(data).encode())  # validated as the JSON route's events are


class TempVideo:
    """``with TempVideo(data) as path``: uploaded bytes in a private temporary file, removed after."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._folder: Path | None = None

    def __enter__(self) -> str:
        self._folder = Path(tempfile.mkdtemp(prefix="uvr-upload-"))
        path = self._folder / "video"
        path.write_bytes(self._data)
        return str(path)

    def __exit__(self, *exc: object) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
