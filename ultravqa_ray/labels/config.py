"""What raters see and how their work is judged: one :class:`LabelConfig` (YAML + ``--set``).

The labelling interface, the import of other tools' exports, the pull into annotation records and
the quality report all read the same config, so the dimensions, the scale 1..K and the
sub-attribute vocabulary are written once. Defaults follow DESIGN.md section 1 and the sub-attribute
names the synthetic corpus uses (``ultravqa_ray.data.factors``).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from connectors.wire.dimensions import DIMENSIONS, Dimension
from ultravqa_ray.config import Config
from ultravqa_ray.data.factors import DEFECTS

_ENDS: dict[Dimension, tuple[str, str]] = {
    Dimension.MOTION_QUALITY: (
        "severe stutter, shake or unnatural motion",
        "perfectly smooth, natural motion",
    ),
    Dimension.MOTION_AMPLITUDE: ("static: nothing moves", "large motion of the camera or the subjects"),
    Dimension.AESTHETIC_QUALITY: (
        "poor composition, colour and lighting",
        "excellent composition, colour and lighting",
    ),
    Dimension.CONTENT_QUALITY: ("empty or meaningless scene", "clear, rich and meaningful subject"),
    Dimension.CLARITY_QUALITY: ("very blurry, noisy or blocky", "sharp and clean, no visible artefacts"),
}
_SUB_ATTRIBUTES: dict[Dimension, tuple[str, ...]] = {
    **DEFECTS,
    Dimension.MOTION_AMPLITUDE: ("static", "camera_motion", "object_motion", "large_motion"),
    Dimension.CONTENT_QUALITY: ("empty_scene", "sparse_scene", "rich_scene"),
}


class DimensionSpec(Config):
    """One rated dimension as raters see it."""

    name: Dimension = Field(description="Machine name (DESIGN.md section 1).")
    definition: str = Field(min_length=1, description="What raters judge on this dimension.")
    low: str = Field(min_length=1, description="What the lowest score (1) means.")
    high: str = Field(min_length=1, description="What the highest score (K) means.")
    sub_attributes: tuple[str, ...] = Field((), description="Fine-grained labels raters may tick.")


def default_dimensions() -> tuple[DimensionSpec, ...]:
    return tuple(
        DimensionSpec(
            name=d,
            definition=d.description,
            low=_ENDS[d][0],
            high=_ENDS[d][1],
            sub_attributes=_SUB_ATTRIBUTES[d],
        )
        for d in DIMENSIONS
    )


class Thresholds(Config):
    """Quality-control limits; a rater breaking any of them is marked for exclusion."""

    min_items: int = Field(
        5, ge=1, description="Raters with fewer rated videos are reported but never marked."
    )
    max_abs_bias: float = Field(
        0.75, gt=0, description="Largest |mean offset| from the leave-one-out consensus."
    )
    min_consensus_corr: float = Field(
        0.3,
        description="Smallest Pearson correlation with the leave-one-out consensus (mean over dimensions).",
    )
    max_inconsistency: float = Field(
        1.0,
        gt=0,
        description="Largest P.910 subject inconsistency (std of the rater's noise, in score points).",
    )
    min_gold_accuracy: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Smallest share of gold ratings within gold_tolerance of the known answer.",
    )
    gold_tolerance: int = Field(1, ge=0, description="A gold rating counts as right within this many points.")


class LabelStudioSettings(Config):
    """How to reach Label Studio (the API key comes from the environment, never from a file)."""

    url: str = Field("http://127.0.0.1:8080", description="Base URL of the Label Studio server.")
    api_key_env: str = Field(
        "LABEL_STUDIO_API_KEY", description="Environment variable holding a personal access token."
    )
    project: str = Field("UltraVQA ratings", min_length=1, description="Project title (created if missing).")
    local_files_root: str = Field(
        "/",
        description="The server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (local videos must lie under it).",
    )
    presign_ttl_s: int = Field(
        7 * 24 * 3600, ge=60, le=7 * 24 * 3600, description="Lifetime of presigned URLs."
    )
    timeout_s: float = Field(30.0, gt=0, description="Timeout of one HTTP request.")


class LabelConfig(Config):
    """Labelling: scale, dimensions, raters per video, quality thresholds and the server."""

    k: int = Field(5, ge=2, le=100, description="Scores are 1..k.")
    dimensions: tuple[DimensionSpec, ...] = Field(
        default_factory=default_dimensions, description="Rated dimensions."
    )
    raters_per_video: int = Field(3, ge=1, description="Ratings Label Studio collects per video.")
    min_raters: int | None = Field(
        None, ge=1, description="Ratings a video needs before pull writes it (default raters_per_video)."
    )
    comment: bool = Field(True, description="Offer an optional free-text comment.")
    drop_flagged: bool = Field(False, description="pull drops the ratings of raters the thresholds mark.")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    studio: LabelStudioSettings = Field(default_factory=LabelStudioSettings)
    s3_endpoint_override: str | None = Field(
        None, description="host:port of an S3-compatible store (moto, MinIO)."
    )

    @model_validator(mode="after")
    def _check(self) -> LabelConfig:
        names = [d.name for d in self.dimensions]
        if not names:
            raise ValueError("dimensions: at least one dimension is needed")
        if len(set(names)) != len(names):
            raise ValueError(f"dimensions: a dimension is listed twice ({[n.value for n in names]})")
        return self

    @property
    def needed(self) -> int:
        """Ratings a video needs before it becomes an annotation record."""
        return self.min_raters or self.raters_per_video

    def spec(self, name: Dimension | str) -> DimensionSpec:
        for d in self.dimensions:
            if d.name == name:
                return d
        raise KeyError(name)

    def dimension_names(self) -> tuple[Dimension, ...]:
        return tuple(d.name for d in self.dimensions)
