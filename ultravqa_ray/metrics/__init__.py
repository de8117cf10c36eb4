"""Agreement between raters and agreement between model and raters."""

from ultravqa_ray.metrics.agreement import krippendorff_alpha, ordinal_alpha_by_dimension

__all__ = ["krippendorff_alpha", "ordinal_alpha_by_dimension"]
