"""The edges of UltraVQA-Ray: Kafka, object storage and the wire contracts.

Nothing in this package imports :mod:`ultravqa_ray`; the core depends on the edges, never the
other way round. Storage entry points are re-exported here: :func:`open_input`,
:class:`AllowList`, :class:`StorageSettings`; Kafka lives in :mod:`connectors.kafka`.
"""

from connectors.allow_list import AllowList
from connectors.storage import OpenedInput, StorageSettings, open_input

__all__ = ["AllowList", "OpenedInput", "StorageSettings", "open_input"]
