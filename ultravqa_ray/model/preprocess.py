"""Video frames -> ``pixel_values_videos`` and ``video_grid_thw`` for the Qwen-VL vision towers.

The reference is the transformers video processor of each family (``Qwen2VLVideoProcessor``, also
used by Qwen2.5-VL, and ``Qwen3VLVideoProcessor``), which needs torchvision. This module does the
same steps with torch alone, reading the parameters from the checkpoint's preprocessor config:

1. Size. ``smart_resize`` picks (H', W'), both multiples of ``factor = patch_size * merge_size``,
   the aspect ratio kept as closely as possible, and the pixel count inside [min_pixels, max_pixels]:
   per frame for Qwen2-VL / Qwen2.5-VL, over the whole clip (frames x H' x W') for Qwen3-VL. With
   ``cap_pixels_per_frame`` the maximum is first cut to a share of a token budget, as the reference.
2. Resize. Bicubic with antialias on the uint8 frames, ``torch.nn.functional.interpolate`` on CPU:
   the kernel torchvision's ``resize`` runs for a uint8 tensor on CPU.
3. Rescale and normalise, fused as in the reference: ``(x - mean / r) / (std / r)`` in float32,
   ``r = rescale_factor`` (1/255).
4. Temporal patching. Frames are padded to a multiple of ``temporal_patch_size`` by repeating the
   last one; the clip is cut into ``grid_t x grid_h x grid_w`` patches of
   ``temporal_patch_size x patch_size x patch_size``, ordered so that the ``merge_size x merge_size``
   patches the vision tower merges into one LLM token are adjacent::

       (t, tp, C, gh/m, m, ps, gw/m, m, ps) -> (t, gh/m, gw/m, m, m, C, tp, ps, ps) -> (t*gh*gw, C*tp*ps*ps)

``tests/model/test_preprocess.py`` runs the reference processor's own code (its ``smart_resize``,
``resize``, ``patchify`` and ``_preprocess``, read from the installed transformers) against this
module; only torchvision's resize and normalize kernels are stood in for there (see that test).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)

# PIL resampling codes used in preprocessor configs.
_RESAMPLE = {2: "bilinear", 3: "bicubic", "bilinear": "bilinear", "bicubic": "bicubic"}


@dataclass(frozen=True)
class VisionSpec:
    """The preprocessing parameters of one checkpoint (defaults: the family's video processor)."""

    patch_size: int
    temporal_patch_size: int
    merge_size: int
    min_pixels: int
    max_pixels: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    budget: Literal["frame", "video"]  # what max/min_pixels bound: one frame, or the whole clip
    max_video_tokens: int
    rescale_factor: float = 1 / 255
    do_resize: bool = True
    do_rescale: bool = True
    do_normalize: bool = True
    resample: Literal["bicubic", "bilinear"] = "bicubic"
    cap_pixels_per_frame: bool = False

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    def with_overrides(self, *, min_pixels: int | None = None, max_pixels: int | None = None) -> VisionSpec:
        return replace(
            self,
            min_pixels=min_pixels if min_pixels is not None else self.min_pixels,
            max_pixels=max_pixels if max_pixels is not None else self.max_pixels,
        )

    def updated(self, processor_config: Mapping[str, Any]) -> VisionSpec:
        """Apply the fields of a ``(video_)preprocessor_config.json`` on top of these defaults."""
        c = processor_config
        size = c.get("size") or {}
        min_pixels = c.get("min_pixels", size.get("shortest_edge", size.get("min_pixels")))
        max_pixels = c.get("max_pixels", size.get("longest_edge", size.get("max_pixels")))
        fields: dict[str, Any] = {}
        for name in ("patch_size", "temporal_patch_size", "merge_size", "max_video_tokens"):
            if c.get(name) is not None:
                fields[name] = int(c[name])
        for name in ("do_resize", "do_rescale", "do_normalize", "cap_pixels_per_frame"):
            if c.get(name) is not None:
                fields[name] = bool(c[name])
        if c.get("rescale_factor") is not None:
            fields["rescale_factor"] = float(c["rescale_factor"])
        for name in ("image_mean", "image_std"):
            if c.get(name) is not None:
                value = c[name]
                fields[name] = tuple(
                    float(v) for v in (value if isinstance(value, list | tuple) else [value] * 3)
                )
        if c.get("resample") is not None:
            if c["resample"] not in _RESAMPLE:
                raise ValueError(f"unsupported resample {c['resample']!r} in the preprocessor config")
            fields["resample"] = _RESAMPLE[c["resample"]]
        if min_pixels is not None:
            fields["min_pixels"] = int(min_pixels)
        if max_pixels is not None:
            fields["max_pixels"] = int(max_pixels)
        return replace(self, **fields)


def load_processor_config(
    name_or_path: str, *, revision: str | None = None, local_files_only: bool = False
) -> dict[str, Any]:
    """The checkpoint's video preprocessor config, else its image preprocessor config, else ``{}``.

    This is the order transformers' ``AutoVideoProcessor`` follows: a checkpoint without a
    ``video_preprocessor_config.json`` (Qwen2-VL, Qwen2.5-VL) configures its video processor from
    ``preprocessor_config.json`` (min/max pixels, patch sizes, mean/std).
    """
    from transformers.utils import cached_file

    for filename in ("video_preprocessor_config.json", "preprocessor_config.json"):
        path = cached_file(
            name_or_path,
            filename,
            revision=revision,
            local_files_only=local_files_only,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
        if path is not None:
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
    return {}


def smart_resize_frame(
    height: int, width: int, *, factor: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """Qwen2-VL / Qwen2.5-VL: (H', W') multiples of ``factor``, H' * W' in [min_pixels, max_pixels]."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be below 200, got {max(height, width) / min(height, width):.1f}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def smart_resize_clip(
    num_frames: int,
    height: int,
    width: int,
    *,
    temporal_factor: int,
    factor: int,
    min_pixels: int,
    max_pixels: int,
) -> tuple[int, int]:
    """Qwen3-VL: as :func:`smart_resize_frame` but the pixel bounds apply to frames x H' x W'."""
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be below 200, got {max(height, width) / min(height, width):.1f}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((num_frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def target_size(spec: VisionSpec, num_frames: int, height: int, width: int) -> tuple[int, int]:
    """The (H', W') the frames of a clip are resized to."""
    factor = spec.factor
    max_pixels = spec.max_pixels
    if spec.budget == "frame":
        if spec.cap_pixels_per_frame:
            total = int(spec.max_video_tokens * factor * factor * 0.9)
            max_pixels = max(
                min(max_pixels, total * spec.temporal_patch_size // num_frames), int(spec.min_pixels * 1.05)
            )
        return smart_resize_frame(
            height, width, factor=factor, min_pixels=spec.min_pixels, max_pixels=max_pixels
        )
    if spec.cap_pixels_per_frame:
        frame_cap = spec.max_video_tokens * factor * factor
        per_frame = max(min(frame_cap, max_pixels // num_frames), int(spec.min_pixels * 1.05))
        max_pixels = per_frame * num_frames
    # The reference refuses clips shorter than one temporal patch; they are padded below anyway.
    return smart_resize_clip(
        max(num_frames, spec.temporal_patch_size),
        height,
        width,
        temporal_factor=spec.temporal_patch_size,
        factor=factor,
        min_pixels=spec.min_pixels,
        max_pixels=max_pixels,
    )


def resize_frames(frames: torch.Tensor, size: tuple[int, int], resample: str = "bicubic") -> torch.Tensor:
    """Antialiased resize of ``(N, C, H, W)`` frames, uint8 in, uint8 out.

    On CPU torch resizes uint8 natively (what torchvision does there); elsewhere it goes through
    float32, clamped and rounded back (torchvision's path on GPU).
    """
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    if frames.dtype == torch.uint8 and frames.device.type != "cpu":
        out = F.interpolate(frames.float(), size=size, mode=resample, antialias=True, align_corners=False)
        return out.clamp_(0, 255).round_().to(torch.uint8)
    return F.interpolate(frames, size=size, mode=resample, antialias=True, align_corners=False)


def normalize(frames: torch.Tensor, spec: VisionSpec) -> torch.Tensor:
    """Rescale and normalise to float32, fused the way the reference fuses them."""
    x = frames.to(torch.float32)
    if spec.do_rescale and spec.do_normalize:
        mean = torch.tensor(spec.image_mean) * (1.0 / spec.rescale_factor)
        std = torch.tensor(spec.image_std) * (1.0 / spec.rescale_factor)
        return x.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))
    if spec.do_normalize:
        mean, std = torch.tensor(spec.image_mean), torch.tensor(spec.image_std)
        return x.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))
    if spec.do_rescale:
        return x * spec.rescale_factor
    return x


def patchify(frames: torch.Tensor, spec: VisionSpec) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """``(N, C, H, W)`` float frames -> ``(grid_t * grid_h * grid_w, C * tp * ps * ps)`` and the grid."""
    tp, ps, m = spec.temporal_patch_size, spec.patch_size, spec.merge_size
    n, c, h, w = frames.shape
    if h % (ps * m) or w % (ps * m):
        raise ValueError(f"frame size {h}x{w} is not a multiple of patch_size*merge_size={ps * m}")
    if pad := -n % tp:
        frames = torch.cat([frames, frames[-1:].expand(pad, -1, -1, -1)], dim=0)
        n += pad
    gt, gh, gw = n // tp, h // ps, w // ps
    patches = frames.reshape(gt, tp, c, gh // m, m, ps, gw // m, m, ps)
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return patches.reshape(gt * gh * gw, c * tp * ps * ps), (gt, gh, gw)


@dataclass(frozen=True)
class VideoPatches:
    """The vision-tower input of one clip."""

    pixel_values: torch.Tensor  # (grid_t * grid_h * grid_w, C * tp * ps * ps) float32
    grid_thw: tuple[int, int, int]
    num_frames: int  # frames given, before temporal padding

    def num_tokens(self, merge_size: int) -> int:
        """LLM tokens this clip becomes after the vision tower's spatial merge."""
        t, h, w = self.grid_thw
        return t * h * w // (merge_size * merge_size)


def as_frame_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Validate ``(N, H, W, 3)`` uint8 RGB frames and return them as a ``(N, 3, H, W)`` tensor."""
    array = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    if array.dim() != 4 or array.shape[-1] != 3 or array.shape[0] < 1:
        raise ValueError(f"frames must be (N, H, W, 3) RGB with N >= 1, got shape {tuple(array.shape)}")
    if array.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8, got {array.dtype}")
    return array.permute(0, 3, 1, 2).contiguous()


def preprocess_video(frames: np.ndarray | torch.Tensor, spec: VisionSpec) -> VideoPatches:
    """Resize, normalise and patchify one clip of ``(N, H, W, 3)`` uint8 RGB frames (on CPU)."""
    x = as_frame_tensor(frames).cpu()
    n, _, h, w = x.shape
    if spec.do_resize:
        x = resize_frames(x, target_size(spec, n, h, w), spec.resample)
    pixel_values, grid = patchify(normalize(x, spec), spec)
    return VideoPatches(pixel_values=pixel_values, grid_thw=grid, num_frames=n)
