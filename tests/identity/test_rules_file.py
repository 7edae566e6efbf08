"""Identity rules from a TOML file: what it changes, what it leaves, and the precise errors it raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from onefold.config import Settings, load_settings
from onefold.errors import OnefoldError, RulesError
from onefold.identity.graph import IdentityGraph
from onefold.identity.rules import BLOCKED_PATTERNS, DEFAULT_RULES
from onefold.identity.rules_file import load_rules, load_rules_file, parse_rules

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "identity-rules.toml"


def test_an_empty_file_gives_the_defaults():
    assert parse_rules("") == DEFAULT_RULES


def test_the_shipped_example_loads_and_changes_what_it_says():
    rules = load_rules_file(EXAMPLE)
    assert rules.windows == {"anonymous_id": 365 * 86_400.0, "device_id": 180 * 86_400.0}
    assert (rules.limit("anonymous_id"), rules.hub_threshold("device_id"), rules.limit("phone")) == (100, 1, 3)
    assert rules.priority["member_no"] == 4
    assert "member_no" in rules.unique_types
    assert rules.limit("member_no") == 1
    assert rules.is_blocked(("email", " NoReply@Shop.example"))
    assert rules.is_blocked(("email", "qa+order7@shop.example"))
    assert rules.is_blocked(("anonymous_id", "loadtest-42"))
    assert rules.is_blocked(("email", "null"))  # the built-in values stay
    assert rules.is_blocked(("anonymous_id", "00000000-0000-0000-0000-000000000000"))  # and the patterns
    assert not rules.is_blocked(("email", "ann@example.com"))
    assert rules.blocked_patterns is BLOCKED_PATTERNS  # the fast path of the built-in patterns is kept


def test_a_custom_type_links_as_configured():
    rules = parse_rules("[types.member_no]\npriority = 4\nunique = true\n")
    graph = IdentityGraph(rules)
    graph.observe(1, [("member_no", "M1"), ("email", "home@example.com")])
    refused = graph.observe(2, [("member_no", "M2"), ("email", "home@example.com")])
    assert [r.rule for r in refused.refusals] == ["cannot_link:member_no"]


def test_a_type_nobody_configured_links_with_the_defaults_and_is_set_aside_first():
    graph = IdentityGraph(DEFAULT_RULES)
    first = graph.observe(1, [("shopify_id", "S1"), ("anonymous_id", "a1")])
    assert graph.observe(2, [("shopify_id", "S1"), ("email", "ann@example.com")]).profile_id == first.profile_id
    assert DEFAULT_RULES.priority_of("shopify_id") > max(DEFAULT_RULES.priority.values())
    # a sixth value breaks the default limit of 5; the unconfigured type is the one set aside, not the email
    for seq, value in enumerate(("S2", "S3", "S4", "S5"), start=3):
        graph.observe(seq, [("shopify_id", value), ("email", "ann@example.com")])
    over = graph.observe(9, [("shopify_id", "S6"), ("email", "ann@example.com")])
    assert [(r.rule, r.key) for r in over.refusals] == [("limit:shopify_id", ("shopify_id", "S6"))]
    assert over.profile_id == first.profile_id
    untracked = IdentityGraph(parse_rules("[types.shopify_id]\ntrack = false\n"))
    assert untracked.observe(1, [("shopify_id", "S1")]).profile_id is None


def test_types_can_be_untracked_made_unique_or_not_and_caps_and_defaults_changed():
    rules = parse_rules(
        """
        [types.advertising_id]
        track = false
        [types.user_id]
        unique = false
        limit = 2
        [types.email]
        unique = true
        [caps]
        max_identifiers = 50
        max_merges = 0
        [defaults]
        priority = 20
        limit = 7
        hub_threshold = 2
        """
    )
    assert rules.priority_of("member_no") == 20
    assert not rules.tracks(("advertising_id", "x"))
    assert "advertising_id" not in rules.hub_thresholds
    assert rules.limit("user_id") == 2
    assert "email" in rules.unique_types
    assert (rules.max_identifiers, rules.max_merges, rules.default_limit, rules.default_hub_threshold) == (50, 0, 7, 2)
    assert rules.limit("esp_id") == 7


def test_blocked_lists_can_replace_the_defaults():
    rules = parse_rules('[blocked]\nvalues = ["Walk-In"]\npatterns = ["^x+$"]\nreplace_defaults = true\n')
    assert rules.is_blocked(("pos_id", "walk-in"))
    assert rules.is_blocked(("pos_id", "xxx"))
    assert not rules.is_blocked(("email", "null"))
    assert not rules.is_blocked(("anonymous_id", "00000000-0000-0000-0000-000000000000"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[colours]\nred = 1\n", "<rules>: colours: unknown section; sections are types, caps, defaults, blocked"),
        ("types = 3\n", "<rules>: types: must be a table"),
        ("[types.email]\nlimt = 3\n", "<rules>: types.email.limt: unknown key; a type takes priority, unique, limit"),
        ("[types.email]\nlimit = 0\n", "<rules>: types.email.limit: bad value 0; allowed: a whole number >= 1"),
        ("[types.email]\nlimit = true\n", "types.email.limit: bad value True; allowed: a whole number >= 1"),
        ("[types.email]\nlimit = 2.5\n", "types.email.limit: bad value 2.5; allowed: a whole number >= 1"),
        ("[types.email]\nwindow_days = 0\n", "types.email.window_days: bad value 0; allowed: a number > 0"),
        ("[types.email]\nweak = 1\n", "types.email.weak: bad value 1; allowed: true or false"),
        ("[types.'Member No']\npriority = 1\n", "not an identifier type name; types are lowercase letters"),
        ("[types.user_id]\nlimit = 2\n", "types.user_id.limit: does not apply to a unique type"),
        ("[types.user_id]\nwindow_days = 30\n", "types.user_id.window_days: does not apply to a unique type"),
        ("[types.email]\ntrack = false\nlimit = 2\n", "types.email: track = false takes no other keys"),
        ("[caps]\nmax_ids = 5\n", "caps.max_ids: unknown key; [caps] takes max_identifiers, max_merges"),
        ("[caps]\nmax_merges = -1\n", "caps.max_merges: bad value -1; allowed: a whole number >= 0"),
        ('[blocked]\nvalues = "x"\n', "blocked.values: bad value 'x'; allowed: a list of strings"),
        ('[blocked]\npatterns = ["(unclosed"]\n', "blocked.patterns[0]: bad regular expression '(unclosed'"),
        ("[types.email\n", "<rules>: not valid TOML"),
    ],
)
def test_mistakes_are_refused_naming_the_key_and_what_is_allowed(text, message):
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    assert message in caught.value.message
    assert isinstance(caught.value, OnefoldError)


def test_the_setting_names_a_file_read_from_the_data_directory(tmp_path: Path):
    assert load_rules(Settings(data_dir=str(tmp_path))) is DEFAULT_RULES
    (tmp_path / "rules.toml").write_text("[caps]\nmax_merges = 7\n")
    (tmp_path / "onefold.toml").write_text('identity_rules_file = "rules.toml"\n')
    settings = load_settings(flags={"data_dir": str(tmp_path)}, environ={})
    assert settings.identity_rules_file == "rules.toml"
    assert load_rules(settings).max_merges == 7
    missing = Settings(data_dir=str(tmp_path), identity_rules_file=str(tmp_path / "nope.toml"))
    with pytest.raises(RulesError, match=r"nope\.toml: identity rules file not found"):
        load_rules(missing)
    (tmp_path / "bad.toml").write_text("[caps]\nmax_merges = 'many'\n")
    with pytest.raises(RulesError) as caught:
        load_rules(Settings(data_dir=str(tmp_path), identity_rules_file="bad.toml"))
    assert caught.value.message.startswith(f"{tmp_path / 'bad.toml'}: caps.max_merges: bad value 'many'")
    assert caught.value.details == {"file": str(tmp_path / "bad.toml"), "key": "caps.max_merges"}
