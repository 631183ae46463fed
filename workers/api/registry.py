"""The routes of the REST API, each declaring its models: the router and the OpenAPI
document are both built from this one list. Later endpoints (uploads, admin) add theirs
with :func:`register`."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# {name} or aiohttp's {name:regex}; the document shows {name}.
_PATH_PARAM = re.compile(r"{(\w+)(?::[^{}]*)?}")


@dataclass(frozen=True, slots=True)
class Route:
    """One operation. ``params``, ``query`` and ``body`` are the models of its path
    parameters (by alias, as named in ``path``), query string and JSON body. ``errors``
    lists the error statuses it may answer besides those implied by the rest (401 when
    authenticated, 404 for path parameters, 400 for a query, 400/413/415/422 for a body,
    503 always). ``form`` is a ``multipart/form-data`` body described by a model;
    ``binary`` lists the media types of a non-JSON success body (then 206 too, for
    Range requests); ``notes`` override the generic descriptions of error statuses;
    ``token_optional`` marks an operation that also answers without a token."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    response: type[BaseModel] | None
    status: int = 200
    params: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    tag: str = "chat"
    description: str = ""
    authenticated: bool = True
    form: type[BaseModel] | None = None
    binary: tuple[str, ...] = ()
    notes: tuple[tuple[int, str], ...] = ()
    token_optional: bool = False

    def __post_init__(self) -> None:
        named = set(_PATH_PARAM.findall(self.path))
        declared = set(self.params.model_json_schema()["properties"]) if self.params else set()
        if named != declared:
            raise ValueError(f"{self.operation_id}: path {self.path} needs a params model {named}")

    @property
    def document_path(self) -> str:
        return _PATH_PARAM.sub(r"{\1}", self.path)

    @property
    def error_statuses(self) -> list[int]:
        statuses = set(self.errors) | {503}
        if self.authenticated:
            statuses |= {401, 429}
        if self.params is not None:
            statuses.add(404)
        if self.query is not None:
            statuses.add(400)
        if self.body is not None or self.form is not None:
            statuses |= {400, 413, 415, 422}
        return sorted(statuses)


@dataclass(slots=True)
class Registry:
    routes: list[Route] = field(default_factory=list)
    document: dict[str, Any] | None = None  # the OpenAPI document, built on first request


API_ROUTES = web.AppKey("api_routes", Registry)


def registry_of(app: web.Application) -> Registry:
    registry = app.get(API_ROUTES)
    if registry is None:
        registry = app[API_ROUTES] = Registry()
    return registry


def register(app: web.Application, routes: Iterable[Route]) -> None:
    """Mount the routes on the app's router and record them for the OpenAPI document."""
    registry = registry_of(app)
    for route in routes:
        # add_route, not add_get: no implicit HEAD that the document would not list.
        app.router.add_route(route.method, route.path, route.handler, name=route.operation_id)
        registry.routes.append(route)
