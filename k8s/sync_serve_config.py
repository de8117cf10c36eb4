"""Mirror ``serve_configs/`` into the Kubernetes manifests: ``python k8s/sync_serve_config.py``.

The Serve config has one home, ``serve_configs/cluster.yaml``; the RayService's ``serveConfigV2``
is a copy of it that this script writes (``--check`` only compares, exit status 1 when they
differ; tests/k8s/test_consistency.py runs the same comparison). Two targets:

- ``k8s/overlays/gpu/ray-service.scorer.yaml`` (the GPU cluster): the file verbatim, comments included.
- ``k8s/base/ray/ray-service.scorer.yaml`` (the base and the dev overlay, CPU workers): its CPU
  variant, :func:`cpu_variant`, which asks for no GPU (``num_gpus`` -> 0 wherever the Serve config
  or the Scorer's code defaults set it, a ``cuda`` device -> ``cpu``) and leaves everything else as is.

The manifest files are edited as text: only the lines of the ``serveConfigV2: |`` block change, so
the comments around it stay.

The moderation rules (``serve_configs/moderation_rules.yaml``) are copied verbatim to
``k8s/base/config/rules.yaml``, from which kustomize builds the moderation consumer's ConfigMap
(kustomize reads no file outside its folder).
"""

from __future__ import annotations

import argparse
import copy
import difflib
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "serve_configs" / "cluster.yaml"
RULES_SOURCE = ROOT / "serve_configs" / "moderation_rules.yaml"
RULES_TARGET = ROOT / "k8s" / "base" / "config" / "rules.yaml"
_BLOCK = re.compile(r"^(?P<indent> *)serveConfigV2: \|[-+]?\s*$")


class Target(NamedTuple):
    path: Path
    variant: str  # "exact" or "cpu"


TARGETS = (
    Target(ROOT / "k8s" / "overlays" / "gpu" / "ray-service.scorer.yaml", "exact"),
    Target(ROOT / "k8s" / "base" / "ray" / "ray-service.scorer.yaml", "cpu"),
)


def cpu_variant(config: dict[str, Any]) -> dict[str, Any]:
    """The same Serve config asking for no GPU (see the module docstring)."""
    out = copy.deepcopy(config)
    for app in out.get("applications") or []:
        for deployment in app.get("deployments") or []:
            options = deployment.get("ray_actor_options") or {}
            if options.get("num_gpus"):
                options["num_gpus"] = 0
        args = app.get("args") or {}
        if str(args.get("device", "")).startswith("cuda"):
            args["device"] = "cpu"
        scorer = args.get("scorer") or {}
        if scorer.get("num_gpus"):
            scorer["num_gpus"] = 0
    return out


def expected(target: Target, source_text: str) -> dict[str, Any]:
    config = yaml.safe_load(source_text)
    return config if target.variant == "exact" else cpu_variant(config)


def block_text(target: Target, source_text: str) -> str:
    """The YAML written into ``serveConfigV2`` (not yet indented)."""
    rel = SOURCE.relative_to(ROOT)
    if target.variant == "exact":
        header = f"# Copy of {rel} made by `python k8s/sync_serve_config.py`: do not edit here.\n"
        return header + source_text
    header = (
        f"# CPU variant (num_gpus -> 0) of {rel}, made by\n"
        "# `python k8s/sync_serve_config.py`: do not edit here.\n"
    )
    return header + yaml.safe_dump(expected(target, source_text), sort_keys=False)


def serve_config_of(manifest_text: str) -> dict[str, Any]:
    """The parsed ``serveConfigV2`` of the RayService in a manifest (``{}`` when empty)."""
    for doc in yaml.safe_load_all(manifest_text):
        if doc and doc.get("kind") == "RayService":
            return yaml.safe_load(doc["spec"].get("serveConfigV2") or "") or {}
    raise ValueError("no RayService in the manifest")


def replace_block(manifest_text: str, new_block: str) -> str:
    """Replace the lines of the ``serveConfigV2: |`` block scalar with ``new_block``."""
    lines = manifest_text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _BLOCK.match(line)]
    if len(starts) != 1:
        raise ValueError(f"expected one `serveConfigV2: |` line, found {len(starts)}")
    start = starts[0]
    key_indent = len(_BLOCK.match(lines[start]).group("indent"))
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > key_indent):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():  # keep blank lines after the block
        end -= 1
    pad = " " * (key_indent + 2)
    body = [pad + line if line.strip() else "\n" for line in new_block.splitlines(keepends=True)]
    if body and not body[-1].endswith("\n"):
        body[-1] += "\n"
    return "".join(lines[: start + 1] + body + lines[end:])


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def differences(source_text: str, targets: tuple[Target, ...] = TARGETS) -> list[str]:
    """One message per target whose serveConfigV2 differs from what the source gives (with a diff)."""
    out = []
    for target in targets:
        want = expected(target, source_text)
        have = serve_config_of(target.path.read_text(encoding="utf-8"))
        if have != want:
            diff = difflib.unified_diff(
                yaml.safe_dump(have, sort_keys=True).splitlines(),
                yaml.safe_dump(want, sort_keys=True).splitlines(),
                "manifest",
                "expected",
                lineterm="",
            )
            out.append(f"{_shown(target.path)} ({target.variant}):\n" + "\n".join(diff))
    return out


def sync(source_text: str, targets: tuple[Target, ...] = TARGETS) -> list[Path]:
    """Write every target whose serveConfigV2 is stale; return the files written."""
    written = []
    for target in targets:
        old = target.path.read_text(encoding="utf-8")
        new = replace_block(old, block_text(target, source_text))
        if serve_config_of(new) != expected(target, source_text):
            raise AssertionError(f"{target.path}: the written serveConfigV2 does not parse back equal")
        if new != old:
            target.path.write_text(new, encoding="utf-8")
            written.append(target.path)
    return written


def rules_text(source_text: str) -> str:
    """The ConfigMap copy of the moderation rules: a header line, then the file verbatim."""
    rel = RULES_SOURCE.relative_to(ROOT)
    return f"# Copy of {rel} made by `python k8s/sync_serve_config.py`: do not edit here.\n" + source_text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare only; exit 1 when a manifest is stale")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not SOURCE.exists():
        print(f"{SOURCE.relative_to(ROOT)} does not exist: nothing to mirror", file=sys.stderr)
        return 2
    source_text = SOURCE.read_text(encoding="utf-8")
    rules = rules_text(RULES_SOURCE.read_text(encoding="utf-8"))
    if args.check:
        stale = differences(source_text)
        if RULES_TARGET.read_text(encoding="utf-8") != rules:
            stale.append(f"{_shown(RULES_TARGET)} differs from {_shown(RULES_SOURCE)}")
        for message in stale:
            print(message, file=sys.stderr)
        return 1 if stale else 0
    written = sync(source_text)
    if RULES_TARGET.read_text(encoding="utf-8") != rules:
        RULES_TARGET.write_text(rules, encoding="utf-8")
        written.append(RULES_TARGET)
    for path in written:
        print(f"wrote {_shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
