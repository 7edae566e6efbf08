"""Admin API of profiles: search by any identifier or trait value, a whole profile, its timeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query

from onefold.profiles.profile_api import ProfileReader
from onefold.profiles.view import computed_traits, consent_history, custom_traits, subscription_history

Limit = Annotated[int, Query(ge=1, le=500)]


def profiles_router(
    reader: ProfileReader, profiles_current: Callable[[], object], memberships_current: Callable[[], object]
) -> APIRouter:
    """Reads wait until the profiles reflect every event acknowledged before them (``CaughtUp``); a whole
    profile, which lists its audiences and computed traits, until those are evaluated too."""
    router = APIRouter(prefix="/profiles", tags=["profiles"])
    tables = reader.profiles

    @router.get("")
    def search(
        q: str = Query(..., min_length=1, description="start of an identifier or trait value, any case"),
        limit: Limit = 50,
        after: str = Query("", description="the last profile id of the previous page"),
    ) -> dict[str, Any]:
        """Profiles with an identifier or a trait value starting with ``q``, paged by profile id."""
        profiles_current()
        ids = tables.search(q, limit=limit + 1, after=after)
        results = []
        for profile_id in ids[:limit]:
            state = tables.state(profile_id)
            traits = custom_traits(state) if state else {}
            results.append(
                {
                    "profile_id": profile_id,
                    "identifiers": [{"type": k["type"], "value": k["value"]} for k in tables.external_ids(profile_id)],
                    "traits": traits,
                    "last_seen": computed_traits(state)["last_seen"] if state else None,
                }
            )
        has_more = len(ids) > limit
        return {"data": results, "next_after": ids[limit - 1] if has_more else None}

    @router.get("/{profile_id}")
    def profile(profile_id: str) -> dict[str, Any]:
        """Everything about one profile: identifiers, traits with provenance, computed attributes, consent and
        channel subscriptions with their histories."""
        memberships_current()
        state = reader.state(reader.profile_id(f"profile_id:{profile_id}"))
        audiences, saved_traits = reader.memberships(profile_id)
        return {
            "profile_id": profile_id,
            "identifiers": tables.external_ids(profile_id),
            "traits": custom_traits(state, verbose=True),
            "computed": computed_traits(state),
            "consent_history": consent_history(state),
            "subscription_history": subscription_history(state),
            "computed_traits": saved_traits,
            "audiences": audiences,
        }

    @router.get("/{profile_id}/events")
    def timeline(profile_id: str, limit: Limit = 50, before: int | None = Query(None, ge=1)) -> dict[str, Any]:
        """The profile's events, newest first, re-attributed after merges and splits."""
        profiles_current()
        reader.profile_id(f"profile_id:{profile_id}")
        rows = tables.timeline(profile_id, limit=limit + 1, before_seq=before)
        return {"data": rows[:limit], "next_before": rows[limit - 1]["seq"] if len(rows) > limit else None}

    return router
