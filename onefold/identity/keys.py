"""Typed identifier keys for stitching, from the identifiers the collector extracted.

A ``userId`` names a person only within the system that issued it: the web shop's ``usr_1`` and the CRM's
``crm_1`` are different namespaces, so user ids are typed by the kind of source that sent them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from onefold.identity.rules import Key

USER_ID_TYPE_BY_SOURCE_KIND: dict[str, str] = {"crm": "crm_id", "email": "esp_id", "sms": "sms_id", "pos": "pos_id"}
TYPE_ALIASES: dict[str, str] = {"previous_id": "anonymous_id"}  # alias calls mostly name the anonymous id
NOT_PERSON_TYPES = frozenset({"group_id"})  # a group is an account or household, not a person's identifier


def event_keys(source_kind: str, identifiers: Iterable[Sequence[str]]) -> list[Key]:
    """Keys of one event, in the order the identifiers were extracted, without repeats."""
    keys: dict[Key, None] = {}
    for entry in identifiers:
        kind, value = entry[0], entry[1]
        if kind in NOT_PERSON_TYPES:
            continue
        if kind == "user_id":
            kind = USER_ID_TYPE_BY_SOURCE_KIND.get(source_kind, "user_id")
        keys[(TYPE_ALIASES.get(kind, kind), value)] = None
    return list(keys)
