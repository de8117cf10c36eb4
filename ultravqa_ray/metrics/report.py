"""The evaluation report: ``metrics.json``, one PNG per dimension and an ``index.html`` to open.

Layout of ``out_dir``::

    metrics.json                 the EvalResult (NaN written as null; EvalResult.model_validate_json reads it)
    plots/<dimension>.png        three panels: label vs rounded rater mean (confusion matrix),
                                 predicted score vs rater mean (identity line, +-0.5 band, SRCC in the
                                 title), reliability diagram of the label confidence (ECE in the title)
    index.html                   the metrics table, the warnings and the plots, by relative paths

With ``rationale`` (the block of :func:`ultravqa_ray.metrics.rationale.rationale_metrics`, plus
``examples``), ``metrics.json`` gains a ``rationale`` key (not a field of EvalResult: drop it before
``EvalResult.model_validate``) and the page a table of sub-attribute
precision/recall and band contradiction per dimension, and a few generated rationales.

Plots are drawn with matplotlib's Agg canvas on ``Figure`` objects (no pyplot, no global backend
state), so the report can be written from any thread or Ray worker. matplotlib is imported when a
report is written, not when this module is.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from connectors.wire.dimensions import Dimension
from ultravqa_ray.metrics.mos import MosResult
from ultravqa_ray.metrics.quality import (
    METRIC_NAMES,
    DimensionMetrics,
    EvalResult,
    Metrics,
    PairedScores,
    Predictions,
    metric_value,
    pair_scores,
)
from ultravqa_ray.schemas.annotation import AnnotationRecord

_MAX_LISTED = 50


@dataclass(frozen=True)
class ReportFiles:
    metrics_json: Path
    index_html: Path
    plots: dict[Dimension, Path]


def write_report(
    result: EvalResult,
    records: Sequence[AnnotationRecord],
    predictions: Predictions,
    out_dir: str | Path,
    k: int | None = None,
    *,
    title: str = "UltraVQA-Ray evaluation",
    mos: Sequence[MosResult] = (),
    rationale: Mapping[str, Any] | None = None,
    dpi: int = 90,
) -> ReportFiles:
    """Write the report of ``result`` (computed from ``records`` and ``predictions``) into ``out_dir``.

    ``k`` defaults to ``result.k`` and must match it. ``mos`` adds a table of MOS-dataset results.
    """
    k = result.k if k is None else k
    if k != result.k:
        raise ValueError(f"k = {k} but the result was computed with K = {result.k}")
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)

    metrics_json = out / "metrics.json"
    if rationale is None:
        metrics_json.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    else:
        summary = {**json.loads(result.model_dump_json()), "rationale": dict(rationale)}
        metrics_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    plots: dict[Dimension, Path] = {}
    for dim, row in result.per_dimension.items():
        paired = pair_scores(records, predictions, dim, k)
        plots[dim] = out / "plots" / f"{dim.value}.png"
        _plot_dimension(paired, row, plots[dim], dpi)

    index_html = out / "index.html"
    index_html.write_text(_html(result, plots, out, title, mos, rationale), encoding="utf-8")
    return ReportFiles(metrics_json=metrics_json, index_html=index_html, plots=plots)


# --- plots --------------------------------------------------------------------------------------


def confusion_matrix(rounded: np.ndarray, label: np.ndarray, k: int) -> np.ndarray:
    """K x K counts: row = rounded rater mean - 1, column = predicted label - 1."""
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (np.asarray(rounded) - 1, np.asarray(label) - 1), 1)
    return counts


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def _plot_dimension(paired: PairedScores, row: DimensionMetrics, path: Path, dpi: int) -> None:
    from matplotlib.figure import Figure  # lazy: only report writers need matplotlib

    k = paired.k
    levels = np.arange(1, k + 1)
    fig = Figure(figsize=(13.5, 4.2), dpi=dpi)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.13, top=0.86, wspace=0.25)
    fig.suptitle(f"{paired.dimension.label}  (n = {row.n}, missing = {row.n_missing})")
    ax_cm, ax_sc, ax_rel = fig.subplots(1, 3)

    counts = confusion_matrix(paired.rounded, paired.label, k)
    ax_cm.imshow(counts, cmap="Blues", origin="lower", extent=(0.5, k + 0.5, 0.5, k + 0.5))
    if k <= 12:
        threshold = counts.max() / 2 if counts.max() else 1
        for (r, c), v in np.ndenumerate(counts):
            if v:
                ax_cm.text(
                    c + 1,
                    r + 1,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if v > threshold else "black",
                )
    if not paired.n:
        ax_cm.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax_cm.transAxes)
    ax_cm.set(xticks=levels, yticks=levels, xlabel="predicted label (argmax)", ylabel="rounded rater mean")
    ax_cm.set_title(f"Label vs rater  (exact = {_fmt(row.exact)})", fontsize=10)

    ax_sc.fill_between(
        [1, k], [0.5, k - 0.5], [1.5, k + 0.5], color="tab:green", alpha=0.12, label="|error| <= 0.5"
    )
    ax_sc.plot([1, k], [1, k], color="black", lw=1, label="identity")
    if paired.n:
        ax_sc.scatter(
            paired.y_mean, paired.score, s=10, alpha=0.5 if paired.n > 100 else 0.8, color="tab:blue"
        )
    ax_sc.set(
        xlim=(0.8, k + 0.2),
        ylim=(0.8, k + 0.2),
        xlabel="rater mean",
        ylabel="predicted score (expected value)",
    )
    ax_sc.set_title(
        f"SRCC = {_fmt(row.srcc)}  PLCC = {_fmt(row.plcc)}  acc@0.5 = {_fmt(row.acc_at_0_5)}", fontsize=10
    )
    ax_sc.legend(loc="upper left", fontsize=8)

    if row.reliability:
        centers = [(b.lower + b.upper) / 2 for b in row.reliability]
        width = row.reliability[0].upper - row.reliability[0].lower
        ax_rel.bar(
            centers,
            [b.accuracy for b in row.reliability],
            width=width * 0.9,
            color="tab:orange",
            edgecolor="black",
            lw=0.5,
            label="accuracy",
        )
        ax_rel.plot(
            [b.confidence for b in row.reliability],
            [b.accuracy for b in row.reliability],
            "o",
            color="black",
            ms=3,
            label="mean confidence",
        )
    else:
        ax_rel.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax_rel.transAxes)
    ax_rel.plot([0, 1], [0, 1], color="black", lw=1, ls="--")
    ax_rel.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence p(label)", ylabel="share label == rounded mean")
    ax_rel.set_title(f"Reliability  (ECE = {_fmt(row.ece)}, NLL = {_fmt(row.nll)})", fontsize=10)
    if row.reliability:
        ax_rel.legend(loc="upper left", fontsize=8)
    fig.savefig(path, format="png")


# --- html ---------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.overall { font-weight: bold; background: #f4f4f4; }
.warn { color: #a15c00; }
img { max-width: 100%; border: 1px solid #ddd; margin-bottom: 1.5em; }
"""


def _row(name: str, metrics: Metrics, extra: str = "", css: str = "") -> str:
    cells = "".join(f"<td>{_fmt(metric_value(metrics, m))}</td>" for m in METRIC_NAMES)
    cls = f' class="{css}"' if css else ""
    return f"<tr{cls}><td>{html.escape(name)}</td><td>{metrics.n}</td>{extra}{cells}</tr>"


def _html(
    result: EvalResult,
    plots: dict[Dimension, Path],
    out: Path,
    title: str,
    mos: Sequence[MosResult],
    rationale: Mapping[str, Any] | None = None,
) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(m)}</th>" for m in METRIC_NAMES)
    rows = [_row(dim.label, row, f"<td>{row.n_missing}</td>") for dim, row in result.per_dimension.items()]
    rows.append(_row("Mean over dimensions", result.overall, "<td></td>", "overall"))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{result.n_records} annotated videos, scores 1..{result.k}. "
        'Full numbers: <a href="metrics.json">metrics.json</a>.</p>',
    ]
    if result.meta:
        parts.append(
            "<ul>" + "".join(f"<li>{esc(k)}: {esc(v)}</li>" for k, v in result.meta.items()) + "</ul>"
        )
    parts += [
        f"<table><tr><th>dimension</th><th>n</th><th>missing</th>{head}</tr>",
        *rows,
        "</table>",
    ]
    warnings = [(dim.value, w) for dim, row in result.per_dimension.items() for w in row.warnings]
    warnings += [("overall", w) for w in result.overall.warnings]
    if warnings:
        parts.append("<h2>Warnings</h2><ul>")
        parts += [f'<li class="warn">{esc(where)}: {esc(w)}</li>' for where, w in warnings]
        parts.append("</ul>")
    listed = (
        ("lack a prediction on at least one rated dimension", result.missing),
        ("were predicted but are not in the annotations", result.unmatched),
    )
    for label, ids in listed:
        if ids:
            shown = ", ".join(esc(i) for i in ids[:_MAX_LISTED])
            more = f" and {len(ids) - _MAX_LISTED} more" if len(ids) > _MAX_LISTED else ""
            parts.append(f'<p class="warn">{len(ids)} video(s) {label}: {shown}{more}.</p>')
    if mos:
        parts.append(
            "<h2>MOS datasets</h2><table><tr><th>dimensions</th><th>n</th><th>MOS range</th>"
            "<th>srcc</th><th>plcc</th><th>krcc</th><th>mae</th></tr>"
        )
        for res in mos:
            dims = ", ".join(d.value for d in res.dimensions)
            lo, hi = res.mos_range
            parts.append(
                f"<tr><td>{esc(dims)}</td><td>{res.n}</td><td>{lo:g}..{hi:g}</td><td>{_fmt(res.srcc)}</td>"
                f"<td>{_fmt(res.plcc)}</td><td>{_fmt(res.krcc)}</td><td>{_fmt(res.mae)}</td></tr>"
            )
        parts.append("</table>")
    if rationale is not None:
        parts += _rationale_html(rationale)
    parts.append("<h2>Per dimension</h2>")
    for dim, path in plots.items():
        src = esc(path.relative_to(out).as_posix())
        parts.append(f'<h3>{esc(dim.label)}</h3><img src="{src}" alt="{esc(dim.label)} plots">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _rationale_html(block: Mapping[str, Any]) -> list[str]:
    """The rationale section: precision/recall/contradiction per dimension, then a few examples."""
    esc = html.escape
    names = ("n", "precision", "recall", "contradiction", "no_band")
    rows = [*block.get("per_dimension", {}).items(), ("overall", block.get("overall", {}))]
    parts = [
        "<h2>Rationales</h2>",
        "<p>Generated rationales read back: sub-attributes cited vs annotated (micro precision and recall), "
        "and the share whose stated band contradicts the printed score (more than half a band outside it, "
        "or no band stated).</p>",
        "<table><tr><th>dimension</th>" + "".join(f"<th>{n}</th>" for n in names) + "</tr>",
    ]
    for name, row in rows:
        cells = "".join(
            f"<td>{_fmt(row[n]) if isinstance(row.get(n), float) else esc(str(row.get(n)))}</td>"
            for n in names
        )
        css = ' class="overall"' if name == "overall" else ""
        parts.append(f"<tr{css}><td>{esc(name)}</td>{cells}</tr>")
    parts.append("</table>")
    examples = block.get("examples", [])
    if examples:
        parts.append("<h3>Examples</h3><ul>")
        parts += [
            f"<li>{esc(str(e.get('video_id')))} / {esc(str(e.get('dimension')))} "
            f"(score {_fmt(float(e.get('score', math.nan)), 2)}): {esc(str(e.get('rationale')))}</li>"
            for e in examples
        ]
        parts.append("</ul>")
    return parts


# --- promotion gate -----------------------------------------------------------------------------


def promotion_section(record: dict) -> str:
    """The HTML section of a promotion record (:mod:`ultravqa_ray.metrics.gate`): decision, reasons,
    and per dimension and on the mean the improvement of each metric with its paired interval."""
    esc = html.escape
    verdict = "accepted" if record["accepted"] else "refused"
    rule = record["rule"]
    parts = [
        f'<h2>Promotion gate: <span class="{"ok" if record["accepted"] else "warn"}">{verdict}</span></h2>',
        f"<p>candidate {esc(record['candidate']['model'])} ({esc(record['candidate']['content_hash'][:19])}) "
        f"against baseline {esc(record['baseline']['model'])} ({esc(record['baseline']['content_hash'][:19])}), "
        f"{record['n_videos']} held-out videos, paired bootstrap ({rule['draws']} draws, "
        f"{rule['level']:.0%} intervals). Positive = the candidate is better.</p>",
    ]
    if record["reasons"]:
        parts.append("<ul>" + "".join(f'<li class="warn">{esc(r)}</li>' for r in record["reasons"]) + "</ul>")
    metrics = list(record["mean"])
    head = "".join(f"<th>{esc(m)} improvement [interval]</th>" for m in metrics)
    parts.append(f"<table><tr><th>dimension</th>{head}</tr>")

    def cell(entry: dict) -> str:
        lo, hi = entry["interval"]
        return f"<td>{_fmt(entry['improvement'])} [{_fmt(lo)}, {_fmt(hi)}]</td>"

    for dim, row in record["per_dimension"].items():
        parts.append(f"<tr><td>{esc(dim)}</td>" + "".join(cell(row[m]) for m in metrics) + "</tr>")
    parts.append('<tr class="overall"><td>mean</td>' + "".join(cell(record["mean"][m]) for m in metrics) + "</tr>")
    parts.append("</table>")
    return "\n".join(parts) + "\n"


def write_promotion_report(record: dict, out_dir: str | Path, *, link_from: Path | None = None) -> Path:
    """``out_dir/promotion.html``; the section is also added to the report ``link_from`` (an evaluation's
    ``index.html``), above its per-dimension plots."""
    out = Path(out_dir)
    section = promotion_section(record)
    page = out / "promotion.html"
    page.write_text(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Promotion gate</title>'
        f"<style>{_CSS}</style></head><body>\n{section}</body></html>\n",
        encoding="utf-8",
    )
    if link_from is not None and link_from.exists():
        text = link_from.read_text(encoding="utf-8")
        marker = "<h2>Per dimension</h2>"
        text = text.replace(marker, section + marker, 1) if marker in text else text.replace("</body>", section + "</body>")
        link_from.write_text(text, encoding="utf-8")
    return page
