"""From ratings to a training manifest: the steps ``label pull`` and ``label import`` share.

Both gather :class:`~ultravqa_ray.labels.records.Rating` rows (from Label Studio or from a file),
keep them all in a long-format ratings file beside the manifest (the audit trail and the input of
``label report``), optionally run quality control and drop the raters it marks, and add the videos
with enough ratings to the manifest. Gold videos (known answers) are scored for quality control but
never written as records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from connectors.wire.dimensions import Dimension
from ultravqa_ray.labels.config import LabelConfig
from ultravqa_ray.labels.quality import QualityReport, quality_report
from ultravqa_ray.labels.records import Rating, build_records, merge_manifest, write_ratings


@dataclass
class CollectResult:
    manifest: Path
    ratings_file: Path
    n_ratings: int
    added: int
    kept: int
    waiting: int
    dropped_raters: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def ratings_path_for(manifest: str | Path) -> Path:
    """Where the ratings behind a manifest are kept: ``<manifest stem>.ratings.jsonl`` beside it."""
    manifest = Path(manifest)
    return manifest.with_name(f"{manifest.stem}.ratings.jsonl")


def collect(
    ratings: Sequence[Rating],
    config: LabelConfig,
    out: str | Path,
    *,
    uris: Mapping[str, str] | None = None,
    gold: Mapping[str, Mapping[Dimension, int]] | None = None,
    gold_ids: Sequence[str] = (),
    drop_flagged: bool | None = None,
) -> tuple[CollectResult, QualityReport | None]:
    """Write the ratings file and add the complete videos to the manifest ``out``."""
    out = Path(out)
    drop = config.drop_flagged if drop_flagged is None else drop_flagged
    report = None
    dropped: list[str] = []
    if drop and ratings:
        report = quality_report(ratings, k=config.k, dimensions=config.dimension_names(),
                                thresholds=config.thresholds, gold=gold)  # fmt: skip
        dropped = report.flagged
    built = build_records(ratings, needed=config.needed, uris=dict(uris or {}), drop_raters=dropped,
                          exclude_videos=[*gold_ids, *(gold or {})])  # fmt: skip
    ratings_file = write_ratings(ratings, ratings_path_for(out))
    added, kept = merge_manifest(built.records, out, k=config.k)
    result = CollectResult(out, ratings_file, len(ratings), added, kept, len(built.waiting), dropped)
    return result, report
