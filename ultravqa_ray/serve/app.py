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

APP_NAME = "ultravqa"
SCORER = "Scorer"


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Serve's builder hook: ``args`` is the YAML ``args:`` mapping (validated, unknown keys refused)."""
    return build_application(ServeConfig.model_validate(args or {}))


def build_application(config: ServeConfig) -> Application:
    decoder = None
    if config.decode_in == "decoder":
        decoder = Decoder.options(
            num_replicas=config.decoder_replicas, ray_actor_options={"num_cpus": 1}, max_ongoing_requests=32
        ).bind(config)
    # The replica is built from the config minus its deployment options: those reach Serve through
    # .options(), so a change of batching alone is a user_config update (reconfigure, no restart).
    replica_config = config.model_copy(update={"scorer": ScorerDeploymentConfig()})
    scorer = Scorer.options(**config.scorer.options()).bind(replica_config, decoder)
    return ScoreAPI.bind(scorer, config.http_token_env) if config.http else scorer
