"""The static web client: ``GET /`` serves ``client/index.html``; ``/client/…`` serves the rest.

Plain files, no build step. The directory is ``CLIENT_DIR`` or the repository's ``client/``.
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


@routes.get("/")
@operation("The web client (HTML)", content_type="text/html", tags=("client",))
async def index(request: web.Request) -> web.FileResponse:
    page = client_dir(request.app[SETTINGS]) / "index.html"
    if not page.is_file():
        raise ApiError(404, "NOT_FOUND", "the web client is not installed")
    return web.FileResponse(page)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    directory = client_dir(app[SETTINGS])
    if directory.is_dir():
        app.router.add_static(STATIC_PREFIX, directory, follow_symlinks=False)
