"""The consultation lifecycle over real sockets, real PostgreSQL and billing's real service."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from uuid import UUID

from api.keys import HUB
from tests.billing.helpers import served
from tests.factories import TestUser, auth
from tests.polling import eventually
from tests.signalling.conftest import World, WorldFactory
from tests.signalling.wsclient import WsClient

FUNDS = 100_000  # paise


async def _start(caller: WsClient, astro: WsClient, astro_id: str, mode: str = "chat") -> str:
    ack = await caller.ok("consult_request", {"consultant_id": astro_id, "mode": mode})
    consultation = ack["consultation"]
    assert consultation["state"] == "requested"
    cid: str = consultation["id"]
    incoming = await astro.event("consult_request")
    assert incoming["consultation"]["id"] == cid
    accepted = await astro.ok("accept", {"consultation_id": cid})
    assert accepted["consultation"]["state"] == "active"
    return cid



async def _in_room(
    world: World, mode: str = "chat"
) -> tuple[TestUser, TestUser, WsClient, WsClient, str]:
    """An astrologer and a funded caller in an active consultation, both joined to its room."""
    astro_user = await world.user("consultant")
    caller_user = await world.user(paise=FUNDS)
    astro, caller = await world.ws(astro_user), await world.ws(caller_user)
    cid = await _start(caller, astro, str(astro_user.id), mode)
    await caller.ok("join_consult", {"consultation_id": cid})
    await astro.ok("join_consult", {"consultation_id": cid})
    return astro_user, caller_user, astro, caller, cid

async def test_full_chat_consultation(make_world: WorldFactory) -> None:
    world = await make_world()
    astro_user = await world.user("consultant")
    caller_user = await world.user(paise=FUNDS)
    astro, caller = await world.ws(astro_user), await world.ws(caller_user)
    cid = await _start(caller, astro, str(astro_user.id))
    for side in (caller, astro):
        state = await side.event("consult_state")
        while state["consultation"]["state"] != "active":
            state = await side.event("consult_state")
    assert (await caller.ok("join_consult", {"consultation_id": cid}))["last_seq"] == 0
    await astro.ok("join_consult", {"consultation_id": cid})
    assert (await astro.ok("presence", {"consultant_ids": [str(astro_user.id)]}))["statuses"] == {
        str(astro_user.id): "busy"
    }
    sent = await caller.ok("message", {"consultation_id": cid, "client_id": "k1",
                                       "text": "Namaste, will I travel this year?"})
    assert sent["message"]["seq"] == 1 and not sent["duplicate"]
    got = await astro.event("message")
    assert got["message"]["text"] == "Namaste, will I travel this year?"
    await astro.ok("typing", {"consultation_id": cid, "typing": True})
    assert (await caller.event("typing"))["user_id"] == str(astro_user.id)
    await astro.ok("read", {"consultation_id": cid, "seq": 1})
    assert (await caller.event("read"))["seq"] == 1
    await astro.ok("message", {"consultation_id": cid, "client_id": "a1",  # answered in time:
                               "text": "Namaste, yes."})  # charged, not refunded
    end = await caller.ok("session_end", {"consultation_id": cid})
    assert end["statement"]["minutes"] == 1
    for side in (caller, astro):
        ended = await side.event("session_end")
        assert ended["reason"] == "completed" and ended["consultation_id"] == cid
    assert await caller.fail("message", {"consultation_id": cid, "client_id": "k2",
                                         "text": "late"}) == "NOT_JOINED"


async def test_reject(make_world: WorldFactory) -> None:
    world = await make_world()
    astro_user = await world.user("consultant")
    caller_user = await world.user(paise=FUNDS)
    astro, caller = await world.ws(astro_user), await world.ws(caller_user)
    ack = await caller.ok("consult_request", {"consultant_id": str(astro_user.id), "mode": "chat"})
    cid = ack["consultation"]["id"]
    await astro.event("consult_request")
    await astro.ok("reject", {"consultation_id": cid})
    ended = await caller.event("session_end")
    assert ended["reason"] == "rejected"
    assert (await astro.event("session_end"))["reason"] == "rejected"


async def test_request_times_out(make_world: WorldFactory) -> None:
    world = await make_world(request_timeout_s=0.5)
    astro_user = await world.user("consultant")
    caller_user = await world.user(paise=FUNDS)
    astro, caller = await world.ws(astro_user), await world.ws(caller_user)
    started = asyncio.get_running_loop().time()
    ack = await caller.ok("consult_request", {"consultant_id": str(astro_user.id), "mode": "chat"})
    cid = ack["consultation"]["id"]
    ended = await caller.event("session_end", consultation_id=cid)
    assert ended["reason"] == "timeout"
    # not before the timeout (the 0.1 s is the loop clock's coarseness); how much later only
    # depends on the machine's load, which the event's own deadline bounds
    assert asyncio.get_running_loop().time() - started > 0.4
    assert (await astro.event("session_end"))["reason"] == "timeout"
    # the hold is released: the caller can ask again at once
    again = await caller.ok("consult_request", {"consultant_id": str(astro_user.id),
                                                "mode": "chat"})
    assert again["consultation"]["state"] == "requested"


async def test_offline_astrologer_and_errors_from_billing(make_world: WorldFactory) -> None:
    world = await make_world()
    astro_user = await world.user("consultant")
    poor = await world.user()
    caller = await world.ws(poor)
    data = {"consultant_id": str(astro_user.id), "mode": "video"}
    assert await caller.fail("consult_request", data) == "CONSULTANT_OFFLINE"
    await world.ws(astro_user)
    frame = await caller.request("consult_request", data)
    assert frame["data"]["code"] == "INSUFFICIENT_BALANCE"
    assert frame["data"]["details"]["needed_paise"] > 0


async def test_waitlist_fifo_offer(make_world: WorldFactory) -> None:
    world = await make_world(waitlist_offer_s=30)
    astro_user = await world.user("consultant")
    users = [await world.user(paise=FUNDS) for _ in range(3)]
    astro = await world.ws(astro_user)
    first, second, third = [await world.ws(u) for u in users]
    cid = await _start(first, astro, str(astro_user.id))
    request = {"consultant_id": str(astro_user.id), "mode": "chat"}
    assert await second.fail("consult_request", request) == "CONSULTANT_UNAVAILABLE"
    assert (await second.ok("consult_request", {**request, "waitlist": True}))["position"] == 1
    assert (await third.ok("consult_request", {**request, "waitlist": True}))["position"] == 2
    await astro.ok("session_end", {"consultation_id": cid})
    offer = await second.event("waitlist")
    assert offer["status"] == "offered" and offer["consultant_id"] == str(astro_user.id)
    # the slot is held for the head of the queue
    assert await third.fail("consult_request", request) == "CONSULTANT_UNAVAILABLE"
    ack = await second.ok("consult_request", request)
    assert ack["consultation"]["caller_id"] == str(users[1].id)
    assert third.events == [] or all(e["type"] != "waitlist" for e in third.events)


async def test_waitlist_offer_expires_to_next(make_world: WorldFactory) -> None:
    world = await make_world(waitlist_offer_s=0.4)
    astro_user = await world.user("consultant")
    users = [await world.user(paise=FUNDS) for _ in range(3)]
    astro = await world.ws(astro_user)
    first, second, third = [await world.ws(u) for u in users]
    cid = await _start(first, astro, str(astro_user.id))
    for side in (second, third):
        await side.ok("waitlist", {"consultant_id": str(astro_user.id), "action": "join"})
    await first.ok("session_end", {"consultation_id": cid})
    assert (await second.event("waitlist"))["status"] == "offered"
    assert (await second.event("waitlist"))["status"] == "expired"
    assert (await third.event("waitlist"))["status"] == "offered"


async def test_only_participants_and_admins_join(make_world: WorldFactory) -> None:
    world = await make_world()
    astro_user = await world.user("consultant")
    caller_user = await world.user(paise=FUNDS)
    stranger_user = await world.user()
    admin_user = await world.user("admin")
    astro, caller = await world.ws(astro_user), await world.ws(caller_user)
    cid = await _start(caller, astro, str(astro_user.id))
    stranger = await world.ws(stranger_user)
    assert await stranger.fail("join_consult", {"consultation_id": cid}) == "FORBIDDEN"
    assert await stranger.fail("session_end", {"consultation_id": cid}) == "FORBIDDEN"
    assert await stranger.fail("join_consult", {
        "consultation_id": "00000000-0000-4000-8000-000000000000"}) == "NOT_FOUND"
    admin = await world.ws(admin_user)
    await admin.ok("join_consult", {"consultation_id": cid})
    await caller.ok("join_consult", {"consultation_id": cid})
    await caller.ok("message", {"consultation_id": cid, "client_id": "a", "text": "hi"})
    assert (await admin.event("message"))["message"]["text"] == "hi"  # observer sees chat
    assert await admin.fail("message", {"consultation_id": cid, "client_id": "b",
                                        "text": "psst"}) == "FORBIDDEN"
    audit = await world.database.pool.fetch(
        "SELECT actor_id, action, subject_type, subject_id FROM audit_log")
    assert [tuple(r) for r in audit] == [(admin_user.id, "observer_joined", "consultation", cid)]


async def test_media_state_reaches_the_other_party_and_observers(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    astro_user, caller_user, astro, caller, cid = await _in_room(world, "video")
    admin = await world.ws(await world.user("admin"))
    await admin.ok("join_consult", {"consultation_id": cid})
    await caller.ok("media_state", {"consultation_id": cid, "audio": False, "video": False})
    for side in (astro, admin):
        assert await side.event("media_state") == {
            "consultation_id": cid, "user_id": str(caller_user.id), "role": "user",
            "audio": False, "video": False,
        }
    await astro.ok("media_state", {"consultation_id": cid, "audio": True, "video": False})
    got = await caller.event("media_state")
    assert (got["role"], got["user_id"], got["audio"], got["video"]) == (
        "consultant", str(astro_user.id), True, False)
    assert not [f for f in await caller.drain() if f["type"] == "media_state"]  # not echoed

    stranger = await world.ws(await world.user())
    assert await stranger.fail("join_consult", {"consultation_id": cid}) == "FORBIDDEN"
    muted = {"consultation_id": cid, "audio": False, "video": True}
    assert await stranger.fail("media_state", muted) == "NOT_JOINED"
    assert await admin.fail("media_state", muted) == "FORBIDDEN"  # observers only watch
    other_room = {**muted, "consultation_id": "00000000-0000-4000-8000-000000000000"}
    assert await caller.fail("media_state", other_room) == "NOT_JOINED"
    assert await caller.fail("media_state", {"consultation_id": cid, "audio": False}) == (
        "INVALID_MESSAGE")
    assert not [f for f in await astro.drain() if f["type"] == "media_state"]


async def test_reconnect_with_since_gets_exactly_the_missed(make_world: WorldFactory) -> None:
    world = await make_world(rate_per_s=1000, rate_burst=1000)
    _astro_user, caller_user, astro, caller, cid = await _in_room(world)
    for i in range(3):
        await astro.ok("message", {"consultation_id": cid, "client_id": f"a{i}", "text": f"{i}"})
    seen = [(await caller.event("message"))["message"]["seq"] for _ in range(3)]
    assert seen == [1, 2, 3]
    await caller.close()
    for i in range(3, 8):
        await astro.ok("message", {"consultation_id": cid, "client_id": f"a{i}", "text": f"{i}"})
    back = await world.ws(caller_user)

    async def chatter() -> None:  # live messages while the replay runs
        for i in range(8, 20):
            await astro.ok("message", {"consultation_id": cid, "client_id": f"a{i}",
                                       "text": f"{i}"})

    task = asyncio.create_task(chatter())
    ack = await back.ok("join_consult", {"consultation_id": cid, "since": 3})
    await task
    assert ack["replayed"] >= 5
    frames = await back.drain(0.5)
    seqs = [f["data"]["message"]["seq"] for f in frames if f["type"] == "message"]
    assert sorted(seqs) == list(range(4, 21)), seqs  # every missed one, none twice
    assert seqs[: ack["replayed"]] == list(range(4, 4 + ack["replayed"]))  # replay in order


async def test_resent_client_id_is_stored_once(make_world: WorldFactory) -> None:
    world = await make_world()
    _astro_user, _caller_user, astro, caller, cid = await _in_room(world)
    body = {"consultation_id": cid, "client_id": "same-id", "text": "once"}
    first = await caller.ok("message", body)
    again = await caller.ok("message", body)
    assert again["duplicate"] and again["message"]["id"] == first["message"]["id"]
    rows = await world.database.pool.fetchval(
        "SELECT count(*) FROM chat_messages WHERE consultation_id = $1::uuid", cid
    )
    assert rows == 1
    frames = await astro.drain(0.3)
    assert [f["data"]["message"]["seq"] for f in frames if f["type"] == "message"] == [1]


async def test_masking_in_chat(make_world: WorldFactory) -> None:
    world = await make_world()
    _astro_user, _caller_user, astro, caller, cid = await _in_room(world)
    text = "born 12-05-1990; call +91 98765 43210 or mail me@x.com, see www.x.in"
    sent = (await astro.ok("message", {"consultation_id": cid, "client_id": "m",
                                       "text": text}))["message"]
    assert sent["masked"]
    assert sent["text"] == "born 12-05-1990; call [hidden] or mail [hidden], see [hidden]"
    assert (await caller.event("message"))["message"]["text"] == sent["text"]
    stored = await world.database.pool.fetchval(
        "SELECT body FROM chat_messages WHERE consultation_id = $1::uuid", cid
    )
    assert "98765" not in stored


async def test_masking_off(make_world: WorldFactory) -> None:
    world = await make_world(masking=frozenset())
    astro_user = await world.user("consultant")
    caller_user = await world.user(paise=FUNDS)
    astro, caller = await world.ws(astro_user), await world.ws(caller_user)
    cid = await _start(caller, astro, str(astro_user.id))
    await caller.ok("join_consult", {"consultation_id": cid})
    sent = await caller.ok("message", {"consultation_id": cid, "client_id": "m",
                                       "text": "call 9876543210"})
    assert sent["message"]["text"] == "call 9876543210" and not sent["message"]["masked"]


async def test_drop_without_return_ends_disconnected_at_drop_time(
    make_world: WorldFactory,
) -> None:
    world = await make_world(reconnect_grace_s=1.0)
    _astro_user, caller_user, astro, caller, _cid = await _in_room(world)
    before_drop = datetime.now().astimezone()
    await caller.close()
    notice = await astro.event("presence", status="reconnecting", wait_s=20)
    # The server saw the drop before it announced it; the grace ends a full second later. So
    # the end belongs in [close, announcement], however slow a loaded machine makes each step.
    announced = datetime.now().astimezone()
    assert notice["user_id"] == str(caller_user.id) and notice["grace_s"] == 1.0
    ended = await astro.event("session_end", wait_s=20)
    assert ended["reason"] == "disconnected"
    ended_at = datetime.fromisoformat(ended["ended_at"])
    assert before_drop <= ended_at <= announced, (before_drop, ended_at, announced)


async def test_an_end_that_fails_is_retried(make_world: WorldFactory) -> None:
    world = await make_world(request_timeout_s=0.3)
    # The database refuses the first end (a stand-in for a lost connection or a deadlock);
    # a sequence, because what a failing transaction writes is rolled back with it.
    await world.database.pool.execute(
        """CREATE SEQUENCE end_attempts;
        CREATE FUNCTION refuse_first_end() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.state = 'ended' AND nextval('end_attempts') = 1 THEN
                RAISE EXCEPTION 'refused once by the test';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_first_end BEFORE UPDATE ON consultations
            FOR EACH ROW EXECUTE FUNCTION refuse_first_end();"""
    )
    astro_user = await world.user("consultant")
    _astro = await world.ws(astro_user)  # online, never answers
    caller = await world.ws(await world.user(paise=FUNDS))
    ack = await caller.ok("consult_request", {"consultant_id": str(astro_user.id), "mode": "chat"})
    cid = ack["consultation"]["id"]
    ended = await caller.event("session_end", consultation_id=cid, wait_s=30)
    assert ended["reason"] == "timeout"
    assert await world.database.pool.fetchval("SELECT last_value FROM end_attempts") == 2


async def test_rejoin_within_grace_keeps_the_session(make_world: WorldFactory) -> None:
    world = await make_world(reconnect_grace_s=0.6)
    _astro_user, caller_user, astro, caller, cid = await _in_room(world)
    await caller.close()
    await astro.event("presence", status="reconnecting")
    back = await world.ws(caller_user)
    await back.ok("join_consult", {"consultation_id": cid, "since": 0})
    assert (await astro.event("presence", status="online"))["user_id"] == str(caller_user.id)
    hub = world.server.app[HUB]
    grace = ("grace", uuid.UUID(cid), caller_user.id)
    assert await eventually(lambda: not hub.has_timer(grace)), "the grace timer still runs"
    # An observation window, not a wait for a condition: a session_end due to the lapsed grace
    # (0.6 s after the drop) would have arrived by now.
    frames = await astro.during(0.9)
    assert not [f for f in frames if f["type"] == "session_end"]
    assert (await back.ok("message", {"consultation_id": cid, "client_id": "x",
                                      "text": "still here"}))["message"]["seq"] == 1


async def test_billing_ticks_and_insufficient_balance_end(make_world: WorldFactory) -> None:
    # 2-second minutes: the reply below must be stored before the money runs out (three
    # minutes after the accept), or the end refunds the chat as unanswered; 1-second minutes
    # left a busy machine too little time for that one insert.
    world = await make_world(minute_seconds=2, tick_interval_seconds=0.2, min_start_minutes=1)
    astro_user = await world.user("consultant")
    caller_user = await world.user(paise=3000)  # three minutes of chat at 1000 paise
    astro, caller = await world.ws(astro_user), await world.ws(caller_user)
    cid = await _start(caller, astro, str(astro_user.id))
    # answered within its first minute, so charged, not refunded as unanswered
    await served(world.database, UUID(cid))
    tick = await caller.event("billing_tick", wait_s=30)
    assert tick["consultation_id"] == cid and tick["balance_paise"] is not None
    astro_tick = await astro.event("billing_tick", wait_s=30)
    assert astro_tick["balance_paise"] is None  # the caller's balance is not shown to them
    warning = await caller.event("balance_warning", wait_s=30)
    assert warning["minutes_left"] <= 2
    for side in (caller, astro):
        ended = await side.event("session_end", wait_s=30)
        assert ended["reason"] == "insufficient_balance"
        assert ended["minutes"] == 3


async def test_peer_sdp_relay(make_world: WorldFactory) -> None:
    world = await make_world()
    astro_user = await world.user("consultant")
    caller_user = await world.user(paise=FUNDS)
    astro, caller = await world.ws(astro_user), await world.ws(caller_user)
    cid = await _start(caller, astro, str(astro_user.id), mode="video")
    await caller.ok("join_consult", {"consultation_id": cid})
    await astro.ok("join_consult", {"consultation_id": cid})
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    await caller.ok("call_offer", {"consultation_id": cid, "sdp": sdp, "target": "peer"})
    offer = await astro.event("call_offer")
    assert offer["sdp"] == sdp and offer["from"] == str(caller_user.id)
    await astro.ok("call_answer", {"consultation_id": cid, "sdp": sdp, "target": "peer"})
    assert (await caller.event("call_answer"))["from"] == str(astro_user.id)
    cand = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0",
            "sdpMLineIndex": 0}
    await caller.ok("ice_candidate", {"consultation_id": cid, "candidate": cand, "target": "peer"})
    assert (await astro.event("ice_candidate"))["candidate"] == cand
    # to the SFU, a broken SDP is the media engine's stable error, not a crash
    frame = await caller.request("call_offer", {"consultation_id": cid, "sdp": "garbage"})
    assert frame["type"] == "error" and frame["data"]["code"].isupper()
    assert await caller.ok("ping")


async def test_sfu_offer_answer_through_the_hub(make_world: WorldFactory) -> None:
    """A real aiortc peer negotiates with the node's media engine over the socket."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    world = await make_world()
    astro_user = await world.user("consultant")
    caller_user = await world.user(paise=FUNDS)
    astro, caller = await world.ws(astro_user), await world.ws(caller_user)
    cid = await _start(caller, astro, str(astro_user.id), mode="voice")
    await caller.ok("join_consult", {"consultation_id": cid})
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        pc.addTransceiver("video", direction="sendrecv")  # more than a voice call pays for
        await pc.setLocalDescription(await pc.createOffer())
        await caller.ok("call_offer", {"consultation_id": cid, "sdp": pc.localDescription.sdp})
        answer = await caller.event("call_answer", wait_s=30)
        assert answer["from"] == "sfu" and answer["sdp"].startswith("v=0")
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        assert pc.signalingState == "stable"
        directions = {t.kind: t.currentDirection for t in pc.getTransceivers()}
        assert directions == {"audio": "sendrecv", "video": "inactive"}  # the mode is voice
        hub = world.server.app[HUB]
        assert hub.media is not None and cid in hub.media.room_ids
        await caller.ok("session_end", {"consultation_id": cid})
        await caller.event("session_end")
        assert cid not in hub.media.room_ids  # closed with the session
    finally:
        await pc.close()


async def test_only_callers_request_consultations(make_world: WorldFactory) -> None:
    world = await make_world()
    astro_user = await world.user("consultant")
    await world.ws(astro_user)
    request = {"consultant_id": str(astro_user.id), "mode": "chat"}
    for role in ("consultant", "admin"):
        other = await world.ws(await world.user(role, paise=FUNDS))
        assert await other.fail("consult_request", request) == "FORBIDDEN", role


async def test_rest_request_respects_the_waitlist_offer(make_world: WorldFactory) -> None:
    """A slot offered to the head of the waitlist is held against REST requests too."""
    world = await make_world(waitlist_offer_s=30)
    astro_user = await world.user("consultant")
    astro = await world.ws(astro_user)
    first = await world.ws(await world.user(paise=FUNDS))
    cid = await _start(first, astro, str(astro_user.id))
    waiting_user = await world.user(paise=FUNDS)
    waiting = await world.ws(waiting_user)
    await waiting.ok("waitlist", {"consultant_id": str(astro_user.id), "action": "join"})
    await astro.ok("session_end", {"consultation_id": cid})
    assert (await waiting.event("waitlist", status="offered"))["consultant_id"] == str(
        astro_user.id
    )
    rest_caller = await world.user(paise=FUNDS)
    body = {"consultant_id": str(astro_user.id), "mode": "chat"}
    response = await world.server.post("/consultations", json=body, headers=auth(rest_caller.token))
    assert response.status == 409, await response.text()
    assert (await response.json())["error"]["code"] == "CONSULTANT_UNAVAILABLE"
    # the offered caller may take it, over REST as well
    response = await world.server.post(
        "/consultations", json=body, headers=auth(waiting_user.token)
    )
    assert response.status == 201, await response.text()


async def test_a_chat_consultation_carries_no_media(make_world: WorldFactory) -> None:
    world = await make_world()
    _astro_user, _caller_user, astro, caller, cid = await _in_room(world, mode="chat")
    offer = {"consultation_id": cid, "sdp": "v=0\r\n"}
    for side in (caller, astro):
        assert await side.fail("call_offer", offer) == "MEDIA_NOT_ALLOWED"
        assert await side.fail("call_offer", {**offer, "target": "peer"}) == "MEDIA_NOT_ALLOWED"
