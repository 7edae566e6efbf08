"""Send events to a running server through the collector, in batches that respect its limits.

Used by `onefold import` and by the demo loader, so imported data takes the same path as SDK traffic:
validation, normalization, dedup, quarantine and durable acknowledgement. Overload answers (429/503) are
retried after their Retry-After delay; any other refusal stops the import with the server's message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from onefold.errors import ImportFailed

MAX_REQUEST_BYTES = 480 * 1024  # below the collector's 500 KB limit, leaving room for the envelope
MAX_BATCH_EVENTS = 2500
RETRIES = 8


@dataclass
class UploadSummary:
    sent: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"ref", "messageId", "reason"}


class BatchUploader:
    def __init__(
        self,
        client: httpx.Client,
        write_key: str,
        *,
        endpoint: str = "/v1/import",
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_batch_events: int = MAX_BATCH_EVENTS,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self._auth = httpx.BasicAuth(write_key, "")
        self._max_bytes = max_request_bytes
        self._max_events = max_batch_events
        self._on_sent = on_sent
        self._items: list[bytes] = []
        self._refs: list[Any] = []
        self._size = 0
        self.summary = UploadSummary()

    def add(self, event: dict[str, Any], ref: Any = None) -> None:
        """Queue one event; ``ref`` (a row or line number) is reported back if the server rejects it."""
        encoded = orjson.dumps(event)
        if self._items and (self._size + len(encoded) + 1 > self._max_bytes or len(self._items) >= self._max_events):
            self.flush()
        self._items.append(encoded)
        self._refs.append(ref)
        self._size += len(encoded) + 1

    def flush(self) -> None:
        if not self._items:
            return
        body = b'{"batch":[' + b",".join(self._items) + b"]}"
        answer = self._post(body)
        refs = self._refs
        self.summary.sent += len(self._items)
        self.summary.stored += int(answer.get("stored", 0))
        self.summary.duplicates += int(answer.get("duplicates", 0))
        for bad in answer.get("rejected", []):
            self.summary.rejected.append(
                {"ref": refs[bad["index"]], "messageId": bad.get("messageId"), "reason": bad.get("reason")}
            )
        if self._on_sent is not None:
            self._on_sent(len(self._items))
        self._items, self._refs, self._size = [], [], 0

    def _post(self, body: bytes) -> dict[str, Any]:
        delay = 0.5
        for attempt in range(RETRIES):
            try:
                response = self._client.post(
                    self._endpoint,
                    content=body,
                    auth=self._auth,
                    headers={"Content-Type": "application/json"},
                )
            except httpx.TransportError as exc:
                if attempt == RETRIES - 1:
                    raise ImportFailed(
                        f"cannot reach the Onefold server at {self._client.base_url} ({exc}); "
                        "start it with `onefold serve` or pass --url"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            if response.status_code in (429, 503):
                time.sleep(float(response.headers.get("Retry-After", delay)))
                continue
            if response.status_code != 200:
                raise ImportFailed(f"the server refused a batch ({response.status_code}): {_message(response)}")
            result: dict[str, Any] = response.json()
            return result
        raise ImportFailed(f"the server stayed overloaded after {RETRIES} tries; retry the import later")


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]
