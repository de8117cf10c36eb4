"""k8s/sync_serve_config.py: writes the Serve config into the RayService manifests, and --check sees drift."""

from __future__ import annotations

import importlib.util
import shutil

import pytest
import yaml

from tests.k8s.manifests import K8S

SOURCE = """\
# the cluster file
proxy_location: EveryNode
http_options: {host: 0.0.0.0, port: 8000}
applications:
  - name: ultravqa
    route_prefix: /
    import_path: ultravqa_ray.serve.app:build_app
    args: {model: s3://bucket/aso, device: cuda, scorer: {num_gpus: 1, num_cpus: 2}}
    deployments:
      - name: Scorer
        ray_actor_options: {num_cpus: 4, num_gpus: 1}
        autoscaling_config: {min_replicas: 1, max_replicas: 4}
"""


@pytest.fixture(scope="module")
def sync():
    spec = importlib.util.spec_from_file_location("sync_serve_config", K8S / "sync_serve_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def targets(sync, tmp_path):
    out = []
    for target in sync.TARGETS:
        copy = tmp_path / f"{target.variant}.yaml"
        shutil.copy(target.path, copy)
        out.append(sync.Target(copy, target.variant))
    return tuple(out)


def test_cpu_variant_asks_for_no_gpu_and_changes_nothing_else(sync):
    config = yaml.safe_load(SOURCE)
    cpu = sync.cpu_variant(config)
    [app] = cpu["applications"]
    assert app["deployments"][0]["ray_actor_options"] == {"num_cpus": 4, "num_gpus": 0}
    assert app["args"] == {"model": "s3://bucket/aso", "device": "cpu", "scorer": {"num_gpus": 0, "num_cpus": 2}}
    assert cpu["http_options"] == config["http_options"] and app["deployments"][0]["autoscaling_config"] == {
        "min_replicas": 1, "max_replicas": 4
    }  # fmt: skip
    assert yaml.safe_load(SOURCE) == config, "the source is not modified"


def test_sync_writes_the_block_and_keeps_the_rest(sync, targets):
    before = {t.path: t.path.read_text() for t in targets}
    written = sync.sync(SOURCE, targets)
    assert set(written) == {t.path for t in targets}
    assert sync.differences(SOURCE, targets) == []
    exact, cpu = targets
    assert sync.serve_config_of(exact.path.read_text()) == yaml.safe_load(SOURCE)
    assert "# the cluster file" in exact.path.read_text(), "the verbatim copy keeps comments"
    for target in targets:
        old, new = yaml.safe_load_all(before[target.path]), yaml.safe_load_all(target.path.read_text())
        for a, b in zip(old, new, strict=True):
            a["spec"].pop("serveConfigV2"), b["spec"].pop("serveConfigV2")
            assert a == b, "only serveConfigV2 changes"
    assert sync.sync(SOURCE, targets) == [], "a second run writes nothing"


def test_check_reports_a_stale_manifest(sync, targets):
    sync.sync(SOURCE, targets)
    changed = SOURCE.replace("max_replicas: 4", "max_replicas: 6")
    stale = sync.differences(changed, targets)
    assert len(stale) == 2 and all("max_replicas: 6" in message for message in stale)


def test_replace_block_refuses_an_ambiguous_manifest(sync):
    with pytest.raises(ValueError, match="found 0"):
        sync.replace_block("kind: RayService\nspec: {}\n", "a: 1\n")
