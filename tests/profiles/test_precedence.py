"""Trait precedence: a configured source wins a trait conflict even against newer values; errors are precise."""

from __future__ import annotations

import pytest

from onefold.errors import ConfigError
from onefold.profiles.precedence import Precedence, parse_precedence
from tests.profiles.test_profile_api import profile_get, send, settle, token


def test_ranks_follow_the_trait_list_then_the_source_list():
    precedence = parse_precedence('sources = ["crm"]\n[traits]\nemail = ["esp", "crm"]\n', "test.toml")
    names = {"s1": ("Salesforce", "crm"), "s2": ("newsletter", "esp"), "s3": ("website", "web")}
    rank = precedence.ranker(names.get)
    assert rank("first_name", "s1") < rank("first_name", "s3")  # the CRM first for every trait
    assert rank("first_name", "s2") == rank("first_name", "s3")  # unlisted sources rank alike, after
    assert rank("email", "s2") < rank("email", "s1") < rank("email", "s3")
    assert Precedence().ranker(names.get)("email", "s3") == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("source = []", "unknown key(s) source"),
        ('sources = "crm"', "'sources' must be a list"),
        ("[traits]\nemail = [1]", "'traits.email' must be a list"),
        ("sources = [", "not valid TOML"),
    ],
)
def test_bad_files_name_the_problem(text, message):
    with pytest.raises(ConfigError, match=r"x\.toml") as caught:
        parse_precedence(text, "x.toml")
    assert message in caught.value.message


def test_the_crm_wins_names_even_when_the_website_is_newer(make_server, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "precedence.toml").write_text('[traits]\nlast_name = ["crm"]\n')
    server = make_server(data_dir, trait_precedence_file="precedence.toml")
    crm = server.create_source("salesforce", kind="crm")["write_key"]
    web = server.create_source("website", kind="web")["write_key"]
    send(
        server,
        crm,
        [
            {
                "type": "identify",
                "userId": "c-1",
                "timestamp": "2026-01-01T00:00:00Z",
                "traits": {"email": "ann@example.com", "lastName": "Smith", "plan": "gold"},
            }
        ],
    )
    send(
        server,
        web,
        [
            {
                "type": "identify",
                "userId": "w-1",
                "timestamp": "2026-03-01T00:00:00Z",
                "traits": {"email": "ann@example.com", "lastName": "smiht", "plan": "free"},
            }
        ],
    )
    settle(server)
    reader = token(server, "profiles:read")["token"]
    traits = profile_get(server, reader, "/email:ann@example.com/traits", include="last_name,plan").json()["traits"]
    assert traits == {"last_name": "Smith", "plan": "free"}  # precedence for last_name, event time for plan
