"""Turn tracking-API messages into event-log rows, or precise rejections. Pure: time and ids are injected.

A row is a tuple in the order of ``store.EVENT_COLUMN_NAMES`` without the leading ``seq``, which the writer
assigns at commit. Validation never raises: each bad item becomes a ``Rejection`` naming the field and what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from onefold.collect.normalize import (
    SUBSCRIPTION_STATUSES,
    canonicalize_traits,
    extract_commerce,
    extract_consent,
    extract_identifiers,
    invalid_subscription,
    parse_timestamp,
)

MESSAGE_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
MAX_MESSAGE_ID_CHARS = 100
_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
_TIME_FIELDS = (("timestamp", "timestamp"), ("originalTimestamp", "originalTimestamp"), ("sentAt", "sentAt"))


@dataclass(frozen=True, slots=True)
class SourceInfo:
    id: str
    kind: str
    default_region: str | None


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    message_id: str | None
    code: str
    reason: str
    payload: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "messageId": self.message_id, "code": self.code, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a request shares with all its items."""

    source: SourceInfo
    received_at: datetime
    max_event_bytes: int
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    sent_at: str | None = None  # a batch's sentAt (the SDKs stamp the batch, not each item)
    # Skip measuring each item when the whole body is under the per-event limit.
    check_item_size: bool = True
    # (identifier type, value) -> the erasure receipt that suppressed it, or None
    suppressed: Callable[[str, str], str | None] | None = None


class _Invalid(Exception):
    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _identity(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise _Invalid("invalid_field", f"field '{key}' must be a string or a number, got a boolean")
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise _Invalid("invalid_field", f"field '{key}' must be a string or a number, got {type(value).__name__}")
    return value.strip() or None


def _time(item: dict[str, Any], key: str) -> datetime | None:
    try:
        return parse_timestamp(item.get(key))
    except ValueError as exc:
        raise _Invalid(
            "invalid_timestamp", f"field '{key}': {exc}; send ISO-8601 such as 2024-05-01T12:00:00Z"
        ) from None


def _with_envelope(item: dict[str, Any], env: Envelope) -> dict[str, Any]:
    """Batch-level context, integrations and sentAt merge into each item; the item's own keys win."""
    if env.context is None and env.integrations is None and env.sent_at is None:
        return item
    merged = dict(item)
    if env.sent_at is not None and item.get("sentAt") is None:
        merged["sentAt"] = env.sent_at
    for key, shared in (("context", env.context), ("integrations", env.integrations)):
        if shared:
            own = item.get(key)
            merged[key] = {**shared, **own} if isinstance(own, dict) else (own if own is not None else shared)
    return merged


def _event_time(
    received_at: datetime, timestamp: datetime | None, original: datetime | None, sent_at: datetime | None
) -> datetime:
    """Segment's skew correction: timestamp = receivedAt - (sentAt - originalTimestamp) when sentAt is given."""
    device_time = original or timestamp
    if sent_at is not None and device_time is not None:
        try:
            return received_at - (sent_at - device_time)
        except OverflowError:
            raise _Invalid(
                "invalid_timestamp",
                "'sentAt' and 'originalTimestamp' are too far apart to correct the device clock; check both",
            ) from None
    return timestamp or original or received_at


def build_row(item: Any, msg_type: str | None, env: Envelope, new_message_id: Callable[[], str]) -> tuple[Any, ...]:
    """One validated, normalized event-log row (without seq). Raises ``_Invalid``."""
    if not isinstance(item, dict):
        raise _Invalid("not_an_object", f"each event must be a JSON object, got {type(item).__name__}")
    if env.check_item_size:
        size = len(orjson.dumps(item))
        if size > env.max_event_bytes:
            raise _Invalid(
                "event_too_large",
                f"event is {size:,} bytes; the limit is {env.max_event_bytes:,} bytes per event. "
                "Move large blobs out of properties or split the event",
            )
    item = _with_envelope(item, env)
    kind = msg_type or item.get("type")
    if kind not in MESSAGE_TYPES:
        raise _Invalid(
            "invalid_type",
            f"field 'type' must be one of {', '.join(sorted(MESSAGE_TYPES))}; got {item.get('type')!r}",
        )
    for key in _OBJECT_FIELDS:
        value = item.get(key)
        if value is not None and not isinstance(value, dict):
            raise _Invalid("invalid_field", f"field '{key}' must be a JSON object, got {type(value).__name__}")

    user_id = _identity(item, "userId")
    anonymous_id = _identity(item, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise _Invalid("missing_identity", "userId or anonymousId is required; send at least one of them")
    message_id = _identity(item, "messageId") or new_message_id()
    if len(message_id) > MAX_MESSAGE_ID_CHARS:
        raise _Invalid(
            "invalid_field",
            f"field 'messageId' is {len(message_id)} characters; the limit is {MAX_MESSAGE_ID_CHARS}",
        )
    event = item.get("event")
    if kind == "track" and (not isinstance(event, str) or not event.strip()):
        raise _Invalid("missing_field", "field 'event' is required for track calls, e.g. \"Order Completed\"")
    group_id = _identity(item, "groupId")
    if kind == "group" and group_id is None:
        raise _Invalid("missing_field", "field 'groupId' is required for group calls")
    previous_id = _identity(item, "previousId")
    if kind == "alias" and (previous_id is None or user_id is None):
        raise _Invalid("missing_field", "alias calls need both 'previousId' and 'userId'")
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise _Invalid("invalid_field", f"field 'name' must be a string, got {type(name).__name__}")

    timestamp, original, sent_at = (_time(item, key) for key, _ in _TIME_FIELDS)
    properties: dict[str, Any] | None = item.get("properties")
    category = item.get("category")
    if kind in ("page", "screen") and isinstance(category, str) and category:
        properties = {"category": category, **(properties or {})}
    context: dict[str, Any] = item.get("context") or {}
    raw_traits = item.get("traits")
    if kind == "identify" and not raw_traits and isinstance(context.get("traits"), dict):
        raw_traits = context["traits"]  # RudderStack's SDKs send identify traits in context.traits
    traits = canonicalize_traits(raw_traits) if raw_traits else None
    for where, stated in (("traits", item.get("traits")), ("context.traits", context.get("traits"))):
        bad = invalid_subscription(stated if isinstance(stated, dict) else None)
        if bad is not None:
            raise _Invalid(
                "invalid_field",
                f"field '{where}.{bad[0]}' must be one of {', '.join(SUBSCRIPTION_STATUSES)} (any case); "
                f"got {bad[1]!r}. Send null or leave the trait out when the contact stated nothing",
            )

    source = env.source
    extraction = extract_identifiers(item, source.default_region)
    if env.suppressed is not None:
        for identifier in extraction.identifiers:
            receipt = env.suppressed(identifier.type, identifier.value)
            if receipt is not None:
                raise _Invalid(
                    "suppressed",
                    f"the {identifier.type} at '{identifier.path}' belongs to a person erased at their request "
                    f"(receipt {receipt}); the event is quarantined, not stored. Stop sending this identifier",
                )
    commerce = extract_commerce(event, properties) if kind == "track" else None
    campaign = context.get("campaign")
    channel = item.get("channel") or (properties or {}).get("channel")
    channel = channel if isinstance(channel, str) else source.kind
    return (
        message_id,
        source.id,
        kind,
        event.strip() if isinstance(event, str) else None,
        name,
        user_id,
        anonymous_id,
        group_id,
        previous_id,
        _event_time(env.received_at, timestamp, original, sent_at),
        original or timestamp,
        sent_at,
        env.received_at,
        _dumps(properties),
        _dumps(traits),
        _dumps(context) if context else None,
        _dumps(item.get("integrations")),
        _dumps([[i.type, i.value, i.raw, i.path] for i in extraction.identifiers]),
        _dumps(extraction.flags) if extraction.flags else None,
        _dumps(extract_consent(context)),
        commerce.revenue if commerce else None,
        commerce.currency if commerce else None,
        commerce.order_id if commerce else None,
        _dumps(commerce.products) if commerce and commerce.products else None,
        channel,
        str(campaign.get("name")) if isinstance(campaign, dict) and campaign.get("name") else None,
    )


# where build_row puts the message id and the flags of what extraction could not use
_MESSAGE_ID_AT, _FLAGS_AT = 0, 18
_FLAG_REASONS = {
    "placeholder_id": "a placeholder (null, undefined, the all-zero UUID...) is not an id; send the real one or none",
    "invalid_id": "an id is a string or a number",
    "invalid_email": "not an e-mail address",
    "invalid_phone": "not a valid phone number in the source's default region; send it in E.164 (+14155550100)",
    "invalid_external_id": "each externalIds entry needs a string 'type' and an 'id'",
    "invalid_external_ids": "context.externalIds is a list of {id, type, collection, encoding}",
    "invalid_device": "context.device is an object ({id, advertisingId, ...})",
}


def row_warnings(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """What the stored events carried that identity cannot use (the event is kept whole, so nothing is lost,
    but the value links no profile): one warning per flagged field, for the sender to fix."""
    warnings: list[dict[str, Any]] = []
    for row in rows:
        if row[_FLAGS_AT] is None:
            continue
        for flag in orjson.loads(row[_FLAGS_AT]):
            code, _, field = flag.partition(":")
            reason = f"field '{field}': {_FLAG_REASONS.get(code, code)}; it was stored, but links no profile"
            warnings.append({"messageId": row[_MESSAGE_ID_AT], "code": code, "field": field, "reason": reason})
    return warnings


def build_rows(
    items: list[Any], msg_type: str | None, env: Envelope, new_message_id: Callable[[], str]
) -> tuple[list[tuple[Any, ...]], list[Rejection]]:
    """Rows for the valid items and a rejection (kept for quarantine) for every invalid one."""
    rows: list[tuple[Any, ...]] = []
    rejections: list[Rejection] = []
    for index, item in enumerate(items):
        try:
            rows.append(build_row(item, msg_type, env, new_message_id))
        except orjson.JSONEncodeError as exc:  # e.g. nesting deeper than the JSON writer allows
            rejections.append(
                _rejection(
                    index,
                    item,
                    _Invalid(
                        "invalid_field",
                        f"the event cannot be stored as JSON ({exc}); objects may nest at most 254 levels",
                    ),
                )
            )
        except _Invalid as bad:
            rejections.append(_rejection(index, item, bad))
    return rows, rejections


def _rejection(index: int, item: Any, bad: _Invalid) -> Rejection:
    mid = item.get("messageId") if isinstance(item, dict) else None
    try:
        payload = orjson.dumps(item).decode()
    except orjson.JSONEncodeError:  # keep what can be kept of an item that cannot be written as JSON
        payload = orjson.dumps({"unserializable": repr(item)[:65536]}).decode()
    return Rejection(
        index=index, message_id=mid if isinstance(mid, str) else None, code=bad.code, reason=bad.reason, payload=payload
    )
