"""Rationales from pooled judgments: the template word for word, and the language-model writer
against a local OpenAI-compatible server (tests/fixtures/chat_server.py) for retries, the cache,
the re-ask and the fallback. The key must never show in logs, outputs or the cache."""

from __future__ import annotations

import json
import logging

import pytest

from connectors.wire.dimensions import Dimension
from tests.fixtures.chat_server import careful_answer
from ultravqa_ray.cli import main
from ultravqa_ray.curation.prompt import check, messages_for
from ultravqa_ray.curation.rationales import RationalesConfig, RationaleWriter
from ultravqa_ray.curation.records import rationales_for_records, read_annotated
from ultravqa_ray.data.pooled import PooledJudgment, count_sub_attributes, pool
from ultravqa_ray.data.rationale import pooled_rationale
from ultravqa_ray.schemas.annotation import AnnotationRecord
from ultravqa_ray.schemas.manifest import ManifestError, read_manifest, write_manifest

KEY = "sk-test-0123456789-never-print-me"
CLARITY = PooledJudgment(
    Dimension.CLARITY_QUALITY,
    k=5,
    ratings=(4, 3, 4),
    sub_attribute_counts=count_sub_attributes(["blur", "noise", "blur"], 3),
    comments=("Soft focus  throughout.", 'Some "mosquito" noise'),
)
AMPLITUDE = PooledJudgment(Dimension.MOTION_AMPLITUDE, k=10, ratings=(1,))


def test_templated_rationale_word_for_word():
    assert CLARITY.mean == pytest.approx(11 / 3) and CLARITY.band == "good"
    assert CLARITY.majority == ("blur",) and CLARITY.minority == ("noise",)
    assert pooled_rationale(CLARITY) == (
        "Clarity Quality is good: a mean of 3.67 out of 5 from 3 raters (2 gave 4, 1 gave 3). "
        "2 of 3 raters noted blur; 1 noted noise. "
        "Raters wrote: \"Soft focus throughout.\"; \"Some 'mosquito' noise\"."
    )
    assert pooled_rationale(AMPLITUDE) == (
        "Motion Amplitude is very small: a mean of 1.00 out of 10 from 1 rater (1 gave 1)."
    )


def test_consensus_sub_attribute_lists():
    """A list without repeats (the synthetic corpus) counts every label as marked by every rater."""
    assert count_sub_attributes(["noise", "blur"], 3) == (("blur", 3), ("noise", 3))
    assert count_sub_attributes(["shake", "stutter", "shake"], 4) == (("shake", 2), ("stutter", 1))
    consensus = PooledJudgment(
        Dimension.MOTION_QUALITY, k=5, ratings=(2, 2, 2), sub_attribute_counts=count_sub_attributes(["stutter", "jitter"], 3)
    )
    assert pooled_rationale(consensus) == (
        "Motion Quality is poor: a mean of 2.00 out of 5 from 3 raters (3 gave 2). All 3 raters noted jitter and stutter."
    )
    with pytest.raises(ValueError, match="outside 1..5"):
        PooledJudgment(Dimension.CLARITY_QUALITY, k=5, ratings=(6,))


def test_pooled_from_a_pulled_record():
    """What 'label pull' writes: majority labels in sub_attributes, votes and comments in metadata."""
    record = AnnotationRecord(
        video_id="v", uri="v.mp4", raters=["a", "b", "c", "d"],
        ratings={Dimension.MOTION_QUALITY: [2, 2, None, 3]},
        sub_attributes={Dimension.MOTION_QUALITY: ["shake"]},
        metadata={"sub_attribute_votes": {"motion_quality": {"shake": 2, "stutter": 1}},
                  "comments": {"a": "Shaky  hand-held shot", "c": "no opinion on motion"}},
    )  # fmt: skip
    j = pool(record, Dimension.MOTION_QUALITY, 5, {Dimension.MOTION_QUALITY: ["jerky pan"]})
    assert j.ratings == (2, 2, 3) and j.sub_attribute_counts == (("shake", 2), ("stutter", 1))
    assert j.majority == ("shake",) and j.minority == ("stutter",)
    assert j.comments == ("jerky pan",) and j.video_comments == ("Shaky hand-held shot", "no opinion on motion")
    assert pooled_rationale(j) == (
        "Motion Quality is poor: a mean of 2.33 out of 5 from 3 raters (1 gave 3, 2 gave 2). "
        "2 of 3 raters noted shake; 1 noted stutter. A rater wrote: \"jerky pan\"."
    )
    sheet = messages_for(j)[1]["content"]
    assert 'Rater comments on this dimension: "jerky pan"' in sheet
    assert 'Rater comments on the whole video: "Shaky hand-held shot"; "no opinion on motion"' in sheet


def test_check_states_the_band_and_names_the_majority():
    assert check("Clarity quality is good, with blur over the whole frame.", CLARITY) is None
    assert "states 'poor'" in check("Clarity Quality is poor, with blur.", CLARITY)
    assert "does not state" in check("Blurry, with some noise.", CLARITY)
    assert "does not name blur" in check("Clarity Quality is good, with noise.", CLARITY)
    very = PooledJudgment(Dimension.CLARITY_QUALITY, k=5, ratings=(1, 1, 1))
    assert very.band == "very poor"
    assert check("Clarity is very poor.", very) is None
    assert "states 'poor'" in check("Clarity is poor.", very)  # 'poor' is not 'very poor'


def _writer(server, tmp_path, **fields) -> RationaleWriter:
    config = RationalesConfig(
        base_url=server.base_url, model="local-test", api_key=KEY, cache_dir=str(tmp_path / "cache"),
        backoff_s=0.01, backoff_max_s=0.05, **fields,
    )  # fmt: skip
    return RationaleWriter(config, environ={})


def test_writes_through_the_endpoint_and_retries_after_429_and_500(chat_server, tmp_path):
    chat_server.script += [429, 500]
    writer = _writer(chat_server, tmp_path)
    [(text, source)] = writer.write([CLARITY])
    assert source == "llm" and text == "Clarity Quality is good, with blur."
    assert writer.stats.requests == 3 and writer.stats.retries == 2 and writer.stats.llm == 1
    first = chat_server.requests[0]
    assert first["body"]["model"] == "local-test" and first["headers"]["authorization"] == f"Bearer {KEY}"
    assert "Verdict word: good" in first["body"]["messages"][1]["content"]


def test_rerun_is_served_from_the_cache(chat_server, tmp_path):
    first = _writer(chat_server, tmp_path).write([CLARITY, AMPLITUDE])
    assert len(chat_server.requests) == 2
    again = _writer(chat_server, tmp_path)
    assert again.write([CLARITY, AMPLITUDE]) == first
    assert len(chat_server.requests) == 2 and again.stats.requests == 0 and again.stats.cache_hits == 2
    other = _writer(chat_server, tmp_path, temperature=0.7)  # another input: asked again
    other.write([CLARITY])
    assert other.stats.requests == 1
    cached = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert "Clarity Quality is good" in cached and KEY not in cached


def test_reasks_once_on_a_contradicting_answer(chat_server, tmp_path):
    chat_server.script.append("Clarity Quality is poor: the image is soft.")
    writer = _writer(chat_server, tmp_path)
    [(text, source)] = writer.write([CLARITY])
    assert (text, source) == ("Clarity Quality is good, with blur.", "llm")
    assert writer.stats.reasked == 1 and writer.stats.requests == 2
    reask = chat_server.requests[1]["body"]["messages"]
    assert reask[2] == {"role": "assistant", "content": "Clarity Quality is poor: the image is soft."}
    assert "states 'poor'" in reask[3]["content"] and "beginning with 'Clarity Quality is good'" in reask[3]["content"]


def test_falls_back_to_the_template_after_a_second_contradiction(chat_server, tmp_path):
    chat_server.script += ["Clarity Quality is poor.", "Clarity Quality is excellent, very crisp."]
    writer = _writer(chat_server, tmp_path)
    assert writer.write([CLARITY]) == [(pooled_rationale(CLARITY), "template")]
    assert writer.stats.fallbacks == {"disagreed": 1} and writer.stats.requests == 2


def test_falls_back_when_the_endpoint_stays_down(chat_server, tmp_path):
    chat_server.script += [503, 503, 503]
    writer = _writer(chat_server, tmp_path, max_retries=2)
    assert writer.write([CLARITY]) == [(pooled_rationale(CLARITY), "template")]
    assert writer.stats.fallbacks == {"unavailable": 1} and writer.stats.retries == 2
    chat_server.script.append(400)
    refused = _writer(chat_server, tmp_path, max_retries=2)
    assert refused.write([AMPLITUDE])[0][1] == "template" and refused.stats.fallbacks == {"refused": 1}


def test_bounded_concurrency(chat_server, tmp_path):
    chat_server.delay_s = 0.2
    try:
        writer = _writer(chat_server, tmp_path, max_in_flight=3, cache=False)
        judgments = [PooledJudgment(Dimension.CLARITY_QUALITY, k=5, ratings=(r, s)) for r in range(1, 6) for s in (1, 5)]
        out = writer.write(judgments)
    finally:
        chat_server.delay_s = 0.0
    assert [s for _, s in out] == ["llm"] * 10 and writer.stats.requests == 10
    assert chat_server.max_in_flight == 3


def test_without_an_endpoint_the_template_writes(chat_server, tmp_path):
    writer = RationaleWriter(RationalesConfig(cache_dir=str(tmp_path)), environ={})
    assert not writer.uses_endpoint
    assert writer.write([CLARITY]) == [(pooled_rationale(CLARITY), "template")]
    assert chat_server.requests == [] and not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="needs a model"):
        RationalesConfig().resolved({"ULTRAVQA_LLM_BASE_URL": chat_server.base_url})


def _manifest(tmp_path):
    rows = [
        {"video_id": "v1", "uri": "v1.mp4", "ratings": {"clarity_quality": [4, 3, 4], "motion_amplitude": [1, 2, 1]},
         "sub_attributes": {"clarity_quality": ["blur", "noise", "blur"]},
         "comments": {"clarity_quality": ["Soft focus  throughout.", 'Some "mosquito" noise']}},
        {"video_id": "v2", "uri": "v2.mp4", "ratings": {"aesthetic_quality": [5, 5, 4]}, "rationale": {"aesthetic_quality": "old"}},
    ]  # fmt: skip
    path = tmp_path / "pulled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_manifest_comments_reach_the_prompt(tmp_path):
    items = read_annotated(_manifest(tmp_path))
    record, comments = items[0]
    assert comments == {Dimension.CLARITY_QUALITY: ["Soft focus  throughout.", 'Some "mosquito" noise']}
    writer = RationaleWriter(RationalesConfig(), environ={})
    [v1, v2] = rationales_for_records(items, writer)
    assert v1.rationale[Dimension.CLARITY_QUALITY] == pooled_rationale(CLARITY)
    assert v1.metadata["rationale_source"] == {"motion_amplitude": "template", "clarity_quality": "template"}
    assert v2.rationale[Dimension.AESTHETIC_QUALITY].startswith("Aesthetic Quality is excellent")
    sheet = messages_for(CLARITY)[1]["content"]
    assert 'Rater comments on this dimension: "Soft focus throughout."; "Some \\"mosquito\\" noise"' in sheet
    assert "Marked by most raters: blur (2 of 3)" in sheet and careful_answer(messages_for(CLARITY)).endswith("blur.")


def test_comments_in_parquet_and_bad_comments(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [r for r, _ in read_annotated(_manifest(tmp_path))]
    path = write_manifest(records, tmp_path / "m.parquet")
    table = pq.read_table(path)
    comments = [json.dumps({"clarity_quality": ["too soft"]}), None]
    pq.write_table(table.append_column("comments_json", pa.array(comments, pa.string())), path)
    items = read_annotated(path)
    assert [c for _, c in items] == [{Dimension.CLARITY_QUALITY: ["too soft"]}, {}]
    assert items[0][0] == records[0]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"video_id": "v", "uri": "v.mp4", "ratings": {"clarity_quality": [3]},
                               "comments": {"sharpness": ["?"]}}) + "\n")  # fmt: skip
    with pytest.raises(ManifestError, match=r"bad.jsonl line 1: comments: .*sharpness"):
        read_annotated(bad)


def test_cli_keeps_the_key_out_of_logs_and_outputs(chat_server, tmp_path, monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ULTRAVQA_LLM_BASE_URL", chat_server.base_url)
    monkeypatch.setenv("ULTRAVQA_LLM_MODEL", "local-test")
    monkeypatch.setenv("ULTRAVQA_LLM_API_KEY", KEY)
    chat_server.script += [429, "Clarity Quality is poor."]
    out = tmp_path / "out" / "with_rationales.jsonl"
    argv = ["-v", "rationales", "--manifest", str(_manifest(tmp_path)), "--out", str(out),
            "--set", f"cache_dir={tmp_path / 'cache'}", "--set", "backoff_s=0.01"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rationales"] == 3 and summary["written_by_llm"] == 3 and summary["reasked"] == 1
    assert summary["retries"] == 1 and summary["requests"] == 5
    records = read_manifest(out)  # what 'train sft' reads
    assert records[0].uri == "../v1.mp4"  # still the same file, from the new manifest's folder
    assert records[0].rationale[Dimension.CLARITY_QUALITY] == "Clarity Quality is good, with blur."
    assert "comments" not in out.read_text()

    chat_server.script.append(401)
    assert main([*argv, "--set", "cache=false"]) == 1
    err = capsys.readouterr().err
    assert "answered 401" in err and len(err.strip().splitlines()) == 1
    everything = caplog.text + err + out.read_text() + json.dumps(summary)
    everything += "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert "HTTP Request" in caplog.text  # the client's own DEBUG/INFO lines were captured
    assert KEY not in everything
