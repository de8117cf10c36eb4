"""Typed records at the bottom of the core: dimensions, score scale, annotation records, manifests."""

from connectors.wire.dimensions import DIMENSIONS, Dimension
from ultravqa_ray.schemas.annotation import AnnotationRecord, ScoreScale
from ultravqa_ray.schemas.manifest import ManifestError, read_manifest, write_manifest

__all__ = [
    "DIMENSIONS",
    "AnnotationRecord",
    "Dimension",
    "ManifestError",
    "ScoreScale",
    "read_manifest",
    "write_manifest",
]
