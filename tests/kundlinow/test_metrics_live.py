"""``/metrics`` of a running server moves with real traffic: a chat, a webhook, an aiortc video
call through the SFU, the billing ticker and the recording of the call (issue 14)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.keys import NODE_ID
from core.db import Database
from kundlinow.app import create_app
from kundlinow.config import Settings
from tests.billing.helpers import grant
from tests.factories import auth, create_user
from tests.polling import eventually
from tests.scrape import Scrape
from tests.signalling.media_peer import WsPeer, start_consult
from tests.signalling.wsclient import connect

FORWARDING = (
    "kundlinow_media_received_packets_total",
    "kundlinow_media_forwarded_packets_total",
    "kundlinow_media_forwarded_bytes_total",
    "kundlinow_media_forwarded_frames_total",
)


@pytest.fixture
async def server(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    """One node: SFU on loopback, minutes of 1 s and the internal ticker every 0.2 s."""
    configured = replace(
        settings,
        media=replace(settings.media, ice_host_addresses=("127.0.0.1",)),
        billing=replace(settings.billing, minute_seconds=1, internal_ticker=True,
                        tick_interval_seconds=0.2),
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(configured))
    return client


async def scrape(server: TestClient[Any, Any]) -> Scrape:
    response = await server.get("/metrics")
    assert response.status == 200
    return Scrape.parse(await response.text())


async def _webhooks(server: TestClient[Any, Any], token: str) -> None:
    """A credited payment, its replay and a forged copy (the dev gateway simulator)."""
    order = await server.post("/wallet/recharge", json={"amount_paise": 10_000},
                              headers=auth(token))
    assert order.status == 201
    paid = await server.post("/wallet/recharge/simulate", headers=auth(token),
                             json={"order_id": (await order.json())["order_id"]})
    hook = (await paid.json())["webhook"]
    headers = {"X-Razorpay-Signature": hook["signature"], "X-Razorpay-Event-Id": hook["event_id"]}
    for expected, sent in (("credited", headers), ("duplicate", headers),
                           (None, {**headers, "X-Razorpay-Signature": "0" * 64})):
        response = await server.post("/webhooks/razorpay", data=hook["body"], headers=sent)
        if expected is None:
            assert response.status == 400
        else:
            answer = await response.json()
            assert expected in (answer.get("outcome"), answer["status"]), answer


async def test_series_move_with_chat_webhook_call_ticks_and_recording(
    server: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    node = server.app[NODE_ID]
    astro_user = await create_user(database, settings, "consultant")
    caller_user = await create_user(database, settings)
    await grant(database, caller_user.id, 1_000_000)
    before = await scrape(server)
    assert before.value("kundlinow_sockets", node=node) == 0

    await _webhooks(server, caller_user.token)
    caller = await connect(server, "/ws", caller_user.token)
    astro = await connect(server, "/ws", astro_user.token)
    cid = await start_consult(caller, astro, str(astro_user.id))
    for i in range(3):
        await caller.ok("message", {"consultation_id": cid, "client_id": f"m{i}", "text": "hi"})

    peers = [WsPeer(caller, cid), WsPeer(astro, cid)]
    try:
        for peer in peers:
            peer.publish()
            await peer.connect()
        assert await eventually(
            lambda: all(len(p.received[k]) >= 20 for p in peers for k in ("audio", "video")), 30
        ), "no media both ways"

        live = await scrape(server)
        assert live.value("kundlinow_sockets", node=node) == 2
        assert live.value("kundlinow_socket_rooms", node=node) == 1
        assert live.value("kundlinow_media_rooms", node=node) == 1
        assert live.value("kundlinow_media_participants", node=node) == 2
        for name in FORWARDING:
            for kind in ("audio", "video"):
                assert live.value(name, node=node, kind=kind) > 0, (name, kind)
        # the recorder and each new subscriber ask the publishers for a key frame
        assert live.value("kundlinow_media_keyframe_requests_total", node=node, kind="video",
                          direction="sent") >= 1
        # both peer connections selected a host pair over UDP (loopback, no TURN)
        assert live.value("kundlinow_media_ice_selected_pairs_total", node=node,
                          local_type="host", protocol="udp") == 2

        async def sending_to_both() -> bool:  # rates are sampled each RTCP report interval
            now = await scrape(server)
            return all(now.value("kundlinow_media_participant_bitrate_out_bps", node=node,
                                 room=cid, participant=str(user.id)) > 0
                       for user in (caller_user, astro_user))

        assert await eventually(sending_to_both, 10), "no per-participant bitrate"

        chat_batches = live.value("kundlinow_chat_batch_messages_count", node=node)
        assert 1 <= chat_batches <= 3
        assert live.value("kundlinow_chat_batch_messages_sum", node=node) == 3
        assert live.value("kundlinow_chat_commit_duration_seconds_count", node=node) == chat_batches

        outcomes = {o: live.value("kundlinow_webhook_events_total", node=node, outcome=o)
                    for o in ("credited", "duplicate", "invalid_signature")}
        assert outcomes == {"credited": 1, "duplicate": 1, "invalid_signature": 1}

        async def ticked() -> bool:
            now = await scrape(server)
            return (now.value("kundlinow_billing_charged_minutes_total", node=node) >= 1
                    and now.value("kundlinow_billing_tick_duration_seconds_count", node=node) >= 2)

        assert await eventually(ticked, 30), "no tick charged a minute"
        ticks = await scrape(server)
        assert ticks.value("kundlinow_billing_charged_paise_total", node=node) > 0
        assert ticks.value("kundlinow_billing_last_tick_timestamp_seconds", node=node) > 0
        assert ticks.value("kundlinow_billing_tick_failures_total", node=node) == 0
        assert ticks.value("kundlinow_event_loop_lag_seconds_count", node=node) > 0

        await caller.send("session_end", {"consultation_id": cid})
        assert await eventually(lambda: all(p.got("session_end") for p in peers), 10)
    finally:
        for peer in peers:
            await peer.close()
    for ws in (caller, astro):
        await ws.close()

    async def room_closed() -> bool:
        now = await scrape(server)
        return (now.value("kundlinow_media_rooms", node=node) == 0
                and now.value("kundlinow_sockets", node=node) == 0)

    assert await eventually(room_closed, 10)
    after = await scrape(server)
    assert after.value("kundlinow_media_participants", node=node) == 0
    for name in FORWARDING:  # the departed participants' counts stay in the totals
        for kind in ("audio", "video"):
            assert after.value(name, node=node, kind=kind) >= live.value(name, node=node, kind=kind)
    assert not after.has("kundlinow_media_participant_bitrate_out_bps", room=cid)

    consultation = uuid.UUID(cid)

    async def recorded() -> bool:  # the files are finalised and catalogued after the room closes
        row = await database.pool.fetchrow(
            "SELECT count(*) AS files, coalesce(sum(bytes), 0) AS bytes FROM recordings"
            " WHERE consultation_id = $1 AND status = 'complete'", consultation,
        )
        now = await scrape(server)
        return (row["files"] >= 2
                and now.value("kundlinow_recording_files_total", node=node,
                              status="complete") == row["files"]
                and now.value("kundlinow_recording_bytes_total", node=node) == row["bytes"])

    assert await eventually(recorded, 30), (await scrape(server)).samples
    assert after.value("kundlinow_recording_failures_total", node=node) == 0
