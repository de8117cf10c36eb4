"""Run every benchmark in turn with its defaults: ``python bench/run_all.py [--only NAME ...]``.

Each script prints its own side-by-side table; this runner only sequences them (one at a time, so
they do not compete for the CPU), tees each output to ``bench/out/<name>.txt`` and prints a line per
script with its exit status and wall time. Heavy defaults (bench_train's 1,000/300 clips) take long
on a 2-core machine: pass ``--quick`` for the smaller sizes the notes quote.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"

# name -> extra arguments in --quick mode (the sizes recorded in bench/README.md)
BENCHES: dict[str, list[str]] = {
    "bench_decode": ["--skip-long"],
    "bench_model": [],
    "bench_report": [],
    "bench_losses": [],
    "bench_score_batch": ["--n", "48"],
    "bench_serve": [],
    "bench_swap": [],
    "bench_soak": ["--n", "2000"],
    "bench_train": ["--train", "400", "--heldout", "120"],
    "bench_rationales": ["--videos", "200"],
    "bench_label_qc": [],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run only these")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (see BENCHES)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name in args.only or list(BENCHES):
        command = [sys.executable, str(ROOT / "bench" / f"{name}.py"), *(BENCHES[name] if args.quick else [])]
        start = time.perf_counter()
        with open(OUT / f"{name}.txt", "w", encoding="utf-8") as log:
            proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            status = proc.wait()
        failures += status != 0
        print(f"== {name}: exit {status} in {time.perf_counter() - start:.0f}s (log bench/out/{name}.txt)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
