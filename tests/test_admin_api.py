"""Admin API edges: authentication, validation errors and pagination against a real server."""

from __future__ import annotations

import httpx

from tests.conftest import ADMIN_TOKEN


def test_admin_routes_need_the_bearer_token(server):
    assert httpx.get(server.url + "/api/stats").status_code == 401
    wrong = httpx.get(server.url + "/api/stats", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert "wrong" in wrong.json()["error"]["message"]
    ok = httpx.get(server.url + "/api/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200


def test_body_that_is_not_json_gets_a_422_naming_the_fix(server):
    with server.admin() as admin:
        response = admin.post(
            "/api/sources", content=b"name=x&kind=web", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    assert response.status_code == 422
    assert "Content-Type: application/json" in response.json()["error"]["message"]


def test_invalid_fields_are_named(server):
    with server.admin() as admin:
        missing = admin.post("/api/sources", json={"kind": "web"})
        bad_region = admin.post("/api/sources", json={"name": "a", "kind": "web", "default_region": "ZZ"})
        bad_rotation = admin.post("/api/sources/a/rotate-key", json={"grace_seconds": -1})
        duplicate_name = [admin.post("/api/sources", json={"name": "dup", "kind": "web"}) for _ in range(2)]
    assert missing.status_code == 422
    assert missing.json()["error"]["message"].startswith("field 'name'")
    assert bad_region.status_code == 400
    assert bad_region.json()["error"]["details"]["field"] == "default_region"
    assert bad_rotation.status_code == 422
    assert "grace_seconds" in bad_rotation.json()["error"]["message"]
    assert duplicate_name[1].status_code == 409


def test_unknown_source_is_404(server):
    with server.admin() as admin:
        response = admin.post("/api/sources/nope/disable")
    assert response.status_code == 404
    assert "GET /api/sources" in response.json()["error"]["message"]


def test_events_are_paginated_and_filtered(server, source):
    batch = {"batch": [{"type": "track", "userId": f"u{i % 2}", "event": "e", "messageId": f"m{i}"} for i in range(7)]}
    httpx.post(server.url + "/v1/batch", json=batch, auth=(source["write_key"], "")).raise_for_status()
    seen: list[str] = []
    after = 0
    with server.admin() as admin:
        while True:
            page = admin.get("/api/events", params={"limit": 3, "after": after}).json()
            seen += [e["message_id"] for e in page["data"]]
            if page["next"] is None:
                break
            after = int(page["next"])
        only_u1 = admin.get("/api/events", params={"user_id": "u1", "source": "website"}).json()["data"]
    assert seen == [f"m{i}" for i in range(7)]
    assert [e["message_id"] for e in only_u1] == ["m1", "m3", "m5"]


def test_openapi_documents_the_admin_api(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    assert "/api/sources" in spec["paths"]
    assert "/api/events" in spec["paths"]
    assert "/v1/batch" in spec["paths"]
