"""Rules that keep identity resolution from gluing people together. Declarative tables with safe defaults.

Defaults follow the research in ``shared/reference/identity.md``: the union of the values Segment, PostHog and
Adobe refuse to merge on; cannot-link on unique types; Segment-style per-type limits and priorities; caps; hub
detection for identifiers shared by several people (family tablets, household phones, test addresses).

Operators change them with a TOML file (``onefold/identity/rules_file.py``); the defaults here are what a
file leaves unsaid.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

Key = tuple[str, str]  # (identifier type, normalized value)

BLOCKED_VALUES: frozenset[str] = frozenset(
    {
        "",
        "0",
        "-1",
        "1",
        "null",
        "none",
        "nil",
        "undefined",
        "anonymous",
        "guest",
        "[object object]",
        "nan",
        "true",
        "false",
        "id",
        "distinct_id",
        "distinctid",
        "not_authenticated",
        "email",
        "user",
        "customer",
        "unknown",
        "n/a",
        "na",
        "test",
        "void",
        "abc123",
        "default",
        "admin",
        "test@test.com",
        "none@none.com",
        "noemail@noemail.com",
        "no@email.com",
        "email@email.com",
        "test@example.com",
        "user@example.com",
        "example@example.com",
        "null@null.com",
        "a@a.com",
    }
)
_QUOTES = "\"'"  # a blocked value inside quotes is blocked too (PostHog blocks the quoted variants)
BLOCKED_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^[0-]*$"),  # all zeros and dashes: nil UUIDs, 0000000000
    re.compile(r"^\+?(\d)\1{6,}$"),  # one digit repeated: +11111111111
    re.compile(r"^([0-9a-f])\1{7}-\1{4}-\1{4}-\1{4}-\1{12}$"),  # a UUID of one repeated hex digit
)


@dataclass(frozen=True, slots=True)
class IdentityRules:
    # type -> priority; lower is stronger. When a merge would break a limit, the event's identifier with the
    # highest number here is set aside and matching retried (Segment's rule).
    priority: Mapping[str, int] = field(
        default_factory=lambda: {
            "user_id": 0,
            "crm_id": 1,
            "email": 2,
            "phone": 3,
            "loyalty_card": 4,
            "esp_id": 5,
            "sms_id": 6,
            "pos_id": 7,
            "device_id": 8,
            "advertising_id": 9,
            "anonymous_id": 10,
        }
    )
    # any other type (a context.externalIds type, say) is tracked at this priority, below every listed type:
    # an identifier nobody configured is the first set aside when a rule would break
    default_priority: int = 100
    # types never stitched (an operator's ``track = false``)
    untracked: frozenset[str] = frozenset()
    # a profile holds at most one value of a unique type: two such values never merge (cannot-link)
    # a loyalty card identifies one account: two cards never merge, so a household phone cannot glue them
    unique_types: frozenset[str] = frozenset({"user_id", "crm_id", "loyalty_card"})
    # most distinct values of a type per profile (types not listed: default_limit)
    limits: Mapping[str, int] = field(
        default_factory=lambda: {"user_id": 1, "crm_id": 1, "phone": 3, "anonymous_id": 100}
    )
    default_limit: int = 5
    max_identifiers: int = 200
    max_merges: int = 100
    # an identifier seen with more than this many distinct values of one unique type is a hub: it stops linking
    hub_thresholds: Mapping[str, int] = field(
        default_factory=lambda: {"anonymous_id": 1, "device_id": 1, "advertising_id": 1, "phone": 1}
    )
    default_hub_threshold: int = 3
    # identifiers too often shared to be the only tie between an event that carries its own unique id and an
    # existing profile. Off by default: on the demo data {"phone"} raised pairwise precision 0.9969 -> 0.9977 but
    # cut recall 0.778 -> 0.650, because most people's CRM contact joins their store profile by phone.
    weak_types: frozenset[str] = frozenset()
    # type -> seconds of event time. Per-type limits and hub detection of a windowed type count only what was
    # seen within the window before the event: a profile may gather more than ``limit`` anonymous ids over the
    # years, and a device resold after the window is not a hub. Unique types take no window (cannot-link is
    # forever). Empty by default, so limits and hubs count everything ever seen; windows apply only to events
    # observed with a timestamp.
    windows: Mapping[str, float] = field(default_factory=dict)
    blocked_values: frozenset[str] = BLOCKED_VALUES
    blocked_patterns: tuple[re.Pattern[str], ...] = BLOCKED_PATTERNS
    # patterns an operator adds to ``blocked_patterns`` (kept apart so the defaults keep their fast path)
    extra_blocked_patterns: tuple[re.Pattern[str], ...] = ()

    def tracks(self, key: Key) -> bool:
        return key[0] not in self.untracked

    def priority_of(self, identifier_type: str) -> int:
        return self.priority.get(identifier_type, self.default_priority)

    def is_blocked(self, key: Key) -> bool:
        value = key[1].strip().lower()
        if value in self.blocked_values:
            return True
        if value[:1] in _QUOTES and value.strip(_QUOTES) in self.blocked_values:  # "null", 'anonymous', '""'
            return True
        if self.extra_blocked_patterns and any(p.match(value) for p in self.extra_blocked_patterns):
            return True
        if self.blocked_patterns is BLOCKED_PATTERNS:  # hot path: the defaults only match one repeated character
            bare = value.replace("-", "").lstrip("+")
            if bare and bare != bare[0] * len(bare):
                return False
        return any(p.match(value) for p in self.blocked_patterns)

    def limit(self, identifier_type: str) -> int:
        return 1 if identifier_type in self.unique_types else self.limits.get(identifier_type, self.default_limit)

    def hub_threshold(self, identifier_type: str) -> int:
        return self.hub_thresholds.get(identifier_type, self.default_hub_threshold)

    def window(self, identifier_type: str) -> float | None:
        """Seconds of event time the limit and hub detection of this type look back; None for all time."""
        if identifier_type in self.unique_types:
            return None
        return self.windows.get(identifier_type)


DEFAULT_RULES = IdentityRules()


def rules_document(rules: IdentityRules) -> dict[str, Any]:
    """The rules as plain JSON values, in a canonical order: what the store keeps of the rules it applied."""
    document: dict[str, Any] = {}
    for entry in fields(rules):
        value = getattr(rules, entry.name)
        if isinstance(value, Mapping):
            value = dict(sorted(value.items()))
        elif isinstance(value, frozenset):
            value = sorted(value)
        elif isinstance(value, tuple):
            value = [p.pattern for p in value]
        document[entry.name] = value
    return document


def rules_fingerprint(rules: IdentityRules) -> str:
    """A digest of every rule: two rule sets with one fingerprint stitch any log alike."""
    text = json.dumps(rules_document(rules), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
