"""bench/gpu_check.sh on its tiny CPU setting: the script a lent GPU runs, every phase exercised
(serving one-pass and five forwards, LoRA SFT and ASO steps, a full FSDP2 step on a one-rank gloo
group), the Markdown table written with the planner's prediction beside each measured peak. The
figures of the tiny setting mean nothing; that the script runs to its table does."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_runs_at_tiny_size_on_cpu(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": os.environ.get("PYTHON", "") or __import__("sys").executable}
    out = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), "--tiny", "--device", "cpu", "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900, env=env, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads((tmp_path / "gpu_check.json").read_text())
    seen = {(r["task"], r["mode"], r["batch"]) for r in rows}
    assert seen == {("serve", "one-pass", 1), ("serve", "five forwards", 1), ("serve", "one-pass", 2),
                    ("serve", "five forwards", 2), ("sft", "lora", 1), ("aso", "lora", 1),
                    ("sft", "full FSDP2", 1)}  # fmt: skip
    for row in rows:
        assert row["seconds"] > 0 and row["peak"] > 0
        if row["task"] != "serve" or row["mode"] == "one-pass":
            assert row["planned"] > 0
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| model | task | mode |" in table and table.count("| tiny_qwen2_5_vl |") == len(rows)
