"""Typed settings of the scorer model: which checkpoint, where it runs, how it is prompted.

One :class:`ModelConfig` per scorer; the five dimension prompts come from ONE :class:`PromptConfig`
whose question template is formatted with the dimension's label, description and K::

    cfg = ModelConfig.load("model.yaml", ["name_or_path=runs/tiny", "k=10", "device=cpu"])
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ultravqa_ray.config import Config, ModelRef

DeviceName = str  # "auto", "cpu", "cuda", "cuda:1", "mps", ...
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]


class PromptConfig(Config):
    """The prompt of every dimension, in one place (DESIGN.md section 3).

    Layout (ChatML for the Qwen families)::

        [system] [user: <video tokens> question(d)] [assistant: (rationale + separator) answer_prefix] N

    ``question`` is formatted with ``{label}``, ``{description}``, ``{name}`` (machine name) and
    ``{k}``; N, the score string, is the last answer token before the end-of-turn token.
    """

    system: str = Field(
        "You are an expert in video quality assessment. You rate videos on one quality dimension "
        "at a time, on an integer scale.",
        description="System message text.",
    )
    question: str = Field(
        "Rate the {label} of this video ({description}) on a scale from 1 (very poor) to {k} "
        "(excellent). Explain briefly, then answer with 'Score: N'.",
        description="User question after the video; formatted with label, description, name and k.",
    )
    answer_prefix: str = Field("Score: ", description="Answer text right before the score token.")
    rationale_separator: str = Field(
        " ", description="Text between the rationale and the answer prefix in the rationale variant."
    )

    @model_validator(mode="after")
    def _template_fields(self) -> PromptConfig:
        try:
            self.question.format(label="L", description="D", name="n", k=5)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"prompt.question may use only {{label}}, {{description}}, {{name}}, {{k}}: {exc}"
            ) from exc
        if not self.answer_prefix:
            raise ValueError("prompt.answer_prefix must not be empty")
        return self


class ModelConfig(Config):
    """Where the scorer's weights come from, where they run, and the score scale it reads."""

    name_or_path: ModelRef = Field(
        ..., min_length=1, description="Local checkpoint folder or Hugging Face hub name."
    )
    revision: str | None = Field(
        None, description="Hub revision (branch, tag or commit); ignored for folders."
    )
    local_files_only: bool = Field(False, description="Never reach the hub; load from the local cache only.")
    trust_remote_code: bool = Field(
        False, description="Allow code shipped with the checkpoint to run (off unless you trust it)."
    )
    device: DeviceName = Field(
        "auto", description="Torch device; 'auto' picks cuda when available, else cpu."
    )
    dtype: DtypeName = Field(
        "auto", description="Weight dtype; 'auto' is bfloat16 on cuda and float32 elsewhere."
    )
    attn_implementation: str | None = Field(
        "sdpa", description="Attention kernel passed to from_pretrained (sdpa, eager, flash_attention_2)."
    )
    k: int = Field(5, ge=2, le=100, description="Number of score levels; scores are 1..k.")
    score_strings: list[str] | None = Field(
        None, description="Text of each level 1..k; default '1'..'k'. Each must be exactly one token."
    )
    prompt: PromptConfig = Field(default_factory=PromptConfig, description="The dimension prompts.")
    min_pixels: int | None = Field(
        None, ge=1, description="Override the checkpoint's minimum pixels per frame (or per video, Qwen3)."
    )
    max_pixels: int | None = Field(
        None, ge=1, description="Override the checkpoint's maximum pixels per frame (or per video, Qwen3)."
    )
    default_fps: float = Field(
        2.0, gt=0, description="Frame rate assumed for the given frames when no timestamps come with them."
    )
    max_videos_per_forward: int = Field(
        8, ge=1, description="Videos scored together in one batched forward by score_clips."
    )
    rationale_max_new_tokens: int = Field(
        64, ge=1, description="Longest rationale generated when a rationale is asked for."
    )

    @model_validator(mode="after")
    def _scores(self) -> ModelConfig:
        if self.score_strings is not None:
            if len(self.score_strings) != self.k:
                raise ValueError(f"score_strings has {len(self.score_strings)} entries, k is {self.k}")
            if len(set(self.score_strings)) != self.k:
                raise ValueError("score_strings must be distinct")
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels must not exceed max_pixels")
        return self

    @property
    def levels(self) -> list[str]:
        """The score strings of levels 1..k."""
        return list(self.score_strings) if self.score_strings else [str(s) for s in range(1, self.k + 1)]
