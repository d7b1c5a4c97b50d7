"""The static web client is served at ``/`` (index) and under ``/client/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import AppFactory


async def test_index_loads_the_app_from_the_static_mount(client: TestClient[Any, Any]) -> None:
    index = await client.get("/")
    assert index.status == 200
    assert index.headers["Content-Type"].startswith("text/html")
    page = await index.text()
    assert '<script type="module" src="/client/app.js">' in page
    for asset in ("app.js", "api.js", "call.js", "style.css"):
        assert (await client.get(f"/client/{asset}")).status == 200, asset
    same = await client.get("/client/index.html")
    assert same.status == 200 and await same.text() == page
    assert (await client.get("/client/../setup.cfg")).status in (403, 404)


async def test_client_dir_is_configurable(
    aiohttp_client: Any, make_app: AppFactory, tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>custom</title>")
    client = await aiohttp_client(make_app(client_dir=tmp_path))
    assert "custom" in await (await client.get("/")).text()
    empty = await aiohttp_client(make_app(client_dir=tmp_path / "missing"))
    missing = await empty.get("/")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "NOT_FOUND"
