"""The identity processor: tails the event log in sequence order, stitches identifiers into profiles and keeps
each profile's state (traits, computed attributes, timeline) current.

Each micro-batch's changes (new identifier owners, link/merge/refusal evidence, hubs, event attributions and
profile states) are written in one transaction together with the processor's offset, so after a crash it
resumes exactly where it stopped. The graph itself lives in memory; at startup it is rebuilt by replaying the
log up to the stored offset, which gives the same state because the graph is deterministic.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import orjson

from onefold.background import BackgroundWorker, end_step, untimed
from onefold.collect.normalize import canonicalize_traits
from onefold.errors import StoreError
from onefold.identity.graph import Decision, IdentityGraph
from onefold.identity.keys import event_keys
from onefold.identity.operations import apply_operation, operation_result
from onefold.identity.rules import IdentityRules, Key, rules_document, rules_fingerprint
from onefold.pipeline.serving_cards import BatchFacts, cards_after, fill_wanted
from onefold.profiles.cache import CommittedStates, StateCache
from onefold.profiles.facts import facts
from onefold.profiles.projection import Item, ProfileChanges, project
from onefold.profiles.state import PROPERTY_EVENTS, ProfileEvent, Rank, no_precedence
from onefold.store import DuckDBStore
from onefold.store.identity_tables import IdentityBatch, IdentityTables
from onefold.store.profile_tables import ProfileTables

log = logging.getLogger(__name__)
T = TypeVar("T")
NAME = "identity"
MAX_ATTEMPTS = 3  # a batch that fails this many times in a row stops the processor (and /health says why)


class IdentityProcessor(BackgroundWorker):
    thread_name = "onefold-identity"

    def __init__(
        self,
        store: DuckDBStore,
        rules: IdentityRules,
        *,
        rank: Rank = no_precedence,
        batch_events: int = 5000,
        backlog_batch_events: int = 50_000,
        cached_states: int = 100_000,
        card_bytes: int = 256 * 1024 * 1024,
        pause_ratio: float = 1.0,
        flood_pause_ratio: float = 3.0,
    ) -> None:
        super().__init__()
        self._store = store
        self.tables = IdentityTables(store)
        self.profiles = ProfileTables(store, PROPERTY_EVENTS)
        self._rank = rank
        self.graph = IdentityGraph(rules)
        self._batch = batch_events
        # Under a backlog, batches grow: a batch's cost is mostly the profiles it touches, which grow slower than
        # its events. Caught up, batches are small so profiles follow events within a fraction of a second.
        self._backlog_batch = max(batch_events, backlog_batch_events)
        self._states = StateCache(cached_states)
        self.committed = CommittedStates(cached_states, card_bytes)
        # Under a backlog, pause after each batch for this fraction of the time it took, so that the processor
        # takes at most 1 / (1 + ratio) of the interpreter and lags instead of slowing acknowledgements. When
        # events arrive faster than it could fold them even at that share (a flood), it cannot keep up anyway:
        # it steps back further and leaves the collector the interpreter. Idle, it keeps up at once.
        self._pause_ratio = pause_ratio
        self._flood_pause_ratio = flood_pause_ratio
        self._kinds: dict[str, str] = {}
        self.offset = self.tables.offset(NAME)
        self.failure: BaseException | None = None
        self._exclusive: list[tuple[Callable[[Any], Any], Future[Any]]] = []
        # profiles the batch in progress created: known to the graph, with no state anywhere until it commits
        self.building: frozenset[str] = frozenset()
        # told after each commit which profiles it changed or removed, and which of them it created (the audience
        # processor)
        self.on_commit: Callable[[set[str], int, set[str]], None] | None = None
        # told how long each step of a round took (fetch, stitch, fold, serialize, commit, publish)
        self.step_took: Callable[[str, float], None] = untimed
        # told (events processed, last event) as a re-projection goes (the CLI's progress bar)
        self.on_progress: Callable[[int, int], None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------
    def recover(self) -> int:
        """Rebuild the in-memory graph from the log up to the stored offset, with the operators' operations at
        their places in it; returns events replayed. When the stored projection was built with other rules, it is
        dropped and the whole log projected again under these (see ``_reproject``)."""
        rules = self.graph.rules
        fingerprint = projection_fingerprint(rules)
        applied = self.tables.applied_rules()
        if applied is not None and applied != fingerprint:
            return self._reproject(applied, fingerprint)
        if applied is None:  # a new store, or one from before rules were recorded: taken as built with these
            self.tables.record_rules(fingerprint, rules_document(rules), reset=False)
        cur = self._store.cursor()
        stored = self.tables.operations()
        operations = [op for op in stored if op["after_seq"] <= self.offset]
        seq, replayed, next_op = 0, 0, 0
        while rows := self.tables.events_after(cur, seq, self._batch, upto=self.offset):
            for row in rows:
                while next_op < len(operations) and operations[next_op]["after_seq"] < row[0]:
                    op = operations[next_op]
                    apply_operation(self.graph, op["kind"], op["args"], op["after_seq"])
                    next_op += 1
                self.graph.observe(row[0], self._keys(row), row[3] / 1000)
            seq = rows[-1][0]
            replayed += len(rows)
        for op in operations[next_op:]:
            apply_operation(self.graph, op["kind"], op["args"], op["after_seq"])
        later = stored[len(operations) :]  # operations are applied in log order, so these come last
        if later:  # a re-projection stopped part way (operations are otherwise recorded at the offset)
            return replayed + self._project_up_to(deque(later), self.tables.last_seq())
        return replayed

    def _reproject(self, applied: str, fingerprint: str) -> int:
        """Drop the projection built with rules ``applied`` and build it again from the log under the current
        rules, operations re-applied at their places, before anything is served; returns events processed.
        Profiles, evidence and timelines are then exactly what streaming the log under these rules gives."""
        last = self.tables.last_seq()
        log.warning(
            "the identity rules or the projection's version changed (%s -> %s): re-projecting the log's %d events "
            "before serving",
            applied,
            fingerprint,
            last,
        )
        started = time.perf_counter()
        self.tables.record_rules(fingerprint, rules_document(self.graph.rules), reset=True)
        self.offset, self.graph = 0, IdentityGraph(self.graph.rules)
        self._states.clear()
        processed = self._project_up_to(deque(self.tables.operations()), last)
        log.warning("re-projected %d events in %.1f s", processed, time.perf_counter() - started)
        return processed

    def _project_up_to(self, pending: deque[dict[str, Any]], last: int) -> int:
        """Process the log from the offset to its end, applying the ``pending`` stored operations again at their
        places; returns events processed."""
        cur = self._store.cursor()
        processed = 0
        shown = time.perf_counter()
        while True:
            while pending and pending[0]["after_seq"] <= self.offset:
                self._replay_operation(cur, pending.popleft())
            rows = self.profiles.events_after(cur, self.offset, self._backlog_batch)
            if pending:  # stop where the next operation was applied
                rows = [row for row in rows if row[0] <= pending[0]["after_seq"]]
            if not rows:
                if not pending:
                    break
                self._replay_operation(cur, pending.popleft())  # the events before it are gone (erased)
                continue
            self._process(cur, rows)
            processed += len(rows)
            if self.on_progress is not None:
                self.on_progress(self.offset, last)
            if time.perf_counter() - shown > 10:
                shown = time.perf_counter()
                log.warning("re-projecting: %d of %d events", self.offset, last)
        return processed

    def _replay_operation(self, cur: Any, operation: dict[str, Any]) -> None:
        decision = apply_operation(self.graph, operation["kind"], operation["args"], operation["after_seq"])
        self._commit(cur, [Item(None, [], decision)], self.offset, operation_id=int(operation["id"]))

    def backfill_facts(self, chunk: int = 10_000) -> int:
        """Give every profile stored before profiles carried facts (migration 10) its facts; run before the
        processor starts. Returns the profiles filled."""
        filled = 0
        while rows := self.profiles.without_facts(chunk):
            self.profiles.set_facts([(pid, orjson.dumps(facts(orjson.loads(state))).decode()) for pid, state in rows])
            filled += len(rows)
        return filled

    def lag(self) -> int:
        return max(0, self.tables.last_seq() - self.offset)

    def wait_processed(self, seq: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.offset < seq and self.failure is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return self.offset >= seq

    def run_exclusive(self, action: Callable[[Any], T], timeout: float = 120.0) -> T:
        """Run ``action(cursor)`` in the processor's thread between two batches (the graph and the stored
        projection are then consistent and nothing else changes them), and return its result."""
        future: Future[T] = Future()
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                raise StoreError("the identity processor is not running; restart the server and retry")
            self._exclusive.append((action, future))
            self._cond.notify_all()
        return future.result(timeout)

    def forget(self, profile_id: str) -> None:
        """Drop an erased profile from memory (its rows are already deleted)."""
        self.graph.forget(profile_id)
        self._states.store({}, [profile_id])
        self.committed.publish((), [profile_id])

    # --- the loop -----------------------------------------------------------------------------------------
    def _run_exclusive(self, cur: Any) -> None:
        with self._cond:
            pending, self._exclusive = self._exclusive, []
        for action, future in pending:
            try:
                future.set_result(action(cur))
            except Exception as exc:  # the caller gets the error; the processor goes on
                self._states.clear()
                future.set_exception(exc)

    def _run(self) -> None:
        cur = self._store.cursor()
        size = self._batch
        failures = 0
        arrived_at, arrived_seq = time.perf_counter(), 0
        while True:
            started = time.perf_counter()
            try:
                if self._exclusive:
                    self._run_exclusive(cur)
                fetching = time.perf_counter()
                rows = self.profiles.events_after(cur, self.offset, size)
                if rows:
                    end_step(self.step_took, "fetch", fetching)
                    self._process(cur, rows)
                    self.round_took("identity", time.perf_counter() - started)
                fill_wanted(self.committed, self.graph, self.profiles, cur)
                failures = 0
            except Exception as exc:  # DuckDB out of memory, an I/O error: nothing past the stored offset counts
                failures += 1
                log.exception("identity processing failed (attempt %d of %d)", failures, MAX_ATTEMPTS)
                if failures >= MAX_ATTEMPTS or not self._restart_from_store():
                    with self._cond:
                        self.failure = exc  # /health answers 503 and names it
                        self._cond.notify_all()
                    return
                time.sleep(min(30.0, 0.5 * 2**failures))
                continue
            if not rows:
                with self._cond:
                    if self._stopping:
                        return
                    if not self._exclusive:
                        self._cond.wait(0.2)
                continue
            backlog = len(rows) >= self._batch  # more arrived than a caught-up batch holds
            size = self._backlog_batch if backlog else self._batch
            if backlog and not self._stopping:  # only a backlog pauses, never a shutdown drain
                now, took = time.perf_counter(), time.perf_counter() - started
                newest = self.tables.last_seq()
                arriving = (newest - arrived_seq) / max(now - arrived_at, 1e-3) if arrived_seq else 0.0
                keeps_up_at = len(rows) / max(took, 1e-3) / (1 + self._pause_ratio)
                ratio = self._flood_pause_ratio if arriving > keeps_up_at else self._pause_ratio
                arrived_at, arrived_seq = now, newest
                time.sleep(took * ratio)
            else:
                arrived_at, arrived_seq = time.perf_counter(), 0

    def _restart_from_store(self) -> bool:
        """After a failed batch the in-memory graph may hold decisions that were never committed: rebuild it from
        the log up to the stored offset, as at startup. False if even that fails."""
        try:
            self.graph = IdentityGraph(self.graph.rules)
            self._states.clear()
            self.offset = self.tables.offset(NAME)
            self.recover()
        except Exception:
            log.exception("rebuilding the identity graph from the log failed")
            return False
        return True

    def _process(self, cur: Any, rows: list[Any]) -> None:
        """Stitch and commit ``rows``. A split re-attributes events by the graph as it stands when the part is
        projected, so a batch is cut right after each event that split a profile: the result is then the same
        whatever the batch size (a crash, a replay, a backlog). Splits are rare, so the extra commits are too."""
        start = 0
        while start < len(rows):
            items: list[Item] = []
            lap = time.perf_counter()
            for row in rows[start:]:
                keys = self._keys(row)
                decision = self.graph.observe(row[0], keys, row[5] / 1000)  # event time drives the rules' windows
                items.append(Item(_profile_event(row), keys, decision))
                if decision.splits:
                    break
            end_step(self.step_took, "stitch", lap)
            part = rows[start : start + len(items)]
            start += len(items)
            self.building = frozenset(
                i.decision.profile_id for i in items if i.decision.created and i.decision.profile_id
            )
            try:
                self._commit(cur, items, int(part[-1][0]), rows={row[0]: row for row in part})
            finally:
                self.building = frozenset()

    def _commit(
        self,
        cur: Any,
        items: list[Item],
        offset: int,
        operation: tuple[Any, ...] | None = None,
        rows: dict[int, Any] | None = None,
        operation_id: int | None = None,
    ) -> None:
        """Write what the items changed (evidence, owners, profiles) with the offset, in one transaction, then
        publish the new states with their serving cards. ``operation``: a new operation's row, to store;
        ``operation_id``: a stored operation applied again."""
        if operation is not None:
            operation_id = int(operation[0])
        batch = IdentityBatch()
        touched: set[Key] = set()
        new: set[Key] = set()
        graph = self.graph
        for item in items:
            decision = item.decision
            _record(batch, decision, operation_id)
            new.update(decision.attached)
            batch.removed_owners.extend(decision.detached)
            # Profiles that took identifiers: by the end of the batch one may itself have been merged into
            # another (whose merge touches all its identifiers then), so a profile that is gone is skipped.
            grown = [decision.profile_id] if decision.merges and decision.profile_id else []
            for profile_id in [*grown, *(p for split in decision.splits for p in split.new_profiles)]:
                with contextlib.suppress(KeyError):
                    touched.update(graph.identifiers_of(profile_id))
        for key in new | touched:  # the batch's final word on each identifier it added or moved
            owner = graph.profile_of(key)
            if owner is not None:
                rows_for = batch.new_owners if key in new else batch.moved_owners
                rows_for.append((key[0], key[1], owner, graph.first_seen[key]))
        if operation is not None:
            batch.operations.append(operation)
        lap = time.perf_counter()
        try:
            changes = project(
                graph,
                items,
                lambda ids: self._states.load(ids, lambda missing: self._stored_states(cur, missing)),
                lambda ids: [(_profile_event(r), self._keys(r), str(r[-1])) for r in self.profiles.events_of(cur, ids)],
                self._rank,
            )
            lap = end_step(self.step_took, "fold", lap)
            _record_profiles(batch, changes, offset)
            lap = end_step(self.step_took, "serialize", lap)
            self.tables.commit(cur, NAME, batch, offset)
            lap = end_step(self.step_took, "commit", lap)
        except Exception:
            self._states.clear()  # cached states were folded into in place: they may hold uncommitted events
            raise
        self._states.store(changes.states, changes.deleted)
        regrouped = {  # profiles whose identifiers the batch changed: the others' cards keep theirs
            changes.renamed.get(pid, pid)
            for item in items
            if (pid := item.decision.profile_id)
            and (item.decision.attached or item.decision.merges or item.decision.detached)
        }
        regrouped.update(  # and those holding an identifier that became a hub: cards resolve no hub
            owner
            for item in items
            for refusal in item.decision.refusals
            if refusal.rule == "hub_detected" and (owner := self.graph.profile_of(refusal.key)) is not None
        )
        cards = cards_after(changes, BatchFacts(rows or {}), self.committed, self.graph, regrouped)
        self.committed.publish(((pid, text, cards.get(pid)) for pid, text, _, _ in batch.states), changes.deleted)
        end_step(self.step_took, "publish", lap)
        with self._cond:
            self.offset = offset
            self._cond.notify_all()
        if self.on_commit is not None:
            created = {pid for item in items if item.decision.created and (pid := item.decision.profile_id)}
            created.update(pid for item in items for split in item.decision.splits for pid in split.new_profiles)
            self.on_commit(
                {*changes.states, *changes.deleted, *changes.dissolved}, offset, created & changes.states.keys()
            )

    def _stored_states(self, cur: Any, ids: list[str]) -> dict[str, Any]:
        """The stored states of ``ids``; the profiles this batch created have none yet, and the lookup scans
        every stored profile, so a batch whose other profiles are all cached skips it."""
        stored = [pid for pid in ids if pid not in self.building]
        return self.profiles.states(cur, stored) if stored else {}

    # --- operator operations ------------------------------------------------------------------------------
    def operate(self, kind: str, args: dict[str, Any], actor: str) -> dict[str, Any]:
        """Apply an operator's operation between two batches, record it at its place in the log, return what
        it changed. Replaying the log re-applies it at the same place, so the result is the same."""

        def action(cur: Any) -> dict[str, Any]:
            after = self.offset
            decision = apply_operation(self.graph, kind, args, after)
            result = operation_result(decision)
            op_id = self.tables.next_operation_id()  # a refused merge is recorded too: it is evidence
            row = (op_id, after, kind, orjson.dumps(args).decode(), actor, orjson.dumps(result).decode())
            self._commit(cur, [Item(None, [], decision)], after, operation=row)
            refused = bool(decision.refusals) and not decision.merges and kind == "merge_profiles"
            return {"id": op_id, "kind": kind, "after_seq": after, "refused": refused, **result}

        return self.run_exclusive(action)

    def _keys(self, row: Any) -> list[Key]:
        source_id, identifiers = row[1], row[2]
        kind = self._kinds.get(source_id)
        if kind is None:
            self._kinds = {s.id: s.kind for s in self._store.list_sources()}
            kind = self._kinds.get(source_id, "other")
        return event_keys(kind, orjson.loads(identifiers) if identifiers else [])


# Raised whenever projecting the same log starts giving other profiles or states: a store projected by an older
# version is projected again from its log at the next start, as after a change of rules. 2: channel
# subscriptions kept apart from consent purposes; a split's new part never takes an id issued before; cart items
# keep their quantity.
PROJECTION_VERSION = 2


def projection_fingerprint(rules: IdentityRules) -> str:
    """What the stored projection is built with: the rules and the projection's version."""
    return f"{rules_fingerprint(rules)}.v{PROJECTION_VERSION}"


def _json(text: str | None) -> Any:
    return orjson.loads(text) if text else None


def _profile_event(row: Any) -> ProfileEvent:
    """A row of ``ProfileTables.columns`` as the fold reads it."""
    seq, source_id, _, kind, event, ts, channel, traits, properties, consent, revenue, currency, order_id = row[:13]
    traits = _json(traits)
    return ProfileEvent(
        seq=seq,
        source_id=source_id,
        type=kind,
        event=event,
        ts=ts,
        channel=channel,
        traits=canonicalize_traits(traits) if isinstance(traits, dict) and kind != "identify" else traits,
        properties=_json(properties),
        consent=_json(consent),
        revenue=revenue,
        currency=currency,
        order_id=order_id,
        products=_json(row[13]),
    )


def _record_profiles(batch: IdentityBatch, changes: ProfileChanges, seq: int) -> None:
    batch.attributions = changes.attributions
    batch.renamed = sorted(changes.renamed.items())
    batch.reattributed = changes.reattributed
    batch.deleted_profiles = sorted(changes.deleted)
    batch.dissolved = sorted(changes.dissolved)
    batch.states = [
        (pid, orjson.dumps(state).decode(), seq, orjson.dumps(facts(state)).decode())
        for pid, state in sorted(changes.states.items())
    ]


def _record(batch: IdentityBatch, decision: Decision, operation_id: int | None = None) -> None:
    """The evidence of one decision. An operation's merges and refusals name it; its own row holds the rest."""
    seq = decision.seq
    if operation_id is None:
        for key in decision.attached:
            assert decision.profile_id is not None
            batch.links.append((seq, decision.profile_id, key[0], key[1]))
    for merge in decision.merges:
        batch.merges.append((seq, merge.winner, merge.loser, orjson.dumps(merge.via).decode(), operation_id))
    for refusal in decision.refusals:
        # the union refused: the profiles the set-aside identifier would have joined, and the event's own
        profiles = refusal.profiles
        if decision.profile_id is not None and decision.profile_id not in profiles:
            profiles += (decision.profile_id,)
        batch.refusals.append(
            (seq, refusal.rule, refusal.key[0], refusal.key[1], orjson.dumps(profiles).decode(), operation_id)
        )
        if refusal.rule == "hub_detected":
            batch.hubs.append((refusal.key[0], refusal.key[1], seq))
    if operation_id is None:  # an operation's splits are in its own row
        for split in decision.splits:
            new = orjson.dumps(split.new_profiles).decode()
            batch.splits.append((seq, split.profile, new, split.hub[0], split.hub[1]))
