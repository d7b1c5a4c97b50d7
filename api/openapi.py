"""``/openapi.json`` (OpenAPI 3.1), built from the pydantic models that validate requests.

Every route on the app must be documented — ``tests/api/test_openapi.py`` fails otherwise. To
document a handler, decorate it with :func:`operation`, next to its route decorator (either order)::

    routes = web.RouteTableDef()

    @routes.post("/consultations")
    @operation(
        "Request a consultation",
        body=ConsultationRequest,          # the model the handler passes to parse_body
        response=ConsultationOut,          # what a success returns (status 201 here)
        status=201,
        auth=("user",),                    # "public", "any" (any signed-in role) or roles
        errors=(402, 404, 409),            # extra error statuses (auth/validation ones are added)
        tags=("billing",),
    )
    async def request_consultation(request: web.Request) -> web.Response:
        body = await parse_body(request, ConsultationRequest)
        ...

Use ``query=Model`` for query strings (validated with ``parse_query``); ``content_type=None`` for
responses without a JSON body (a WebSocket upgrade: ``status=101``); path parameters such as
``{id}`` are taken from the route. Static file mounts (``add_static``) are exempt.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from aiohttp import hdrs, web
from pydantic import BaseModel

from api.auth import Role

OPERATION_ATTR = "__kundlinow_operation__"
H = TypeVar("H", bound=Callable[..., Any])
Auth = Literal["public", "any"] | tuple[Role, ...]
_PATH_PARAM = re.compile(r"{([^}:]+)}")
_METHODS = frozenset(m.lower() for m in hdrs.METH_ALL)

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    body: type[BaseModel] | None = None
    """Model of the JSON request body (also what the handler validates with)."""
    query: type[BaseModel] | None = None
    """Model of the query string."""
    response: type[BaseModel] | None = None
    """Model of the success body; ``None`` for an empty or non-JSON body."""
    status: int = 200
    auth: Auth = "public"
    errors: tuple[int, ...] = ()
    content_type: str | None = "application/json"
    tags: tuple[str, ...] = ()


def operation(
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    auth: Auth = "public",
    errors: tuple[int, ...] = (),
    content_type: str | None = "application/json",
    tags: tuple[str, ...] = (),
) -> Callable[[H], H]:
    """Record how a handler is called, for ``/openapi.json``; returns the handler unchanged."""
    described = Operation(summary, body, query, response, status, auth, errors, content_type, tags)

    def mark(handler: H) -> H:
        setattr(handler, OPERATION_ATTR, described)
        return handler

    return mark


def operation_of(handler: Any) -> Operation | None:
    found = getattr(handler, OPERATION_ATTR, None)
    return found if isinstance(found, Operation) else None


@dataclass(frozen=True, slots=True)
class RouteInfo:
    method: str
    """Lower-case HTTP method."""
    path: str
    """The route's canonical path, ``{name}`` for each parameter."""
    operation: Operation | None


def app_routes(app: web.Application) -> Iterator[RouteInfo]:
    """Every documentable route on ``app``: static mounts and implicit ``HEAD`` twins of ``GET``
    routes are left out."""
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        method = route.method.lower()
        if method == "head" and any(
            r.method == hdrs.METH_GET and r.handler is route.handler for r in resource
        ):
            continue
        yield RouteInfo(method, resource.canonical, operation_of(route.handler))


def undocumented_routes(app: web.Application) -> list[tuple[str, str]]:
    """``(METHOD, path)`` of each route without an :func:`operation` description."""
    return sorted(
        (r.method.upper(), r.path)
        for r in app_routes(app)
        if r.operation is None or r.method not in _METHODS
    )


class _Schemas:
    """Collects model schemas under ``#/components/schemas``."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": _ERROR_SCHEMA}

    def ref(self, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> Any:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
        self.components.update(schema.pop("$defs", {}))
        self.components[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def query_parameters(self, model: type[BaseModel]) -> list[dict[str, Any]]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        self.components.update(schema.pop("$defs", {}))
        required = set(schema.get("required", ()))
        return [
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {k: v for k, v in prop.items() if k != "description"},
                **({"description": prop["description"]} if "description" in prop else {}),
            }
            for name, prop in schema.get("properties", {}).items()
        ]


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "stable machine-readable code"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def _error_statuses(op: Operation) -> list[int]:
    statuses = set(op.errors)
    statuses.add(400)  # api/hygiene.py: NUL, out-of-range integers, deep JSON, on every route
    if op.auth != "public":
        statuses.add(401)
    if isinstance(op.auth, tuple):
        statuses.add(403)
    if op.body is not None:
        statuses.update((400, 413, 422))
    if op.query is not None:
        statuses.add(422)
    return sorted(statuses)


def _operation_object(path: str, op: Operation, schemas: _Schemas) -> dict[str, Any]:
    described: dict[str, Any] = {"summary": op.summary}
    if op.tags:
        described["tags"] = list(op.tags)
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(path)
    ]
    if op.query is not None:
        parameters.extend(schemas.query_parameters(op.query))
    if parameters:
        described["parameters"] = parameters
    if op.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(op.body, "validation")}},
        }
    success: dict[str, Any] = {"description": op.summary}
    if op.content_type is not None:
        schema = (
            schemas.ref(op.response, "serialization")
            if op.response is not None
            else {"type": "string"}
            if not op.content_type.endswith("json")
            else {}
        )
        success["content"] = {op.content_type: {"schema": schema}}
    responses: dict[str, Any] = {str(op.status): success}
    for status in _error_statuses(op):
        responses[str(status)] = {
            "description": "error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    described["responses"] = responses
    if op.auth != "public":
        described["security"] = [{"bearerAuth": []}]
        described["x-roles"] = (
            ["user", "consultant", "admin"] if op.auth == "any" else list(op.auth)
        )
    return described


def build_spec(app: web.Application, *, title: str = "kundlinow", version: str = "0.1.0") -> Any:
    """The OpenAPI 3.1 document of every documented route of ``app``."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for info in sorted(app_routes(app), key=lambda r: (r.path, r.method)):
        if info.operation is None or info.method not in _METHODS:
            continue
        paths.setdefault(info.path, {})[info.method] = _operation_object(
            info.path, info.operation, schemas
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


@routes.get("/openapi.json")
@operation("This document: the OpenAPI 3.1 description of the API", tags=("operations",))
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(build_spec(request.app))
