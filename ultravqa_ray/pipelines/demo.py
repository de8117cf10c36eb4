"""The demo (README's first command): synthetic uploads -> Kafka -> Ray Serve -> score events, live.

What runs, all real and all local: the synthetic corpus generator, the embedded Kafka-compatible
broker, a local Ray, the project's default model (the checkpoint its SFT and ASO jobs produced on a
synthetic corpus, shipped in the package; ``model=tiny`` is an untrained model for the plumbing only),
the Scorer deployment on Ray Serve, and the Kafka bridge that feeds it and writes score events or
dead letters before committing. A few deliberately bad uploads show the dead-letter path. The
score events are printed as they arrive (video, the five scores, produce-to-score latency), then
a summary.
"""

from __future__ import annotations

import base64
import contextlib
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from pydantic import Field

from connectors.kafka import EmbeddedBroker, KafkaSettings, Topics, ensure_topics
from connectors.kafka.broker import free_port
from connectors.kafka.sink import KafkaSink, OutgoingRecord
from connectors.wire.dimensions import DIMENSIONS
from connectors.wire.messages import DeadLetter, ScoreEvent, UploadEvent
from ultravqa_ray.config import Config
from ultravqa_ray.data import SynthConfig, generate_corpus
from ultravqa_ray.pipelines.serve_client import HandleClient, ScorerTargetConfig
from ultravqa_ray.pipelines.stream import Bridge, StreamConfig
from ultravqa_ray.schemas import read_manifest
from ultravqa_ray.schemas.manifest import resolve_uri
from ultravqa_ray.serve.config import (
    DEFAULT_CACHE,
    BatchingConfig,
    ScorerDeploymentConfig,
    ScorerUserConfig,
    ServeConfig,
)
from ultravqa_ray.serve.models import expected_decode
from ultravqa_ray.train.default_model import resolve_model

SHORT = {
    "motion_quality": "motion",
    "motion_amplitude": "amplit",
    "aesthetic_quality": "aesth",
    "content_quality": "content",
    "clarity_quality": "clarity",
}
APP_NAME = "ultravqa-demo"


class DemoConfig(Config):
    work_dir: Path = Field(
        Path.home() / ".cache" / "ultravqa-ray" / "demo",
        description="Where the demo's corpus and uploads are kept between runs.",
    )
    model_cache_dir: Path = Field(
        DEFAULT_CACHE,
        description="Where the default / tiny models are cached (the same place serve_configs/local.yaml looks).",
    )
    n_clips: int = Field(16, ge=1, le=10000, description="Synthetic uploads to publish.")
    seed: int = Field(100, description="Seed of the demo's synthetic corpus (not the training seeds).")
    model: str = Field(
        "default",
        description="'default' (the shipped trained checkpoint), 'tiny' (untrained) or a checkpoint folder.",
    )
    bad_inputs: bool = Field(True, description="Also publish bad uploads to show the dead-letter path.")
    rationale: bool = Field(
        True,
        description="Ask for the written rationale of each upload and print one (the lowest-scored dimension's, "
        "shortened) under its row of the live table.",
    )
    replicas: int = Field(1, ge=1, le=8, description="Scorer replicas.")
    batching: BatchingConfig = Field(default_factory=BatchingConfig, description="Scorer batching.")
    max_in_flight: int = Field(16, ge=1, description="Bridge back-pressure bound.")
    ray_cpus: int = Field(4, ge=1, description="Logical CPUs of the local Ray the demo starts.")
    timeout_s: float = Field(300, gt=0, description="Give up waiting for outputs after this long.")


def run_demo(config: DemoConfig, out: TextIO) -> dict:
    work = config.work_dir.expanduser()
    work.mkdir(parents=True, exist_ok=True)

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    started = time.monotonic()
    manifest = work / f"corpus-seed{config.seed}-n{config.n_clips}" / "manifest.jsonl"
    if not manifest.exists():
        say(f"[1/5] synthesising {config.n_clips} labelled clips into {manifest.parent} ...")
        generate_corpus(manifest.parent, SynthConfig(n=config.n_clips, seed=config.seed))
    else:
        say(f"[1/5] synthetic corpus cached at {manifest.parent}")
    records = read_manifest(manifest)

    # The model first: a first-run training starts (and stops) a Ray of its own, tuned for Ray Train.
    if config.model == "default":
        say("[2/5] default model (shipped checkpoint of the SFT + ASO jobs; trained here only if the recipe changed) ...")
    model_path = resolve_model(config.model, config.model_cache_dir, log=lambda m: say(f"      {m}"))
    if config.model.startswith("tiny"):
        say(f"[2/5] model: untrained tiny model at {model_path} (scores show the plumbing, not quality)")
    else:
        say(f"[2/5] model: {model_path}")

    with _local_ray(config.ray_cpus) as started_ray:
        say(f"[3/5] local Ray {'started' if started_ray else 'already running'}")
        serve_config = ServeConfig(
            model=model_path, cache_dir=config.model_cache_dir, decode=expected_decode(model_path), http=False,
            storage={"allow": [str(manifest.parent), str(work / "uploads")]},
            scorer=ScorerDeploymentConfig(num_replicas=config.replicas, num_cpus=1,
                                          batching=ScorerUserConfig(**config.batching.model_dump())),
        )  # fmt: skip
        with _scorer_app(serve_config), EmbeddedBroker() as broker:
            settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client_id="ultravqa-demo")
            topics = Topics()
            ensure_topics(settings, topics.all())
            say(f"[4/5] Scorer deployed on Ray Serve ({config.replicas} replica(s)); embedded Kafka on "
                f"{broker.bootstrap_servers}; bridge group ultravqa-stream")  # fmt: skip
            stream = StreamConfig(
                topics=topics, max_in_flight=config.max_in_flight, poll_timeout_s=0.2,
                scorer=ScorerTargetConfig(ray_address=None, app_name=APP_NAME),
            )  # fmt: skip
            bridge = Bridge(stream, HandleClient(stream.scorer), settings=settings)
            stop = threading.Event()
            worker = threading.Thread(target=bridge.run, args=(stop,), name="bridge", daemon=True)
            worker.start()
            deadline = time.monotonic() + 60  # join the group first: latencies then show the pipeline
            while not bridge.ready()[0] and worker.is_alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            uploads = _uploads(records, manifest, work / "uploads", config.bad_inputs, config.rationale)
            with KafkaSink(settings) as sink:
                sink.send_all([OutgoingRecord(topics.uploads, key, value) for key, value in uploads])
            n_bad = len(uploads) - len(records)
            say(f"[5/5] published {len(uploads)} uploads ({n_bad} deliberately bad); score events as they arrive:")
            try:
                published = {u.video_id: u.event_time for u in map(_as_upload, uploads) if u is not None}
                summary, scored = _collect(settings, topics, published, len(uploads), config.timeout_s, say)
            finally:
                stop.set()
                worker.join(timeout=60)
    summary["srcc"] = _agreement(records, scored)
    if summary["srcc"]:
        say("agreement with the synthetic labels (Spearman, score vs rater mean, these clips): "
            + ", ".join(f"{SHORT[d]} {v:+.2f}" for d, v in summary["srcc"].items()))  # fmt: skip
    summary["total_seconds"] = round(time.monotonic() - started, 1)
    say(f"done in {summary['total_seconds']:.0f}s")
    return summary


@contextlib.contextmanager
def _local_ray(num_cpus: int) -> Iterator[bool]:
    """Join the Ray of this process if there is one, else start a local one (stopped at the end)."""
    import ray

    if ray.is_initialized():
        yield False
        return
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="uvr-demo-"))  # fmt: skip
    try:
        yield True
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _scorer_app(config: ServeConfig) -> Iterator[None]:
    """Deploy the Scorer (no HTTP: the demo talks to it through the bridge) and delete it afterwards."""
    from ray import serve
    from ray.serve.exceptions import RayServeException

    from ultravqa_ray.serve.app import build_application

    try:
        serve.status()  # already running (e.g. a test session): keep its HTTP options
    except RayServeException:  # not started: start it, its HTTP proxy on loopback only
        serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    serve.run(build_application(config), name=APP_NAME, route_prefix=None)
    try:
        yield
    finally:
        serve.delete(APP_NAME)


def _uploads(records, manifest: Path, folder: Path, bad: bool, rationale: bool = False) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC)

    def event(vid: str, uri: str) -> bytes:
        return UploadEvent(video_id=vid, uri=uri, event_time=datetime.now(UTC), want_rationale=rationale).to_bytes()

    out = [(r.video_id.encode(), event(r.video_id, resolve_uri(r.uri, manifest))) for r in records]
    if bad:
        folder.mkdir(parents=True, exist_ok=True)
        text = folder / "not-a-video.mp4"
        text.write_text("this is a text file, not a video\n")
        truncated = folder / "truncated.mp4"
        truncated.write_bytes(Path(resolve_uri(records[0].uri, manifest)).read_bytes()[:1500])
        bad_field = (b'{"video_id": "bad-field", "uri": "x.mp4", "event_time": "' + now.isoformat().encode()
                     + b'", "colour": "red"}')  # fmt: skip
        out += [
            (b"bad-json", b"{this is not json"),
            (b"bad-field", bad_field),
            (b"missing", event("missing", str(folder / "no-such-file.mp4"))),
            (b"text", event("text", str(text))),
            (b"truncated", event("truncated", str(truncated))),
            (b"forbidden", event("forbidden", "/etc/hostname")),
        ]
    return out


def _as_upload(item: tuple[bytes, bytes]) -> UploadEvent | None:
    try:
        return UploadEvent.from_bytes(item[1])
    except ValueError:  # the deliberately invalid ones
        return None


def _collect(settings: KafkaSettings, topics: Topics, published: dict[str, datetime], expected: int,
             timeout_s: float, say: Callable[[str], None]) -> tuple[dict, dict[str, ScoreEvent]]:  # fmt: skip
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.consumer_kwargs(None))
    parts = [TopicPartition(t, p) for t in (topics.scores, topics.dead_letters)
             for p in sorted(consumer.partitions_for_topic(t) or {0})]  # fmt: skip
    consumer.assign(parts)
    consumer.seek_to_beginning()
    say("  " + f"{'video':<22}" + "".join(f"{SHORT[d.value]:>8}" for d in DIMENSIONS) + f"{'latency':>10}")
    started = time.monotonic()
    latencies: list[float] = []
    dead: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    scored: dict[str, ScoreEvent] = {}
    while len(latencies) + sum(dead.values()) < expected and time.monotonic() - started < timeout_s:
        for batch in consumer.poll(timeout_ms=500).values():
            for rec in batch:
                if rec.topic == topics.scores:
                    ev = ScoreEvent.from_bytes(rec.value)
                    if (ev.video_id, ev.model.revision) in seen:  # at-least-once: skip a re-delivery
                        continue
                    seen.add((ev.video_id, ev.model.revision))
                    scored[ev.video_id] = ev
                    # produce-to-score: the upload's event time (set when published) to the score event
                    latency = max(0.0, (ev.produced_at - published[ev.video_id]).total_seconds() * 1000)
                    latencies.append(latency)
                    cells = "".join(
                        f"{ev.scores[d].score:>8.2f}" if d in ev.scores else f"{'-':>8}" for d in DIMENSIONS
                    )
                    say(f"  {ev.video_id[:22]:<22}{cells}{latency:>8.0f}ms")
                    if (why := short_rationale(ev)) is not None:
                        say(f"    {why}")
                else:
                    letter = DeadLetter.from_bytes(rec.value)
                    dead[letter.error_kind.value] += 1
                    key = base64.b64decode(letter.key_b64).decode(errors="replace") if letter.key_b64 else "-"
                    say(f"  {key[:22]:<22}  dead letter [{letter.error_kind.value}] {letter.error[:70]}")
    consumer.close()
    elapsed = time.monotonic() - started
    got = len(latencies) + sum(dead.values())
    ordered = sorted(latencies)
    summary = {
        "expected": expected,
        "scored": len(latencies),
        "dead_letters": dict(dead),
        "missing": expected - got,
        "seconds": round(elapsed, 2),
        "latency_ms_p50": round(statistics.median(ordered), 1) if ordered else None,
        "latency_ms_p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1) if ordered else None,
    }
    say(f"summary: {len(latencies)} scored, {sum(dead.values())} dead-lettered {dict(dead)}, "
        f"{summary['missing']} missing, in {elapsed:.1f}s; produce-to-score latency p50 "
        f"{summary['latency_ms_p50']} ms, p95 {summary['latency_ms_p95']} ms")  # fmt: skip
    return summary, scored


def short_rationale(event: ScoreEvent, width: int = 96) -> str | None:
    """One rationale of a score event, shortened for the live table: the lowest-scored dimension's
    (what the model finds worst, and why), e.g. ``why clarity 1.62: Clarity Quality is poor, with
    strong blur that softens the edges.``; None when the event has no rationale."""
    written = {d: t for d, t in (event.rationale or {}).items() if t.strip() and d in event.scores}
    if not written:
        return None
    dim = min(written, key=lambda d: event.scores[d].score)
    text = " ".join(written[dim].split())
    line = f"why {SHORT[dim.value]} {event.scores[dim].score:.2f}: {text}"
    return line if len(line) <= width else line[: width - 3].rstrip() + "..."


def _agreement(records, scored: dict[str, ScoreEvent]) -> dict[str, float]:
    """Spearman correlation of each dimension's score with the rater mean, over the scored clips."""
    from scipy.stats import spearmanr

    pairs = [(r, scored[r.video_id]) for r in records if r.video_id in scored]
    if len(pairs) < 4:
        return {}
    out = {}
    for dim in DIMENSIONS:
        truth = [r.y_mean(dim) for r, _ in pairs]
        pred = [ev.scores[dim].score for _, ev in pairs]
        if len(set(truth)) > 1 and len(set(pred)) > 1:
            out[dim.value] = round(float(spearmanr(truth, pred).statistic), 3)
    return out
