"""Probabilistic matching in the server: runs over the stored profiles, the review queue, and revocation.

A run (``MatchingService.run``):

1. reads every profile's traits and identifiers, and turns each profile with a name, an email or a phone into a
   ``PersonRecord`` (``person_record``); its unique identifiers (``crm_id``, ``loyalty_card``, ...) are the
   record's cannot-link keys;
2. picks the **candidates**: profiles *all* of whose identifiers were first seen in events from sources of an
   imported kind (``crm``, ``pos``). Such a profile is an imported record that shares no identifier with any
   web, app, email or shop profile; a profile that holds even one identifier first seen elsewhere is already
   tied to that traffic and is only matched against;
3. trains a ``SplinkMatcher`` on all the records (unsupervised, deterministic), then scores candidate against
   non-candidate (link) and candidate against candidate (dedup: a CRM contact and a till customer);
4. leaves out pairs already linked, queued or decided (found through the identifiers each stored pair names,
   so a pair is recognized after either profile merged with others), and runs ``decide`` with the thresholds,
   the unique identifiers and the links each profile already has;
5. links each ``auto_link`` pair through the identity processor (``merge_profiles``, actor ``matching:<run>``),
   so cannot-link, limits and caps hold exactly as for any merge; a merge the graph refuses is stored as
   ``refused`` with its rule. ``review`` pairs go to the queue (``pending``); rejects are only counted.

Accepting a review runs ``decide`` again with the then current identifiers and links, then merges. Revoking a
link (automatic or accepted) excludes the link between the two identifiers the pair was decided on (the
strongest of each side, the identifiers the merge recorded as its evidence), which splits the profile.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Final

from onefold.errors import CollectError, Conflict, NotFound
from onefold.identity.matching import (
    Decision,
    MatchingError,
    PersonRecord,
    Policy,
    ScoredPair,
    SplinkMatcher,
    Thresholds,
    TrainingOptions,
    decide,
)
from onefold.identity.rules import IdentityRules, Key
from onefold.pipeline.identity_processor import IdentityProcessor
from onefold.store import DuckDBStore
from onefold.store.match_tables import ACTIVE_LINKS, PAIR_STATUSES, MatchTables, NewPair, ProfileRow

__all__ = [
    "DEFAULT_OPTIONS",
    "IMPORTED_KINDS",
    "MIN_TRAINING_RECORDS",
    "MatchingService",
    "RunOptions",
    "person_record",
    "strongest_key",
]

IMPORTED_KINDS: Final = frozenset({"crm", "pos"})  # sources whose records arrive without a web or app identifier
MIN_TRAINING_RECORDS: Final = 100  # fewer cannot train a model; the engine needs a population to learn from
CAP_REASON: Final = "cap:max_links_per_record"
# Traits a reviewer sees for each side of a pair (what the model compares).
KEY_TRAITS: Final = (
    "name",
    "first_name",
    "last_name",
    "birthday",
    "email",
    "phone",
    "address",
    "street",
    "city",
    "state",
    "postal_code",
    "country",
)
_SHOWN_IDENTIFIERS: Final = 25
_STREET: Final = re.compile(r"^\s*(\d+[a-z]?(?:[-/]\d+[a-z]?)?)[\s,]+(.+)$", re.IGNORECASE)
_ISO_DATETIME: Final = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]")


@dataclass(frozen=True, slots=True)
class RunOptions:
    low: float = 0.90  # at or above: review
    high: float = 0.99  # at or above: link automatically
    max_links_per_profile: int | None = 1  # probabilistic links a profile takes part in; None: no cap
    seed: int = 7  # training's random sample

    def policy(self) -> Policy:
        return Policy(Thresholds(self.low, self.high), max_links_per_record=self.max_links_per_profile)


DEFAULT_OPTIONS: Final = RunOptions()


# --- pure: profiles to records ---------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def _split_street(street: str | None) -> tuple[str | None, str | None]:
    """``"12 Main St"`` -> (``"12"``, ``"Main St"``); a street without a leading number keeps it whole."""
    if street is None:
        return None, None
    found = _STREET.match(street)
    return (found.group(1), found.group(2).strip()) if found else (None, street)


def _dob(value: object) -> str | None:
    text = _text(value)
    if text is None:
        return None
    found = _ISO_DATETIME.match(text)
    return found.group(1) if found else text


def person_record(
    row: ProfileRow, regions: Mapping[str, str | None], unique_types: frozenset[str]
) -> PersonRecord | None:
    """The matching record of a profile: its current traits (first/last name or ``name``, ``birthday``,
    ``address`` or flat ``street``/``city``/``state``/``postal_code``, ``email``, ``phone``), falling back to its
    email and phone identifiers. None when it has neither a name, an email nor a phone. A phone is read in the
    default region of the source that sent it."""
    traits = row.traits
    values = {name: t.get("value") for name, t in traits.items() if isinstance(t, dict)}
    given, surname = _text(values.get("first_name")), _text(values.get("last_name"))
    if given is None and surname is None and (full := _text(values.get("name"))):
        head, _, tail = full.rpartition(" ")
        given, surname = (head, tail) if head else (tail, None)
    address = values.get("address")
    parts: Mapping[str, Any] = address if isinstance(address, dict) else {}
    street = _text(parts.get("street")) or _text(values.get("street")) or _text(address)

    def part(name: str) -> str | None:
        return _text(parts.get(name)) or _text(values.get(name))

    number, street_name = _split_street(street)
    email = _text(values.get("email")) or next((v for t, v, _ in row.keys if t == "email"), None)
    phone = _text(values.get("phone"))
    region: str | None = None
    if phone is not None:
        source = traits["phone"].get("source")
        region = regions.get(source) if isinstance(source, str) else None
    else:
        phone = next((v for t, v, _ in row.keys if t == "phone"), None)  # stored as E.164
    if given is None and surname is None and email is None and phone is None:
        return None
    return PersonRecord(
        record_id=row.profile_id,
        source="imported" if row.imported_only else "profile",
        given_name=given,
        surname=surname,
        street_number=number,
        address_1=street_name,
        address_2=_text(parts.get("street2")) or _text(parts.get("line2")),
        city=part("city"),
        postcode=part("postal_code"),
        state=part("state"),
        date_of_birth=_dob(values.get("birthday")),
        email=email,
        phone=phone,
        phone_region=region,
        unique_ids={t: v for t, v, _ in row.keys if t in unique_types},
    )


def strongest_key(keys: list[tuple[str, str, int]], rules: IdentityRules) -> Key:
    """The identifier a manual merge records as its evidence: highest priority, then oldest, then smallest."""
    best = min(keys, key=lambda k: (rules.priority_of(k[0]), k[2], k[0], k[1]))
    return best[0], best[1]


# --- the service ---------------------------------------------------------------------------------------------


class MatchingService:
    def __init__(
        self,
        processor: IdentityProcessor,
        store: DuckDBStore,
        *,
        caught_up: Callable[[], object],
        clock: Callable[[], datetime],
    ) -> None:
        """``caught_up`` waits until the profiles reflect every acknowledged event (``CaughtUp.profiles``): runs
        and decisions see them."""
        self._processor = processor
        self.tables = MatchTables(store)
        self._caught_up = caught_up
        self._clock = clock
        self._lock = threading.Lock()  # one run, accept, reject or revoke at a time

    @contextmanager
    def _exclusive(self, wait: float) -> Iterator[None]:
        acquired = self._lock.acquire(timeout=wait) if wait > 0 else self._lock.acquire(blocking=False)
        if not acquired:
            raise Conflict(
                "a matching run or review decision is in progress; retry when it finishes "
                "(GET /api/identity/matching/runs shows runs still 'running')"
            )
        try:
            yield
        finally:
            self._lock.release()

    # --- runs ---------------------------------------------------------------------------------------------
    def run(self, options: RunOptions) -> dict[str, Any]:
        """One synchronous matching run; returns the stored run with its summary."""
        options.policy()  # bad thresholds or cap fail here, before anything is recorded
        with self._exclusive(wait=0):
            self._caught_up()
            run_id = self.tables.start_run(self._clock(), asdict(options))
            try:
                summary = self._run(run_id, options)
            except Exception as exc:
                message = exc.message if isinstance(exc, MatchingError) else f"{type(exc).__name__}: {exc}"
                self.tables.finish_run(run_id, self._clock(), "failed", {"error": message})
                raise
            self.tables.finish_run(run_id, self._clock(), "finished", summary)
        found = self.tables.run(run_id)
        assert found is not None
        return found

    def _run(self, run_id: int, options: RunOptions) -> dict[str, Any]:
        started = time.perf_counter()
        seconds: dict[str, float] = {}

        def lap(name: str, since: float) -> float:
            now = time.perf_counter()
            seconds[name] = round(now - since, 3)
            return now

        rules = self._processor.graph.rules
        rows = self.tables.profiles(IMPORTED_KINDS)
        regions = self.tables.source_regions()
        records: list[PersonRecord] = []
        strongest: dict[str, Key] = {}
        for row in rows:
            record = person_record(row, regions, rules.unique_types)
            if record is not None:
                records.append(record)
                strongest[row.profile_id] = strongest_key(row.keys, rules)
        candidates = [r for r in records if r.source == "imported"]
        others = [r for r in records if r.source != "imported"]
        summary: dict[str, Any] = {
            "profiles": len(rows),
            "records": len(records),
            "candidates": len(candidates),
            "scored_pairs": 0,
            "already_known": 0,
            "auto_linked": 0,
            "queued": 0,
            "rejected": 0,
            "refused": 0,
            "reasons": {},
        }
        mark = lap("read", started)
        if not candidates:
            seconds["total"] = round(time.perf_counter() - started, 3)
            return {**summary, "seconds": seconds}
        if len(records) < MIN_TRAINING_RECORDS:
            raise MatchingError(
                f"too few profiles to train the matcher: {len(records)} have a name, email or phone, and it needs "
                f"at least {MIN_TRAINING_RECORDS}; import more records, then run matching again",
                records=len(records),
            )
        matcher = SplinkMatcher(TrainingOptions(seed=options.seed))
        matcher.fit(records)
        mark = lap("train", mark)
        pairs = matcher.score_pairs(candidates, others) + matcher.dedupe(candidates)
        mark = lap("score", mark)
        known = {
            frozenset((a, b)) for _, a, b in self.tables.known_pairs() if a is not None and b is not None and a != b
        }
        fresh = [p for p in pairs if frozenset((p.left_id, p.right_id)) not in known]
        unique_ids = {r.record_id: r.unique_ids for r in records}
        decisions = decide(fresh, options.policy(), unique_ids=unique_ids, existing_links=self.tables.link_counts())
        reasons: Counter[str] = Counter(d.reason for d in decisions)
        summary.update(
            scored_pairs=len(pairs),
            already_known=len(pairs) - len(fresh),
            rejected=sum(1 for d in decisions if d.outcome == "reject"),
            reasons=dict(sorted(reasons.items())),
        )
        queued: list[NewPair] = []
        survivor: dict[str, str] = {}  # profiles merged away during this run -> the profile that took them

        def current(profile_id: str) -> str:
            while profile_id in survivor:
                profile_id = survivor[profile_id]
            return profile_id

        for decision in decisions:
            if decision.outcome == "reject":
                continue
            pair = self._new_pair(run_id, decision, strongest)
            if decision.outcome == "review":
                queued.append(pair)
                continue
            a, b = current(decision.left_id), current(decision.right_id)
            result = self._processor.operate("merge_profiles", {"a": a, "b": b}, actor=f"matching:{run_id}")
            if result["refused"]:
                rule = ",".join(sorted({r["rule"] for r in result["refusals"]}))
                pair = replace(pair, status="refused", reason=f"refused:{rule}", refusals=result["refusals"])
                summary["refused"] += 1
            else:
                for merge in result["merges"]:
                    survivor[merge["loser"]] = merge["winner"]
                pair = replace(pair, operation_id=result["id"], profile_id=result["profile_id"] or a)
                summary["auto_linked"] += 1
            self.tables.add_pairs([pair])  # at once: a crash later in the run leaves no link unrecorded
        self.tables.add_pairs(queued)
        summary["queued"] = len(queued)
        lap("decide_and_link", mark)
        seconds["total"] = round(time.perf_counter() - started, 3)
        model = matcher.model
        summary["model"] = {
            "skipped_em_sessions": len(model["skipped_em_sessions"]),
            "neutralized_levels": len(model["neutralized_levels"]),
        }
        return {**summary, "seconds": seconds}

    def _new_pair(self, run_id: int, decision: Decision, strongest: Mapping[str, Key]) -> NewPair:
        auto = decision.outcome == "auto_link"
        return NewPair(
            run_id=run_id,
            a_profile=decision.left_id,
            b_profile=decision.right_id,
            a_key=strongest[decision.left_id],
            b_key=strongest[decision.right_id],
            probability=decision.match_probability,
            match_weight=decision.match_weight,
            reason=decision.reason,
            explanation=decision.explanation,
            status="auto_linked" if auto else "pending",
            created_at=self._clock(),
            decided_by=f"matching:{run_id}" if auto else None,
        )

    def runs(self, *, limit: int, before: int | None = None) -> list[dict[str, Any]]:
        return self.tables.runs(limit=limit, before=before)

    # --- the review queue ---------------------------------------------------------------------------------
    def pairs(
        self, *, status: str | None, limit: int, after: int = 0, run_id: int | None = None
    ) -> list[dict[str, Any]]:
        if status is not None and status not in PAIR_STATUSES:
            raise CollectError(f"status must be one of {', '.join(PAIR_STATUSES)}; got {status!r}", field="status")
        self._caught_up()
        return [self.view(p) for p in self.tables.pairs(status=status, limit=limit, after=after, run_id=run_id)]

    def view(self, pair: dict[str, Any]) -> dict[str, Any]:
        """A stored pair with each side's current profile, key traits and identifiers."""
        out = {k: v for k, v in pair.items() if k not in ("a_type", "a_value", "b_type", "b_value")}
        for side in ("a", "b"):
            key = (str(pair[f"{side}_type"]), str(pair[f"{side}_value"]))
            owner = self.tables.owner(key)
            traits, keys = self.tables.profile(owner) if owner else ({}, [])
            out[side] = {
                "identifier": {"type": key[0], "value": key[1]},
                "profile_id": owner,
                "profile_id_when_decided": pair[f"{side}_profile"],
                "traits": {name: traits[name] for name in KEY_TRAITS if name in traits},
                "identifiers": [{"type": k["type"], "value": k["value"]} for k in keys[:_SHOWN_IDENTIFIERS]],
                "identifiers_total": len(keys),
            }
            del out[f"{side}_profile"]
        return out

    def pair(self, pair_id: int) -> dict[str, Any]:
        pair = self.tables.pair(pair_id)
        if pair is None:
            raise NotFound(
                f"no matching pair {pair_id}; list the queue with GET /api/identity/matching/reviews?status=pending"
            )
        return pair

    def _owners(self, pair: dict[str, Any]) -> tuple[str, str]:
        owners = []
        for side in ("a", "b"):
            key = (str(pair[f"{side}_type"]), str(pair[f"{side}_value"]))
            owner = self.tables.owner(key)
            if owner is None:
                raise Conflict(
                    f"{key[0]}:{key[1]} no longer belongs to a profile (excluded or erased); "
                    f"reject review {pair['id']} instead",
                    identifier=list(key),
                )
            owners.append(owner)
        return owners[0], owners[1]

    def accept(self, pair_id: int, actor: str) -> dict[str, Any]:
        """Merge a pending pair's profiles, when the rules still allow it (checked again now)."""
        with self._exclusive(wait=30):
            self._caught_up()
            pair = self.pair(pair_id)
            if pair["status"] != "pending":
                raise Conflict(f"pair {pair_id} is {pair['status']}, not pending; only pending reviews can be accepted")
            a, b = self._owners(pair)
            operation_id: int | None = None
            profile_id = a
            if a != b:
                self._check_rules(pair, a, b)
                result = self._processor.operate("merge_profiles", {"a": a, "b": b}, actor=actor)
                if result["refused"]:
                    rules = ", ".join(sorted({r["rule"] for r in result["refusals"]}))
                    raise Conflict(
                        f"the identity graph refused the merge by rule {rules}; nothing changed. "
                        f"Reject review {pair_id}, or change what the rule names first",
                        rule=rules,
                        refusals=result["refusals"],
                    )
                operation_id, profile_id = int(result["id"]), str(result["profile_id"])
            self.tables.decide_pair(
                pair_id,
                expected=("pending",),
                status="accepted",
                at=self._clock(),
                by=actor,
                operation_id=operation_id,
                profile_id=profile_id,
            )
            return self.view(self.pair(pair_id))

    def _check_rules(self, pair: dict[str, Any], a: str, b: str) -> None:
        """``decide`` again, on the profiles as they are now: cannot-link on unique identifiers, and the cap on
        probabilistic links (not for a pair queued *because* of the cap: the reviewer is the one deciding it)."""
        run = self.tables.run(int(pair["run_id"]))
        cap = (run or {}).get("settings", {}).get("max_links_per_profile", DEFAULT_OPTIONS.max_links_per_profile)
        if pair["reason"] == CAP_REASON:
            cap = None
        unique_types = self._processor.graph.rules.unique_types
        unique_ids = {
            pid: {k["type"]: k["value"] for k in self.tables.profile(pid)[1] if k["type"] in unique_types}
            for pid in (a, b)
        }
        scored = ScoredPair(a, b, float(pair["probability"]), float(pair["match_weight"]))
        policy = Policy(Thresholds(0.0, 0.0), max_links_per_record=cap)  # the reviewer decided the score
        (decision,) = decide([scored], policy, unique_ids=unique_ids, existing_links=self.tables.link_counts())
        if decision.outcome != "auto_link":
            what = (
                f"profile {a} or {b} already takes part in {cap} probabilistic link(s); revoke one first"
                if decision.reason == CAP_REASON
                else f"the profiles hold different {decision.reason.partition(':')[2]} values (two people)"
            )
            raise Conflict(
                f"accepting pair {pair['id']} would break rule {decision.reason}: {what}; nothing changed. "
                f"Reject it with POST /api/identity/matching/reviews/{pair['id']}/reject",
                rule=decision.reason,
            )

    def reject(self, pair_id: int, actor: str) -> dict[str, Any]:
        """Keep a pending pair's profiles apart; the pair is not proposed again."""
        with self._exclusive(wait=30):
            pair = self.pair(pair_id)
            if not self.tables.decide_pair(
                pair_id, expected=("pending",), status="rejected", at=self._clock(), by=actor
            ):
                raise Conflict(f"pair {pair_id} is {pair['status']}, not pending; only pending reviews can be rejected")
            return self.view(self.pair(pair_id))

    def revoke(self, pair_id: int, actor: str) -> dict[str, Any]:
        """Undo an automatic or accepted link: the two identifiers it was decided on become a cannot-link pair,
        which splits the merged profile (each side's events follow its identifiers)."""
        with self._exclusive(wait=30):
            self._caught_up()
            pair = self.pair(pair_id)
            if pair["status"] not in ACTIVE_LINKS:
                raise Conflict(
                    f"pair {pair_id} is {pair['status']}; only {' or '.join(ACTIVE_LINKS)} links can be revoked"
                )
            a = [pair["a_type"], pair["a_value"]]
            b = [pair["b_type"], pair["b_value"]]
            result = self._processor.operate("exclude_link", {"a": a, "b": b}, actor=actor)
            self.tables.revoke_pair(pair_id, at=self._clock(), by=actor, operation_id=int(result["id"]))
            return {**self.view(self.pair(pair_id)), "operation": result}
