"""Resource planning of a training run: what the workers reserve, what is left for the data pipeline.

Ray Train workers hold their CPU reservation for the whole run, while the Ray Data tasks that feed
them (reading the decoded-frame cache, attaching pi_ref) need CPUs of their own. When the workers
take every CPU, those tasks never start (Ray Data reports ``backpressured: ResourceBudget``) and the
run waits forever. :func:`plan_resources` checks the cluster before anything starts:

- the workers plus ``data_cpus`` fit: nothing changes;
- ``cpus_per_worker`` is unset (the default): it becomes 1.0, or what fits beside the data share
  (at least :data:`MIN_CPUS_PER_WORKER`), and the plan says so in one line;
- otherwise (an explicit ``cpus_per_worker``, too many workers, too few GPUs): a
  :class:`ResourceError` names the numbers and the setting to change.

Nodes may still be joining when a job starts (a KubeRay cluster whose worker pods are coming up):
:func:`wait_and_plan` asks again for ``resource_wait_s`` before refusing. ``check_resources: false``
skips the check (a cluster that adds nodes on demand).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ultravqa_ray.train.config import TrainConfig

DEFAULT_CPUS_PER_WORKER = 1.0
MIN_CPUS_PER_WORKER = 0.1


class ResourceError(ValueError):
    """The cluster cannot hold the run's workers beside its data pipeline; the message names both."""


@dataclass(frozen=True)
class ResourcePlan:
    cpus_per_worker: float
    note: str | None = None  # one line, when the plan differs from what the config says

    def worker_resources(self, config: TrainConfig) -> dict[str, float]:
        gpus = {"GPU": 1.0} if config.use_gpu else {}
        return {"CPU": self.cpus_per_worker, **config.worker_resources} | gpus


def _floor(value: float, step: float = 0.05) -> float:
    return math.floor(value / step + 1e-9) * step


def plan_resources(config: TrainConfig, cluster: dict[str, Any]) -> ResourcePlan:
    """The per-worker CPU reservation for ``config`` on a cluster with ``cluster`` resources
    (``ray.cluster_resources()``); raises :class:`ResourceError` when the run cannot fit."""
    asked = config.cpus_per_worker
    if not config.check_resources:
        return ResourcePlan(asked if asked is not None else DEFAULT_CPUS_PER_WORKER)
    n, data = config.workers, config.data_cpus
    total = float(cluster.get("CPU", 0.0))
    if config.use_gpu and float(cluster.get("GPU", 0.0)) < n:
        raise ResourceError(
            f"{n} workers with use_gpu need {n} GPUs, the cluster has {cluster.get('GPU', 0):g}: "
            "lower workers or set use_gpu=false"
        )
    cpus = asked if asked is not None else DEFAULT_CPUS_PER_WORKER
    if n * cpus + data <= total + 1e-9:
        return ResourcePlan(cpus)
    fitting = _floor((total - data) / n)
    if asked is None and fitting >= MIN_CPUS_PER_WORKER:
        return ResourcePlan(
            fitting,
            f"{n} workers x {cpus:g} CPU + {data:g} CPU for the data pipeline exceed the cluster's {total:g} "
            f"CPUs: reserving {fitting:g} CPU per worker (set cpus_per_worker to choose)",
        )
    setting = "cpus_per_worker" if asked is not None and fitting >= MIN_CPUS_PER_WORKER else "workers"
    raise ResourceError(
        f"{n} workers x {cpus:g} CPU + {data:g} CPU for the data pipeline (data_cpus) need {n * cpus + data:g} "
        f"CPUs, the cluster has {total:g}: lower {setting}"
        + (f" (at most {fitting:g} CPU per worker fits)" if fitting >= MIN_CPUS_PER_WORKER else "")
    )


def wait_and_plan(config: TrainConfig, cluster_resources: Callable[[], dict[str, Any]], poll_s: float = 2.0) -> ResourcePlan:
    """:func:`plan_resources` on ``cluster_resources()``, asked again for up to ``config.resource_wait_s``
    while the run does not fit (nodes joining); the last refusal is raised."""
    deadline = time.monotonic() + config.resource_wait_s
    while True:
        try:
            return plan_resources(config, cluster_resources())
        except ResourceError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(poll_s)
