"""Identity rules from a TOML file: what the operator changes on top of ``DEFAULT_RULES``.

Sections (all optional; ``examples/identity-rules.toml`` documents each line):

- ``[types.<type>]``: ``priority``, ``unique``, ``limit``, ``window_days``, ``hub_threshold``, ``weak``,
  ``track``. A default type keeps its defaults for what is not set. Every other type (a ``context.externalIds``
  type, say) is tracked too, with the ``[defaults]``; ``track = false`` stops tracking a type.
- ``[caps]``: ``max_identifiers``, ``max_merges``.
- ``[defaults]``: ``priority``, ``limit`` and ``hub_threshold`` for types that set none.
- ``[blocked]``: ``values`` and ``patterns`` added to the default lists, or replacing them with
  ``replace_defaults = true``.

Validation is strict: an unknown section or key, a value of the wrong kind or out of range, or settings that
contradict each other (a limit on a unique type) raise ``RulesError`` naming the file, the key, and what is
allowed.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from onefold.config import Settings
from onefold.errors import RulesError
from onefold.identity.rules import DEFAULT_RULES, IdentityRules

DAY_SECONDS = 86_400.0
_TYPE_NAME = re.compile(r"^[a-z0-9_]+$")
_SECTIONS = ("types", "caps", "defaults", "blocked")


@dataclass(frozen=True, slots=True)
class _Field:
    kind: str  # "int", "number", "bool", "strings"
    minimum: float | None = None
    help: str = ""

    def allowed(self) -> str:
        if self.kind == "bool":
            return "true or false"
        if self.kind == "strings":
            return "a list of strings"
        what = "a whole number" if self.kind == "int" else "a number"
        if self.minimum is not None:
            bound = "0" if self.minimum == 0 else f"{self.minimum:g}"
            what += f" > {bound}" if self.kind == "number" else f" >= {int(self.minimum)}"
        return what


_TYPE_FIELDS: dict[str, _Field] = {
    "priority": _Field("int", 0, "lower is stronger: when a rule is broken, the weakest identifier is set aside"),
    "unique": _Field("bool", help="one value per profile; two values never merge (cannot-link)"),
    "limit": _Field("int", 1, "most distinct values per profile (within window_days when set)"),
    "window_days": _Field("number", 0, "days of event time the limit and hub detection look back"),
    "hub_threshold": _Field("int", 1, "distinct values of one unique type seen with it before it is a hub"),
    "weak": _Field("bool", help="may not be the only tie between an event with its own unique id and a profile"),
    "track": _Field("bool", help="false stops tracking the type"),
}
_SECTION_FIELDS: dict[str, dict[str, _Field]] = {
    "caps": {"max_identifiers": _Field("int", 1), "max_merges": _Field("int", 0)},
    "defaults": {"priority": _Field("int", 0), "limit": _Field("int", 1), "hub_threshold": _Field("int", 1)},
    "blocked": {"values": _Field("strings"), "patterns": _Field("strings"), "replace_defaults": _Field("bool")},
}


def load_rules(settings: Settings) -> IdentityRules:
    """The rules the server runs with: ``identity_rules_file`` (relative to the data directory) or the defaults."""
    if not settings.identity_rules_file:
        return DEFAULT_RULES
    path = Path(settings.identity_rules_file).expanduser()
    if not path.is_absolute():
        path = settings.data_path / path
    return load_rules_file(path)


def load_rules_file(path: Path) -> IdentityRules:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"{path}: identity rules file not found; fix identity_rules_file or create it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path}: cannot read the identity rules file ({exc})") from exc
    return parse_rules(text, origin=str(path))


def parse_rules(text: str, *, origin: str = "<rules>", base: IdentityRules = DEFAULT_RULES) -> IdentityRules:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{origin}: not valid TOML ({exc})") from exc
    return rules_from_mapping(data, origin=origin, base=base)


def rules_from_mapping(
    data: Mapping[str, Any], *, origin: str = "<rules>", base: IdentityRules = DEFAULT_RULES
) -> IdentityRules:
    """Apply a parsed rules document to ``base``; raises ``RulesError`` on the first problem found."""
    for section in data:
        if section not in _SECTIONS:
            _fail(origin, section, "unknown section", f"sections are {', '.join(_SECTIONS)}")
        if not isinstance(data[section], dict):
            _fail(origin, section, "must be a table", f"write it as [{section}]")
    builder = _Builder(base, origin)
    for name, entry in data.get("types", {}).items():
        builder.type(name, entry)
    caps = _section(data, "caps", origin)
    defaults = _section(data, "defaults", origin)
    blocked = _section(data, "blocked", origin)
    return builder.build(caps, defaults, blocked)


def _section(data: Mapping[str, Any], name: str, origin: str) -> dict[str, Any]:
    fields = _SECTION_FIELDS[name]
    values: dict[str, Any] = {}
    for key, raw in data.get(name, {}).items():
        field = fields.get(key)
        if field is None:
            _fail(origin, f"{name}.{key}", "unknown key", f"[{name}] takes {', '.join(fields)}")
        values[key] = _check(origin, f"{name}.{key}", raw, field)
    return values


class _Builder:
    def __init__(self, base: IdentityRules, origin: str) -> None:
        self.base, self.origin = base, origin
        self.priority = dict(base.priority)
        self.unique = set(base.unique_types)
        self.limits = dict(base.limits)
        self.windows = dict(base.windows)
        self.hubs = dict(base.hub_thresholds)
        self.weak = set(base.weak_types)
        self.untracked = set(base.untracked)

    def type(self, name: str, entry: Any) -> None:
        where = f"types.{name}"
        if not _TYPE_NAME.match(name):
            _fail(
                self.origin,
                where,
                "not an identifier type name",
                "types are lowercase letters, digits and underscores, as the collector writes them "
                "(a context.externalIds type 'Member No' becomes 'member_no')",
            )
        if not isinstance(entry, dict):
            _fail(self.origin, where, "must be a table", f"write it as [types.{name}]")
        values: dict[str, Any] = {}
        for key, raw in entry.items():
            field = _TYPE_FIELDS.get(key)
            if field is None:
                _fail(self.origin, f"{where}.{key}", "unknown key", f"a type takes {', '.join(_TYPE_FIELDS)}")
            values[key] = _check(self.origin, f"{where}.{key}", raw, field)
        if values.get("track") is False:
            if len(values) > 1:
                _fail(self.origin, where, "track = false takes no other keys", "remove them or the track key")
            self._forget(name)
            return
        self.untracked.discard(name)
        if "priority" in values:
            self.priority[name] = values["priority"]
        if "unique" in values:
            (self.unique.add if values["unique"] else self.unique.discard)(name)
        if "weak" in values:
            (self.weak.add if values["weak"] else self.weak.discard)(name)
        if "limit" in values:
            self.limits[name] = values["limit"]
        if "window_days" in values:
            self.windows[name] = values["window_days"] * DAY_SECONDS
        if "hub_threshold" in values:
            self.hubs[name] = values["hub_threshold"]
        if name in self.unique:
            for key in ("limit", "window_days", "hub_threshold", "weak"):
                if key in values:
                    _fail(
                        self.origin,
                        f"{where}.{key}",
                        "does not apply to a unique type",
                        "a unique type holds one value per profile, forever, and is never a hub or weak; "
                        "set unique = false to allow several values",
                    )
            self.windows.pop(name, None)
            self.weak.discard(name)

    def _forget(self, name: str) -> None:
        self.untracked.add(name)
        self.priority.pop(name, None)
        self.unique.discard(name)
        self.weak.discard(name)
        for table in (self.limits, self.windows, self.hubs):
            table.pop(name, None)

    def build(self, caps: dict[str, Any], defaults: dict[str, Any], blocked: dict[str, Any]) -> IdentityRules:
        base = self.base
        replace = blocked.get("replace_defaults", False)
        values = frozenset(v.strip().lower() for v in blocked.get("values", []))
        patterns = tuple(self._pattern(i, p) for i, p in enumerate(blocked.get("patterns", [])))
        return IdentityRules(
            priority=self.priority,
            default_priority=defaults.get("priority", base.default_priority),
            untracked=frozenset(self.untracked),
            unique_types=frozenset(self.unique),
            limits=self.limits,
            default_limit=defaults.get("limit", base.default_limit),
            max_identifiers=caps.get("max_identifiers", base.max_identifiers),
            max_merges=caps.get("max_merges", base.max_merges),
            hub_thresholds=self.hubs,
            default_hub_threshold=defaults.get("hub_threshold", base.default_hub_threshold),
            weak_types=frozenset(self.weak),
            windows=self.windows,
            blocked_values=values if replace else base.blocked_values | values,
            blocked_patterns=patterns if replace else base.blocked_patterns,
            extra_blocked_patterns=() if replace else base.extra_blocked_patterns + patterns,
        )

    def _pattern(self, index: int, text: str) -> re.Pattern[str]:
        try:
            return re.compile(text)
        except re.error as exc:
            _fail(
                self.origin,
                f"blocked.patterns[{index}]",
                f"bad regular expression {text!r} ({exc})",
                "see Python's re syntax",
            )


def _check(origin: str, where: str, raw: Any, field: _Field) -> Any:
    if field.kind == "bool":
        ok = isinstance(raw, bool)
    elif field.kind == "strings":
        ok = isinstance(raw, list) and all(isinstance(item, str) for item in raw)
    elif isinstance(raw, bool):  # TOML true is not 1
        ok = False
    elif field.kind == "int":
        ok = isinstance(raw, int) and (field.minimum is None or raw >= field.minimum)
    else:
        ok = isinstance(raw, int | float) and math.isfinite(raw) and raw > (field.minimum or 0)
    if not ok:
        suffix = f" ({field.help})" if field.help else ""
        _fail(origin, where, f"bad value {raw!r}", f"allowed: {field.allowed()}{suffix}")
    return float(raw) if field.kind == "number" else raw


def _fail(origin: str, where: str, problem: str, allowed: str) -> NoReturn:
    raise RulesError(f"{origin}: {where}: {problem}; {allowed}", file=origin, key=where)
