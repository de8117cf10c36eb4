"""Soak benchmark: many uploads through Kafka -> bridge -> two Scorer replicas at half saturation.

    python bench/bench_soak.py                  # 10,000 uploads (~10-20 minutes on 2 cores)
    python bench/bench_soak.py --n 300          # a quick check of the harness

Everything runs here: the embedded broker (Tansu), a local Ray with the Scorer deployment (two
replicas, the untrained tiny Qwen2.5-VL model, 8 frames of 64x64, decode in one worker process per
replica) and the bridge as its own ``ultravqa-ray stream`` process, so that its memory is its own.

1. saturation: ``--sat`` uploads published at once; the rate from first produce to last score event;
2. soak: ``--n`` uploads paced at half that rate; per window of ``--windows`` equal parts, the
   throughput and the p50 / p99 produce-to-score latency;
3. resident memory (VmRSS) of the bridge process and of each Scorer replica (with its decode
   workers) at the start of the soak (after the saturation run warmed everything) and at its end,
   and the growth (target < 10%).

The CPU is shared with other jobs on the development VM: the figures move between runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_serve import OUT, Collector, corpus, pct  # noqa: E402

from connectors.kafka import EmbeddedBroker, KafkaSettings, Topics, check_topics  # noqa: E402
from connectors.kafka.broker import free_port  # noqa: E402
from connectors.kafka.sink import KafkaSink  # noqa: E402
from connectors.wire.messages import UploadEvent  # noqa: E402

APP = "bench-soak"


def rss_mb(pid: int, with_children: bool = False) -> float:
    """Resident memory of ``pid`` (and of its direct children) in MB, from /proc."""
    pids = [pid]
    if with_children:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
        pids += [int(p) for p in out.split()]
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def replica_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return sorted(int(line.split(None, 1)[0]) for line in out.splitlines() if f"ServeReplica:{APP}:Scorer" in line)


def publish(settings: KafkaSettings, topic: str, uris: list[str], n: int, tag: str, rate: float | None) -> dict[str, float]:
    """Send ``n`` uploads (all at once, or ``rate`` a second); returns video_id -> send time."""
    sent: dict[str, float] = {}
    with KafkaSink(settings) as sink:
        t0 = time.time()
        for i in range(n):
            if rate is not None:
                time.sleep(max(0.0, t0 + i / rate - time.time()))
            vid = f"{tag}-{i}"
            sent[vid] = time.time()
            event = UploadEvent(video_id=vid, uri=uris[i % len(uris)], event_time="2026-01-01T00:00:00Z")
            sink.send(topic, vid.encode(), event.to_bytes())
            if rate is not None and i % 4 == 0:
                sink.flush()
        sink.flush()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="uploads in the soak")
    parser.add_argument("--sat", type=int, default=400, help="uploads in the saturation run")
    parser.add_argument("--windows", type=int, default=10, help="time windows reported over the soak")
    args = parser.parse_args()

    os.environ.setdefault("RAY_TMPDIR", tempfile.mkdtemp(prefix="uvr-soak-"))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback-only benchmark cluster
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray import serve

    from ultravqa_ray.serve.app import build_application
    from ultravqa_ray.serve.config import ServeConfig
    from ultravqa_ray.train.default_model import resolve_model

    uris = corpus()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    config = ServeConfig.model_validate({
        "model": resolve_model("tiny", OUT / "serve-cache"), "cache_dir": str(OUT / "serve-cache"), "http": False,
        "scorer": {"num_replicas": 2, "num_cpus": 1, "batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.01},
                   "max_ongoing_requests": 32},
    })  # fmt: skip
    serve.run(build_application(config), name=APP, route_prefix=None)
    replicas = replica_pids()
    assert len(replicas) == 2, replicas
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client_id="soak")
        tag = uuid.uuid4().hex[:6]
        topics = Topics(uploads=f"s{tag}-up", scores=f"s{tag}-sc", dead_letters=f"s{tag}-dl", moderation=f"s{tag}-mo")
        check_topics(settings, topics.all(), create=True, partitions=2)
        stream_yaml = Path(tmp) / "stream.yaml"
        stream_yaml.write_text(yaml.safe_dump({
            "topics": topics.model_dump(), "group_id": f"soak-{tag}", "max_in_flight": 32, "poll_timeout_s": 0.05,
            "scorer": {"ray_address": ray.get_runtime_context().gcs_address, "app_name": APP},
        }))  # fmt: skip
        env = dict(os.environ, ULTRAVQA_KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers)
        bridge = subprocess.Popen([sys.executable, "-m", "ultravqa_ray.cli", "stream", "--config", str(stream_yaml)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "bridge.log", "wb"))  # noqa: SIM115
        collector = Collector(settings, topics.scores)
        collector.start()
        try:
            publish(settings, topics.uploads, uris, 16, "warm", None)  # group join, first batches
            collector.wait_for(16, timeout_s=300)
            assert len(collector.arrived) >= 16, (Path(tmp) / "bridge.log").read_text()[-3000:]

            t0 = time.time()
            publish(settings, topics.uploads, uris, args.sat, "sat", None)
            collector.wait_for(16 + args.sat, timeout_s=900)
            sat_rate = args.sat / (max(t for v, t in collector.arrived.items() if v.startswith("sat")) - t0)
            rows.append((f"saturation: {args.sat} uploads at once", f"{sat_rate:6.1f} videos/s"))

            rate = sat_rate / 2
            rss_start = {"bridge": rss_mb(bridge.pid), **{f"replica {i + 1}": rss_mb(p, True) for i, p in enumerate(replicas)}}
            soak_t0 = time.time()
            sent = publish(settings, topics.uploads, uris, args.n, "soak", rate)
            collector.wait_for(16 + args.sat + args.n, timeout_s=max(600, 2 * args.n / rate))
            rss_end = {"bridge": rss_mb(bridge.pid), **{f"replica {i + 1}": rss_mb(p, True) for i, p in enumerate(replica_pids())}}
            soak_end = max(collector.arrived[v] for v in sent if v in collector.arrived)
        finally:
            collector.stop.set()
            bridge.terminate()
            bridge.wait(60)
        done = [v for v in sent if v in collector.arrived]
        rows.append((f"soak: {args.n} uploads paced at {rate:.1f}/s (half)", f"{len(done)} scored in {soak_end - soak_t0:.0f} s"))
        rows.append(("  throughput over the soak", f"{len(done) / (soak_end - soak_t0):6.1f} videos/s"))
        span = (soak_end - soak_t0) / args.windows
        for w in range(args.windows):
            lo, hi = soak_t0 + w * span, soak_t0 + (w + 1) * span
            window = [v for v in done if lo <= sent[v] < hi]
            lat = [(collector.arrived[v] - sent[v]) * 1000 for v in window]
            if lat:
                rows.append((f"  window {w + 1:2d} ({w * span:4.0f}-{(w + 1) * span:4.0f} s): sent / p50 / p99",
                             f"{len(window) / span:5.1f}/s  {pct(lat, .5):6.0f} / {pct(lat, .99):6.0f} ms"))  # fmt: skip
        lat_all = [(collector.arrived[v] - sent[v]) * 1000 for v in done]
        rows.append(("  latency p50 / p99 over the soak", f"{pct(lat_all, .5):.0f} / {pct(lat_all, .99):.0f} ms"))
        for name in rss_start:
            start, end = rss_start[name], rss_end.get(name, float("nan"))
            rows.append((f"RSS {name}: start -> end (growth, target < 10%)",
                         f"{start:6.0f} -> {end:6.0f} MB ({(end / start - 1) * 100:+.1f} %)"))  # fmt: skip
        if len(done) < args.n:
            rows.append(("MISSING score events", str(args.n - len(done))))
    serve.delete(APP)
    serve.shutdown()
    ray.shutdown()
    print("soak benchmark: tiny qwen2_5_vl, 8x64x64 frames, 2 Scorer replicas (1 CPU each), bridge in its own "
          "process; 2-core VM shared with other jobs")  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
