"""What the Profile API's reader answers from memory alone: a profile the identity processor's batch in progress
created is "still being built" without a query (it has no state anywhere yet)."""

from __future__ import annotations

import pytest

from onefold.errors import NotFound
from onefold.profiles.cache import CommittedStates
from onefold.profiles.profile_api import ProfileReader


def test_a_profile_being_built_is_answered_without_a_query() -> None:
    building = {"p-new"}
    committed = CommittedStates(10)
    # no store at all: a query would raise, not answer
    reader = ProfileReader(None, lambda key: f"p-{key[1]}", committed, building=lambda pid: pid in building)
    assert reader.in_memory("user_id:new")
    with pytest.raises(NotFound, match="still being built"):
        reader.state("p-new")
    committed.publish([("p-new", '{"first_seen": 1}', None)], [])
    building.clear()  # the batch committed and published its state
    assert reader.state("p-new") == {"first_seen": 1}
    assert not reader.in_memory("user_id:old")  # neither published nor being built: the store must answer
