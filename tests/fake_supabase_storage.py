"""A FAKE Supabase Storage server, for testing the ``supabase`` object store here, where
the hosted service cannot run. It is not Supabase: it implements only the endpoints the
store calls, as Supabase Storage's API documents them, and checks every request against
that (method, path, the ``Authorization: Bearer <service key>`` and ``apikey`` headers,
the body). Anything else is recorded in ``violations`` and answered 400.

Like hosted Storage it writes the ``storage.objects`` row of each upload (with a
privileged connection), so the database-side rules (the send function's check that the
file exists, the download's policy check) run as they would against a real project.

Endpoints (under /storage/v1):
  POST   /object/{bucket}/{path}           upload (multipart: cacheControl, metadata, file)
  DELETE /object/{bucket}                  {"prefixes": [path, ...]}
  POST   /object/sign/{bucket}/{path}      {"expiresIn": n}            -> {"signedURL"}
  POST   /object/sign/{bucket}             {"expiresIn": n, "paths"}   -> [{path, signedURL}]
  GET    /object/authenticated/{bucket}/{path}   bytes; Range
  GET    /object/sign/{bucket}/{path}?token=...  bytes (the signed URL itself)
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import BodyPartReader, web

PREFIX = "/storage/v1"


@dataclass
class Stored:
    content: bytes
    content_type: str
    user_metadata: dict[str, Any]


@dataclass
class FakeSupabaseStorage:
    service_key: str
    db: asyncpg.Connection
    objects: dict[tuple[str, str], Stored] = field(default_factory=dict)
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    fail_uploads: bool = False

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_post(PREFIX + "/object/sign/{bucket}/{path:.+}", self.sign_one)
        app.router.add_post(PREFIX + "/object/sign/{bucket}", self.sign_many)
        app.router.add_get(PREFIX + "/object/sign/{bucket}/{path:.+}", self.get_signed)
        app.router.add_get(PREFIX + "/object/authenticated/{bucket}/{path:.+}", self.get)
        app.router.add_post(PREFIX + "/object/{bucket}/{path:.+}", self.upload)
        app.router.add_delete(PREFIX + "/object/{bucket}", self.delete)
        return app

    # ------------------------------------------------------------------ checks
    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        signed_get = request.method == "GET" and request.path.startswith(PREFIX + "/object/sign/")
        if not signed_get:
            if request.headers.get("Authorization") != f"Bearer {self.service_key}":
                return self._violation(request, "Authorization is not Bearer <service key>")
            if request.headers.get("apikey") != self.service_key:
                return self._violation(request, "apikey header is not the service key")
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return self._violation(request, "not an endpoint of the documented API")

    def _violation(self, request: web.Request, what: str) -> web.Response:
        self.violations.append(f"{request.method} {request.path}: {what}")
        return _error(400, "InvalidRequest", what)

    async def _json(self, request: web.Request) -> Any:
        if request.content_type != "application/json":
            return None
        try:
            return await request.json()
        except ValueError:
            return None

    @staticmethod
    def _expires_in(body: Any) -> int | None:
        # Documented as an integer >= 1; Storage coerces numeric strings (storage3 sends one).
        value = body.get("expiresIn") if isinstance(body, dict) else None
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        return value if isinstance(value, int) and value >= 1 else None

    # ------------------------------------------------------------------ endpoints
    async def upload(self, request: web.Request) -> web.Response:
        bucket, path = request.match_info["bucket"], request.match_info["path"]
        if request.headers.get("x-upsert") not in (None, "false"):
            return self._violation(request, "x-upsert must be false (never overwrite)")
        if request.content_type != "multipart/form-data":
            return self._violation(request, "upload body must be multipart/form-data")
        fields: dict[str, str] = {}
        content, content_type = None, ""
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                return self._violation(request, "nested multipart")
            if part.name == "file":
                content = await part.read()
                content_type = part.headers.get("Content-Type", "")
            elif part.name in ("cacheControl", "metadata"):
                fields[part.name] = await part.text()
            else:
                return self._violation(request, f"unknown form field {part.name!r}")
        if content is None or not content_type:
            return self._violation(request, "the file part and its Content-Type are required")
        if self.fail_uploads:
            return _error(500, "InternalError", "the fake was told to fail")
        if (bucket, path) in self.objects:
            return _error(400, "Duplicate", "The resource already exists", status_code="409")
        user_metadata = json.loads(fields.get("metadata", "{}"))
        self.objects[(bucket, path)] = Stored(content, content_type, user_metadata)
        object_id = await self.db.fetchval(
            "insert into storage.objects (bucket_id, name, metadata, user_metadata) "
            "values ($1, $2, $3::jsonb, $4::jsonb) returning id",
            bucket,
            path,
            json.dumps(
                {
                    "mimetype": content_type,
                    "size": len(content),
                    "cacheControl": f"max-age={fields.get('cacheControl', '3600')}",
                }
            ),
            json.dumps(user_metadata),
        )
        return web.json_response({"Key": f"{bucket}/{path}", "Id": str(object_id)})

    async def delete(self, request: web.Request) -> web.Response:
        bucket = request.match_info["bucket"]
        body = await self._json(request)
        prefixes = body.get("prefixes") if isinstance(body, dict) else None
        if (
            not isinstance(prefixes, list)
            or not prefixes
            or not all(isinstance(p, str) for p in prefixes)
        ):
            return self._violation(request, 'delete needs {"prefixes": [path, ...]}')
        deleted = []
        for path in prefixes:
            if self.objects.pop((bucket, path), None) is not None:
                await self.db.execute(
                    "delete from storage.objects where bucket_id = $1 and name = $2", bucket, path
                )
                deleted.append({"name": path, "bucket_id": bucket})
        return web.json_response(deleted)

    def _signed_url(self, bucket: str, path: str) -> str:
        token = secrets.token_urlsafe(16)
        self.tokens[token] = (bucket, path)
        return f"/object/sign/{bucket}/{path}?token={token}"

    async def sign_one(self, request: web.Request) -> web.Response:
        bucket, path = request.match_info["bucket"], request.match_info["path"]
        if self._expires_in(await self._json(request)) is None:
            return self._violation(request, 'sign needs {"expiresIn": n >= 1}')
        if (bucket, path) not in self.objects:
            return _error(400, "not_found", "Object not found", status_code="404")
        return web.json_response({"signedURL": self._signed_url(bucket, path)})

    async def sign_many(self, request: web.Request) -> web.Response:
        bucket = request.match_info["bucket"]
        body = await self._json(request)
        paths = body.get("paths") if isinstance(body, dict) else None
        if self._expires_in(body) is None or not isinstance(paths, list):
            return self._violation(request, 'sign needs {"expiresIn": n, "paths": [...]}')
        return web.json_response(
            [
                {"error": None, "path": p, "signedURL": self._signed_url(bucket, p)}
                if (bucket, p) in self.objects
                else {
                    "error": "Either the object does not exist or you do not have access to it",
                    "path": p,
                    "signedURL": None,
                }
                for p in paths
            ]
        )

    async def get(self, request: web.Request) -> web.StreamResponse:
        return self._serve(request, request.match_info["bucket"], request.match_info["path"])

    async def get_signed(self, request: web.Request) -> web.StreamResponse:
        target = self.tokens.get(request.query.get("token", ""))
        if target != (request.match_info["bucket"], request.match_info["path"]):
            return _error(400, "InvalidSignature", "invalid token", status_code="403")
        return self._serve(request, *target)

    def _serve(self, request: web.Request, bucket: str, path: str) -> web.Response:
        stored = self.objects.get((bucket, path))
        if stored is None:
            return _error(400, "not_found", "Object not found", status_code="404")
        body, status, headers = stored.content, 200, {"Accept-Ranges": "bytes"}
        if request.http_range.start is not None or request.http_range.stop is not None:
            rng = request.http_range
            start = rng.start or 0
            stop = min(rng.stop if rng.stop is not None else len(body), len(body))
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(body)}"
            body, status = body[start:stop], 206
        return web.Response(
            body=body, status=status, content_type=stored.content_type, headers=headers
        )


def _error(
    http_status: int, error: str, message: str, *, status_code: str | None = None
) -> web.Response:
    """Supabase Storage's error body: {"statusCode", "error", "message"}."""
    return web.json_response(
        {"statusCode": status_code or str(http_status), "error": error, "message": message},
        status=http_status,
    )


def new_key() -> str:
    return "fake-service-role-key-" + uuid.uuid4().hex
