"""Rationale writer: requests and seconds per 1,000 videos against a local OpenAI-compatible server.

    python bench/bench_rationales.py            # --videos N, --in-flight N, --latency-ms MS (repeatable)

Each video has the five dimensions rated by three raters, with random sub-attributes and comments,
so 1,000 videos are 5,000 rationales. The server (tests/fixtures/chat_server.py, stdlib
http.server, in its own process so that it does not share the writer's interpreter lock) answers
like a model that follows the instructions, after ``latency-ms`` (a stand-in for generation time).
For each latency: a cold run with an empty cache, then a rerun on the same cache. The openai client
is imported before the clock starts (about 1 s once per process, more on a loaded machine). Prints
one table row per run; ``writer cpu`` is the CPU time of the writer's process (the server's is apart).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.wire.dimensions import DIMENSIONS  # noqa: E402
from tests.fixtures.chat_server import ChatServer  # noqa: E402
from ultravqa_ray.curation.rationales import RationalesConfig, RationaleWriter  # noqa: E402
from ultravqa_ray.curation.records import rationales_for_records  # noqa: E402
from ultravqa_ray.schemas.annotation import AnnotationRecord  # noqa: E402

LABELS = ["blur", "noise", "shake", "stutter", "overexposed", "tilted", "cluttered", "compression_artifacts"]
COMMENTS = ["soft at the start", "colours look washed out", "fine overall", "the camera wobbles", "dark scene"]


def corpus(n: int, seed: int = 0):
    rng = random.Random(seed)
    items = []
    for i in range(n):
        ratings = {d: [rng.randint(1, 5) for _ in range(3)] for d in DIMENSIONS}
        subs = {d: rng.sample(LABELS, rng.randint(0, 2)) * rng.randint(1, 2) for d in DIMENSIONS}
        comments = {d: rng.sample(COMMENTS, rng.randint(0, 2)) for d in DIMENSIONS}
        record = AnnotationRecord(video_id=f"v{i:05d}", uri=f"v{i:05d}.mp4", ratings=ratings, sub_attributes=subs)
        items.append((record, comments))
    return items


def serve(delay_s: float, urls, stop) -> None:
    with ChatServer(delay_s=delay_s) as server:
        urls.put(server.base_url)
        stop.wait()


def run(items, base_url: str, cache: Path, in_flight: int) -> tuple[dict, float, float]:
    config = RationalesConfig(base_url=base_url, model="bench", cache_dir=str(cache), max_in_flight=in_flight)
    writer = RationaleWriter(config, environ={})
    start, cpu = time.perf_counter(), time.process_time()
    rationales_for_records(items, writer)
    return writer.stats.to_dict(), time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=1000)
    p.add_argument("--in-flight", type=int, default=8)
    p.add_argument("--latency-ms", type=float, action="append", help="server latency per request (default: 0 and 20)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import openai  # noqa: F401  (once per process: not part of the per-video cost)

    items = corpus(args.videos)
    per = 1000 / args.videos
    print(f"{args.videos} videos x {len(DIMENSIONS)} dimensions, {args.in_flight} in flight")
    print(f"{'latency ms':>10}  {'run':<6} {'requests':>9} {'cache hits':>10} {'llm':>6} {'fallback':>8} "
          f"{'seconds':>8} {'req/1k videos':>13} {'s/1k videos':>11} {'writer cpu s/1k':>15}")  # fmt: skip
    for latency in args.latency_ms or [0.0, 20.0]:
        urls, stop = mp.Queue(), mp.Event()
        server = mp.Process(target=serve, args=(latency / 1000, urls, stop), daemon=True)
        server.start()
        base_url = urls.get(timeout=60)
        with tempfile.TemporaryDirectory() as cache:
            for name in ("cold", "rerun"):
                stats, seconds, cpu = run(items, base_url, Path(cache), args.in_flight)
                fallbacks = sum(stats["fallbacks"].values())
                print(f"{latency:>10g}  {name:<6} {stats['requests']:>9} {stats['cache_hits']:>10} "
                      f"{stats['written_by_llm']:>6} {fallbacks:>8} {seconds:>8.2f} "
                      f"{stats['requests'] * per:>13.0f} {seconds * per:>11.2f} {cpu * per:>15.2f}")  # fmt: skip
        stop.set()
        server.join(timeout=10)


if __name__ == "__main__":
    main()
