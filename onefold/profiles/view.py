"""How a profile's state is shown: times as ISO-8601, traits flat or with their provenance. Pure."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from onefold.profiles.state import State, computed, consent_statements, empty, subscription_statements

TIME_FIELDS = frozenset({"first_seen", "last_seen", "first_order_at", "last_order_at"})
_EPOCH = date(1970, 1, 1)
_DAY_MS = 86_400_000
# The identity processor formats every touched profile's times in each batch, most of them unchanged since the
# last batch (first seen, orders, engagement): remembered, they cost a lookup. Cleared when full.
_formatted: dict[int, str] = {}
_FORMATTED_MAX = 200_000


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 in UTC with milliseconds and a Z, computed exactly (no float seconds)."""
    if ms is None:
        return None
    text = _formatted.get(ms)
    if text is None:
        day, in_day = divmod(ms, _DAY_MS)
        seconds, millis = divmod(in_day, 1000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        day_text = (_EPOCH + timedelta(days=day)).isoformat()
        text = f"{day_text}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"
        if len(_formatted) >= _FORMATTED_MAX:
            _formatted.clear()
        _formatted[ms] = text
    return text


def computed_traits(state: State) -> dict[str, Any]:
    values = computed(state)
    for name in TIME_FIELDS:
        values[name] = iso(values[name])
    for channel in ("email", "sms"):
        values[channel]["last_engagement"] = iso(values[channel]["last_engagement"])
    return values


# Segment's Profile API lists custom and computed traits in one namespace, where a profile's "email" is its
# address: there the engagement counters take names of their own.
PROFILE_API_NAMES = {"email": "email_engagement", "sms": "sms_engagement"}
# names a saved computed trait may not take: the built-in ones, as the Profile API and the audiences name them
BUILT_IN_TRAITS = frozenset(computed(empty())) | frozenset(PROFILE_API_NAMES.values())


def profile_api_computed_traits(state: State) -> dict[str, Any]:
    return {PROFILE_API_NAMES.get(name, name): value for name, value in computed_traits(state).items()}


def custom_traits(state: State, *, verbose: bool = False) -> dict[str, Any]:
    traits = state["traits"]
    if not verbose:
        return {name: traits[name]["value"] for name in sorted(traits)}
    return {
        name: {
            "value": c["value"],
            "source_id": c["source"],
            "timestamp": iso(c["ts"]),
            "seq": c["seq"],
        }
        for name, c in sorted(traits.items())
    }


def consent_history(state: State) -> list[dict[str, Any]]:
    """Each change of choice per purpose, oldest first: a choice restated is not history."""
    return _changes(consent_statements(state), "purpose", "granted")


def subscription_history(state: State) -> list[dict[str, Any]]:
    """Each change of subscription status per channel, oldest first."""
    return _changes(subscription_statements(state), "channel", "status")


def _changes(statements_by_key: dict[str, list[dict[str, Any]]], key: str, choice: str) -> list[dict[str, Any]]:
    changes: list[tuple[int, int, str, dict[str, Any]]] = []
    for name, statements in statements_by_key.items():
        current = None
        for h in statements:
            if h[choice] != current:
                current = h[choice]
                shown = {key: name, choice: current, "timestamp": iso(h["ts"]), "source_id": h["source"]}
                changes.append((h["ts"], h["seq"], name, shown))
    return [shown for *_, shown in sorted(changes, key=lambda c: c[:3])]
