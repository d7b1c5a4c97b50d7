"""The static web client: the app shell for ``/`` and every client route under ``/app/``,
the service worker, the web manifest and the favicon; ``/client/…`` serves the rest.

Plain files, no build step. The directory is ``CLIENT_DIR`` or the repository's ``client/``.
Client routes (``/app/consult/<id>``, ``/app/admin/users``…) all get ``index.html``; the client's
router picks the screen, so deep links and reloads work.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from api.config import ApiSettings
from api.errors import ApiError
from api.keys import SETTINGS
from api.openapi import operation

routes = web.RouteTableDef()
STATIC_PREFIX = "/client/"


def client_dir(settings: ApiSettings) -> Path:
    return settings.client_dir or Path(__file__).resolve().parents[1] / "client"


def _file(request: web.Request, name: str, **headers: str) -> web.FileResponse:
    path = client_dir(request.app[SETTINGS]) / name
    if not path.is_file():
        raise ApiError(404, "NOT_FOUND", "the web client is not installed")
    return web.FileResponse(path, headers=headers or None)


@routes.get("/")
@operation("The web client (HTML)", content_type="text/html", tags=("client",))
async def index(request: web.Request) -> web.FileResponse:
    return _file(request, "index.html", **{"Cache-Control": "no-cache"})


@routes.get("/app")
@routes.get("/app/{path:.*}")
@operation(
    "The web client for one of its screens (HTML; deep links)",
    content_type="text/html",
    tags=("client",),
)
async def app_route(request: web.Request) -> web.FileResponse:
    return _file(request, "index.html", **{"Cache-Control": "no-cache"})


@routes.get("/sw.js")
@operation(
    "The web client's service worker (served at the root so its scope is the whole app)",
    content_type="text/javascript",
    tags=("client",),
)
async def service_worker(request: web.Request) -> web.FileResponse:
    return _file(request, "sw.js", **{"Cache-Control": "no-cache"})


@routes.get("/manifest.webmanifest")
@operation("The web app manifest (PWA)", content_type="application/manifest+json", tags=("client",))
async def manifest(request: web.Request) -> web.FileResponse:
    response = _file(request, "manifest.webmanifest")
    response.content_type = "application/manifest+json"
    return response


@routes.get("/favicon.ico")
@operation("The favicon", content_type="image/png", tags=("client",))
async def favicon(request: web.Request) -> web.FileResponse:
    return _file(request, "icons/icon-48.png")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    directory = client_dir(app[SETTINGS])
    if directory.is_dir():
        app.router.add_static(STATIC_PREFIX, directory, follow_symlinks=False)
