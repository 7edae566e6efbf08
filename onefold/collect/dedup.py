"""In-memory index of the (source, messageId) pairs seen within the dedup window, rebuilt from the log at startup.

Keys are 128-bit BLAKE2b digests, so two different pairs collide with probability about n²/2¹²⁹ (for a billion
events, below 10⁻²¹): the index can decide alone, and the acknowledgement path never has to scan the event log.
Keys live in time buckets so expiry drops whole buckets; memory is about 70 bytes per event in the window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


class DedupIndex:
    def __init__(self, window_seconds: int, *, buckets: int = 8) -> None:
        self.window_seconds = window_seconds
        self._bucket_seconds = max(1, window_seconds // buckets)
        self._buckets: dict[int, set[int]] = {}

    @staticmethod
    def key(source_id: str, message_id: str) -> int:
        digest = hashlib.blake2b(f"{source_id}\x00{message_id}".encode(), digest_size=16).digest()
        return int.from_bytes(digest, "little")

    def contains(self, key: int) -> bool:
        """Whether the key is in the window; call ``expire`` with the current time first."""
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
        """Drop buckets older than the window; the window is thus rounded up to a whole bucket (1/8 of it)."""
        oldest = int(now_epoch - self.window_seconds) // self._bucket_seconds
        for slot in [s for s in self._buckets if s < oldest]:
            del self._buckets[slot]
