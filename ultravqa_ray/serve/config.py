"""Typed settings of the scoring application: what the builder is given, and the Scorer's options.

Two configs, two owners:

- :class:`ServeConfig` is the ``args:`` mapping of a Serve YAML (``import_path:
  ultravqa_ray.serve.app:build_app``): which model, how to decode, what storage is allowed, where
  decoding runs, and the code defaults of the Scorer deployment.
- :class:`ScorerDeploymentConfig` holds those code defaults (replicas, autoscaling, CPUs, batching,
  health check, drain). A YAML ``deployments:`` entry named ``Scorer`` overrides them the Serve way;
  its ``user_config`` (``max_batch_size``, ``batch_wait_timeout_s``) retunes live replicas through
  ``reconfigure()`` without a restart.

``model`` is a checkpoint folder or hub name, or ``default`` (the project's trained default model,
shipped or cached; resolved by the application builder, never trained by Serve). Untrained tiny
models are built before Serve starts and named by their folder (:mod:`ultravqa_ray.serve.models`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from connectors.storage import StorageSettings
from ultravqa_ray.config import Config
from ultravqa_ray.video import DecodeConfig

DEFAULT_CACHE = Path.home() / ".cache" / "ultravqa-ray"


class BatchingConfig(Config):
    """The Scorer's ``user_config``: applied by ``reconfigure()`` on live replicas."""

    max_batch_size: int = Field(8, ge=1, le=256, description="Videos scored together in one forward.")
    batch_wait_timeout_s: float = Field(
        0.01, ge=0, le=10, description="How long a partial batch waits for more videos before it runs."
    )


class ScorerUserConfig(BatchingConfig):
    """The Scorer's whole ``user_config``: the batching, and the model to serve (both live-tunable)."""

    model: str | None = Field(
        None,
        min_length=1,
        description="The model to serve (folder, s3:// or gs:// folder, hub name; unset: args.model). "
        "Changing it swaps the model on live replicas without a restart (reconfigure: loaded beside "
        "the old one, switched between batches; a failed load keeps the old model).",
    )


class AutoscalingConfig(Config):
    """Serve's ``autoscaling_config`` for the Scorer (replicas follow the ongoing requests)."""

    min_replicas: int = Field(1, ge=0, description="Fewest replicas (0 lets the Scorer scale to zero).")
    max_replicas: int = Field(2, ge=1, description="Most replicas.")
    initial_replicas: int | None = Field(None, ge=0, description="Replicas at deploy time (min when unset).")
    target_ongoing_requests: float = Field(
        2, gt=0, description="Ongoing requests per replica the autoscaler aims at (a bridge request is a chunk)."
    )
    upscale_delay_s: float = Field(2.0, ge=0, description="Load must stay high this long before scaling up.")
    downscale_delay_s: float = Field(30.0, ge=0, description="Load must stay low this long before scaling down.")
    metrics_interval_s: float = Field(0.5, gt=0, description="How often replicas report their load.")
    look_back_period_s: float = Field(2.0, gt=0, description="Window over which load is averaged.")

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling: min_replicas must not exceed max_replicas")
        return self


# The default environment of a Scorer replica, set before torch loads. PASSIVE: torch's idle
# OpenMP threads sleep instead of spinning, so they leave the cores to the replica's decode worker
# processes (bench/bench_serve.py: 48-52 -> 85-86 videos/s at saturation on 2 cores). The YAMLs in
# serve_configs/ carry the same runtime_env: a ray_actor_options override replaces this one whole.
SCORER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


class ScorerDeploymentConfig(Config):
    """Code defaults of the Scorer deployment (a YAML ``deployments:`` entry overrides them)."""

    num_replicas: int | None = Field(
        None, ge=1, description="Fixed replica count; when unset, `autoscaling` decides."
    )
    autoscaling: AutoscalingConfig = Field(
        default_factory=AutoscalingConfig, description="Autoscaling bounds (unused with num_replicas)."
    )
    num_cpus: float = Field(1.0, ge=0, description="CPUs reserved per replica.")
    num_gpus: float = Field(0.0, ge=0, description="GPUs reserved per replica (0 on CPU machines).")
    max_ongoing_requests: int = Field(
        32, ge=1, description="Requests one replica holds at once (decodes in flight + the batch queue)."
    )
    batching: ScorerUserConfig = Field(
        default_factory=ScorerUserConfig, description="The user_config (batching; model: a live swap)."
    )
    env_vars: dict[str, str] = Field(
        default_factory=lambda: dict(SCORER_ENV),
        description="Environment of each replica, set before torch loads (default: OMP_WAIT_POLICY=PASSIVE).",
    )
    health_check_period_s: float = Field(5.0, gt=0, description="Seconds between check_health calls.")
    health_check_timeout_s: float = Field(30.0, gt=0, description="A check slower than this fails.")
    graceful_shutdown_wait_loop_s: float = Field(
        0.5, gt=0, description="While draining, how often a stopping replica looks for ongoing requests."
    )
    graceful_shutdown_timeout_s: float = Field(
        30.0, ge=0, description="Longest a stopping replica drains its ongoing requests before it is killed."
    )

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options``."""
        opts: dict[str, Any] = {
            "ray_actor_options": {
                "num_cpus": self.num_cpus,
                "num_gpus": self.num_gpus,
                "runtime_env": {"env_vars": dict(self.env_vars)},
            },
            "max_ongoing_requests": self.max_ongoing_requests,
            "user_config": self.batching.model_dump(exclude_none=True),
            "health_check_period_s": self.health_check_period_s,
            "health_check_timeout_s": self.health_check_timeout_s,
            "graceful_shutdown_wait_loop_s": self.graceful_shutdown_wait_loop_s,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
        }
        if self.num_replicas is not None:
            opts["num_replicas"] = self.num_replicas
        else:
            opts["autoscaling_config"] = self.autoscaling.model_dump(exclude_none=True)
        return opts


class ServeConfig(Config):
    """The ``args:`` of the scoring application (see the module docstring)."""

    model: str = Field(
        "default",
        min_length=1,
        description="'default' (the shipped or cached trained default model; Serve never trains it) "
        "or a checkpoint folder / hub name (build tiny models before Serve starts).",
    )
    cache_dir: Path = Field(DEFAULT_CACHE, description="Where 'default' and 'tiny' models are built and kept.")
    device: str = Field("auto", description="Torch device of the Scorer ('auto': cuda when visible).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Weight dtype.")
    max_videos_per_forward: int = Field(8, ge=1, description="Chunk size inside one batched forward.")
    torch_threads: int | None = Field(
        None, ge=1, description="Torch intra-op threads per replica (unset: Ray's default, the replica's num_cpus)."
    )
    decode_pool: Literal["processes", "threads"] = Field(
        "processes",
        description="How a replica (the Scorer, or the Decoder with decode_in: decoder) decodes: in worker "
        "processes (own GIL each; faster, see serve_configs/README.md) or in threads of the replica.",
    )
    decode_workers: int | None = Field(
        None, ge=1, le=64,
        description="Decode workers per replica (unset: processes, one per CPU the replica reserved; "
        "threads, Python's default of CPUs + 4).",
    )  # fmt: skip
    decode: DecodeConfig | None = Field(
        None, description="Frame sampling and input limits; default: what the model was trained with."
    )
    storage: StorageSettings = Field(
        default_factory=StorageSettings, description="Allow-list, S3 endpoint and base folder for URIs."
    )
    decode_in: Literal["scorer", "decoder"] = Field(
        "scorer",
        description="scorer: decode in the Scorer replica (threads); decoder: a separate CPU "
        "deployment decodes and ships frames (see serve_configs/README.md for which is faster).",
    )
    decoder_replicas: int = Field(1, ge=1, description="Replicas of the Decoder (decode_in=decoder).")
    decode_timeout_s: float = Field(
        120.0, gt=0, description="A decode slower than this becomes a 'timeout' error."
    )
    http: bool = Field(True, description="Add the HTTP ingress (POST /score, GET /healthz).")
    http_token_env: str | None = Field(
        None, min_length=1,
        description="Environment variable holding the bearer token POST /score requires (unset: no token, "
        "local development; in Kubernetes, from a Secret). Empty or missing in the replica: it fails to start.",
    )  # fmt: skip
    scorer: ScorerDeploymentConfig = Field(
        default_factory=ScorerDeploymentConfig, description="Code defaults of the Scorer deployment."
    )
