"""Media room routing: which node's SFU hosts a consultation's media (LiveKit's "routing" layer).

The SFU (``media.engine.MediaEngine``) is per process, but with ``REDIS_URL`` set the two
parties of a call may hold sockets on different nodes. Every peer connection of one room must
live on ONE engine, or no media flows between the parties. This module keeps that decision out
of the media engine and out of the WebSocket layer:

- :class:`MediaRoomRouter` answers "which node hosts room R?". :class:`LocalMediaRoomRouter`
  (one process) always answers "this node". :class:`RedisMediaRoomRouter` places a room nobody
  hosts on the least-loaded node that is not draining (:mod:`signalling.placement`; without a
  placement, the first node that needs it) and claims it for that node
  (``SET <prefix>media:room:<id> <node> NX PX ttl``); the host
  refreshes the claim while it hosts the room and deletes it when the room closes; a claim whose
  node is dead (its presence liveness key expired, or the claim's TTL lapsed) is taken over by
  the next node that needs it — the parties then rejoin with a new peer connection, as on any
  drop (aiortc has no ICE restart).
- :class:`RoutedMedia` is what the hub holds as its ``MediaPort``. Operations for a room hosted
  here run on the local engine (single node: no bus traffic at all, as before). Otherwise the
  request travels over the event bus to the host (topic ``media:<node>``) and its reply comes
  back on the origin's topic; the host's engine callbacks for a remote participant (answers,
  renegotiation offers, candidates) go back to the origin node, which delivers them to the
  socket exactly as for a local participant (``Hub.send_signal``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Collection
from typing import Any, Protocol

import structlog

from core.bus import EventBus, start_subscriber
from core.errors import CodedError
from core.tasks import TaskSet, every
from signalling import errors
from signalling.errors import SignalError
from signalling.placement import RedisPlacement
from signalling.ports import MediaPort, SendSignal

log = structlog.get_logger(__name__)


class MediaEngineLike(MediaPort, Protocol):
    """The part of ``media.engine.MediaEngine`` routing needs: the hub's media port, plus
    binding the engine's server-to-client callback and the host's room list and stats."""

    def bind_signal(self, send_signal: SendSignal) -> None: ...

    @property
    def room_ids(self) -> list[str]: ...

    def stats(self, room_id: str) -> dict[str, Any]: ...


class MediaRoomRouter(Protocol):
    """Which node hosts a room's media; the host keeps its claim alive until the room closes."""

    node_id: str
    multi_node: bool

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def host_for(self, room_id: str) -> str:
        """The node hosting ``room_id``; claims it for this node if nobody (alive) does."""

    async def current_host(self, room_id: str) -> str | None:
        """The node holding the claim now, if any (never claims)."""

    async def release(self, room_id: str) -> None:
        """This node no longer hosts ``room_id`` (its claim is deleted if still ours)."""

    def adopt(self, room_id: str) -> None:
        """Another node placed ``room_id`` here: keep its claim alive from now on."""


class LocalMediaRoomRouter:
    """One process: every room is hosted here."""

    multi_node = False

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def host_for(self, room_id: str) -> str:
        return self.node_id

    async def current_host(self, room_id: str) -> str | None:
        return self.node_id

    async def release(self, room_id: str) -> None:
        return None

    def adopt(self, room_id: str) -> None:
        return None


# KEYS[1] claim; ARGV[1] expected owner, ARGV[2] new owner ('' = delete), ARGV[3] ttl ms
_SWAP = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '' then return redis.call('del', KEYS[1]) end
  redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
# KEYS[1] claim; ARGV[1] owner, ARGV[2] ttl ms
_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisMediaRoomRouter:
    """Room claims in Redis: ``<prefix>media:room:<id>`` = hosting node, with a TTL.

    ``node_key_prefix`` + node id is the presence liveness key each node renews: pass
    ``RedisPresenceStore.node_key_prefix``, which owns that format. A claim whose node has no
    liveness key is dead and may be taken over.
    """

    multi_node = True

    def __init__(
        self,
        redis: Any,
        prefix: str,
        node_id: str,
        *,
        node_key_prefix: str,
        ttl_s: float = 10.0,
        refresh_s: float = 3.0,
        placement: RedisPlacement | None = None,
    ) -> None:
        self._redis = redis
        self._placement = placement
        self._prefix = f"{prefix}media:room:"
        self._node_key_prefix = node_key_prefix
        self.node_id = node_id
        self._ttl_ms = int(ttl_s * 1000)
        self._refresh_s = refresh_s
        self._hosted: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def key(self, room_id: str) -> str:
        return self._prefix + room_id

    async def start(self) -> None:
        self._task = asyncio.create_task(
            every(self._refresh_s, self._refresh, failed_event="media_claim_refresh_failed"),
            name="media-room-claims",
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for room_id in list(self._hosted):
            with contextlib.suppress(Exception):
                await self.release(room_id)

    async def _refresh(self) -> None:
        """Extend the claims of the rooms hosted here; forget the ones lost meanwhile."""
        for room_id in list(self._hosted):
            try:
                held = await self._redis.eval(
                    _REFRESH, 1, self.key(room_id), self.node_id, self._ttl_ms
                )
            except Exception:
                log.warning("media_claim_refresh_failed", room_id=room_id, exc_info=True)
                continue
            if not held:
                log.warning("media_claim_lost", room_id=room_id, node=self.node_id)
                self._hosted.discard(room_id)

    async def _alive(self, node: str) -> bool:
        return bool(await self._redis.exists(self._node_key_prefix + node))

    async def current_host(self, room_id: str) -> str | None:
        return _text(await self._redis.get(self.key(room_id)))

    async def host_for(self, room_id: str) -> str:
        key = self.key(room_id)
        for _ in range(5):
            owner = _text(await self._redis.get(key))
            if owner is None and self._placement is not None:
                owner = await self._placement.place(key, self._ttl_ms, self.node_id)
                if owner is None:
                    raise SignalError(errors.MEDIA_UNAVAILABLE, "no node takes new rooms")
                if owner == self.node_id:
                    log.info("media_room_claimed", room_id=room_id, node=owner)
                else:
                    log.info("media_room_placed", room_id=room_id, node=owner, by=self.node_id)
            if owner is None:
                if await self._redis.set(key, self.node_id, nx=True, px=self._ttl_ms):
                    self._hosted.add(room_id)
                    log.info("media_room_claimed", room_id=room_id, node=self.node_id)
                    return self.node_id
                continue  # raced with another node: read its claim
            if owner == self.node_id:
                self._hosted.add(room_id)
                return owner
            if await self._alive(owner):
                return owner
            if self._placement is not None:
                # A dead host's room is placed again by load, like a new one.
                await self._redis.eval(_SWAP, 1, key, owner, "", 0)
                log.info("media_room_host_dead", room_id=room_id, dead=owner)
                continue
            if await self._redis.eval(_SWAP, 1, key, owner, self.node_id, self._ttl_ms):
                self._hosted.add(room_id)
                log.info("media_room_taken_over", room_id=room_id, node=self.node_id,
                         dead=owner)
                return self.node_id
        raise SignalError(errors.MEDIA_UNAVAILABLE, "no media host for this room")

    def adopt(self, room_id: str) -> None:
        self._hosted.add(room_id)

    async def release(self, room_id: str) -> None:
        self._hosted.discard(room_id)
        await self._redis.eval(_SWAP, 1, self.key(room_id), self.node_id, "", 0)
        if self._placement is not None:
            await self._placement.released(self.node_id, room_id)


def _topic(node_id: str) -> str:
    return f"media:{node_id}"


class RoutedMedia:
    """The hub's ``MediaPort``: runs each operation on the engine of the room's host node.

    Origin side: ``_hosts`` remembers where each (room, participant)'s peer connection lives.
    Host side: ``_origins`` remembers which node holds the participant's socket, so engine
    callbacks return there.
    """

    def __init__(
        self,
        engine: MediaEngineLike,
        router: MediaRoomRouter,
        bus: EventBus,
        *,
        request_timeout_s: float = 10.0,
    ) -> None:
        self._engine = engine
        self._router = router
        self._bus = bus
        self._node = router.node_id
        self._timeout = request_timeout_s
        self._deliver: SendSignal | None = None
        self._hosts: dict[tuple[str, str], str] = {}
        self._terms: dict[tuple[str, str], tuple[bool, tuple[str, ...]]] = {}
        """(room, participant) -> (can_publish, kinds) of its join, for a rejoin on a new host."""
        self._origins: dict[tuple[str, str], str] = {}
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._tasks = TaskSet("media_route_task_failed")
        self._listener: asyncio.Task[None] | None = None
        engine.bind_signal(self._from_engine)

    def bind(self, deliver: SendSignal) -> None:
        """Where signals for participants whose socket is on this node go (``Hub.send_signal``)."""
        self._deliver = deliver

    @property
    def room_ids(self) -> list[str]:
        """Rooms whose media this node hosts."""
        return self._engine.room_ids

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._router.start()
        if not self._router.multi_node:
            return
        self._listener = await start_subscriber(
            self._bus, _topic(self._node), self._on_event,
            name="media-routing", failed_event="media_route_event_failed",
        )

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self._tasks.close()
        self._listener = None
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        await self._router.close()

    # ------------------------------------------------------------------ MediaPort (origin side)

    async def join(
        self,
        room_id: str,
        participant_id: str,
        *,
        can_publish: bool = True,
        kinds: Collection[str] = ("audio", "video"),
    ) -> None:
        key = (room_id, participant_id)
        host = await self._router.host_for(room_id)
        wanted = tuple(kinds)
        self._terms[key] = (can_publish, wanted)
        if host == self._node:
            await self._engine.join(room_id, participant_id, can_publish=can_publish, kinds=wanted)
            self._origins[key] = self._node
        else:
            await self._call(host, "join", room_id, participant_id, can_publish=can_publish,
                             kinds=list(wanted))
        self._hosts[key] = host

    async def _host_of(self, room_id: str, participant_id: str, *, rejoin: bool) -> str:
        key = (room_id, participant_id)
        host = self._hosts.get(key, self._node)
        if rejoin and host != self._node and await self._router.host_for(room_id) != host:
            # The host died (taken over now) or released the room: a new offer from the
            # client means a new peer connection, on the room's current host.
            can_publish, kinds = self._terms.get(key, (True, ("audio", "video")))
            await self.join(room_id, participant_id, can_publish=can_publish, kinds=kinds)
            host = self._hosts[key]
        return host

    async def handle_offer(self, room_id: str, participant_id: str, sdp: str) -> str:
        host = await self._host_of(room_id, participant_id, rejoin=True)
        if host == self._node:
            return await self._engine.handle_offer(room_id, participant_id, sdp)
        return str(await self._call(host, "offer", room_id, participant_id, sdp=sdp))

    async def handle_answer(self, room_id: str, participant_id: str, sdp: str) -> None:
        host = await self._host_of(room_id, participant_id, rejoin=False)
        if host == self._node:
            await self._engine.handle_answer(room_id, participant_id, sdp)
        else:
            await self._call(host, "answer", room_id, participant_id, sdp=sdp)

    async def add_ice_candidate(
        self, room_id: str, participant_id: str, candidate: dict[str, Any] | None
    ) -> None:
        host = await self._host_of(room_id, participant_id, rejoin=False)
        if host == self._node:
            await self._engine.add_ice_candidate(room_id, participant_id, candidate)
        else:
            await self._call(host, "ice", room_id, participant_id, candidate=candidate)

    async def leave(self, room_id: str, participant_id: str) -> None:
        key = (room_id, participant_id)
        self._terms.pop(key, None)
        host = self._hosts.pop(key, self._node)
        if host == self._node:
            await self._leave_here(room_id, participant_id)
        else:
            await self._call(host, "leave", room_id, participant_id)

    async def close_room(self, room_id: str) -> None:
        """Every node hears ``session_end``; the host closes the room, others tell it too."""
        for key in [k for k in self._hosts if k[0] == room_id]:
            self._hosts.pop(key, None)
            self._terms.pop(key, None)
        await self._close_here(room_id)
        if self._router.multi_node:
            host = await self._router.current_host(room_id)
            if host is not None and host != self._node:
                await self._bus.publish(
                    _topic(host), {"k": "close", "room": room_id, "from": self._node}
                )

    async def room_stats(self, room_id: str) -> dict[str, Any]:
        """The SFU's per-participant stats of ``room_id``, from whichever node hosts it
        (empty when no node does). Never claims the room."""
        host = await self._router.current_host(room_id)
        if host is None or host == self._node or room_id in self._engine.room_ids:
            return self._engine.stats(room_id)
        result = await self._call(host, "stats", room_id, "")
        return dict(result) if isinstance(result, dict) else {}

    def local_stats(self, room_id: str) -> dict[str, Any]:
        """This node's SFU stats of ``room_id`` (empty unless hosted here)."""
        return self._engine.stats(room_id)

    async def evict(self, room_id: str) -> None:
        """A draining node gives the room up: its peer connections close, its claim goes, and
        the parties' rejoin places it on another node."""
        await self._close_here(room_id)

    # ------------------------------------------------------------------ host side

    async def _leave_here(self, room_id: str, participant_id: str) -> None:
        self._origins.pop((room_id, participant_id), None)
        self._locks.pop((room_id, participant_id), None)
        await self._engine.leave(room_id, participant_id)
        if room_id not in self._engine.room_ids:
            await self._router.release(room_id)

    async def _close_here(self, room_id: str) -> None:
        for key in [k for k in self._origins if k[0] == room_id]:
            self._origins.pop(key, None)
        for key in [k for k in self._locks if k[0] == room_id]:
            self._locks.pop(key, None)
        hosted = room_id in self._engine.room_ids
        await self._engine.close_room(room_id)
        if hosted:
            await self._router.release(room_id)
            log.info("media_room_closed", room_id=room_id, node=self._node)

    async def _from_engine(
        self, room_id: str, participant_id: str, message: dict[str, Any]
    ) -> None:
        """The local engine's callback: to the participant's socket, here or on its node."""
        origin = self._origins.get((room_id, participant_id), self._node)
        if origin == self._node:
            if self._deliver is not None:
                await self._deliver(room_id, participant_id, message)
            return
        await self._bus.publish(
            _topic(origin),
            {"k": "sig", "room": room_id, "participant": participant_id, "message": message},
        )

    async def _call(self, host: str, op: str, room_id: str, participant_id: str,
                    **args: Any) -> Any:
        request_id = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._bus.publish(
                _topic(host),
                {"k": "req", "id": request_id, "op": op, "from": self._node,
                 "room": room_id, "participant": participant_id, **args},
            )
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError:
            raise SignalError(errors.MEDIA_UNAVAILABLE, "the room's media node did not answer",
                              {"node": host}) from None
        finally:
            self._pending.pop(request_id, None)

    async def _on_event(self, event: dict[str, Any]) -> None:
        self._dispatch(event)

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("k")
        if kind == "rep":
            future = self._pending.get(str(event.get("id")))
            if future is None or future.done():
                return
            if event.get("ok"):
                future.set_result(event.get("result"))
            else:
                future.set_exception(SignalError(str(event.get("code") or errors.INTERNAL),
                                                 str(event.get("message") or "media error")))
        elif kind == "sig":
            self._tasks.spawn(self._deliver_remote(event))
        elif kind == "req":
            self._tasks.spawn(self._serve(event))
        elif kind == "close":
            self._tasks.spawn(self._close_here(str(event["room"])))

    async def _deliver_remote(self, event: dict[str, Any]) -> None:
        if self._deliver is not None:
            await self._deliver(str(event["room"]), str(event["participant"]), event["message"])

    async def _serve(self, event: dict[str, Any]) -> None:
        """Run a forwarded request on this node's engine, in order per participant."""
        room_id, participant_id = str(event["room"]), str(event["participant"])
        origin, op = str(event["from"]), event.get("op")
        key = (room_id, participant_id)
        reply: dict[str, Any] = {"k": "rep", "id": event.get("id"), "ok": True, "result": None}
        if op == "stats":  # read-only: no per-participant ordering needed
            reply["result"] = self._engine.stats(room_id)
            await self._bus.publish(_topic(origin), reply)
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                if op == "join":
                    self._router.adopt(room_id)  # refresh the claim from now on
                    await self._engine.join(
                        room_id, participant_id,
                        can_publish=bool(event.get("can_publish", True)),
                        kinds=tuple(str(k) for k in event.get("kinds", ("audio", "video"))),
                    )
                    self._origins[key] = origin
                elif op == "offer":
                    reply["result"] = await self._engine.handle_offer(
                        room_id, participant_id, str(event["sdp"])
                    )
                elif op == "answer":
                    await self._engine.handle_answer(room_id, participant_id, str(event["sdp"]))
                elif op == "ice":
                    await self._engine.add_ice_candidate(
                        room_id, participant_id, event.get("candidate")
                    )
                elif op == "leave":
                    await self._leave_here(room_id, participant_id)
                else:
                    raise SignalError(errors.INTERNAL, f"unknown media op {op!r}")
        except CodedError as exc:
            reply.update(ok=False, code=exc.code, message=exc.message)
        except Exception as exc:
            log.exception("media_route_op_failed", op=op, room_id=room_id)
            reply.update(ok=False, code=errors.INTERNAL, message=str(exc))
        await self._bus.publish(_topic(origin), reply)
