"""Malformed input gets 400 with a stable code on every operation of ``/openapi.json``.

NUL characters (PostgreSQL refuses them in text), integers beyond 64 bits (asyncpg cannot send
them) and JSON nested 2,000 deep (Python's recursion limit) used to surface as 500s.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.db import Database
from kundlinow.config import Settings
from tests.factories import auth, create_user

DEEP_JSON = "[" * 2000 + "]" * 2000
HUGE = str(2**70)
_PATH_PARAM = re.compile(r"\{[^}]+\}")


async def _operations(client: TestClient[Any, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    spec = await (await client.get("/openapi.json")).json()
    found = [
        (method, path, op) for path, ops in spec["paths"].items() for method, op in ops.items()
    ]
    assert len(found) > 20
    return found


async def _tokens(database: Database, settings: Settings) -> dict[str, str]:
    return {
        role: (await create_user(database, settings, role)).token
        for role in ("user", "consultant", "admin")
    }


def _headers(op: dict[str, Any], tokens: dict[str, str]) -> dict[str, str]:
    roles = op.get("x-roles")
    return auth(tokens[roles[0]]) if roles else {}


def _url(path: str) -> str:
    return _PATH_PARAM.sub(str(uuid.uuid4()), path)


async def _expect_400(response: Any, code: str, what: str) -> None:
    text = await response.text()
    assert response.status == 400, f"{what}: {response.status} {text[:300]}"
    assert json.loads(text)["error"]["code"] == code, f"{what}: {text[:300]}"


async def test_nul_and_huge_integers_in_the_query_of_every_operation(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    tokens = await _tokens(database, settings)
    for method, path, op in await _operations(client):
        names = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"] or ["q"]
        for name in names:
            what = f"{method.upper()} {path} ?{name}"
            headers = _headers(op, tokens)
            async with client.request(
                method, _url(path), params={name: "a\x00b"}, headers=headers
            ) as response:
                await _expect_400(response, "INVALID_CHARACTER", what + "=NUL")
            async with client.request(
                method, _url(path), params={name: HUGE}, headers=headers
            ) as response:
                await _expect_400(response, "NUMBER_OUT_OF_RANGE", what + "=2**70")


async def test_deep_nul_and_huge_json_bodies_on_every_operation_with_a_body(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    tokens = await _tokens(database, settings)
    spec = await (await client.get("/openapi.json")).json()
    with_body = [(m, p, op) for m, p, op in await _operations(client) if "requestBody" in op]
    assert len(with_body) >= 8
    for method, path, op in with_body:
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        props = spec["components"]["schemas"][ref.rsplit("/", 1)[1]].get("properties", {})
        nul_body: dict[str, Any] = {name: "x\x00y" for name in props} or {"x\x00": 1}
        huge_body: dict[str, Any] = {name: 2**70 for name in props} or {"x": 2**70}
        for body, content_type, code in (
            (DEEP_JSON, "application/json", "JSON_TOO_DEEP"),
            (DEEP_JSON, "application/octet-stream", "JSON_TOO_DEEP"),  # parse_body too
            (json.dumps(nul_body), "application/json", "INVALID_CHARACTER"),
            (json.dumps(huge_body), "application/json", "NUMBER_OUT_OF_RANGE"),
        ):
            headers = {**_headers(op, tokens), "Content-Type": content_type}
            async with client.request(
                method, _url(path), data=body, headers=headers
            ) as response:
                what = f"{method.upper()} {path} {code} ({content_type})"
                if content_type != "application/json" and response.status in (403, 404, 409):
                    continue  # the handler refused before reading the body: fine, not a 500
                await _expect_400(response, code, what)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/auth/login", {"email": "a\x00@example.com", "password": "secret-password"}),
        ("/auth/register", {"email": "b@example.com", "password": "pass\x00word",
                            "display_name": "B"}),
    ],
)
async def test_public_forms_refuse_nul(
    client: TestClient[Any, Any], path: str, body: dict[str, str]
) -> None:
    response = await client.post(path, json=body)
    await _expect_400(response, "INVALID_CHARACTER", path)


async def test_a_forged_cursor_with_a_huge_key_is_refused(
    client: TestClient[Any, Any],
) -> None:
    raw = json.dumps({"s": "rating", "m": "chat", "k": 2**70, "id": str(uuid.uuid4())})
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    response = await client.get("/consultants", params={"cursor": cursor})
    await _expect_400(response, "INVALID_CURSOR", "cursor")


async def test_nul_in_the_path_is_refused(client: TestClient[Any, Any]) -> None:
    response = await client.get("/consultants/%00")
    await _expect_400(response, "INVALID_CHARACTER", "path")
