"""Sources, privacy and identity pages over HTTP on a real server: snippets that work as pasted, quarantine,
erasure with a receipt, export, the audit log, and the probabilistic review queue."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from typing import Any

import httpx
import orjson

from onefold.console.snippets import snippets
from tests.conftest import RunningServer
from tests.console.conftest import SignedIn, add_user
from tests.identity.matching_people import population
from tests.identity.test_matching_service import BORDER_A, MATCHING, identify, pair_of, post, reviews
from tests.profiles.test_profile_api import send, settle

PRE = re.compile(r'<code id="snippet-\d+">(.*?)</code>', re.S)


def signed_in(server: RunningServer, role: str) -> SignedIn:
    email = f"{role}@example.com"
    add_user(server, email, role)
    return SignedIn(server, email)


def test_an_admin_creates_a_source_and_its_snippets_work_as_pasted(server: RunningServer) -> None:
    admin = signed_in(server, "admin")
    created = admin.form("/console/sources", {"name": "landing", "kind": "web", "region": "GB"})
    assert created.status_code == 303
    record = server.runtime.store.get_source("landing")
    assert record.default_region == "GB"
    page = admin.get(created.headers["location"])
    assert record.write_key in page.text
    shown = [html.unescape(code) for code in PRE.findall(page.text)]
    assert shown == list(snippets(server.url + "/", record.write_key).values())

    python_snippet = shown[1].replace('"user-42"', '"snippet-python"')
    subprocess.run([sys.executable, "-c", python_snippet], check=True, timeout=60)
    assert shutil.which("curl") is not None
    curl_snippet = shown[3].replace("user-42", "snippet-curl")
    out = subprocess.run(["bash", "-c", curl_snippet], check=True, capture_output=True, timeout=60).stdout
    assert orjson.loads(out)["stored"] == 1
    stored = {e["user_id"] for e in server.events(source_id=record.id)}
    assert stored == {"snippet-python", "snippet-curl"}

    bad = admin.form("/console/sources", {"name": "x", "kind": "television"})
    assert bad.status_code == 400
    assert "field &#39;kind&#39; must be one of" in bad.text


def test_quarantine_shows_each_rejected_payload_with_its_reason_to_admins_only(server: RunningServer) -> None:
    source = server.create_source("website")
    response = httpx.post(
        server.url + "/v1/batch",
        json={
            "batch": [{"type": "track", "userId": "rejected-user"}, {"type": "track", "userId": "u2", "event": "Ok"}]
        },
        auth=(source["write_key"], ""),
    )
    assert response.status_code == 200
    admin, marketer = signed_in(server, "admin"), signed_in(server, "marketer")
    page = admin.get(f"/console/sources/{source['id']}").text
    quarantine = page.split('id="quarantine"')[1]
    assert "event" in quarantine
    assert "rejected-user" in quarantine
    assert "Nothing rejected" not in quarantine
    hidden = marketer.get(f"/console/sources/{source['id']}").text
    assert source["write_key"] not in hidden
    assert "shown to admins only" in hidden
    assert "rejected-user" not in hidden  # (a short id could occur in a random token)
    assert marketer.form("/console/sources", {"name": "y", "kind": "web"}).status_code == 403
    listing = marketer.get("/console/sources").text
    assert "website" in listing
    assert source["write_key"] not in listing


def test_an_admin_erases_a_person_with_a_receipt_and_the_audit_log_shows_it(server: RunningServer) -> None:
    key = server.create_source("website")["write_key"]
    send(server, key, [{"type": "identify", "userId": "ann", "traits": {"email": "ann@example.com"}}])
    settle(server)
    admin = signed_in(server, "admin")

    exported = admin.form("/console/privacy/export", {"subject": "email:ann@example.com"})
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    assert {(k["type"], k["value"]) for k in exported.json()["identifiers"]} >= {("user_id", "ann")}

    unconfirmed = admin.form("/console/privacy/erase", {"subject": "user_id:ann"})
    assert unconfirmed.status_code == 400
    assert "confirm" in unconfirmed.text
    assert server.runtime.identity.tables.owner(("user_id", "ann")) is not None

    erased = admin.form("/console/privacy/erase", {"subject": "user_id:ann", "confirm": "on"})
    assert erased.status_code == 200
    assert "Erased: receipt rcp_" in erased.text
    assert "a***@example.com" in erased.text
    assert server.runtime.identity.tables.owner(("user_id", "ann")) is None
    page = admin.get("/console/privacy").text
    assert "admin@example.com" in page.split('id="audit"')[1]
    audit = page.split('id="audit"')[1]
    assert audit.index(">erase<") < audit.index(">export<")  # newest first
    assert "<b>email</b> 1" in page.split('id="suppressed"')[1]

    unknown = admin.form("/console/privacy/erase", {"subject": "user_id:nobody", "confirm": "on"})
    assert unknown.status_code == 404
    viewer = signed_in(server, "viewer")
    assert viewer.get("/console/privacy").status_code == 403
    assert viewer.form("/console/privacy/erase", {"subject": "user_id:x", "confirm": "on"}).status_code == 403


def test_the_identity_page_reviews_probabilistic_pairs_side_by_side(make_server: Any) -> None:
    server: RunningServer = make_server()
    keys = {n: server.create_source(n, kind=k)["write_key"] for n, k in (("website", "web"), ("crm", "crm"))}
    people = population(400)
    web, crm = [*people.web, identify("w-border-a", BORDER_A[0])], [*people.crm, identify("c-border-a", BORDER_A[1])]
    for name, events in (("website", web), ("crm", crm)):
        for start in range(0, len(events), 500):
            send(server, keys[name], events[start : start + 500])
    assert post(server, f"{MATCHING}/runs").status_code == 201
    pair = pair_of(reviews(server, "pending"), "c-border-a", "w-border-a")

    analyst, admin = signed_in(server, "analyst"), signed_in(server, "admin")
    masked = analyst.get("/console/identity").text
    assert "Farraday" not in masked  # key traits masked without the PII grant
    assert "Same person: merge" not in masked
    page = admin.get("/console/identity").text
    assert "Farraday" in page
    assert "Faraday" in page
    assert f"/console/identity/reviews/{pair['id']}/accept" in page
    assert "Rules in force" in page
    waiting = len(reviews(server, "pending"))
    card = page.split("Waiting for review")[1].split("</div>")[0]
    assert f">{waiting:,}<" in card  # every pending pair, not the ones shown
    assert "{'" not in page  # an address reads as JSON, not as a Python dict
    assert admin.form(f"/console/identity/reviews/{pair['id']}/nonsense", {}).status_code == 404
    accepted = admin.form(f"/console/identity/reviews/{pair['id']}/accept", {})
    assert accepted.status_code == 303
    assert {p["id"] for p in reviews(server, "accepted")} == {pair["id"]}
    owners = {server.runtime.identity.tables.owner(k) for k in (("user_id", "w-border-a"), ("crm_id", "c-border-a"))}
    assert len(owners) == 1
    assert analyst.form(f"/console/identity/reviews/{pair['id']}/reject", {}).status_code == 403
