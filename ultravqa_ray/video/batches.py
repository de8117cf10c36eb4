"""Decode a batch of URIs into fixed-shape frame arrays: the Ray Data ``map_batches`` step.

Training ingest (``ultravqa_ray.train``), batch scoring and any other Ray Data pipeline decode with
this one function, so a decoded batch has the same columns everywhere:

- every input column, passed through unchanged (``uri`` among them);
- ``frames``: ``(N, T, H, W, 3)`` uint8, T/H/W from the :class:`DecodeConfig` (an Arrow tensor
  column once Ray Data holds it); a row that failed holds zeros;
- ``timestamps_s``: ``(N, T)`` float64;
- ``decode``: the JSON of :meth:`DecodedVideo.metadata` (``""`` for a failed row);
- ``decode_ms``: wall time of the row's decode;
- ``error_kind`` / ``error``: ``""`` for a decoded row, else the :class:`ErrorKind` value and the
  human-readable reason. Failed rows are kept, never dropped: the caller counts them, reports them
  and turns them into dead letters or skips them (``ok_rows``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from connectors.wire.errors import ErrorKind, ProcessingError
from ultravqa_ray.video.config import DecodeConfig
from ultravqa_ray.video.decoder import decode_uri

FRAME_COLUMNS = ("frames", "timestamps_s", "decode", "decode_ms", "error_kind", "error")


def decode_batch(
    batch: Mapping[str, Any],
    config: DecodeConfig,
    *,
    uri_column: str = "uri",
    storage_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Decode ``batch[uri_column]`` (a numpy batch, as Ray Data's ``batch_format="numpy"`` gives).

    ``storage_kwargs`` go to :func:`connectors.storage.open_input` (``base_dir`` for relative
    paths, an S3 endpoint override, an access policy). Never raises for a bad input.
    """
    if uri_column not in batch:
        raise KeyError(f"decode_batch: the batch has no {uri_column!r} column (columns: {sorted(batch)})")
    uris = [str(u) for u in np.asarray(batch[uri_column]).tolist()]
    n, t = len(uris), config.output_frames
    frames = np.zeros((n, t, config.height, config.width, 3), np.uint8)
    timestamps = np.zeros((n, t), np.float64)
    decode_info, decode_ms = [""] * n, np.zeros(n, np.float64)
    kinds, errors = [""] * n, [""] * n
    for i, uri in enumerate(uris):
        start = time.perf_counter()
        try:
            video = decode_uri(uri, config, **dict(storage_kwargs or {}))
        except ProcessingError as exc:
            kinds[i], errors[i] = exc.kind.value, exc.message
        except Exception as exc:  # a decoder bug must not lose the batch: the row says what happened
            kinds[i], errors[i] = ErrorKind.INTERNAL.value, f"{type(exc).__name__}: {exc}"
        else:
            frames[i], timestamps[i] = video.frames, video.timestamps_s
            decode_info[i] = json.dumps(video.metadata())
        decode_ms[i] = (time.perf_counter() - start) * 1000.0
    out = {name: np.asarray(values) for name, values in batch.items()}
    out.update(
        frames=frames,
        timestamps_s=timestamps,
        decode=np.asarray(decode_info, dtype=object),
        decode_ms=decode_ms,
        error_kind=np.asarray(kinds, dtype=object),
        error=np.asarray(errors, dtype=object),
    )
    return out


def ok_rows(batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """Boolean mask of the rows of a decoded batch that hold frames."""
    return np.asarray([kind == "" for kind in batch["error_kind"]], dtype=bool)
