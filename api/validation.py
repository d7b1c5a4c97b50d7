"""Request validation: pydantic v2 models for every body and query, also used for OpenAPI."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.errors import ApiError
from api.hygiene import check_json, loads

M = TypeVar("M", bound=BaseModel)


def _invalid(exc: ValidationError, what: str) -> ApiError:
    problems = [
        {"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return ApiError(422, "VALIDATION_FAILED", f"{what} is invalid", {"fields": problems})


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The JSON body validated as ``model``: 400 ``INVALID_JSON`` (or a code of
    :mod:`api.hygiene`), 422 ``VALIDATION_FAILED``."""
    raw = await request.read()  # aiohttp enforces client_max_size here (413)
    try:
        data = loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "INVALID_JSON", f"request body is not valid JSON: {exc}") from None
    check_json(data)  # NUL, 64-bit range, depth: also when the Content-Type was not JSON
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, "request body") from None


def parse_query(request: web.Request, model: type[M]) -> M:
    """Query parameters validated as ``model`` (422 ``VALIDATION_FAILED``)."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise _invalid(exc, "query") from None
