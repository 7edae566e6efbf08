"""The audience language as typed values. Pure.

A definition is parsed once (``parse.py``) into these frozen dataclasses; the compiler (``compiler.py``) and the
reference evaluator (``reference.py``) both read them, so the two can only disagree on meaning, never on syntax.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Path = tuple[str, ...]  # a dotted name split on ".": trait "address.city", property "product.category"

VALUE_OPS = ("equals", "not_equals", "in", "contains", "starts_with", "ends_with", "exists")
NUMBER_OPS = (">", ">=", "<", "<=", "between")
DATE_OPS = ("before", "after", "within_last_days")
OPERATORS = VALUE_OPS + NUMBER_OPS + DATE_OPS
COUNT_OPS = (">=", "<=", "=")  # at least, at most, exactly
AGGREGATES = ("sum", "avg", "min", "max")
TRAIT_KINDS = ("count", "sum", "avg", "min", "max", "most_frequent", "first", "last", "unique_list", "unique_count")
CHANNELS = ("email", "sms")
# the date and time strings that date operators read (what both Python and DuckDB parse alike)
# An ISO-8601 date or instant, each field within its range (RE2, PostgreSQL and Python read it alike); only the
# day of the month still needs checking against the month's length.
DATE_PATTERN = (
    r"^(000[1-9]|00[1-9]\d|0[1-9]\d{2}|[1-9]\d{3})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?)?$"
)
UNIQUE_LIST_LIMIT = 100  # a unique list keeps the first 100 distinct values, in order of first occurrence


@dataclass(frozen=True, slots=True)
class Predicate:
    """``op`` applied to a JSON value. ``value`` is a scalar, a list (``in``, ``between``), a datetime
    (``before``, ``after``), days (``within_last_days``) or None (``exists``)."""

    op: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class FieldTest:
    path: Path
    predicate: Predicate


@dataclass(frozen=True, slots=True)
class Window:
    """Event time within the last ``days`` days up to now, or between two instants (both inclusive)."""

    days: int | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventFilter:
    event: str
    where: tuple[FieldTest, ...] = ()
    window: Window | None = None


@dataclass(frozen=True, slots=True)
class TraitCondition:
    source: Literal["trait", "attribute"]
    test: FieldTest


@dataclass(frozen=True, slots=True)
class EventCondition:
    events: EventFilter
    count_op: str = ">="
    count: int = 1


@dataclass(frozen=True, slots=True)
class AggregateCondition:
    function: str
    property: Path
    events: EventFilter
    predicate: Predicate


@dataclass(frozen=True, slots=True)
class SequenceCondition:
    """``first``, then ``then`` (strictly later in event order) within ``within_minutes``. When
    ``then_performed`` is false it holds once a ``first`` event's wait has passed with no ``then``."""

    first: EventFilter
    then: EventFilter
    within_minutes: int
    then_performed: bool = True


@dataclass(frozen=True, slots=True)
class ComputedTraitCondition:
    name: str
    predicate: Predicate


@dataclass(frozen=True, slots=True)
class AudienceCondition:
    name: str


@dataclass(frozen=True, slots=True)
class ConsentCondition:
    purpose: str
    granted: bool = True


@dataclass(frozen=True, slots=True)
class SubscriptionCondition:
    """The latest statement of the contact's subscription to ``channel`` is ``status``."""

    channel: str
    status: str = "subscribed"


@dataclass(frozen=True, slots=True)
class ReachableCondition:
    channel: str


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class NotCondition:
    child: Condition


Condition = (
    TraitCondition
    | EventCondition
    | AggregateCondition
    | SequenceCondition
    | ComputedTraitCondition
    | AudienceCondition
    | ConsentCondition
    | SubscriptionCondition
    | ReachableCondition
    | AllOf
    | AnyOf
    | NotCondition
)


@dataclass(frozen=True, slots=True)
class ComputedTrait:
    """A per-profile value over its events: ``kind`` of ``property`` (none for ``count``)."""

    kind: str
    events: EventFilter
    property: Path | None = None


def references(condition: Condition) -> tuple[set[str], set[str]]:
    """The computed traits and audiences ``condition`` names, at any depth."""
    traits: set[str] = set()
    audiences: set[str] = set()
    stack: list[Condition] = [condition]
    while stack:
        node = stack.pop()
        if isinstance(node, AllOf | AnyOf):
            stack.extend(node.children)
        elif isinstance(node, NotCondition):
            stack.append(node.child)
        elif isinstance(node, ComputedTraitCondition):
            traits.add(node.name)
        elif isinstance(node, AudienceCondition):
            audiences.add(node.name)
    return traits, audiences


def time_relative(condition: Condition) -> bool:
    """Whether membership can change with time alone, with no new event: a window, ``within_last_days``, a
    sequence's wait, or a reference (its definition is not known here, so assume it may)."""
    stack: list[Condition] = [condition]
    while stack:
        node = stack.pop()
        if isinstance(node, AllOf | AnyOf):
            stack.extend(node.children)
        elif isinstance(node, NotCondition):
            stack.append(node.child)
        elif _time_relative_leaf(node):
            return True
    return False


def _time_relative_leaf(node: Condition) -> bool:
    if isinstance(node, SequenceCondition | ComputedTraitCondition | AudienceCondition):
        return True
    if isinstance(node, EventCondition | AggregateCondition):
        return time_relative_filter(node.events)
    return isinstance(node, TraitCondition) and node.test.predicate.op == "within_last_days"


def time_relative_filter(events: EventFilter) -> bool:
    """Whether the events a filter keeps can change with time alone: a window, or a property compared
    ``within_last_days`` (a date the event carries, which leaves the window as days pass)."""
    return events.window is not None or any(test.predicate.op == "within_last_days" for test in events.where)


@dataclass(frozen=True)
class Catalog:
    """The saved definitions a condition may reference by name."""

    traits: Mapping[str, ComputedTrait] = field(default_factory=dict)
    audiences: Mapping[str, Condition] = field(default_factory=dict)
