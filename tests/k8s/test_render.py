"""The Python renderer (kustomize_lite) does what kustomize does, and refuses what it does not do."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.k8s.kustomize_lite import UnsupportedKustomization, render, split_image
from tests.k8s.manifests import OVERLAYS


def _key(r):
    return (r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
@pytest.mark.parametrize("root", [root for roots in OVERLAYS.values() for root in roots], ids=str)
def test_same_objects_as_kubectl_kustomize(root):
    out = subprocess.run(["kubectl", "kustomize", str(root)], capture_output=True, text=True, timeout=60, check=True)
    theirs = {_key(r): r for r in yaml.safe_load_all(out.stdout) if r}
    ours = {_key(r): r for r in render(root)}
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key] == theirs[key], f"{key} renders differently"


def test_overlays_render_their_own_shape():
    """The dev overlay is small and in its own namespace; the GPU overlay uses the CUDA image."""
    dev = render(OVERLAYS["dev"][0])
    assert {r["metadata"]["namespace"] for r in dev} == {"ultravqa-dev"}
    pool = next(r for r in dev if r["kind"] == "KafkaNodePool")
    assert pool["spec"]["replicas"] == 1 and pool["spec"]["storage"] == {
        "type": "ephemeral", "sizeLimit": "10Gi", "kraftMetadata": "shared"
    }  # fmt: skip
    gpu = render(OVERLAYS["gpu"][0])
    images = {c["image"] for r in gpu for c in _containers(r)}
    assert images == {"ultravqa-ray:2.60.0-py311-gpu"}


def _containers(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "containers":
                yield from v
            else:
                yield from _containers(v)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def _write(tmp_path, kustomization, **files):
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    for name, docs in files.items():
        (tmp_path / name).write_text(yaml.safe_dump_all(docs))
    return tmp_path


def test_patches_merge_maps_replace_lists_and_delete_nulls(tmp_path):
    base = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "c"},
            "spec": {"a": {"x": 1, "y": 2}, "groups": [{"n": 1}, {"n": 2}], "gone": True}}  # fmt: skip
    patch = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "c"},
             "spec": {"a": {"y": 3}, "groups": [{"n": 9}], "gone": None}}  # fmt: skip
    root = _write(tmp_path, {"resources": ["r.yaml"], "patches": [{"path": "p.yaml"}], "namespace": "ns"},
                  **{"r.yaml": [base], "p.yaml": [patch]})  # fmt: skip
    [out] = render(root)
    assert out["spec"] == {"a": {"x": 1, "y": 3}, "groups": [{"n": 9}]}
    assert out["metadata"]["namespace"] == "ns"


def test_refuses_what_it_does_not_implement(tmp_path):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}}
    list_patch = {**deployment, "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}
    root = _write(tmp_path, {"resources": ["r.yaml"], "patches": [{"path": "p.yaml"}]},
                  **{"r.yaml": [deployment], "p.yaml": [list_patch]})  # fmt: skip
    with pytest.raises(UnsupportedKustomization, match="lists in a patch of built-in Deployment"):
        render(root)
    _write(tmp_path, {"resources": ["r.yaml"], "namePrefix": "x-"})
    with pytest.raises(UnsupportedKustomization, match="namePrefix"):
        render(tmp_path)
    _write(tmp_path, {"configMapGenerator": [{"name": "c", "literals": ["A=1"]}]})
    with pytest.raises(UnsupportedKustomization, match="disableNameSuffixHash"):
        render(tmp_path)


def test_images_are_retagged_at_any_depth():
    assert split_image("registry:5000/team/ultravqa-ray:2.60.0-py311") == ("registry:5000/team/ultravqa-ray", "2.60.0-py311")
    assert split_image("registry:5000/ultravqa-ray") == ("registry:5000/ultravqa-ray", None)
    gpu_jobs = render(OVERLAYS["gpu"][1])
    submitters = [c for r in gpu_jobs if r["kind"] == "RayJob"
                  for c in r["spec"]["submitterPodTemplate"]["spec"]["containers"]]  # fmt: skip
    assert submitters and {c["image"] for c in submitters} == {"ultravqa-ray:2.60.0-py311-gpu"}


def test_role_binding_subjects_follow_their_service_account(tmp_path):
    """kustomize moves a ServiceAccount subject with the ServiceAccount it names; others are refused."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "old"}}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
               "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "old"}, {"kind": "User", "name": "u"}]}  # fmt: skip
    root = _write(tmp_path, {"resources": ["r.yaml"], "namespace": "ns"}, **{"r.yaml": [account, binding]})
    [_, out] = render(root)
    assert out["subjects"] == [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}, {"kind": "User", "name": "u"}]
    del account["metadata"]["namespace"]  # the subject names "sa" of namespace "old": another account
    _write(tmp_path, {"resources": ["r.yaml"], "namespace": "ns"}, **{"r.yaml": [account, binding]})
    with pytest.raises(UnsupportedKustomization, match="names ServiceAccount sa in namespace old, which is not one"):
        render(tmp_path)
