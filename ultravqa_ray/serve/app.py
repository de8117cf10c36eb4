"""The application builder: ``import_path: ultravqa_ray.serve.app:build_app`` in a Serve YAML.

``build_app(args)`` validates ``args`` as a :class:`ServeConfig` and wires the deployments:
``ScoreAPI`` (HTTP, optional) -> ``Scorer`` (model, batching, autoscaling) -> ``Decoder`` (only with
``decode_in: decoder``). The Kafka bridge calls the Scorer through its handle
(``serve.get_deployment_handle("Scorer", app_name)``), the HTTP route through ``ScoreAPI``.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from ultravqa_ray.serve.config import ScorerDeploymentConfig, ServeConfig
from ultravqa_ray.serve.deployment import Decoder, Scorer
from ultravqa_ray.serve.http import ScoreAPI
from ultravqa_ray.serve.models import resolve_serve_config

APP_NAME = "ultravqa"
SCORER = "Scorer"


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Serve's builder hook: ``args`` is the YAML ``args:`` mapping (validated, unknown keys refused)."""
    return build_application(ServeConfig.model_validate(args or {}))


def build_application(config: ServeConfig) -> Application:
    """The deployments of ``config``; the model is resolved here, in the driver, before any replica
    starts (:func:`~ultravqa_ray.serve.models.resolve_serve_config`): replicas only load it."""
    config = resolve_serve_config(config)
    decoder = None
    if config.decode_in == "decoder":
        decoder = Decoder.options(  # type: ignore[attr-defined]  # @serve.deployment makes a Deployment
            num_replicas=config.decoder_replicas, ray_actor_options={"num_cpus": 1}, max_ongoing_requests=32
        ).bind(config)
    # The replica is built from the config minus its deployment options: those reach Serve through
    # .options(), so a change of batching alone is a user_config update (reconfigure, no restart).
    replica_config = config.model_copy(update={"scorer": ScorerDeploymentConfig()})
    scorer = Scorer.options(**config.scorer.options()).bind(replica_config, decoder)  # type: ignore[attr-defined]
    assert config.decode is not None  # set by resolve_serve_config
    api = ScoreAPI.bind(  # type: ignore[attr-defined]
        scorer, max_bytes=config.decode.max_bytes, token_env=config.http_token_env
    )
    return api if config.http else scorer
