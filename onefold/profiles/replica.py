"""What the Profile API's serving process knows, rebuilt from the messages the server sends it. Pure.

The server's identity processor publishes each committed state with its serving card (``CommittedStates``); the
serving process applies the same publications to its own copy, so it answers from memory exactly what the
server would. It has no graph: an identifier resolves through the cards, each listing its profile's
identifiers, and only while the newest card of that profile still lists it. A profile published without a
complete card, or an identifier no card lists, is not known here; the serving process forwards those requests
to the server. The saved audiences and computed traits of the profiles the last incremental rounds evaluated are
copied the same way (``SavedChanged``), so ``class=audience`` and ``class=computed_trait`` are answered here too
for the profiles events are arriving for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from onefold.audiences.saved_values import SavedChanged, SavedValues
from onefold.governance.access_tokens import ActiveTokens
from onefold.identity.rules import Key
from onefold.profiles.cache import CommittedStates, Entry
from onefold.profiles.cards import Card


@dataclass(frozen=True, slots=True)
class Published:
    """States the identity processor committed and profiles that are gone (merged away, dissolved, erased)."""

    states: Sequence[Entry]
    gone: Sequence[str]


@dataclass(frozen=True, slots=True)
class TokensChanged:
    active: ActiveTokens


Message = Published | TokensChanged | SavedChanged


class ProfileReplica:
    def __init__(self, capacity: int, card_bytes: int, saved_capacity: int = 0) -> None:
        self._capacity = capacity
        self.committed = CommittedStates(capacity, card_bytes)
        self.saved = SavedValues(saved_capacity)
        self.tokens = ActiveTokens({})
        self._owner: dict[Key, str] = {}  # identifier -> the profile whose newest card listed it
        self._listed: dict[str, tuple[Key, ...]] = {}  # profile -> the identifiers indexed for it

    def apply(self, message: Message) -> None:
        if isinstance(message, TokensChanged):
            self.tokens = message.active
            return
        if isinstance(message, SavedChanged):
            self.saved.apply(message)
            return
        for profile_id in message.gone:
            self._unlist(profile_id)
        for profile_id, _, card in message.states:
            self._unlist(profile_id)
            self._list(profile_id, card)
        self.committed.publish(message.states, message.gone)
        if len(self._listed) > 2 * self._capacity:  # most listed profiles were evicted since: index what is kept
            self._reindex()

    def resolve(self, key: Key) -> str | None:
        """The profile holding ``key``, if its newest published card says so."""
        profile_id = self._owner.get(key)
        if profile_id is None:
            return None
        card = self.committed.card(profile_id)
        if card is None or card.identifiers is None or key not in card.identifiers:
            return None  # the card was evicted or no longer lists it: only the server knows now
        return profile_id

    def _reindex(self) -> None:
        self._owner.clear()
        self._listed.clear()
        for profile_id, _, card in self.committed.snapshot():
            self._list(profile_id, card)

    def _list(self, profile_id: str, card: Card | None) -> None:
        if card is not None and card.identifiers is not None:
            self._listed[profile_id] = tuple(card.identifiers)
            for key in card.identifiers:
                self._owner[key] = profile_id

    def _unlist(self, profile_id: str) -> None:
        for key in self._listed.pop(profile_id, ()):
            if self._owner.get(key) == profile_id:
                del self._owner[key]
