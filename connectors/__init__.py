"""The edges of UltraVQA-Ray: Kafka, object storage and the wire contracts.

Nothing in this package imports :mod:`ultravqa_ray`; the core depends on the edges, never the
other way round.
"""
