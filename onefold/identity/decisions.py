"""What the identity graph decided: the dataclasses ``IdentityGraph`` returns (re-exported by ``graph``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from onefold.identity.rules import Key


@dataclass(frozen=True, slots=True)
class Merge:
    winner: str
    loser: str
    via: tuple[Key, ...]  # the event's identifiers that joined the two (for a manual merge, one of each side)


@dataclass(frozen=True, slots=True)
class Split:
    """A profile re-derived from its evidence: parts no longer connected became ``new_profiles``."""

    profile: str  # kept by the part holding the oldest unique identifier; with none, the part with the oldest one
    new_profiles: tuple[str, ...]
    key: Key  # the identifier that caused it: the hub, the excluded identifier, or one side of the link
    reason: str = "hub"  # "hub", "excluded" (exclude_identifier) or "excluded_link" (exclude_link)
    partner: Key | None = None  # the other side of an excluded link

    @property
    def hub(self) -> Key:
        """The identifier that caused the split (named for the first reason splits existed)."""
        return self.key


@dataclass(frozen=True, slots=True)
class Refusal:
    # see the module docstring for the rules
    rule: str
    key: Key  # the identifier set aside (for a refused manual merge, the strongest of the newer profile)
    profiles: tuple[str, ...] = ()  # the profiles it would have joined


class Decision(NamedTuple):
    """One per event: a named tuple, immutable and three times cheaper to make than a frozen dataclass."""

    seq: int
    profile_id: str | None  # None when no identifier of the event could be used
    created: bool
    attached: tuple[Key, ...]  # identifiers new to the profile
    merges: tuple[Merge, ...]
    refusals: tuple[Refusal, ...]
    splits: tuple[Split, ...] = ()
    detached: tuple[Key, ...] = ()  # identifiers that no longer belong to any profile (exclude_identifier)
    dissolved: tuple[str, ...] = ()  # profiles left without identifiers, which no longer exist
