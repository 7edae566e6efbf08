"""Identifiers of erased people, refused at the collector so new events cannot recreate the person.

Only a SHA-256 of ``type:value`` is kept, so the suppression list itself holds no personal data. Types are
folded the way the collector extracts them (a CRM's user id and the web's user id are both ``user_id``;
``previous_id`` is an anonymous id) so an identifier is recognised whichever call or source carries it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from onefold.identity.keys import TYPE_ALIASES, USER_ID_TYPE_BY_SOURCE_KIND
from onefold.store import DuckDBStore

_AS_EXTRACTED = dict.fromkeys(USER_ID_TYPE_BY_SOURCE_KIND.values(), "user_id") | TYPE_ALIASES


def identifier_hash(kind: str, value: str) -> str:
    kind = _AS_EXTRACTED.get(kind, kind)
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


class SuppressionList:
    """One version of the list: immutable, so it can be read without a lock and handed to another process."""

    def __init__(self, receipts: dict[str, str]) -> None:
        self._receipts = receipts  # identifier hash -> erasure receipt id

    def __bool__(self) -> bool:
        return bool(self._receipts)

    def receipt_for(self, kind: str, value: str) -> str | None:
        """The erasure receipt that suppressed this identifier, or None."""
        if not self._receipts:
            return None
        found = self._receipts.get(identifier_hash(kind, value))
        if found is None and kind == "previous_id":  # an alias's previous id may be the erased user id too
            found = self._receipts.get(identifier_hash("user_id", value))
        return found

    def adding(self, hashes: Iterable[str], receipt_id: str) -> SuppressionList:
        return SuppressionList({**self._receipts, **dict.fromkeys(hashes, receipt_id)})


class Suppressions:
    def __init__(self, store: DuckDBStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        rows = store.cursor().execute("SELECT hash, receipt_id FROM suppressed_identifiers").fetchall()
        self.current = SuppressionList({str(h): str(r) for h, r in rows})  # replaced, never changed, on add
        # told of every new version before ``add`` returns (the intake process must refuse the erased at once)
        self.on_change: Callable[[SuppressionList], None] | None = None

    def add(self, keys: Iterable[tuple[str, str]], receipt_id: str) -> int:
        rows = {identifier_hash(kind, value): kind for kind, value in keys}
        with self._lock:
            cur = self._store.cursor()
            for digest, kind in rows.items():
                cur.execute(
                    "INSERT OR IGNORE INTO suppressed_identifiers VALUES (?, ?, ?, ?)",
                    [digest, kind, receipt_id, self._clock()],
                )
            self.current = self.current.adding(rows, receipt_id)
            if self.on_change is not None:
                self.on_change(self.current)
        return len(rows)
