"""The rater quality report: ``quality.json``, two plots per dimension and an ``index.html``.

Layout of ``out_dir``::

    quality.json              the QualityReport (NaN written as null; QualityReport.model_validate_json reads it)
    plots/<dimension>.png     left: each rater's bias (leave-one-out) against inconsistency (P.910 model),
                              marked raters in red; right: recovered score with its 95% interval
                              against the plain mean opinion score, per video
    index.html                agreement per dimension, the rater table (marked raters first), the plots

Plots use matplotlib's ``Figure`` (no pyplot state), as :mod:`ultravqa_ray.metrics.report` does,
whose table style and number format this page shares.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from connectors.wire.dimensions import Dimension
from ultravqa_ray.labels.quality import QualityReport
from ultravqa_ray.labels.records import Rating
from ultravqa_ray.metrics.report import _CSS, _fmt


def write_quality_report(
    report: QualityReport, ratings: Sequence[Rating], out_dir: str | Path, *, dpi: int = 80
) -> dict[str, Path]:
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    files = {"quality_json": out / "quality.json", "index_html": out / "index.html"}
    files["quality_json"].write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    for dim in report.per_dimension:
        files[dim.value] = out / "plots" / f"{dim.value}.png"
        _plot(report, ratings, dim, files[dim.value], dpi)
    files["index_html"].write_text(_html(report), encoding="utf-8")
    return files


def _plot(report: QualityReport, ratings: Sequence[Rating], dim: Dimension, path: Path, dpi: int) -> None:
    from matplotlib.figure import Figure  # lazy: only report writers need matplotlib

    quality = report.per_dimension[dim]
    flagged = set(report.flagged)
    fig = Figure(figsize=(12, 4.2), dpi=dpi)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.86, wspace=0.25)
    fig.suptitle(f"{dim.label}  (alpha = {_fmt(quality.alpha)}, {quality.n_videos} videos)")
    ax_r, ax_v = fig.subplots(1, 2)
    by_rater = {r.rater: r.per_dimension.get(dim) for r in report.raters}
    for rater, row in by_rater.items():
        if row is None:
            continue
        bad = rater in flagged
        ax_r.scatter(
            [row.inconsistency], [row.bias], color="tab:red" if bad else "tab:blue", s=30 if bad else 14
        )
        if bad:
            ax_r.annotate(
                rater, (row.inconsistency, row.bias), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    ax_r.axhline(0, color="black", lw=0.8)
    for limit in (-report.thresholds.max_abs_bias, report.thresholds.max_abs_bias):
        ax_r.axhline(limit, color="tab:red", lw=0.8, ls="--")
    ax_r.axvline(report.thresholds.max_inconsistency, color="tab:red", lw=0.8, ls="--")
    ax_r.set(xlabel="inconsistency (P.910 subject model)", ylabel="bias vs leave-one-out consensus")
    ax_r.set_title("Raters (red: marked for exclusion)", fontsize=10)

    model = quality.model
    mos: dict[str, list[int]] = {v: [] for v in model.videos}
    for r in ratings:
        if r.dimension == dim and r.video_id in mos:
            mos[r.video_id].append(r.score)
    x = np.array([np.mean(mos[v]) for v in model.videos])
    y = np.array(model.scores)
    err = 1.959963984540054 * np.array(model.scores_std)
    ax_v.errorbar(x, y, yerr=err, fmt="o", ms=3, lw=0.8, alpha=0.7, color="tab:blue")
    k = report.k
    ax_v.plot([1, k], [1, k], color="black", lw=1)
    ax_v.set(xlim=(0.8, k + 0.2), xlabel="mean opinion score", ylabel="recovered score (95% interval)")
    ax_v.set_title("Videos: subject-model score vs plain mean", fontsize=10)
    fig.savefig(path, format="png")


def _html(report: QualityReport) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Rater quality</title><style>{_CSS}</style></head><body>",
        "<h1>Rater quality</h1>",
        f"<p>{report.n_ratings} ratings of {report.n_videos} videos by {report.n_raters} raters, scores "
        f'1..{report.k}. Full numbers: <a href="quality.json">quality.json</a>.</p>',
        "<table><tr><th>dimension</th><th>videos</th><th>ratings</th><th>alpha (ordinal)</th></tr>",
    ]
    for dim, q in report.per_dimension.items():
        parts.append(
            f"<tr><td>{esc(dim.label)}</td><td>{q.n_videos}</td><td>{q.n_ratings}</td><td>{_fmt(q.alpha)}</td></tr>"
        )
    parts.append("</table>")
    t = report.thresholds
    parts.append(
        f"<h2>Raters</h2><p>Marked when |bias| &gt; {t.max_abs_bias:g} on a dimension, consensus correlation &lt; "
        f"{t.min_consensus_corr:g}, inconsistency &gt; {t.max_inconsistency:g} or gold accuracy &lt; "
        f"{t.min_gold_accuracy:g}, for raters of at least {t.min_items} videos.</p>"
    )
    parts.append(
        "<table><tr><th>rater</th><th>videos</th><th>bias</th><th>consensus corr</th>"
        "<th>inconsistency</th><th>gold</th><th>marked</th></tr>"
    )
    for r in sorted(report.raters, key=lambda r: (not r.flagged, r.rater)):
        gold = "" if r.gold_accuracy is None else f"{r.gold_accuracy:.2f} of {r.gold_n}"
        mark = '<span class="warn">' + esc("; ".join(r.reasons)) + "</span>" if r.flagged else ""
        parts.append(
            f"<tr><td>{esc(r.rater)}</td><td>{r.n_videos}</td><td>{_fmt(r.bias, 2)}</td><td>{_fmt(r.consensus_corr, 2)}</td>"
            f"<td>{_fmt(r.inconsistency, 2)}</td><td>{gold}</td><td>{mark}</td></tr>"
        )
    parts.append("</table><h2>Per dimension</h2>")
    for dim in report.per_dimension:
        parts.append(
            f'<h3>{esc(dim.label)}</h3><img src="plots/{esc(dim.value)}.png" alt="{esc(dim.label)} plots">'
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
