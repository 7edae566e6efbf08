"""Identity: merge statistics, largest profiles, hub identifiers, blocked values, the probabilistic review queue
(side by side, accept or reject) and the rules in force."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from onefold.console.charts import Series, bar_chart, line_chart
from onefold.console.mask import mask_identifier
from onefold.console.web import guarded, redirect, render
from onefold.errors import NotFound
from onefold.governance.roles import IDENTITY, IDENTITY_WRITE, PII
from onefold.governance.users import Session
from onefold.identity.rules import IdentityRules
from onefold.store.activity_tables import ActivityTables
from onefold.store.privacy_tables import PrivacyTables

if TYPE_CHECKING:
    from onefold.server import Runtime

SHOWN = 15
HISTORY_DAYS = 30


def rules_summary(rules: IdentityRules) -> list[tuple[str, str]]:
    """The rules in force, in words."""
    by_priority = sorted(rules.priority, key=lambda t: rules.priority[t])
    return [
        ("Identifier types, strongest first", ", ".join(by_priority) + ", then any other type"),
        ("Never merged (one value per profile)", ", ".join(sorted(rules.unique_types))),
        (
            "Values per profile",
            ", ".join(f"{t} ≤ {rules.limit(t)}" for t in by_priority) + f" (others ≤ {rules.default_limit})",
        ),
        ("Caps", f"at most {rules.max_merges} merges and {rules.max_identifiers} identifiers per profile"),
        (
            "Hub after",
            ", ".join(f"{t}: {n + 1}+ unique ids" for t, n in sorted(rules.hub_thresholds.items()))
            + f" (others: {rules.default_hub_threshold + 1}+)",
        ),
        ("Time windows", ", ".join(f"{t}: {s / 86400:g} days" for t, s in rules.windows.items()) or "none"),
        ("Weak types", ", ".join(sorted(rules.weak_types)) or "none"),
    ]


def blocked_summary(rules: IdentityRules) -> tuple[list[str], list[str]]:
    values = sorted(repr(v) for v in rules.blocked_values)
    patterns = [p.pattern for p in (*rules.blocked_patterns, *rules.extra_blocked_patterns)]
    return values, patterns


def routes(runtime: Runtime) -> list[BaseRoute]:
    gate, identity = runtime.gate, runtime.identity
    matching = runtime.matching

    @guarded(gate, IDENTITY)
    def overview(request: Request, session: Session) -> Response:
        activity = ActivityTables(runtime.store)
        clear = session.user.principal().can(PII)
        days = activity.profiles_and_merges_per_day(HISTORY_DAYS, runtime.clock())
        chart = line_chart(
            "Merges per day",
            [row["day"].strftime("%m-%d") for row in days],
            [Series("merges", [r["merges"] for r in days]), Series("new profiles", [r["profiles"] for r in days])],
        )
        refusals = activity.refusals_by_rule()
        hubs = [
            {**h, "shown": h["value"] if clear else mask_identifier(h["type"], h["value"])}
            for h in activity.hubs(limit=SHOWN)
        ]
        pending = matching.pairs(status="pending", limit=SHOWN)
        values, patterns = blocked_summary(identity.graph.rules)
        return render(
            request,
            session,
            "identity.html",
            title="Identity",
            counts=identity.tables.counts(),
            chart=chart,
            refusals_chart=bar_chart("Refused merges by rule", [(r["rule"], r["refusals"]) for r in refusals]),
            largest=activity.largest_profiles(limit=SHOWN),
            hubs=hubs,
            pending=[_masked_pair(p, clear) for p in pending],
            pending_total=matching.tables.count_pairs("pending"),
            blocked_values=values,
            blocked_patterns=patterns,
            rules=rules_summary(identity.graph.rules),
            done=request.query_params.get("done", ""),
        )

    @guarded(gate, IDENTITY_WRITE)
    def decide(request: Request, session: Session) -> Response:
        pair_id = int(request.path_params["pair_id"])
        decision = request.path_params["decision"]
        if decision not in ("accept", "reject"):
            raise NotFound(f"a review is decided by accept or reject, not {decision!r}")
        result = (matching.accept if decision == "accept" else matching.reject)(pair_id, session.user.email)
        PrivacyTables(runtime.store).record_audit(
            session.user.email, f"matching.{decision}", str(pair_id), {"status": result.get("status")}
        )
        return redirect(f"/console/identity?done={decision}ed+pair+{pair_id}")

    return [
        Route("/console/identity", overview),
        Route("/console/identity/reviews/{pair_id:int}/{decision:str}", decide, methods=["POST"]),
    ]


def _masked_pair(pair: dict[str, Any], clear: bool) -> dict[str, Any]:
    if clear:
        return pair
    out = dict(pair)
    for side in ("a", "b"):
        part = dict(pair[side])
        part["identifiers"] = [{**i, "value": mask_identifier(i["type"], i["value"])} for i in part["identifiers"]]
        part["traits"] = dict.fromkeys(part["traits"], "***")
        out[side] = part
    return out
