"""Training losses, one module each; they take tensors and know nothing of models or trainers.

- :mod:`.sft`: token cross-entropy on the answer tokens.
- :mod:`.aso`: Analytic Score Optimization, KL(pi* || pi_theta) to the closed-form target.
- :mod:`.grpo`: the sampled GRPO baseline, for comparison.
- :mod:`.soft_label`: soft-label SFT, cross-entropy against the raters' empirical distribution (baseline).
- :mod:`.expected_score`: squared error of the expected score against the rater mean (baseline).
"""

from ultravqa_ray.losses.aso import (
    ASOConfig,
    ASOOutput,
    aso_loss,
    aso_loss_from_vocab,
    aso_target,
    aso_total_loss,
    check_ratings,
)
from ultravqa_ray.losses.expected_score import ExpectedScoreConfig, expected_score_loss, rater_mean
from ultravqa_ray.losses.grpo import (
    GRPOConfig,
    GRPOOutput,
    group_advantages,
    grpo_loss,
    grpo_rewards,
    parse_score,
)
from ultravqa_ray.losses.sft import IGNORE_INDEX, sft_loss
from ultravqa_ray.losses.soft_label import SoftLabelConfig, rater_distribution, soft_label_loss

__all__ = [
    "IGNORE_INDEX",
    "ASOConfig",
    "ASOOutput",
    "ExpectedScoreConfig",
    "GRPOConfig",
    "GRPOOutput",
    "SoftLabelConfig",
    "aso_loss",
    "aso_loss_from_vocab",
    "aso_target",
    "aso_total_loss",
    "check_ratings",
    "expected_score_loss",
    "group_advantages",
    "grpo_loss",
    "grpo_rewards",
    "parse_score",
    "rater_distribution",
    "rater_mean",
    "sft_loss",
    "soft_label_loss",
]
