"""The SFU's ``media_quality`` notice reaches the party's socket in the documented shape."""

from __future__ import annotations

import pytest

from api.keys import HUB
from signalling import protocol
from tests.signalling.conftest import WorldFactory
from tests.signalling.test_lifecycle import _in_room


async def test_media_quality_from_the_sfu_reaches_the_party(make_world: WorldFactory) -> None:
    world = await make_world()
    astro_user, caller_user, astro, caller, cid = await _in_room(world, mode="video")
    hub = world.server.app[HUB]
    notice = {"participant_id": str(astro_user.id), "video_paused": True, "estimated_bps": 118_000}
    await hub.send_signal(cid, str(caller_user.id), {"type": "media_quality", "data": notice})
    data = await caller.event("media_quality")
    assert data == {"consultation_id": cid, "from": "sfu", "user_id": str(astro_user.id),
                    "video_paused": True, "estimated_bps": 118_000}
    protocol.server_validators()["media_quality"].validate(data)
    assert not [e for e in astro.events if e["type"] == "media_quality"]  # addressed to one


async def test_other_message_types_are_refused(make_world: WorldFactory) -> None:
    world = await make_world()
    _, caller_user, _, _, cid = await _in_room(world, mode="video")
    with pytest.raises(ValueError):
        await world.server.app[HUB].send_signal(cid, str(caller_user.id), {"type": "wallet"})
