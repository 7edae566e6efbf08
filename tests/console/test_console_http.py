"""The console over HTTP on a real server: sign-in, sessions, CSRF, roles on pages and the API, masking."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from markupsafe import escape

from tests.conftest import RunningServer
from tests.console.conftest import PASSWORD, SignedIn, add_user
from tests.profiles.test_profile_api import send, settle

PEOPLE: list[dict[str, Any]] = [
    {
        "type": "identify",
        "userId": "ann",
        "anonymousId": "ann-laptop",
        "traits": {"email": "ann.lee@example.com", "phone": "+1 415 555 0101", "first_name": "Ann", "plan": "pro"},
    },
    {
        "type": "track",
        "userId": "ann",
        "event": "Order Completed",
        "properties": {"order_id": "o1", "revenue": 30, "receipt_email": "ann.lee@example.com"},
    },
    {"type": "page", "anonymousId": "ann-laptop", "name": "Home"},
    {"type": "identify", "userId": "bob", "traits": {"email": "bob@example.com", "first_name": "Bob"}},
]


@pytest.fixture
def loaded(server: RunningServer) -> RunningServer:
    send(server, server.create_source("website")["write_key"], PEOPLE)
    settle(server)
    return server


def sign_in_as(server: RunningServer, role: str, pii: bool = False) -> SignedIn:
    email = f"{role}{'-pii' if pii else ''}@example.com"
    add_user(server, email, role, pii)
    return SignedIn(server, email)


def profile_id(server: RunningServer, user_id: str) -> str:
    owner = server.runtime.identity.tables.owner(("user_id", user_id))
    assert owner is not None
    return owner


def test_pages_need_a_session_and_come_back_after_sign_in(server: RunningServer) -> None:
    add_user(server, "ann@example.com", "viewer")
    client = httpx.Client(base_url=server.url, timeout=30)
    response = client.get("/console/audiences")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?next=/console/audiences"

    wrong = client.post("/console/sign-in", data={"email": "ann@example.com", "password": "not the password"})
    assert wrong.status_code == 401
    assert "the email or the password is wrong" in wrong.text
    assert "onefold_session" not in client.cookies

    right = client.post(
        "/console/sign-in", data={"email": "ann@example.com", "password": PASSWORD, "next": "/console/audiences"}
    )
    assert right.status_code == 303
    assert right.headers["location"] == "/console/audiences"
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    page = client.get("/console/audiences")
    assert page.status_code == 200
    assert "ann@example.com" in page.text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "javascript:alert(1)"])
def test_sign_in_never_sends_the_user_to_another_site(server: RunningServer, target: str) -> None:
    add_user(server, "ann@example.com", "viewer")
    response = httpx.post(
        server.url + "/console/sign-in", data={"email": "ann@example.com", "password": PASSWORD, "next": target}
    )
    assert response.headers["location"] == "/console"


def test_sign_out_ends_the_session(server: RunningServer) -> None:
    viewer = sign_in_as(server, "viewer")
    assert viewer.form("/console/sign-out", {}).status_code == 303
    assert viewer.get("/console").status_code == 303  # back to sign-in
    assert viewer.api("GET", "/api/stats").status_code == 401


def test_forms_without_the_csrf_token_are_refused(server: RunningServer) -> None:
    admin = sign_in_as(server, "admin")
    forged = admin.client.post(
        "/console/users", data={"email": "eve@example.com", "password": PASSWORD, "role": "admin"}
    )
    assert forged.status_code == 403
    assert "Form expired" in forged.text
    assert server.runtime.users.by_email("eve@example.com") is None
    made = admin.form("/console/users", {"email": "eve@example.com", "password": PASSWORD, "role": "viewer"})
    assert made.status_code == 303
    assert server.runtime.users.by_email("eve@example.com") is not None


def test_the_api_takes_a_session_limited_by_its_role_and_csrf(loaded: RunningServer) -> None:
    viewer, marketer = sign_in_as(loaded, "viewer"), sign_in_as(loaded, "marketer")
    assert viewer.api("GET", "/api/stats").json()["events_stored"] == len(PEOPLE)
    refused = viewer.api("GET", "/api/sources")
    assert refused.status_code == 403
    assert "the role 'viewer'" in refused.json()["error"]["message"]  # a viewer never sees a write key
    assert viewer.get("/api/profiles", q="ann").status_code == 403  # identifiers in clear

    definition = {"definition": {"trait": "plan", "op": "equals", "value": "pro"}}
    no_csrf = marketer.api("POST", "/api/audiences/preview", definition, csrf=False)
    assert no_csrf.status_code == 403
    assert no_csrf.json()["error"]["code"] == "csrf_failed"
    assert marketer.api("POST", "/api/audiences/preview", definition).json()["count"] == 1
    assert viewer.api("POST", "/api/audiences/preview", definition).status_code == 403
    assert marketer.api("POST", "/api/sources", {"name": "x", "kind": "web"}).status_code == 403


def test_privacy_and_users_are_for_admins_only(loaded: RunningServer) -> None:
    viewer = sign_in_as(loaded, "viewer")
    erase = viewer.api("POST", "/api/privacy/erase", {"identifier": "user_id:ann"})
    assert erase.status_code == 401  # privacy takes the admin token or a scoped access token, never a session
    assert viewer.get("/console/users").status_code == 403
    assert "Users" not in viewer.get("/console").text.split("<main")[0]  # not in the navigation either
    assert loaded.runtime.identity.tables.owner(("user_id", "ann")) is not None


def test_an_analyst_without_the_grant_sees_masked_personal_data(loaded: RunningServer) -> None:
    ann = profile_id(loaded, "ann")
    analyst, granted = sign_in_as(loaded, "analyst"), sign_in_as(loaded, "analyst", pii=True)

    found = analyst.get("/console/profiles", q="ann")
    assert "a***@example.com" in found.text
    assert "ann.lee@example.com" not in found.text
    page = analyst.get(f"/console/profiles/{ann}").text
    assert "ann.lee@example.com" not in page
    assert "a***@example.com" in page
    assert "+14155550101" not in page
    assert "01" in page
    assert "Split off" not in page  # identity actions are for admins
    clear = granted.get(f"/console/profiles/{ann}").text
    assert "ann.lee@example.com" in clear
    assert "+14155550101" in clear
    # search cannot spell out what the pages mask: without the grant it reads ids, never e-mails or phones
    assert "/console/profiles/" + ann in granted.get("/console/profiles", q="+1415").text
    for probe in ("+1415", "ann.l"):
        assert "/console/profiles/" + ann not in analyst.get("/console/profiles", q=probe).text
    assert "/console/profiles/" + ann in analyst.get("/console/profiles", q="ann-lap").text


def test_the_360_view_shows_identities_traits_and_timeline(loaded: RunningServer) -> None:
    admin = sign_in_as(loaded, "admin")
    page = admin.get(f"/console/profiles/{profile_id(loaded, 'ann')}").text
    assert "<h1>Ann</h1>" in page
    for text in ("anonymous_id", "ann-laptop", "Linked by a", "website", "plan", "pro", "Order Completed", "Home"):
        assert text in page, text
    filtered = admin.get(f"/console/profiles/{profile_id(loaded, 'ann')}", event="Order Completed").text
    timeline = filtered.split('id="timeline"')[1]
    assert "Order Completed" in timeline
    assert ">Home<" not in timeline

    shop = loaded.create_source("shop", "ecommerce")
    send(loaded, shop["write_key"], [{"type": "track", "userId": "ann", "event": "Cart Viewed"}])
    settle(loaded)
    by_source = admin.get(f"/console/profiles/{profile_id(loaded, 'ann')}", source=shop["id"]).text
    rows = by_source.split('id="timeline"')[1].split("<tbody>")[1].split("</tbody>")[0]
    assert rows.count("<tr>") == 1
    assert "Cart Viewed" in rows
    assert f'name="source" value="{shop["id"]}" checked' in by_source
    # the filter offers pages as "Page Viewed" (as audiences name them), and finds them by that name
    assert 'name="event" value="Page Viewed"' in page
    pages = admin.get(f"/console/profiles/{profile_id(loaded, 'ann')}", event="Page Viewed").text
    assert ">Home<" in pages.split('id="timeline"')[1]
    # past a page of 50, older events are a link away, with the filter kept
    send(loaded, shop["write_key"], [{"type": "track", "userId": "ann", "event": f"Step {i}"} for i in range(55)])
    settle(loaded)
    first = admin.get(f"/console/profiles/{profile_id(loaded, 'ann')}").text
    link = first.split('id="timeline"')[1].split("Older events")[0].rsplit('href="?', 1)[1].split('"')[0]
    query = dict(part.split("=") for part in link.split("#")[0].replace("&amp;", "&").split("&"))
    older = admin.get(f"/console/profiles/{profile_id(loaded, 'ann')}", **query).text
    older_rows = older.split('id="timeline"')[1].split("<tbody>")[1].split("</tbody>")[0]
    assert "Step 4<" in older_rows
    assert "Step 54<" not in older_rows
    assert ">Home<" in older_rows


def test_the_360_view_explains_why_two_identifiers_are_one_profile(loaded: RunningServer) -> None:
    ann = profile_id(loaded, "ann")
    analyst = sign_in_as(loaded, "analyst")
    page = analyst.get(f"/console/profiles/{ann}").text
    picker = page.split('name="why_a"')[1].split("</select>")[0]
    options = dict(re.findall(r'<option value="(\d+)"[^>]*>(\w+) ', picker))
    laptop = next(n for n, kind in options.items() if kind == "anonymous_id")
    email = next(n for n, kind in options.items() if kind == "email")
    assert "ann.lee@example.com" not in page  # no value travels in the form: rows are picked by number
    assert 'id="why"' not in page
    explained = analyst.get(f"/console/profiles/{ann}", why_a=laptop, why_b=email).text
    chain = explained.split('id="why"')[1].split("</div>")[0]
    assert chain.count("<li>") == 1  # Ann's first identify carried both
    assert "An <b>identify</b> from <b>website</b>" in chain
    assert "<b>email</b> a***@example.com" in chain  # masked for this analyst
    assert "ann.lee@example.com" not in chain
    nonsense = analyst.get(f"/console/profiles/{ann}", why_a="0", why_b="99")
    assert nonsense.status_code == 200
    assert 'id="why"' not in nonsense.text


def test_an_admin_splits_an_identifier_off_from_the_360_view(loaded: RunningServer) -> None:
    admin = sign_in_as(loaded, "admin")
    ann = profile_id(loaded, "ann")
    response = admin.form(
        f"/console/profiles/{ann}/identity", {"kind": "exclude_identifier", "identifier": "anonymous_id:ann-laptop"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/profiles/{ann}?done=exclude_identifier"
    tables = loaded.runtime.identity.tables
    assert tables.owner(("user_id", "ann")) == ann
    assert ("anonymous_id", "ann-laptop") not in {(k["type"], k["value"]) for k in tables.profile_keys(ann)}
    page = admin.get(f"/console/profiles/{ann}", done="exclude_identifier").text
    assert "Done: exclude identifier" in page
    assert "<b>anonymous_id</b> ann-laptop (not in this profile)" in page
    actions = [a["action"] for a in loaded.runtime.store.dicts("SELECT action, actor FROM audit_log", [])]
    assert "identity.exclude_identifier" in actions
    operations = tables.operations()
    assert operations[-1]["actor"] == "admin@example.com"
    unknown = admin.form(f"/console/profiles/{ann}/identity", {"kind": "explode", "identifier": "user_id:ann"})
    assert unknown.status_code == 400
    assert "exclude_identifier" in unknown.text  # what is allowed
    assert admin.form(f"/console/profiles/{ann}/identity", {}).status_code == 400
    nobody = admin.form("/console/profiles/prof_9/identity", {"kind": "exclude_identifier", "identifier": "user_id:x"})
    assert nobody.status_code == 404
    assert len(tables.operations()) == len(operations)  # nothing ran

    marketer = sign_in_as(loaded, "marketer")
    refused = marketer.form(f"/console/profiles/{ann}/identity", {"kind": "exclude_identifier", "identifier": "x:y"})
    assert refused.status_code == 403


def test_overview_numbers_follow_the_store(loaded: RunningServer) -> None:
    viewer = sign_in_as(loaded, "viewer")
    data = viewer.get("/console/overview.json").json()
    assert data["numbers"]["events"] == len(PEOPLE)
    assert data["numbers"]["profiles"] == 2
    assert "<svg" in data["charts"]["events_by_source"]
    assert "website" in data["charts"]["events_by_source"]
    send(loaded, loaded.create_source("app", "mobile")["write_key"], [{"type": "track", "userId": "cy", "event": "X"}])
    settle(loaded)
    assert viewer.get("/console/overview.json").json()["numbers"]["events"] == len(PEOPLE) + 1


def test_audience_pages_show_size_history_and_members(loaded: RunningServer) -> None:
    marketer = sign_in_as(loaded, "marketer")
    created = marketer.api(
        "POST", "/api/audiences", {"name": "pro_plan", "definition": {"trait": "plan", "op": "equals", "value": "pro"}}
    )
    assert created.status_code == 201, created.text
    listing = marketer.get("/console/audiences").text
    assert "pro_plan" in listing
    assert "<svg" in listing
    detail = marketer.get("/console/audiences/pro_plan").text
    assert "ann.lee@example.com" in detail
    assert "entered" in detail
    assert "<circle" in detail  # one day of membership is a dot, not an empty frame
    assert f">{profile_id(loaded, 'ann')}</a>" in detail  # the whole profile id
    for dialect in ("postgres", "spark", "duckdb"):  # the audience as SQL, as the API gives it
        answer = marketer.get("/api/audiences/pro_plan/sql", dialect=dialect).json()
        assert str(escape(answer["sql"])) in detail
    viewer = sign_in_as(loaded, "viewer")
    masked = viewer.get("/console/audiences/pro_plan").text
    assert "ann.lee@example.com" not in masked
    assert "a***@example.com" in masked
    assert viewer.get("/console/audiences/new").status_code == 403
    assert marketer.get("/console/audiences/nope").status_code == 404


def test_users_page_changes_roles_and_refuses_to_lock_out_the_last_admin(server: RunningServer) -> None:
    admin = sign_in_as(server, "admin")
    add_user(server, "bo@example.com", "viewer")
    bo = server.runtime.users.by_email("bo@example.com")
    assert bo is not None
    assert admin.form(f"/console/users/{bo.id}", {"role": "analyst", "pii_grant": "on"}).status_code == 303
    changed = server.runtime.users.get(bo.id)
    assert (changed.role, changed.pii_grant) == ("analyst", True)
    bo_client = SignedIn(server, "bo@example.com")
    new_password = "a brand new passphrase"
    assert admin.form(f"/console/users/{bo.id}", {"role": "analyst", "password": new_password}).status_code == 303
    assert bo_client.get("/console").status_code == 303  # the new password ended bo's session
    assert SignedIn(server, "bo@example.com", new_password).get("/console").status_code == 200
    weak = admin.form(f"/console/users/{bo.id}", {"role": "analyst", "password": "short"})
    assert weak.status_code == 400
    assert "at least 12 characters" in weak.text
    me = server.runtime.users.by_email("admin@example.com")
    assert me is not None
    refused = admin.form(f"/console/users/{me.id}", {"role": "viewer"})
    assert refused.status_code == 400
    assert "your own admin role" in refused.text
    short = admin.form("/console/users", {"email": "cy@example.com", "password": "short", "role": "viewer"})
    assert short.status_code == 400
    assert "at least 12 characters" in short.text


def test_a_profiles_links_read_at_once_equal_each_identifiers_link(loaded: RunningServer) -> None:
    tables = loaded.runtime.identity.tables
    ann = profile_id(loaded, "ann")
    links = tables.links_of_profile(ann)
    keys = [(k["type"], k["value"]) for k in tables.profile_keys(ann)]
    assert len(keys) >= 3
    assert set(links) == set(keys)
    for key in keys:
        single = tables.link_of(key)
        assert single is not None
        assert links[key] == single


def test_every_change_through_the_admin_api_is_audited_with_its_sender(loaded: RunningServer) -> None:
    marketer, viewer = sign_in_as(loaded, "marketer"), sign_in_as(loaded, "viewer")
    definition = {"trait": "plan", "op": "equals", "value": "pro"}
    assert marketer.api("POST", "/api/audiences/preview", {"definition": definition}).status_code == 200
    assert marketer.api("POST", "/api/audiences", {"name": "pros", "definition": definition}).status_code == 201
    assert viewer.api("DELETE", "/api/audiences/pros").status_code == 403
    assert httpx.post(loaded.url + "/api/sources", json={"name": "x", "kind": "web"}).status_code == 401
    loaded.create_source("crm", "crm")
    rows = loaded.runtime.store.dicts("SELECT actor, action, subject, details FROM audit_log ORDER BY id", [])
    entries = [(r["actor"], r["action"], r["subject"], json.loads(r["details"])["status"]) for r in rows]
    assert entries[-3:] == [
        ("marketer@example.com", "api POST", "/api/audiences", 201),
        ("viewer@example.com", "api DELETE", "/api/audiences/pros", 403),
        ("admin", "api POST", "/api/sources", 201),
    ]
    assert not any(subject == "/api/audiences/preview" for _, _, subject, _ in entries)


def test_a_marketer_creates_a_computed_trait_from_the_audiences_page(loaded: RunningServer) -> None:
    marketer = sign_in_as(loaded, "marketer")
    made = marketer.form(
        "/console/computed-traits",
        {"name": "spend_30d", "kind": "max", "event": "Order Completed", "property": "revenue", "within_days": "30"},
    )
    assert made.status_code == 303
    assert "computed+trait+spend_30d+created+(1+profiles)" in made.headers["location"]  # bob has no order: null
    row = loaded.runtime.audiences.service.tables.get("computed_trait", "spend_30d")
    assert row["definition"] == {"kind": "max", "event": "Order Completed", "property": "revenue", "within_days": 30}
    page = marketer.get(f"/console/profiles/{profile_id(loaded, 'ann')}").text
    assert "spend_30d" in page
    bad = marketer.form("/console/computed-traits", {"name": "x", "kind": "count", "event": "E", "within_days": "-3"})
    assert bad.status_code == 400
    assert "$.within_days" in bad.text
    for name, status in (("orders_count", 409), ("", 400), ("bad/name", 400)):  # as the API refuses them
        refused = marketer.form("/console/computed-traits", {"name": name, "kind": "count", "event": "E"})
        assert refused.status_code == status, (name, refused.status_code)
    assert [t["name"] for t in loaded.runtime.audiences.service.tables.all("computed_trait")] == ["spend_30d"]
    viewer = sign_in_as(loaded, "viewer")
    assert "New computed trait" not in viewer.get("/console/audiences").text
    assert viewer.form("/console/computed-traits", {"name": "y", "kind": "count", "event": "E"}).status_code == 403
