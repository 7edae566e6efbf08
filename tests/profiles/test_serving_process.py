"""The Profile API's serving process (``profile_api_port``): a second OS process answering from a copy of the
published states and cards, kept in step by the server; what it cannot answer goes to the server."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx
import pytest

from onefold.audiences.saved_values import SavedValues
from onefold.errors import Unauthorized
from onefold.governance.access_tokens import AccessToken, AccessTokens, ActiveTokens
from onefold.governance.tokens import AdminToken, hash_token
from onefold.profiles.cache import CommittedStates
from onefold.profiles.cards import Card
from onefold.profiles.replica import ProfileReplica, Published, TokensChanged
from onefold.profiles.serving_process import ProfileServing, ServingOptions
from onefold.store import DuckDBStore
from tests.conftest import RunningServer, free_port, spawn_server, wait_until

BASE = "/v1/spaces/default/collections/users/profiles"
PATHS = {"/traits": {"limit": 200}, "/events": {}, "/external_ids": {}, "/metadata": {}}


# --- the replica, pure -----------------------------------------------------------------------------------------
def card(*keys: tuple[str, str]) -> Card:
    return Card.of(1, (), {key: (n, b"{}") for n, key in enumerate(keys)})


def test_an_identifier_resolves_to_the_profile_whose_newest_card_lists_it():
    replica = ProfileReplica(100, 1 << 20)
    replica.apply(Published([("p1", "{}", card(("user_id", "u1"), ("email", "a@x")))], ()))
    assert replica.resolve(("email", "a@x")) == "p1"
    # a split moves the e-mail to a new profile: whichever of the two is applied first, the index follows
    replica.apply(Published([("p2", "{}", card(("email", "a@x"))), ("p1", "{}", card(("user_id", "u1")))], ()))
    assert replica.resolve(("email", "a@x")) == "p2"
    assert replica.resolve(("user_id", "u1")) == "p1"
    # published without a complete card: its identifiers are no longer known here
    replica.apply(Published([("p1", "{}", Card.of(3, (), None))], ()))
    assert replica.resolve(("user_id", "u1")) is None
    # merged away (or erased): gone
    replica.apply(Published([], ["p2"]))
    assert replica.resolve(("email", "a@x")) is None
    assert replica.committed.get("p2") is None


def test_the_index_forgets_profiles_the_bounded_copy_evicted():
    replica = ProfileReplica(10, 1 << 20)
    for n in range(100):
        replica.apply(Published([(f"p{n}", "{}", card(("user_id", f"u{n}")))], ()))
    assert replica.resolve(("user_id", "u99")) == "p99"
    assert replica.resolve(("user_id", "u0")) is None  # evicted: the server answers
    assert len(replica._listed) <= 20


def test_tokens_are_replaced_as_a_whole():
    replica = ProfileReplica(10, 1 << 20)
    token = AccessToken("tok_1", "site", ("profiles:read",), datetime.now(UTC), None)
    replica.apply(TokensChanged(ActiveTokens({hash_token("secret"): token})))
    assert replica.tokens.authorize("secret", "profiles:read") == token
    replica.apply(TokensChanged(ActiveTokens({})))
    with pytest.raises(Unauthorized, match="unknown or revoked"):
        replica.tokens.authorize("secret", "profiles:read")


# --- end to end ------------------------------------------------------------------------------------------------
def running_process(serving: ProfileServing | None) -> BaseProcess:
    assert serving is not None
    assert serving.process is not None
    assert serving.process.is_alive()
    return serving.process


def get(url: str, secret: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(url + BASE + path, params=params, auth=(secret, ""), timeout=30)


def answer(url: str, secret: str, path: str, **params: Any) -> tuple[int, Any]:
    response = get(url, secret, path, **params)
    return response.status_code, response.json()


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def served(port: int) -> str:
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: healthy(url))
    return url


def load_people(server: RunningServer) -> str:
    source = server.create_source("website")
    batch: list[dict[str, Any]] = []
    for n in range(3):
        batch += [
            {"type": "page", "anonymousId": f"anon-{n}", "name": "Home"},
            {"type": "identify", "anonymousId": f"anon-{n}", "userId": f"u{n}", "traits": {"email": f"p{n}@x.io"}},
            {"type": "track", "userId": f"u{n}", "event": "Product Viewed", "properties": {"sku": f"s{n}"}},
            {"type": "identify", "anonymousId": f"tablet-{n}", "userId": f"u{n}", "traits": {"plan": "pro"}},
        ]
    response = httpx.post(server.url + "/v1/batch", json={"batch": batch}, auth=(source["write_key"], ""))
    assert response.status_code == 200, response.text
    with server.admin() as admin:
        assert admin.get("/api/identity/stats").status_code == 200  # waits until every event is folded
        created = admin.post("/api/tokens", json={"name": "site", "scopes": ["profiles:read"]})
    return str(created.json()["token"])


def same_answers(main: str, copy: str, secret: str, identifiers: list[str]) -> dict[tuple[str, str], Any]:
    answers = {}
    for identifier in identifiers:
        for path, params in PATHS.items():
            ours = answer(copy, secret, f"/{identifier}{path}", **params)
            theirs = answer(main, secret, f"/{identifier}{path}", **params)
            if ours != theirs:
                return {}
            answers[(identifier, path)] = ours
    return answers


@pytest.fixture
def with_copy(make_server: Any) -> tuple[RunningServer, str, str]:
    """A server with a serving process, three people loaded, and a token that reads them."""
    port = free_port()
    server = make_server(profile_api_port=port)
    copy = served(port)
    secret = load_people(server)
    wait_until(lambda: same_answers(server.url, copy, secret, ["user_id:u0"]))
    return server, copy, secret


def test_the_serving_process_answers_from_memory_as_the_server_would(with_copy):
    server, copy, secret = with_copy
    identifiers = ["user_id:u0", "email:p1@x.io", "anonymous_id:tablet-2", "anonymous_id:anon-0"]
    answers = wait_until(lambda: same_answers(server.url, copy, secret, identifiers))
    assert answers[("user_id:u0", "/traits")][1]["traits"]["plan"] == "pro"
    assert len(answers[("email:p1@x.io", "/external_ids")][1]["data"]) == 4  # two devices, user id, e-mail
    events = answers[("anonymous_id:anon-0", "/events")][1]["data"]
    assert [e["type"] for e in events] == ["identify", "track", "identify", "page"]  # newest first

    for identifier, path in answers:  # answered from memory: not forwarded
        assert "via" not in get(copy, secret, f"/{identifier}{path}", **PATHS[path]).headers
    forwarded = get(copy, secret, "/user_id:u0/links")
    assert forwarded.status_code == 200
    assert forwarded.headers["via"] == "1.1 onefold-profile-api"
    status, body = answer(copy, "not-a-token", "/user_id:u0/traits")
    assert status == 401
    assert body["error"]["code"] == "authentication_error"
    elsewhere = httpx.get(copy + "/v1/batch", timeout=30)
    assert elsewhere.status_code == 404
    assert f"are at {server.url}" in elsewhere.json()["error"]["message"]

    process = running_process(server.runtime.profile_serving)
    server.runtime.close()  # stopping the server stops its serving process
    wait_until(lambda: not process.is_alive(), timeout=20)


def test_forwarded_requests_revocations_and_erasures_answer_as_the_server_does(with_copy):
    server, copy, secret = with_copy
    for path, params in (
        ("/user_id:u1/traits", {"class": "audience"}),  # saved audiences: a query, so the server's
        ("/user_id:u1/links", {}),
        ("/user_id:nobody/traits", {}),  # known to no card: the server says why
        ("/profile_id:nope/metadata", {}),
        ("/user_id:u1/traits", {"limit": "0"}),  # a bad parameter: refused here, as the server does
    ):
        assert answer(copy, secret, path, **params) == answer(server.url, secret, path, **params), path

    with server.admin() as admin:
        erased = admin.post("/api/privacy/erase", json={"identifier": "user_id:u1", "reason": "request"})
        assert erased.status_code == 200, erased.text
        tokens = admin.get("/api/tokens").json()["data"]
        assert admin.delete(f"/api/tokens/{tokens[0]['id']}").status_code == 200
    wait_until(lambda: answer(copy, secret, "/user_id:u2/traits")[0] == 401)
    assert answer(copy, secret, "/user_id:u2/traits") == answer(server.url, secret, "/user_id:u2/traits")
    with server.admin() as admin:
        fresh = admin.post("/api/tokens", json={"name": "again", "scopes": ["profiles:read"]}).json()["token"]
    wait_until(lambda: answer(copy, fresh, "/user_id:u2/traits")[0] == 200)
    status, body = answer(copy, fresh, "/email:p1@x.io/traits")
    assert status == 404, body
    assert (status, body) == answer(server.url, fresh, "/email:p1@x.io/traits")


def test_saved_audiences_and_computed_traits_are_answered_from_memory_once_a_round_evaluated_them(with_copy):
    server, copy, secret = with_copy
    assert server.runtime.audiences.wait_idle()  # no round of the people loaded is still to come
    with server.admin() as admin:
        for path, name, definition in (
            ("/api/audiences", "viewers", {"event": "Product Viewed"}),
            ("/api/computed-traits", "views", {"kind": "count", "event": "Product Viewed"}),
        ):
            created = admin.post(path, json={"name": name, "definition": definition})
            assert created.status_code == 201, created.text
    # creating them evaluated every profile, which empties the values in memory: the server answers
    for trait_class in ("audience", "computed_trait"):
        params = {"class": trait_class, "limit": 200}
        forwarded = get(copy, secret, "/user_id:u0/traits", **params)
        assert forwarded.headers["via"] == "1.1 onefold-profile-api"
        assert forwarded.json() == answer(server.url, secret, "/user_id:u0/traits", **params)[1]
    assert get(copy, secret, "/user_id:u0/traits", **{"class": "audience"}).json()["traits"] == {"viewers": True}

    source = server.create_source("app")
    batch = [
        {"type": "track", "userId": "u0", "event": "Product Viewed", "properties": {"sku": "s9"}},
        {"type": "track", "userId": "u9", "event": "Product Viewed", "properties": {"sku": "s9"}},  # a new person
    ]
    posted = httpx.post(server.url + "/v1/batch", json={"batch": batch}, auth=(source["write_key"], ""))
    assert posted.status_code == 200, posted.text

    def from_memory(identifier: str) -> dict[str, Any]:
        response = get(copy, secret, f"/{identifier}/traits", **{"class": "computed_trait", "include": "views"})
        return {} if response.status_code != 200 or "via" in response.headers else response.json()["traits"]

    assert wait_until(lambda: from_memory("user_id:u0") == {"views": 2})
    assert wait_until(lambda: from_memory("user_id:u9") == {"views": 1})
    for identifier in ("user_id:u0", "user_id:u9"):
        for trait_class in ("audience", "computed_trait"):
            params = {"class": trait_class, "limit": 200}
            ours = get(copy, secret, f"/{identifier}/traits", **params)
            assert "via" not in ours.headers
            assert ours.json() == answer(server.url, secret, f"/{identifier}/traits", **params)[1]
    assert get(copy, secret, "/user_id:u9/traits", **{"class": "audience"}).json()["traits"] == {"viewers": True}
    assert httpx.get(copy + "/health").json()["saved_values_in_memory"] >= 2


def test_a_serving_process_that_dies_is_started_again(with_copy):
    server, copy, secret = with_copy
    serving = server.runtime.profile_serving
    assert serving is not None
    running_process(serving).kill()
    wait_until(lambda: serving.starts == 2)
    wait_until(lambda: healthy(copy))
    assert wait_until(lambda: same_answers(server.url, copy, secret, ["user_id:u0", "user_id:u2"]))
    with server.admin() as admin:
        assert admin.get("/health").status_code == 200


def test_a_feed_too_far_behind_is_dropped_for_a_fresh_start(monkeypatch, tmp_path: Path):
    """A process that stops reading must not make the server's memory grow: past ``MAX_PENDING`` unsent
    messages the feed is dropped, and the process is replaced and fed a fresh snapshot."""
    monkeypatch.setattr("onefold.profiles.serving_process.MAX_PENDING", 3)
    store = DuckDBStore.open(tmp_path / "data" / "onefold.duckdb")
    port = free_port()
    options = ServingOptions("127.0.0.1", port, "http://127.0.0.1:1", "default", AdminToken("x", None), 10, 1 << 20, 10)
    committed = CommittedStates(10)
    serving = ProfileServing(options, committed, AccessTokens(store, lambda: datetime.now(UTC)), SavedValues(10))
    serving.start()
    try:
        copy = served(port)
        stopped = running_process(serving)
        pid = stopped.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # reads nothing more: the pipe fills, then the queue
        for n in range(500):
            committed.publish([(f"p{n}", json.dumps({"pad": "x" * 2000}), card(("user_id", f"u{n}")))], [])
        os.kill(pid, signal.SIGCONT)
        wait_until(lambda: serving.starts == 2)
        wait_until(lambda: healthy(copy) and httpx.get(copy + "/health").json()["profiles_in_memory"] == 10)
        assert not stopped.is_alive()
    finally:
        serving.stop()
        store.close()


def test_when_the_server_does_not_answer_memory_still_does_and_the_rest_is_a_clear_503(tmp_path: Path):
    store = DuckDBStore.open(tmp_path / "data" / "onefold.duckdb")
    tokens = AccessTokens(store, lambda: datetime.now(UTC))
    _, secret = tokens.create("site", ["profiles:read"])
    committed = CommittedStates(10)
    state = {"first_seen": 0, "last_seen": 0, "events": 1, "traits": {"plan": {"value": "pro", "ts": 0, "seq": 1}}}
    committed.publish([("p1", json.dumps(state), card(("user_id", "u1")))], [])
    port, dead = free_port(), free_port()
    options = ServingOptions(
        "127.0.0.1", port, f"http://127.0.0.1:{dead}", "default", AdminToken("x", None), 10, 1 << 20, 10
    )
    serving = ProfileServing(options, committed, tokens, SavedValues(10))
    serving.start()
    try:
        copy = served(port)
        wait_until(lambda: get(copy, secret, "/user_id:u1/metadata").status_code == 200)
        assert answer(copy, secret, "/user_id:u1/metadata")[1]["metadata"]["profile_id"] == "p1"
        status, body = answer(copy, secret, "/user_id:u2/traits")
        assert status == 503
        assert body["error"]["code"] == "unavailable"
        assert f"127.0.0.1:{dead} did not answer" in body["error"]["message"]
        process = running_process(serving)
    finally:
        serving.stop()
        store.close()
    assert not process.is_alive()


def test_the_serving_process_exits_when_the_server_is_killed(tmp_path: Path):
    """No orphan goes on answering from a copy nobody updates: the end of its pipe stops it."""
    port, serving_port = free_port(), free_port()
    server = spawn_server(tmp_path / "data", port, ONEFOLD_PROFILE_API_PORT=str(serving_port))
    try:
        copy = served(serving_port)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)

        wait_until(lambda: not healthy(copy))
    finally:
        if server.poll() is None:
            server.kill()
