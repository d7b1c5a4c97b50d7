"""The static web client is served at ``/`` (index), at every client route under ``/app/``
(deep links), and under ``/client/``; the PWA's service worker, manifest and favicon too."""

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
    assert '<script type="module" src="/client/main.js">' in page
    assert "<script>" not in page  # no inline script: the CSP allows script-src 'self' only
    for asset in ("main.js", "api.js", "call.js", "style.css", "vendor/preact.mjs"):
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


async def test_client_routes_serve_the_app_for_deep_links(client: TestClient[Any, Any]) -> None:
    index = await (await client.get("/")).text()
    for path in ("/app", "/app/", "/app/consult/0b0d3a39-5b1e-4a8e-9a43-2f0a9e3c1d11",
                 "/app/admin/consultations?caller=a%40b.test"):
        response = await client.get(path)
        assert response.status == 200, path
        assert await response.text() == index


async def test_pwa_files(client: TestClient[Any, Any]) -> None:
    manifest = await client.get("/manifest.webmanifest")
    assert manifest.status == 200
    assert manifest.headers["Content-Type"].startswith("application/manifest+json")
    body = await manifest.json()
    assert body["start_url"] == "/app" and body["display"] == "standalone"
    for icon in body["icons"]:
        assert (await client.get(icon["src"])).status == 200, icon["src"]
    worker = await client.get("/sw.js")
    assert worker.status == 200 and "caches" in await worker.text()
    favicon = await client.get("/favicon.ico")
    assert favicon.status == 200 and (await favicon.read()).startswith(b"\x89PNG")
