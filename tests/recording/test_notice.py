"""Both parties are told in ``consult_state`` what is recorded."""

from __future__ import annotations

import pytest

from signalling.fanout import recording_notice
from tests.signalling.conftest import WorldFactory
from tests.signalling.conftest import make_world as make_world  # the fixture
from tests.signalling.test_lifecycle import _start


async def test_consult_state_says_what_is_recorded(make_world: WorldFactory) -> None:
    world = await make_world()  # RECORDING=all, the default
    for mode, told in (("video", "all"), ("voice", "audio"), ("chat", "off")):
        astro_user = await world.user("consultant")
        caller_user = await world.user(paise=100_000)
        astro, caller = await world.ws(astro_user), await world.ws(caller_user)
        await _start(caller, astro, str(astro_user.id), mode)
        for side in (caller, astro):
            state = await side.event("consult_state")
            while state["consultation"]["state"] != "active":
                state = await side.event("consult_state")
            assert state["recording"] == told, (mode, state)


@pytest.mark.parametrize(("setting", "mode", "told"), [
    ("audio", "video", "audio"), ("off", "video", "off"), ("all", "chat", "off"),
    ("audio", "voice", "audio"),
])
def test_recording_notice(setting: str, mode: str, told: str) -> None:
    assert recording_notice(setting, mode) == told
