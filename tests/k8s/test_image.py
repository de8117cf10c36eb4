"""The container build: official Ray base images of the pinned release, torch pinned through the
constraints files, only existing sources copied, and no secret baked in or sent to the builder.
"""

from __future__ import annotations

import re
import tomllib

from tests.k8s.manifests import ROOT, ray_pin

DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> dict[str, str]:
    """Stage name -> base image, for the named stages (``FROM image AS name``)."""
    stages = {}
    for word, rest in _instructions():
        if word == "FROM" and (m := re.fullmatch(r"(\S+)\s+AS\s+(\S+)", rest, re.IGNORECASE)):
            stages[m.group(2)] = m.group(1)
    return stages


def _env(stage: str) -> dict[str, str]:
    env, current = {}, None
    for word, rest in _instructions():
        if word == "FROM":
            current = re.split(r"\s+AS\s+", rest, flags=re.IGNORECASE)[-1]
        elif word == "ENV" and current == stage:
            env.update(dict(re.findall(r'(\w+)=("[^"]*"|\S+)', rest)))
    return {k: v.strip('"') for k, v in env.items()}


def test_base_images_are_the_official_ray_images_of_the_pin():
    python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    py = "py" + re.search(r"(\d+)\.(\d+)", python).group(0).replace(".", "")
    assert _stages() == {
        "base-cpu": f"rayproject/ray:{ray_pin()}-{py}",
        "base-gpu": f"rayproject/ray:{ray_pin()}-{py}-gpu",
    }
    final = [rest for word, rest in _instructions() if word == "FROM"][-1]
    assert final == "base-${VARIANT}"
    assert ("ARG", "VARIANT=cpu") in _instructions(), "the CPU variant is the default"


def test_each_variant_installs_with_its_constraints_file():
    cpu, gpu = _env("base-cpu"), _env("base-gpu")
    assert cpu["ULTRAVQA_CONSTRAINTS"] == "constraints.txt" and not cpu["ULTRAVQA_TORCH_INDEX"]
    assert gpu["ULTRAVQA_CONSTRAINTS"] == "constraints-gpu.txt"
    assert gpu["ULTRAVQA_TORCH_INDEX"].startswith("https://download.pytorch.org/whl/cu")
    for name in ("constraints.txt", "constraints-gpu.txt"):
        assert re.search(r"^torch==\d", (ROOT / name).read_text(), re.MULTILINE), f"{name} pins torch"
    installs = [rest for word, rest in _instructions() if word == "RUN" and "pip install" in rest]
    assert len(installs) == 1
    assert '-c "${ULTRAVQA_CONSTRAINTS}"' in installs[0] and installs[0].split("&&")[0].rstrip().endswith(" .")
    assert "ray.__version__ == '" + ray_pin() + "'" in installs[0], "the build checks the Ray it ends with"
    env_after = [rest for word, rest in _instructions() if word == "ENV" and "PIP_CONSTRAINT" in rest]
    assert env_after == ["PIP_CONSTRAINT=/home/ray/ultravqa-ray/${ULTRAVQA_CONSTRAINTS}"]


def test_copied_sources_exist_and_are_not_ignored():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for word, rest in _instructions():
        if word == "COPY":
            sources = [s for s in rest.split()[:-1] if not s.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
                assert source.rstrip("/") not in ignored, f"COPY {source} but .dockerignore drops it"


def test_no_secret_is_baked_in():
    secret_words = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|CREDENTIAL|API_KEY)", re.IGNORECASE)
    for word, rest in _instructions():
        if word in ("ENV", "ARG", "LABEL"):
            assert not secret_words.search(rest), f"{word} {rest}: secrets come from Kubernetes at run time"
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "**/.env", "**/*.env", ".aws"} <= ignored
    assert ("USER", "ray") in _instructions(), "the image runs as Ray's unprivileged user"
