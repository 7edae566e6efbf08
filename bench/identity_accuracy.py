"""Accuracy and speed of identity resolution on the demo dataset, scored against the generator's ground truth.

    .venv/bin/python bench/identity_accuracy.py [--people 10000] [--seed 7] [--out bench/results/identity.json]

Steps:
  1. Prepare: stream ``onefold.demo.generator.generate()``; turn each message into its identifiers exactly as the
     collector stores them (``build_rows``, the ``identifiers`` column), then into typed keys (``event_keys``).
     Keys are kept in one list (one tuple per distinct key, shared between events); ``(type, raw value) -> key``
     is recorded for mapping the truth.
  2. Stitch: feed the keys to a fresh ``IdentityGraph(DEFAULT_RULES)`` with seq = 1, 2, ...; only the
     ``observe`` calls are timed (one core, the garbage collector's view of the prepared list frozen).
  3. Score: every truth row ``(identifier_type, raw value, person)`` is mapped to its key; keys of two or more
     persons (shared tablets, household phones, placeholders) are set aside and counted; the rest are scored
     with ``onefold.identity.evaluate.score`` against ``graph.profile_of(key)`` (pairwise and B-cubed).
     For context: the same scores with unresolved identifiers as singleton profiles, and the ceiling of what the
     events can link at all (a person's identifiers that share an event, directly or through a chain, joined
     without shared identifiers), with the profiles scored against that ceiling.
  4. Explain: a second, untimed pass over the same keys records every event that added a second true person to a
     profile, and what joined them (the notes of the shared identifiers involved). Over-merged profiles are
     listed with their persons and the events that joined them.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from onefold.collect.messages import Envelope, SourceInfo, build_rows
from onefold.demo.generator import DEMO_SOURCES, generate, ground_truth
from onefold.identity.evaluate import Scores, score
from onefold.identity.graph import IdentityGraph
from onefold.identity.keys import event_keys
from onefold.identity.rules import DEFAULT_RULES, IdentityRules
from onefold.store.schema import EVENT_COLUMN_NAMES

Key = tuple[str, str]
END = datetime(2026, 11, 1, tzinfo=UTC)
# Index of the identifiers column in a row built by build_rows (the row has no leading seq).
IDENTIFIERS_COLUMN = EVENT_COLUMN_NAMES.index("identifiers") - 1
# The truth names identifiers as the messages carry them; the collector types a previousId "previous_id".
TRUTH_TYPE = {"previous_id": "anonymous_id"}
MAX_EXAMPLES = 10


@dataclass
class Prepared:
    events: list[list[Key]] = field(default_factory=list)
    index: dict[tuple[str, str], Key] = field(default_factory=dict)  # (truth type, raw value) -> key
    messages: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    events_without_keys: int = 0
    index_conflicts: int = 0  # a (type, raw) seen mapping to two different keys (first one kept)
    seconds: float = 0.0


def _message_keys(kind: str, identifiers: list[list[str]], prepared: Prepared) -> list[Key]:
    keys = event_keys(kind, identifiers)
    if len(keys) == len(identifiers):
        pairs: Iterator[tuple[list[str], Key]] = zip(identifiers, keys, strict=True)
    else:  # event_keys dropped or folded some: match each identifier to its key by normalized value
        by_value: dict[str, list[Key]] = defaultdict(list)
        for key in keys:
            by_value[key[1]].append(key)
        found: list[tuple[list[str], Key]] = []
        for ident in identifiers:
            candidates = by_value.get(ident[1])
            if candidates:
                same_type = [k for k in candidates if k[0] == ident[0]]
                found.append((ident, (same_type or candidates)[0]))
        pairs = iter(found)
    index = prepared.index
    for (kind_, _value, raw, _path), key in pairs:
        slot = (TRUTH_TYPE.get(kind_, kind_), raw)
        known = index.setdefault(slot, key)
        if known != key:
            prepared.index_conflicts += 1
    return keys


def prepare(people: int, seed: int) -> Prepared:
    prepared = Prepared()
    kinds = {source.name: source.kind for source in DEMO_SOURCES}
    interned: dict[Key, Key] = {}
    started = time.perf_counter()
    for name, message in generate(seed=seed, people=people, end=END):
        prepared.messages += 1
        kind = kinds[name]
        env = Envelope(
            source=SourceInfo(id=name, kind=kind, default_region="US"),
            received_at=datetime.fromisoformat(message["timestamp"]),
            max_event_bytes=32768,
            check_item_size=False,
        )
        rows, rejections = build_rows([message], None, env, lambda: "x")
        for rejection in rejections:
            prepared.rejected[rejection.code] += 1
        for row in rows:
            identifiers: list[list[str]] = orjson.loads(row[IDENTIFIERS_COLUMN])
            keys = [interned.setdefault(k, k) for k in _message_keys(kind, identifiers, prepared)]
            prepared.events_without_keys += not keys
            prepared.events.append(keys)
    prepared.seconds = time.perf_counter() - started
    return prepared


def stitch(events: Sequence[list[Key]], rules: IdentityRules) -> tuple[IdentityGraph, float]:
    graph = IdentityGraph(rules)
    observe = graph.observe
    gc.collect()
    gc.freeze()  # the prepared list is not the stitcher's state: keep full collections from re-scanning it
    try:
        started = time.perf_counter()
        for seq, keys in enumerate(events, 1):
            observe(seq, keys)
        elapsed = time.perf_counter() - started
    finally:
        gc.unfreeze()
    return graph, elapsed


@dataclass
class Truth:
    persons: dict[Key, set[str]]  # key -> the persons it belongs to
    notes: dict[Key, set[str]]  # key -> the truth notes of its raw values
    rows: int
    unmapped: Counter[str]  # truth rows whose raw value was never stored as an identifier, by "type/note"
    single: dict[Key, str] = field(init=False)  # keys of exactly one person -> that person
    shared: set[Key] = field(init=False)  # keys of two or more persons

    def __post_init__(self) -> None:
        self.single = {key: next(iter(owners)) for key, owners in self.persons.items() if len(owners) == 1}
        self.shared = {key for key, owners in self.persons.items() if len(owners) > 1}

    def describe(self, key: Key) -> str:
        """``type/notes`` for tallies."""
        return f"{key[0]}/{','.join(sorted(self.notes.get(key, ()))) or '-'}"


def load_truth(people: int, seed: int, index: dict[tuple[str, str], Key]) -> Truth:
    persons: dict[Key, set[str]] = defaultdict(set)
    notes: dict[Key, set[str]] = defaultdict(set)
    unmapped: Counter[str] = Counter()
    rows = 0
    for row in ground_truth(seed=seed, people=people, end=END):
        rows += 1
        key = index.get((row.identifier_type, row.value))
        if key is None:
            unmapped[f"{row.identifier_type}/{row.note or '-'}"] += 1
            continue
        persons[key].add(row.person_id)
        if row.note:
            notes[key].add(row.note)
    return Truth(dict(persons), dict(notes), rows, unmapped)


def _label(key: Key, truth: Truth) -> str:
    notes = ",".join(sorted(truth.notes.get(key, ()))) or "clean"
    owners = len(truth.persons.get(key, ()))
    shared = f", {owners} persons" if owners > 1 else ""
    return f"{key[0]} ({notes}{shared})"


def _show(key: Key) -> str:
    value = key[1] if len(key[1]) <= 40 else key[1][:37] + "..."
    return f"{key[0]}:{value}"


@dataclass
class CrossLink:
    seq: int
    persons: int  # true persons in the profile after the event
    keys: list[str]  # the event's identifiers used for linking, with their notes
    cause: str


def _cause(used: list[Key], truth: Truth) -> str:
    shared = sorted({_label(k, truth) for k in used if len(truth.persons.get(k, ())) > 1})
    others = sorted({k[0] for k in used if len(truth.persons.get(k, ())) <= 1})
    if not shared:
        return "no shared identifier: " + " + ".join(sorted({_label(k, truth) for k in used}))
    return " + ".join(shared) + (f" | with {', '.join(others)}" if others else "")


def explain(
    events: Sequence[list[Key]], rules: IdentityRules, truth: Truth
) -> tuple[dict[str, list[CrossLink]], Counter[str]]:
    """Replay the stitching; return, per final profile id, the events that added a second (third...) true
    person to a profile, and the refusals by rule."""
    graph = IdentityGraph(rules)
    single = truth.single
    persons_in: dict[str, set[str]] = {}  # profile id -> the true persons of its single-person identifiers
    refusals: Counter[str] = Counter()
    links: list[tuple[Key, CrossLink]] = []
    for seq, keys in enumerate(events, 1):
        before = [(k, graph.profile_of(k)) for k in keys]
        decision = graph.observe(seq, keys)
        refusals.update(r.rule for r in decision.refusals)
        profile = decision.profile_id
        if profile is None:
            continue
        # the profiles folded into this one: those that owned one of the event's keys that is now in it
        merged = {o for k, o in before if o is not None and graph.profile_of(k) == profile}
        parts = [persons_in.pop(o, set()) for o in merged]
        parts += [{single[k]} for k in decision.attached if k in single]
        joined = set().union(*parts)
        persons_in[profile] = joined
        if len(joined) > max((len(part) for part in parts), default=0) and len(joined) > 1:
            refused = {r.key for r in decision.refusals}
            used = [k for k in keys if k not in refused and rules.tracks(k)]
            shown = [f"{_show(k)} [{_label(k, truth)}]" for k in used]
            links.append((used[0], CrossLink(seq, len(joined), shown, _cause(used, truth))))
    by_profile: dict[str, list[CrossLink]] = defaultdict(list)
    for key, link in links:
        final = graph.profile_of(key)
        if final is not None:
            by_profile[final].append(link)
    return dict(by_profile), refusals


def reachable(events: Sequence[list[Key]], truth: Truth) -> dict[Key, Key]:
    """The best partition the events support without linking on shared identifiers: a person's identifiers that
    appear in one event, directly or through a chain of events, share a cluster (named by a root key)."""
    parent: dict[Key, Key] = {}

    def find(key: Key) -> Key:
        while (up := parent[key]) != key:
            parent[key] = parent[up]  # path halving
            key = up
        return key

    single = truth.single
    for keys in events:
        first: dict[str, Key] = {}
        for key in keys:
            person = single.get(key)
            if person is None:
                continue
            parent.setdefault(key, key)
            other = first.setdefault(person, key)
            if other != key:
                a, b = find(other), find(key)
                if a != b:
                    parent[b] = a
    return {key: find(key) for key in single if key in parent}


@dataclass
class Evaluation:
    scores: Scores
    predicted: dict[Key, str]  # single-person keys with a profile -> profile id
    details: dict[str, Any]


def evaluate(graph: IdentityGraph, truth: Truth, oracle: dict[Key, Key]) -> Evaluation:
    single = truth.single
    excluded = len(truth.shared)
    predicted: dict[Key, str] = {}
    unresolved: Counter[str] = Counter()
    for key in single:
        profile = graph.profile_of(key)
        if profile is None:
            unresolved[truth.describe(key)] += 1
        else:
            predicted[key] = profile
    scores = score(predicted, single, shared_identifiers_excluded=excluded)
    # Each unresolved identifier counted as a profile of its own (what looking a person up would find).
    everything = {key: predicted.get(key) or f"unresolved:{key[0]}:{key[1]}" for key in single}
    with_unresolved = score(everything, single, shared_identifiers_excluded=excluded)
    ceiling = score(oracle, single, shared_identifiers_excluded=excluded)
    against_reachable = score(everything, oracle, shared_identifiers_excluded=excluded)

    # Splits that the events could have joined: per reachable cluster, the identifiers outside its main profile.
    profiles_of: dict[Key, Counter[str]] = defaultdict(Counter)
    for key, root in oracle.items():
        profiles_of[root][everything[key]] += 1
    main_profile = {root: counts.most_common(1)[0][0] for root, counts in profiles_of.items()}
    missed: Counter[str] = Counter()
    for key, root in oracle.items():
        if everything[key] != main_profile[root]:
            missed[truth.describe(key)] += 1
    # Splits the events give no evidence to join: reachable clusters per person beyond the first.
    clusters_per_person: dict[str, set[Key]] = defaultdict(set)
    for key, root in oracle.items():
        clusters_per_person[single[key]].add(root)
    no_evidence = Counter(len(roots) for roots in clusters_per_person.values())

    # Shared identifiers: did their owners end up together in the identifier's profile?
    persons_in: dict[str, set[str]] = defaultdict(set)
    for key, profile in predicted.items():
        persons_in[profile].add(single[key])
    by_note: Counter[str] = Counter()
    joining: Counter[str] = Counter()
    unlinked: Counter[str] = Counter()
    for key in truth.shared:
        by_note[truth.describe(key)] += 1
        profile = graph.profile_of(key)
        if profile is None:
            unlinked[truth.describe(key)] += 1
        elif len(truth.persons[key] & persons_in[profile]) >= 2:
            joining[truth.describe(key)] += 1
    details = {
        "scores_with_unresolved_as_singletons": asdict(with_unresolved),
        "reachable_ceiling": asdict(ceiling),
        "scores_against_reachable": asdict(against_reachable),
        "unresolved_identifiers": dict(unresolved.most_common()),
        "reachable_identifiers_outside_main_profile": dict(missed.most_common()),
        "persons_by_reachable_clusters": {str(k): v for k, v in sorted(no_evidence.items())},
        "shared_identifiers": dict(by_note.most_common()),
        "shared_identifiers_not_in_any_profile": dict(unlinked.most_common()),
        "shared_identifiers_whose_profile_holds_2plus_of_their_owners": dict(joining.most_common()),
    }
    return Evaluation(scores, predicted, details)


def over_merge_examples(
    predicted: dict[Key, str], truth: Truth, links: dict[str, list[CrossLink]]
) -> tuple[list[dict[str, Any]], Counter[str], Counter[int]]:
    members: dict[str, dict[str, list[Key]]] = defaultdict(lambda: defaultdict(list))
    for key, profile in predicted.items():
        members[profile][truth.single[key]].append(key)
    merged = {profile: persons for profile, persons in members.items() if len(persons) > 1}
    causes: Counter[str] = Counter()
    persons_per_profile: Counter[int] = Counter()
    for profile, persons in merged.items():
        persons_per_profile[len(persons)] += 1
        found = links.get(profile)
        causes.update({link.cause for link in found} if found else {"(no cross-person event found)"})
    ranked = sorted(merged.items(), key=lambda item: (-len(item[1]), -sum(map(len, item[1].values())), item[0]))
    examples = []
    for profile, persons in ranked[:MAX_EXAMPLES]:
        examples.append(
            {
                "profile": profile,
                "identifiers": sum(map(len, persons.values())),
                "persons": {
                    person: {
                        "identifiers": len(keys),
                        "by_type": dict(Counter(truth.describe(k) for k in keys).most_common()),
                        "sample": sorted(f"{_show(k)} [{_label(k, truth)}]" for k in keys if k[0] != "anonymous_id")[
                            :4
                        ],
                    }
                    for person, keys in sorted(persons.items())
                },
                "joined_by": [asdict(link) for link in links.get(profile, [])[:5]],
            }
        )
    return examples, causes, persons_per_profile


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu}


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    print(f"\n{title}")
    width = max((len(name) for name, _ in rows), default=0)
    for name, value in rows:
        text = f"{value:.4f}" if isinstance(value, float) else (f"{value:,}" if isinstance(value, int) else str(value))
        print(f"  {name:<{width}}  {text}")


def _print_counter(title: str, counts: dict[str, int], limit: int = 12) -> None:
    if counts:
        _print_table(title, list(counts.items())[:limit])


def _triple(scores: dict[str, Any], prefix: str = "") -> str:
    return " / ".join(f"{scores[f'{prefix}{name}']:.4f}" for name in ("precision", "recall", "f1"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("bench/results/identity.json"))
    args = parser.parse_args(argv)

    print(f"Preparing the demo dataset: {args.people:,} people, seed {args.seed} ...", flush=True)
    prepared = prepare(args.people, args.seed)
    events = prepared.events
    print(f"  {len(events):,} events in {prepared.seconds:.1f} s; stitching ...", flush=True)
    graph, stitch_seconds = stitch(events, DEFAULT_RULES)
    stats = graph.stats()
    print(f"  stitched in {stitch_seconds:.2f} s; scoring and explaining ...", flush=True)
    truth = load_truth(args.people, args.seed, prepared.index)
    oracle = reachable(events, truth)
    evaluation = evaluate(graph, truth, oracle)
    scores, details = evaluation.scores, evaluation.details
    links, refusals = explain(events, DEFAULT_RULES, truth)
    examples, causes, persons_per_profile = over_merge_examples(evaluation.predicted, truth, links)
    cross_link_causes = Counter(link.cause for found in links.values() for link in found)

    speed = {
        "events": len(events),
        "seconds": round(stitch_seconds, 3),
        "events_per_s": round(len(events) / stitch_seconds) if stitch_seconds else None,
        "us_per_event": round(stitch_seconds / len(events) * 1e6, 2) if events else None,
    }
    result: dict[str, Any] = {
        "machine": _machine(),
        "params": {"people": args.people, "seed": args.seed, "end": END.isoformat()},
        "dataset": {
            "messages": prepared.messages,
            "events": len(events),
            "rejected": dict(prepared.rejected),
            "events_without_keys": prepared.events_without_keys,
            "distinct_keys": len({k for keys in events for k in keys}),
            "index_conflicts": prepared.index_conflicts,
            "prepare_seconds": round(prepared.seconds, 1),
            "truth_rows": truth.rows,
            "truth_keys": len(truth.persons),
            "truth_rows_unmapped": dict(truth.unmapped.most_common()),
        },
        "stitching": speed,
        "graph": stats,
        "refusals": dict(refusals.most_common()),
        "scores": asdict(scores),
        **details,
        "over_merged_profiles_by_persons": {str(k): v for k, v in sorted(persons_per_profile.items())},
        "over_merge_causes": dict(causes.most_common()),
        "cross_person_link_events": dict(cross_link_causes.most_common()),
        "over_merge_examples": examples,
        "peak_rss_mb": _peak_rss_mb(),
    }

    s = scores
    unresolved = sum(details["unresolved_identifiers"].values())
    _print_table(
        f"Identity resolution accuracy: {args.people:,} people, seed {args.seed}",
        [
            ("events", len(events)),
            ("truth identifiers (typed keys)", len(truth.persons)),
            ("identifiers scored", s.identifiers),
            ("shared identifiers excluded", s.shared_identifiers_excluded),
            ("unresolved (no profile, not scored)", unresolved),
            ("pairwise precision", s.precision),
            ("pairwise recall", s.recall),
            ("pairwise F1", s.f1),
            ("B-cubed precision", s.b3_precision),
            ("B-cubed recall", s.b3_recall),
            ("B-cubed F1", s.b3_f1),
            ("true / predicted / correct pairs", f"{s.true_pairs:,} / {s.predicted_pairs:,} / {s.correct_pairs:,}"),
            ("over-merged profiles", s.over_merged_clusters),
            ("largest profile (scored identifiers)", s.largest_cluster),
            ("profiles", stats.get("profiles", "?")),
            ("hubs", stats.get("hubs", "?")),
        ],
    )
    alt, ceiling, vs_reach = (
        details["scores_with_unresolved_as_singletons"],
        details["reachable_ceiling"],
        details["scores_against_reachable"],
    )
    _print_table(
        "Context (P / R / F1, pairwise | B-cubed)",
        [
            ("unresolved counted as singletons", f"{_triple(alt)} | {_triple(alt, 'b3_')}"),
            ("ceiling: what the events can link", f"{_triple(ceiling)} | {_triple(ceiling, 'b3_')}"),
            ("profiles vs that ceiling", f"{_triple(vs_reach)} | {_triple(vs_reach, 'b3_')}"),
        ],
    )
    _print_table(
        "Stitching speed (observe calls only, one core)",
        [
            ("events", speed["events"]),
            ("seconds", speed["seconds"]),
            ("events/s", speed["events_per_s"]),
            ("µs/event", speed["us_per_event"]),
            ("peak RSS MB (whole run)", result["peak_rss_mb"]),
        ],
    )
    _print_counter("Graph stats", stats)
    _print_counter("Refusals by rule", result["refusals"])
    _print_counter("Truth rows never stored as an identifier (type/note)", result["dataset"]["truth_rows_unmapped"])
    _print_counter("Unresolved single-person identifiers (type/note)", details["unresolved_identifiers"])
    _print_counter(
        "Linkable identifiers left outside their person's main profile (type/note)",
        details["reachable_identifiers_outside_main_profile"],
    )
    _print_counter("Persons by number of evidence-reachable clusters", details["persons_by_reachable_clusters"])
    _print_counter("Shared identifiers excluded (type/note)", details["shared_identifiers"])
    _print_counter(
        "Shared identifiers whose profile holds 2+ of their owners",
        details["shared_identifiers_whose_profile_holds_2plus_of_their_owners"],
    )
    _print_counter("Over-merged profiles by persons", result["over_merged_profiles_by_persons"])
    _print_counter("Over-merged profiles by cause (a profile may have several)", result["over_merge_causes"])
    if examples:
        print(f"\nOver-merged profiles (up to {MAX_EXAMPLES}, most persons first)")
        for example in examples:
            print(f"  {example['profile']}: {example['identifiers']} identifiers, {len(example['persons'])} persons")
            for person, info in example["persons"].items():
                kinds = ", ".join(f"{n} {kind}" for kind, n in info["by_type"].items())
                print(f"    {person}: {kinds}")
            for link in example["joined_by"][:3]:
                print(f"    joined at seq {link['seq']}: {'; '.join(link['keys'])}")
    else:
        print("\nZero profiles merged through a blocked or hub identifier: no profile holds two true persons.")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nWrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
