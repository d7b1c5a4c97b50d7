"""A small protocol client for the tests: request/ack by id, buffered events, schema checks."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import aiohttp

from signalling import protocol

_ids = itertools.count(1)

DEADLINE_S = 60.0
"""How long a reply or event may take: generous, for a machine whose cores are busy (a healthy
server answers in milliseconds; the deadline only bounds how long a failing test waits). 20 s
was not enough: a cross-node consult_request went unanswered that long with both cores loaded."""


def check_frame(frame: dict[str, Any]) -> None:
    """Every frame the server sends must match its published JSON Schema."""
    assert set(frame) == {"type", "id", "data"}, frame
    validator = protocol.server_validators().get(frame["type"])
    assert validator is not None, f"no schema for server frame {frame['type']!r}"
    validator.validate(frame["data"])


class WsClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.hello: dict[str, Any] | None = None

    async def _read(self, wait_s: float) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=wait_s)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket ended: {msg.type} {msg.data!r} {msg.extra!r}")
        frame: dict[str, Any] = json.loads(msg.data)
        check_frame(frame)
        return frame

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def send(self, kind: str, data: dict[str, Any] | None = None) -> str:
        msg_id = f"t{next(_ids)}"
        frame: dict[str, Any] = {"type": kind, "id": msg_id}
        if data is not None:
            frame["data"] = data
        await self.ws.send_str(json.dumps(frame))
        return msg_id

    async def reply(self, msg_id: str | None, wait_s: float = DEADLINE_S) -> dict[str, Any]:
        """The ack/error answering ``msg_id``; events read meanwhile are buffered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            frame = await self._read(max(0.01, deadline - loop.time()))
            if frame["type"] in ("ack", "error") and frame["id"] == msg_id:
                return frame
            self.events.append(frame)

    async def request(
        self, kind: str, data: dict[str, Any] | None = None, wait_s: float = DEADLINE_S
    ) -> dict[str, Any]:
        return await self.reply(await self.send(kind, data), wait_s)

    async def ok(self, kind: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        frame = await self.request(kind, data)
        assert frame["type"] == "ack", frame
        result: dict[str, Any] = frame["data"]
        return result

    async def fail(self, kind: str, data: dict[str, Any] | None = None) -> str:
        frame = await self.request(kind, data)
        assert frame["type"] == "error", frame
        code: str = frame["data"]["code"]
        return code

    async def event(self, kind: str, wait_s: float = DEADLINE_S, **match: Any) -> dict[str, Any]:
        """The next event of this type (whose data matches ``match``), buffered or new."""

        def fits(frame: dict[str, Any]) -> bool:
            data = frame["data"]
            return frame["type"] == kind and all(data.get(k) == v for k, v in match.items())

        for i, frame in enumerate(self.events):
            if fits(frame):
                del self.events[i]
                return frame["data"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            frame = await self._read(max(0.01, deadline - loop.time()))
            if fits(frame):
                return frame["data"]
            self.events.append(frame)

    async def drain(self, within: float = 0.2) -> list[dict[str, Any]]:
        """Everything that arrives within ``within`` seconds (plus what is buffered)."""
        try:
            while True:
                self.events.append(await self._read(within))
        except TimeoutError:
            pass
        out, self.events = self.events, []
        return out

    async def during(self, seconds: float) -> list[dict[str, Any]]:
        """Everything buffered or arriving in the next ``seconds`` (an observation window, for
        checking that something does *not* happen), however busy the socket."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                self.events.append(await self._read(left))
            except TimeoutError:
                break
        out, self.events = self.events, []
        return out

    async def close(self) -> None:
        await self.ws.close()


async def connect(
    session: Any, url: str, token: str | None, *, wait_hello: bool = True, **kwargs: Any
) -> WsClient:
    """Connect with the token in Sec-WebSocket-Protocol (``bearer.<jwt>``) and read ``hello``."""
    protocols = [protocol.PROTOCOL] + ([f"bearer.{token}"] if token else [])
    ws = await session.ws_connect(url, protocols=protocols, **kwargs)
    client = WsClient(ws)
    if wait_hello and token:
        frame = await client._read(DEADLINE_S)
        assert frame["type"] == "hello", frame
        client.hello = frame["data"]
    return client
