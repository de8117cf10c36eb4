"""What the k8s tests look at: the rendered overlays, the project's pins, and small walkers.

Each overlay has two kustomize roots: the always-on services (``k8s/overlays/<name>``) and the
on-demand jobs (``k8s/overlays/<name>/jobs``); the base is rendered too. Rendering uses
:mod:`tests.k8s.kustomize_lite`, which test_render.py checks against ``kubectl kustomize``.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.k8s.kustomize_lite import Resource, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
SCHEMAS = K8S / "schemas"
SHARED_SCHEMAS = ROOT.parent / "shared" / "k8s-schemas"
KUBERNETES_VERSION = "1.33"  # the oldest Kubernetes the manifests promise to run on

OVERLAYS = {
    "base": (K8S / "base", K8S / "base" / "jobs"),
    "dev": (K8S / "overlays" / "dev", K8S / "overlays" / "dev" / "jobs"),
    "gpu": (K8S / "overlays" / "gpu", K8S / "overlays" / "gpu" / "jobs"),
}

# Custom resources and the schema each validates against.
CRD_SCHEMAS = {
    ("ray.io/v1", "RayCluster"): "rayclusters_v1.json",
    ("ray.io/v1", "RayJob"): "rayjobs_v1.json",
    ("ray.io/v1", "RayService"): "rayservices_v1.json",
    ("kafka.strimzi.io/v1", "Kafka"): "strimzi_kafka_v1.json",
    ("kafka.strimzi.io/v1", "KafkaNodePool"): "strimzi_kafkanodepool_v1.json",
    ("kafka.strimzi.io/v1", "KafkaTopic"): "strimzi_kafkatopic_v1.json",
    ("kafka.strimzi.io/v1", "KafkaUser"): "strimzi_kafkauser_v1.json",
}
# Built-in kinds, validated by kubernetes-validate.
BUILT_IN = {
    ("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "PersistentVolumeClaim"), ("v1", "Service"), ("v1", "Secret"),
    ("v1", "ServiceAccount"), ("batch/v1", "CronJob"),
    ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
}  # fmt: skip
# The one image that is not the project's: the schedule's starter needs a shell, kubectl and jq.
KUBECTL_IMAGE = "alpine/k8s"
JQ = shutil.which("jq")  # runs the starter's filters on the rendered template (tests/k8s/test_schedule.py)


@functools.cache
def _rendered(overlay: str) -> tuple[Resource, ...]:
    services, jobs = OVERLAYS[overlay]
    return tuple(render(services) + render(jobs))


def rendered(overlay: str) -> list[Resource]:
    """Services + jobs of an overlay, rendered (cached; each caller gets its own deep copy to change)."""
    return copy.deepcopy(list(_rendered(overlay)))


def of_kind(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def ray_pin() -> str:
    """The Ray version pinned in pyproject.toml (``ray[...]==X.Y.Z``)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [m.group(1) for d in deps if (m := re.fullmatch(r"ray(?:\[[^\]]*\])?==([\d.]+)", d.replace(" ", "")))]
    assert len(pins) == 1, f"expected one exact Ray pin in pyproject.toml, found {pins}"
    return pins[0]


def ray_cluster_specs(resource: Resource) -> list[dict[str, Any]]:
    """The RayCluster spec inside a RayCluster, RayService or RayJob."""
    spec = resource.get("spec", {})
    return {
        "RayCluster": [spec],
        "RayService": [spec.get("rayClusterConfig", {})],
        "RayJob": [spec.get("rayClusterSpec", {})],
    }.get(resource["kind"], [])


def containers(node: Any) -> Iterator[dict[str, Any]]:
    """Every container (and init container) anywhere in a resource."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from value
            else:
                yield from containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from containers(item)


def pod_specs(node: Any) -> Iterator[dict[str, Any]]:
    """Every pod spec (a mapping with a ``containers`` list) anywhere in a resource."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield node
        for value in node.values():
            yield from pod_specs(value)
    elif isinstance(node, list):
        for item in node:
            yield from pod_specs(item)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def jq(program: str, data: Any, **args: str) -> list[Any]:
    """The JSON values that jq prints for ``program`` on ``data`` (``args`` as ``--arg NAME VALUE``)."""
    assert JQ, "jq is not installed"
    argv = [JQ, "-c", *(a for name, value in args.items() for a in ("--arg", name, value)), program]
    out = subprocess.run(argv, input=json.dumps(data), capture_output=True, text=True, timeout=30, check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def scheduled_runs(resources: list[Resource]) -> list[tuple[Resource, Resource]]:
    """(CronJob, the RayJob it creates) for each schedule: its ``NEW_RUN`` filter on its template.

    The starter pod (k8s/base/jobs/schedule.retrain.yaml) pipes ``kubectl get rayjob $TEMPLATE`` through
    jq with ``$NEW_RUN``; here the same filter runs on the rendered template.
    """
    runs = []
    for cron in (r for r in resources if r["kind"] == "CronJob"):
        [container] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        env = env_of(container)
        [template] = [r for r in resources if r["kind"] == "RayJob" and r["metadata"]["name"] == env["TEMPLATE"]]
        [run] = jq(env["NEW_RUN"], template)
        runs.append((cron, run))
    return runs


def name_of(resource: Resource) -> str:
    """A resource's name, or ``generateName`` for one created with a generated name."""
    return resource["metadata"].get("name") or resource["metadata"]["generateName"]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))
