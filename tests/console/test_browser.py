"""The console in headless Chromium (Debian's package, driven by Playwright) over a real server with demo data.

Screenshots of every page are taken on each run; with ONEFOLD_UPDATE_SCREENSHOTS=1 they are written to
docs/screenshots/ (shown in the README), otherwise to a temporary directory.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from rich.console import Console

from onefold.demo.loader import DEMO_ADMIN_EMAIL, DemoLoader
from tests.conftest import ADMIN_TOKEN, RunningServer, start_server, stop_server
from tests.console.conftest import PASSWORD, add_user

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    """A server with a small demo dataset loaded through the collector, and the demo admin's password."""
    running, server, thread = start_server(tmp_path_factory.mktemp("console-demo"))
    lines = DemoLoader(running.runtime, people=300, seed=7, console=Console(file=io.StringIO())).run()
    sign_in = dict(lines)["Sign in"]
    found = re.search(r"password \[yellow\](\S+)\[/\]", sign_in)
    assert found is not None
    assert DEMO_ADMIN_EMAIL in sign_in
    yield running, found.group(1)
    stop_server(server, thread, running.runtime)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("ONEFOLD_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def sign_in(page: Page, url: str, email: str, password: str) -> None:
    page.goto(url + "/console")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def a_customer(server: RunningServer) -> tuple[str, str]:
    """A demo profile with an email and several identifiers: (profile id, email)."""
    row = (
        server.runtime.store.cursor()
        .execute(
            "SELECT k.profile_id, k.value FROM identity_keys k WHERE k.type = 'email' AND k.profile_id IN"
            " (SELECT profile_id FROM identity_keys GROUP BY profile_id HAVING count(*) >= 4) ORDER BY 1 LIMIT 1"
        )
        .fetchone()
    )
    assert row is not None
    return str(row[0]), str(row[1])


def test_a_newcomer_signs_in_finds_a_customer_and_sees_why_identities_merged(
    demo: tuple[RunningServer, str], page: Page, shots: Path
) -> None:
    server, password = demo
    page.goto(server.url + "/")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    page.screenshot(path=shots / "sign-in.png")
    sign_in(page, server.url, DEMO_ADMIN_EMAIL, password)
    expect(page.locator('[data-live="events"]')).not_to_have_text("0")
    page.screenshot(path=shots / "overview.png", full_page=True)

    profile_id, email = a_customer(server)
    page.get_by_role("link", name="Profiles").click()
    page.get_by_label("Search profiles").fill(email[:6])
    page.get_by_label("Search profiles").press("Enter")
    expect(page.get_by_role("cell", name=re.compile(re.escape(email)))).to_be_visible()
    page.screenshot(path=shots / "profiles.png", full_page=True)
    page.locator(f'a[href="/console/profiles/{profile_id}"]').click()
    expect(page.get_by_role("heading", name=re.compile("Identities"))).to_be_visible()
    identities = page.locator("section[aria-labelledby=identities] tbody tr")
    assert identities.count() >= 4
    expect(identities.first).to_contain_text("Linked by a")
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    page.screenshot(path=shots / "profile.png", full_page=True)


def test_an_admin_splits_an_identity_in_the_360_view(demo: tuple[RunningServer, str], page: Page) -> None:
    server, password = demo
    profile_id, _ = a_customer(server)
    sign_in(page, server.url, DEMO_ADMIN_EMAIL, password)
    page.goto(f"{server.url}/console/profiles/{profile_id}")
    rows = page.locator("section[aria-labelledby=identities] tbody tr")
    before = rows.count()
    last = rows.nth(before - 1)
    identifier = last.locator("input[name=identifier]").get_attribute("value")
    assert identifier is not None
    page.once("dialog", lambda dialog: dialog.dismiss())  # asked first: cancelled, nothing happens
    last.get_by_role("button", name="Split off").click()
    assert page.locator("section[aria-labelledby=identities] tbody tr").count() == before
    assert len(server.runtime.identity.tables.operations()) == 0
    page.once("dialog", lambda dialog: dialog.accept())
    last.get_by_role("button", name="Split off").click()
    expect(page.get_by_role("status")).to_contain_text("Done: exclude identifier")
    assert len(server.runtime.identity.tables.operations()) == 1  # the cancelled click never reached the server
    kind, value = identifier.split(":", 1)
    held = {(k["type"], k["value"]) for k in server.runtime.identity.tables.profile_keys(profile_id)}
    assert (kind, value) not in held
    assert page.locator("section[aria-labelledby=identities] tbody tr").count() == before - 1


def test_a_marketer_builds_an_audience_and_watches_its_count(
    demo: tuple[RunningServer, str], page: Page, shots: Path
) -> None:
    server, _ = demo
    add_user(server, "mia@example.com", "marketer")
    sign_in(page, server.url, "mia@example.com", PASSWORD)
    page.get_by_role("link", name="Audiences").click()
    page.screenshot(path=shots / "audiences.png", full_page=True)
    page.get_by_role("link", name="New audience").click()
    page.get_by_label("event name").fill("Order Completed")
    page.get_by_label("times").fill("2")
    expect(page.locator("#count")).to_have_text(re.compile(r"^[\d,]+ profiles$"))
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        definition = {"event": "Order Completed", "count": {"op": ">=", "value": 2}}
        expected = admin.post("/api/audiences/preview", json={"definition": definition}).json()["count"]
    expect(page.locator("#count")).to_have_text(f"{expected:,} profiles")

    page.get_by_role("button", name="+ group").click()  # an OR group inside: bought, or is on the pro plan
    group = page.locator(".group .group")
    group.get_by_label("trait name").fill("plan")
    group.get_by_label("value").fill("no-such-plan")
    expect(page.locator("#count")).to_have_text("0 profiles")
    group.get_by_label("remove").first.click()
    expect(page.locator("#count")).to_have_text(f"{expected:,} profiles")
    page.screenshot(path=shots / "builder.png", full_page=True)

    page.get_by_label("Name", exact=True).fill("repeat_buyers")
    page.get_by_role("button", name="Save audience").click()
    expect(page.get_by_role("heading", name="repeat_buyers")).to_be_visible()
    expect(page.locator("#size")).to_have_text(f"{expected:,}")
    page.screenshot(path=shots / "audience.png", full_page=True)
    assert server.runtime.audiences.service.tables.get("audience", "repeat_buyers")["size"] == expected

    # a new customer orders twice: the size on the open page follows, without a reload
    key = server.runtime.store.get_source("shop").write_key
    orders = [{"type": "track", "userId": "new-buyer", "event": "Order Completed"} for _ in range(2)]
    assert httpx.post(server.url + "/v1/batch", json={"batch": orders}, auth=(key, "")).status_code == 200
    expect(page.locator("#size")).to_have_text(f"{expected + 1:,}", timeout=20_000)


def test_cart_abandonment_is_built_as_a_sequence_without_json(demo: tuple[RunningServer, str], page: Page) -> None:
    server = new_condition(demo, page, "sequence")
    page.get_by_label("first event").fill("Product Added")
    page.get_by_label("then performed").select_option("then did not")
    page.get_by_label("then event").fill("Order Completed")
    page.get_by_label("minutes").fill("60")
    definition = {
        "sequence": {
            "first": {"event": "Product Added"},
            "then": {"event": "Order Completed"},
            "within_minutes": 60,
            "then_performed": False,
        }
    }
    built_and_counted(server, page, definition)


def new_condition(demo: tuple[RunningServer, str], page: Page, kind: str) -> RunningServer:
    """Sign in as the demo's admin and open a new audience in the builder with one condition of ``kind``."""
    server, password = demo
    sign_in(page, server.url, DEMO_ADMIN_EMAIL, password)
    page.goto(server.url + "/console/audiences/new")
    page.get_by_label("condition kind").select_option(kind)
    return server


def built_and_counted(server: RunningServer, page: Page, definition: dict[str, Any]) -> None:
    """The builder wrote ``definition`` and its live count is the API's preview count (some profiles match)."""
    page.get_by_text("Definition as JSON").click()
    assert json.loads(page.get_by_label("Definition as JSON").input_value()) == definition
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        expected = admin.post("/api/audiences/preview", json={"definition": definition}).json()["count"]
    assert expected > 0
    expect(page.locator("#count")).to_have_text(f"{expected:,} profiles")


def test_a_channel_subscription_is_built_without_json(demo: tuple[RunningServer, str], page: Page) -> None:
    server = new_condition(demo, page, "subscription")
    page.get_by_label("channel").select_option("sms")
    page.get_by_label("status").select_option("unsubscribed")
    built_and_counted(server, page, {"subscription": "sms", "status": "unsubscribed"})  # who texted STOP


def test_editing_keeps_every_demo_definition_as_it_was(demo: tuple[RunningServer, str], page: Page) -> None:
    """The builder reads a saved definition into its tree and writes it back unchanged, value types included."""
    server, password = demo
    tricky = {
        "or": [
            {"trait": "address.postal_code", "op": "equals", "value": "78245"},
            {"trait": "tier", "op": "in", "value": ["lead, hot", "008", "true", True, 8, ' "q" ']},
            {"trait": "flag", "op": "not_equals", "value": "false"},
        ]
    }
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        created = admin.post("/api/audiences", json={"name": "typed_values", "definition": tricky})
    assert created.status_code == 201, created.text
    sign_in(page, server.url, DEMO_ADMIN_EMAIL, password)
    saved = server.runtime.audiences.service.tables.all("audience")
    assert len(saved) >= 4
    for audience in saved:
        page.goto(f"{server.url}/console/audiences/{audience['name']}/edit")
        expect(page.locator("#count")).to_have_text(re.compile(r"^[\d,]+ profiles$"))  # a valid definition
        assert json.loads(page.get_by_label("Definition as JSON").input_value()) == audience["definition"]


def test_an_invalid_definition_shows_the_failing_node(demo: tuple[RunningServer, str], page: Page) -> None:
    server, password = demo
    sign_in(page, server.url, DEMO_ADMIN_EMAIL, password)
    page.goto(server.url + "/console/audiences/new")
    page.get_by_label("times").fill("-1")
    expect(page.locator("#problem")).to_contain_text("$.count.value")


def test_the_overview_updates_without_a_reload(demo: tuple[RunningServer, str], page: Page) -> None:
    server, password = demo
    sign_in(page, server.url, DEMO_ADMIN_EMAIL, password)
    shown = page.locator('[data-live="events"]').inner_text()
    key = server.runtime.store.get_source("website").write_key
    batch = [{"type": "track", "userId": f"live-{i}", "event": "Live"} for i in range(3)]
    assert httpx.post(server.url + "/v1/batch", json={"batch": batch}, auth=(key, "")).status_code == 200
    expect(page.locator('[data-live="events"]')).not_to_have_text(shown, timeout=15_000)
    expect(page.locator("#lag-chart svg polyline")).to_have_count(2, timeout=15_000)  # two samples drawn


def test_roles_in_the_browser(demo: tuple[RunningServer, str], browser: Browser, shots: Path) -> None:
    server, password = demo
    customer, email = a_customer(server)
    add_user(server, "vic@example.com", "viewer")
    add_user(server, "ana@example.com", "analyst")
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    viewer = context.new_page()
    sign_in(viewer, server.url, "vic@example.com", PASSWORD)
    expect(viewer.get_by_role("navigation", name="Main").get_by_role("link")).to_have_text(
        ["Overview", "Profiles", "Audiences"]
    )
    viewer.goto(server.url + "/console/users")
    expect(viewer.get_by_role("alert")).to_contain_text("cannot open this page")
    assert viewer.request.get(server.url + "/api/sources").status == 403  # no write key
    context.close()

    context = browser.new_context(viewport={"width": 1280, "height": 860})
    analyst = context.new_page()
    sign_in(analyst, server.url, "ana@example.com", PASSWORD)
    ids = server.runtime.identity.tables.profile_keys(customer)
    an_id = next(k["value"] for k in ids if k["type"] not in ("email", "phone"))
    analyst.goto(server.url + "/console/profiles?q=" + an_id)
    masked = email[0] + "***@" + email.split("@")[1]
    expect(analyst.locator("main")).to_contain_text(masked)
    expect(analyst.locator("main")).not_to_contain_text(email)
    analyst.goto(server.url + "/console/profiles?q=" + email[:6])  # a masked value is not searched
    expect(analyst.locator("main")).to_contain_text("No profile has an id starting with")
    context.close()

    context = browser.new_context(viewport={"width": 1280, "height": 860})
    admin = context.new_page()
    sign_in(admin, server.url, DEMO_ADMIN_EMAIL, password)
    admin.goto(server.url + "/console/users")
    expect(admin.get_by_role("cell", name=re.compile("ana@example.com"))).to_be_visible()
    admin.screenshot(path=shots / "users.png", full_page=True)
    context.close()


def test_the_admin_pages_render(demo: tuple[RunningServer, str], page: Page, shots: Path) -> None:
    server, password = demo
    sign_in(page, server.url, DEMO_ADMIN_EMAIL, password)
    page.get_by_role("link", name="Identity").click()
    expect(page.get_by_role("heading", name="Largest profiles")).to_be_visible()
    expect(page.locator("section[aria-labelledby=largest] tbody tr")).to_have_count(15)
    page.screenshot(path=shots / "identity.png", full_page=True)

    page.get_by_role("link", name="Sources").click()
    expect(page.get_by_role("cell", name="website")).to_be_visible()
    page.screenshot(path=shots / "sources.png", full_page=True)
    page.get_by_role("link", name="website").click()
    write_key = server.runtime.store.get_source("website").write_key
    expect(page.locator("#write-key")).to_have_text(write_key)
    page.get_by_text("curl", exact=True).click()
    expect(page.get_by_text(f"curl -u {write_key}:")).to_be_visible()
    page.screenshot(path=shots / "source.png", full_page=True)

    page.get_by_role("link", name="Privacy").click()
    expect(page.get_by_role("heading", name="Erase a person")).to_be_visible()
    page.screenshot(path=shots / "privacy.png", full_page=True)


def test_keyboard_only_sign_in_and_tablet_width(demo: tuple[RunningServer, str], browser: Browser) -> None:
    server, password = demo
    context = browser.new_context(viewport={"width": 768, "height": 1024})
    page = context.new_page()
    page.goto(server.url + "/console")
    expect(page.get_by_label("Email")).to_be_focused()  # the email field has focus on load
    page.keyboard.type(DEMO_ADMIN_EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    pages = ("/console", "/console/profiles?q=a", "/console/audiences", "/console/audiences/new")
    for path in (*pages, "/console/audiences/footwear_browsers_not_buying"):
        page.goto(server.url + path)
        if path.endswith("footwear_browsers_not_buying"):  # with its SQL open
            expect(page.get_by_role("heading", name="As SQL")).to_be_visible()
            page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
            expect(page.get_by_text("JSONB_EXTRACT_PATH").first).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at tablet width"
    context.close()
