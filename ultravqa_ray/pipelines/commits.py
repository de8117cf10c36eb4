"""Which offsets may be committed when records finish out of order.

The bridge has many records in flight and they finish in any order, but a Kafka commit means
"everything below this offset is done". :class:`CommitTracker` keeps, per partition, the offsets
still open and the finished records; a finished record is committable once no open offset of its
partition lies below it. A crash therefore re-delivers only records that were open or finished
after the last commit: duplicates, never gaps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from connectors.kafka.source import ConsumedRecord

Partition = tuple[str, int]


class CommitTracker:
    def __init__(self) -> None:
        self._open: dict[Partition, set[int]] = defaultdict(set)
        self._finished: dict[Partition, list[ConsumedRecord]] = defaultdict(list)

    @staticmethod
    def _partition(record: ConsumedRecord) -> Partition:
        return (record.topic, record.partition)

    def started(self, record: ConsumedRecord) -> None:
        self._open[self._partition(record)].add(record.offset)

    def finished(self, records: Iterable[ConsumedRecord]) -> None:
        for record in records:
            part = self._partition(record)
            self._open[part].discard(record.offset)
            self._finished[part].append(record)

    def open_count(self) -> int:
        return sum(len(offsets) for offsets in self._open.values())

    def committable(self) -> list[ConsumedRecord]:
        """Per partition, the highest finished record with nothing open below it; forgets them."""
        out: list[ConsumedRecord] = []
        for ready in self._take_ready().values():
            out.append(max(ready, key=lambda r: r.offset))
        return out

    def take_ready(self) -> list[ConsumedRecord]:
        """Every finished record with nothing open below it, in offset order per partition; forgets
        them (exactly-once writes the outputs of these, and commits them, in one transaction)."""
        return [r for ready in self._take_ready().values() for r in sorted(ready, key=lambda r: r.offset)]

    def _take_ready(self) -> dict[Partition, list[ConsumedRecord]]:
        out: dict[Partition, list[ConsumedRecord]] = {}
        for part, finished in self._finished.items():
            low = min(self._open[part], default=None)
            ready = [r for r in finished if low is None or r.offset < low]
            if ready:
                out[part] = ready
                self._finished[part] = [r for r in finished if low is not None and r.offset >= low]
        return out

    def forget(self, keep: Iterable[Partition]) -> None:
        """Drop the state of partitions no longer assigned (a rebalance gave them away)."""
        keep = set(keep)
        for table in (self._open, self._finished):
            for part in [p for p in table if p not in keep]:
                del table[part]
