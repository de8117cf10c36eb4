"""The scorer model: a multimodal LLM read out as per-dimension score distributions (DESIGN.md §3).

- :mod:`.config`: ``ModelConfig`` (checkpoint, device, dtype, K, score strings) and ``PromptConfig``.
- :mod:`.scorer`: ``ScorerModel`` (``setup()`` and ``score_clips``, the one scoring entry point).
- :mod:`.oracle`: plain full forwards the one-pass path is tested against (tests and benchmarks).
- :mod:`.folder`: the model folder's scoring settings (decode, K, dimensions, prompt version).
- :mod:`.prompts`: prompt layout and the single-token check of the score strings.
- :mod:`.preprocess`: frames -> ``pixel_values_videos`` / ``video_grid_thw`` without torchvision.
- :mod:`.families`: the per-family adapters (Qwen2-VL, Qwen2.5-VL, Qwen3-VL).
- :mod:`.tiny`: offline tiny models of the real classes for tests, benchmarks and demos.

Importing this package does not import transformers; ``setup()`` and ``build_tiny_model`` do.
"""

from ultravqa_ray.model.collate import TrainingBatch, TrainingSample
from ultravqa_ray.model.config import ModelConfig, PromptConfig
from ultravqa_ray.model.prompts import ScoreTokenError
from ultravqa_ray.model.scorer import ScorerModel, VideoScores
from ultravqa_ray.model.tiny import build_tiny_model

__all__ = [
    "ModelConfig",
    "PromptConfig",
    "ScoreTokenError",
    "ScorerModel",
    "TrainingBatch",
    "TrainingSample",
    "VideoScores",
    "build_tiny_model",
]
