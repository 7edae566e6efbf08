"""`onefold import` as a real subprocess against a real server: JSONL backfills, CSV imports with mappings."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import ADMIN_TOKEN, RunningServer


@dataclass
class CliRun:
    code: int
    output: str

    def count(self, label: str) -> int:
        """A number from the summary table, e.g. count("imported")."""
        match = re.search(rf"│ {re.escape(label)}\s*│ ([\d,]+)", self.output)
        assert match, f"no '{label}' row in the summary:\n{self.output}"
        return int(match.group(1).replace(",", ""))


def run_import(server: RunningServer, file: Path, source: str, *extra: str) -> CliRun:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEFOLD_")}
    env.update({"COLUMNS": "250", "NO_COLOR": "1"})
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "onefold",
            "import",
            str(file),
            "--source",
            source,
            "--url",
            server.url,
            "--token",
            ADMIN_TOKEN,
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=file.parent,
        timeout=120,
    )
    return CliRun(completed.returncode, completed.stdout + completed.stderr)


def quarantine(server: RunningServer, source: str) -> list[dict[str, Any]]:
    with server.admin() as client:
        response = client.get("/api/quarantine", params={"source": source, "limit": 1000})
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["data"]
        return rows


def by_message_id(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["message_id"]: e for e in events}


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def identifiers(event: dict[str, Any]) -> set[tuple[str, str]]:
    return {(kind, value) for kind, value, *_ in event["identifiers"]}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- JSONL backfill -----------------------------------------------------------------------------------------

HISTORY: list[dict[str, Any]] = [
    {
        "type": "identify",
        "userId": "u-1",
        "messageId": "hist-1",
        "timestamp": "2021-03-04T10:00:00Z",
        "traits": {"email": " Jane.Doe@Example.COM ", "plan": "pro"},
    },
    {
        "type": "track",
        "userId": "u-1",
        "event": "Order Completed",
        "messageId": "hist-2",
        "timestamp": "2021-03-05T11:30:00.250Z",
        "properties": {"order_id": "A-17", "revenue": 99.5, "currency": "eur"},
    },
    {
        "type": "page",
        "anonymousId": "anon-9",
        "name": "Pricing",
        "messageId": "hist-3",
        "timestamp": "2020-12-31T23:59:59+01:00",
        "properties": {"path": "/pricing"},
    },
]
BAD_EVENT = {
    "type": "track",
    "event": "Signed Up",
    "messageId": "hist-bad",
    "timestamp": "2021-01-01T00:00:00Z",
}
MALFORMED = '{"type": "track", "userId": "u-2", "event": "Oops"'
NOT_AN_OBJECT = '["identify", "u-3"]'


@pytest.fixture
def backfill(tmp_path: Path) -> Path:
    lines = [
        orjson.dumps(HISTORY[0]).decode(),
        MALFORMED,  # line 2
        orjson.dumps(HISTORY[1]).decode(),
        "",  # blank lines are skipped, but still counted
        orjson.dumps(BAD_EVENT).decode(),  # line 5
        NOT_AN_OBJECT,  # line 6
        orjson.dumps(HISTORY[2]).decode(),
    ]
    return write(tmp_path / "history.jsonl", "\n".join(lines) + "\n")


def test_jsonl_backfill_keeps_history_and_quarantines_bad_lines(server: RunningServer, backfill: Path) -> None:
    server.create_source("history", "server", "US")
    run = run_import(server, backfill, "history")

    assert run.code == 1, run.output  # rejects make the exit code 1
    assert run.count("sent to the collector") == 4
    assert run.count("imported") == 3
    assert run.count("duplicates (already stored)") == 0
    assert run.count("rejected") == 3
    assert "line 2: not valid JSON" in run.output
    assert "line 6: not a JSON object" in run.output
    assert "userId or anonymousId is required" in run.output

    stored = by_message_id(server.events(source="history"))
    assert set(stored) == {"hist-1", "hist-2", "hist-3"}
    for sent in HISTORY:
        event = stored[sent["messageId"]]
        assert event["type"] == sent["type"]
        assert when(event["timestamp"]) == when(sent["timestamp"])  # its own historical time, not the import's
        assert when(event["received_at"]) > when(sent["timestamp"])
    assert identifiers(stored["hist-1"]) >= {("user_id", "u-1"), ("email", "jane.doe@example.com")}
    order = stored["hist-2"]
    assert (order["event"], order["revenue"], order["currency"], order["order_id"]) == (
        "Order Completed",
        99.5,
        "EUR",
        "A-17",
    )
    assert stored["hist-3"]["anonymous_id"] == "anon-9"
    assert stored["hist-3"]["name"] == "Pricing"

    records = quarantine(server, "history")
    payloads = {r["payload"]: r for r in records}
    assert len(records) == 3
    assert payloads[MALFORMED]["reason"].startswith("line 2: not valid JSON")
    assert payloads[NOT_AN_OBJECT]["reason"] == "line 6: not a JSON object"
    bad = next(r for r in records if r["message_id"] == "hist-bad")
    assert "userId or anonymousId" in bad["reason"]
    assert orjson.loads(bad["payload"]) == BAD_EVENT


def test_jsonl_reimport_is_idempotent(server: RunningServer, backfill: Path) -> None:
    server.create_source("history", "server", "US")
    first = run_import(server, backfill, "history")
    assert first.count("imported") == 3
    before = server.events(source="history")

    again = run_import(server, backfill, "history")
    assert again.code == 1, again.output
    assert again.count("imported") == 0
    assert again.count("duplicates (already stored)") == 3
    after = server.events(source="history")
    assert after == before
    assert server.stats()["events_deduplicated"] == 3


def test_jsonl_without_problems_exits_zero(server: RunningServer, tmp_path: Path) -> None:
    server.create_source("clean", "server", None)
    file = write(tmp_path / "ok.jsonl", "\n".join(orjson.dumps(e).decode() for e in HISTORY))
    run = run_import(server, file, "clean")
    assert run.code == 0, run.output
    assert run.count("imported") == 3
    assert run.count("rejected") == 0
    assert quarantine(server, "clean") == []


# --- CSV imports, one per kind ------------------------------------------------------------------------------


@dataclass
class CsvCase:
    source_kind: str
    region: str | None
    mapping: str
    csv: str
    bad_row: int
    bad_column: str
    bad_reason: str
    good_rows: int


CRM = CsvCase(
    source_kind="crm",
    region="CA",
    mapping="""
kind = "crm_contacts"
row_key = ["contact_id", "updated"]

[columns]
user_id = "contact_id"
email = "Email"
phone = "Mobile"
first_name = "First"
last_name = "Last"
company = "Company"
city = "City"
birthday = "Birthday"
loyalty_card = "Card"
timestamp = "updated"

[extra]
tier = "Tier"
""",
    csv=(
        "contact_id,Email,Mobile,First,Last,Company,City,Birthday,Card,Tier,updated\n"
        "c-1, Jane.Doe@Example.COM ,(416) 555-0123,Jane,Doe,Acme,Toronto,1990-04-01,LC-0001,gold,"
        "2023-01-02T03:04:05Z\n"
        "c-2,bob@example.com,613-555-0199,Bob,,,,,,silver,2023-02-03T00:00:00Z\n"
        "c-3,carl@example.com,,Carl,,,,,,,last tuesday\n"
    ),
    bad_row=4,
    bad_column="updated",
    bad_reason="timestamp 'last tuesday' does not match ISO-8601",
    good_rows=2,
)

ORDERS = CsvCase(
    source_kind="ecommerce",
    region="US",
    mapping="""
kind = "orders"
row_key = ["order_number", "status"]

[columns]
order_id = "order_number"
user_id = "customer"
email = "email"
revenue = "total"
currency = "currency"
sku = "sku"
product_name = "product"
price = "price"
quantity = "qty"
status = "status"
timestamp = "created_at"

[extra]
coupon = "coupon"
""",
    csv=(
        "order_number,customer,email,total,currency,sku,product,price,qty,status,created_at,coupon\n"
        '1001,u-1,jane@example.com,"$1,234.50",usd,SKU-1,Desk,1234.50,1,completed,2022-11-25T10:00:00Z,BF22\n'
        "1002,u-2,bob@example.com,19.99,eur,SKU-2,Mug,9.995,2,Refunded,2022-11-26T10:00:00Z,\n"
        "1003,u-3,carl@example.com,abc,usd,SKU-3,Pen,1,1,completed,2022-11-27T10:00:00Z,\n"
    ),
    bad_row=4,
    bad_column="total",
    bad_reason="revenue must be a number, got 'abc'",
    good_rows=2,
)

POS = CsvCase(
    source_kind="pos",
    region="GB",
    mapping="""
kind = "pos_purchases"
timestamp_format = "%d/%m/%Y %H:%M"

[columns]
order_id = "receipt"
loyalty_card = "card"
phone = "phone"
revenue = "amount"
currency = "cur"
store_id = "store"
timestamp = "ts"
""",
    csv=(
        "receipt,card,phone,amount,cur,store,ts\n"
        "R-1,LC-77,020 7946 0958,12.00,gbp,S-9,01/02/2023 14:05\n"
        "R-2,LC-78,,7.5,gbp,S-9,31/13/2023 10:00\n"
        "R-3,LC-79,,£4.20,gbp,S-2,02/02/2023 09:00\n"
    ),
    bad_row=3,
    bad_column="ts",
    bad_reason="timestamp '31/13/2023 10:00' does not match %d/%m/%Y %H:%M",
    good_rows=2,
)

EMAIL = CsvCase(
    source_kind="email",
    region=None,
    mapping="""
kind = "email_engagement"

[columns]
email = "email"
event = "event"
campaign = "campaign"
subject = "subject"
url = "url"
timestamp = "when"

[event_values]
"hard bounce" = "Email Bounced"
""",
    csv=(
        "email,event,campaign,subject,url,when\n"
        " Jane.Doe@Example.COM ,open,spring,Hello,,2023-03-01T08:00:00Z\n"
        "bob@example.com,Hard Bounce,spring,Hello,,2023-03-01T08:01:00Z\n"
        "carl@example.com,click,spring,Hello,https://shop.test/a,2023-03-01T09:00:00Z\n"
        "dan@example.com,forwarded,spring,Hello,,2023-03-01T09:30:00Z\n"
    ),
    bad_row=5,
    bad_column="event",
    bad_reason="event value 'forwarded' is not one of",
    good_rows=3,
)

SMS = CsvCase(
    source_kind="sms",
    region="GB",
    mapping="""
kind = "sms_engagement"

[columns]
phone = "msisdn"
event = "status"
campaign = "campaign"
timestamp = "at"
""",
    csv=(
        "msisdn,status,campaign,at\n"
        "020 7946 0958,delivered,launch,2023-04-01T10:00:00Z\n"
        ",delivered,launch,2023-04-01T10:00:00Z\n"
        "020 7946 0958,STOP,launch,2023-04-01T11:00:00Z\n"
    ),
    bad_row=3,
    bad_column="msisdn",
    bad_reason="phone is required and is empty",
    good_rows=2,
)

CASES = {
    "crm_contacts": CRM,
    "orders": ORDERS,
    "pos_purchases": POS,
    "email_engagement": EMAIL,
    "sms_engagement": SMS,
}


def check_crm(events: list[dict[str, Any]]) -> None:
    by_user = {e["user_id"]: e for e in events}
    assert set(by_user) == {"c-1", "c-2"}
    jane = by_user["c-1"]
    assert jane["type"] == "identify"
    assert jane["event"] is None
    assert jane["traits"] == {
        "tier": "gold",
        "email": "Jane.Doe@Example.COM",
        "phone": "(416) 555-0123",
        "first_name": "Jane",
        "last_name": "Doe",
        "company": "Acme",
        "city": "Toronto",
        "birthday": "1990-04-01",
    }
    assert when(jane["timestamp"]) == datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert identifiers(jane) >= {
        ("user_id", "c-1"),
        ("email", "jane.doe@example.com"),
        ("phone", "+14165550123"),
        ("loyalty_card", "LC-0001"),
    }
    assert identifiers(by_user["c-2"]) >= {("email", "bob@example.com"), ("phone", "+16135550199")}
    assert jane["channel"] == "crm"


def check_orders(events: list[dict[str, Any]]) -> None:
    by_order = {e["order_id"]: e for e in events}
    assert set(by_order) == {"1001", "1002"}
    completed, refunded = by_order["1001"], by_order["1002"]
    assert (completed["type"], completed["event"], completed["user_id"]) == (
        "track",
        "Order Completed",
        "u-1",
    )
    assert (completed["revenue"], completed["currency"]) == (1234.5, "USD")
    assert completed["properties"]["coupon"] == "BF22"
    assert completed["products"] == [{"sku": "SKU-1", "price": 1234.5, "quantity": 1, "name": "Desk"}]
    assert completed["channel"] == "ecommerce"
    assert when(completed["timestamp"]) == datetime(2022, 11, 25, 10, tzinfo=UTC)
    assert refunded["event"] == "Order Refunded"
    assert (refunded["revenue"], refunded["currency"]) == (-19.99, "EUR")
    assert ("email", "bob@example.com") in identifiers(refunded)


def check_pos(events: list[dict[str, Any]]) -> None:
    by_order = {e["order_id"]: e for e in events}
    assert set(by_order) == {"R-1", "R-3"}
    first = by_order["R-1"]
    assert (first["type"], first["event"], first["user_id"]) == ("track", "Order Completed", None)
    assert first["anonymous_id"] == "loyalty_card:LC-77"
    assert identifiers(first) >= {("loyalty_card", "LC-77"), ("phone", "+442079460958")}
    assert (first["revenue"], first["currency"], first["channel"]) == (12.0, "GBP", "pos")
    assert first["properties"]["store_id"] == "S-9"
    assert when(first["timestamp"]) == datetime(2023, 2, 1, 14, 5, tzinfo=UTC)
    assert by_order["R-3"]["revenue"] == 4.2


def check_email(events: list[dict[str, Any]]) -> None:
    names = sorted(e["event"] for e in events)
    assert names == ["Email Bounced", "Email Link Clicked", "Email Opened"]
    opened = next(e for e in events if e["event"] == "Email Opened")
    assert opened["type"] == "track"
    assert ("email", "jane.doe@example.com") in identifiers(opened)
    assert opened["properties"] == {"campaign": "spring", "subject": "Hello", "channel": "email"}
    assert opened["channel"] == "email"
    clicked = next(e for e in events if e["event"] == "Email Link Clicked")
    assert clicked["properties"]["url"] == "https://shop.test/a"


def check_sms(events: list[dict[str, Any]]) -> None:
    assert sorted(e["event"] for e in events) == ["SMS Delivered", "SMS Opted Out"]
    for event in events:
        assert ("phone", "+442079460958") in identifiers(event)
        assert event["channel"] == "sms"
        assert event["properties"]["campaign"] == "launch"


CHECKS = {
    "crm_contacts": check_crm,
    "orders": check_orders,
    "pos_purchases": check_pos,
    "email_engagement": check_email,
    "sms_engagement": check_sms,
}


@pytest.mark.parametrize("kind", list(CASES))
def test_csv_import_per_kind(server: RunningServer, tmp_path: Path, kind: str) -> None:
    case = CASES[kind]
    name = f"{kind}-source"
    server.create_source(name, case.source_kind, case.region)
    data = write(tmp_path / f"{kind}.csv", case.csv)
    mapping = write(tmp_path / f"{kind}.toml", case.mapping)

    run = run_import(server, data, name, "--mapping", str(mapping))
    assert run.code == 1, run.output
    assert run.count("imported") == case.good_rows
    assert run.count("rejected") == 1
    assert f"row {case.bad_row}, column '{case.bad_column}': {case.bad_reason}" in run.output

    events = server.events(source=name)
    assert len(events) == case.good_rows
    assert all(e["message_id"].startswith("csv-") for e in events)
    CHECKS[kind](events)

    records = quarantine(server, name)
    assert len(records) == 1
    assert records[0]["reason"].startswith(f"row {case.bad_row}, column '{case.bad_column}': {case.bad_reason}")
    bad_line = case.csv.splitlines()[case.bad_row - 1]
    assert set(orjson.loads(records[0]["payload"]).values()) == set(next(csv.reader([bad_line])))

    again = run_import(server, data, name, "--mapping", str(mapping))
    assert again.code == 1, again.output
    assert again.count("imported") == 0
    assert again.count("duplicates (already stored)") == case.good_rows
    assert server.events(source=name) == events


def test_mapping_naming_a_missing_column_fails_before_importing(server: RunningServer, tmp_path: Path) -> None:
    server.create_source("shop", "ecommerce", "US")
    data = write(tmp_path / "orders.csv", "order_number,customer,Total\n1001,u-1,10\n1002,u-2,20\n")
    mapping = write(
        tmp_path / "orders.toml",
        'kind = "orders"\n[columns]\norder_id = "order_number"\nuser_id = "customer"\nrevenue = "total"\n',
    )
    before = server.stats()
    run = run_import(server, data, "shop", "--mapping", str(mapping))
    assert run.code == 2, run.output
    assert "the CSV has no column(s) ['total']" in run.output
    assert "its columns are: order_number, customer, Total" in run.output
    assert "Import summary" not in run.output
    after = server.stats()
    assert after["events_stored"] == before["events_stored"]
    assert after["events_rejected"] == before["events_rejected"]


def test_csv_needs_a_mapping(server: RunningServer, tmp_path: Path) -> None:
    server.create_source("shop", "ecommerce", "US")
    data = write(tmp_path / "orders.csv", "order_number,customer,total\n1001,u-1,10\n")
    run = run_import(server, data, "shop")
    assert run.code == 2
    assert "--mapping" in run.output
    assert server.stats()["events_stored"] == 0


def test_invalid_mapping_file_is_reported(server: RunningServer, tmp_path: Path) -> None:
    """The message must reach the user as written.

    Today import_command prints it with console.print(f"[red]error:[/] {exc.message}") and Rich takes the
    "[columns]" in the message for a markup tag and drops it: "kind 'orders' needs  entries for ['revenue']".
    """
    server.create_source("shop", "ecommerce", "US")
    data = write(tmp_path / "orders.csv", "order_number,customer,total\n1001,u-1,10\n")
    mapping = write(tmp_path / "orders.toml", 'kind = "orders"\n[columns]\norder_id = "order_number"\n')
    run = run_import(server, data, "shop", "--mapping", str(mapping))
    assert run.code == 2
    assert "kind 'orders' needs [columns] entries for ['revenue']" in run.output
    assert "orders.toml" in run.output


def test_rejection_reason_with_brackets_does_not_crash_the_summary(server: RunningServer, tmp_path: Path) -> None:
    """The server echoes the bad value in its reason ("got '[/b]'"); printing it as Rich markup raises
    MarkupError after the upload, so the user gets a traceback instead of the summary."""
    server.create_source("history", "server", "US")
    bad = {"type": "[/b]", "userId": "u-9", "messageId": "weird-type"}
    file = write(tmp_path / "weird.jsonl", orjson.dumps(HISTORY[0]).decode() + "\n" + orjson.dumps(bad).decode())
    run = run_import(server, file, "history")
    assert "Traceback" not in run.output
    assert run.code == 1, run.output
    assert run.count("imported") == 1
    assert "got '[/b]'" in run.output
    assert [r["message_id"] for r in quarantine(server, "history")] == ["weird-type"]


def test_unknown_source_fails_clearly(server: RunningServer, backfill: Path) -> None:
    server.create_source("history", "server", "US")
    run = run_import(server, backfill, "no-such-source")
    assert run.code == 2, run.output
    assert "no source named 'no-such-source'" in run.output
    assert "POST /api/sources" in run.output
    assert server.stats()["events_stored"] == 0


def test_wrong_admin_token_fails_clearly(server: RunningServer, backfill: Path) -> None:
    server.create_source("history", "server", "US")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEFOLD_")}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "onefold",
            "import",
            str(backfill),
            "--source",
            "history",
            "--url",
            server.url,
            "--token",
            "not-the-token",
        ],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "250"},
        timeout=120,
    )
    assert completed.returncode == 2
    assert "admin token was refused" in completed.stderr
    assert server.stats()["events_stored"] == 0


def test_source_can_be_named_by_id(server: RunningServer, backfill: Path) -> None:
    created = server.create_source("history", "server", "US")
    run = run_import(server, backfill, created["id"])
    assert run.count("imported") == 3
    assert {e["source_id"] for e in server.events()} == {created["id"]}


def test_source_name_with_url_special_characters(server: RunningServer, backfill: Path) -> None:
    """A source may be named "Shop #1"; the importer must still find it.

    Today command.run_import builds the lookup URL as f"/api/sources/{source}" without quoting, so the
    "#" starts a URL fragment, the server sees GET /api/sources/Shop and the import fails with
    "no source named 'Shop #1'".
    """
    created = server.create_source("Shop #1", "ecommerce", "US")
    run = run_import(server, backfill, "Shop #1")
    assert "no source named" not in run.output
    assert run.count("imported") == 3
    assert {e["source_id"] for e in server.events()} == {created["id"]}


def test_csv_row_with_extra_fields_is_reported_not_a_crash(server: RunningServer, tmp_path: Path) -> None:
    """A row with more fields than the header (an unquoted comma): its values are shifted, so the whole row
    is rejected with the field counts, quarantined with its surplus fields, and the good rows still land."""
    server.create_source("shop", "ecommerce", "US")
    data = write(
        tmp_path / "orders.csv",
        "order_number,customer,total\n1001,u-1,10\n1002,u-2,abc,Smith, John\n1003,u-3,30\n",
    )
    mapping = write(
        tmp_path / "orders.toml",
        'kind = "orders"\n[columns]\norder_id = "order_number"\nuser_id = "customer"\nrevenue = "total"\n',
    )
    run = run_import(server, data, "shop", "--mapping", str(mapping))
    assert "Traceback" not in run.output
    assert run.code == 1, run.output
    assert "row 3: the row has 5 fields but the header has 3" in run.output
    assert {e["order_id"] for e in server.events(source="shop")} == {"1001", "1003"}
    [kept] = quarantine(server, "shop")
    assert kept["reason"].startswith("row 3")
    assert orjson.loads(kept["payload"])["_extra_fields"] == ["Smith", " John"]
