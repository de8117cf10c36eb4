"""Timings that used to be asserted in tests: the evaluation report and synthetic-corpus generation.

    python bench/bench_report.py            # --videos 200 --clips 40

- the report (metrics JSON, HTML and five dimensions' plots) of ``--videos`` scored videos
  (target: under 3 s for 200 on the 2-core VM);
- ``--clips`` synthetic labelled clips generated with 2 workers (target: under 120 s for 40).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.wire.dimensions import DIMENSIONS  # noqa: E402
from connectors.wire.messages import DimensionScore  # noqa: E402
from ultravqa_ray.data import SynthConfig, generate_corpus  # noqa: E402
from ultravqa_ray.metrics.quality import evaluate_predictions  # noqa: E402
from ultravqa_ray.metrics.report import write_report  # noqa: E402
from ultravqa_ray.schemas.annotation import AnnotationRecord  # noqa: E402


def corpus(n: int, k: int = 5, seed: int = 0):
    """``n`` videos rated by 3 raters around a latent score, and a noisy model around the same latent."""
    rng = np.random.default_rng(seed)
    levels = np.arange(1, k + 1)
    records, predictions = [], {}
    for i in range(n):
        latent = rng.uniform(1, k, size=len(DIMENSIONS))
        ratings = {d: np.clip(np.rint(lat + rng.normal(0, 0.7, size=3)), 1, k).astype(int).tolist()
                   for d, lat in zip(DIMENSIONS, latent, strict=True)}  # fmt: skip
        records.append(AnnotationRecord(video_id=f"v{i:04d}", uri=f"v{i:04d}.mp4", ratings=ratings))
        scores = {}
        for d, lat in zip(DIMENSIONS, latent, strict=True):
            p = np.exp(-((levels - lat - rng.normal(0, 0.5)) ** 2))
            p /= p.sum()
            scores[d] = DimensionScore(score=float(levels @ p), label=int(p.argmax()) + 1, probs=p.tolist())
        predictions[f"v{i:04d}"] = scores
    return records, predictions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--clips", type=int, default=40)
    args = parser.parse_args()
    import matplotlib.figure  # noqa: F401  (import cost is paid once per process, not per report)

    records, predictions = corpus(args.videos)
    result = evaluate_predictions(records, predictions, k=5)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        write_report(result, records, predictions, Path(tmp) / "report")
        report_s = time.perf_counter() - started
        started = time.perf_counter()
        generate_corpus(Path(tmp) / "synth", SynthConfig(n=args.clips, seed=11, workers=2))
        synth_s = time.perf_counter() - started
    print(f"report, 5 dimensions x {args.videos} videos: {report_s:.2f} s (target < 3 s)")
    print(f"synthetic corpus, {args.clips} clips, 2 workers: {synth_s:.1f} s = "
          f"{60 * args.clips / synth_s:.0f} clips/min (target < 120 s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
