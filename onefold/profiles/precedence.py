"""Per-source and per-trait precedence for profile traits, from a small TOML file.

    # which sources win a trait conflict, strongest first (source names or kinds); unlisted sources come after
    sources = ["crm", "pos"]

    [traits]
    # per trait, overriding the order above for that trait
    email = ["email-platform", "crm"]
    first_name = ["crm"]

Within the same rank, the later event time wins. Changing the file affects events folded from then on: states
keep the winning candidate of each trait, not every candidate.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from onefold.errors import ConfigError

# source id -> (name, kind)
SourceLookup = Callable[[str], tuple[str, str] | None]


@dataclass(frozen=True, slots=True)
class Precedence:
    sources: tuple[str, ...] = ()
    traits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def ranker(self, lookup: SourceLookup) -> Callable[[str, str], int]:
        """``rank(trait, source_id)``: lower wins; sources named in no list rank last."""
        cache: dict[str, tuple[str, str] | None] = {}

        def position(order: Sequence[str], source_id: str) -> int:
            if source_id not in cache:
                cache[source_id] = lookup(source_id)
            found = cache[source_id]
            for n, name in enumerate(order):
                if found is not None and name in found:
                    return n
            return len(order)

        def rank(trait: str, source_id: str) -> int:
            order = self.traits.get(trait, self.sources)
            return position(order, source_id) if order else 0

        return rank


def parse_precedence(text: str, origin: str) -> Precedence:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc})") from exc
    unknown = set(data) - {"sources", "traits"}
    if unknown:
        raise ConfigError(f"{origin}: unknown key(s) {', '.join(sorted(unknown))}; allowed: sources, traits")
    traits = data.get("traits", {})
    if not isinstance(traits, dict):
        raise ConfigError(f"{origin}: 'traits' must be a table of trait = [source names or kinds]")
    return Precedence(
        sources=_names(data.get("sources", []), f"{origin}: 'sources'"),
        traits={trait: _names(order, f"{origin}: 'traits.{trait}'") for trait, order in traits.items()},
    )


def _names(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f'{where} must be a list of source names or kinds, strongest first, e.g. ["crm"]')
    return tuple(value)


def load_precedence(path_text: str | None, data_dir: Path) -> Precedence:
    if not path_text:
        return Precedence()
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = data_dir / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the trait precedence file ({exc}); fix trait_precedence_file") from exc
    return parse_precedence(text, str(path))
