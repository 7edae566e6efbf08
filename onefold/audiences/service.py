"""Audiences and computed traits as a service: definitions, full and incremental evaluation, previews.

The compiler is pure; this module loads definitions, compiles them for ``now`` and applies the results through
``AudienceTables``. One lock serializes every evaluation so two never diff the same members at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from onefold.audiences.compiler import Relations, compile_audience, compile_traits, sql_time, to_sql
from onefold.audiences.explain import explain
from onefold.audiences.model import Catalog, Condition, references, time_relative, time_relative_filter
from onefold.audiences.parse import fail, parse_computed_trait, parse_condition, reference_path
from onefold.audiences.reference import Event, Profile
from onefold.audiences.saved_values import SavedValues
from onefold.background import end_step, untimed
from onefold.errors import CollectError, Conflict, NotFound
from onefold.ids import random_uuid
from onefold.profiles.view import BUILT_IN_TRAITS
from onefold.store import DuckDBStore
from onefold.store.audience_tables import SCOPE, AudienceTables

RESERVED_NAMES = frozenset({"schema", "preview", "changes", "new", ".", ".."})  # paths under the API and console

FULL = Relations()
_JSON_TYPE = {"duckdb": "JSON", "postgres": "jsonb", "spark": "VARIANT"}
_TIME_TYPE = {"duckdb": "TIMESTAMPTZ", "postgres": "timestamptz", "spark": "TIMESTAMP"}
RELATIONS_READ = {  # what compiled SQL expects of the engine it runs on, per dialect
    dialect: {
        FULL.profiles: f"profile_id, facts {json}: {{traits, attributes, consent, subscriptions, reachable}}",
        FULL.events: f"profile_id, seq BIGINT, event, ts {_TIME_TYPE[dialect]}, properties {json}",
        "session": "time zone UTC",
    }
    for dialect, json in _JSON_TYPE.items()
}
PREVIEW_SAMPLE = 10
MAX_CACHED = 1_000
# compiled SQL is cached with this instant as "now" and the evaluation time substituted; no definition can
# name it (the parser refuses dates before 1900)
SENTINEL = datetime(1111, 11, 11, 11, 11, 11, 111111, tzinfo=UTC)
SENTINEL_SQL = sql_time(SENTINEL)


@dataclass(frozen=True)
class Definitions:
    """Every saved definition, parsed, with the rows they came from."""

    rows: dict[str, dict[str, Any]]  # id -> row
    catalog: Catalog
    version: tuple[Any, ...]  # every definition's content: changes whenever any definition does

    def audience_ids(self) -> list[str]:
        return [i for i, r in self.rows.items() if r["kind"] == "audience"]

    def trait_ids(self) -> list[str]:
        return [i for i, r in self.rows.items() if r["kind"] == "computed_trait"]


class _Erasing:
    """The evaluation lock, for an erasure: the saved values in memory are dropped once it is done."""

    def __init__(self, lock: threading.Lock, saved: SavedValues) -> None:
        self._lock = lock
        self._saved = saved

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *_: object) -> None:
        try:
            self._saved.clear()
        finally:
            self._lock.release()


class AudienceService:
    def __init__(
        self,
        store: DuckDBStore,
        identity_offset: Callable[[], int],
        clock: Callable[[], datetime],
        *,
        saved_in_memory: int = 100_000,
    ) -> None:
        self.tables = AudienceTables(store)
        self._store = store
        self._identity_offset = identity_offset
        self._clock = clock
        self.lock = threading.Lock()  # every evaluation, and erasures, hold it
        self.saved = SavedValues(saved_in_memory)  # the touched profiles' values after incremental rounds
        self.erasing = _Erasing(self.lock, self.saved)
        self._cache: dict[tuple[Any, ...], str] = {}
        # told how long each step of an incremental round took (scope: copying the touched profiles' rows,
        # evaluate: the statements and their commit, values: reading the scope's values back for memory)
        self.step_took: Callable[[str, float], None] = untimed

    # --- definitions --------------------------------------------------------------------------------------
    def create(self, kind: str, name: str, description: str, definition: Any) -> dict[str, Any]:
        _check_name(kind, name)
        self._check(kind, name, definition)
        item_id = random_uuid()
        self.tables.create(kind, item_id, name, description, definition, self._clock())
        self.evaluate([item_id], reason="the audience was created")
        return self.tables.get(kind, item_id)

    def update(self, kind: str, name: str, description: str | None, definition: Any) -> dict[str, Any]:
        row = self.tables.get(kind, name)
        self._check(kind, row["name"], definition)
        text = row["description"] if description is None else description
        self.tables.update(row["id"], text, definition, self._clock())
        self.evaluate([row["id"]], reason="the definition changed")
        dependents = self._dependents(row["name"], kind)
        if dependents:  # audiences referring to it, directly or through others, change with it
            self.evaluate(dependents, reason=f"{row['name']!r}, which it refers to, changed")
        return self.tables.get(kind, row["id"])

    def delete(self, kind: str, name: str) -> None:
        row = self.tables.get(kind, name)
        users = self._referenced_by(row)
        if users:
            raise Conflict(
                f"{row['name']!r} is used by {', '.join(sorted(users))}; change or delete those first",
                used_by=sorted(users),
            )
        with self.lock:
            self.tables.delete(self._store.cursor(), row["id"], self._clock(), self._identity_offset())
            self.saved.clear()

    def definitions(self) -> Definitions:
        rows = {r["id"]: r for kind in ("audience", "computed_trait") for r in self.tables.all(kind)}
        audiences = {r["name"]: parse_condition(r["definition"]) for r in rows.values() if r["kind"] == "audience"}
        traits = {
            r["name"]: parse_computed_trait(r["definition"]) for r in rows.values() if r["kind"] == "computed_trait"
        }
        version = tuple(
            sorted((i, r["name"], orjson.dumps(r["definition"], option=orjson.OPT_SORT_KEYS)) for i, r in rows.items())
        )
        return Definitions(rows, Catalog(traits=traits, audiences=audiences), version)

    def _check(self, kind: str, name: str, definition: Any) -> None:
        """Parse ``definition`` and compile it against the saved ones: unknown references and cycles are
        refused before anything is stored."""
        if kind == "computed_trait":
            parse_computed_trait(definition)
            return
        condition = parse_condition(definition)
        catalog = self.definitions().catalog
        _check_references(definition, condition, catalog)
        for audience in sorted(references(condition)[1]):
            loop = _path_to(name, audience, catalog)
            if loop is not None:
                where = reference_path(definition, "audience", audience) or "$"
                raise fail(where, f"audience {audience!r} refers back to {name!r} through {' -> '.join(loop)}")
        with_this = Catalog(traits=catalog.traits, audiences={**catalog.audiences, name: condition})
        for other in [name, *(n for n, c in catalog.audiences.items() if name in references(c)[1])]:
            compile_audience(with_this.audiences[other], self._clock(), with_this, FULL)  # raises on a cycle

    def _dependents(self, name: str, kind: str) -> list[str]:
        """Ids of the saved audiences whose meaning depends on the audience or computed trait ``name``."""
        found = self.definitions()
        position = 0 if kind == "computed_trait" else 1
        audiences = found.catalog.audiences
        names = {n for n, condition in audiences.items() if name in references(condition)[position]}
        frontier = set(names)
        while frontier:
            frontier = {n for n, c in audiences.items() if references(c)[1] & frontier} - names
            names |= frontier
        return sorted(i for i, r in found.rows.items() if r["kind"] == "audience" and r["name"] in names)

    def _referenced_by(self, row: dict[str, Any]) -> set[str]:
        position = 0 if row["kind"] == "computed_trait" else 1
        return {
            name
            for name, condition in self.definitions().catalog.audiences.items()
            if row["name"] in references(condition)[position]
        }

    def explain(self, name: str, profile_id: str) -> dict[str, Any]:
        """Whether ``profile_id`` is a member, and every condition of the audience with whether it holds now."""
        row = self.tables.get("audience", name)
        data = self.tables.profile_data(profile_id)
        if data is None:
            raise NotFound(f"no profile {profile_id!r}; find one with GET /api/profiles?q=...", profile_id=profile_id)
        facts, rows = data
        profile = Profile(profile_id, facts, tuple(Event(seq, event, ts, props) for seq, event, ts, props in rows))
        found = self.definitions()
        condition = found.catalog.audiences[row["name"]]
        entered_at = self.tables.membership(row["id"], profile_id)
        return {
            "audience": row["name"],
            "profile_id": profile_id,
            "member": entered_at is not None,
            "entered_at": entered_at,
            "explanation": explain(row["definition"], condition, profile, self._clock(), found.catalog),
        }

    def sql(self, kind: str, name: str, dialect: str) -> dict[str, Any]:
        """A saved definition's SQL in ``dialect`` at the current time, with the relations it reads."""
        row = self.tables.get(kind, name)
        found, now = self.definitions(), self._clock()
        catalog = found.catalog

        def build(at: datetime) -> Any:
            if kind == "audience":
                return compile_audience(catalog.audiences[row["name"]], at, catalog, FULL, dialect)
            return compile_traits({row["name"]: catalog.traits[row["name"]]}, at, FULL, dialect)

        return {
            "name": row["name"],
            "dialect": dialect,
            "at": sql_time(now),
            "returns": "profile_id of every member"
            if kind == "audience"
            else "profile_id and t0, the value as JSON (NULL when the profile has none)",
            "relations": RELATIONS_READ[dialect],
            "sql": self._compiled(("sql", row["id"]), found, FULL, now, build, dialect=dialect, pretty=True),
        }

    # --- evaluation ---------------------------------------------------------------------------------------
    def preview(self, definition: Any, limit: int = PREVIEW_SAMPLE) -> dict[str, Any]:
        condition = parse_condition(definition)
        catalog = self.definitions().catalog
        _check_references(definition, condition, catalog)
        sql = to_sql(compile_audience(condition, self._clock(), catalog, FULL))
        count, sample = self.tables.sample(self._store.cursor(), sql, limit)
        return {"count": count, "sample": sample}

    def evaluate(self, ids: Iterable[str] | None = None, *, reason: str) -> dict[str, Any]:
        """Evaluate audiences and computed traits over every profile (all of them when ``ids`` is None)."""
        with self.lock:
            cur = self._store.cursor()
            return self._evaluate(cur, self.definitions(), set(ids) if ids is not None else None, FULL, reason)

    def evaluate_profiles(self, profile_ids: Iterable[str], upto: int, *, reason: str) -> dict[str, Any]:
        """Evaluate everything again for ``profile_ids`` only (the profiles new events, merges or splits
        touched) and record ``upto`` as evaluated, in one transaction."""
        with self.lock:
            cur = self._store.cursor()
            lap = time.perf_counter()
            scope = set(profile_ids)
            profiles, events = self.tables.scoped_relations(cur, scope)
            try:
                lap = end_step(self.step_took, "scope", lap)
                relations = Relations(profiles=profiles, events=events)
                result = self._evaluate(cur, self.definitions(), None, relations, reason, upto=upto, scoped=True)
                lap = end_step(self.step_took, "evaluate", lap)
                self.saved.put(self.tables.of_scope(cur, sorted(scope)))  # every value of these profiles is fresh
                end_step(self.step_took, "values", lap)
                return result
            finally:
                cur.unregister(SCOPE)

    def refresh(self, *, reason: str) -> dict[str, Any]:
        """Evaluate again, over every profile, what time alone can change (windows, waits, last-N-days)."""
        with self.lock:
            found = self.definitions()
            changing = {i for i, row in found.rows.items() if _changes_with_time(row, found.catalog)}
            if not changing:
                return {"audiences": {}, "traits": 0}
            return self._evaluate(self._store.cursor(), found, changing, FULL, reason)

    def catch_up(self) -> int:
        """At startup: when profiles changed since the last evaluation recorded, evaluate everything. Returns
        the log position evaluated."""
        upto = self._identity_offset()
        if self.tables.offset() != upto:
            with self.lock:
                self._evaluate(self._store.cursor(), self.definitions(), None, FULL, "evaluated at startup", upto=upto)
        return upto

    def _evaluate(
        self,
        cur: Any,
        found: Definitions,
        ids: set[str] | None,
        relations: Relations,
        reason: str,
        *,
        upto: int | None = None,
        scoped: bool = False,
    ) -> dict[str, Any]:
        """One round: the chosen traits and audiences (all when ``ids`` is None), in one transaction, with the
        evaluated position when ``upto`` is given."""
        now = self._clock()
        position = self._identity_offset() if upto is None else upto
        statements: list[str] = []
        trait_ids = [i for i in found.trait_ids() if ids is None or i in ids]
        if trait_ids:
            names = [found.rows[i]["name"] for i in trait_ids]
            traits = {name: found.catalog.traits[name] for name in names}
            sql = self._compiled(
                ("traits", *names), found, relations, now, lambda at: compile_traits(traits, at, relations)
            )
            statements += self.tables.trait_statements(trait_ids, sql, scoped=scoped, now=now)
        audience_ids = [i for i in found.audience_ids() if ids is None or i in ids]
        matching = {i: self._audience_sql(i, found, relations, now) for i in audience_ids}
        if matching:
            statements += self.tables.membership_statements(
                matching, scoped=scoped, now=now, reason=reason, upto=position
            )
        if upto is not None:
            statements.append(self.tables.offset_statement(upto))
        try:
            counts = self.tables.run_round(cur, statements) if statements else {}
        finally:
            if not scoped:  # a round over every profile may change any profile's values: memory forgets them all
                self.saved.clear()
        changed = {
            found.rows[i]["name"]: {"entered": counts[i][0], "exited": counts[i][1]}
            for i in audience_ids
            if i in counts
        }
        return {"audiences": changed, "traits": len(trait_ids)}

    def _audience_sql(self, audience_id: str, found: Definitions, relations: Relations, now: datetime) -> str:
        condition = found.catalog.audiences[found.rows[audience_id]["name"]]
        return self._compiled(
            ("audience", audience_id),
            found,
            relations,
            now,
            lambda at: compile_audience(condition, at, found.catalog, relations),
        )

    def _compiled(
        self,
        key: tuple[str, ...],
        found: Definitions,
        relations: Relations,
        now: datetime,
        build: Callable[[datetime], Any],
        *,
        dialect: str = "duckdb",
        pretty: bool = False,
    ) -> str:
        """The SQL of ``build`` at ``now``. Compiled once per definition version with a sentinel time that is then
        replaced: compiling takes milliseconds of interpreter time, and evaluation rounds follow every commit."""
        cache_key = (*key, found.version, relations, dialect, pretty)
        text = self._cache.get(cache_key)
        if text is None:
            if len(self._cache) > MAX_CACHED:
                self._cache.clear()
            text = self._cache[cache_key] = to_sql(build(SENTINEL), dialect, pretty=pretty)
        return text.replace(SENTINEL_SQL, sql_time(now))


def _check_name(kind: str, name: str) -> None:
    """A name is part of the item's URLs (API and console) and, for a computed trait, of every profile's traits."""
    if not name or len(name) > 200 or not name.isprintable():
        raise CollectError("a name has 1 to 200 printable characters", field="name")
    if any(c in name for c in "/?#%"):
        raise CollectError(
            f"a name may not contain '/', '?', '#' or '%' (it is part of URLs); got {name!r}", field="name"
        )
    if name in RESERVED_NAMES:
        raise CollectError(
            f"{name!r} is one of the API's or the console's own paths; choose another name", field="name"
        )
    if kind == "computed_trait" and name in BUILT_IN_TRAITS:
        raise Conflict(
            f"'{name}' is a built-in computed trait of every profile; choose another name",
            field="name",
            built_in=sorted(BUILT_IN_TRAITS),
        )


def _changes_with_time(row: dict[str, Any], catalog: Catalog) -> bool:
    if row["kind"] == "computed_trait":
        return time_relative_filter(catalog.traits[row["name"]].events)
    return time_relative(catalog.audiences[row["name"]])


def _check_references(definition: Any, condition: Condition, catalog: Catalog) -> None:
    """Refuse a reference to a computed trait or audience that is not saved, pointing at the reference."""
    traits, audiences = references(condition)
    for trait in sorted(traits - set(catalog.traits)):
        where = reference_path(definition, "computed_trait", trait) or "$"
        raise fail(where, f"no computed trait is named {trait!r}", allowed=sorted(catalog.traits))
    for audience in sorted(audiences - set(catalog.audiences)):
        where = reference_path(definition, "audience", audience) or "$"
        raise fail(where, f"no audience is named {audience!r}", allowed=sorted(catalog.audiences))


def _path_to(target: str, start: str, catalog: Catalog) -> list[str] | None:
    """The chain of saved audiences from ``start`` to a reference to ``target``, if there is one."""
    seen: set[str] = set()
    stack: list[list[str]] = [[start]]
    while stack:
        path = stack.pop()
        current = path[-1]
        if current == target:
            return path
        if current in seen or current not in catalog.audiences:
            continue
        seen.add(current)
        stack.extend([*path, nxt] for nxt in sorted(references(catalog.audiences[current])[1], reverse=True))
    return None
