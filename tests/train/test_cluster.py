"""A training run on a two-node local cluster (one Ray Train worker per node) completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_two_node_cluster_run_completes(ray_env, train_corpus, tiny_model, tmp_path):
    env = {**os.environ, **ray_env, "RAY_TMPDIR": tempfile.mkdtemp(prefix="uvr2n-", dir="/tmp")}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.train._two_node_run", str(train_corpus), str(tiny_model), str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["nodes"] == 2
    assert result["videos"] == 4  # each of the 2 workers saw half of the 8 decodable videos
    assert (Path(result["model_dir"]) / "model.safetensors").exists()
