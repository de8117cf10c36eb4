"""A model folder carries its own preprocessing, the way a Hugging Face folder carries
``preprocessor_config.json``: ``scoring_config.json`` beside the weights.

It holds what the weights were trained to see and to answer: the decode settings (frames, size,
sampling), K and the score strings, the dimension order, and the prompt with its version (a hash of
the prompt text and the score strings). Training writes it into every checkpoint
(:func:`ultravqa_ray.train.checkpoint.save_checkpoint`); every command reads it:

- :func:`model_folder` finds the weights of a folder given by the user (the folder itself, or its
  ``model/`` subfolder, as in the shipped default model's layout);
- :func:`apply_folder_settings` fills a :class:`ModelConfig`'s K, score strings and prompt from the
  folder unless the user set them, and refuses a setting that contradicts the folder;
- :func:`folder_decode_config` gives the decode settings to use unless the user gave others.

A folder without the file (a hub checkpoint, an untrained tiny model) keeps the ModelConfig and
DecodeConfig defaults.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import Field

from connectors.wire.dimensions import DIMENSIONS
from ultravqa_ray.config import Config
from ultravqa_ray.model.config import ModelConfig, PromptConfig
from ultravqa_ray.model.store import fetch_model, is_remote
from ultravqa_ray.video.config import DecodeConfig

SCORING_FILE = "scoring_config.json"
WEIGHTS_SUBDIR = "model"  # a folder whose weights sit one level down (the default model's layout)


class ScoringSettings(Config):
    """The contents of ``scoring_config.json``."""

    format_version: int = Field(1, description="Version of this file's layout.")
    k: int = Field(..., ge=2, le=100, description="Number of score levels the model was trained on.")
    score_strings: list[str] = Field(..., description="Text of each level 1..k.")
    dimensions: list[str] = Field(..., description="Dimension names, in the order the model was trained on.")
    prompt: PromptConfig = Field(..., description="The dimension prompts the model was trained with.")
    prompt_version: str = Field(..., description="Hash of the prompt and the score strings.")
    decode: DecodeConfig = Field(..., description="The decode settings the model was trained with.")

    @classmethod
    def of(cls, model: ModelConfig, decode: DecodeConfig) -> ScoringSettings:
        return cls(
            k=model.k,
            score_strings=model.levels,
            dimensions=[d.value for d in DIMENSIONS],
            prompt=model.prompt,
            prompt_version=prompt_version(model),
            decode=decode,
        )

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / SCORING_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path


def prompt_version(model: ModelConfig) -> str:
    """A short hash of what the prompt makes the model read and write (prompt text, score strings)."""
    text = json.dumps({"prompt": model.prompt.model_dump(mode="json"), "levels": model.levels}, sort_keys=True)
    return "p-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def model_folder(name_or_path: str) -> str:
    """The checkpoint to load for a user's ``--model``: a folder with ``config.json`` as given, a
    folder whose weights sit in ``model/`` (the default model's layout) that subfolder, an ``s3://``
    or ``gs://`` folder its verified local copy (:func:`ultravqa_ray.model.store.fetch_model`, which
    also picks ``model/``), anything else (a hub name) unchanged."""
    if is_remote(name_or_path):
        return str(fetch_model(name_or_path).path)
    path = Path(name_or_path).expanduser()
    if path.is_dir() and not (path / "config.json").exists() and (path / WEIGHTS_SUBDIR / "config.json").exists():
        return str(path / WEIGHTS_SUBDIR)
    return name_or_path


def read_scoring(name_or_path: str) -> ScoringSettings | None:
    """The folder's ``scoring_config.json``, or None (no such file, or not a local folder)."""
    path = Path(model_folder(name_or_path)).expanduser() / SCORING_FILE
    if not path.is_file():
        return None
    try:
        return ScoringSettings.model_validate_json(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not a valid scoring config: {str(exc).splitlines()[0]}") from exc


def apply_folder_settings(config: ModelConfig) -> ModelConfig:
    """``config`` loading the folder's weights, with K, score strings and prompt from the folder's
    scoring config unless set explicitly; an explicit setting the folder contradicts is refused."""
    folder = model_folder(config.name_or_path)
    saved = read_scoring(folder)
    update: dict[str, object] = {"name_or_path": folder}
    if saved is not None:
        if saved.dimensions != [d.value for d in DIMENSIONS]:
            raise ValueError(
                f"model {folder} was trained on dimensions {saved.dimensions}, this code scores "
                f"{[d.value for d in DIMENSIONS]}"
            )
        explicit = config.model_fields_set
        for name, value in (("k", saved.k), ("score_strings", saved.score_strings), ("prompt", saved.prompt)):
            if name not in explicit:
                update[name] = value
        merged = config.model_copy(update=update)
        if merged.k != saved.k or prompt_version(merged) != saved.prompt_version:
            raise ValueError(
                f"model {folder} was trained with K={saved.k} and prompt {saved.prompt_version}; "
                f"the settings ask for K={merged.k} and prompt {prompt_version(merged)}"
            )
        return merged
    return config.model_copy(update=update)


def folder_decode_config(name_or_path: str, default: DecodeConfig | None = None) -> DecodeConfig:
    """The decode settings the folder's model was trained with, else ``default`` (else DecodeConfig())."""
    saved = read_scoring(name_or_path)
    if saved is not None:
        return saved.decode
    return default if default is not None else DecodeConfig()
