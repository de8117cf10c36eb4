"""Curating the human-labelled data: which uploads to send for rating, and rationales from the ratings.

- :mod:`.select`: rank scored uploads by the scorer's own uncertainty, plus a stratified random
  share for unbiased evaluation (``ultravqa-ray label select``);
- :mod:`.pooled`: the pooled human judgment of one video and dimension (distribution, mean, band,
  sub-attribute counts, rater comments), read from annotation records;
- :mod:`.rationales`: rationales written from pooled judgments by any OpenAI-compatible chat
  endpoint, checked against the pooled score, cached on disk, with the templated writer as
  fallback (``ultravqa-ray rationales``).
"""
