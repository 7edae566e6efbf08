"""How times are shown: ISO-8601 in UTC with milliseconds, the same as datetime's own formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from onefold.profiles.view import iso

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(st.integers(min_value=-2_208_988_800_000, max_value=7_258_118_400_000))  # 1900 to 2200
def test_iso_equals_datetime_formatting(ms: int) -> None:
    expected = (EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert iso(ms) == expected
    assert iso(ms) == expected  # remembered: the same text again


def test_iso_edges() -> None:
    assert iso(None) is None
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(-1) == "1969-12-31T23:59:59.999Z"
    assert iso(1_764_460_800_123) == "2025-11-30T00:00:00.123Z"
