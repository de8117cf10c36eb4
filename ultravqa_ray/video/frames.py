"""One decoded frame to one output array: upright (display matrix applied), resized, RGB uint8.

The resize happens in swscale, in the source orientation, before the quarter turn, so only the
small output image is rotated. Letterboxing keeps the display aspect ratio (rotation and
non-square pixels included) and centres the picture on black.
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ultravqa_ray.video.config import DecodeConfig

_INTERPOLATION = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "area": "AREA"}


def quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns (0-3) that make the frame upright, from its display matrix."""
    try:
        degrees = frame.rotation
    except (AttributeError, ValueError):
        return 0
    if not degrees or not np.isfinite(degrees):
        return 0
    return int(round(degrees / 90.0)) % 4


def fitted_size(display_w: float, display_h: float, config: DecodeConfig) -> tuple[int, int]:
    """Width and height the picture takes inside the output frame."""
    if config.resize == "stretch":
        return config.width, config.height
    scale = min(config.width / display_w, config.height / display_h)
    fit_w = min(config.width, max(1, round(display_w * scale)))
    fit_h = min(config.height, max(1, round(display_h * scale)))
    return fit_w, fit_h


def frame_to_rgb(
    frame: av.VideoFrame,
    config: DecodeConfig,
    sample_aspect: float = 1.0,
    reformatter: VideoReformatter | None = None,
) -> np.ndarray:
    """``(config.height, config.width, 3)`` uint8 RGB, upright.

    Pass one ``reformatter`` for all frames of a video: it keeps its swscale context, and scaling
    runs on one thread (swscale's default spawns a thread pool per call, ~10x slower here).
    """
    turns = quarter_turns(frame)
    display_w, display_h = frame.width * sample_aspect, float(frame.height)
    if turns % 2:
        display_w, display_h = display_h, display_w
    fit_w, fit_h = fitted_size(display_w, display_h, config)
    src_w, src_h = (fit_h, fit_w) if turns % 2 else (fit_w, fit_h)
    image = (
        (reformatter or VideoReformatter())
        .reformat(
            frame,
            width=src_w,
            height=src_h,
            format="rgb24",
            interpolation=_INTERPOLATION[config.interpolation],
            threads=1,
        )
        .to_ndarray()
    )
    if turns:
        image = np.rot90(image, turns)
    if (fit_w, fit_h) == (config.width, config.height):
        return np.ascontiguousarray(image)
    canvas = np.zeros((config.height, config.width, 3), dtype=np.uint8)
    top, left = (config.height - fit_h) // 2, (config.width - fit_w) // 2
    canvas[top : top + fit_h, left : left + fit_w] = image
    return canvas
