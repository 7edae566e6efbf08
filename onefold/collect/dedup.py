"""In-memory index of recently seen (source, messageId) pairs, rebuilt from the log at startup.

It holds 64-bit hashes in time buckets, so memory stays near 60 bytes per event in the window. A hash hit
is only a candidate: the writer confirms candidates against the stored log before calling anything a
duplicate, so a hash collision can never drop an event.
"""

from __future__ import annotations

from collections.abc import Iterable


class DedupIndex:
    def __init__(self, window_seconds: int, *, buckets: int = 8) -> None:
        self.window_seconds = window_seconds
        self._bucket_seconds = max(1, window_seconds // buckets)
        self._buckets: dict[int, set[int]] = {}

    @staticmethod
    def key(source_id: str, message_id: str) -> int:
        return hash((source_id, message_id))

    def might_contain(self, key: int) -> bool:
        return any(key in bucket for bucket in self._buckets.values())

    def add(self, key: int, at_epoch: float) -> None:
        slot = int(at_epoch) // self._bucket_seconds
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
        bucket.add(key)

    def load(self, entries: Iterable[tuple[str, str, float]]) -> int:
        count = 0
        for source_id, message_id, at_epoch in entries:
            self.add(self.key(source_id, message_id), at_epoch)
            count += 1
        return count

    def expire(self, now_epoch: float) -> None:
        """Drop buckets that end before the window starts; a partly-covered bucket stays."""
        oldest_needed = int(now_epoch - self.window_seconds) // self._bucket_seconds
        for slot in [s for s in self._buckets if s < oldest_needed]:
            del self._buckets[slot]

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())
