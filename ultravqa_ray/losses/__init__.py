"""Training losses, one module each; they take tensors and know nothing of models or trainers.

- :mod:`.sft`: token cross-entropy on the answer tokens.
- :mod:`.aso`: Analytic Score Optimization, KL(pi* || pi_theta) to the closed-form target.
- :mod:`.grpo`: the sampled GRPO baseline, for comparison.
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
from ultravqa_ray.losses.grpo import (
    GRPOConfig,
    GRPOOutput,
    group_advantages,
    grpo_loss,
    grpo_rewards,
    parse_score,
)
from ultravqa_ray.losses.sft import IGNORE_INDEX, sft_loss

__all__ = [
    "IGNORE_INDEX",
    "ASOConfig",
    "ASOOutput",
    "GRPOConfig",
    "GRPOOutput",
    "aso_loss",
    "aso_loss_from_vocab",
    "aso_target",
    "aso_total_loss",
    "check_ratings",
    "group_advantages",
    "grpo_loss",
    "grpo_rewards",
    "parse_score",
    "sft_loss",
]
