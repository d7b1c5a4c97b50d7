"""``/openapi.json`` documents every route, from the models that validate requests."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel

from api.accounts import RegisterRequest
from api.openapi import app_routes, build_spec, operation, undocumented_routes
from tests.conftest import AppFactory


async def test_every_route_is_in_openapi_json(client: TestClient[Any, Any]) -> None:
    """Fails when anyone adds a route without ``@operation`` (see api/openapi.py)."""
    response = await client.get("/openapi.json")
    assert response.status == 200
    spec = await response.json()
    documented = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    registered = {(r.method, r.path) for r in app_routes(client.app)}
    missing = sorted(registered - documented)
    assert not missing, f"routes missing from /openapi.json (add @operation): {missing}"
    assert ("post", "/auth/login") in documented
    assert ("get", "/consultants/{id}") in documented


def test_the_check_catches_an_undocumented_route(make_app: AppFactory) -> None:
    app = make_app()

    async def sneaky(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/sneaky/{x}", sneaky)
    assert undocumented_routes(app) == [("GET", "/sneaky/{x}")]
    assert "/sneaky/{x}" not in build_spec(app)["paths"]


async def test_request_schema_is_the_validating_model(client: TestClient[Any, Any]) -> None:
    spec = await (await client.get("/openapi.json")).json()
    register = spec["paths"]["/auth/register"]["post"]
    ref = register["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[1]
    assert name == RegisterRequest.__name__
    schema = spec["components"]["schemas"][name]
    expected = RegisterRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    assert schema["properties"] == expected["properties"]
    assert set(schema["required"]) == {"email", "password", "display_name"}
    assert {"201", "400", "409", "413", "422"} <= set(register["responses"])


async def test_auth_and_query_parameters_are_described(client: TestClient[Any, Any]) -> None:
    spec = await (await client.get("/openapi.json")).json()
    patch = spec["paths"]["/consultants/me"]["patch"]
    assert patch["security"] == [{"bearerAuth": []}]
    assert patch["x-roles"] == ["consultant"]
    assert {"401", "403"} <= set(patch["responses"])
    listing = spec["paths"]["/consultants"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"language", "speciality", "mode", "online", "sort", "limit", "cursor"} <= names
    one = spec["paths"]["/consultants/{id}"]["get"]
    assert one["parameters"][0] == {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    assert "security" not in listing


def test_operation_leaves_the_handler_unchanged() -> None:
    class Body(BaseModel):
        x: int

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    assert operation("x", body=Body)(handler) is handler
