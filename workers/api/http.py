"""The edge of every REST handler: who is asking, and what they sent, validated.

Order of checks: token (401), path (404), query (400), body (415, 413, 400, 422). A path id
that is not a UUID is answered like a session that does not exist: 404.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..auth import Principal
from ..errors import ApiError
from ..keys import RELAY, VERIFIER

M = TypeVar("M", bound=BaseModel)

JSON = "application/json"


async def authenticate(request: web.Request) -> Principal:
    """The caller, from ``Authorization: Bearer <jwt>``; 401 otherwise. Every call takes
    one token of the caller's REST budget (``API_RATE``/``API_BURST``, shared by the
    relays through Redis): 429 when it is spent. 503 while the audit log is too far
    behind to record what the caller does (fail closed)."""
    principal = await request.app[VERIFIER].verify(request.headers.get("Authorization"))
    relay = request.app[RELAY]
    if not await relay.api_budget.allow(principal.user_id):
        raise ApiError(429, "rate_limited", "too many requests from this account; slow down")
    if not relay.hooks.accepting(principal):
        raise ApiError(503, "unavailable", "the audit log is behind; try again")
    return principal


def path_params(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.match_info))
    except ValidationError as exc:
        names = ", ".join(str(e["loc"][0]) for e in exc.errors() if e.get("loc"))
        raise ApiError(
            404, "not_found", f"not found: {_clip(request.path)} ({names} must be a UUID)"
        ) from None


def query_params(request: web.Request, model: type[M]) -> M:
    # One value per name (the first); names the model does not know are ignored.
    values = {name: request.query[name] for name in _names(model) if name in request.query}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ApiError(400, "invalid_parameter", describe(exc, "query")) from None


async def json_body(request: web.Request, model: type[M]) -> M:
    if request.content_type != JSON:
        raise ApiError(415, "unsupported_media_type", f"the body must be {JSON}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(413, "payload_too_large", exc.text or "the body is too large") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            raise ApiError(400, "malformed_json", describe(exc, "body")) from None
        raise ApiError(422, "invalid_value", describe(exc, "body")) from None


def reply(model: BaseModel, *, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


def describe(exc: ValidationError, where: str) -> str:
    """The first problem of a validation error, as one sentence naming the field."""
    err: Any = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    if err.get("type") == "json_invalid":
        return f"malformed JSON: {err.get('ctx', {}).get('error', 'invalid')}"
    if err.get("type") in ("model_type", "model_attributes_type"):
        return f"the {where} must be a JSON object"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else f"{where}: {msg}"


def _names(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
