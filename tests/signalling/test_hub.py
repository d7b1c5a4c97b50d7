"""Socket handling over real sockets: auth, limits, malformed input, presence."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from api.keys import HUB
from core.db import Database
from kundlinow.config import Settings
from signalling.config import SignallingSettings
from tests.billing.helpers import grant
from tests.factories import create_user
from tests.polling import eventually
from tests.signalling.wsclient import DEADLINE_S, WsClient, connect


def _with(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, signalling=replace(settings.signalling, **changes))


@pytest.fixture
async def server(aiohttp_client: Any, make_app: Any, settings: Settings) -> Any:
    return await aiohttp_client(make_app())


async def test_token_in_subprotocol_gets_hello(server: Any, database: Database, settings: Settings):
    user = await create_user(database, settings)
    client = await connect(server, "/ws", user.token)
    assert client.hello is not None
    assert client.hello["user_id"] == str(user.id)
    assert client.ws.protocol == "kundlinow.v1"
    assert (await client.ok("ping"))["server_time"]
    await client.close()


async def test_first_auth_message(server: Any, database: Database, settings: Settings):
    user = await create_user(database, settings)
    client = await connect(server, "/ws", None)
    assert await client.fail("ping") == "UNAUTHENTICATED"  # not yet: still open
    ack = await client.ok("auth", {"token": user.token})
    assert ack["user_id"] == str(user.id)
    hello = await client.event("hello")
    assert hello["user_id"] == str(user.id)
    assert await client.ok("ping")
    await client.close()


async def test_bad_token_is_refused(server: Any, database: Database, settings: Settings):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(server, "/ws", "not-a-jwt")
    assert refused.value.status == 401
    client = await connect(server, "/ws", None)
    assert await client.fail("auth", {"token": "garbage"}) == "UNAUTHENTICATED"
    msg = await client.ws.receive(timeout=DEADLINE_S)
    assert msg.type == aiohttp.WSMsgType.CLOSE
    assert msg.data == 4401


async def test_unauthenticated_sockets_per_address_are_capped(
    aiohttp_client: Any, make_app: Any, database: Database, settings: Settings
) -> None:
    assert SignallingSettings().auth_timeout_s <= 5  # an idle unauthenticated socket is a cost
    cap = 3
    server = await aiohttp_client(make_app(
        signalling=replace(settings.signalling, max_unauthenticated_per_address=cap)
    ))
    waiting = [await connect(server, "/ws", None) for _ in range(cap)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(server, "/ws", None)
    assert refused.value.status == 429
    # a socket with its token in the handshake is not an unauthenticated one
    user = await create_user(database, settings)
    assert await (await connect(server, "/ws", user.token)).ok("ping")
    # one of the waiting sockets authenticates: its place is free again
    await waiting[0].ok("auth", {"token": user.token})
    assert await eventually(lambda: _admitted_without_token(server), step=0.1)


async def _admitted_without_token(server: Any) -> bool:
    try:
        client = await connect(server, "/ws", None)
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 429
        return False
    await client.close()
    return True


async def test_auth_timeout_closes(aiohttp_client: Any, make_app: Any, settings: Settings):
    server = await aiohttp_client(
        make_app(signalling=replace(settings.signalling, auth_timeout_s=0.3))
    )
    client = await connect(server, "/ws", None)
    frame = json.loads((await client.ws.receive(timeout=DEADLINE_S)).data)
    assert frame["data"]["code"] == "AUTH_TIMEOUT"
    msg = await client.ws.receive(timeout=DEADLINE_S)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401


async def test_connections_per_user_limited(
    aiohttp_client: Any, make_app: Any, database: Database, settings: Settings
):
    server = await aiohttp_client(
        make_app(signalling=replace(settings.signalling, max_connections_per_user=2))
    )
    user = await create_user(database, settings)
    first = await connect(server, "/ws", user.token)
    second = await connect(server, "/ws", user.token)
    third = await connect(server, "/ws", user.token, wait_hello=False)
    frame = json.loads((await third.ws.receive(timeout=DEADLINE_S)).data)
    assert frame["data"]["code"] == "TOO_MANY_CONNECTIONS"
    msg = await third.ws.receive(timeout=DEADLINE_S)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4429
    await first.close()
    kept: list[WsClient] = []

    async def admitted() -> bool:  # once the server has seen the first socket go
        client = await connect(server, "/ws", user.token, wait_hello=False)
        frame = json.loads((await client.ws.receive(timeout=DEADLINE_S)).data)
        if frame["type"] == "hello":
            kept.append(client)
            return True
        await client.close()
        return False

    assert await eventually(admitted, step=0.1), "the freed slot was never given back"
    assert await kept[0].ok("ping")
    assert await second.ok("ping")


async def test_rate_limit_errors_without_disconnect(
    aiohttp_client: Any, make_app: Any, database: Database, settings: Settings
):
    server = await aiohttp_client(
        make_app(signalling=replace(settings.signalling, rate_per_s=5, rate_burst=5))
    )
    user = await create_user(database, settings)
    client = await connect(server, "/ws", user.token)
    ids = [await client.send("ping") for _ in range(12)]
    codes = []
    for msg_id in ids:
        frame = await client.reply(msg_id)
        codes.append(frame["data"].get("code", "ok"))
    assert codes[:5] == ["ok"] * 5
    assert "RATE_LIMITED" in codes[5:]

    async def refilled() -> bool:  # 5 tokens a second: one is back within 0.2 s
        return (await client.request("ping"))["type"] == "ack"

    assert await eventually(refilled, step=0.25)  # still connected, and refilled


async def test_oversized_and_binary_frames_get_errors(
    server: Any, database: Database, settings: Settings
):
    user = await create_user(database, settings)
    client = await connect(server, "/ws", user.token)
    big = json.dumps({"type": "ping", "id": "big", "data": {"pad": "x" * (70 * 1024)}})
    await client.send_raw(big)
    frame = await client.reply("big")  # the id is read from the head of the frame
    assert frame["data"]["code"] == "FRAME_TOO_LARGE"
    await client.ws.send_bytes(b"\x00\x01")
    frame = await client.reply(None)
    assert frame["data"]["code"] == "INVALID_MESSAGE"
    assert await client.ok("ping")


MALFORMED = [
    ("not json", "INVALID_JSON", None),
    ("[1,2]", "INVALID_MESSAGE", None),
    ('{"type":"ping"}', "INVALID_MESSAGE", None),
    ('{"type":"nope","id":"a1"}', "UNKNOWN_TYPE", "a1"),
    ('{"type":"ping","id":"a2","v":2}', "UNSUPPORTED_VERSION", "a2"),
    ('{"type":"ping","id":"a6","data":{"x":NaN}}', "INVALID_JSON", None),  # not RFC 8259
    ('{"type":"join_consult","id":"a3","data":{"consultation_id":"x"}}',
     "INVALID_MESSAGE", "a3"),
    ('{"type":"message","id":"a4","data":{"consultation_id":'
     '"00000000-0000-0000-0000-000000000000","client_id":"c","text":"a","upload_id":'
     '"00000000-0000-0000-0000-000000000000"}}', "INVALID_MESSAGE", "a4"),
    ('{"type":"typing","id":"a5","data":{"consultation_id":'
     '"00000000-0000-0000-0000-000000000000","typing":true}}', "NOT_JOINED", "a5"),
]


async def test_malformed_examples(server: Any, database: Database, settings: Settings):
    user = await create_user(database, settings)
    client = await connect(server, "/ws", user.token)
    for raw, code, msg_id in MALFORMED:
        await client.send_raw(raw)
        frame = await client.reply(msg_id)
        assert frame["type"] == "error" and frame["data"]["code"] == code, (raw, frame)
    assert await client.ok("ping")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_types = st.sampled_from(
    ["ping", "message", "join_consult", "typing", "call_offer", "consult_request", "presence",
     "read", "waitlist", "bogus", "", "PING", "session_end", "ice_candidate"]
)
_frames = st.one_of(
    st.text(max_size=200),  # not JSON, mostly
    _json.map(json.dumps),
    st.builds(
        lambda t, d, i: json.dumps({"type": t, "id": i, "data": d}),
        _types, _json, st.one_of(st.text(max_size=70), st.integers()),
    ),
    st.builds(lambda n: json.dumps({"type": "ping", "id": "big", "data": {"p": "x" * n}}),
              st.integers(65 * 1024, 200 * 1024)),
)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _rfc8259(text: str) -> Any:
    """What the server parses: RFC 8259 JSON; Python's json also takes NaN and Infinity."""
    return json.loads(text, parse_constant=_reject_constant)


async def test_hypothesis_bad_frames_each_get_an_error(
    aiohttp_client: Any, make_app: Any, database: Database, settings: Settings
):
    """Malformed, oversized and unknown frames: one error each; the socket and others live on."""
    server = await aiohttp_client(
        make_app(signalling=replace(settings.signalling, rate_per_s=10_000, rate_burst=10_000))
    )
    user = await create_user(database, settings)
    bystander_user = await create_user(database, settings)
    client = await connect(server, "/ws", user.token)
    bystander = await connect(server, "/ws", bystander_user.token)
    seen: list[str] = []

    @hsettings(max_examples=120, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(frame=_frames)
    def run(frame: str) -> None:
        seen.append(frame)

    run()
    for frame in seen:
        await client.send_raw(frame)
        try:
            parsed = _rfc8259(frame)
            msg_id = parsed.get("id") if isinstance(parsed, dict) else None
        except ValueError:
            msg_id = None
        if not (isinstance(msg_id, str) and 1 <= len(msg_id) <= 64):
            msg_id = None
        try:
            reply = await client.reply(msg_id)
        except TimeoutError:
            raise AssertionError(f"no reply to {frame[:300]!r}") from None
        assert reply["id"] == msg_id
        if reply["type"] == "ack":
            # Only a genuinely valid frame may succeed (e.g. a well-formed ping).
            assert json.loads(frame)["type"] in ("ping", "presence", "waitlist", "auth")
        else:
            assert reply["data"]["code"].isupper()
    assert len(seen) >= 100
    assert await client.ok("ping")
    assert await bystander.ok("ping")


async def test_presence_online_offline_away(
    server: Any, database: Database, settings: Settings
):
    astro = await create_user(database, settings, "consultant")
    caller = await create_user(database, settings)
    watcher = await connect(server, "/ws", caller.token)
    ids = [str(astro.id)]
    assert (await watcher.ok("presence", {"consultant_ids": ids}))["statuses"] == {
        str(astro.id): "offline"
    }
    a1 = await connect(server, "/ws", astro.token)
    a2 = await connect(server, "/ws", astro.token)
    presence = server.app[HUB].presence
    assert await presence.get_many([astro.id]) == {astro.id: "online"}
    assert (await a1.ok("presence", {"status": "away"}))["status"] == "away"
    assert (await watcher.ok("presence", {"consultant_ids": ids}))["statuses"][ids[0]] == "away"
    listed = await server.get(f"/consultants/{astro.id}")
    assert (await listed.json())["status"] == "away", await listed.text()
    assert await watcher.fail("presence", {"status": "away"}) == "FORBIDDEN"  # callers can't
    await a1.ok("presence", {"status": "online"})
    hub = server.app[HUB]
    await a1.close()
    assert await eventually(lambda: len(hub.registry.all()) == 2)  # watcher and a2 remain
    assert await presence.get(astro.id) == "online"  # second device still connected
    await a2.close()

    async def offline() -> bool:
        return await presence.get(astro.id) == "offline"

    assert await eventually(offline)
    listed = await server.get(f"/consultants/{astro.id}")
    assert (await listed.json())["status"] == "offline"


async def test_shutdown_sends_going_away(
    aiohttp_client: Any, make_app: Any, database: Database, settings: Settings
):
    server = await aiohttp_client(make_app())
    user = await create_user(database, settings)
    client = await connect(server, "/ws", user.token)
    await server.app[HUB].shutdown()
    msg = await client.ws.receive(timeout=DEADLINE_S)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001


def test_settings_defaults_are_the_documented_ones() -> None:
    cfg = SignallingSettings()
    assert cfg.request_timeout_s == 60 and cfg.reconnect_grace_s == 30
    assert cfg.max_frame_bytes == 64 * 1024


async def test_heartbeat_timeout_drops_a_silent_client(
    aiohttp_client: Any, make_app: Any, database: Database, settings: Settings
):
    """A client that stops answering pings is closed within ~1.5 heartbeats and goes offline."""
    server = await aiohttp_client(
        make_app(signalling=replace(settings.signalling, heartbeat_s=0.4))
    )
    astro = await create_user(database, settings, "consultant")
    silent = await connect(server, "/ws", astro.token, autoping=False)
    presence = server.app[HUB].presence
    assert await presence.get(astro.id) == "online"
    started = asyncio.get_running_loop().time()
    while True:
        msg = await silent.ws.receive(timeout=DEADLINE_S)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR):
            break
        assert msg.type == aiohttp.WSMsgType.PING  # the server's heartbeat, unanswered
    # ~1.5 heartbeats (0.6 s) on a quiet machine; the bound leaves room for a loaded one (the
    # server shares this test's event loop) while staying below the 20 s a missing heartbeat
    # would take (the default interval)
    assert asyncio.get_running_loop().time() - started < 15.0

    async def offline() -> bool:
        return await presence.get(astro.id) == "offline"

    assert await eventually(offline)


async def test_connection_cap_is_atomic_across_nodes(
    aiohttp_client: Any,
    make_app: Any,
    database: Database,
    settings: Settings,
    redis_url: str,
    redis_prefix: str,
) -> None:
    """30 handshakes at once for one user, spread over two nodes on one Redis: exactly 5 in."""
    nodes = [
        await aiohttp_client(make_app(redis_url=redis_url, redis_prefix=redis_prefix))
        for _ in range(2)
    ]
    cap = settings.signalling.max_connections_per_user
    user = await create_user(database, settings)

    async def handshake(server: Any) -> WsClient | None:
        client = await connect(server, "/ws", user.token, wait_hello=False)
        frame = json.loads((await client.ws.receive(timeout=30)).data)
        if frame["type"] == "hello":
            return client
        assert frame["data"]["code"] == "TOO_MANY_CONNECTIONS", frame
        await client.close()
        return None

    results = await asyncio.gather(*(handshake(nodes[i % 2]) for i in range(30)))
    admitted = [c for c in results if c is not None]
    assert cap == 5 and len(admitted) == cap
    for client in admitted:  # every admitted socket works
        assert await client.ok("ping")
    await admitted[0].close()

    async def admitted_again() -> bool:
        return await handshake(nodes[1]) is not None

    assert await eventually(admitted_again, step=0.1), "the freed place was not given back"


async def test_callers_presence_is_private(
    server: Any, database: Database, settings: Settings
) -> None:
    """Anyone sees astrologers; a caller is seen only by the other party of their consultation."""
    astro, caller, stalker = (
        await create_user(database, settings, "consultant"),
        await create_user(database, settings),
        await create_user(database, settings),
    )
    await grant(database, caller.id, 100_000)
    astro_ws, caller_ws, stalker_ws = [
        await connect(server, "/ws", u.token) for u in (astro, caller, stalker)
    ]
    ids = [str(astro.id), str(caller.id)]
    statuses = (await stalker_ws.ok("presence", {"consultant_ids": ids}))["statuses"]
    assert statuses == {str(astro.id): "online"}  # the other caller is not watchable
    assert (await astro_ws.ok("presence", {"consultant_ids": ids}))["statuses"] == {
        str(astro.id): "online"
    }
    await caller_ws.ok("consult_request", {"consultant_id": str(astro.id), "mode": "chat"})
    seen = (await astro_ws.ok("presence", {"consultant_ids": [str(caller.id)]}))["statuses"]
    assert seen == {str(caller.id): "online"}  # the astrologer they asked for sees them
    still = (await stalker_ws.ok("presence", {"consultant_ids": [str(caller.id)]}))["statuses"]
    assert still == {}
