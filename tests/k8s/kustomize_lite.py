"""A small, honest renderer of the kustomize subset that k8s/ uses, so CI needs no kustomize binary.

Supported (anything else in a kustomization.yaml raises, naming the key):

- ``resources``: YAML files and folders holding a kustomization.yaml (rendered first, recursively);
- ``namespace``: set on every resource (all kinds used here are namespaced; a cluster-scoped kind
  raises), and on the ``ServiceAccount`` subjects of a RoleBinding that name a ServiceAccount of the
  same kustomization in its namespace (kustomize's name-reference rule; any other ServiceAccount
  subject raises);
- ``configMapGenerator`` with ``literals`` (``KEY=VALUE``) and ``files`` (key = file name), only
  with ``generatorOptions.disableNameSuffixHash: true`` (kustomize's hash suffix is not reproduced);
- ``images``: ``name`` -> ``newName`` / ``newTag`` on every ``containers`` / ``initContainers`` entry,
  at any depth (as kustomize does for custom resources too);
- ``patches`` with ``path``: a strategic-merge patch matched on kind + name. Custom resources merge as
  kustomize merges them without a schema (maps merge, lists are replaced, ``null`` deletes a key); a
  patch of a built-in kind may not contain lists, whose strategic merge (by merge key) this renderer
  does not implement.

kustomize itself, where installed (``kubectl kustomize``), must produce the same objects:
tests/k8s/test_render.py compares the two.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED_KEYS = {
    "apiVersion", "kind", "resources", "namespace", "configMapGenerator", "generatorOptions", "images", "patches",
}  # fmt: skip
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume"}
BUILT_IN_GROUPS = {"v1", "apps/v1", "batch/v1", "networking.k8s.io/v1", "policy/v1", "rbac.authorization.k8s.io/v1"}


class UnsupportedKustomization(ValueError):
    """The kustomization uses something outside the subset above."""


def load_yaml_documents(path: Path) -> list[Resource]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


def render(root: Path) -> list[Resource]:
    """Render the kustomization in ``root`` into a list of resources."""
    kfile = root / "kustomization.yaml"
    spec = yaml.safe_load(kfile.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - SUPPORTED_KEYS
    if unknown:
        raise UnsupportedKustomization(f"{kfile}: unsupported keys {sorted(unknown)}")

    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        target = (root / entry).resolve()
        resources.extend(render(target) if target.is_dir() else load_yaml_documents(target))
    resources.extend(_generate_config_maps(root, spec))
    for patch in spec.get("patches", []):
        _apply_patch(resources, root, patch)
    if "namespace" in spec:
        _namespace_subjects(resources, spec["namespace"], kfile)
        for res in resources:
            if res["kind"] in CLUSTER_SCOPED:
                raise UnsupportedKustomization(f"{kfile}: cluster-scoped {res['kind']} with a namespace")
            res.setdefault("metadata", {})["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        for res in resources:
            _set_image(res, image)
    return resources


def _namespace_subjects(resources: list[Resource], namespace: str, kfile: Path) -> None:
    """Move a RoleBinding's ServiceAccount subjects with the ServiceAccounts they name (before those move)."""
    accounts = {
        (r["metadata"]["name"], r["metadata"].get("namespace")) for r in resources if r["kind"] == "ServiceAccount"
    }
    for binding in (r for r in resources if r["kind"] == "RoleBinding"):
        for subject in binding.get("subjects", []):
            if subject["kind"] != "ServiceAccount":
                continue
            if (subject["name"], subject.get("namespace")) not in accounts:
                raise UnsupportedKustomization(
                    f"{kfile}: RoleBinding {binding['metadata']['name']} names ServiceAccount {subject['name']} "
                    f"in namespace {subject.get('namespace')}, which is not one of its resources"
                )
            subject["namespace"] = namespace


def _generate_config_maps(root: Path, spec: dict[str, Any]) -> list[Resource]:
    generators = spec.get("configMapGenerator", [])
    if not generators:
        return []
    if not (spec.get("generatorOptions") or {}).get("disableNameSuffixHash"):
        raise UnsupportedKustomization(f"{root}: configMapGenerator needs generatorOptions.disableNameSuffixHash")
    out = []
    for gen in generators:
        unknown = set(gen) - {"name", "literals", "files"}
        if unknown:
            raise UnsupportedKustomization(f"{root}: configMapGenerator {gen.get('name')}: {sorted(unknown)}")
        data: dict[str, str] = {}
        for literal in gen.get("literals", []):
            key, sep, value = literal.partition("=")
            if not sep:
                raise UnsupportedKustomization(f"{root}: literal {literal!r} is not KEY=VALUE")
            data[key] = value
        for name in gen.get("files", []):
            if "=" in name:
                raise UnsupportedKustomization(f"{root}: renamed file {name!r}")
            path = root / name
            data[path.name] = path.read_text(encoding="utf-8")
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    return out


def _apply_patch(resources: list[Resource], root: Path, patch: dict[str, Any]) -> None:
    if set(patch) != {"path"}:
        raise UnsupportedKustomization(f"{root}: only `patches: - path: FILE` is supported, got {patch}")
    for doc in load_yaml_documents(root / patch["path"]):
        kind, name = doc["kind"], doc["metadata"]["name"]
        matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
        if len(matches) != 1:
            raise UnsupportedKustomization(f"{root / patch['path']}: {kind}/{name} matches {len(matches)} resources")
        if doc.get("apiVersion") in BUILT_IN_GROUPS and _has_list(doc):
            raise UnsupportedKustomization(f"{root / patch['path']}: lists in a patch of built-in {kind}")
        body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
        _merge(matches[0], body)


def _has_list(node: Any) -> bool:
    if isinstance(node, list):
        return True
    return isinstance(node, dict) and any(_has_list(v) for v in node.values())


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _set_image(node: Any, image: dict[str, Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _set_image(item, image)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("containers", "initContainers") and isinstance(value, list):
            for container in value:
                container["image"] = _retag(container["image"], image)
        else:
            _set_image(value, image)


def _retag(ref: str, image: dict[str, Any]) -> str:
    name, tag = split_image(ref)
    if name != image["name"]:
        return ref
    name = image.get("newName", name)
    tag = image.get("newTag", tag)
    return f"{name}:{tag}" if tag else name


def split_image(ref: str) -> tuple[str, str | None]:
    """``registry:5000/name:tag`` -> (``registry:5000/name``, ``tag``); no tag -> None."""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = ref.rpartition(":")
        return name, tag
    return ref, None
