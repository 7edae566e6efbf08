"""Operator operations on the identity graph, stored as JSON and re-applied at their place in the log. Pure."""

from __future__ import annotations

from typing import Any

from onefold.identity.graph import Decision, IdentityGraph
from onefold.identity.rules import Key

OPERATIONS = ("exclude_identifier", "include_identifier", "exclude_link", "include_link", "merge_profiles")


def apply_operation(graph: IdentityGraph, kind: str, args: dict[str, Any], seq: int) -> Decision:
    """One operator operation on the graph; ``args`` hold identifiers as [type, value] and profile ids."""
    if kind == "exclude_identifier":
        return graph.exclude_identifier(seq, _key(args["identifier"]))
    if kind == "include_identifier":
        return graph.include_identifier(seq, _key(args["identifier"]))
    if kind == "exclude_link":
        return graph.exclude_link(seq, _key(args["a"]), _key(args["b"]))
    if kind == "include_link":
        return graph.include_link(seq, _key(args["a"]), _key(args["b"]))
    if kind == "merge_profiles":
        return graph.merge_profiles(seq, str(args["a"]), str(args["b"]))
    raise ValueError(f"unknown identity operation {kind!r}; one of {', '.join(OPERATIONS)}")


def _key(value: Any) -> Key:
    return str(value[0]), str(value[1])


def operation_result(decision: Decision) -> dict[str, Any]:
    return {
        "profile_id": decision.profile_id,
        "merges": [{"winner": m.winner, "loser": m.loser} for m in decision.merges],
        "splits": [
            {"profile_id": s.profile, "new_profiles": list(s.new_profiles), "reason": s.reason} for s in decision.splits
        ],
        "refusals": [
            {"rule": r.rule, "identifier": list(r.key), "profiles": list(r.profiles)} for r in decision.refusals
        ],
        "detached": [list(k) for k in decision.detached],
        "dissolved": list(decision.dissolved),
    }
