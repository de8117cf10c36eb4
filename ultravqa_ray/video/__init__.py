"""Video decoding: sample fixed-shape RGB frames from local or object-store videos, safely."""

from ultravqa_ray.video.config import DecodeConfig
from ultravqa_ray.video.decoder import DecodedVideo, decode_uri, decode_video

__all__ = ["DecodeConfig", "DecodedVideo", "decode_uri", "decode_video"]
