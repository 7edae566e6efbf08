"""Re-deriving a profile from its evidence: the connected parts of its identifiers, by id.

Pure functions over the compact evidence of ``onefold.identity.compact``. Order never depends on ids or hashing:
the graph ranks the parts, and ``apart_order`` sorts evidence by seq and then by the identifiers themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from onefold.identity.compact import Group
from onefold.identity.rules import Key


def connected_parts(
    keys: set[int], evidence: Mapping[Group, int], apart: tuple[int, int] | None, key_of: Callable[[int], Key]
) -> tuple[list[set[int]], dict[Group, int]]:
    """The connected parts of ``keys`` under ``evidence`` (unranked), and the evidence kept. With ``apart``,
    evidence is applied oldest first and a group that would connect the two identifiers is dropped."""
    parent = {k: k for k in keys}

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    kept: dict[Group, int] = dict(evidence)
    items: Iterable[tuple[Group, int]] = evidence.items()
    if apart is not None:
        kept, items = {}, apart_order(evidence, *apart, key_of)
    for group, first in items:
        members = [k for k in group if k in parent]
        if apart is not None:
            roots = {find(k) for k in members}
            if all(side in parent and find(side) in roots for side in apart):
                continue
            kept.setdefault(group, first)
        for other in members[1:]:
            a, b = find(members[0]), find(other)
            if a != b:
                parent[b] = a
    parts: dict[int, set[int]] = {}
    for key in parent:
        parts.setdefault(find(key), set()).add(key)
    return list(parts.values()), kept


def apart_order(evidence: Mapping[Group, int], a: int, b: int, key_of: Callable[[int], Key]) -> list[tuple[Group, int]]:
    """Evidence oldest first (then by its identifiers); a group naming both ``a`` and ``b`` becomes two, without
    ``b`` then without ``a``, so the rest of that event's identifiers stay with ``a``. Groups left with one
    identifier tie nothing and are left out."""
    order: list[tuple[int, int, list[Key], Group]] = []
    for group, first in evidence.items():
        if a in group and b in group:
            for n, side in enumerate((b, a)):
                rest = tuple(k for k in group if k != side)
                order.append((first, n, sorted(map(key_of, rest)), rest))
        else:
            order.append((first, 0, sorted(map(key_of, group)), group))
    order.sort(key=lambda item: item[:3])
    return [(group, first) for first, _, _, group in order if len(group) > 1]
