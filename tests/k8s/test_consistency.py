"""Consistency of the rendered manifests with each other and with the rest of the repository.

Schemas cannot see these: the Serve config mirrored into the RayService, image tags against the
Ray pin, topics and ACLs against what each component's config uses, references to Secrets and
ConfigMaps, GPU requests against limits, job clean-up, and data-only ConfigMaps.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from connectors.kafka import Topics
from tests.k8s.manifests import (
    JQ,
    K8S,
    KUBECTL_IMAGE,
    KUBERNETES_VERSION,
    OVERLAYS,
    ROOT,
    containers,
    load_yaml,
    name_of,
    of_kind,
    pod_specs,
    ray_cluster_specs,
    ray_pin,
    rendered,
    scheduled_runs,
)
from ultravqa_ray.pipelines.moderation import ModerationConfig
from ultravqa_ray.pipelines.stream import StreamConfig
from ultravqa_ray.train.retrain import RetrainConfig

ALL = sorted(OVERLAYS)
IMAGE_HOME = "/home/ray/ultravqa-ray/"  # WORKDIR of the Dockerfile: the repository inside the image
SERVE_SOURCE = ROOT / "serve_configs" / "cluster.yaml"
# The config class each job entry point loads its --config file and --set overrides into.
JOB_CONFIGS = {
    "jobs/train_sft.py": "ultravqa_ray.train.config:TrainConfig",
    "jobs/reference_pass.py": "ultravqa_ray.train.config:ReferenceConfig",
    "jobs/train_aso.py": "ultravqa_ray.train.config:TrainConfig",
    "jobs/evaluate.py": "ultravqa_ray.train.config:EvalConfig",
    "jobs/score_batch.py": "ultravqa_ray.pipelines.score_batch_config:ScoreBatchConfig",
    "jobs/retrain.py": "ultravqa_ray.train.retrain:RetrainConfig",
}
# Overrides an entry point adds itself after the command line's (train_sft.py, train_aso.py).
JOB_FIXED_OVERRIDES = {"jobs/train_sft.py": ["objective=sft"], "jobs/train_aso.py": ["objective=aso"]}


def _sync_module():
    spec = importlib.util.spec_from_file_location("sync_serve_config", K8S / "sync_serve_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _serve_config(resources) -> dict[str, Any]:
    [service] = of_kind(resources, "RayService")
    return yaml.safe_load(service["spec"]["serveConfigV2"])


# -- Serve config ---------------------------------------------------------------------------------


def test_ray_service_mirrors_the_serve_config_file():
    """GPU overlay: serve_configs/cluster.yaml verbatim; base and dev: its CPU variant."""
    sync = _sync_module()
    source = SERVE_SOURCE.read_text()
    assert sync.differences(source) == [], "run `python k8s/sync_serve_config.py`"
    cluster = yaml.safe_load(source)
    assert _serve_config(rendered("gpu")) == cluster
    for overlay in ("base", "dev"):
        assert _serve_config(rendered(overlay)) == sync.cpu_variant(cluster)


@pytest.mark.parametrize("overlay", ALL)
def test_moderation_rules_mirror_the_serve_configs_file(overlay):
    sync = _sync_module()
    rules = _config_map_yaml(rendered(overlay), "ultravqa-moderate-config", "rules.yaml")
    assert rules == yaml.safe_load(sync.RULES_SOURCE.read_text()), "run `python k8s/sync_serve_config.py`"


@pytest.mark.parametrize("overlay", ALL)
def test_serve_readiness_and_the_bridge_use_the_serve_port(overlay):
    resources = rendered(overlay)
    config = _serve_config(resources)
    port = (config.get("http_options") or {}).get("port", 8000)
    [service] = of_kind(resources, "RayService")
    groups = service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            probe = container["readinessProbe"]["httpGet"]
            assert (probe["path"], probe["port"]) == ("/-/healthz", port), group["groupName"]
    [app] = config["applications"]
    stream = _stream_config(resources)
    url = urlsplit(stream.scorer.url)
    assert stream.scorer.mode == "http"
    assert url.hostname == f"{service['metadata']['name']}-serve-svc" and url.port == port
    assert url.path.rstrip("/") == app.get("route_prefix", "/").rstrip("/")
    assert app["import_path"] == "ultravqa_ray.serve.app:build_app"
    model = app["args"]["model"]
    if model.startswith("/"):  # a checkpoint folder: on a volume of every Ray pod of the RayService
        assert any(model.startswith(m + "/") for m in _ray_pod_mounts(service)), model


def _quantity(value) -> float:
    """A Kubernetes CPU/GPU quantity ("8", "500m", 1) as a number."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _serve_replicas(app) -> list[tuple[str, int, int, float, float]]:
    """(deployment, min replicas, max replicas, CPUs, GPUs) as build_app and the YAML set them."""
    args = app.get("args") or {}
    out = []
    for d in app.get("deployments", []):
        options = d.get("ray_actor_options") or {}
        auto = d.get("autoscaling_config") or {}
        fixed = d.get("num_replicas")
        if fixed is None and d["name"] == "Decoder":  # build_app: num_replicas=args.decoder_replicas
            fixed = args.get("decoder_replicas", 1)
        low = fixed if fixed is not None else auto.get("min_replicas", 1)
        high = fixed if fixed is not None else auto.get("max_replicas", 1)
        out.append((d["name"], low, high, float(options.get("num_cpus", 1)), float(options.get("num_gpus", 0))))
    return out


@pytest.mark.parametrize("overlay", ALL)
def test_serve_and_ray_autoscaling_are_on_and_the_replicas_fit(overlay):
    """Serve scales the Scorer; the Ray autoscaler can always add the pods its replicas need."""
    resources = rendered(overlay)
    [service] = of_kind(resources, "RayService")
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", "no replica on the head"
    pods = []  # (max pods, CPUs, GPUs) per worker group
    for group in cluster["workerGroupSpecs"]:
        assert group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"]
        [container] = group["template"]["spec"]["containers"]
        limits = container["resources"]["limits"]
        pods.append((group["maxReplicas"], _quantity(limits["cpu"]), _quantity(limits.get("nvidia.com/gpu", 0))))
    [app] = _serve_config(resources)["applications"]
    replicas = _serve_replicas(app)
    scorer = next(r for r in replicas if r[0] == "Scorer")
    assert scorer[2] > scorer[1], "the Scorer must autoscale, not run a fixed replica count"
    for name, _, _, cpus, gpus in replicas:
        assert any(cpus <= c and gpus <= g for _, c, g in pods), f"no worker pod can hold one {name} replica"
    cpu_capacity = sum(n * c for n, c, _ in pods)
    gpu_capacity = sum(n * g for n, _, g in pods)
    assert sum(low * cpus for _, low, _, cpus, _ in replicas) <= cpu_capacity, "the minimum does not fit"
    assert sum(high * gpus for _, _, high, _, gpus in replicas) <= gpu_capacity, "GPUs Ray may never add"
    assert (gpu_capacity > 0) == (overlay == "gpu") and (scorer[4] > 0) == (overlay == "gpu")


# -- images and versions --------------------------------------------------------------------------


def _with_scheduled_runs(overlay: str) -> list[dict[str, Any]]:
    """The rendered resources and the RayJobs their schedules create (when jq can make them here)."""
    resources = rendered(overlay)
    return resources + ([run for _, run in scheduled_runs(resources)] if JQ else [])


@pytest.mark.parametrize("overlay", ALL)
def test_images_and_ray_versions_match_the_pin(overlay):
    """The project's image of the Ray pin everywhere; the schedule's kubectl of the oldest Kubernetes."""
    pin = ray_pin()
    suffix = "-gpu" if overlay == "gpu" else ""
    for resource in _with_scheduled_runs(overlay):
        for spec in ray_cluster_specs(resource):
            assert spec["rayVersion"] == pin, name_of(resource)
        for container in containers(resource):
            name, _, tag = container["image"].rpartition(":")
            if resource["kind"] == "CronJob" and name == KUBECTL_IMAGE:  # kubectl within one minor of the API
                assert re.fullmatch(re.escape(KUBERNETES_VERSION) + r"\.\d+", tag), container["image"]
                continue
            assert name.rsplit("/", 1)[-1] == "ultravqa-ray", container["image"]
            assert tag == f"{pin}-py311{suffix}", f"{name_of(resource)}: {container['image']}"


# -- Kafka: topics, users, ACLs -------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaClient:
    """What a component does on Kafka, read from its own configuration."""

    user: str
    reads: frozenset[str]
    writes: frozenset[str]
    group: str | None

    def acls(self) -> set[tuple[str, str, str]]:
        out = {("topic", t, op) for t in self.reads for op in ("Read", "Describe")}
        out |= {("topic", t, op) for t in self.writes for op in ("Write", "Describe")}
        if self.group:
            out.add(("group", self.group, "Read"))
        return out


def _config_map_yaml(resources, name: str, key: str) -> dict[str, Any]:
    [cm] = [r for r in of_kind(resources, "ConfigMap") if r["metadata"]["name"] == name]
    return yaml.safe_load(cm["data"][key]) or {}


def _stream_config(resources) -> StreamConfig:
    return StreamConfig.model_validate(_config_map_yaml(resources, "ultravqa-stream-config", "stream.yaml"))


def _job_config(job):
    """The job's config as its entry point loads it (``--config`` file plus ``--set`` overrides)."""
    script, args = _entrypoint_args(job)
    module, _, name = JOB_CONFIGS[script].partition(":")
    config_class = getattr(importlib.import_module(module), name)
    config = ROOT / args[args.index("--config") + 1].removeprefix(IMAGE_HOME)
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    return config_class.load(config, overrides + JOB_FIXED_OVERRIDES.get(script, []))


def _job_demand(config) -> list[tuple[int, float, float]]:
    """(Ray workers or actors, CPUs each, GPUs each) of each stage that a job's config runs."""
    if isinstance(config, RetrainConfig):  # training, then the scoring passes (one GPU each with use_gpu)
        gpus = 1.0 if config.use_gpu else 0.0
        return [(config.workers, config.cpus_per_worker, gpus), (config.actors, config.cpus_per_actor, gpus)]
    if hasattr(config, "cpus_per_worker"):  # TrainConfig
        return [(config.workers, config.cpus_per_worker, 1.0 if config.use_gpu else 0.0)]
    if hasattr(config, "cpus_per_actor"):  # ReferenceConfig, EvalConfig
        return [(config.actors, config.cpus_per_actor, config.gpus_per_actor)]
    res = config.resources  # ScoreBatchConfig
    return [(res.concurrency, res.score_num_cpus, res.num_gpus or 0.0)]


def _kafka_clients(resources) -> dict[str, KafkaClient]:
    stream = _stream_config(resources)
    moderate = ModerationConfig.model_validate(_config_map_yaml(resources, "ultravqa-moderate-config", "moderate.yaml"))
    [batch_job] = [j for j in of_kind(resources, "RayJob") if j["metadata"]["name"] == "ultravqa-score-batch"]
    batch = _job_config(batch_job)
    batch_topics = batch.topics
    return {
        "ultravqa-stream": KafkaClient(
            "ultravqa-stream",
            frozenset({stream.topics.uploads}),
            frozenset({stream.topics.scores, stream.topics.dead_letters}),
            stream.group_id,
        ),
        "ultravqa-moderate": KafkaClient(
            "ultravqa-moderate",
            frozenset({moderate.topics.scores}),
            frozenset({moderate.topics.moderation, moderate.topics.dead_letters}),
            moderate.group_id,
        ),
        "ultravqa-score-batch": KafkaClient(  # a bounded, group-less read (connectors/kafka/ray_read.py)
            "ultravqa-score-batch",
            frozenset({batch_topics.uploads} if batch.input.kind == "kafka" else ()),
            frozenset({batch_topics.scores, batch_topics.dead_letters} if batch.output.kafka else ()),
            None,
        ),
    }


def _user_of(resource) -> tuple[str | None, set[tuple[str, str]]]:
    """The SASL user name a workload sets, and the (secret, key) its password comes from."""
    users, passwords = set(), set()
    for container in containers(resource):
        for env in container.get("env", []):
            if env["name"] == "ULTRAVQA_KAFKA_SASL_USERNAME":
                users.add(env["value"])
            if env["name"] == "ULTRAVQA_KAFKA_SASL_PASSWORD":
                ref = env["valueFrom"]["secretKeyRef"]
                passwords.add((ref["name"], ref["key"]))
    assert len(users) <= 1, f"{resource['metadata']['name']} uses several Kafka users: {users}"
    return (users.pop() if users else None), passwords


@pytest.mark.parametrize("overlay", ALL)
def test_each_component_has_its_own_user_with_exactly_the_acls_it_needs(overlay):
    resources = rendered(overlay)
    clients = _kafka_clients(resources)
    topics = {r["spec"].get("topicName", r["metadata"]["name"]) for r in of_kind(resources, "KafkaTopic")}
    users = {r["metadata"]["name"]: r for r in of_kind(resources, "KafkaUser")}
    assert set(users) == set(clients), "one KafkaUser per component, and no unused user"
    for name, client in clients.items():
        missing = (client.reads | client.writes) - topics
        assert not missing, f"{name} uses topics that are not declared as KafkaTopics: {missing}"
        spec = users[name]["spec"]
        assert spec["authentication"]["type"] == "scram-sha-512"
        acls = set()
        for acl in spec["authorization"]["acls"]:
            resource = acl["resource"]
            assert resource.get("patternType", "literal") == "literal" and acl.get("type", "allow") == "allow"
            acls |= {(resource["type"], resource["name"], op) for op in acl["operations"]}
        assert acls == client.acls(), f"{name}: ACLs {sorted(acls ^ client.acls())} differ from its needs"
    workloads = {r["metadata"]["name"]: r for r in resources if r["kind"] in ("Deployment", "RayJob")}
    for name in clients:
        user, passwords = _user_of(workloads[name])
        assert user == name and passwords == {(name, "password")}, name
    others = [n for n, r in workloads.items() if n not in clients and _user_of(r)[0] is not None]
    assert not others, f"workloads with Kafka credentials but no client entry: {others}"


def test_topic_names_are_the_projects_and_topics_replicate_within_the_cluster():
    for overlay in ALL:
        resources = rendered(overlay)
        topics = {r["metadata"]["name"]: r["spec"] for r in of_kind(resources, "KafkaTopic")}
        assert set(topics) == set(Topics().all())
        replicas = sum(p["spec"]["replicas"] for p in of_kind(resources, "KafkaNodePool"))
        for name, spec in topics.items():
            isr = int(spec["config"]["min.insync.replicas"])
            assert 1 <= isr <= spec["replicas"] <= replicas, f"{overlay} {name}"
            if "compact" in spec["config"]["cleanup.policy"]:
                assert name in ("vqa.scores", "vqa.moderation"), "only keyed-by-video topics are compacted"


# -- references -----------------------------------------------------------------------------------


def _references(node: Any, out: dict[str, set[tuple[str, str | None]]]) -> None:
    """Collect (name, key or None) per kind ("Secret", "ConfigMap") anywhere in a resource."""
    if isinstance(node, list):
        for item in node:
            _references(item, out)
        return
    if not isinstance(node, dict):
        return
    for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
        if field in node:
            out[kind].add((node[field]["name"], node[field]["key"]))
    for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
        if field in node:
            out[kind].add((node[field]["name"], None))
    if isinstance(node.get("secret"), dict) and "secretName" in node["secret"]:
        items = node["secret"].get("items") or [{"key": None}]
        out["Secret"] |= {(node["secret"]["secretName"], item["key"]) for item in items}
    if isinstance(node.get("persistentVolumeClaim"), dict):
        out["PersistentVolumeClaim"].add((node["persistentVolumeClaim"]["claimName"], None))
    if isinstance(node.get("configMap"), dict) and "name" in node["configMap"]:
        items = node["configMap"].get("items") or [{"key": None}]
        out["ConfigMap"] |= {(node["configMap"]["name"], item["key"]) for item in items}
    for value in node.values():
        _references(value, out)


@pytest.mark.parametrize("overlay", ALL)
def test_every_secret_config_map_and_volume_claim_referenced_is_declared(overlay):
    resources = rendered(overlay)
    refs: dict[str, set[tuple[str, str | None]]] = {"Secret": set(), "ConfigMap": set(), "PersistentVolumeClaim": set()}
    for resource in resources:
        _references(resource.get("spec"), refs)
    claims = {r["metadata"]["name"] for r in of_kind(resources, "PersistentVolumeClaim")}
    assert {name for name, _ in refs["PersistentVolumeClaim"]} <= claims
    config_maps = {r["metadata"]["name"]: r.get("data", {}) for r in of_kind(resources, "ConfigMap")}
    for name, key in refs["ConfigMap"]:
        assert name in config_maps, f"ConfigMap {name} is referenced but not declared"
        assert key is None or key in config_maps[name], f"ConfigMap {name} has no key {key}"

    secrets: dict[str, set[str] | None] = {r["metadata"]["name"]: set(r.get("data", {})) for r in of_kind(resources, "Secret")}
    for user in of_kind(resources, "KafkaUser"):  # written by Strimzi's User Operator
        secrets[user["metadata"]["name"]] = {"password", "sasl.jaas.config"}
    for kafka in of_kind(resources, "Kafka"):  # written by Strimzi's Cluster Operator
        secrets[f"{kafka['metadata']['name']}-cluster-ca-cert"] = {"ca.crt", "ca.p12", "ca.password"}
    for entry in load_yaml(K8S / "external-secrets.yaml")["secrets"]:
        secrets[entry["name"]] = set(entry["keys"])
    for name, key in refs["Secret"]:
        assert name in secrets, f"Secret {name} is referenced but neither declared nor created by Strimzi"
        assert key is None or key in secrets[name], f"Secret {name} has no key {key}"
    assert refs["Secret"], "the walker found no reference at all"


@pytest.mark.parametrize("overlay", ALL)
def test_config_maps_hold_data_not_code(overlay):
    for cm in of_kind(rendered(overlay), "ConfigMap"):
        assert "binaryData" not in cm
        for key, value in cm.get("data", {}).items():
            assert not re.search(r"\.(py|sh|bash|js|rb|pl)$", key), f"{cm['metadata']['name']}: code file {key}"
            assert not value.startswith("#!"), f"{cm['metadata']['name']}/{key} is a script"
            if key.endswith((".yaml", ".yml")):
                assert isinstance(yaml.safe_load(value), dict), f"{key} is not a YAML mapping"


# -- workloads ------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ALL)
def test_gpu_requests_equal_limits(overlay):
    gpu_containers = 0
    for resource in rendered(overlay):
        for container in containers(resource):
            res = container.get("resources", {})
            requests, limits = res.get("requests", {}), res.get("limits", {})
            for name in set(requests) | set(limits):
                if name.endswith("/gpu"):
                    assert requests.get(name) == limits.get(name), f"{resource['metadata']['name']}: {name}"
                    gpu_containers += 1
    assert (gpu_containers > 0) == (overlay == "gpu")
    if overlay == "gpu":
        for resource in rendered(overlay):
            if resource["kind"] in ("RayService", "RayJob"):
                assert any("nvidia.com/gpu" in c["resources"].get("limits", {}) for c in containers(resource))


def _entrypoint_args(job) -> tuple[str, list[str]]:
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[0] == "python" and argv[1].startswith(IMAGE_HOME), argv
    return argv[1].removeprefix(IMAGE_HOME), argv[2:]


def _ray_pod_mounts(resource) -> set[str]:
    """Mount paths that every Ray container (head and workers) of the resource has."""
    ray = [c for c in containers(resource) if c["name"] in ("ray-head", "ray-worker")]
    assert ray, resource["metadata"]["name"]
    return set.intersection(*({m["mountPath"] for m in c.get("volumeMounts", [])} for c in ray))


@pytest.mark.parametrize("overlay", ALL)
def test_ray_jobs_clean_up_and_run_files_of_the_image(overlay):
    """Every RayJob, and every RayJob a schedule creates (named ultravqa-retrain-<random>)."""
    jobs = of_kind(_with_scheduled_runs(overlay), "RayJob")
    assert {name_of(j) for j in jobs} >= {
        "ultravqa-sft", "ultravqa-reference", "ultravqa-aso", "ultravqa-evaluate", "ultravqa-score-batch",
        "ultravqa-retrain",
    }  # fmt: skip
    assert not JQ or "ultravqa-retrain-" in {name_of(j) for j in jobs}
    for job in jobs:
        name, spec = name_of(job), job["spec"]
        assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] >= 0
        assert spec["submissionMode"] == "K8sJobMode" and "submitterPodTemplate" in spec
        assert spec.get("activeDeadlineSeconds", 0) > 0
        script, args = _entrypoint_args(job)
        assert (ROOT / script).is_file(), f"{name}: {script} is not in the repository"
        config = args[args.index("--config") + 1]
        assert config.startswith(IMAGE_HOME) and (ROOT / config.removeprefix(IMAGE_HOME)).is_file(), config
        assert script in JOB_CONFIGS, f"{name}: add {script}'s config class to JOB_CONFIGS"
        _job_config(job)  # the --set keys exist and the values validate
        overrides = dict(a.partition("=")[::2] for i, a in enumerate(args) if i and args[i - 1] == "--set")
        mounts = _ray_pod_mounts(job)
        for key, value in overrides.items():
            if value.startswith("/"):  # a local path must be on a volume every Ray pod of the job mounts
                assert any(value == m or value.startswith(m + "/") for m in mounts), f"{name}: {key}={value}"
        if "output_dir" in overrides:  # training: checkpoints on object storage
            assert overrides["output_dir"].startswith("s3://"), f"{name} keeps checkpoints on a pod's disk"
        # the workers or actors the config asks for fit the job's worker pods, on GPUs in the GPU overlay
        for count, cpus, gpus in _job_demand(_job_config(job)):
            slots = 0
            for group in spec["rayClusterSpec"]["workerGroupSpecs"]:
                [container] = group["template"]["spec"]["containers"]
                limits = container["resources"]["limits"]
                per_pod = _quantity(limits["cpu"]) // cpus if cpus else float("inf")
                if gpus:
                    per_pod = min(per_pod, _quantity(limits.get("nvidia.com/gpu", 0)) // gpus)
                slots += group["maxReplicas"] * per_pod
            assert count <= slots, f"{name}: {count} x ({cpus} CPU, {gpus} GPU) do not fit its workers"
            assert (gpus > 0) == (overlay == "gpu"), f"{name}: GPUs {gpus} in overlay {overlay}"


@pytest.mark.parametrize("overlay", ALL)
def test_deployments_probe_the_health_port_and_drain_before_sigkill(overlay):
    resources = rendered(overlay)
    drain = {"ultravqa-stream": _stream_config(resources).drain_timeout_s}
    for deployment in of_kind(resources, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        command = container["command"]
        port = int(command[command.index("--health-port") + 1])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = container[probe]["httpGet"]
            assert get["path"] == path and ports.get(get["port"], get["port"]) == port
        for flag in ("--config", "--rules"):
            if flag in command:
                path = command[command.index(flag) + 1]
                mounts = {m["mountPath"] for m in container["volumeMounts"]}
                assert any(path.startswith(m + "/") for m in mounts), f"{path} is not mounted"
        name = deployment["metadata"]["name"]
        if name in drain:
            assert pod["terminationGracePeriodSeconds"] > drain[name]


def test_pod_specs_run_as_documented():
    """Shared memory for Ray workers and the kafka CA where a Kafka client runs."""
    for resource in rendered("gpu"):
        for pod in pod_specs(resource):
            names = {c["name"] for c in pod["containers"]}
            if "ray-worker" in names:
                assert any(v["name"] == "dshm" for v in pod.get("volumes", [])), resource["metadata"]["name"]
            user, _ = _user_of({"metadata": resource["metadata"], "spec": pod})
            if user:
                assert any(v.get("secret", {}).get("secretName", "").endswith("-cluster-ca-cert") for v in pod["volumes"])


@pytest.mark.parametrize("overlay", ALL)
def test_retraining_gates_against_the_served_model_and_keeps_its_steps_on_the_shared_volume(overlay):
    """The gate's baseline is what the Scorer serves; the step log outlives each run's Ray cluster."""
    resources = rendered(overlay)
    [job] = [j for j in of_kind(resources, "RayJob") if j["metadata"]["name"] == "ultravqa-retrain"]
    config = _job_config(job)
    [app] = _serve_config(resources)["applications"]
    [scorer] = [d for d in app["deployments"] if d["name"] == "Scorer"]
    assert config.production == scorer["user_config"]["model"], "production is not the model the Scorer serves"
    mounts = _ray_pod_mounts(job)
    for path in (*config.manifests, config.heldout, config.base_model, config.production):
        assert not path.startswith("/") or any(path.startswith(m + "/") for m in mounts), path
    claimed = set.intersection(*(
        {m["mountPath"] for m in c["volumeMounts"] if m["name"] in _claim_volumes(pod)}
        for pod in pod_specs(job) for c in pod["containers"] if c["name"] in ("ray-head", "ray-worker")
    ))  # fmt: skip
    assert any(config.work_dir.startswith(m + "/") for m in claimed), f"work_dir {config.work_dir} is not on a volume claim"


def _claim_volumes(pod) -> set[str]:
    return {v["name"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
