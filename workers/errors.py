"""One error hierarchy, serialized in one place (the HTTP middleware and the socket
``error`` event). Never a stack trace to the client."""

from __future__ import annotations

from typing import Any

import asyncpg


class ChatError(Exception):
    """Root of the errors this service raises on purpose."""


class ApiError(ChatError):
    """An error a client should see: HTTP status, stable code, human message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class AuthError(ApiError):
    """Missing, malformed, expired or wrongly signed token (401)."""

    def __init__(self, message: str, code: str = "invalid_token") -> None:
        super().__init__(401, code, message)


# SQLSTATEs raised by our SQL functions and by Postgres itself, as HTTP errors.
_SQLSTATE: dict[str, tuple[int, str]] = {
    "28000": (401, "not_authenticated"),
    "42501": (403, "forbidden"),
    "P0002": (404, "not_found"),
    "55000": (409, "conflict"),
    "23505": (409, "conflict"),
    "22023": (422, "invalid_value"),
    "23514": (422, "invalid_value"),
    "23503": (422, "invalid_reference"),
    "23502": (422, "invalid_value"),
    "22P02": (422, "invalid_value"),
    "22001": (422, "invalid_value"),
    "57014": (503, "timeout"),
    "PT429": (429, "rate_limited"),  # PostgREST's convention: PTxyz answers HTTP xyz
    # Moderation (the moderation migration).
    "CHEDW": (409, "edit_window_closed"),
    "CHDEL": (409, "message_deleted"),
    "CHSUS": (403, "suspended"),
    "CHFRZ": (409, "session_frozen"),
    "CHCIB": (422, "contact_info_blocked"),
}


# The database going away or refusing connections (a restart, a failover, no free
# connection slot): the dependency is down, not the request wrong.
_UNAVAILABLE_CLASSES = ("08", "53")  # connection exception, insufficient resources
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03"}  # admin/crash shutdown, cannot connect now


def from_postgres(exc: asyncpg.PostgresError) -> ApiError:
    """Map a database error to an ApiError; unknown ones become a generic 500-class error
    whose message hides the details."""
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return from_sqlstate(sqlstate, getattr(exc, "message", None) or str(exc))


def from_sqlstate(sqlstate: str, message: str) -> ApiError:
    """The same mapping for an error known by its SQLSTATE and text (a message of a group
    commit fails inside the group function, which returns both)."""
    if sqlstate[:2] in _UNAVAILABLE_CLASSES or sqlstate in _UNAVAILABLE_STATES:
        return ApiError(503, "unavailable", "the database is unavailable; try again")
    status, code = _SQLSTATE.get(sqlstate, (500, "internal_error"))
    if status == 500 and sqlstate.startswith("22"):
        # Any other data exception (a value out of range, an unstorable character) is
        # bad input, not a server fault.
        status, code = 422, "invalid_value"
    if status == 500:
        return ApiError(500, code, "internal error")
    if sqlstate == "42501" and "row-level security" in message:
        message = "not allowed"
    return ApiError(status, code, message)
