"""Video decoding: sample fixed-shape RGB frames from local or object-store videos, safely."""

from ultravqa_ray.video.batches import FRAME_COLUMNS, decode_batch, ok_rows
from ultravqa_ray.video.clip import VideoClip, clips_from_batch
from ultravqa_ray.video.config import DecodeConfig
from ultravqa_ray.video.decoder import DecodedVideo, decode_uri, decode_video

__all__ = [
    "FRAME_COLUMNS",
    "DecodeConfig",
    "DecodedVideo",
    "decode_batch",
    "decode_uri",
    "decode_video",
    "ok_rows",
    "VideoClip",
    "clips_from_batch",
]
