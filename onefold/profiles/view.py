"""How a profile's state is shown: times as ISO-8601, traits flat or with their provenance. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from onefold.profiles.state import State, computed

TIME_FIELDS = frozenset({"first_seen", "last_seen", "first_order_at", "last_order_at"})


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def computed_traits(state: State) -> dict[str, Any]:
    values = computed(state)
    for name in TIME_FIELDS:
        values[name] = iso(values[name])
    for channel in ("email", "sms"):
        values[channel]["last_engagement"] = iso(values[channel]["last_engagement"])
    return values


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
    return [
        {"purpose": h["purpose"], "granted": h["granted"], "timestamp": iso(h["ts"]), "source_id": h["source"]}
        for h in state["consent_history"]
    ]
