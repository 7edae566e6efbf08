"""What the audience compiler writes differently per SQL engine: JSON access, safe casts, ordered picks.

The compiler (``compiler.py``) builds one shape of query for every engine; it asks a ``SqlDialect`` for each
expression whose spelling or meaning differs. DuckDB is the reference (the server runs on it). PostgreSQL
reads ``facts`` and ``properties`` as ``jsonb``. Neither may raise on a value of the wrong type: a trait
holding ``"2026-02-30"`` or ``"abc"`` makes its test false, never the query fail. DuckDB has ``TRY_CAST``;
PostgreSQL has none before version 16, so every cast there sits in a ``CASE`` whose test proves it safe
(PostgreSQL evaluates a ``CASE`` branch only when its test holds, but ``AND`` in any order).

Spark SQL 4 reads them as ``VARIANT``; it has ``try_`` functions, but a ``VARIANT`` neither sorts nor groups.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from sqlglot import exp

from onefold.audiences.model import Path
from onefold.audiences.parse import fail

JsonKind = Literal["null", "string", "number", "boolean", "array"]


class SqlDialect:
    """DuckDB, the reference: ``facts`` and ``properties`` are ``JSON`` columns."""

    _KINDS: ClassVar[dict[JsonKind, tuple[str, ...]]] = {
        "null": ("NULL",),
        "string": ("VARCHAR",),
        "number": ("BIGINT", "UBIGINT", "DOUBLE"),
        "boolean": ("BOOLEAN",),
        "array": ("ARRAY",),
    }

    def json_at(self, column: exp.Expr, path: Path) -> exp.Expr:
        parts: list[exp.Expr] = [exp.JSONPathRoot()]
        parts.extend(exp.JSONPathKey(this=p) for p in path)
        return exp.JSONExtract(this=column, expression=exp.JSONPath(expressions=parts))

    def kind(self, value: exp.Expr) -> exp.Expr:
        return exp.func("json_type", value)

    def is_kind(self, value: exp.Expr, kind: JsonKind) -> exp.Expr:
        """Whether the JSON ``value`` is of ``kind`` (NULL when ``value`` is missing)."""
        names = self._KINDS[kind]
        return self.kind(value).eq(names[0]) if len(names) == 1 else self.kind(value).isin(*names)

    def is_present(self, value: exp.Expr) -> exp.Expr:
        """Whether ``value`` is there and not JSON null (NULL when it is missing)."""
        return self.kind(value).neq(self._KINDS["null"][0])

    def text(self, value: exp.Expr) -> exp.Expr:
        """A JSON string's characters."""
        return exp.JSONExtractScalar(this=value, expression=exp.JSONPath(expressions=[exp.JSONPathRoot()]))

    def as_number(self, value: exp.Expr) -> exp.Expr:
        """A JSON number as DOUBLE, else NULL."""
        return exp.Case().when(self.is_kind(value, "number"), exp.cast(value, "DOUBLE"))

    def as_boolean(self, value: exp.Expr) -> exp.Expr:
        """The JSON ``value`` as BOOLEAN, never raising; DuckDB also reads the string "true" as TRUE, so test
        ``is_kind(value, "boolean")`` beside it."""
        return exp.TryCast(this=value, to=exp.DataType.build("BOOLEAN"))

    def has_substring(self, text: exp.Expr, needle: str) -> exp.Expr:
        return exp.func("contains", text, exp.Literal.string(needle))

    def starts_with(self, text: exp.Expr, prefix: str) -> exp.Expr:
        return exp.func("starts_with", text, exp.Literal.string(prefix))

    def ends_with(self, text: exp.Expr, suffix: str) -> exp.Expr:
        return exp.func("ends_with", text, exp.Literal.string(suffix))

    def array_has_string(self, value: exp.Expr, item: str) -> exp.Expr:
        """Whether the JSON array ``value`` holds the string ``item`` (``1`` is not ``"1"``)."""
        items = exp.cast(exp.cast(value, "JSON[]"), "VARCHAR[]")  # each item as JSON text
        needle = exp.cast(exp.func("to_json", exp.Literal.string(item)), "VARCHAR")
        return exp.func("list_contains", items, needle)

    def string_list_has(self, value: exp.Expr, item: str) -> exp.Expr:
        """Whether ``value``, a JSON array of strings, holds ``item``; false or NULL for anything else."""
        listed = exp.TryCast(this=value, to=exp.DataType.build("VARCHAR[]"))
        return exp.func("list_contains", listed, exp.Literal.string(item))

    def as_time(self, value: exp.Expr, text: exp.Expr, pattern: str) -> exp.Expr:
        """The JSON ``value`` as TIMESTAMPTZ when it is a string (``text``) that matches ``pattern`` and names a
        real instant, else NULL. ``pattern`` checks each field's range; a day past the month's end is left."""
        return exp.Case().when(
            exp.and_(self.is_kind(value, "string"), exp.func("regexp_full_match", text, exp.Literal.string(pattern))),
            exp.TryCast(this=text, to=exp.DataType.build("TIMESTAMPTZ")),
        )

    def to_json(self, value: exp.Expr) -> exp.Expr:
        return exp.func("to_json", value)

    def order_key(self) -> exp.Expr:
        """A value ordering a profile's events by (ts, seq), comparable within one profile."""
        return _struct(("t", exp.column("ts")), ("s", exp.column("seq")))

    def any_value(self, value: exp.Expr) -> exp.Expr:
        return exp.func("any_value", value)

    def group_key(self, value: exp.Expr) -> exp.Expr:
        """``value`` as text that is equal exactly when the JSON values are (1 and "1" differ)."""
        return exp.cast(value, "VARCHAR")

    def pick(self, value: exp.Expr, keys: list[tuple[str, exp.Expr]], *, last: bool) -> exp.Expr:
        """The ``value`` of the row with the smallest (or, ``last``, the largest) ``keys``, in order."""
        key = keys[0][1] if len(keys) == 1 else _struct(*keys)
        return exp.func("arg_max" if last else "arg_min", value, key)

    def first_values(self, value: exp.Expr, order: exp.Expr, limit: int) -> exp.Expr:
        """A JSON array of the first ``limit`` values by ``order``."""
        listed = exp.ArrayAgg(this=exp.Order(this=value, expressions=[exp.Ordered(this=order)]))
        return exp.func("to_json", exp.func("list_slice", listed, exp.Literal.number(1), exp.Literal.number(limit)))


class PostgresDialect(SqlDialect):
    """PostgreSQL 12 or newer: ``facts`` and ``properties`` are ``jsonb`` columns, the session time zone UTC."""

    _KINDS: ClassVar[dict[JsonKind, tuple[str, ...]]] = {
        "null": ("null",),
        "string": ("string",),
        "number": ("number",),
        "boolean": ("boolean",),
        "array": ("array",),
    }

    def json_at(self, column: exp.Expr, path: Path) -> exp.Expr:
        return exp.func("jsonb_extract_path", column, *(exp.Literal.string(p) for p in path))

    def kind(self, value: exp.Expr) -> exp.Expr:
        return exp.func("jsonb_typeof", value)

    def text(self, value: exp.Expr) -> exp.Expr:
        return exp.JSONBExtractScalar(this=value, expression=exp.Literal.string("{}"))

    def as_number(self, value: exp.Expr) -> exp.Expr:
        return exp.Case().when(self.is_kind(value, "number"), exp.cast(value, "DOUBLE"))

    def as_boolean(self, value: exp.Expr) -> exp.Expr:
        return exp.Case().when(self.is_kind(value, "boolean"), exp.cast(value, "BOOLEAN"))

    def has_substring(self, text: exp.Expr, needle: str) -> exp.Expr:
        return exp.StrPosition(this=text, substr=exp.Literal.string(needle)) > exp.Literal.number(0)

    def starts_with(self, text: exp.Expr, prefix: str) -> exp.Expr:
        return exp.func("left", text, exp.Literal.number(len(prefix))).eq(exp.Literal.string(prefix))

    def ends_with(self, text: exp.Expr, suffix: str) -> exp.Expr:
        return exp.func("right", text, exp.Literal.number(len(suffix))).eq(exp.Literal.string(suffix))

    def array_has_string(self, value: exp.Expr, item: str) -> exp.Expr:
        # containment of a one-item array: matches an item, never an item nested deeper
        return exp.ArrayContainsAll(this=value, expression=exp.func("jsonb_build_array", exp.Literal.string(item)))

    def string_list_has(self, value: exp.Expr, item: str) -> exp.Expr:
        return exp.and_(self.is_kind(value, "array"), self.array_has_string(value, item))

    def as_time(self, value: exp.Expr, text: exp.Expr, pattern: str) -> exp.Expr:
        # The cast to TIMESTAMPTZ refuses offsets past 15:59 that Python takes, and raises on 30 February; so
        # the local part is cast alone, once its day is known to exist, and the offset subtracted by hand.
        def part(start: int, length: int) -> exp.Expr:
            return exp.cast(exp.Substring(this=text, start=_int(start), length=_int(length)), "INT")

        month_start = exp.func("make_date", part(1, 4), part(6, 2), _int(1))
        last_day = exp.Extract(
            this=exp.var("DAY"), expression=exp.Add(this=month_start, expression=_interval("1 MONTH - 1 DAY"))
        )
        utc = exp.AtTimeZone(this=exp.cast(_local_part(text), "TIMESTAMP"), zone=exp.Literal.string("UTC"))
        real_day = exp.Case().when(exp.LTE(this=part(9, 2), expression=last_day), _minus_offset(text, utc))
        strict = exp.RegexpLike(this=text, expression=exp.Literal.string(pattern))
        return exp.Case().when(exp.and_(self.is_kind(value, "string"), strict), real_day)

    def to_json(self, value: exp.Expr) -> exp.Expr:
        return exp.func("to_jsonb", value)

    def order_key(self) -> exp.Expr:
        order = exp.Order(expressions=[exp.Ordered(this=exp.column("ts")), exp.Ordered(this=exp.column("seq"))])
        return exp.Window(this=exp.func("row_number"), partition_by=[exp.column("profile_id")], order=order)

    def any_value(self, value: exp.Expr) -> exp.Expr:
        return _first_of(exp.ArrayAgg(this=value))

    def pick(self, value: exp.Expr, keys: list[tuple[str, exp.Expr]], *, last: bool) -> exp.Expr:
        order = [exp.Ordered(this=key, desc=last) for _, key in keys]
        return _first_of(exp.ArrayAgg(this=exp.Order(this=value, expressions=order)))

    def first_values(self, value: exp.Expr, order: exp.Expr, limit: int) -> exp.Expr:
        listed = exp.ArrayAgg(this=exp.Order(this=value, expressions=[exp.Ordered(this=order)]))
        sliced = exp.Bracket(this=exp.paren(listed), expressions=[exp.Slice(this=_int(1), expression=_int(limit))])
        return exp.func("to_jsonb", sliced)


class SparkDialect(SqlDialect):
    """Spark SQL 4.0 or newer: ``facts`` and ``properties`` are ``VARIANT`` columns (``parse_json``), the session
    time zone UTC. JSON values in results are VARIANTs too."""

    def json_at(self, column: exp.Expr, path: Path) -> exp.Expr:
        steps = []
        for key in path:
            quote = '"' if '"' not in key else "'"
            if quote in key:
                raise fail("$", f"the name {key!r} holds both kinds of quote, which Spark's variant paths cannot read")
            steps.append(f"[{quote}{key}{quote}]")
        return _call("try_variant_get", column, exp.Literal.string("$" + "".join(steps)), exp.Literal.string("variant"))

    def kind(self, value: exp.Expr) -> exp.Expr:
        return _call("schema_of_variant", value)

    def is_kind(self, value: exp.Expr, kind: JsonKind) -> exp.Expr:
        schema = self.kind(value)
        if kind == "number":  # integers read as BIGINT, decimals as DECIMAL(p,s), exponents as DOUBLE
            decimal = exp.func("startswith", schema, exp.Literal.string("DECIMAL"))
            return exp.or_(schema.isin("BIGINT", "DOUBLE"), decimal)
        if kind == "array":
            return exp.func("startswith", schema, exp.Literal.string("ARRAY"))
        return schema.eq({"null": "VOID", "string": "STRING", "boolean": "BOOLEAN"}[kind])

    def is_present(self, value: exp.Expr) -> exp.Expr:
        return self.kind(value).neq("VOID")

    def text(self, value: exp.Expr) -> exp.Expr:
        return self._get(value, "string")

    def as_number(self, value: exp.Expr) -> exp.Expr:
        return exp.Case().when(self.is_kind(value, "number"), self._get(value, "double"))

    def as_boolean(self, value: exp.Expr) -> exp.Expr:
        return exp.Case().when(self.is_kind(value, "boolean"), self._get(value, "boolean"))

    def array_has_string(self, value: exp.Expr, item: str) -> exp.Expr:
        x = exp.column("x")
        as_text = exp.Case().when(self.is_kind(x, "string"), self._get(x, "string"))
        texts = exp.func("transform", self._get(value, "array<variant>"), exp.Lambda(this=as_text, expressions=[x]))
        return exp.ArrayContains(this=texts, expression=exp.Literal.string(item))

    def string_list_has(self, value: exp.Expr, item: str) -> exp.Expr:
        return exp.and_(self.is_kind(value, "array"), self.array_has_string(value, item))

    def as_time(self, value: exp.Expr, text: exp.Expr, pattern: str) -> exp.Expr:
        # try_to_timestamp gives NULL for 30 February; offsets are subtracted by hand, as Spark's stop at 18:00
        utc = _call("try_to_timestamp", _local_part(text))
        strict = exp.RegexpLike(this=text, expression=exp.Literal.string(pattern))
        return exp.Case().when(exp.and_(self.is_kind(value, "string"), strict), _minus_offset(text, utc))

    def to_json(self, value: exp.Expr) -> exp.Expr:
        return exp.cast(value, "VARIANT")

    def group_key(self, value: exp.Expr) -> exp.Expr:
        return exp.func("to_json", value)  # a VARIANT cast to STRING loses the quotes: "1" would be 1

    def order_key(self) -> exp.Expr:
        return _named_struct(("t", exp.column("ts")), ("s", exp.column("seq")))

    def pick(self, value: exp.Expr, keys: list[tuple[str, exp.Expr]], *, last: bool) -> exp.Expr:
        key = keys[0][1] if len(keys) == 1 else _named_struct(*keys)
        return exp.func("max_by" if last else "min_by", value, key)

    def first_values(self, value: exp.Expr, order: exp.Expr, limit: int) -> exp.Expr:
        # VARIANT does not sort, so each value travels as its JSON text beside its order
        pairs = _named_struct(("o", order), ("j", exp.func("to_json", value)))
        x = exp.column("x")
        text = exp.Dot(this=x, expression=exp.to_identifier("j"))
        parsed = exp.Lambda(this=_call("parse_json", text), expressions=[x])
        ordered = exp.func("transform", exp.func("array_sort", exp.func("collect_list", pairs)), parsed)
        return exp.cast(exp.func("slice", ordered, _int(1), _int(limit)), "VARIANT")

    def _get(self, value: exp.Expr, as_type: str) -> exp.Expr:
        return _call("try_variant_get", value, exp.Literal.string("$"), exp.Literal.string(as_type))


DIALECTS: dict[str, SqlDialect] = {"duckdb": SqlDialect(), "postgres": PostgresDialect(), "spark": SparkDialect()}


def _local_part(text: exp.Expr) -> exp.Expr:
    """An ISO instant without its ``Z`` or ``+05:30``."""
    return exp.func("regexp_replace", text, exp.Literal.string(r"(Z|[+-]\d{2}:\d{2})$"), exp.Literal.string(""))


def _minus_offset(text: exp.Expr, local: exp.Expr) -> exp.Expr:
    """``local`` (the local part of ``text`` read as UTC) moved back by ``text``'s UTC offset, if it has one."""
    tail = exp.func("right", text, _int(6))  # "+05:30"
    hours, mins = (exp.cast(exp.Substring(this=tail, start=_int(at), length=_int(2)), "INT") for at in (2, 5))
    minutes = exp.Add(this=exp.Mul(this=hours, expression=_int(60)), expression=mins)
    signed = exp.Case().when(exp.func("left", tail, _int(1)).eq(exp.Literal.string("-")), exp.Neg(this=minutes))
    has_offset = exp.RegexpLike(this=text, expression=exp.Literal.string(r"[+-]\d{2}:\d{2}$"))
    offset = exp.Case().when(has_offset, signed.else_(minutes)).else_(_int(0))
    return exp.Sub(this=local, expression=exp.Mul(this=exp.paren(offset), expression=_interval("1 MINUTE")))


def _named_struct(*fields: tuple[str, exp.Expr]) -> exp.Expr:
    return _call("named_struct", *(part for name, value in fields for part in (exp.Literal.string(name), value)))


def _call(name: str, *args: exp.Expr) -> exp.Expr:
    """A function call written as named, whatever sqlglot would make of the name in a dialect."""
    return exp.Anonymous(this=name, expressions=list(args))


def _struct(*fields: tuple[str, exp.Expr]) -> exp.Expr:
    return exp.func(
        "struct_pack", *(exp.PropertyEQ(this=exp.to_identifier(name), expression=value) for name, value in fields)
    )


def _first_of(array: exp.Expr) -> exp.Expr:
    """``(array)[1]``: sqlglot writes 0-based subscripts in each dialect's own base."""
    return exp.Bracket(this=exp.paren(array), expressions=[_int(0)])


def _int(value: int) -> exp.Expr:
    return exp.Literal.number(value)


def _interval(text: str) -> exp.Expr:
    return exp.Interval(this=exp.Literal.string(text))
