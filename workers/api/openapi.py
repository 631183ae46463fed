"""The OpenAPI 3.1 document, generated from the route registry and its pydantic models
(JSON Schema 2020-12, which OpenAPI 3.1 uses as is)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .models import ErrorBody
from .registry import Route, registry_of

_REF = "#/components/schemas/{model}"
_SECURITY_SCHEME = "bearerAuth"

ERROR_DESCRIPTIONS = {
    400: "Malformed JSON or bad query parameters",
    401: "Missing, malformed, expired or wrongly signed token",
    403: "Forbidden by role",
    404: "Not found or not visible to the caller (also: a path id that is not a UUID)",
    409: "Conflict: the session is closed",
    413: "Body larger than 1 MB",
    415: "Body is not application/json",
    422: "Valid JSON that breaks a rule",
    429: "Rate limited: the caller's budget (API_RATE, or a per-action limit) is spent",
    503: "A backing service (the database) is unavailable",
}
_SUCCESS_DESCRIPTIONS = {200: "OK", 201: "Created"}


def build_document(routes: list[Route], *, title: str, version: str) -> dict[str, Any]:
    pairs: set[tuple[type[BaseModel], JsonSchemaMode]] = {(ErrorBody, "serialization")}
    for route in routes:
        if route.response is not None:
            pairs.add((route.response, "serialization"))
        for model in (route.body, route.form):
            if model is not None:
                pairs.add((model, "validation"))
    refs, definitions = models_json_schema(
        sorted(pairs, key=lambda p: (p[0].__name__, p[1])), ref_template=_REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.document_path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Chat sessions and messages under row-level security. Every "
            "error has the shape of the ErrorBody schema.",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                _SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A Supabase Auth access token (aud=authenticated).",
                }
            },
        },
    }


def _operation(route: Route, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
    }
    if route.description:
        operation["description"] = route.description
    parameters = _parameters(route.params, "path") + _parameters(route.query, "query")
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
        }
    if route.form is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": refs[(route.form, "validation")]}},
        }
    error_schema = {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}
    responses: dict[str, Any] = {}
    if route.binary:
        binary = {
            media: {"schema": {"type": "string", "format": "binary"}} for media in route.binary
        }
        responses[str(route.status)] = {"description": "The file", "content": binary}
        responses["206"] = {"description": "Part of the file (Range)", "content": binary}
    elif route.response is not None:
        responses[str(route.status)] = {
            "description": _SUCCESS_DESCRIPTIONS.get(route.status, "Success"),
            "content": {"application/json": {"schema": refs[(route.response, "serialization")]}},
        }
    notes = dict(route.notes)
    for status in route.error_statuses:
        responses[str(status)] = {
            "description": notes.get(status, ERROR_DESCRIPTIONS.get(status, "Error")),
            "content": error_schema,
        }
    if route.authenticated:
        responses["401"]["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string"}, "required": True}
        }
        operation["security"] = [{_SECURITY_SCHEME: []}]
        if route.token_optional:  # also served without a token (a signed URL)
            operation["security"].append({})
    operation["responses"] = responses
    return operation


def _parameters(model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = _without_null(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query or path parameter is absent or a string, never JSON null."""
    options = prop.get("anyOf")
    if not options:
        return dict(prop)
    rest = [o for o in options if o.get("type") != "null"]
    if len(rest) != 1:
        return dict(prop)
    merged = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    merged.update(rest[0])
    return merged


def setup(app: web.Application, *, title: str, version: str) -> None:
    async def document(request: web.Request) -> web.Response:
        registry = registry_of(request.app)
        if registry.document is None:
            registry.document = build_document(registry.routes, title=title, version=version)
        return web.json_response(registry.document)

    app.router.add_route("GET", "/api/openapi.json", document, name="openapi")
