"""Overview: events per minute by source and type, profiles and merges per day, rejections, audience sizes and
processing lag. The page polls ``/console/overview.json`` so the numbers move without a reload."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from onefold.console.charts import WIDE, Series, bar_chart, line_chart
from onefold.console.web import guarded, render
from onefold.governance.roles import OVERVIEW
from onefold.governance.users import Session
from onefold.store.activity_tables import ActivityTables

if TYPE_CHECKING:
    from onefold.server import Runtime

WINDOW_MINUTES = 60
HISTORY_DAYS = 30
MOST_SERIES = 6  # beyond it the smallest series are summed as "other"


def per_minute(rows: list[dict[str, Any]], now: datetime, minutes: int) -> tuple[list[str], list[Series]]:
    """Rows of (minute, key, n) as one series per key over the last ``minutes`` minutes, zeros filled in."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    slots = [start + timedelta(minutes=i) for i in range(minutes)]
    index = {slot: i for i, slot in enumerate(slots)}
    counts: dict[str, list[float]] = defaultdict(lambda: [0.0] * minutes)
    for row in rows:
        i = index.get(row["minute"].replace(tzinfo=start.tzinfo))
        if i is not None:
            counts[str(row["key"])][i] += row["n"]
    ranked = sorted(counts.items(), key=lambda item: -sum(item[1]))
    series = [Series(key, values) for key, values in ranked[:MOST_SERIES]]
    if len(ranked) > MOST_SERIES:
        rest = [sum(values[i] for _, values in ranked[MOST_SERIES:]) for i in range(minutes)]
        series.append(Series("other", rest))
    return [slot.strftime("%H:%M") for slot in slots], series


def overview_data(runtime: Runtime) -> dict[str, Any]:
    now = runtime.clock()
    since = now - timedelta(minutes=WINDOW_MINUTES)
    activity = ActivityTables(runtime.store)
    stats = runtime.store.stats()
    counts = runtime.identity.tables.counts()
    by_source = per_minute(activity.events_per_minute(since, "source"), now, WINDOW_MINUTES)
    by_type = per_minute(activity.events_per_minute(since, "type"), now, WINDOW_MINUTES)
    rejected = per_minute(activity.rejections_per_minute(since), now, WINDOW_MINUTES)
    days = activity.profiles_and_merges_per_day(HISTORY_DAYS, now)
    audiences = sorted(runtime.audiences.service.tables.all("audience"), key=lambda a: -a["size"])
    return {
        "numbers": {
            "events": stats["events_stored"],
            "rejected": stats["events_rejected"],
            "profiles": counts["profiles"],
            "merges": counts["merges"],
            "processor_lag": runtime.identity.lag(),
            "audience_lag": max(0, runtime.identity.offset - runtime.audiences.evaluated_upto),
        },
        "charts": {
            "events_by_source": line_chart("Events per minute by source", *by_source),
            "events_by_type": line_chart("Events per minute by type", *by_type),
            "rejected": line_chart("Rejected per minute by reason", *rejected),
            "profiles": line_chart(
                "New profiles and merges per day",
                [row["day"].strftime("%m-%d") for row in days],
                [Series("new profiles", [r["profiles"] for r in days]), Series("merges", [r["merges"] for r in days])],
            ),
            "audiences": bar_chart("Audience sizes", [(a["name"], a["size"]) for a in audiences[:12]], width=WIDE),
        },
    }


def routes(runtime: Runtime) -> list[BaseRoute]:
    @guarded(runtime.gate, OVERVIEW)
    def overview(request: Request, session: Session) -> Response:
        return render(request, session, "overview.html", data=overview_data(runtime), title="Overview")

    @guarded(runtime.gate, OVERVIEW)
    def overview_json(_: Request, __: Session) -> Response:
        return JSONResponse(overview_data(runtime), headers={"Cache-Control": "no-store"})

    return [Route("/console", overview), Route("/console/overview.json", overview_json)]
