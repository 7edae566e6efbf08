"""One exception root for Onefold, with a branch per stage.

Every message says what went wrong *and* what to do about it. At the HTTP edge an error becomes
``{"error": {"code": ..., "message": ...}}`` with ``http_status``; ``details`` carries structured fields
(which field, which limit) for clients that want to react programmatically.
"""

from __future__ import annotations

from typing import Any


class OnefoldError(Exception):
    """Root of every error Onefold raises on purpose."""

    code = "onefold_error"
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class ConfigError(OnefoldError):
    """A setting is missing, unknown or has a bad value."""

    code = "config_error"


class StoreError(OnefoldError):
    """The storage engine failed or the data directory is unusable."""

    code = "store_error"


class CollectError(OnefoldError):
    """An incoming request or event breaks the collection contract."""

    code = "bad_request"
    http_status = 400


class PayloadTooLarge(CollectError):
    """A request, a decompressed body or a batch exceeds a limit."""

    code = "payload_too_large"
    http_status = 413


class RequestTimeout(CollectError):
    """The client did not send its whole request in time."""

    code = "request_timeout"
    http_status = 408


class Unauthorized(OnefoldError):
    """A missing, unknown or disabled credential."""

    code = "unauthorized"
    http_status = 401


class TooManyAttempts(Unauthorized):
    """Sign-in refused for a while after repeated wrong passwords."""

    code = "too_many_attempts"
    http_status = 429


class Forbidden(OnefoldError):
    """The credentials are valid but do not carry the permission (scope) the request needs."""

    code = "authorization_error"
    http_status = 403


class Behind(OnefoldError):
    """A read waited for the pipeline to reflect every acknowledged event, and a stage is still behind."""

    code = "pipeline_behind"
    http_status = 503


class Overloaded(OnefoldError):
    """The collector's write queue is full; the client should retry after ``retry_after`` seconds."""

    code = "overloaded"
    http_status = 503

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class NotFound(OnefoldError):
    """The requested object does not exist."""

    code = "not_found"
    http_status = 404


class Conflict(OnefoldError):
    """The request conflicts with existing state (for example a duplicate name)."""

    code = "conflict"
    http_status = 409


class ImportFailed(OnefoldError):
    """An importer could not read its input or its mapping."""

    code = "import_failed"
    http_status = 400


class RulesError(ConfigError):
    """An identity rules file is unreadable or breaks its format; the message names the file and the key."""

    code = "identity_rules_invalid"


class DefinitionError(OnefoldError):
    """An audience or computed-trait definition breaks the language; ``path`` points at the failing node."""

    code = "invalid_definition"
    http_status = 400
