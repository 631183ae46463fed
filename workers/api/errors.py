"""Every HTTP error leaves in one shape: {"error": {"code": ..., "message": ...}}."""

from __future__ import annotations

import logging

import asyncpg
import redis.exceptions
from aiohttp import web

from ..errors import ApiError, from_postgres

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_value",
    429: "rate_limited",
}


def error_response(err: ApiError) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="chat"'} if err.status == 401 else None
    return web.json_response(err.body(), status=err.status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason
        if exc.status == 404:
            message = f"no route for {request.method} {request.path}"
        response = error_response(ApiError(exc.status, code, message))
        if "Allow" in exc.headers:  # 405 says which methods the path has
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except asyncpg.PostgresError as exc:
        mapped = from_postgres(exc)
        if mapped.status >= 500:
            log.exception("database error on %s %s", request.method, request.path)
        return error_response(mapped)
    except (
        OSError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        TimeoutError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
    ):
        log.exception("service unavailable on %s %s", request.method, request.path)
        return error_response(ApiError(503, "unavailable", "a backing service is unavailable"))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError(500, "internal_error", "internal error"))
