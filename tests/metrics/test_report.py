"""The evaluation report: metrics.json, one PNG per dimension, an index.html that shows them."""

from __future__ import annotations

import re

import numpy as np
import pytest

from connectors.wire.dimensions import DIMENSIONS, Dimension
from connectors.wire.messages import DimensionScore
from ultravqa_ray.metrics.mos import MosItem, evaluate_mos
from ultravqa_ray.metrics.quality import EvalResult, evaluate_predictions
from ultravqa_ray.metrics.report import confusion_matrix, write_report
from ultravqa_ray.schemas.annotation import AnnotationRecord

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def corpus(n: int, k: int = 5, seed: int = 0, dimensions=DIMENSIONS):
    """``n`` videos rated by 3 raters around a latent score, and a noisy model around the same latent."""
    rng = np.random.default_rng(seed)
    levels = np.arange(1, k + 1)
    records, predictions = [], {}
    for i in range(n):
        latent = rng.uniform(1, k, size=len(dimensions))
        ratings = {
            d: np.clip(np.rint(lat + rng.normal(0, 0.7, size=3)), 1, k).astype(int).tolist()
            for d, lat in zip(dimensions, latent, strict=True)
        }
        records.append(AnnotationRecord(video_id=f"v{i:04d}", uri=f"v{i:04d}.mp4", ratings=ratings))
        scores = {}
        for d, lat in zip(dimensions, latent, strict=True):
            logits = -((levels - lat - rng.normal(0, 0.5)) ** 2)
            p = np.exp(logits) / np.exp(logits).sum()
            scores[d] = DimensionScore(score=float(levels @ p), label=int(p.argmax()) + 1, probs=p.tolist())
        predictions[f"v{i:04d}"] = scores
    return records, predictions


def test_writes_every_file_and_the_html_shows_every_png(tmp_path):
    records, predictions = corpus(40)
    del predictions["v0003"]
    result = evaluate_predictions(records, predictions, k=5, meta={"model": "<tiny & co>"})
    files = write_report(result, records, predictions, tmp_path / "report", 5)

    assert files.metrics_json == tmp_path / "report" / "metrics.json"
    assert EvalResult.model_validate_json(files.metrics_json.read_text()) == result
    assert set(files.plots) == set(DIMENSIONS)
    for path in files.plots.values():
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert path.stat().st_size > 10_000  # three drawn panels, not an empty canvas

    page = files.index_html.read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(sources) == sorted(
        p.relative_to(tmp_path / "report").as_posix() for p in files.plots.values()
    )
    assert all((tmp_path / "report" / s).is_file() for s in sources)
    assert 'href="metrics.json"' in page
    for dim in DIMENSIONS:
        assert dim.label in page
    assert f"{result.overall.srcc:.3f}" in page
    assert "v0003" in page  # the missing video is shown
    assert "&lt;tiny &amp; co&gt;" in page and "<tiny" not in page


def test_undefined_metrics_and_empty_dimensions_still_give_a_page(tmp_path):
    """AQ has no prediction at all and MQ's predictions are constant: n/a cells, a 'no data' panel."""
    mq, aq = Dimension.MOTION_QUALITY, Dimension.AESTHETIC_QUALITY
    records = [AnnotationRecord(video_id=f"v{s}", uri="x", ratings={mq: [s], aq: [s]}) for s in (1, 2, 3)]
    constant = DimensionScore(score=3.0, label=3, probs=[0, 0, 1, 0, 0])
    predictions = {f"v{s}": {mq: constant} for s in (1, 2, 3)}
    result = evaluate_predictions(records, predictions, k=5)
    mos = evaluate_mos([MosItem(video_id="v1", uri="x", mos=3.0)], predictions, mq, k=5)
    files = write_report(result, records, predictions, tmp_path, mos=[mos])
    page = files.index_html.read_text()
    assert "n/a" in page and "constant" in page and "MOS datasets" in page
    assert set(files.plots) == {mq, aq}
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in files.plots.values())


def test_k_must_match_the_result(tmp_path):
    records, predictions = corpus(3)
    result = evaluate_predictions(records, predictions, k=5)
    with pytest.raises(ValueError, match="K = 5"):
        write_report(result, records, predictions, tmp_path, 7)


def test_k10_report(tmp_path):
    records, predictions = corpus(30, k=10, dimensions=(Dimension.CLARITY_QUALITY,))
    result = evaluate_predictions(records, predictions, k=10)
    files = write_report(result, records, predictions, tmp_path)
    assert files.plots[Dimension.CLARITY_QUALITY].read_bytes()[:8] == PNG_MAGIC


def test_confusion_matrix_by_hand():
    """rounded (1, 2, 2, 3) vs label (1, 2, 3, 3): diagonal 1, 1, 1 and one count at (row 2, column 3)."""
    counts = confusion_matrix(np.array([1, 2, 2, 3]), np.array([1, 2, 3, 3]), 3)
    np.testing.assert_array_equal(counts, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])


def test_five_dimensions_by_200_videos(tmp_path):
    """The full-size report is written (its time is measured in bench/bench_report.py, not asserted)."""
    records, predictions = corpus(200)
    result = evaluate_predictions(records, predictions, k=5)
    files = write_report(result, records, predictions, tmp_path)
    assert files.metrics_json.exists() and len(list((tmp_path / "plots").glob("*.png"))) >= 5
