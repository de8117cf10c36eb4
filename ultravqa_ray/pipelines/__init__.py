"""Pipelines on top of the core: scoring files, and later the batch and streaming jobs."""
