"""bench/ablate_aso.py end to end on its tiny setting: two arms, one seed, a few clips.

It synthesises and decodes its corpus, trains the shared SFT start and two second-stage arms with
the project's training loop, scores the held-out clips and writes the report; a second call finds
every run cached and trains nothing. The numbers of the tiny setting mean nothing; the table's
shape, its intervals and the cache are what is checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CELL = re.compile(r"^(-?\d+\.\d{3}) \[(-?\d+\.\d{3}|nan), (-?\d+\.\d{3}|nan)\]$")


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ablate_aso.py"), "--tiny", "--threads", "1", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
    )  # fmt: skip


def _mean_table(text: str) -> dict[str, list[str]]:
    block = text.split("### Mean over the five dimensions", 1)[1].split("\n\n", 2)[1]
    rows = [line.strip("|").split(" | ") for line in block.splitlines()[2:]]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


@pytest.mark.timeout(900)  # two runs of the command; ~1 min on an idle 2-core machine
def test_tiny_ablation_writes_its_table_and_resumes(tmp_path):
    work, docs = tmp_path / "work", tmp_path / "docs" / "science.md"
    docs.parent.mkdir()
    docs.write_text("# Notes kept\n\nHand-written reading.\n")
    args = ("--arms", "soft_sft,aso_b0.1", "--seeds", "0", "--work", str(work), "--docs", str(docs))
    first = _run(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    text = docs.read_text()
    assert text.startswith("# Notes kept\n\nHand-written reading.\n"), "text outside the markers is kept"
    table = _mean_table(text)
    assert list(table) == ["SFT start (rounded mean)", "+ SFT, soft labels q", "+ ASO beta 0.1"]
    for label, cells in table.items():
        assert cells[0] == "1", (label, cells)  # one seed
        for cell in cells[1:6]:  # MAE, acc@0.5, SRCC, PLCC, ECE: value [lo, hi], no seed spread with one seed
            match = CELL.match(cell)
            assert match, (label, cell)
            _, lo, hi = match.groups()
            if lo != "nan":
                assert float(lo) <= float(hi), (label, cell)
        assert float(cells[7]) >= 0 and int(cells[9]) > 0  # p(right), videos seen
    assert float(table["+ ASO beta 0.1"][6]) >= 0  # KL to the start
    assert "Partial results" in text  # the other arms and seeds were not run
    assert "### ASO minus soft-label SFT" in text and "Headline: ASO (beta 0.1) minus soft-label SFT" in text
    assert (docs.parent / "science" / "arms.png").stat().st_size > 1000
    results = sorted(work.glob("runs/*/seed0/result.json"))
    assert [p.parts[-3] for p in results] == ["aso_b0.1", "sft_start", "soft_sft"]
    assert json.loads((work / "summary.json").read_text())["mean"]["aso_b0.1"]["seeds"] == 1
    stamps = {p: p.stat().st_mtime_ns for p in results}

    again = _run(*args, timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in results} == stamps, "cached runs are not trained again"
    assert "seed 0:" not in again.stderr  # no "[i/n] arm seed 0: ... s" training line


def test_unknown_arm_is_one_line_error(tmp_path):
    out = _run("--arms", "nope", "--work", str(tmp_path), timeout=300)
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("ablate_aso: unknown arm(s) nope")
