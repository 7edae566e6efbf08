"""Admin API of probabilistic matching, under /api/identity/matching: runs, the review queue, revocation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from onefold.identity.matching_service import DEFAULT_OPTIONS, MatchingService, RunOptions

Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]


class RunRequest(BaseModel):
    low: float = Field(
        default=DEFAULT_OPTIONS.low, ge=0, le=1, description="At or above: the pair goes to the review queue"
    )
    high: float = Field(
        default=DEFAULT_OPTIONS.high, ge=0, le=1, description="At or above: the pair is linked automatically"
    )
    max_links_per_profile: int | None = Field(
        default=DEFAULT_OPTIONS.max_links_per_profile,
        ge=1,
        description="Probabilistic links a profile takes part in; null: no cap",
    )


def matching_router(service: MatchingService) -> APIRouter:
    router = APIRouter(prefix="/identity/matching", tags=["matching"])

    @router.post("/runs", status_code=201)
    def run(body: RunRequest | None = None) -> dict[str, Any]:
        """Match imported (CRM, POS) profiles that share no identifier with any other profile, now: link pairs at
        or above `high`, queue pairs between `low` and `high` for review, reject the rest. Returns the summary."""
        request = body or RunRequest()
        return service.run(RunOptions(request.low, request.high, request.max_links_per_profile))

    @router.get("/runs")
    def runs(limit: Limit = 50, before: int | None = Query(None, description="Run id: older runs only")) -> Any:
        """Runs, newest first, with their settings and summary."""
        rows = service.runs(limit=limit, before=before)
        return {"data": rows, "next": str(rows[-1]["id"]) if len(rows) == limit else None}

    @router.get("/reviews")
    def reviews(
        status: str | None = Query(
            "pending",
            description="pending (the queue), accepted, rejected, auto_linked, refused or revoked; empty for all",
        ),
        run_id: int | None = None,
        limit: Limit = 50,
        after: int = Query(0, ge=0, description="The `next` of the previous page"),
    ) -> dict[str, Any]:
        """Pairs by id with both profiles' key traits and identifiers and the per-comparison explanation."""
        rows = service.pairs(status=status or None, limit=limit, after=after, run_id=run_id)
        return {"data": rows, "next": str(rows[-1]["id"]) if len(rows) == limit else None}

    @router.get("/reviews/{pair_id}")
    def review(pair_id: int) -> dict[str, Any]:
        return service.view(service.pair(pair_id))

    @router.post("/reviews/{pair_id}/accept")
    def accept(pair_id: int, request: Request) -> dict[str, Any]:
        """Merge the pair's profiles (409 with the rule when cannot-link, a limit or a cap forbids it)."""
        return service.accept(pair_id, request.state.principal.email)

    @router.post("/reviews/{pair_id}/reject")
    def reject(pair_id: int, request: Request) -> dict[str, Any]:
        """Keep the pair's profiles apart; later runs do not propose the pair again."""
        return service.reject(pair_id, request.state.principal.email)

    @router.post("/links/{pair_id}/revoke")
    def revoke(pair_id: int, request: Request) -> dict[str, Any]:
        """Undo an automatic or accepted link: its two identifiers become a cannot-link pair and the profile splits."""
        return service.revoke(pair_id, request.state.principal.email)

    return router
