"""The house rules that keep the code readable: every module imports, and dependencies point one way.

jobs -> ultravqa_ray -> connectors, and inside the core: schemas at the bottom, then video, model,
losses, metrics, then train, serve, pipelines, cli on top.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Layer of each core sub-package; a module may import only from its own layer or lower ones.
CORE_LAYERS = {
    "config": 0,
    "score_ops": 0,
    "schemas": 1,
    "video": 2,
    "data": 3,
    "model": 3,
    "losses": 3,
    "metrics": 3,
    "events": 4,
    "train": 4,
    "serve": 4,
    "curation": 4,
    "pipelines": 5,
    "cli": 6,
}


def _modules(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        names.append(info.name)
    return names


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


@pytest.mark.parametrize("package", ["connectors", "ultravqa_ray"])
def test_every_module_imports(package):
    for name in _modules(package):
        importlib.import_module(name)


def test_connectors_never_import_the_core_or_jobs():
    for path in (ROOT / "connectors").rglob("*.py"):
        bad = {m for m in _imports(path) if m.split(".")[0] in ("ultravqa_ray", "jobs")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_core_never_imports_jobs_and_respects_layers():
    for path in (ROOT / "ultravqa_ray").rglob("*.py"):
        rel = path.relative_to(ROOT / "ultravqa_ray")
        if rel.parts[0] in ("__init__.py",):
            continue
        own = rel.parts[0].removesuffix(".py")
        assert own in CORE_LAYERS, f"new core package {own!r}: give it a layer in CORE_LAYERS"
        for module in _imports(path):
            parts = module.split(".")
            assert parts[0] != "jobs", f"{rel} imports jobs"
            if parts[0] == "ultravqa_ray" and len(parts) > 1:
                target = parts[1]
                assert CORE_LAYERS.get(target, 0) <= CORE_LAYERS[own], (
                    f"ultravqa_ray/{rel} (layer {CORE_LAYERS[own]}) imports {module} "
                    f"(layer {CORE_LAYERS.get(target)}): dependencies must point down"
                )
