"""Probabilistic matching in the running server, end to end: CRM and till records that share no identifier with
a web profile are matched on names, date of birth, address and email variants; certain pairs link, borderline
pairs wait for review (accept merges, reject keeps apart), links can be revoked, cannot-link holds, and a second
run proposes nothing twice."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import RunningServer
from tests.identity.matching_people import population
from tests.identity.test_operations import profile_of, timeline
from tests.profiles.test_profile_api import send

MATCHING = "/api/identity/matching"
POPULATION_ID = re.compile(r"^(web|C|P)-\d{4}$")


def _address(number: int, street: str) -> dict[str, str]:
    return {"street": f"{number} {street}", "city": "Springfield", "state": "IL", "postal_code": "62701"}


# (web traits, CRM traits) of people the assertions follow; names absent from the random population.
NEAR_WEB = {
    "first_name": "Ottoline",
    "last_name": "Featherstonehaugh",
    "birthday": "1971-03-09",
    "email": "ottoline.f@gmail.com",
    "address": _address(77, "Quarry Lane"),
}
NEAR_CRM = {**NEAR_WEB, "last_name": "Featherstonhaugh", "email": "ottolinef@gmail.com"}  # typo, Gmail dots
# Only the names agree, one with a typo: likely, not certain.
BORDER_A = (
    {"first_name": "Augustin", "last_name": "Farraday", "birthday": "1949-12-30"},
    {"first_name": "Augustin", "last_name": "Faraday"},
)
BORDER_B = (
    {"first_name": "Evangeline", "last_name": "Thistlewood", "birthday": "1958-06-14"},
    {"first_name": "Evangeline", "last_name": "Thistlewod"},
)
TWIN = {
    "first_name": "Bartholomew",
    "last_name": "Quenby",
    "birthday": "1980-01-31",
    "address": _address(5, "Mill Road"),
}


def identify(user_id: str, traits: dict[str, Any]) -> dict[str, Any]:
    return {"type": "identify", "userId": user_id, "traits": traits}


def post(server: RunningServer, path: str, **body: Any) -> httpx.Response:
    with server.admin() as admin:
        admin.timeout = 300
        return admin.post(path, json=body or None)


def reviews(server: RunningServer, status: str) -> list[dict[str, Any]]:
    with server.admin() as admin:
        response = admin.get(f"{MATCHING}/reviews", params={"status": status, "limit": 500})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def values(pair: dict[str, Any]) -> set[str]:
    return {pair["a"]["identifier"]["value"], pair["b"]["identifier"]["value"]}


def pair_of(rows: list[dict[str, Any]], *wanted: str) -> dict[str, Any]:
    found = [r for r in rows if values(r) == set(wanted)]
    assert len(found) == 1, (wanted, [(r["a"]["identifier"], r["b"]["identifier"]) for r in rows])
    return found[0]


def test_matching_links_queues_reviews_revokes_and_never_repeats(make_server):
    server: RunningServer = make_server()
    keys = {
        name: server.create_source(name, kind=kind)["write_key"]
        for name, kind in (("website", "web"), ("crm", "crm"), ("pos", "pos"))
    }
    people = population(400)
    web = [
        *people.web,
        identify("w-near", NEAR_WEB),
        identify("w-border-a", BORDER_A[0]),
        identify("w-border-b", BORDER_B[0]),
        identify("w-twin", TWIN),
    ]
    crm = [
        *people.crm,
        identify("c-near", NEAR_CRM),
        identify("c-border-a", BORDER_A[1]),
        identify("c-border-b", BORDER_B[1]),
        identify("c-twin-1", TWIN),  # one person, two CRM contacts: two crm_id values are two people to the rules
        identify("c-twin-2", TWIN),
    ]
    for name, events in (("website", web), ("crm", crm), ("pos", people.pos)):
        for start in range(0, len(events), 500):
            send(server, keys[name], events[start : start + 500])
    near_web, near_crm = profile_of(server, "user_id:w-near"), profile_of(server, "crm_id:c-near")
    assert near_web is not None
    assert near_crm is not None
    assert near_web != near_crm

    first = post(server, f"{MATCHING}/runs")
    assert first.status_code == 201, first.text
    run = first.json()
    summary = run["summary"]
    assert run["status"] == "finished"
    assert summary["candidates"] >= len(crm) + len(people.pos)
    known_elsewhere = [e for e in people.crm + people.pos if int(e["userId"][2:]) < 400]  # the rest: CRM only
    assert summary["auto_linked"] > 0.8 * len(known_elsewhere)

    # near-certain: linked automatically, one profile with both histories
    linked = reviews(server, "auto_linked")
    near = pair_of(linked, "c-near", "w-near")
    assert near["probability"] >= 0.99
    assert near["run_id"] == run["id"]
    assert near["operation_id"] is not None
    assert set(near["explanation"]) >= {"given_name", "surname", "dob", "email"}
    assert profile_of(server, "crm_id:c-near") == profile_of(server, "user_id:w-near") == near_web
    assert timeline(server, near_web) == ["identify", "identify"]
    # every automatic link within the random population joins one person's records (web-0007, C-0007, P-0007)
    population_ids = [sorted(v for v in values(p) if POPULATION_ID.match(v)) for p in linked]
    assert all(len({v[-4:] for v in ids}) == 1 for ids in population_ids if len(ids) == 2)
    assert any(v.startswith("P-") for ids in population_ids for v in ids)  # till customers link too

    # borderline: queued for review with both sides' traits and the explanation
    pending = reviews(server, "pending")
    border_a = pair_of(pending, "c-border-a", "w-border-a")
    border_b = pair_of(pending, "c-border-b", "w-border-b")
    assert 0.90 <= border_a["probability"] < 0.99
    assert border_a["reason"] == "between_thresholds"
    sides = {border_a["a"]["identifier"]["value"]: border_a["a"], border_a["b"]["identifier"]["value"]: border_a["b"]}
    assert sides["c-border-a"]["traits"]["last_name"] == "Faraday"
    assert sides["w-border-a"]["identifiers"] == [{"type": "user_id", "value": "w-border-a"}]
    assert border_a["explanation"]["surname"]["level"] != "exact"
    assert profile_of(server, "crm_id:c-border-a") != profile_of(server, "user_id:w-border-a")

    accepted = post(server, f"{MATCHING}/reviews/{border_a['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert profile_of(server, "crm_id:c-border-a") == profile_of(server, "user_id:w-border-a")
    assert post(server, f"{MATCHING}/reviews/{border_a['id']}/accept").status_code == 409  # decided already

    rejected = post(server, f"{MATCHING}/reviews/{border_b['id']}/reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert profile_of(server, "crm_id:c-border-b") != profile_of(server, "user_id:w-border-b")

    # two CRM contacts of one person: one links, the other waits (cap) and can never join (cannot-link on crm_id)
    twins = [p for p in linked + pending if "w-twin" in values(p)]
    assert sorted(p["status"] for p in twins) == ["auto_linked", "pending"]
    waiting = next(p for p in twins if p["status"] == "pending")
    assert waiting["reason"] == "cap:max_links_per_record"
    refused = post(server, f"{MATCHING}/reviews/{waiting['id']}/accept")
    assert refused.status_code == 409, refused.text
    assert "cannot_link:crm_id" in refused.json()["error"]["message"]
    assert profile_of(server, "crm_id:c-twin-1") != profile_of(server, "crm_id:c-twin-2")

    # revoking the automatic link splits the profile again, each history with its own identifiers
    revoked = post(server, f"{MATCHING}/links/{near['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    crm_side, web_side = profile_of(server, "crm_id:c-near"), profile_of(server, "user_id:w-near")
    assert crm_side is not None
    assert web_side is not None
    assert crm_side != web_side
    assert timeline(server, crm_side) == timeline(server, web_side) == ["identify"]
    assert post(server, f"{MATCHING}/links/{near['id']}/revoke").status_code == 409
    assert post(server, f"{MATCHING}/links/{border_b['id']}/revoke").status_code == 409
    assert post(server, f"{MATCHING}/reviews/999999/accept").status_code == 404

    # a second run proposes nothing already linked, queued, rejected or revoked
    pending_before = sorted(p["id"] for p in reviews(server, "pending"))
    second = post(server, f"{MATCHING}/runs")
    assert second.status_code == 201, second.text
    again = second.json()["summary"]
    assert again["auto_linked"] == 0, again
    assert again["queued"] == 0, again
    assert again["already_known"] >= 3  # the revoked, the rejected and the waiting twin
    assert sorted(p["id"] for p in reviews(server, "pending")) == pending_before
    assert profile_of(server, "crm_id:c-near") != profile_of(server, "user_id:w-near")
    assert profile_of(server, "crm_id:c-border-b") != profile_of(server, "user_id:w-border-b")

    with server.admin() as admin:
        runs = admin.get(f"{MATCHING}/runs").json()["data"]
        assert [r["id"] for r in runs] == [second.json()["id"], run["id"]]
        assert admin.get(f"{MATCHING}/reviews", params={"status": "maybe"}).status_code == 400

        # a person's export lists the candidates naming them; erasing them leaves none behind
        side = waiting["a"]["identifier"]
        person = {"identifier": f"{side['type']}:{side['value']}"}
        exported = admin.post("/api/privacy/export", json=person).json()
        assert waiting["id"] in [p["id"] for p in exported["evidence"]["match_candidates"]]
        erased = admin.post("/api/privacy/erase", json=person)
        assert erased.status_code == 200, erased.text
        assert erased.json()["deleted"]["match_candidates"] >= 1
    left = [
        p for status in ("pending", "rejected", "auto_linked", "accepted", "revoked") for p in reviews(server, status)
    ]
    assert waiting["id"] not in [p["id"] for p in left]
    assert all(side not in (p["a"]["identifier"], p["b"]["identifier"]) for p in left)


def test_matching_refuses_bad_thresholds_and_too_little_data(make_server):
    server: RunningServer = make_server()
    assert post(server, f"{MATCHING}/runs", low=0.99, high=0.5).status_code == 400
    empty = post(server, f"{MATCHING}/runs")
    assert empty.status_code == 201, empty.text
    assert empty.json()["summary"]["candidates"] == 0
    crm = server.create_source("crm", kind="crm")["write_key"]
    send(server, crm, [identify("c-1", {"first_name": "Ann", "last_name": "Lee"})])
    small = post(server, f"{MATCHING}/runs")
    assert small.status_code == 400
    assert "too few profiles" in small.json()["error"]["message"]
    with server.admin() as admin:
        assert admin.get(f"{MATCHING}/runs").json()["data"][0]["status"] == "failed"
