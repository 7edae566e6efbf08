"""Erasure and export of a person end to end: receipt, audit, suppression, and nothing left behind."""

from __future__ import annotations

from typing import Any

import duckdb
import httpx

from onefold.store import DB_FILE_NAME, DuckDBStore, pending_erasures
from onefold.store.files import attach
from tests.audiences.test_audiences_api import create
from tests.conftest import RunningServer, start_server, stop_server
from tests.profiles.test_profile_api import profile_get, send, settle, token

ANN: list[dict[str, Any]] = [
    {"type": "identify", "userId": "ann", "anonymousId": "ann-laptop", "traits": {"email": "ann@example.com"}},
    {"type": "track", "userId": "ann", "event": "Order Completed", "properties": {"order_id": "o1", "revenue": 30}},
    {"type": "page", "anonymousId": "ann-laptop", "name": "Home"},
]
BOB: list[dict[str, Any]] = [{"type": "identify", "userId": "bob", "traits": {"email": "bob@example.com"}}]


def post(server: RunningServer, path: str, body: dict[str, Any], auth: Any = None) -> httpx.Response:
    if auth is None:
        with server.admin() as admin:
            return admin.post(path, json=body)
    return httpx.post(server.url + path, json=body, auth=auth, timeout=60)


def message_ids(server: RunningServer) -> set[str]:
    return {e["message_id"] for e in server.events()}


def test_erase_deletes_everything_suppresses_and_leaves_a_receipt(make_server, tmp_path):
    server = make_server(tmp_path / "data")
    key = server.create_source("web")["write_key"]
    send(server, key, ANN + BOB)
    settle(server)
    reader = token(server, "profiles:read")["token"]
    before = len(server.events())

    exporter = token(server, "profiles:export")["token"]
    exported = post(server, "/api/privacy/export", {"identifier": "email:ANN@example.com"}, auth=(exporter, ""))
    assert exported.status_code == 200, exported.text
    data = exported.json()
    assert {(k["type"], k["value"]) for k in data["identifiers"]} == {
        ("user_id", "ann"),
        ("anonymous_id", "ann-laptop"),
        ("email", "ann@example.com"),
    }
    assert len(data["events"]) == 3
    assert data["state"]["traits"]["email"]["value"] == "ann@example.com"
    national = post(server, "/api/privacy/erase", {"identifier": "phone:0612345678"})
    assert national.status_code == 400
    assert national.json()["error"]["details"]["field"] == "identifier"  # the body's field, named as sent
    forbidden = post(server, "/api/privacy/erase", {"identifier": "user_id:ann"}, auth=(exporter, ""))
    assert forbidden.status_code == 403

    erased = post(server, "/api/privacy/erase", {"identifier": "user_id:ann"})
    assert erased.status_code == 200, erased.text
    receipt = erased.json()
    assert receipt["deleted"]["events"] == 3
    assert receipt["deleted"]["identifiers"] == 3
    assert receipt["deleted"]["profile_states"] == 1
    assert receipt["suppressed_identifiers"] == 3
    assert {"type": "email", "value": "a***@example.com"} in receipt["identifiers"]
    assert "ann@example.com" not in erased.text  # the receipt masks what it lists

    assert len(server.events()) == before - 3
    assert profile_get(server, reader, "/user_id:ann/traits").status_code == 404
    assert profile_get(server, reader, "/user_id:bob/traits", include="email").json()["traits"] == {
        "email": "bob@example.com"
    }
    with server.admin() as admin:
        assert admin.get("/api/profiles", params={"q": "ann"}).json()["data"] == []
        assert admin.get(f"/api/privacy/receipts/{receipt['id']}").json()["deleted"] == receipt["deleted"]
        audit = admin.get("/api/privacy/audit").json()["data"]
    assert [(a["action"], a["actor"]) for a in audit][:2] == [("erase", "admin"), ("export", audit[1]["actor"])]
    assert audit[1]["actor"].startswith("token:")

    # Ann's identifiers come back in a new event, from another source too: quarantined, not stored
    crm = server.create_source("crm", kind="crm")["write_key"]
    again = httpx.post(
        server.url + "/v1/batch",
        json={"batch": [{"type": "identify", "userId": "zed", "traits": {"email": "Ann@Example.com"}}, *BOB]},
        auth=(crm, ""),
    )
    assert again.status_code == 200
    rejected = again.json()["rejected"]
    assert [r["code"] for r in rejected] == ["suppressed"]
    assert receipt["id"] in rejected[0]["reason"]
    with server.admin() as admin:
        quarantined = admin.get("/api/quarantine").json()["data"]
    assert [q["code"] for q in quarantined] == ["suppressed"]
    settle(server)
    assert profile_get(server, reader, "/email:ann@example.com/traits").status_code == 404


def test_erasure_survives_a_restart(tmp_path):
    """After a restart the log no longer holds the person: replaying it does not bring them back."""
    data_dir = tmp_path / "data"
    server, uv, thread = start_server(data_dir)
    try:
        key = server.create_source("web")["write_key"]
        send(server, key, ANN + BOB)
        settle(server)
        assert post(server, "/api/privacy/erase", {"identifier": "email:ann@example.com"}).status_code == 200
    finally:
        stop_server(uv, thread, server.runtime)
    server, uv, thread = start_server(data_dir)
    try:
        settle(server)
        with server.admin() as admin:
            gone = admin.get("/api/identity/lookup", params={"identifier": "user_id:ann"})
            assert gone.status_code == 404
            assert admin.get("/api/identity/lookup", params={"identifier": "user_id:bob"}).status_code == 200
        refused = httpx.post(server.url + "/v1/track", json={"userId": "ann", "event": "Back"}, auth=(key, ""))
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "suppressed"
    finally:
        stop_server(uv, thread, server.runtime)


def test_an_erasure_cut_short_after_the_main_file_is_finished_at_the_next_start(tmp_path):
    """One transaction writes one DuckDB file: the main file's rows go first, with a note of what the log and the
    audiences' file still hold of the person. A crash right after leaves the note; the next start finishes it,
    and finishing again records the person's exits once."""
    data_dir = tmp_path / "data"
    server, uv, thread = start_server(data_dir)
    try:
        key = server.create_source("web")["write_key"]
        with server.admin() as admin:
            create(admin, "/api/audiences", "buyers", {"event": "Order Completed"})
        send(server, key, [*ANN, *BOB])
        # refused (userId is a list) and quarantined, with Ann's e-mail in its payload
        httpx.post(server.url + "/v1/identify", json={"userId": ["ann@example.com"]}, auth=(key, ""))
        settle(server)
        assert server.runtime.audiences.wait_idle()
        with server.admin() as admin:
            ann = admin.get("/api/identity/lookup", params={"identifier": "user_id:ann"}).json()["profile_id"]
            assert [m["profile_id"] for m in admin.get("/api/audiences/buyers/members").json()["data"]] == [ann]
    finally:
        stop_server(uv, thread, server.runtime)

    def held(cur: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
        """Ann's events, quarantined payloads, memberships, and audience history (a cursor answers one query)."""
        counts = [
            cur.execute(sql, params).fetchall()[0][0]
            for sql, params in (
                ("SELECT count(*) FROM events WHERE user_id = 'ann' OR anonymous_id = 'ann-laptop'", []),
                ("SELECT count(*) FROM quarantine WHERE contains(payload, 'ann@example.com')", []),
                ("SELECT count(*) FROM audience_members WHERE profile_id = ?", [ann]),
            )
        ]
        changes = cur.execute("SELECT change, reason FROM audience_changes WHERE profile_id = ? ORDER BY id", [ann])
        return (*counts, changes.fetchall())

    with duckdb.connect(str(data_dir / DB_FILE_NAME)) as main_file:  # the main file's transaction, then a crash
        attach(main_file, data_dir)
        timeline = main_file.execute("SELECT seq FROM event_profiles WHERE profile_id = ?", [ann]).fetchall()
        buyers = main_file.execute("SELECT id FROM audiences").fetchall()[0][0]
        entered = held(main_file)
        assert entered[:3] == (3, 1, 1)
        assert [change for change, _ in entered[3]] == ["entered"]
        values = ["ann", "ann-laptop", "ann@example.com"]
        note = pending_erasures.note("r-cut", ann, [r[0] for r in timeline], values, [buyers])
        main_file.execute(note)

    store = DuckDBStore.open(data_dir)  # the next start
    try:
        cur = store.cursor()
        exit_ = ("exited", pending_erasures.ERASED_REASON.format(receipt="r-cut"))
        assert held(cur) == (0, 0, 0, [exit_])
        assert cur.execute("SELECT count(*) FROM pending_erasures").fetchone() == (0,)
        assert cur.execute("SELECT count(*) FROM events WHERE user_id = 'bob'").fetchone() == (1,)
        cur.execute(note)  # a crash after the other files' transactions, before the note went: finished again
        pending_erasures.finish(cur)
        assert held(cur) == (0, 0, 0, [exit_])
    finally:
        store.close()


def test_operations_and_quarantined_payloads_naming_the_person_are_exported_then_redacted_or_deleted(tmp_path):
    running, server, thread = start_server(tmp_path / "data")
    try:
        key = running.create_source("web")["write_key"]
        send(running, key, ANN + BOB)
        bad = {"type": "identify", "userId": "ann", "traits": {"email_subscription_status": "maybe"}}
        assert httpx.post(running.url + "/v1/batch", json={"batch": [bad]}, auth=(key, "")).json()["rejected"]
        settle(running)
        with running.admin() as admin:
            ann = admin.get("/api/identity/lookup", params={"identifier": "user_id:ann"}).json()["profile_id"]
            bob = admin.get("/api/identity/lookup", params={"identifier": "user_id:bob"}).json()["profile_id"]
            apart = {"kind": "exclude_link", "a": "email:ann@example.com", "b": "email:bob@example.com"}
            assert admin.post("/api/identity/operations", json=apart).status_code == 201
            merge = {"kind": "merge_profiles", "a": ann, "b": bob}
            assert admin.post("/api/identity/operations", json=merge).status_code == 409  # recorded, refused

        data = post(running, "/api/privacy/export", {"identifier": "user_id:ann"}).json()
        assert [op["kind"] for op in data["evidence"]["operations"]] == ["exclude_link", "merge_profiles"]
        assert [q["code"] for q in data["quarantined"]] == ["invalid_field"]

        receipt = post(running, "/api/privacy/erase", {"identifier": "user_id:ann"}).json()
        assert receipt["deleted"]["quarantined_payloads"] == 1
        assert receipt["redacted"] == {"identity_operations": 1}
        with running.admin() as admin:
            kept = admin.get("/api/identity/operations").text + admin.get("/api/identity/changes").text
        assert "ann@example.com" not in kept
        assert "bob@example.com" in kept  # Bob was not erased
        alias = {"type": "alias", "previousId": "ann", "userId": "ann-2"}  # the erased user id, as an alias names it
        rejected = httpx.post(running.url + "/v1/batch", json={"batch": [alias]}, auth=(key, "")).json()["rejected"]
        assert [r["code"] for r in rejected] == ["suppressed"]
    finally:
        stop_server(server, thread, running.runtime)
    running, server, thread = start_server(tmp_path / "data")  # the redacted operations replay
    try:
        with running.admin() as admin:
            assert admin.get("/api/identity/lookup", params={"identifier": "user_id:bob"}).json()["profile_id"] == bob
            assert admin.get("/api/identity/lookup", params={"identifier": "user_id:ann"}).status_code == 404
    finally:
        stop_server(server, thread, running.runtime)
