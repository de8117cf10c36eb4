"""Every multi-command walkthrough of the README and docs/ runs as written, so the documents cannot
drift from the code.

A walkthrough is a fenced ``bash``/``sh`` block with two or more commands. Each one is either

- run: preceded by an HTML comment ``<!-- walkthrough: ... -->`` in the Markdown, which may carry
  ``ci-substitute "FROM" "TO"`` pairs (a smaller ``--n`` for CI; each FROM must occur in the block)
  and ``ci-expect "PATH"`` files the run must leave; the block is written to a script and run with
  bash in an empty temporary folder (relative paths, the project's ``ultravqa-ray`` on PATH, a Ray
  of its own); or
- excluded here, in :data:`EXCLUDED`, with the reason.

A new walkthrough that is neither fails :func:`test_every_walkthrough_is_run_or_excluded`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/*.md", "jobs/README.md", "serve_configs/README.md", "k8s/README.md")
SHELLS = {"bash", "sh", "shell"}

#: (document, start of its first command) -> why the block is not run here. None excludes every
#: block of the document.
EXCLUDED: dict[tuple[str, str | None], str] = {
    ("README.md", "make demo"): "`make test` is the CI run that contains this test (it would recurse); "
    "`make demo` runs the demo that tests/pipelines/test_demo.py runs in process",
    ("README.md", "python3 -m venv .venv"): "a fresh install from the package registry: CI makes the same "
    "install through the Makefile before any test runs",
    ("serve_configs/README.md", "serve run serve_configs/local.yaml"): "foreground services for separate "
    "terminals (serve run blocks until stopped); the app, its HTTP route and the bridge are run by "
    "tests/serve and tests/pipelines/test_stream.py",
    ("README.md", "ultravqa-ray score-batch --config jobs/configs/score_batch.yaml"):
    "people rate between push and pull, and it needs a Kafka broker with uploads and an LLM endpoint; "
    "tests/labels/test_studio.py::test_the_documented_loop_select_push_rate_pull_report_rationales_sft runs "
    "the same sequence against local ones",
    ("docs/curation.md", "ultravqa-ray label select --scores data/scores.parquet"):
    "a synopsis (optional arguments in brackets), not a script; tests/curation runs the command",
    ("README.md", "ultravqa-ray label server"): "people rate between push and pull (the server runs until "
    "stopped); tests/labels runs push -> scripted raters -> pull -> report -> the train loader against a real "
    "Label Studio",
    ("docs/guarantees.md", "ultravqa-ray broker &"): "long-running services for one machine (broker, Ray head, "
    "bridge, moderation all block until stopped); tests/pipelines/test_stream.py and tests/chaos run them",
    ("docs/deployment.md", None): "needs a container engine and a Kubernetes cluster (none in CI); every "
    "manifest these commands apply is validated by tests/k8s",
}

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"<!--\s*walkthrough\b(.*?)-->", re.S)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    script: str
    marker: str | None  # the text of its walkthrough comment, if any

    @property
    def commands(self) -> list[str]:
        joined = self.script.replace("\\\n", " ")
        return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.strip().startswith("#")]

    @property
    def first(self) -> str:
        return self.commands[0].split("#")[0].strip()

    def directive(self, name: str) -> list[list[str]]:
        """The quoted arguments of each ``name "a" "b"`` in the marker."""
        found = re.findall(rf'{name}((?:\s+"(?:[^"\\]|\\.)*")+)', self.marker or "")
        return [_QUOTED.findall(args) for args in found]

    def __str__(self) -> str:
        return f"{self.doc}:{self.line} ({self.first})"


def blocks() -> list[Block]:
    found = []
    for pattern in DOCS:
        for path in sorted(ROOT.glob(pattern)):
            lines = path.read_text().splitlines()
            i = 0
            while i < len(lines):
                fence = _FENCE.match(lines[i])
                if not fence:
                    i += 1
                    continue
                end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
                before = "\n".join(lines[max(0, i - 6) : i]).rstrip()
                markers = _MARKER.findall(before) if before.endswith("-->") else []
                block = Block(
                    str(path.relative_to(ROOT)), i + 1, "\n".join(lines[i + 1 : end]) + "\n", markers[-1] if markers else None
                )
                if fence.group(1) in SHELLS and len(block.commands) >= 2:
                    found.append(block)
                i = end + 1
    return found


def _exclusion(block: Block) -> tuple[str, str | None] | None:
    """The EXCLUDED key that covers ``block``, if any."""
    for doc, start in EXCLUDED:
        if doc == block.doc and (start is None or block.first.startswith(start)):
            return doc, start
    return None


def _excluded(block: Block) -> str | None:
    key = _exclusion(block)
    return EXCLUDED[key] if key else None


def test_every_walkthrough_is_run_or_excluded():
    all_blocks = blocks()
    assert any(b.marker is not None for b in all_blocks), "no walkthrough is marked to run"
    neither = [str(b) for b in all_blocks if b.marker is None and _excluded(b) is None]
    assert not neither, f"walkthroughs neither marked <!-- walkthrough --> nor in EXCLUDED: {neither}"
    both = [str(b) for b in all_blocks if b.marker is not None and _excluded(b) is not None]
    assert not both, f"walkthroughs both run and excluded: {both}"
    used = {_exclusion(b) for b in all_blocks}
    stale = [key for key in EXCLUDED if key not in used]
    assert not stale, f"EXCLUDED names blocks that no longer exist: {stale}"


def _ci_script(block: Block) -> str:
    script = block.script
    for pair in block.directive("ci-substitute"):
        assert len(pair) == 2, f"{block}: ci-substitute takes FROM and TO, got {pair}"
        source, target = pair
        assert source in script, f"{block}: ci-substitute {source!r} no longer occurs in the block"
        script = script.replace(source, target)
    return script


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("block", [b for b in blocks() if b.marker is not None], ids=str)
def test_walkthrough_runs_as_written(block, tmp_path, ray_env):
    commands = block.commands
    assert commands[0].startswith("set -e") or all(c.endswith("&&") for c in commands[:-1]), (
        f"{block}: a walkthrough must stop at its first failure (start it with `set -euo pipefail`)"
    )
    script = tmp_path / "walkthrough.sh"
    script.write_text("PS4='+ $(date +%T) '; set -x  # trace each command with its time (test only)\n" + _ci_script(block))
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, **ray_env)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # the project's ultravqa-ray
        HF_HUB_OFFLINE="1",
        ULTRAVQA_RAY_QUIET="1",
    )
    env.pop("RAY_ADDRESS", None)
    with tempfile.TemporaryDirectory(prefix="uvr-ray-") as ray_tmp:  # a Ray of its own; short socket paths
        env["RAY_TMPDIR"] = ray_tmp
        proc = subprocess.run(["bash", str(script)], cwd=work, env=env, capture_output=True, text=True, timeout=1100)
    (tmp_path / "walkthrough.log").write_text(proc.stderr)
    trace = "\n".join(ln for ln in proc.stderr.splitlines() if ln.startswith("+ "))
    tail = trace + "\n...\n" + "\n".join(proc.stderr.splitlines()[-25:])
    assert proc.returncode == 0, f"{block} failed (exit {proc.returncode}):\n{tail}"
    for (path,) in block.directive("ci-expect"):
        assert (work / path).exists(), f"{block}: {path} missing after the run:\n{tail}"


def test_a_failing_step_stops_the_walkthrough(tmp_path, ray_env):
    """The README's training block stops at the first failure instead of going on with an empty name."""
    [training] = [b for b in blocks() if b.marker is not None and "train sft" in b.script]
    first_train = next(c for c in training.commands if "train sft" in c)
    # Everything up to SFT, with SFT pointed at a manifest that does not exist, then a marker step.
    head = training.script.split(first_train)[0]
    lines = [ln for ln in head.splitlines() if not ln.startswith("ultravqa-ray")]  # keep only `set -e...`
    bad = first_train.replace("data/train/manifest.jsonl", "missing/manifest.jsonl")
    script = "\n".join([*lines, bad, "touch reached-after-failure", ""])
    env = dict(os.environ, **ray_env) | {
        "ULTRAVQA_RAY_QUIET": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="uvr-ray-") as ray_tmp:
        env["RAY_TMPDIR"] = ray_tmp
        proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert not (tmp_path / "reached-after-failure").exists()
    reason = [ln for ln in proc.stderr.splitlines() if ln.startswith("ultravqa-ray train")]
    assert reason and "missing/manifest.jsonl" in reason[-1], proc.stderr[-2000:]
    assert proc.stdout == ""  # nothing for the next step to mistake for a result
