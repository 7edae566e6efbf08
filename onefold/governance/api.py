"""Admin API of access tokens: create (the clear token is returned once), list, revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from onefold.governance.access_tokens import SCOPES, AccessTokens


class TokenCreate(BaseModel):
    name: str = Field(..., description="who uses the token, e.g. 'website personalization'")
    scopes: list[str] = Field(..., description=f"one or more of: {', '.join(SCOPES)}")


def tokens_router(tokens: AccessTokens) -> APIRouter:
    router = APIRouter(prefix="/tokens", tags=["tokens"])

    @router.post("", status_code=201)
    def create(body: TokenCreate) -> dict[str, Any]:
        """A new scoped token. The clear token is in this response only; Onefold keeps its hash."""
        record, token = tokens.create(body.name, body.scopes)
        return {**record.to_json(), "token": token}

    @router.get("")
    def list_tokens() -> dict[str, Any]:
        return {"data": [t.to_json() for t in tokens.list()], "scopes": SCOPES}

    @router.delete("/{token_id}")
    def revoke(token_id: str) -> dict[str, Any]:
        """Revoke a token at once; requests carrying it get 401."""
        return tokens.revoke(token_id).to_json()

    return router
