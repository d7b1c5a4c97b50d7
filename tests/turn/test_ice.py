"""The ICE server list, and a relay-only aiortc call through a real coturn using it."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiortc import RTCIceServer

from core.db import Database
from kundlinow.app import create_app
from kundlinow.config import Settings
from tests.billing.helpers import grant
from tests.conftest import AppFactory
from tests.factories import TestUser, create_user, online_astrologer
from tests.signalling.wsclient import connect
from tests.turn.calls import relay_call
from tests.turn.coturn import Coturn
from turn.config import TurnSettings
from turn.credentials import compute_password
from turn.ice import IceServer, build_ice_servers, ice_servers_factory, to_rtc_ice_servers


def test_no_servers_configured_gives_an_empty_list() -> None:
    assert build_ice_servers(TurnSettings(), "u1") == []
    assert to_rtc_ice_servers([]) == []


def test_stun_and_turn_entries() -> None:
    settings = TurnSettings(
        urls=("stun:t.example:3478", "turn:t.example:3478?transport=udp", "turns:t.example:5349"),
        secret="s3cret",
        ttl_s=120,
    )
    servers = build_ice_servers(settings, "u1", now=1_700_000_000)
    assert servers == [
        {"urls": ["stun:t.example:3478"]},
        {
            "urls": ["turn:t.example:3478?transport=udp", "turns:t.example:5349"],
            "username": "1700000120:u1",
            "credential": compute_password("s3cret", "1700000120:u1"),
        },
    ]
    rtc = to_rtc_ice_servers(servers)
    assert rtc[0] == RTCIceServer(urls=["stun:t.example:3478"])
    assert rtc[1].username == "1700000120:u1"
    assert rtc[1].credential == servers[1]["credential"]


def test_factory_mints_fresh_credentials() -> None:
    times = iter([1_700_000_000.0, 1_700_003_000.0])
    settings = TurnSettings(urls=("turn:t:3478",), secret="s", ttl_s=60)
    factory = ice_servers_factory(settings, "sfu", clock=lambda: next(times))
    assert factory()[0]["username"] == "1700000060:sfu"
    assert factory()[0]["username"] == "1700003060:sfu"


async def _wait_for_log(coturn: Coturn, pattern: str, within_s: float = 30.0) -> re.Match[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        match = re.search(pattern, coturn.log_text())
        if match or loop.time() > deadline:
            assert match, f"{pattern!r} not in coturn's log:\n{coturn.log_text()[-3000:]}"
            return match
        await asyncio.sleep(0.1)


async def fetch_ice_servers(
    aiohttp_client: Any, app: web.Application, database: Database, settings: Settings
) -> tuple[TestUser, list[IceServer]]:
    """GET /turn/credentials from the real app, as an online astrologer does before a call."""
    client: TestClient[Any, Any] = await aiohttp_client(app)
    user, _online = await online_astrologer(client, database, settings)
    response = await client.get(
        "/turn/credentials", headers={"Authorization": f"Bearer {user.token}"}
    )
    assert response.status == 200, await response.text()
    servers: list[IceServer] = (await response.json())["ice_servers"]
    return user, servers


@pytest.mark.usefixtures("loopback_host_candidates")
async def test_relay_only_call_through_coturn(
    coturn: Coturn,
    aiohttp_client: Any,
    make_app: AppFactory,
    database: Database,
    settings: Settings,
) -> None:
    turn = TurnSettings(urls=(coturn.turn_url,), secret=coturn.secret)
    user, servers = await fetch_ice_servers(aiohttp_client, make_app(turn=turn), database, settings)
    assert servers[0]["username"].endswith(f":{user.id}")

    outcome = await relay_call(to_rtc_ice_servers(servers))

    assert outcome.connected
    assert outcome.frames_received >= 25
    assert outcome.caller_local_types == ("relay",)
    assert outcome.caller_pair == ("relay", "host")
    assert outcome.callee_pair == ("host", "relay")
    assert outcome.caller_relay_server == coturn.address
    # coturn's own accounting: the allocation of this credential sent packets to the peer.
    username = re.escape(servers[0]["username"])
    usage = await _wait_for_log(
        coturn,
        rf"peer usage: realm=<[^>]*>, username=<{username}>, "
        r"rp=(\d+), rb=\d+, sp=(\d+)",
    )
    assert int(usage.group(2)) >= 25


@pytest.mark.usefixtures("loopback_host_candidates")
async def test_calls_with_expired_or_forged_credentials_do_not_connect(coturn: Coturn) -> None:
    """Two relay-only calls at once (they wait out the same 2 s): one with a credential that
    expired long ago, one signed with the wrong secret. coturn refuses both Allocates with
    401, so the caller has no candidate at all and the call never connects."""
    expired = build_ice_servers(
        TurnSettings(urls=(coturn.turn_url,), secret=coturn.secret, ttl_s=60),
        "caller-expired",
        now=1_000_000_000,  # minted in 2001
    )
    forged = build_ice_servers(
        TurnSettings(urls=(coturn.turn_url,), secret="forged-" + coturn.secret), "caller-forged"
    )

    outcomes = await asyncio.gather(
        relay_call(to_rtc_ice_servers(expired), within_s=2.0),
        relay_call(to_rtc_ice_servers(forged), within_s=2.0),
    )

    for servers, outcome in zip((expired, forged), outcomes, strict=True):
        assert not outcome.connected
        assert outcome.frames_received == 0
        assert outcome.caller_local_types == ()  # no relayed candidate: Allocate refused
        username = re.escape(servers[0]["username"])
        await _wait_for_log(
            coturn,
            rf"user <{username}>: incoming packet message processed, error 401: Unauthorized",
        )


async def test_join_consult_carries_the_ice_servers(
    aiohttp_client: Any, settings: Settings, database: Database
) -> None:
    """The signalling ack of ``join_consult`` holds the same list as GET /turn/credentials,
    minted for the joining user."""
    turn = TurnSettings(urls=("turn:turn.example.test:3478?transport=udp",), secret="s" * 32)
    configured = replace(settings, turn=turn)
    server = await aiohttp_client(create_app(configured))
    astro = await create_user(database, configured, "consultant")
    caller = await create_user(database, configured)
    await grant(database, caller.id, 100_000)
    caller_ws = await connect(server, "/ws", caller.token)
    astro_ws = await connect(server, "/ws", astro.token)
    try:
        ack = await caller_ws.ok(
            "consult_request", {"consultant_id": str(astro.id), "mode": "video"}
        )
        cid = ack["consultation"]["id"]
        await astro_ws.event("consult_request")
        await astro_ws.ok("accept", {"consultation_id": cid})
        joined = await caller_ws.ok("join_consult", {"consultation_id": cid})
    finally:
        await caller_ws.close()
        await astro_ws.close()
    (entry,) = joined["ice_servers"]
    assert entry["urls"] == ["turn:turn.example.test:3478?transport=udp"]
    assert entry["username"].endswith(f":{caller.id}")
    assert entry["credential"] == compute_password("s" * 32, entry["username"])
