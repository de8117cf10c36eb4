"""Pipelines on top of the core: scoring files, the batch job, and the streaming services.

- :mod:`.stream`: the Kafka bridge to the Ray Serve Scorer (``ultravqa-ray stream``);
- :mod:`.moderation`: rules on score events -> moderation events (``ultravqa-ray moderate``);
- :mod:`.demo`: the README's first command (``ultravqa-ray demo``).
"""
