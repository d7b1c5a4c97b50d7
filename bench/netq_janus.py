"""Janus' videoroom through ``bench.netq``'s links: issue 16's comparison row, in the same run.

The two Chromium parties sit in their namespaces behind the same shaped links as for kundlinow
(``tests.media.netns``) and meet in a videoroom of Janus (Debian's ``janus``, one stream per
direction, no simulcast; the room asks publishers for at most 2 Mbit/s), each publishing its
camera and subscribing to the other (``bench/netq_janus.html``). They are measured as the web
app's parties are (``tests.media.netq.measure``); Janus' own counters are not read.

Janus gathers no loopback candidates, so it cannot use the kundlinow server's address on ``lo``
for media: it gathers on the root ends of both parties' links (``ice_enforce_list``), one host
candidate each, and ICE settles on the one behind each party's own link (Janus answers from the
device a candidate belongs to: a reply from the other party's device would leave by the wrong
link). Its HTTP API listens on the server's address; the party page is served from there too,
with the API proxied, so the page has one origin.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from playwright.async_api import Playwright

from bench import sfu_janus
from tests.media.netns import topology
from tests.media.netq import (
    STATS_JS,
    Case,
    Result,
    Sample,
    decoding,
    link_impairments,
    measure,
    namespaced_browser,
    serving,
)

PAGE = Path(__file__).with_name("netq_janus.html")
ROOM = 1234
SERVER = "Janus videoroom"
CLIENT = web.AppKey("client", aiohttp.ClientSession)


def proxy_app(janus_url: str) -> web.Application:
    """The party page, and Janus' HTTP API (``/janus…``) passed through to ``janus_url``."""
    app = web.Application()

    async def client_session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            app[CLIENT] = session
            yield

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE)

    async def forward(request: web.Request) -> web.Response:
        async with request.app[CLIENT].request(
            request.method, janus_url + request.path_qs, data=await request.read(),
            headers={"content-type": "application/json"},
        ) as response:
            return web.Response(body=await response.read(), status=response.status,
                                content_type="application/json")

    app.cleanup_ctx.append(client_session)
    app.router.add_get("/", page)
    app.router.add_route("*", "/janus{tail:.*}", forward)
    return app


async def run_janus_case(playwright: Playwright, case: Case, trace: Path | None = None) -> Result:
    """``case`` measured with both parties on Janus."""
    with topology(link_impairments(case)) as topo, sfu_janus.janus(
        [ROOM], ns=None, ip=topo.server_ip, probe_ns=None, publishers=2,
        interface=",".join(party.root_dev for party in topo.parties.values()),
    ):
        async with contextlib.AsyncExitStack() as stack:
            base_url = await stack.enter_async_context(
                serving(proxy_app(f"http://{topo.server_ip}:8088"), topo.server_ip)
            )
            pages = []
            for role, name in (("c", "caller"), ("a", "astrologer")):
                browser = await stack.enter_async_context(
                    namespaced_browser(playwright, topo.parties[role].ns, base_url)
                )
                page = await (await browser.new_context()).new_page()
                await page.goto(f"{base_url}/?room={ROOM}&name={name}")
                pages.append(page)
            caller, astrologer = pages
            await decoding((caller, astrologer))

            async def take_sample(start: float) -> Sample:
                return Sample(time.monotonic() - start, await caller.evaluate(STATS_JS),
                              await astrologer.evaluate(STATS_JS), None, False, "")

            return await measure(case, topo, astrologer, take_sample, trace, SERVER)
    raise AssertionError("unreachable")  # mypy: the exit stack may swallow exceptions
