"""``label report`` (JSON + HTML + plots) and ``--drop-flagged`` on a small crowd with one +1 rater."""

from __future__ import annotations

import json

import numpy as np

from connectors.wire.dimensions import DIMENSIONS
from ultravqa_ray.cli import main
from ultravqa_ray.labels.quality import QualityReport
from ultravqa_ray.schemas.manifest import read_manifest


def _write_crowd(path, n_videos=12):
    rng = np.random.default_rng(7)
    rows = []
    for j in range(n_videos):
        true = rng.integers(1, 5, size=len(DIMENSIONS))
        for rater, shift in (("ann", 0), ("bob", 0), ("cid", 0), ("plus1", 1)):
            for d, dim in enumerate(DIMENSIONS):
                noise = int(rng.choice([-1, 0, 0, 0, 0, 1])) if rater != "plus1" else 0
                rows.append({"video_id": f"v{j:02d}", "rater": rater, "dimension": dim.value,
                             "score": int(np.clip(true[d] + shift + noise, 1, 5)), "uri": f"/clips/v{j:02d}.mp4"})  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_report_writes_json_html_and_plots_and_names_the_biased_rater(tmp_path, capsys):
    ratings = _write_crowd(tmp_path / "ratings.jsonl")
    out = tmp_path / "report"
    assert main(["label", "report", "--ratings", str(ratings), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary["flagged"]) == ["plus1"] and "bias +" in summary["flagged"]["plus1"][0]
    report = QualityReport.model_validate_json((out / "quality.json").read_text())
    assert report.n_raters == 4 and report.flagged == ["plus1"]
    assert set(summary["alpha"]) == {d.value for d in DIMENSIONS}
    page = (out / "index.html").read_text()
    assert "plus1" in page and page.index("plus1") < page.index(">ann<")  # marked raters first
    for dim in DIMENSIONS:
        png = out / "plots" / f"{dim.value}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plots/{dim.value}.png" in page


def test_import_with_drop_flagged_leaves_the_biased_rater_out(tmp_path, capsys):
    ratings = _write_crowd(tmp_path / "ratings.jsonl")
    out = tmp_path / "m.jsonl"
    assert main(["label", "import", str(ratings), "--out", str(out), "--drop-flagged"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dropped_raters"] == ["plus1"] and result["added"] == 12
    assert all(rec.raters == ["ann", "bob", "cid"] for rec in read_manifest(out))
    # The ratings file keeps everyone's ratings (the audit trail); only the records leave plus1 out.
    assert sum('"plus1"' in line for line in (tmp_path / "m.ratings.jsonl").read_text().splitlines()) == 60
