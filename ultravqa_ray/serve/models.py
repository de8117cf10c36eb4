"""The model a Serve replica loads, and the decode settings it expects. Serving only loads models.

``ServeConfig.model`` names a checkpoint folder, an ``s3://`` or ``gs://`` folder (each replica
fetches it into its node's cache, :mod:`ultravqa_ray.model.store`), a hub name, or ``default``: the project's trained
default model, which :func:`resolve_serve_config` (run by the application builder, in the driver,
before any replica starts) turns into the shipped or cached folder, without training: a default
model that must first be trained is an error naming the command that trains it. Untrained tiny
models (``tiny``) and training are the CLI's and the demo's business
(:func:`ultravqa_ray.train.default_model.resolve_model`), done before Serve starts; a replica given
an unresolved name refuses it.

The decode settings come from the model folder's ``scoring_config.json``
(:mod:`ultravqa_ray.model.folder`) unless ``ServeConfig.decode`` sets them.
"""

from __future__ import annotations

from pathlib import Path

from ultravqa_ray.model.folder import folder_decode_config, model_folder
from ultravqa_ray.model.store import is_remote
from ultravqa_ray.serve.config import ServeConfig
from ultravqa_ray.video import DecodeConfig

NAMED_MODELS = ("default", "tiny")


def is_named(model: str) -> bool:
    """``default``, ``tiny`` or ``tiny:<arch>``: a name that must be resolved to a folder first."""
    return model in NAMED_MODELS or model.startswith("tiny:")


def resolve_serve_config(config: ServeConfig) -> ServeConfig:
    """``config`` with ``model`` a loadable checkpoint and ``decode`` set (the folder's, unless given).

    ``default`` becomes the shipped or cached default model (a lookup, never a training run);
    ``tiny`` is refused: build it first (``ultravqa-ray model init``) and name its folder.
    """
    model = config.model
    if model == "default":
        from ultravqa_ray.train.default_model import ensure_default_model

        model = str(ensure_default_model(Path(config.cache_dir) / "default-model", train=False))
    elif is_named(model):
        raise ValueError(
            f"model {model!r} is built by the CLI or the demo, not by Serve: build it with "
            "'ultravqa-ray model init DIR' and set model to DIR"
        )
    if is_remote(model):  # replicas fetch it themselves (one download per node); the driver reads its decode
        return config.model_copy(update={"decode": config.decode or expected_decode(model_folder(model))})
    model = model_folder(model)
    return config.model_copy(update={"model": model, "decode": config.decode or expected_decode(model)})


def loadable_model(config: ServeConfig) -> str:
    """The checkpoint a replica loads: refuses a name Serve was not meant to resolve."""
    if is_named(config.model):
        raise ValueError(
            f"the replica got the model name {config.model!r}: resolve it before Serve starts "
            "(ultravqa_ray.serve.models.resolve_serve_config; the application builder does)"
        )
    return model_folder(config.model)


def expected_decode(model: str) -> DecodeConfig:
    """The decode settings a checkpoint was trained with (its ``scoring_config.json``), else defaults."""
    return folder_decode_config(model)
