"""Settings: built once at startup from defaults < file < environment < flags, then frozen and passed down.

This is the only module that reads ``os.environ``. Every setting is declared once in ``SETTINGS`` with its
type, default and help; an unknown key in the file or a bad value is a startup error that names the source.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from onefold.errors import ConfigError

ENV_PREFIX = "ONEFOLD_"
CONFIG_FILE_NAME = "onefold.toml"


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    secret: bool = False


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must be zero or a positive whole number, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"must be a positive whole number, got {value}")
    return value


def _nice(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 19:
        raise ValueError(f"must be a nice increment from 0 to 19, got {value}")
    return value


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", str, "./onefold-data", "Directory holding the DuckDB file and the hashed admin token."),
    Setting("host", str, "127.0.0.1", "Address the server listens on."),
    Setting("port", int, 8700, "Port the server listens on."),
    Setting(
        "profile_api_port",
        _positive_int,
        None,
        "Port of the Profile API's serving process: a second process answering Segment's Profile API from a copy "
        "of the profiles in memory, so reads stay fast under heavy ingest. Unset: the Profile API is served on "
        "the main port only (it always is served there too).",
    ),
    Setting(
        "intake_port",
        _positive_int,
        None,
        "Port of the intake process: a second process serving the collector (Segment's and RudderStack's "
        "endpoints), which acknowledges events by journaling them, so the server's interpreter is left to "
        "profiles and audiences under heavy ingest. Unset: the collector is served by the server itself (the "
        "main port always serves it too).",
    ),
    Setting("admin_token", str, None, "Admin API token; generated on first start when unset.", secret=True),
    Setting("admin_email", str, None, "Email of the console's first admin, created at start when no user exists."),
    Setting(
        "admin_password",
        str,
        None,
        "Password of the console's first admin (with admin_email); at least 12 characters.",
        secret=True,
    ),
    Setting(
        "dedup_window_seconds",
        _positive_int,
        7 * 24 * 3600,
        "Window in which a repeated messageId is a duplicate.",
    ),
    Setting("max_event_bytes", _positive_int, 32 * 1024, "Largest single event, in bytes of JSON."),
    Setting("max_request_bytes", _positive_int, 500 * 1024, "Largest request body, after decompression."),
    Setting("max_batch_events", _positive_int, 2500, "Most events in one batch request."),
    Setting(
        "max_inflight_requests",
        _positive_int,
        128,
        "Collector requests being handled at once before new ones are answered 503 with Retry-After.",
    ),
    Setting(
        "max_inflight_bytes",
        _positive_int,
        2 * 1024 * 1024,
        "Request bytes (decompressed) being handled at once before new requests are answered 503; "
        "bounds the queueing delay an accepted request can see.",
    ),
    Setting(
        "body_timeout_seconds",
        _positive_int,
        10,
        "Longest a collector request may take to send its body before it is answered 408.",
    ),
    Setting(
        "queue_max_events",
        _positive_int,
        50_000,
        "Events waiting for commit before the collector answers 503.",
    ),
    Setting("commit_max_events", _positive_int, 5_000, "Most events written in one group commit."),
    Setting(
        "loader_max_lag_bytes",
        _positive_int,
        256 * 1024 * 1024,
        "Journal bytes not yet loaded into DuckDB before the collector answers 503.",
    ),
    Setting(
        "loader_linger_ms",
        _non_negative_int,
        100,
        "How long the loader gathers a small trickle of events before loading it into DuckDB (each load is a "
        "transaction with a fixed cost); 0 loads every group commit at once.",
    ),
    Setting(
        "parse_processes",
        _non_negative_int,
        0,
        "Worker processes that parse and validate big collector bodies (16 KB and more) outside the server's "
        "interpreter, leaving it to loading and identity resolution under heavy ingest; 0 parses in threads.",
    ),
    Setting(
        "background_nice",
        _nice,
        10,
        "How much lower than the server's request handling the OS ranks its background pipeline (loading into "
        "DuckDB, identity resolution, audience rounds), as a nice increment from 0 to 19 (Linux only). Under "
        "heavy ingest, API reads and acknowledgements then get a core first, and the pipeline every cycle they "
        "leave idle; 0 ranks them alike.",
    ),
    Setting("duckdb_memory_limit", str, "128MB", "DuckDB's memory_limit for the embedded store."),
    Setting(
        "profile_cards_mb",
        _positive_int,
        256,
        "Memory for serving cards: each profile's newest events and identifiers, which the Profile API answers "
        "from without a query; beyond it the least recently updated profiles are read from DuckDB.",
    ),
    Setting(
        "audience_refresh_seconds",
        _positive_int,
        60,
        "How often audiences and computed traits with time windows are evaluated again over every profile, so "
        "that a customer leaves 'purchased in the last 30 days' on day 31 without a new event.",
    ),
    Setting(
        "pipeline_wait_seconds",
        _positive_int,
        30,
        "How long an admin read of identities, profiles or audiences waits for the pipeline to reflect every event "
        "acknowledged before it, before answering 503 with how far the pipeline got.",
    ),
    Setting(
        "identity_rules_file",
        str,
        None,
        "TOML file of identity rules changed from the defaults (see examples/identity-rules.toml); "
        "a relative path is read from the data directory.",
    ),
    Setting(
        "trait_precedence_file",
        str,
        None,
        "TOML file ranking sources per trait for profile trait conflicts (see examples/trait-precedence.toml); "
        "a relative path is read from the data directory.",
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: str = "./onefold-data"
    host: str = "127.0.0.1"
    port: int = 8700
    profile_api_port: int | None = None
    intake_port: int | None = None
    admin_token: str | None = None
    admin_email: str | None = None
    admin_password: str | None = None
    dedup_window_seconds: int = 7 * 24 * 3600
    max_event_bytes: int = 32 * 1024
    max_request_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    max_inflight_requests: int = 128
    max_inflight_bytes: int = 2 * 1024 * 1024
    body_timeout_seconds: int = 10
    queue_max_events: int = 50_000
    commit_max_events: int = 5_000
    loader_max_lag_bytes: int = 256 * 1024 * 1024
    loader_linger_ms: int = 100
    parse_processes: int = 0
    background_nice: int = 10
    duckdb_memory_limit: str = "128MB"
    profile_cards_mb: int = 256
    audience_refresh_seconds: int = 60
    pipeline_wait_seconds: int = 30
    identity_rules_file: str | None = None
    trait_precedence_file: str | None = None

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def masked(self) -> dict[str, Any]:
        """The settings as a dict with secrets hidden, for logs and `onefold config`."""
        return {
            f.name: ("***" if _BY_NAME[f.name].secret and getattr(self, f.name) else getattr(self, f.name))
            for f in fields(self)
        }


def _coerce(setting: Setting, raw: Any, origin: str) -> Any:
    try:
        return setting.parse(str(raw))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{origin}: setting '{setting.name}' has a bad value {raw!r} ({exc}). {setting.help}",
            setting=setting.name,
        ) from exc


def load_settings(
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build Settings from defaults < config file < environment < flags (``None`` flags are ignored).

    The config file defaults to ``onefold.toml`` inside the data directory, when it exists.
    """
    env = os.environ if environ is None else environ
    given_flags = {k: v for k, v in (flags or {}).items() if v is not None}
    for key in given_flags:
        if key not in _BY_NAME:
            raise ConfigError(f"unknown setting '{key}'; known settings: {', '.join(_BY_NAME)}")

    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    data_dir = given_flags.get("data_dir") or env.get(ENV_PREFIX + "DATA_DIR") or values["data_dir"]
    path = config_file or Path(data_dir) / CONFIG_FILE_NAME
    if path.is_file():
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file or remove it") from exc
        for key, raw in file_values.items():
            if key not in _BY_NAME:
                raise ConfigError(f"{path}: unknown setting '{key}'; known settings: {', '.join(_BY_NAME)}")
            values[key] = _coerce(_BY_NAME[key], raw, str(path))
    for setting in SETTINGS:
        env_key = ENV_PREFIX + setting.name.upper()
        if env_key in env and env[env_key] != "":
            values[setting.name] = _coerce(setting, env[env_key], f"environment variable {env_key}")
    for key, raw in given_flags.items():
        values[key] = _coerce(_BY_NAME[key], raw, f"flag --{key.replace('_', '-')}")
    return Settings(**values)
