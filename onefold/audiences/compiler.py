"""Compile audience conditions and computed traits to SQL through sqlglot. Pure: (definition, now) -> query.

The query reads two relations (``Relations``): profiles ``(profile_id, facts JSON)`` and their events
``(profile_id, seq, event, ts, properties JSON)``. The events any part reads (``evx``) carry each property path
extracted once, only for the events that read it; every count and aggregate becomes one column of a single
grouped scan of them (``ev``); sequences and value-ordered traits (first, last, most frequent, unique) get a
grouped CTE each. Each path into a profile's facts is extracted once too. The profile filter is then a boolean
expression over those columns in which every leaf is made two-valued (``coalesce(..., FALSE)``), so ``NOT``
means what it means in ``reference.py``.

DuckDB is the reference dialect. What PostgreSQL and Spark spell differently comes from ``dialects.py``
(compile with ``dialect="postgres"`` or ``"spark"``, then ``to_sql`` in the same dialect).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlglot import exp

from onefold.audiences.dialects import DIALECTS, SqlDialect
from onefold.audiences.model import (
    DATE_PATTERN,
    UNIQUE_LIST_LIMIT,
    AggregateCondition,
    AllOf,
    AnyOf,
    AudienceCondition,
    Catalog,
    ComputedTrait,
    ComputedTraitCondition,
    Condition,
    ConsentCondition,
    EventCondition,
    EventFilter,
    NotCondition,
    Path,
    Predicate,
    ReachableCondition,
    SequenceCondition,
    SubscriptionCondition,
    TraitCondition,
)
from onefold.audiences.parse import fail


@dataclass(frozen=True, slots=True)
class Relations:
    profiles: str = "profiles"
    events: str = "event_profiles"


def compile_audience(
    condition: Condition, now: datetime, catalog: Catalog, relations: Relations, dialect: str = "duckdb"
) -> exp.Select:
    """``SELECT profile_id`` of the profiles for which ``condition`` holds at ``now``."""
    builder = _Builder(now, catalog, relations, DIALECTS[dialect])
    where = builder.condition(condition, ())
    return builder.select([exp.column("profile_id", table="p")], where)


def compile_traits(
    traits: Mapping[str, ComputedTrait], now: datetime, relations: Relations, dialect: str = "duckdb"
) -> exp.Select:
    """``SELECT profile_id, t0, t1, ...``: each computed trait's value as JSON, in the order of ``traits``."""
    builder = _Builder(now, Catalog(), relations, DIALECTS[dialect])
    columns: list[exp.Expr] = [exp.column("profile_id", table="p")]
    for i, trait in enumerate(traits.values()):
        value, kind = builder.trait(trait)
        as_json = value if kind == "json" else builder.sql.to_json(value)
        columns.append(exp.alias_(as_json, f"t{i}"))
    return builder.select(columns, None)


def to_sql(query: exp.Select, dialect: str = "duckdb", *, pretty: bool = False) -> str:
    """The query's text in ``dialect``, the one it was compiled for."""
    if dialect not in ("duckdb", "postgres"):  # others have no NOT MATERIALIZED (and inline CTEs anyway)
        query = query.copy()
        for cte in query.find_all(exp.CTE):
            cte.set("materialized", None)
    return query.sql(dialect=dialect, pretty=pretty)


# --- building ----------------------------------------------------------------------------------------------
@dataclass
class _Builder:
    now: datetime
    catalog: Catalog
    relations: Relations
    sql: SqlDialect
    aggregates: list[exp.Expr] = field(default_factory=list)
    event_names: set[str] = field(default_factory=set)  # the events ``ev`` aggregates
    read_events: set[str] = field(default_factory=set)  # the events any part reads
    ctes: list[tuple[str, exp.Select]] = field(default_factory=list)
    facts: dict[Path, str] = field(default_factory=dict)  # each path into a profile's facts, read once
    # each event property path read, once per event row, and only for the events that read it
    properties: dict[Path, tuple[str, set[str]]] = field(default_factory=dict)

    def select(self, columns: list[exp.Expr], where: exp.Expr | None) -> exp.Select:
        profiles: exp.Expr = exp.to_table(self.relations.profiles)
        if self.facts:  # one extraction per path, however many conditions read it
            facts = exp.column("facts")
            extracted = [exp.alias_(self.sql.json_at(facts, path), alias) for path, alias in self.facts.items()]
            profiles = exp.select("profile_id", *extracted).from_(profiles).subquery()
        query = exp.select(*columns).from_(exp.alias_(profiles, "p"))
        self.read_events.update(self.event_names)
        if self.read_events:
            query = query.with_("evx", self._event_rows(), materialized=False)
        if self.aggregates:
            grouped = (
                exp.select("profile_id", *self.aggregates)
                .from_(self._events(self.event_names))
                .where(exp.column("event").isin(*sorted(self.event_names)))
                .group_by("profile_id")
            )
            query = query.with_("ev", grouped).join("ev", using=["profile_id"], join_type="left")
        for name, cte in self.ctes:
            query = query.with_(name, cte).join(name, using=["profile_id"], join_type="left")
        return query.where(where) if where is not None else query

    def _fact(self, path: Path) -> exp.Expr:
        alias = self.facts.setdefault(path, f"f{len(self.facts)}")
        return exp.column(alias, table="p")

    def _events(self, names: set[str]) -> exp.Expr:
        """The event rows (``evx``); ``names`` are the events the caller reads."""
        self.read_events.update(names)
        return exp.to_table("evx")

    def _event_rows(self) -> exp.Select:
        """``evx``: the events any part reads, with each property path extracted once."""

        def read(path: Path, names: set[str]) -> exp.Expr:
            value = self.sql.json_at(exp.column("properties"), path)
            return exp.Case().when(exp.column("event").isin(*sorted(names)), value)

        extracted = [exp.alias_(read(path, names), alias) for path, (alias, names) in self.properties.items()]
        return (
            exp.select("profile_id", "seq", "event", "ts", *extracted)
            .from_(exp.to_table(self.relations.events))
            .where(exp.column("event").isin(*sorted(self.read_events)))
        )

    def _property(self, events: EventFilter, path: Path) -> exp.Expr:
        alias, names = self.properties.setdefault(path, (f"x{len(self.properties)}", set()))
        names.add(events.event)
        return exp.column(alias)

    # --- conditions -----------------------------------------------------------------------------------
    def condition(self, node: Condition, resolving: tuple[str, ...]) -> exp.Expr:
        if isinstance(node, AllOf):
            return exp.and_(*(self.condition(c, resolving) for c in node.children))
        if isinstance(node, AnyOf):
            return exp.or_(*(self.condition(c, resolving) for c in node.children))
        if isinstance(node, NotCondition):
            return exp.not_(exp.paren(self.condition(node.child, resolving)))
        if isinstance(node, AudienceCondition):
            if node.name in resolving:
                raise fail("$", f"audience {node.name!r} refers to itself through {' -> '.join(resolving)}")
            if node.name not in self.catalog.audiences:
                raise fail("$", f"no audience is named {node.name!r}", allowed=sorted(self.catalog.audiences))
            return exp.paren(self.condition(self.catalog.audiences[node.name], (*resolving, node.name)))
        return _two_valued(self._leaf(node))

    def _leaf(self, node: Condition) -> exp.Expr:
        if isinstance(node, TraitCondition):
            section = "traits" if node.source == "trait" else "attributes"
            value = self._fact((section, *node.test.path))
            return self.test_json(value, node.test.predicate)
        if isinstance(node, EventCondition):
            count = exp.func(
                "coalesce", self._aggregate(exp.func("count", self._when(node.events, _one())), node.events), _one(0)
            )
            op = {">=": exp.GTE, "<=": exp.LTE, "=": exp.EQ}[node.count_op]
            return op(this=count, expression=exp.Literal.number(node.count))
        if isinstance(node, AggregateCondition):
            return self.test_number(self._numeric(node.function, node.property, node.events), node.predicate)
        if isinstance(node, SequenceCondition):
            return self._sequence(node)
        if isinstance(node, ComputedTraitCondition):
            if node.name not in self.catalog.traits:
                raise fail("$", f"no computed trait is named {node.name!r}", allowed=sorted(self.catalog.traits))
            value, kind = self.trait(self.catalog.traits[node.name])
            return self.test_json(value, node.predicate) if kind == "json" else self.test_number(value, node.predicate)
        if isinstance(node, ConsentCondition):
            value = self._fact(("consent", node.purpose))
            return self._is_boolean(value, node.granted)
        if isinstance(node, SubscriptionCondition):
            return self.test_json(self._fact(("subscriptions", node.channel)), Predicate("equals", node.status))
        if isinstance(node, ReachableCondition):
            return self.sql.string_list_has(self._fact(("reachable",)), node.channel)
        raise TypeError(f"not a leaf condition: {node!r}")

    # --- event aggregates -----------------------------------------------------------------------------
    def trait(self, trait: ComputedTrait) -> tuple[exp.Expr, str]:
        """The trait's value expression and its kind: "number" (count, sum, avg, min, max) or "json"."""
        if trait.kind == "count":
            counted = self._aggregate(exp.func("count", self._when(trait.events, _one())), trait.events)
            return exp.func("coalesce", counted, _one(0)), "number"
        assert trait.property is not None
        if trait.kind in ("sum", "avg", "min", "max"):
            return self._numeric(trait.kind, trait.property, trait.events), "number"
        return self._ordered_values(trait), "number" if trait.kind == "unique_count" else "json"

    def _numeric(self, function: str, prop: Path, events: EventFilter) -> exp.Expr:
        value = self._property(events, prop)
        aggregated = self._aggregate(exp.func(function, self._when(events, self.sql.as_number(value))), events)
        return exp.func("coalesce", aggregated, _one(0)) if function == "sum" else aggregated

    def _aggregate(self, expression: exp.Expr, events: EventFilter) -> exp.Expr:
        alias = f"c{len(self.aggregates)}"
        self.aggregates.append(exp.alias_(expression, alias))
        self.event_names.add(events.event)
        return exp.column(alias, table="ev")

    def _when(self, events: EventFilter, then: exp.Expr) -> exp.Expr:
        """``then`` for the events ``events`` selects, else NULL; property filters only parse matching events."""
        if events.where:
            then = exp.Case().when(self._where(events), then)
        return exp.Case().when(exp.and_(exp.column("event").eq(events.event), *self._window(events)), then)

    def _where(self, events: EventFilter) -> exp.Expr:
        tests = [_two_valued(self.test_json(self._property(events, t.path), t.predicate)) for t in events.where]
        return exp.and_(*tests)

    def _window(self, events: EventFilter) -> list[exp.Expr]:
        ts, window = exp.column("ts"), events.window
        if window is None:
            return []
        if window.days is not None:
            return [ts >= self._days_ago(window.days), ts <= self._now()]
        assert window.start is not None
        assert window.end is not None
        return [ts >= _timestamp(window.start), ts <= _timestamp(window.end)]

    def _matching(self, events: EventFilter) -> exp.Select:
        """The events ``events`` selects, as a query."""
        where = exp.and_(exp.column("event").eq(events.event), *self._window(events))
        if events.where:
            where = exp.and_(where, self._where(events))
        return exp.select("*").from_(self._events({events.event})).where(where)

    def _ordered_values(self, trait: ComputedTrait) -> exp.Expr:
        assert trait.property is not None
        name = f"v{len(self.ctes)}"
        value = self._property(trait.events, trait.property)
        rows = (
            exp.select("profile_id", exp.alias_(value, "v"), exp.alias_(self.sql.order_key(), "o"))
            .from_(self._matching(trait.events).subquery("m"))
            .subquery("r")
        )
        present = self.sql.is_present(exp.column("v"))
        if trait.kind in ("first", "last"):
            pick = self.sql.pick(exp.column("v"), [("o", exp.column("o"))], last=trait.kind == "last")
            cte = exp.select("profile_id", exp.alias_(pick, "value")).from_(rows).where(present).group_by("profile_id")
            self.ctes.append((name, cte))
            return exp.column("value", table=name)
        distinct = (
            exp.select(
                "profile_id",
                exp.alias_(self.sql.any_value(exp.column("v")), "v"),
                exp.alias_(exp.func("count", exp.Star()), "n"),
                exp.alias_(exp.func("min", exp.column("o")), "first_o"),
                exp.alias_(exp.func("max", exp.column("o")), "last_o"),
            )
            .from_(rows)
            .where(present)
            .group_by("profile_id", self.sql.group_key(exp.column("v")))
            .subquery("d")
        )
        if trait.kind == "unique_count":
            pick = exp.func("count", exp.Star())
        elif trait.kind == "most_frequent":  # among the most frequent, the one seen last
            pick = self.sql.pick(exp.column("v"), [("n", exp.column("n")), ("l", exp.column("last_o"))], last=True)
        else:  # unique_list, in order of first occurrence
            pick = self.sql.first_values(exp.column("v"), exp.column("first_o"), UNIQUE_LIST_LIMIT)
        cte = exp.select("profile_id", exp.alias_(pick, "value")).from_(distinct).group_by("profile_id")
        self.ctes.append((name, cte))
        value_col = exp.column("value", table=name)
        if trait.kind == "unique_count":
            return exp.func("coalesce", value_col, _one(0))
        return value_col

    def _sequence(self, node: SequenceCondition) -> exp.Expr:
        name = f"s{len(self.ctes)}"
        is_first = exp.func("coalesce", self._when(node.first, exp.true()), exp.false())
        is_then = exp.func("coalesce", self._when(node.then, exp.true()), exp.false())
        rows = (
            exp.select("profile_id", "ts", "seq", exp.alias_(is_first, "is_a"), exp.alias_(is_then, "is_b"))
            .from_(self._events({node.first.event, node.then.event}))
            .where(exp.column("event").isin(node.first.event, node.then.event))
        )
        next_then = exp.Window(
            this=exp.func("min", exp.Case().when(exp.column("is_b"), exp.column("ts"))),
            partition_by=[exp.column("profile_id")],
            order=exp.Order(expressions=[exp.Ordered(this=exp.column("ts")), exp.Ordered(this=exp.column("seq"))]),
            spec=exp.WindowSpec(kind="ROWS", start="1", start_side="FOLLOWING", end="UNBOUNDED", end_side="FOLLOWING"),
        )
        ordered = exp.select("profile_id", "ts", "is_a", exp.alias_(next_then, "next_b")).from_(rows.subquery("e"))
        deadline = exp.Add(this=exp.column("ts"), expression=_interval(node.within_minutes, "MINUTE"))
        if node.then_performed:
            found = exp.and_(exp.column("is_a"), exp.column("next_b") <= deadline)
        else:
            waited = exp.and_(exp.column("is_a"), deadline <= self._now())
            found = exp.and_(waited, exp.or_(exp.column("next_b").is_(exp.null()), exp.column("next_b") > deadline))
        cte = (
            exp.select("profile_id", exp.alias_(exp.func("bool_or", found), "value"))
            .from_(ordered.subquery("o"))
            .group_by("profile_id")
        )
        self.ctes.append((name, cte))
        return exp.column("value", table=name)

    # --- predicates -----------------------------------------------------------------------------------
    def test_json(self, value: exp.Expr, predicate: Predicate) -> exp.Expr:
        op, expected, sql = predicate.op, predicate.value, self.sql
        text = sql.text(value)
        if op == "exists":
            return sql.is_present(value)
        if op in ("equals", "not_equals", "in"):
            options = expected if op == "in" else (expected,)
            texts = [o for o in options if isinstance(o, str)]
            tests = [self._json_equals(value, o) for o in options if not isinstance(o, str)]
            if texts:  # strings as one IN list
                tests.append(exp.and_(sql.is_kind(value, "string"), text.isin(*(exp.Literal.string(t) for t in texts))))
            same = exp.or_(*tests) if len(tests) > 1 else tests[0]
            return exp.and_(sql.is_present(value), exp.not_(exp.paren(same))) if op == "not_equals" else same
        if op == "contains":
            return (
                exp.Case()
                .when(sql.is_kind(value, "string"), sql.has_substring(text, expected))
                .when(sql.is_kind(value, "array"), sql.array_has_string(value, expected))
                .else_(exp.false())
            )
        if op == "starts_with":
            return exp.and_(sql.is_kind(value, "string"), sql.starts_with(text, expected))
        if op == "ends_with":
            return exp.and_(sql.is_kind(value, "string"), sql.ends_with(text, expected))
        if op in (">", ">=", "<", "<=", "between"):
            return self.test_number(sql.as_number(value), predicate)
        moment = sql.as_time(value, text, DATE_PATTERN)
        if op == "before":
            return moment < _timestamp(expected)
        if op == "after":
            return moment > _timestamp(expected)
        return exp.and_(moment >= self._days_ago(expected), moment <= self._now())

    def test_number(self, number: exp.Expr, predicate: Predicate) -> exp.Expr:
        op, expected = predicate.op, predicate.value
        if op == "exists":
            return number.is_(exp.null()).not_()
        if op in ("equals", "not_equals", "in"):
            options = [v for v in (expected if op == "in" else (expected,)) if _is_number(v)]
            if not options:
                return exp.false() if op != "not_equals" else number.is_(exp.null()).not_()
            if op == "not_equals":
                return number.neq(_number(options[0]))
            return number.isin(*(_number(v) for v in options))
        if op == "between":
            return exp.Between(this=number, low=_number(expected[0]), high=_number(expected[1]))
        if op in (">", ">=", "<", "<="):
            cls = {">": exp.GT, ">=": exp.GTE, "<": exp.LT, "<=": exp.LTE}[op]
            return cls(this=number, expression=_number(expected))
        return exp.false()  # a number is never a string or a date

    def _json_equals(self, value: exp.Expr, expected: object) -> exp.Expr:
        if isinstance(expected, bool):
            return self._is_boolean(value, expected)
        if isinstance(expected, str):
            return exp.and_(self.sql.is_kind(value, "string"), self.sql.text(value).eq(exp.Literal.string(expected)))
        assert isinstance(expected, int | float)  # false, not NULL, for a non-number: NOT must hold for it
        return exp.and_(self.sql.is_kind(value, "number"), self.sql.as_number(value).eq(_number(expected)))

    def _is_boolean(self, value: exp.Expr, expected: bool) -> exp.Expr:
        # the type test first: DuckDB casts the JSON string "true" to TRUE
        return exp.and_(self.sql.is_kind(value, "boolean"), self.sql.as_boolean(value).eq(exp.Boolean(this=expected)))

    def _now(self) -> exp.Expr:
        return _timestamp(self.now)

    def _days_ago(self, days: int) -> exp.Expr:
        return exp.Sub(this=self._now(), expression=_interval(days, "DAY"))


# --- small expressions -------------------------------------------------------------------------------------
def _two_valued(expression: exp.Expr) -> exp.Expr:
    return exp.func("coalesce", exp.paren(expression), exp.false())


def sql_time(moment: datetime) -> str:
    """How an instant is written in compiled SQL (inside a string literal)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _timestamp(moment: datetime) -> exp.Expr:
    return exp.cast(exp.Literal.string(sql_time(moment)), "TIMESTAMPTZ")


def _interval(amount: int, unit: str) -> exp.Expr:
    return exp.Interval(this=exp.Literal.string(str(amount)), unit=exp.var(unit))


def _number(value: float) -> exp.Expr:
    return exp.cast(exp.Literal.number(repr(float(value))), "DOUBLE")


def _one(value: int = 1) -> exp.Expr:
    return exp.Literal.number(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
