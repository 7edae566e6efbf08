"""The HTTP wire edge of the collector: bounded body reading, gzip, JSON, and where the write key hides."""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from onefold.errors import CollectError, PayloadTooLarge

# Segment's browser endpoints use the first letter of the call type; `b` is analytics.js batching.
SHORT_PATHS: dict[str, str | None] = {
    "t": "track",
    "p": "page",
    "i": "identify",
    "s": "screen",
    "g": "group",
    "a": "alias",
    "b": None,
}
SINGLE_PATHS = ("identify", "track", "page", "screen", "group", "alias")
BATCH_PATHS = ("batch", "import")
QUARANTINE_PREFIX_BYTES = 64 * 1024  # what we keep of a body we refused to read whole


class BodyTooLarge(PayloadTooLarge):
    """Carries the prefix read so far, so the refused request still lands in quarantine."""

    def __init__(self, message: str, prefix: bytes, **details: Any) -> None:
        super().__init__(message, **details)
        self.prefix = prefix


def _too_large(limit: int, prefix: bytes, what: str) -> BodyTooLarge:
    return BodyTooLarge(
        f"{what} exceeds the request limit of {limit:,} bytes; send fewer events per request "
        f"(at most {limit:,} bytes of JSON after decompression)",
        prefix[:QUARANTINE_PREFIX_BYTES],
        limit="max_request_bytes",
        limit_bytes=limit,
    )


async def read_body(chunks: AsyncIterator[bytes], headers: Mapping[str, str], limit: int) -> bytes:
    """Read at most ``limit`` bytes, decompressing gzip/deflate incrementally so a bomb is stopped early."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, b"", f"the declared body size ({int(declared):,} bytes)")
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "deflate"):
        raise CollectError(
            f"Content-Encoding '{encoding}' is not supported; send gzip, deflate or an uncompressed body",
            code="unsupported_encoding",
            field="Content-Encoding",
        )
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in ("gzip", "deflate") else None
    out = bytearray()
    raw_size = 0
    try:
        async for chunk in chunks:
            raw_size += len(chunk)
            if raw_size > limit:
                raise _too_large(limit, bytes(out) or chunk, "the request body")
            if inflater is None:
                out += chunk
                continue
            out += inflater.decompress(chunk, limit + 1 - len(out))
            if len(out) > limit or inflater.unconsumed_tail:
                raise _too_large(limit, bytes(out), "the decompressed request body")
        if inflater is not None:
            out += inflater.flush(limit + 1 - len(out))
            if len(out) > limit:
                raise _too_large(limit, bytes(out), "the decompressed request body")
            if not inflater.eof and raw_size:
                raise CollectError(
                    f"the {encoding} body is truncated; send the complete compressed stream",
                    code="bad_encoding",
                    field="Content-Encoding",
                )
            if inflater.unused_data:
                raise CollectError(
                    f"the body has data after the end of its {encoding} stream; send one compressed stream",
                    code="bad_encoding",
                    field="Content-Encoding",
                )
    except zlib.error as exc:
        raise CollectError(
            f"the body is not valid {encoding} data ({exc}); compress it properly or drop Content-Encoding",
            code="bad_encoding",
            field="Content-Encoding",
        ) from exc
    return bytes(out)


def parse_json(data: bytes) -> Any:
    if not data.strip():
        raise CollectError("the request body is empty; send a JSON object", code="malformed_json")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CollectError(
            f"the body is not valid JSON: {exc}; send one JSON object (analytics.js may use text/plain)",
            code="malformed_json",
        ) from exc


def write_key_from(headers: Mapping[str, str], body: Any) -> str | None:
    """HTTP Basic (key as user name, empty password), an X-Write-Key header, or `writeKey` in the body."""
    auth = headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if user:
            return user
    header_key = headers.get("x-write-key")
    if header_key:
        return header_key.strip()
    if isinstance(body, dict):
        key = body.get("writeKey") or body.get("write_key")
        if isinstance(key, str) and key:
            return key
    return None
