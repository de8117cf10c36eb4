"""Real-time scoring on Ray Serve (layer 4): the Scorer deployment, its HTTP route and the app builder.

- :mod:`.config`: ``ServeConfig`` (the YAML ``args:``) and ``ScorerDeploymentConfig``.
- :mod:`.scoring`: decode and score inside a replica, Serve-free (shared with the benchmark).
- :mod:`.deployment`: ``Scorer`` (``@serve.batch``, ``reconfigure``, ``check_health``) and ``Decoder``.
- :mod:`.http`: the FastAPI ingress (``POST /score``, ``GET /healthz``).
- :mod:`.app`: ``build_app(args)``, the ``import_path`` target of ``serve_configs/*.yaml``.
- :mod:`.metrics`: the project's counters as Ray metrics.

Importing this package does not import Ray Serve; :mod:`.app` and :mod:`.deployment` do.
"""

from ultravqa_ray.serve.config import (
    AutoscalingConfig,
    BatchingConfig,
    ScorerDeploymentConfig,
    ScorerUserConfig,
    ServeConfig,
)
from ultravqa_ray.serve.outcome import ScoreOutcome

__all__ = ["AutoscalingConfig", "BatchingConfig", "ScoreOutcome", "ScorerDeploymentConfig", "ScorerUserConfig",
           "ServeConfig"]
