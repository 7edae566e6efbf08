"""Admin API of identity resolution: look up a profile by any identifier, and explain merges and refusals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from onefold.collect.normalize import normalize_email, normalize_phone
from onefold.errors import CollectError, Conflict, NotFound
from onefold.identity.rules import IdentityRules, Key
from onefold.pipeline.identity_processor import IdentityProcessor

_NORMALIZERS: dict[str, Callable[[str], str | None]] = {
    "email": normalize_email,
    "phone": lambda raw: normalize_phone(raw, None).e164,
    "advertising_id": lambda raw: raw.strip().lower(),
}


def parse_identifier(text: str, field: str) -> Key:
    """``type:value`` with the value normalized as the collector does (emails lower-cased, phones E.164)."""
    kind, sep, raw = text.partition(":")
    if not sep or not kind or not raw:
        raise CollectError(f"field '{field}' must look like type:value, e.g. email:ann@example.com", field=field)
    value = _NORMALIZERS.get(kind, str.strip)(raw)
    if kind == "phone" and value is None:
        # the collector stores phones in E.164 only, read with the sending source's region; here no region applies
        raise CollectError(
            f"field '{field}' holds the phone {raw!r}, which is not a valid number with its country code: write it "
            "in E.164, e.g. phone:+14155550100 (phones are stored in E.164)",
            field=field,
        )
    return kind, value if value else raw.strip()


class Operation(BaseModel):
    kind: Literal["exclude_identifier", "include_identifier", "exclude_link", "include_link", "merge_profiles"]
    identifier: str | None = Field(None, description="type:value, for exclude_identifier / include_identifier")
    a: str | None = Field(None, description="type:value (links) or a profile id (merge_profiles)")
    b: str | None = Field(None, description="type:value (links) or a profile id (merge_profiles)")


def operation_args(body: Operation) -> dict[str, Any]:
    if body.kind in ("exclude_identifier", "include_identifier"):
        if body.identifier is None:
            raise CollectError(f"{body.kind} needs field 'identifier' (type:value)", field="identifier")
        return {"identifier": list(parse_identifier(body.identifier, "identifier"))}
    if body.a is None or body.b is None:
        what = "profile ids" if body.kind == "merge_profiles" else "identifiers (type:value)"
        raise CollectError(f"{body.kind} needs fields 'a' and 'b': two {what}", field="a" if body.a is None else "b")
    if body.kind == "merge_profiles":
        return {"a": body.a, "b": body.b}
    return {"a": list(parse_identifier(body.a, "a")), "b": list(parse_identifier(body.b, "b"))}


def identity_router(processor: IdentityProcessor, rules: IdentityRules, caught_up: Callable[[], object]) -> APIRouter:
    """``caught_up`` waits until the profiles reflect every acknowledged event (``CaughtUp.profiles``)."""
    tables = processor.tables
    router = APIRouter(prefix="/identity", tags=["identity"])

    def status(key: Key) -> str:
        if rules.is_blocked(key):
            return "blocked"
        if tables.hub(key):
            return "hub"
        return "linked" if tables.owner(key) else "unknown"

    @router.get("/lookup")
    def lookup(identifier: str = Query(..., description="type:value, e.g. email:ann@example.com")) -> dict[str, Any]:
        """The profile an identifier belongs to, with all of that profile's identifiers."""
        caught_up()
        key = parse_identifier(identifier, "identifier")
        profile_id = tables.owner(key)
        if profile_id is None or tables.hub(key):  # a hub stays with one part of a split, yet names no one person
            raise NotFound(f"no profile holds {key[0]}:{key[1]} (status: {status(key)})", status=status(key))
        return {
            "identifier": {"type": key[0], "value": key[1]},
            "profile_id": profile_id,
            "identifiers": tables.profile_keys(profile_id),
        }

    @router.get("/profiles/{profile_id}")
    def profile(profile_id: str) -> dict[str, Any]:
        caught_up()
        keys = tables.profile_keys(profile_id)
        if not keys:
            raise NotFound(f"no profile '{profile_id}'; it may have been merged: look it up by an identifier")
        return {"profile_id": profile_id, "identifiers": keys}

    @router.get("/explain")
    def explain(
        a: str = Query(..., description="type:value"), b: str = Query(..., description="type:value")
    ) -> dict[str, Any]:
        """Why two identifiers are one profile (``evidence``: the events and manual merges that tie them, in
        order), or why they are not (``refused``: the refused unions between their profiles, with the rule;
        ``set_aside``: identifiers both profiles' events carried but could not link through, such as a hub)."""
        caught_up()
        keys = (parse_identifier(a, "a"), parse_identifier(b, "b"))
        # a hub stays with one part of a split, yet names no one person (as in lookup)
        owners = [None if tables.hub(k) else tables.owner(k) for k in keys]
        same = owners[0] is not None and owners[0] == owners[1]
        answer: dict[str, Any] = {"same_profile": same}
        if same:
            path = processor.run_exclusive(lambda _: processor.graph.evidence_between(*keys))
            answer["evidence"] = tables.evidence_steps(path or [])
        elif owners[0] is not None and owners[1] is not None:
            one, other = tables.lineage(owners[0]), tables.lineage(owners[1])
            answer["refused"] = tables.refusals_between(one, other)
            answer["set_aside"] = [
                {**row, "status": status((row["identifier"]["type"], row["identifier"]["value"]))}
                for row in tables.set_aside_in_both(one, other)
            ]
        parts = []
        for key, owner in zip(keys, owners, strict=True):
            link = tables.link_of(key)
            parts.append(
                {
                    "identifier": {"type": key[0], "value": key[1]},
                    "status": status(key),
                    "profile_id": owner,
                    "linked_by": link,
                    "merged_through": tables.merges_from(link["profile_id"]) if link else [],
                    "refusals": tables.refusals_of(key),
                }
            )
        return {**answer, "a": parts[0], "b": parts[1]}

    @router.get("/hubs")
    def hubs(
        before: int | None = Query(None, ge=1, description="next_before of the previous page"),
        limit: int = Query(100, ge=1, le=1000, description="events that showed hubs (most show one)"),
    ) -> dict[str, Any]:
        """Identifiers quarantined from merging as hubs (a family tablet, a shop's shared e-mail), newest first."""
        caught_up()
        rows = tables.hubs(before=before, events=limit + 1)
        seqs = sorted({r["seq"] for r in rows}, reverse=True)
        more = len(seqs) > limit
        if more:
            rows = [r for r in rows if r["seq"] > seqs[-1]]
        return {"data": rows, "next_before": rows[-1]["seq"] if more else None}

    @router.get("/stats")
    def stats() -> dict[str, int]:
        caught_up()
        return {**tables.counts(), "processor_lag": processor.lag()}

    @router.post("/operations", status_code=201)
    def operate(body: Operation, request: Request) -> dict[str, Any]:
        """Split a profile by excluding an identifier or a link between two identifiers, undo an exclusion, or
        merge two profiles by hand. Past events follow their identifiers; the operation is recorded in the log's
        order, so a rebuild gives the same result."""
        caught_up()
        result = processor.operate(body.kind, operation_args(body), actor=request.state.principal.email)
        if result["refused"]:
            rules = ", ".join(sorted({r["rule"] for r in result["refusals"]}))
            raise Conflict(
                f"the merge was refused by rule {rules}; nothing changed (recorded as operation {result['id']})",
                operation_id=result["id"],
                refusals=result["refusals"],
            )
        return result

    @router.get("/changes")
    def changes(
        after: int = Query(0, ge=0, description="the last position of the previous page"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """Merges, splits and operations in log order: the feed downstream stages follow."""
        caught_up()
        rows = tables.changes(after=after, limit=limit)
        return {"data": rows, "next_after": rows[-1]["position"] if rows else after}

    @router.get("/operations")
    def operations() -> dict[str, Any]:
        """Every operation applied, oldest first, with what it changed."""
        return {"data": tables.operations()}

    return router
