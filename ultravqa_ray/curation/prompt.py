"""What the language model is asked, and the check that its answer agrees with the raters.

The prompt is a fact sheet of the pooled judgment (:class:`~ultravqa_ray.data.pooled.PooledJudgment`):
the dimension and what it covers, the scale, the ratings and their mean, the verdict word, the
sub-attributes most and some raters marked, and the comments. :func:`check` accepts a text when the
first verdict word it uses is the band of the raters' mean (``very poor`` is not ``poor``) and it
names every sub-attribute most raters marked; otherwise it says what is wrong, for the re-ask.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from ultravqa_ray.data.pooled import PooledJudgment

PROMPT_VERSION = 1  # part of the answer cache's key: change it when the prompt changes

SYSTEM = (
    "You explain human video quality ratings. From the pooled judgment of several raters on one "
    "dimension of one video, write one or two plain sentences that explain the verdict. Begin with "
    "'<dimension> is <verdict word>', using the verdict word given. Name every issue marked by most "
    "raters; mention other issues or comments only if they help. Use only the facts given; give no "
    "numeric score."
)


def messages_for(j: PooledJudgment, max_comments: int = 5) -> list[dict[str, str]]:
    """The chat messages of one pooled judgment."""
    marked = dict(j.sub_attribute_counts)
    lines = [
        f"Dimension: {j.dimension.label} ({j.dimension.description})",
        f"Scale: 1 (worst) to {j.k} (best)",
        f"Ratings: {', '.join(map(str, j.ratings))} ({j.n_raters} raters); mean {j.mean:.2f}",
        f"Verdict word: {j.band}",
        "Marked by most raters: " + (", ".join(f"{_words(n)} ({marked[n]} of {j.n_raters})" for n in j.majority) or "none"),
        "Marked by some raters: " + (", ".join(f"{_words(n)} ({marked[n]} of {j.n_raters})" for n in j.minority) or "none"),
        "Rater comments on this dimension: " + _quoted(j.comments[:max_comments]),
        "Rater comments on the whole video: " + _quoted(j.video_comments[:max_comments]),
    ]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def _quoted(comments: Sequence[str]) -> str:
    return "; ".join(json.dumps(" ".join(c.split())) for c in comments) or "none"


def check(text: str, j: PooledJudgment) -> str | None:
    """``None`` when ``text`` agrees with the pooled judgment, else what is wrong (for the re-ask)."""
    norm = _normalise(text)
    words = sorted(j.band_words, key=len, reverse=True)  # 'very poor' before 'poor'
    found = re.search(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", norm)
    if found is None:
        return f"it does not state the verdict '{j.band}'"
    if found.group(1) != j.band:
        return f"it states '{found.group(1)}' but the raters' mean {j.mean:.2f} is '{j.band}'"
    missing = [_words(n) for n in j.majority if _normalise(_words(n)) not in norm]
    if missing:
        return "it does not name " + ", ".join(missing) + " (marked by most raters)"
    return None


def _words(name: str) -> str:
    return name.replace("_", " ").replace("-", " ")


def _normalise(text: str) -> str:
    text = text.lower().replace("artefact", "artifact").replace("colour", "color")
    return " ".join(re.sub(r"[_\-]", " ", text).split())


def reask(j: PooledJudgment, problem: str) -> str:
    """The follow-up message after an answer that failed :func:`check`."""
    naming = f" and naming {', '.join(map(_words, j.majority))}" if j.majority else ""
    return f"That does not match the raters: {problem}. Write it again, beginning with '{j.dimension.label} is {j.band}'{naming}."
