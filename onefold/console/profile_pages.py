"""Profiles: search by any identifier or trait, and the 360 view of one person, with identity actions for admins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, get_args
from urllib.parse import urlencode

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from onefold.console.mask import mask_identifier, mask_trait
from onefold.console.web import guarded, redirect, render
from onefold.errors import CollectError, Conflict, NotFound
from onefold.governance.roles import IDENTITY_WRITE, PII, PROFILES
from onefold.governance.users import Session
from onefold.identity.api import Operation, operation_args
from onefold.identity.keys import event_keys
from onefold.profiles.profile_api import ProfileReader
from onefold.profiles.view import computed_traits, consent_history, custom_traits, subscription_history
from onefold.store.privacy_tables import PrivacyTables

if TYPE_CHECKING:
    from onefold.server import Runtime

PAGE_SIZE = 25
TIMELINE_SIZE = 50


class Masker:
    """Personal data as the signed-in user may see it."""

    def __init__(self, session: Session) -> None:
        self.clear = session.user.principal().can(PII)

    def identifier(self, kind: str, value: str) -> str:
        return value if self.clear else mask_identifier(kind, value)

    def trait(self, name: str, value: Any) -> Any:
        return value if self.clear else mask_trait(name, value)


def search_results(reader: ProfileReader, masker: Masker, query: str, after: str) -> tuple[list[dict[str, Any]], str]:
    tables = reader.profiles
    # without the grant, search reads ids only: matching e-mails, phones or names by prefix would let a user
    # spell out, letter by letter, a value the pages mask
    ids = tables.search(query, limit=PAGE_SIZE + 1, after=after, personal=masker.clear)
    summaries = tables.summaries(ids[:PAGE_SIZE])
    results = []
    for profile_id in ids[:PAGE_SIZE]:
        summary = summaries.get(profile_id, {"traits": {}, "last_seen": None, "identifiers": []})
        results.append(
            {
                "profile_id": profile_id,
                "identifiers": [(kind, masker.identifier(kind, value)) for kind, value in summary["identifiers"]],
                "name": masker.trait("name", _display_name(summary["traits"])),
                "last_seen": summary["last_seen"],
            }
        )
    return results, ids[PAGE_SIZE - 1] if len(ids) > PAGE_SIZE else ""


def _display_name(traits: dict[str, Any]) -> str:
    name = traits.get("name") or " ".join(str(traits[k]) for k in ("first_name", "last_name") if traits.get(k))
    return str(name) if name else ""


def identity_rows(runtime: Runtime, masker: Masker, profile_id: str) -> list[dict[str, Any]]:
    """Each identifier with the event that linked it: its source, time, and the other identifiers it carried
    (as the identity processor keys them, blocked values marked)."""
    tables, rules = runtime.identity.tables, runtime.identity.graph.rules
    sources = {s.id: s for s in runtime.store.list_sources()}
    keys = tables.profile_keys(profile_id)
    held = {(k["type"], k["value"]) for k in keys}
    links = tables.links_of_profile(profile_id)
    rows = []
    for key in keys:
        link = links.get((key["type"], key["value"]))
        carried = []
        source = sources.get(link["source_id"]) if link else None
        if link:
            carried = [
                {
                    "type": k,
                    "value": v,
                    "shown": masker.identifier(k, v),
                    "blocked": rules.is_blocked((k, v)),
                    "elsewhere": (k, v) not in held,  # excluded, split off, or never linked
                }
                for k, v in event_keys(source.kind if source else "other", link["identifiers"])
                if (k, v) != (key["type"], key["value"])
            ]
        rows.append(
            {
                "type": key["type"],
                "value": key["value"],
                "shown": masker.identifier(key["type"], key["value"]),
                "link": link,
                "source": source.name if source else (link["source_id"] if link else None),
                "carried": carried,
            }
        )
    return rows


def why_together(
    runtime: Runtime, masker: Masker, identities: list[dict[str, Any]], picks: tuple[str, str]
) -> dict[str, Any] | None:
    """The chain of evidence tying two of the profile's identifiers (picked by their row numbers, so no value
    travels in a link), each step with its event (type, source, time) or the operator's merge."""
    try:
        a, b = (identities[int(pick)] for pick in picks)
    except (ValueError, IndexError):
        return None
    keys = (a["type"], a["value"]), (b["type"], b["value"])
    processor = runtime.identity
    path = processor.run_exclusive(lambda _: processor.graph.evidence_between(*keys))
    sources = {s.id: s.name for s in runtime.store.list_sources()}
    steps = [
        {
            **step,
            "source": sources.get(event["source_id"], event["source_id"]) if (event := step.get("event")) else None,
            "identifiers": [
                {"type": i["type"], "shown": masker.identifier(i["type"], i["value"])} for i in step["identifiers"]
            ],
        }
        for step in processor.tables.evidence_steps(path or [])
    ]
    return {"a": a, "b": b, "found": path is not None, "steps": steps}


def _product(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name") or value.get("product_id") or value.get("sku") or "a product")
    return str(value)


def computed_rows(computed: dict[str, Any], sources: dict[str, str]) -> list[tuple[str, str]]:
    """The computed attributes a person reads on the 360 view, as (label, text)."""

    def when(value: str | None) -> str:
        return value[:16].replace("T", " ") if value else "–"

    aov = computed["average_order_value"]
    rows = [
        ("Page views", f"{computed['page_views']:,}"),
        ("Last product viewed", _product(computed["last_product_viewed"]) if computed["last_product_viewed"] else "–"),
        ("Current cart", ", ".join(_product(p) for p in computed["current_cart"]) or "empty"),
        ("Average order", f"{aov:.2f}" if aov is not None else "–"),
        ("First order", when(computed["first_order_at"])),
        ("Last order", when(computed["last_order_at"])),
        ("Favourite category", computed["favourite_category"] or "–"),
        ("Sources", ", ".join(sources.get(s, s) for s in computed["sources"]) or "–"),
        ("Channels", ", ".join(computed["channels"]) or "–"),
    ]
    for channel in ("email", "sms"):
        e = computed[channel]
        text = f"{e['sent']} sent · {e['opened']} opened · {e['clicked']} clicked · last {when(e['last_engagement'])}"
        rows.append((f"{channel.upper() if channel == 'sms' else 'Email'} engagement", text))
    return rows


def routes(runtime: Runtime, reader: ProfileReader) -> list[BaseRoute]:
    gate = runtime.gate

    @guarded(gate, PROFILES)
    def search(request: Request, session: Session) -> Response:
        query = request.query_params.get("q", "").strip()
        after = request.query_params.get("after", "")
        masker = Masker(session)
        results, next_after = search_results(reader, masker, query, after) if query else ([], "")
        return render(
            request,
            session,
            "profiles.html",
            title="Profiles",
            q=query,
            results=results,
            next_after=next_after,
            personal=masker.clear,
        )

    @guarded(gate, PROFILES)
    def profile(request: Request, session: Session) -> Response:
        profile_id = request.path_params["profile_id"]
        if reader.profiles.state(profile_id) is None:
            merged_into = _merged_into(runtime, profile_id)
            if merged_into:
                return redirect(f"/console/profiles/{merged_into}")
            raise NotFound(f"there is no profile {profile_id}; search by an email, a user id or a name instead")
        masker = Masker(session)
        sources = {s.id: s.name for s in runtime.store.list_sources()}
        state = reader.state(profile_id)
        audiences, saved_traits = reader.memberships(profile_id)
        names = [n for n in request.query_params.getlist("event") if n]
        from_sources = [s for s in request.query_params.getlist("source") if s]
        before = request.query_params.get("before", "")
        rows = reader.profiles.timeline(
            profile_id,
            limit=TIMELINE_SIZE + 1,
            before_seq=int(before) if before.isdigit() else None,
            names=names,
            sources=from_sources,
        )
        timeline = [
            {**e, "properties": {k: masker.trait(k, v) for k, v in e["properties"].items()}}
            for e in rows[:TIMELINE_SIZE]
        ]
        older = (
            urlencode(
                [("event", n) for n in names]
                + [("source", s) for s in from_sources]
                + [("before", timeline[-1]["seq"])]
            )
            if len(rows) > TIMELINE_SIZE
            else ""
        )
        event_names = reader.profiles.event_names(profile_id)
        identities = identity_rows(runtime, masker, profile_id)
        picks = (request.query_params.get("why_a", ""), request.query_params.get("why_b", ""))
        why = why_together(runtime, masker, identities, picks) if all(picks) else None
        verbose = custom_traits(state, verbose=True)
        traits = {name: {**t, "value": masker.trait(name, t["value"])} for name, t in verbose.items()}
        return render(
            request,
            session,
            "profile.html",
            title=_display_name({k: v["value"] for k, v in traits.items()}) or profile_id,
            profile_id=profile_id,
            identities=identities,
            why=why,
            traits=traits,
            computed=computed_traits(state),
            computed_rows=computed_rows(computed_traits(state), sources),
            consent=consent_history(state),
            subscription_changes=subscription_history(state),
            audiences=audiences,
            saved_traits={name: masker.trait(name, value) for name, value in saved_traits.items()},
            timeline=timeline,
            older=older,
            event_names=event_names,
            selected_events=names,
            selected_sources=from_sources,
            profile_sources=computed_traits(state)["sources"],
            sources=sources,
            done=request.query_params.get("done", ""),
        )

    @guarded(gate, IDENTITY_WRITE)
    def operate(request: Request, session: Session) -> Response:
        """Exclude an identifier (split it off) or a link between two identifiers, from the 360 view."""
        profile_id = request.path_params["profile_id"]
        if reader.profiles.state(profile_id) is None:
            raise NotFound(f"there is no profile {profile_id}; it may have been merged: open it again from search")
        form: dict[str, str] = request.state.form
        try:
            body = Operation.model_validate({k: form.get(k) or None for k in ("kind", "identifier", "a", "b")})
        except ValidationError as invalid:
            kinds = ", ".join(get_args(Operation.model_fields["kind"].annotation))
            raise CollectError(
                f"not an identity operation ({invalid.error_count()} problems): 'kind' is one of {kinds}"
            ) from None
        args = operation_args(body)
        result = runtime.identity.operate(body.kind, args, actor=session.user.email)
        if result["refused"]:
            rules = ", ".join(sorted({r["rule"] for r in result["refusals"]}))
            raise Conflict(f"refused by rule {rules}; nothing changed")
        # the identifiers as stored ([type, value]), so that an erasure finds and redacts them here too
        PrivacyTables(runtime.store).record_audit(
            session.user.email, f"identity.{body.kind}", profile_id, {"operation": result["id"], **args}
        )
        kept = profile_id if reader.profiles.state(profile_id) is not None else _merged_into(runtime, profile_id)
        return redirect(f"/console/profiles/{kept or profile_id}?done={body.kind}")

    return [
        Route("/console/profiles", search),
        Route("/console/profiles/{profile_id}", profile),
        Route("/console/profiles/{profile_id}/identity", operate, methods=["POST"]),
    ]


def _merged_into(runtime: Runtime, profile_id: str) -> str | None:
    chain = runtime.identity.tables.merges_from(profile_id)
    return str(chain[-1]["winner"]) if chain else None
