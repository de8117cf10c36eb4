"""Swap the model of a running scoring application without a restart (``ultravqa-ray serve-swap``).

The model served is part of the Scorer deployment's ``user_config`` (``model``,
:class:`~ultravqa_ray.serve.config.ScorerUserConfig`). :func:`swap_model` reads the application's
config as the Serve controller holds it (an application deployed from a config: ``serve deploy``,
a RayService's ``serveConfigV2``, or :func:`deploy_config`), changes only that field and submits the
config again. The code version is unchanged, so Serve does not restart a replica: it calls
``reconfigure()`` on each, which loads the new model beside the old one and switches between
batches (:class:`~ultravqa_ray.serve.deployment.Scorer`). It then waits until every running replica
has decided: serving the new model, or refused it (the old model goes on serving; the reason comes
back in the report).

An application started with ``serve.run`` (imperative) has no config in the controller: a new
``serve.run`` of it gets a new code version and restarts its replicas one by one instead. Under
KubeRay, change ``user_config.model`` in the RayService's ``serveConfigV2`` (the operator submits the
same update): a swap made with this module is undone by the operator's next reconciliation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ultravqa_ray.serve.config import ServeConfig

log = logging.getLogger(__name__)

SCORER = "Scorer"


class SwapError(RuntimeError):
    """The swap could not be requested, or not every replica decided in time."""


@dataclass
class SwapReport:
    """What every replica of the Scorer did with the swap request."""

    app: str
    model: str
    seconds: float  # from the request to every running replica having decided
    replicas: dict[str, dict[str, Any]] = field(default_factory=dict)  # replica tag -> Scorer.model_status()

    @property
    def serving_new(self) -> list[str]:
        return [tag for tag, s in self.replicas.items() if s["configured"] == self.model]

    @property
    def refused(self) -> dict[str, str]:
        """Replica tag -> why it kept the old model."""
        return {
            tag: (s.get("last_swap") or {}).get("error") or "not swapped"
            for tag, s in self.replicas.items()
            if s["configured"] != self.model
        }

    @property
    def ok(self) -> bool:
        return bool(self.replicas) and not self.refused

    def summary(self) -> dict[str, Any]:
        return {"app": self.app, "model": self.model, "ok": self.ok, "seconds": round(self.seconds, 3),
                "replicas": self.replicas}  # fmt: skip


def with_model(app_config: dict[str, Any], model: str) -> dict[str, Any]:
    """An application config (Serve's ``applications:`` entry) whose Scorer ``user_config`` names ``model``.

    A config with no ``Scorer`` entry gets one whose ``user_config`` is the code default
    (``args.scorer.batching``), so the batching does not change with the model.
    """
    config = dict(app_config)
    deployments = [dict(d) for d in config.get("deployments") or []]
    scorer = next((d for d in deployments if d.get("name") == SCORER), None)
    if scorer is None:
        scorer = {"name": SCORER}
        deployments.append(scorer)
    user_config = scorer.get("user_config")
    if user_config is None:
        batching = ServeConfig.model_validate(config.get("args") or {}).scorer.batching
        user_config = batching.model_dump(exclude_none=True)
    scorer["user_config"] = {**user_config, "model": model}
    config["deployments"] = deployments
    return config


def deploy_config(applications: list[dict[str, Any]]) -> None:
    """Submit applications to the running Serve as ``serve deploy`` does (declarative: later
    ``user_config`` changes reconfigure live replicas). Applications deployed this way that are not
    in ``applications`` are kept: the controller's other declarative applications are resubmitted."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    client = _get_global_client()
    if client is None:
        raise SwapError("Serve is not running on this Ray cluster")
    current = _app_configs(client)
    names = {a["name"] for a in applications}
    merged = [c for name, c in current.items() if name not in names] + list(applications)
    client.deploy_apps(ServeDeploySchema.model_validate({"applications": merged}))


def swap_model(app: str, model: str, *, timeout_s: float = 600.0, poll_s: float = 0.2) -> SwapReport:
    """Ask ``app``'s Scorer replicas to serve ``model`` and wait until each has decided (module docstring)."""
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    current = _app_configs(client)
    if app not in current:
        raise SwapError(
            f"application {app!r} was not deployed from a config (serve deploy, RayService): a swap "
            f"changes its Scorer user_config; declarative applications here: {sorted(current) or 'none'}"
        )
    started = time.perf_counter()
    log.info("swapping %s's model to %s", app, model)
    deploy_config([with_model(current[app], model)])
    report = wait_for_replicas(app, model, started=started, timeout_s=timeout_s, poll_s=poll_s)
    if report.ok:
        log.info("every replica of %s serves %s (%.2fs)", app, model, report.seconds)
    else:
        log.error("model swap of %s to %s refused: %s", app, model, report.refused)
    return report


def wait_for_replicas(
    app: str, model: str, *, started: float, timeout_s: float = 600.0, poll_s: float = 0.2
) -> SwapReport:
    """Poll the Scorer replicas (``model_status``) until every running one has decided about ``model``."""
    from ray import serve

    handle = serve.get_deployment_handle(SCORER, app)
    deadline = started + timeout_s
    seen: dict[str, dict[str, Any]] = {}
    while time.perf_counter() < deadline:
        running = _running_replicas(app)
        for _ in range(max(4, 4 * running)):  # routing picks replicas at random: sample each a few times
            status = handle.model_status.remote().result(timeout_s=max(1.0, deadline - time.perf_counter()))
            seen[status["replica"]] = status
        decided = {tag: s for tag, s in seen.items() if _decided(s, model)}
        if running and len(decided) >= running and _deployment_steady(app):
            latest = {tag: s for tag, s in seen.items()}
            return SwapReport(app, model, time.perf_counter() - started, latest)
        time.sleep(poll_s)
    raise SwapError(f"not every replica of {app!r} decided about {model!r} within {timeout_s:.0f}s: {seen}")


def _decided(status: dict[str, Any], model: str) -> bool:
    last = status.get("last_swap") or {}
    return status["configured"] == model or (last.get("to") == model and not last.get("ok"))


def _running_replicas(app: str) -> int:
    from ray import serve

    deployment = serve.status().applications[app].deployments[SCORER]
    return sum(int(n) for state, n in deployment.replica_states.items() if str(state).endswith("RUNNING"))


def _deployment_steady(app: str) -> bool:
    from ray import serve

    return str(serve.status().applications[app].deployments[SCORER].status) in (
        "HEALTHY",
        "DeploymentStatus.HEALTHY",
    )


def _app_configs(client) -> dict[str, dict[str, Any]]:
    import ray

    configs = ray.get(client._controller.get_app_configs.remote())
    return {name: c.model_dump(mode="json", exclude_unset=True) for name, c in configs.items()}
