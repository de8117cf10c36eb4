"""Curating the human-labelled data: which uploads to send for rating, and rationales from the ratings.

- :mod:`.select`: rank scored uploads by the scorer's own uncertainty, plus a stratified random
  share for unbiased evaluation (``ultravqa-ray label select``);
- :mod:`.rationales`: rationales written from pooled judgments (:mod:`ultravqa_ray.data.pooled`:
  distribution, mean, band, sub-attribute counts, rater comments) by any OpenAI-compatible chat
  endpoint, checked against the pooled score, cached on disk, with the templated writer as
  fallback (``ultravqa-ray rationales``); :mod:`.prompt` holds the fact sheet and the agreement
  check, :mod:`.records` the manifests in and out.
"""
