"""Batch scoring benchmark: the Ray Data job against the same decode + score in a plain loop.

    python bench/bench_score_batch.py            # --n 48 --repeats 1; clips cached in bench/out/

Both paths decode the same synthetic clips (``ultravqa_ray.data.synth``) with the same
:class:`DecodeConfig` and score them with the same tiny Qwen2.5-VL model (built offline), in
batches of the same size:

- **plain**: one Python process, ``decode_inputs`` then ``score_decoded`` batch after batch (the
  very stage functions the job runs), torch limited to the CPU count; no Ray, no Kafka;
- **ray**: ``run_score_batch`` on a manifest, Parquet output, in a fresh local Ray with that many
  CPUs (a child process per setting). With 1 CPU decode runs inside the scoring actor
  (``fuse_decode``: one CPU cannot hold a decode task and an actor at once); with 2 CPUs two decode
  tasks run beside one scoring actor, so decoding is parallel and overlaps scoring.

Reported per row: videos/s, wall time, and where the time went: decode and score are the summed
per-video timings the pipeline records; "other" is the wall time left when the busiest stage is
subtracted (plain: wall - decode - score, serial; ray 2 CPUs: wall - max(decode, score), pipelined):
process and actor start, model load, scheduling, serialisation, the Parquet write.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "out" / "score_batch"
BATCH = 4


def corpus(n: int) -> Path:
    from ultravqa_ray.data import SynthConfig, generate_corpus

    folder = OUT / f"corpus-n{n}"
    manifest = folder / "manifest.jsonl"
    if not manifest.exists():
        generate_corpus(
            folder, SynthConfig(n=n, seed=0, width=320, height=240, fps=24, duration_s=4.0, gop=48)
        )
    return manifest


def model() -> Path:
    from ultravqa_ray.model import build_tiny_model

    folder = OUT / "tiny-qwen2_5_vl"
    if not (folder / "config.json").exists():
        build_tiny_model("qwen2_5_vl", folder)
    return folder


def decode_config():
    from ultravqa_ray.video import DecodeConfig

    return DecodeConfig(num_frames=8, height=112, width=112, threads=1)


def run_plain(manifest: Path, model_dir: Path, cpus: int) -> dict:
    import numpy as np
    import torch

    from connectors.listing import read_manifest_entries
    from ultravqa_ray.model import ModelConfig, ScorerModel
    from ultravqa_ray.pipelines.score_batch_stages import decode_inputs, entry_rows, score_decoded

    torch.set_num_threads(cpus)
    started = time.perf_counter()
    scorer = ScorerModel(ModelConfig(name_or_path=str(model_dir), device="cpu")).setup()
    setup_s = time.perf_counter() - started
    rows = entry_rows(read_manifest_entries(manifest), str(manifest), None)
    decode_s = score_s = 0.0
    scored = 0
    for i in range(0, len(rows), BATCH):
        chunk = rows[i : i + BATCH]
        batch = {k: np.asarray([r[k] for r in chunk], dtype=object) for k in chunk[0]}
        t0 = time.perf_counter()
        decoded = decode_inputs(batch, decode_config())
        t1 = time.perf_counter()
        out = score_decoded(decoded, scorer)
        t2 = time.perf_counter()
        decode_s, score_s = decode_s + t1 - t0, score_s + t2 - t1
        scored += int(np.sum(out["status"] == "scored"))
    wall = time.perf_counter() - started
    return {"n": len(rows), "scored": scored, "wall_s": wall, "decode_s": decode_s, "score_s": score_s,
            "other_s": wall - decode_s - score_s, "setup_s": setup_s}  # fmt: skip


def run_ray(manifest: Path, model_dir: Path, cpus: int) -> dict:
    import pyarrow.parquet as pq
    import ray

    from ultravqa_ray.pipelines.score_batch import run_score_batch
    from ultravqa_ray.pipelines.score_batch_config import ScoreBatchConfig

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    out = Path(tempfile.mkdtemp()) / "scores.parquet"
    config = ScoreBatchConfig.model_validate({
        "input": {"kind": "manifest", "manifest": str(manifest)},
        "output": {"kafka": False, "parquet": str(out)},
        "model": {"name_or_path": str(model_dir), "device": "cpu"},
        "decode": decode_config().model_dump(),
        "progress": False,
        "resources": {"decode_batch_size": BATCH, "score_batch_size": BATCH, "concurrency": 1,
                      # 2 CPUs: two decode tasks (0.75 each) beside the actor (0.5): decode is the
                      # heavy stage with a tiny model, and one process cannot decode two clips at once.
                      "decode_num_cpus": 0.75 if cpus >= 2 else 1, "score_num_cpus": 0.5 if cpus >= 2 else 1,
                      "fuse_decode": cpus < 2},
    })  # fmt: skip
    started = time.perf_counter()
    summary = run_score_batch(config)
    wall = time.perf_counter() - started
    table = pq.read_table(out, columns=["decode_ms", "infer_ms"])
    decode_s = sum(table.column("decode_ms").to_pylist()) / 1000
    score_s = sum(table.column("infer_ms").to_pylist()) / 1000
    busiest = decode_s + score_s if cpus < 2 else max(decode_s, score_s)
    return {"n": summary.inputs, "scored": summary.scored, "wall_s": wall, "decode_s": decode_s,
            "score_s": score_s, "other_s": wall - busiest}  # fmt: skip


def child(path: str, cpus: int, manifest: Path, model_dir: Path) -> dict:
    """Run one measurement in a fresh process (its own Ray, its own torch threads)."""
    env = dict(os.environ, RAY_TMPDIR=tempfile.mkdtemp(prefix="bench-ray-"), RAY_USAGE_STATS_ENABLED="0",
               OMP_NUM_THREADS=str(cpus), PYTHONPATH=str(ROOT))  # fmt: skip
    env.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback-only benchmark cluster
    cmd = [sys.executable, __file__, "--child", path, "--cpus", str(cpus), "--manifest", str(manifest),
           "--model", str(model_dir)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{path} with {cpus} CPU(s) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=48, help="synthetic clips (default 48)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per row; the best is kept")
    parser.add_argument("--child", choices=["plain", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--cpus", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = run_plain if args.child == "plain" else run_ray
        print(json.dumps(run(args.manifest, args.model, args.cpus)))
        return
    manifest, model_dir = corpus(args.n), model()
    results = {}
    for cpus in (1, 2):
        for path in ("plain", "ray"):
            runs = [child(path, cpus, manifest, model_dir) for _ in range(args.repeats)]
            results[(path, cpus)] = min(runs, key=lambda r: r["wall_s"])
    dc = decode_config()
    print(f"batch scoring, {args.n} synthetic clips 320x240 24 fps 4 s, {dc.num_frames} frames at "
          f"{dc.width}x{dc.height}, tiny qwen2_5_vl, batches of {BATCH}; best of {args.repeats}")  # fmt: skip
    print(f"{'path':<6} {'cpus':>4} {'videos/s':>9} {'wall s':>7} {'decode s':>9} {'score s':>8} {'other s':>8}"
          f"  {'decode%':>7} {'score%':>6} {'other%':>6}")  # fmt: skip
    for (path, cpus), r in results.items():
        wall = r["wall_s"]
        print(f"{path:<6} {cpus:>4} {r['n'] / wall:>9.2f} {wall:>7.1f} {r['decode_s']:>9.1f} {r['score_s']:>8.1f} "
              f"{r['other_s']:>8.1f}  {100 * r['decode_s'] / wall:>6.0f}% {100 * r['score_s'] / wall:>5.0f}% "
              f"{100 * max(r['other_s'], 0) / wall:>5.0f}%")  # fmt: skip
    for cpus in (1, 2):
        print(
            f"plain {cpus} CPU(s): model load (transformers import + weights) {results[('plain', cpus)]['setup_s']:.1f} s "
            "of its 'other'; the ray rows pay the same inside the actor, plus its process start"
        )
    for cpus in (1, 2):
        ratio = results[("plain", cpus)]["wall_s"] / results[("ray", cpus)]["wall_s"]
        print(f"ray / plain throughput with {cpus} CPU(s): {ratio:.2f}x")
    print(f"ray 2 CPUs / ray 1 CPU: {results[('ray', 1)]['wall_s'] / results[('ray', 2)]['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
