"""The demo: synthetic uploads go through Kafka and come back as per-dimension score events.

What runs (all real, all local): the synthetic corpus generator, the embedded Kafka-compatible
broker, a tiny Qwen2.5-VL model of the real transformers class built offline, and the Kafka
scoring loop that decodes, scores and writes score events or dead letters before committing.
A few deliberately bad uploads show the dead-letter path.

Until the training jobs (SFT, ASO) and the Ray Serve scorer land, the default model is untrained:
its scores show the plumbing and the read-out, not video quality. Pass ``model=`` a trained
checkpoint to see real scores.
"""

from __future__ import annotations

import base64
import statistics
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from pydantic import Field

from connectors.kafka import EmbeddedBroker, KafkaSettings, Topics, ensure_topics
from connectors.wire.dimensions import DIMENSIONS
from connectors.wire.messages import DeadLetter, ScoreEvent, UploadEvent
from ultravqa_ray.config import Config
from ultravqa_ray.data import SynthConfig, generate_corpus
from ultravqa_ray.model import ModelConfig, ScorerModel
from ultravqa_ray.model.tiny import build_tiny_model
from ultravqa_ray.pipelines.kafka_loop import run_kafka_scorer
from ultravqa_ray.pipelines.uploads import process_records
from ultravqa_ray.schemas import read_manifest
from ultravqa_ray.schemas.manifest import resolve_uri
from ultravqa_ray.video import DecodeConfig

SHORT = {
    "motion_quality": "motion",
    "motion_amplitude": "amplit",
    "aesthetic_quality": "aesth",
    "content_quality": "content",
    "clarity_quality": "clarity",
}


class DemoConfig(Config):
    work_dir: Path = Field(
        Path.home() / ".cache" / "ultravqa-ray" / "demo",
        description="Where the corpus and the default model are cached between runs.",
    )
    n_clips: int = Field(16, ge=1, le=10000, description="Synthetic uploads to publish.")
    seed: int = Field(0, description="Seed of the synthetic corpus and the tiny model.")
    model: str | None = Field(
        None, description="Checkpoint folder or hub name; default: a tiny model built offline."
    )
    arch: str = Field("qwen2_5_vl", description="Family of the default tiny model.")
    bad_inputs: bool = Field(True, description="Also publish bad uploads to show the dead-letter path.")
    decode: DecodeConfig = Field(
        default_factory=lambda: DecodeConfig(num_frames=8, height=64, width=64),
        description="Frame sampling for the scorer.",
    )
    max_batch: int = Field(8, ge=1, description="Records scored together per poll.")
    timeout_s: float = Field(300, gt=0, description="Give up waiting for outputs after this long.")


def run_demo(config: DemoConfig, out: TextIO) -> dict:
    work = config.work_dir.expanduser()
    say = lambda text="": print(text, file=out, flush=True)  # noqa: E731

    manifest = work / f"corpus-seed{config.seed}-n{config.n_clips}" / "manifest.jsonl"
    if not manifest.exists():
        say(f"[1/4] synthesising {config.n_clips} labelled clips into {manifest.parent} ...")
        generate_corpus(manifest.parent, SynthConfig(n=config.n_clips, seed=config.seed))
    else:
        say(f"[1/4] synthetic corpus cached at {manifest.parent}")
    records = read_manifest(manifest)

    model_path = config.model
    if model_path is None:
        model_dir = work / f"model-tiny-{config.arch}-seed{config.seed}"
        if not (model_dir / "config.json").exists():
            say(f"[2/4] building a tiny {config.arch} model (random weights, offline) in {model_dir}")
            build_tiny_model(config.arch, model_dir, seed=config.seed)
        else:
            say(f"[2/4] tiny {config.arch} model cached at {model_dir}")
        say("      note: this model is untrained; its scores show the pipeline, not video quality")
        model_path = str(model_dir)
    else:
        say(f"[2/4] model: {model_path}")
    scorer = ScorerModel(ModelConfig(name_or_path=model_path)).setup()

    with EmbeddedBroker() as broker:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client_id="ultravqa-demo")
        topics = Topics()
        ensure_topics(settings, topics.all())
        say(f"[3/4] embedded Kafka broker on {broker.bootstrap_servers}; topics {', '.join(topics.all())}")

        stop = threading.Event()
        worker = threading.Thread(
            target=run_kafka_scorer,
            args=(settings, topics, f"demo-{uuid.uuid4().hex[:6]}",
                  lambda batch: process_records(batch, scorer, config.decode), stop),
            kwargs={"max_batch": config.max_batch},
            name="kafka-scorer",
            daemon=True,
        )  # fmt: skip
        worker.start()
        uploads = _uploads(records, manifest, work, config.bad_inputs)
        _publish(settings, topics, uploads)
        say(
            f"[4/4] published {len(uploads)} uploads ({len(uploads) - len(records)} deliberately bad); scores:"
        )
        summary = _collect(settings, topics, len(uploads), config.timeout_s, say)
        stop.set()
        worker.join(timeout=30)
    return summary


def _uploads(records, manifest: Path, work: Path, bad: bool) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC)
    out = [
        (r.video_id.encode(), UploadEvent(video_id=r.video_id, uri=resolve_uri(r.uri, manifest), event_time=now).to_bytes())
        for r in records
    ]  # fmt: skip
    if bad:
        text = work / "not-a-video.mp4"
        text.write_text("this is a text file, not a video\n")
        truncated = work / "truncated.mp4"
        truncated.write_bytes(Path(resolve_uri(records[0].uri, manifest)).read_bytes()[:1500])

        def event(vid: str, uri: str) -> bytes:
            return UploadEvent(video_id=vid, uri=uri, event_time=now).to_bytes()

        out += [
            (b"bad-json", b"{this is not json"),
            (b"bad-field", b'{"video_id": "bad-field", "uri": "x.mp4", "event_time": "2026-01-01T00:00:00Z", "colour": "red"}'),
            (b"missing", event("missing", str(work / "no-such-file.mp4"))),
            (b"text", event("text", str(text))),
            (b"truncated", event("truncated", str(truncated))),
        ]  # fmt: skip
    return out


def _publish(settings: KafkaSettings, topics: Topics, uploads) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**settings.producer_kwargs())
    for key, value in uploads:
        producer.send(topics.uploads, key=key, value=value)
    producer.flush()
    producer.close()


def _collect(settings: KafkaSettings, topics: Topics, expected: int, timeout_s: float, say) -> dict:
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
    while len(latencies) + sum(dead.values()) < expected and time.monotonic() - started < timeout_s:
        for batch in consumer.poll(timeout_ms=500).values():
            for rec in batch:
                if rec.topic == topics.scores:
                    ev = ScoreEvent.from_bytes(rec.value)
                    latencies.append(ev.timings_ms.total)
                    cells = "".join(
                        f"{ev.scores[d].score:>8.2f}" if d in ev.scores else f"{'-':>8}" for d in DIMENSIONS
                    )
                    say(f"  {ev.video_id[:22]:<22}{cells}{ev.timings_ms.total:>8.0f}ms")
                else:
                    letter = DeadLetter.from_bytes(rec.value)
                    dead[letter.error_kind.value] += 1
                    key = base64.b64decode(letter.key_b64).decode(errors="replace") if letter.key_b64 else "-"
                    say(f"  {key[:22]:<22}  dead letter [{letter.error_kind.value}] {letter.error[:70]}")
    consumer.close()
    elapsed = time.monotonic() - started
    got = len(latencies) + sum(dead.values())
    summary = {
        "expected": expected,
        "scored": len(latencies),
        "dead_letters": dict(dead),
        "missing": expected - got,
        "seconds": round(elapsed, 2),
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_max": round(max(latencies), 1) if latencies else None,
    }
    say(f"summary: {len(latencies)} scored, {sum(dead.values())} dead-lettered {dict(dead)}, "
        f"{summary['missing']} missing, in {elapsed:.1f}s; latency p50 {summary['latency_ms_p50']} ms")  # fmt: skip
    return summary
