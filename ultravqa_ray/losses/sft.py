"""Supervised fine-tuning loss: token cross-entropy on the answer tokens only (DESIGN.md section 4).

The SFT target per (video, dimension) is the answer ``<rationale> Score: N``; the prompt, the video
tokens and padding carry the label ``-100`` and do not count. With the usual causal shift the logits
at position ``t`` predict the token at ``t + 1``::

    L_SFT = - (1 / |A|) * sum_{(b, t) in A} log softmax(logits[b, t - 1])[labels[b, t]]

    A = {(b, t) : t >= 1, labels[b, t] != -100}        (every answer token of the whole batch)

Reduction: the sum over all answer tokens of the batch divided by their number (a token-level
mean, as ``F.cross_entropy(..., ignore_index=-100)`` on the flattened shifted tensors). A long
answer therefore weighs more than a short one; every token weighs the same. A batch with no answer
token gives 0 (connected to the graph, so ``backward()`` still works) rather than NaN.

The same loss on the rationale tokens only is the ``lambda * L_SFT`` term that the ASO total loss
adds to keep the language head intact (:func:`ultravqa_ray.losses.aso.aso_total_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def sft_loss(logits: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean next-token cross-entropy over the answer tokens: ``(B, T, V), (B, T) -> ()``.

    ``labels[b, t]`` is the token at position ``t`` or ``ignore_index`` where it does not count;
    ``logits[:, :-1]`` predict ``labels[:, 1:]``. Computed in (at least) float32.
    """
    if logits.dim() != 3 or labels.dim() != 2 or logits.shape[:2] != labels.shape:
        raise ValueError(
            f"sft_loss expects logits (B, T, V) and labels (B, T), got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    shifted_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
    shifted_labels = labels[:, 1:].reshape(-1)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    total = F.cross_entropy(
        shifted_logits.to(dtype), shifted_labels, ignore_index=ignore_index, reduction="sum"
    )
    count = (shifted_labels != ignore_index).sum()
    return total / count.clamp(min=1)
