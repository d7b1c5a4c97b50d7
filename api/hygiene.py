"""Refuse input no operation can store, before any handler sees it: one rule for every route.

PostgreSQL cannot store NUL in ``text`` and asyncpg cannot send integers beyond 64 bits; a
JSON document nested thousands deep overflows Python's recursion. Each would otherwise surface
as a 500 deep inside a handler, so :func:`input_hygiene_middleware` answers 400 with a stable
code first:

- ``INVALID_CHARACTER``: a NUL (U+0000) in the path, a query value, or any JSON string or key;
- ``NUMBER_OUT_OF_RANGE``: an integer outside the signed 64-bit range in a query value or JSON;
- ``JSON_TOO_DEEP``: JSON nested deeper than :data:`MAX_JSON_DEPTH`.

Bodies that are not JSON (image uploads) pass untouched; invalid JSON is left to
:func:`api.validation.parse_body` (``INVALID_JSON``), which applies :func:`check_json` too.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from api.errors import ApiError, Handler

MAX_JSON_DEPTH = 32
"""Deepest nesting any request body of this API needs is 3; 32 leaves room and stops abuse."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"^[+-]?\d+$")
_JSON_TYPES = ("application/json", "text/plain", "")
"""Content types whose body is checked as JSON (parse_body does not insist on the header)."""


def _nul(where: str) -> ApiError:
    return ApiError(400, "INVALID_CHARACTER", f"{where} contains a NUL character")


def _out_of_range(where: str) -> ApiError:
    return ApiError(
        400, "NUMBER_OUT_OF_RANGE", f"{where} is outside the 64-bit integer range",
        {"min": INT64_MIN, "max": INT64_MAX},
    )


def check_json(data: Any) -> None:
    """Raise 400 for a NUL in any string or key, an out-of-range integer or deep nesting.

    Iterative (an explicit stack), so the check itself cannot overflow the recursion limit.
    """
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise _nul("the request body")
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise _out_of_range("a number in the request body")
        elif isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise too_deep()
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and "\x00" in key:
                    raise _nul("the request body")
                stack.append((item, depth + 1))


def too_deep() -> ApiError:
    return ApiError(
        400, "JSON_TOO_DEEP", f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
        {"max_depth": MAX_JSON_DEPTH},
    )


def loads(raw: bytes) -> Any:
    """``json.loads`` whose recursion overflow is a 400 ``JSON_TOO_DEEP``."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise too_deep() from None


def check_query(request: web.Request) -> None:
    if "\x00" in request.path:
        raise _nul("the path")
    for name, value in request.query.items():
        if "\x00" in name or "\x00" in value:
            raise _nul(f"query parameter {name!r}")
        digits = value.strip()
        # Length first: int() refuses strings over 4,300 digits with ValueError.
        if _INTEGER.match(digits) and (
            len(digits) > 20 or not INT64_MIN <= int(digits) <= INT64_MAX
        ):
            raise _out_of_range(f"query parameter {name!r}")


@web.middleware
async def input_hygiene_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    check_query(request)
    if request.can_read_body and request.content_type in _JSON_TYPES:
        raw = await request.read()  # cached: the handler reads the same bytes again
        try:
            data = loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            data = None  # not JSON: the handler answers INVALID_JSON (or reads it otherwise)
        check_json(data)
    return await handler(request)
