"""Reading DuckDB results so that no transaction is left open.

A result not read to its end keeps its query's transaction open for as long as its connection lives. An open
transaction pins every row version written after it: DuckDB's undo memory then grows without bound, spills to
temporary files, and every later write gets slower (a one-row update took 90 ms after 300 commits). So a single
row is read with ``fetchall``, never ``fetchone``.
"""

from __future__ import annotations

from typing import Any

import duckdb


def first_row(result: duckdb.DuckDBPyConnection) -> Any:
    """The first row of ``result`` (None when it has none), having read the result to its end."""
    rows = result.fetchall()
    return rows[0] if rows else None
