"""OpenAPI entries for the collector's routes, which are raw Starlette routes (kept off FastAPI for speed)."""

from __future__ import annotations

from typing import Any

from onefold.collect.wire import BATCH_PATHS, SHORT_PATHS, SINGLE_PATHS

_ID = {"type": ["string", "number", "null"]}
_OBJECT = {"type": ["object", "null"], "additionalProperties": True}
_TIME = {"type": ["string", "null"], "format": "date-time"}

MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Segment tracking-API message. userId or anonymousId is required.",
    "properties": {
        "type": {"type": "string", "enum": ["identify", "track", "page", "screen", "group", "alias"]},
        "userId": _ID,
        "anonymousId": _ID,
        "messageId": {"type": "string", "maxLength": 100},
        "event": {"type": "string", "description": "Required for track."},
        "name": {"type": "string"},
        "category": {"type": "string"},
        "groupId": _ID,
        "previousId": _ID,
        "timestamp": _TIME,
        "originalTimestamp": _TIME,
        "sentAt": _TIME,
        "traits": _OBJECT,
        "properties": _OBJECT,
        "context": _OBJECT,
        "integrations": _OBJECT,
        "writeKey": {"type": "string", "description": "Alternative to HTTP Basic auth."},
    },
    "additionalProperties": True,
}
BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["batch"],
    "properties": {
        "batch": {"type": "array", "maxItems": 2500, "items": MESSAGE_SCHEMA},
        "context": _OBJECT,
        "integrations": _OBJECT,
        "sentAt": _TIME,
        "writeKey": {"type": "string"},
    },
}
_RESULT = {
    "type": "object",
    "properties": {
        "success": {"type": "boolean"},
        "accepted": {"type": "integer"},
        "stored": {"type": "integer"},
        "duplicates": {"type": "integer"},
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "messageId": {"type": ["string", "null"]},
                    "code": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
        "warnings": {
            "description": "Fields of accepted events that link no profile (an invalid e-mail, a placeholder id...)",
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "messageId": {"type": "string"},
                    "code": {"type": "string"},
                    "field": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}
_RESPONSES = {
    "200": {"description": "Durably stored (after fsync).", "content": {"application/json": {"schema": _RESULT}}},
    "400": {"description": "Malformed JSON, bad encoding or an invalid single event; kept in quarantine."},
    "401": {"description": "Missing, unknown, expired or disabled write key; kept in quarantine."},
    "413": {"description": "Over a limit (32 KB per event, 500 KB per request, 2,500 events per batch)."},
    "503": {"description": "At capacity; retry after the Retry-After header's seconds."},
}


def collector_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name in (*SINGLE_PATHS, *BATCH_PATHS, *SHORT_PATHS):
        is_batch = name in BATCH_PATHS or (name in SHORT_PATHS and SHORT_PATHS[name] is None)
        call = name if name in SINGLE_PATHS else SHORT_PATHS.get(name)
        schema = BATCH_SCHEMA if is_batch else MESSAGE_SCHEMA
        summary = f"Send a batch of events ({name})" if is_batch else f"Send one {call} call"
        paths[f"/v1/{name}"] = {
            "post": {
                "tags": ["collector"],
                "summary": summary,
                "description": "Segment-compatible. Authenticate with HTTP Basic (write key as user name), "
                "an X-Write-Key header or writeKey in the body. gzip and deflate bodies are accepted.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema}, "text/plain": {"schema": schema}},
                },
                "responses": _RESPONSES,
            }
        }
    return paths
