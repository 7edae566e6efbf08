"""Numbered schema migrations. A migration is appended, never edited once released."""

from __future__ import annotations

# Column order of the `events` table; the writer builds Arrow columns in exactly this order.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("seq", "BIGINT NOT NULL"),
    ("message_id", "VARCHAR NOT NULL"),
    ("source_id", "VARCHAR NOT NULL"),
    ("type", "VARCHAR NOT NULL"),
    ("event", "VARCHAR"),
    ("name", "VARCHAR"),
    ("user_id", "VARCHAR"),
    ("anonymous_id", "VARCHAR"),
    ("group_id", "VARCHAR"),
    ("previous_id", "VARCHAR"),
    ("timestamp", "TIMESTAMPTZ NOT NULL"),
    ("original_timestamp", "TIMESTAMPTZ"),
    ("sent_at", "TIMESTAMPTZ"),
    ("received_at", "TIMESTAMPTZ NOT NULL"),
    ("properties", "JSON"),
    ("traits", "JSON"),
    ("context", "JSON"),
    ("integrations", "JSON"),
    ("identifiers", "JSON"),
    ("flags", "JSON"),
    ("consent", "JSON"),
    ("revenue", "DOUBLE"),
    ("currency", "VARCHAR"),
    ("order_id", "VARCHAR"),
    ("products", "JSON"),
    ("channel", "VARCHAR"),
    ("campaign", "VARCHAR"),
)
# The name audiences know an event by: a track call's event, "Page Viewed" and "Screen Viewed" for the others.
AUDIENCE_EVENT_NAME = (
    "CASE e.type WHEN 'track' THEN e.event WHEN 'page' THEN 'Page Viewed' WHEN 'screen' THEN 'Screen Viewed' END"
)
EVENT_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in EVENT_COLUMNS)
EVENT_JSON_COLUMNS: tuple[str, ...] = tuple(name for name, kind in EVENT_COLUMNS if kind == "JSON")

QUARANTINE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "BIGINT NOT NULL"),
    ("source_id", "VARCHAR"),
    ("received_at", "TIMESTAMPTZ NOT NULL"),
    ("endpoint", "VARCHAR NOT NULL"),
    ("code", "VARCHAR NOT NULL"),
    ("reason", "VARCHAR NOT NULL"),
    ("message_id", "VARCHAR"),
    ("batch_index", "INTEGER"),
    ("payload", "VARCHAR NOT NULL"),
)
QUARANTINE_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in QUARANTINE_COLUMNS)


def _table(name: str, columns: tuple[tuple[str, str], ...]) -> str:
    body = ",\n  ".join(f'"{col}" {kind}' for col, kind in columns)
    return f"CREATE TABLE {name} (\n  {body}\n)"


# A migration of one statement "<MOVE_INTO><catalog>" moves that file's tables into it (store/files.py): one
# transaction writes one file only, so a move cannot be a list of statements.
MOVE_INTO = "-- move into "

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the event log, quarantine, sources, counters and key/value settings.
    (
        _table("events", EVENT_COLUMNS),
        _table("quarantine", QUARANTINE_COLUMNS),
        """CREATE TABLE sources (
          id VARCHAR PRIMARY KEY,
          name VARCHAR NOT NULL UNIQUE,
          kind VARCHAR NOT NULL,
          default_region VARCHAR,
          write_key VARCHAR NOT NULL UNIQUE,
          previous_write_key VARCHAR,
          previous_key_expires_at TIMESTAMPTZ,
          disabled BOOLEAN NOT NULL DEFAULT FALSE,
          created_at TIMESTAMPTZ NOT NULL,
          updated_at TIMESTAMPTZ NOT NULL
        )""",
        "CREATE TABLE counters (name VARCHAR PRIMARY KEY, value BIGINT NOT NULL)",
        "INSERT INTO counters VALUES ('events_deduplicated', 0)",
        "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    ),
    # 2: identity resolution. The processor's offset commits with its changes; evidence is append-only.
    (
        "CREATE TABLE processor_offsets (name VARCHAR PRIMARY KEY, seq BIGINT NOT NULL)",
        "CREATE TABLE identity_keys (type VARCHAR NOT NULL, value VARCHAR NOT NULL, profile_id VARCHAR NOT NULL,"
        " first_seq BIGINT NOT NULL)",
        "CREATE TABLE identity_links (seq BIGINT NOT NULL, profile_id VARCHAR NOT NULL, type VARCHAR NOT NULL,"
        " value VARCHAR NOT NULL)",
        "CREATE TABLE identity_merges (seq BIGINT NOT NULL, winner VARCHAR NOT NULL, loser VARCHAR NOT NULL,"
        " via JSON NOT NULL)",
        "CREATE TABLE identity_refusals (seq BIGINT NOT NULL, rule VARCHAR NOT NULL, type VARCHAR NOT NULL,"
        " value VARCHAR NOT NULL, profiles JSON NOT NULL)",
        "CREATE TABLE identity_hubs (type VARCHAR NOT NULL, value VARCHAR NOT NULL, seq BIGINT NOT NULL)",
    ),
    # 3: identity splits (a profile re-derived without an identifier found to be shared).
    (
        "CREATE TABLE identity_splits (seq BIGINT NOT NULL, profile_id VARCHAR NOT NULL, new_profiles JSON NOT NULL,"
        " hub_type VARCHAR NOT NULL, hub_value VARCHAR NOT NULL)",
    ),
    # 4: profiles. Which profile each event belongs to (the timeline), and each profile's folded state. The
    # identity projection is rebuilt from the log so that every profile gets its state.
    (
        "CREATE TABLE event_profiles (seq BIGINT NOT NULL, profile_id VARCHAR NOT NULL)",
        "CREATE TABLE profiles (profile_id VARCHAR NOT NULL, state JSON NOT NULL, updated_seq BIGINT NOT NULL)",
        "DELETE FROM identity_keys",
        "DELETE FROM identity_links",
        "DELETE FROM identity_merges",
        "DELETE FROM identity_refusals",
        "DELETE FROM identity_hubs",
        "DELETE FROM identity_splits",
        "DELETE FROM processor_offsets WHERE name = 'identity'",
    ),
    # 5: access tokens for the Profile API and other scoped clients, stored as hashes.
    (
        "CREATE TABLE access_tokens (id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, scopes JSON NOT NULL,"
        " token_sha256 VARCHAR NOT NULL UNIQUE, created_at TIMESTAMPTZ NOT NULL, revoked_at TIMESTAMPTZ)",
    ),
    # 6: privacy. Suppressed identifiers (hashes only), erasure receipts and the audit log.
    (
        "CREATE TABLE suppressed_identifiers (hash VARCHAR PRIMARY KEY, type VARCHAR NOT NULL,"
        " receipt_id VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL)",
        "CREATE TABLE erasure_receipts (id VARCHAR PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL,"
        " receipt JSON NOT NULL)",
        "CREATE TABLE audit_log (id BIGINT NOT NULL, at_time TIMESTAMPTZ NOT NULL, actor VARCHAR NOT NULL,"
        " action VARCHAR NOT NULL, subject VARCHAR NOT NULL, details JSON NOT NULL)",
    ),
    # 7: operator operations on the identity graph (split by exclusion, manual merge), replayed in log order.
    (
        "CREATE TABLE identity_operations (id BIGINT PRIMARY KEY, after_seq BIGINT NOT NULL, kind VARCHAR NOT NULL,"
        " args JSON NOT NULL, actor VARCHAR NOT NULL, result JSON NOT NULL)",
    ),
    # 8: probabilistic matching. Each run, and each pair it linked or queued for review with its identifiers
    # (the strongest of each side when decided: revocation excludes the link between them).
    (
        "CREATE TABLE match_runs (id BIGINT PRIMARY KEY, started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ,"
        " status VARCHAR NOT NULL, settings JSON NOT NULL, summary JSON)",
        "CREATE TABLE match_pairs (id BIGINT PRIMARY KEY, run_id BIGINT NOT NULL, a_profile VARCHAR NOT NULL,"
        " b_profile VARCHAR NOT NULL, a_type VARCHAR NOT NULL, a_value VARCHAR NOT NULL, b_type VARCHAR NOT NULL,"
        " b_value VARCHAR NOT NULL, probability DOUBLE NOT NULL, match_weight DOUBLE NOT NULL,"
        " reason VARCHAR NOT NULL, explanation JSON NOT NULL, status VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL,"
        " decided_at TIMESTAMPTZ, decided_by VARCHAR, operation_id BIGINT, profile_id VARCHAR, refusals JSON,"
        " revoked_at TIMESTAMPTZ, revoked_by VARCHAR, revoke_operation_id BIGINT)",
    ),
    # 9: indexes for the Profile API: a profile's timeline is a few point lookups instead of two full scans.
    (
        "CREATE INDEX events_seq ON events (seq)",
        "CREATE INDEX event_profiles_profile ON event_profiles (profile_id)",
    ),
    # 10: audiences. Each timeline row carries its event's name, time and properties, so an audience over every
    # profile is one scan instead of a join with the log; each profile carries the facts audiences read. Existing
    # timeline rows are filled from the log; facts are computed at the next start (IdentityProcessor.backfill_facts).
    (
        "DROP INDEX event_profiles_profile",
        "ALTER TABLE event_profiles ADD COLUMN event VARCHAR",
        "ALTER TABLE event_profiles ADD COLUMN ts TIMESTAMPTZ",
        "ALTER TABLE event_profiles ADD COLUMN properties JSON",
        f"UPDATE event_profiles SET event = {AUDIENCE_EVENT_NAME}, ts = e.timestamp, properties = e.properties"
        " FROM events e WHERE e.seq = event_profiles.seq",
        "CREATE INDEX event_profiles_profile ON event_profiles (profile_id)",
        "ALTER TABLE profiles ADD COLUMN facts JSON",
        "CREATE TABLE audiences (id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, name VARCHAR NOT NULL,"
        " description VARCHAR NOT NULL, definition JSON NOT NULL, created_at TIMESTAMPTZ NOT NULL,"
        " updated_at TIMESTAMPTZ NOT NULL, evaluated_at TIMESTAMPTZ, size BIGINT NOT NULL DEFAULT 0,"
        " UNIQUE (kind, name))",
        "CREATE TABLE audience_members (audience_id VARCHAR NOT NULL, profile_id VARCHAR NOT NULL,"
        " entered_at TIMESTAMPTZ NOT NULL)",
        "CREATE TABLE audience_changes (id BIGINT NOT NULL, audience_id VARCHAR NOT NULL, profile_id VARCHAR NOT NULL,"
        " change VARCHAR NOT NULL, at_time TIMESTAMPTZ NOT NULL, reason VARCHAR NOT NULL, upto_seq BIGINT NOT NULL)",
        "CREATE TABLE trait_values (trait_id VARCHAR NOT NULL, profile_id VARCHAR NOT NULL, value JSON NOT NULL,"
        " updated_at TIMESTAMPTZ NOT NULL)",
        "CREATE TABLE audience_offsets (name VARCHAR PRIMARY KEY, seq BIGINT NOT NULL)",
    ),
    # 11: console users and their sessions. Passwords are stored as scrypt hashes, session tokens as SHA-256.
    (
        "CREATE TABLE users (id VARCHAR PRIMARY KEY, email VARCHAR NOT NULL UNIQUE, name VARCHAR NOT NULL,"
        " role VARCHAR NOT NULL, pii_grant BOOLEAN NOT NULL, password_hash VARCHAR NOT NULL,"
        " created_at TIMESTAMPTZ NOT NULL, disabled_at TIMESTAMPTZ)",
        "CREATE TABLE console_sessions (token_sha256 VARCHAR PRIMARY KEY, user_id VARCHAR NOT NULL,"
        " csrf VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL)",
    ),
    # 12: no index on the log's seq. While DuckDB checkpoints, a query filtering an indexed column waits for it
    # (up to seconds under ingest) where the same query on an unindexed column does not; and seq grows with
    # insertion, so the row groups' min/max already narrow a range or a list of seqs to the groups holding them.
    ("DROP INDEX events_seq",),
    # 13: merges and refusals an operator's operation made (a manual merge, refused or not) are evidence too; their
    # seq is the event the operation came after, so they name the operation.
    (
        "ALTER TABLE identity_merges ADD COLUMN operation_id BIGINT",
        "ALTER TABLE identity_refusals ADD COLUMN operation_id BIGINT",
    ),
    # 14: the identity rules each projection was built with. The stored profiles follow the newest row; a server
    # started with other rules re-projects the log under them (IdentityProcessor.recover).
    (
        "CREATE TABLE identity_rules_applied (fingerprint VARCHAR NOT NULL, rules JSON NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL, events BIGINT NOT NULL)",
    ),
    # 15: deleted audiences and computed traits by id, so the changes feed still names the audience of the exits
    # its deletion recorded.
    (
        "CREATE TABLE deleted_definitions (id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, name VARCHAR NOT NULL,"
        " deleted_at TIMESTAMPTZ NOT NULL)",
    ),
    # 16, 17: the event log and the audiences in files of their own, so that the loader's, the identity processor's
    # and the audience rounds' commits stop waiting for each other's checkpoints; read through views as before.
    (MOVE_INTO + "onefold_log",),
    (MOVE_INTO + "onefold_audiences",),
)
