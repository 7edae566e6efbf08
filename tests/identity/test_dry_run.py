"""Dry-run of identity rules: the pure diff on small graphs, and `onefold identity dry-run` on a real data dir."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from onefold.cli import main
from onefold.identity.dry_run import LoggedEvent, Scratch, compare_refusals, diff_profiles, open_log, summary
from onefold.identity.rules import DEFAULT_RULES, Key
from onefold.identity.rules_file import parse_rules
from tests.conftest import start_server, stop_server


def owners(events: list[list[Key]], rules_text: str = "") -> tuple[dict[Key, str], Counter[str]]:
    scratch = Scratch(parse_rules(rules_text) if rules_text else DEFAULT_RULES)
    for seq, keys in enumerate(events, start=1):
        scratch.observe(seq, keys, None)
    return scratch.owners(), scratch.refusals


ANN = [("user_id", "u1"), ("anonymous_id", "a1"), ("email", "ann@example.com")]
FAMILY = [
    [("anonymous_id", "a4"), ("email", "family@example.com")],
    [("anonymous_id", "a5"), ("email", "family@example.com")],
]
SECOND_ID = [("user_id", "u9"), ("email", "ann@example.com")]


def test_identical_replays_have_no_difference():
    before, _ = owners([ANN, *FAMILY])
    diff = diff_profiles(before, dict(before))
    assert summary(diff) == {
        "profiles": [2, 2],
        "identifiers": [6, 6],
        "identifiers_changed": 0,
        "merged": 0,
        "split": 0,
        "changed": 0,
    }


def test_a_blocked_value_splits_what_it_glued_and_a_looser_rule_merges():
    events = [ANN, *FAMILY, SECOND_ID]
    before, refused_before = owners(events)
    after, refused_after = owners(
        events, '[blocked]\nvalues = ["family@example.com"]\n[types.user_id]\nunique = false\nlimit = 2\n'
    )
    diff = diff_profiles(before, after, examples=5)
    assert summary(diff) == {
        "profiles": [3, 3],  # ann, u9, family -> ann+u9, a4, a5
        "identifiers": [7, 6],
        "identifiers_changed": 7,
        "merged": 1,
        "split": 1,
        "changed": 0,
    }
    [merged] = diff.examples["merged"]
    assert [keys for _, keys in merged.before] == [
        (("anonymous_id", "a1"), ("email", "ann@example.com"), ("user_id", "u1")),
        (("user_id", "u9"),),
    ]
    assert [keys for _, keys in merged.after] == [
        (("anonymous_id", "a1"), ("email", "ann@example.com"), ("user_id", "u1"), ("user_id", "u9"))
    ]
    [split] = diff.examples["split"]
    assert [keys for _, keys in split.after] == [(("anonymous_id", "a4"),), (("anonymous_id", "a5"),)]
    assert diff.profiles_involved == {"merged": (2, 1), "split": (1, 2), "changed": (0, 0)}
    strongest_first = diff_profiles(before, after, priority=DEFAULT_RULES.priority).examples["merged"][0]
    assert strongest_first.after[0][1][:2] == (("user_id", "u1"), ("user_id", "u9"))
    assert compare_refusals(refused_before, refused_after) == [("blocked", 0, 2), ("cannot_link:user_id", 1, 0)]


def test_identifiers_gained_or_lost_and_regrouped_profiles_are_changes():
    before = {
        ("email", "a"): "p1",
        ("anonymous_id", "x"): "p1",
        ("email", "b"): "p2",
        ("email", "c"): "p3",
        ("email", "d"): "p3",
    }
    after = {
        ("email", "a"): "q1",
        ("email", "b"): "q2",
        ("email", "c"): "q2",
        ("email", "d"): "q3",
        ("email", "e"): "q4",
    }
    diff = diff_profiles(before, after, examples=1)
    assert diff.counts == {"merged": 0, "split": 0, "changed": 3}  # lost x; b, c, d regrouped; e is new
    assert diff.identifiers_changed == 6
    assert len(diff.examples["changed"]) == 1
    assert diff.examples["changed"][0].identifiers == 3  # the largest first


# --- the command on a real data directory -------------------------------------------------------------------------
STORY: list[dict[str, Any]] = [
    {"type": "identify", "anonymousId": "a1", "userId": "u1", "traits": {"email": "ann@example.com"}},
    {"type": "identify", "anonymousId": "a4", "traits": {"email": "family@example.com"}},
    {"type": "identify", "anonymousId": "a5", "traits": {"email": "family@example.com"}},
    {"type": "identify", "userId": "u9", "traits": {"email": "ann@example.com"}},
    {"type": "track", "anonymousId": "a1", "event": "Viewed", "timestamp": "2026-01-02T03:04:05Z"},
]
CANDIDATE = '[blocked]\nvalues = ["family@example.com"]\n[types.user_id]\nunique = false\nlimit = 2\n'


def text(output: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(output.split())


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    return {
        str(path.relative_to(directory)): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def make_data_dir(data: Path) -> None:
    running, server, thread = start_server(data)
    try:
        key = running.create_source("website")["write_key"]
        response = httpx.post(running.url + "/v1/batch", json={"batch": STORY}, auth=(key, ""), timeout=30)
        assert response.status_code == 200, response.text
        assert len(running.events()) == len(STORY)
    finally:
        stop_server(server, thread, running.runtime)


def test_dry_run_reports_the_difference_and_writes_nothing(tmp_path: Path):
    data = tmp_path / "data"
    make_data_dir(data)
    rules = tmp_path / "candidate.toml"
    rules.write_text(CANDIDATE)
    before = snapshot(data)
    result = CliRunner().invoke(
        main, ["identity", "dry-run", "--data", str(data), "--rules", str(rules), "--examples", "3"]
    )
    assert result.exit_code == 0, result.output
    assert snapshot(data) == before, "dry-run changed the data directory"
    out = result.output
    assert "Replayed 5 events" in out
    assert "current rules (defaults)" in out
    for expected in ("profiles", "merged (several -> one)", "split (one -> several)", "Refusals by rule"):
        assert expected in out
    assert "cannot_link:user_id" in out
    assert "user_id:u9" in out  # an example lists the identifiers
    assert "anonymous_id:a5" in out
    assert "Merged: 1 of 1" in out
    assert "Split: 1 of 1" in out
    with open_log(data) as log:  # the replay passes event times, for windowed rules
        events = list(log)
    assert len(log) == len(events) == 5
    last = events[-1]
    assert isinstance(last, LoggedEvent)
    assert last.ts == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert last.keys == [("anonymous_id", "a1")]
    assert snapshot(data) == before


def test_the_current_rules_come_from_the_data_directory_settings(tmp_path: Path):
    data = tmp_path / "data"
    make_data_dir(data)
    (data / "current.toml").write_text(CANDIDATE)
    (data / "onefold.toml").write_text('identity_rules_file = "current.toml"\n')
    rules = tmp_path / "candidate.toml"
    rules.write_text(CANDIDATE)
    result = CliRunner().invoke(main, ["identity", "dry-run", "--data", str(data), "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    assert "current rules (current.toml)" in result.output
    assert "Merged" not in result.output
    assert "Split" not in result.output


def test_dry_run_refuses_while_a_server_owns_the_data_directory(tmp_path: Path):
    data = tmp_path / "data"
    running, server, thread = start_server(data)
    rules = tmp_path / "candidate.toml"
    rules.write_text(CANDIDATE)
    try:
        result = CliRunner().invoke(main, ["identity", "dry-run", "--data", str(data), "--rules", str(rules)])
    finally:
        stop_server(server, thread, running.runtime)
    assert result.exit_code == 2
    assert "server is running" in text(result.output)
    assert "stop the server, or copy the data directory" in text(result.output)


def test_a_bad_rules_file_is_reported_before_anything_is_read(tmp_path: Path):
    rules = tmp_path / "candidate.toml"
    rules.write_text("[types.email]\nlimit = 0\n")
    result = CliRunner().invoke(main, ["identity", "dry-run", "--data", str(tmp_path), "--rules", str(rules)])
    assert result.exit_code == 2
    assert "types.email.limit: bad value 0" in text(result.output)
