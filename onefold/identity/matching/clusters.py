"""Clusters of records from scored pairs: connected components that honour cannot-link. Pure.

Pairs at or above the threshold are joined strongest first (ties by ids, so the result does not depend on
input order). Each cluster keeps the union of its records' unique identifiers; a join is refused when the
two clusters hold different values of one unique identifier type, so a chain of probable pairs can never
put two ``crm_id`` values in one cluster. Cluster ids are the smallest record id of the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from onefold.identity.matching.model import ScoredPair

__all__ = ["Clustering", "clusters"]


@dataclass(slots=True)
class Clustering:
    assignment: dict[str, str]  # record id -> cluster id
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (left_id, right_id, unique id type)


class _Forest:
    def __init__(self, unique_ids: Mapping[str, Mapping[str, str]]) -> None:
        self.parent: dict[str, str] = {}
        self.size: dict[str, int] = {}
        self.ids: dict[str, dict[str, str]] = {}
        self._unique_ids = unique_ids

    def add(self, node: str) -> None:
        if node not in self.parent:
            self.parent[node] = node
            self.size[node] = 1
            self.ids[node] = dict(self._unique_ids.get(node, {}))

    def find(self, node: str) -> str:
        parent = self.parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]  # path halving
            node = parent[node]
        return node

    def conflict(self, a: str, b: str) -> str | None:
        left, right = self.ids[a], self.ids[b]
        return next((kind for kind in sorted(left.keys() & right.keys()) if left[kind] != right[kind]), None)

    def union(self, a: str, b: str) -> None:
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size.pop(b)
        self.ids[a].update(self.ids.pop(b))


def clusters(
    pairs: Iterable[ScoredPair],
    threshold: float,
    *,
    record_ids: Iterable[str] = (),
    unique_ids: Mapping[str, Mapping[str, str]] | None = None,
) -> Clustering:
    """Cluster ``record_ids`` (singletons included) and every record of a pair at or above ``threshold``."""
    forest = _Forest(unique_ids or {})
    for record_id in record_ids:
        forest.add(record_id)
    refused: list[tuple[str, str, str]] = []
    strong = sorted(
        (p for p in pairs if p.match_probability >= threshold),
        key=lambda p: (-p.match_probability, p.left_id, p.right_id),
    )
    for pair in strong:
        forest.add(pair.left_id)
        forest.add(pair.right_id)
        a, b = forest.find(pair.left_id), forest.find(pair.right_id)
        if a == b:
            continue
        kind = forest.conflict(a, b)
        if kind is not None:
            refused.append((pair.left_id, pair.right_id, kind))
            continue
        forest.union(a, b)
    members: dict[str, list[str]] = {}
    for node in forest.parent:
        members.setdefault(forest.find(node), []).append(node)
    assignment = {node: min(group) for group in members.values() for node in group}
    return Clustering(assignment=assignment, refused=refused)
