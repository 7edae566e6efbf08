"""CSV records to Segment-format events, driven by a mapping file. Pure: no I/O beyond parsing text.

A mapping (TOML) names the record kind, which CSV column feeds which Onefold field, the row key that makes
message ids stable across re-runs, and extra columns to carry along. See docs/importers.md.
"""

from __future__ import annotations

import math
import re
import tomllib
import uuid
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from onefold.collect.normalize import normalize_email, normalize_phone, parse_timestamp
from onefold.errors import ImportFailed

_NAMESPACE = uuid.UUID("6f1c2a0e-5b1d-4c57-9a43-0e3b8f7d2c11")


@dataclass(frozen=True, slots=True)
class KindSpec:
    call: str  # "identify" or "track"
    required: tuple[str, ...]  # Onefold fields that must be mapped and non-empty
    fields: tuple[str, ...]  # Onefold fields this kind understands (besides the identity fields)
    event: str | None = None  # fixed event name for track kinds without an `event` column
    event_values: tuple[tuple[str, str], ...] = ()  # normalized column value -> event name
    channel: str | None = None


IDENTITY_FIELDS = ("user_id", "anonymous_id", "email", "phone", "loyalty_card", "timestamp")
_ORDER_FIELDS = (
    "order_id",
    "revenue",
    "currency",
    "product_id",
    "sku",
    "product_name",
    "price",
    "quantity",
    "category",
    "status",
)

KINDS: dict[str, KindSpec] = {
    "crm_contacts": KindSpec(
        call="identify",
        required=(),
        fields=("first_name", "last_name", "company", "city", "country", "birthday"),
    ),
    "orders": KindSpec(
        call="track",
        required=("order_id", "revenue"),
        fields=_ORDER_FIELDS,
        event="Order Completed",
        channel="ecommerce",
    ),
    "pos_purchases": KindSpec(
        call="track",
        required=("order_id", "revenue"),
        fields=(*_ORDER_FIELDS, "store_id"),
        event="Order Completed",
        channel="pos",
    ),
    "email_engagement": KindSpec(
        call="track",
        required=("event", "email"),
        fields=("event", "campaign", "subject", "url"),
        channel="email",
        event_values=(
            ("sent", "Email Sent"),
            ("delivered", "Email Delivered"),
            ("open", "Email Opened"),
            ("opened", "Email Opened"),
            ("click", "Email Link Clicked"),
            ("clicked", "Email Link Clicked"),
            ("bounce", "Email Bounced"),
            ("bounced", "Email Bounced"),
            ("unsubscribe", "Unsubscribed"),
            ("unsubscribed", "Unsubscribed"),
            ("spam", "Email Marked as Spam"),
        ),
    ),
    "sms_engagement": KindSpec(
        call="track",
        required=("event", "phone"),
        fields=("event", "campaign", "url"),
        channel="sms",
        event_values=(
            ("sent", "SMS Sent"),
            ("delivered", "SMS Delivered"),
            ("click", "SMS Link Clicked"),
            ("clicked", "SMS Link Clicked"),
            ("opt_out", "SMS Opted Out"),
            ("opted_out", "SMS Opted Out"),
            ("stop", "SMS Opted Out"),
            ("unsubscribed", "SMS Opted Out"),
            ("reply", "SMS Replied"),
        ),
    ),
}
_NUMBER_FIELDS: dict[str, Callable[[str], float]] = {"revenue": float, "price": float, "quantity": int}
_STRIP_NUMBER = re.compile(r"[\s$€£¥,]")


class RowError(Exception):
    def __init__(self, row: int, column: str | None, reason: str) -> None:
        where = f"row {row}" + (f", column '{column}'" if column else "")
        super().__init__(f"{where}: {reason}")
        self.row = row
        self.column = column
        self.reason = reason


@dataclass(frozen=True)
class CsvMapping:
    kind: str
    columns: dict[str, str]  # Onefold field -> CSV column
    row_key: tuple[str, ...] = ()  # CSV columns; empty = the whole mapped row
    timestamp_format: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # property/trait name -> CSV column
    event_values: dict[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> KindSpec:
        return KINDS[self.kind]


def parse_mapping(text: str, origin: str = "mapping") -> CsvMapping:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ImportFailed(f"{origin}: not valid TOML ({exc})") from exc
    known = {"kind", "columns", "row_key", "timestamp_format", "extra", "event_values"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ImportFailed(f"{origin}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ImportFailed(f"{origin}: 'kind' must be one of {', '.join(KINDS)}; got {kind!r}")
    spec = KINDS[kind]
    columns = _str_table(raw.get("columns", {}), f"{origin}: [columns]")
    allowed = set(IDENTITY_FIELDS) | set(spec.fields)
    bad_fields = sorted(set(columns) - allowed)
    if bad_fields:
        raise ImportFailed(
            f"{origin}: [columns] maps unknown field(s) {bad_fields} for kind '{kind}'; "
            f"known fields: {', '.join(sorted(allowed))}. Put other columns under [extra]"
        )
    missing = [f for f in spec.required if f not in columns]
    if missing:
        raise ImportFailed(f"{origin}: kind '{kind}' needs [columns] entries for {missing}")
    if not any(f in columns for f in ("user_id", "anonymous_id", "email", "phone", "loyalty_card")):
        raise ImportFailed(
            f"{origin}: map at least one identity column (user_id, anonymous_id, email, phone or loyalty_card)"
        )
    row_key = raw.get("row_key", [])
    if isinstance(row_key, str):
        row_key = [row_key]
    if not isinstance(row_key, list) or not all(isinstance(c, str) for c in row_key):
        raise ImportFailed(f"{origin}: 'row_key' must be a column name or a list of column names")
    event_values = {_norm_value(k): v for k, v in _str_table(raw.get("event_values", {}), origin).items()}
    return CsvMapping(
        kind=kind,
        columns=columns,
        row_key=tuple(row_key),
        timestamp_format=raw.get("timestamp_format"),
        extra=_str_table(raw.get("extra", {}), f"{origin}: [extra]"),
        event_values=event_values,
    )


def _str_table(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ImportFailed(f'{where} must be a table of name = "CSV column" strings')
    return dict(value)


def _norm_value(text: str) -> str:
    return re.sub(r"[\s-]+", "_", text.strip().lower())


def check_header(mapping: CsvMapping, header: list[str]) -> None:
    """Every column the mapping names must exist in the file."""
    named = [*mapping.columns.values(), *mapping.extra.values(), *mapping.row_key]
    missing = sorted({c for c in named if c not in header})
    if missing:
        raise ImportFailed(f"the CSV has no column(s) {missing}; its columns are: {', '.join(header)}. Fix the mapping")


def message_id(mapping: CsvMapping, row: MappingABC[str, str], source: str) -> str:
    key_columns = mapping.row_key or tuple(sorted({*mapping.columns.values(), *mapping.extra.values()}))
    key = "\x1f".join([source, mapping.kind, *(row.get(c, "") for c in key_columns)])
    return "csv-" + str(uuid.uuid5(_NAMESPACE, key))


def _number(field_name: str, text: str, row_number: int, column: str) -> float | int:
    cleaned = _STRIP_NUMBER.sub("", text)
    try:
        value: float = _NUMBER_FIELDS[field_name](cleaned)
        if not math.isfinite(value):
            raise ValueError("not finite")
        return value
    except ValueError:
        kind = "a whole number" if _NUMBER_FIELDS[field_name] is int else "a number"
        raise RowError(row_number, column, f"{field_name} must be {kind}, got {text!r}") from None


def _timestamp(mapping: CsvMapping, text: str, row_number: int, column: str) -> str:
    try:
        if mapping.timestamp_format:
            parsed = datetime.strptime(text, mapping.timestamp_format)
            parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        else:
            maybe = parse_timestamp(text)
            if maybe is None:
                raise ValueError("empty")
            parsed = maybe
    except ValueError:
        expected = mapping.timestamp_format or "ISO-8601 (2024-05-01T12:00:00Z)"
        raise RowError(row_number, column, f"timestamp {text!r} does not match {expected}") from None
    return parsed.isoformat()


def row_to_event(mapping: CsvMapping, row: MappingABC[str, str], row_number: int, source: str) -> dict[str, Any]:
    """One Segment-format event for a CSV row, or RowError naming the row, column and reason."""
    spec = mapping.spec
    values: dict[str, Any] = {}
    for field_name, column in mapping.columns.items():
        text = (row.get(column) or "").strip()
        if not text:
            continue
        if field_name in _NUMBER_FIELDS:
            values[field_name] = _number(field_name, text, row_number, column)
        elif field_name == "timestamp":
            values[field_name] = _timestamp(mapping, text, row_number, column)
        else:
            values[field_name] = text
    for field_name in spec.required:
        if field_name not in values:
            raise RowError(row_number, mapping.columns[field_name], f"{field_name} is required and is empty")
    identity = {k: values[k] for k in ("user_id", "anonymous_id", "email", "phone", "loyalty_card") if k in values}
    if not identity:
        raise RowError(row_number, None, "the row has no identity value (user_id, email, phone or loyalty_card)")

    event: dict[str, Any] = {"type": spec.call, "messageId": message_id(mapping, row, source)}
    if "user_id" in values:
        event["userId"] = values["user_id"]
    elif "anonymous_id" in values:
        event["anonymousId"] = values["anonymous_id"]
    else:  # the wire needs an id: use the strongest identifier, normalized so a person keeps one id
        first = next(k for k in ("loyalty_card", "email", "phone") if k in identity)
        value = identity[first]
        if first == "email":
            value = normalize_email(value) or value
        elif first == "phone":
            value = normalize_phone(value, None).e164 or value
        event["anonymousId"] = f"{first}:{value}"
    if "timestamp" in values:
        event["timestamp"] = values["timestamp"]
    context: dict[str, Any] = {"library": {"name": "onefold-import", "version": "1"}}
    if "loyalty_card" in values:
        context["externalIds"] = [
            {"id": values["loyalty_card"], "type": "loyalty_card", "collection": "users", "encoding": "none"}
        ]
    event["context"] = context
    extra = {name: (row.get(column) or "").strip() for name, column in mapping.extra.items()}
    extra = {k: v for k, v in extra.items() if v}
    contact = {k: values[k] for k in ("email", "phone") if k in values}
    if spec.call == "identify":
        traits = {k: values[k] for k in spec.fields if k in values}
        event["traits"] = {**extra, **contact, **traits}
        return event
    event["event"] = _event_name(mapping, values, row_number)
    event["properties"] = {**extra, **_properties(spec, values)}
    if contact:
        context["traits"] = contact
    return event


def _event_name(mapping: CsvMapping, values: dict[str, Any], row_number: int) -> str:
    spec = mapping.spec
    if "event" not in values:
        status = _norm_value(str(values.get("status", "")))
        if status in ("refunded", "refund", "returned"):
            return "Order Refunded"
        if status in ("cancelled", "canceled"):
            return "Order Cancelled"
        assert spec.event is not None
        return spec.event
    table = {**dict(spec.event_values), **mapping.event_values}
    name = table.get(_norm_value(str(values["event"])))
    if name is None:
        raise RowError(
            row_number,
            mapping.columns["event"],
            f"event value {values['event']!r} is not one of {sorted(table)}; add it under [event_values]",
        )
    return name


def _properties(spec: KindSpec, values: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {
        k: values[k]
        for k in ("order_id", "revenue", "currency", "store_id", "campaign", "subject", "url")
        if k in values
    }
    if "currency" in props:
        props["currency"] = str(props["currency"]).upper()
    product: dict[str, Any] = {
        k: values[k] for k in ("product_id", "sku", "price", "quantity", "category") if k in values
    }
    if "product_name" in values:
        product["name"] = values["product_name"]
    if product:
        props["products"] = [product]
    if spec.channel:
        props["channel"] = spec.channel
    return props
