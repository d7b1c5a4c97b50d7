"""The WebSocket hub: authenticates sockets, dispatches client messages, drives the lifecycle.

One :class:`Hub` per node. It owns the sockets of this node (:class:`LocalRegistry`), delivers
through a :class:`Router` (local or Redis fan-out, chosen by the bus it is given), listens once to
the bus topic ``consultations`` (billing's events) and keeps the lifecycle timers: request timeout
and reconnect grace. Money is never computed here: every transition goes through
:class:`~signalling.ports.Consultations`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from aiohttp import WSMsgType, web

from kundlinow.bus import EventBus
from signalling import errors, protocol
from signalling.chat import ChatStore
from signalling.config import SignallingSettings
from signalling.connection import Connection, Replay, TokenBucket
from signalling.errors import SignalError
from signalling.masking import mask
from signalling.ports import (
    ACTIVE,
    ENDED,
    REQUESTED,
    Consultations,
    ConsultView,
    MediaPort,
    jsonable,
)
from signalling.presence import (
    AWAY,
    BUSY,
    OFFLINE,
    PresenceService,
    PresenceStore,
    room_key,
    user_key,
)
from signalling.routing import BusRouter, LocalRegistry
from signalling.waitlist import Waitlist
from signalling.watchers import StatusWatchers

log = structlog.get_logger(__name__)

AuditRecorder = Callable[[UUID, str, str, str, dict[str, Any]], Awaitable[None]]
"""(actor, action, subject type, subject id, details) -> recorded."""

CONSULTATIONS_TOPIC = "consultations"
_CODE = re.compile(r"[A-Z][A-Z_]{1,63}")
REPLAY_PAGE = 500


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: UUID
    role: str
    """``user``, ``consultant`` or ``admin``."""


Authenticator = Callable[[str], Identity]
"""Decodes a JWT into an :class:`Identity`; raises on anything invalid."""

Handler = Callable[[Connection, dict[str, Any]], Awaitable[dict[str, Any]]]


def _uuid(data: dict[str, Any], name: str) -> UUID:
    return UUID(data[name])


def _now() -> datetime:
    return datetime.now(UTC)


class Hub:
    """The signalling hub of one node."""

    def __init__(
        self,
        settings: SignallingSettings,
        *,
        bus: EventBus,
        store: PresenceStore,
        presence: PresenceService,
        chat: ChatStore,
        waitlist: Waitlist,
        consultations: Consultations,
        authenticate: Authenticator,
        media: MediaPort | None = None,
        node_id: str | None = None,
        ice_servers: Callable[[UUID], list[dict[str, Any]]] | None = None,
        multi_node: bool = False,
        audit: AuditRecorder | None = None,
    ) -> None:
        self.settings = settings
        self._audit = audit
        """Records admins observing a consultation (kundlinow.audit.record on the pool)."""
        self._ice_servers = ice_servers
        """The caller's ICE servers (turn.ice.build_ice_servers), sent with ``join_consult``."""
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.registry = LocalRegistry()
        self.watchers = StatusWatchers()
        self.router = BusRouter(
            bus, self.registry, self.node_id, self._on_control, multi_node=multi_node
        )
        self._bus = bus
        self._store = store
        self.presence = presence
        self.chat = chat
        self.waitlist = waitlist
        self._consultations = consultations
        self._authenticate = authenticate
        self._media = media
        self._rooms: dict[UUID, ConsultView] = {}
        """Consultations with sockets joined on this node (kept fresh by consult_state)."""
        self._media_joined: dict[tuple[UUID, UUID], str] = {}
        """(room, user) -> the socket whose peer connection the SFU holds."""
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._seen: set[tuple[UUID, UUID]] = set()
        """(room, party) observed connected to the room on some node (watchdog state)."""
        self._grace_elsewhere: set[tuple[UUID, UUID]] = set()
        """(room, party) whose grace timer runs on another node."""
        self._handlers: dict[str, Handler] = {
            "ping": self._ping,
            "consult_request": self._consult_request,
            "accept": self._accept,
            "reject": self._reject,
            "session_end": self._session_end,
            "join_consult": self._join_consult,
            "leave_consult": self._leave_consult,
            "message": self._message,
            "typing": self._typing,
            "media_state": self._media_state,
            "read": self._read,
            "call_offer": functools.partial(self._call_signal, "call_offer"),
            "call_answer": functools.partial(self._call_signal, "call_answer"),
            "ice_candidate": functools.partial(self._call_signal, "ice_candidate"),
            "presence": self._presence,
            "waitlist": self._waitlist,
        }
        # Every client message type the protocol accepts has a handler here ("auth" is answered
        # by _on_frame itself): a schema without one would fail at run time as INTERNAL.
        unhandled = protocol.CLIENT_TYPES - self._handlers.keys() - {"auth"}
        if unhandled:
            raise RuntimeError(f"client message types without a handler: {sorted(unhandled)}")

    # ------------------------------------------------------------------ lifecycle of the hub

    async def start(self) -> None:
        await self._store.start()
        await self.router.start()
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(ready), name="signalling-consultations")
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({waiter, self._listener}, return_when=asyncio.FIRST_COMPLETED)
        if self._listener.done():
            waiter.cancel()
            self._listener.result()
        self._watchdog = asyncio.create_task(self._watch_rooms(), name="signalling-watchdog")

    async def shutdown(self) -> None:
        """Close every socket with GOING_AWAY (RFC 6455 §7.4.1: 1001)."""
        conns = self.registry.all()
        await asyncio.gather(
            *(c.ws.close(code=errors.CLOSE_GOING_AWAY, message=b"server shutdown") for c in conns),
            return_exceptions=True,
        )

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        if self._listener is not None:
            tasks.append(self._listener)
        if self._watchdog is not None:
            tasks.append(self._watchdog)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._listener = None
        self._watchdog = None
        await self.router.close()
        await self._store.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("signalling_task_failed", task=task.get_name(), exc_info=task.exception())

    def _schedule(
        self, key: Hashable, delay: float, make: Callable[[], Coroutine[Any, Any, Any]]
    ) -> None:
        self._cancel_timer(key)

        def fire() -> None:
            self._timers.pop(key, None)
            self._spawn(make(), name=f"timer:{key}")

        self._timers[key] = asyncio.get_running_loop().call_later(delay, fire)

    def _cancel_timer(self, key: Hashable) -> None:
        handle = self._timers.pop(key, None)
        if handle is not None:
            handle.cancel()

    def has_timer(self, key: Hashable) -> bool:
        return key in self._timers

    @property
    def media(self) -> MediaPort | None:
        return self._media

    # ------------------------------------------------------------------ sockets

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /ws``: the token comes in ``Sec-WebSocket-Protocol`` or a first ``auth`` frame."""
        identity: Identity | None = None
        offered = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        prefix = protocol.TOKEN_PREFIX
        token = next((p[len(prefix) :] for p in offered if p.startswith(prefix)), None)
        if token is not None:
            try:
                identity = self._authenticate(token)
            except Exception:
                return web.json_response(
                    {"error": {"code": errors.UNAUTHENTICATED, "message": "invalid token",
                               "details": {}}},
                    status=401,
                )
        ws = web.WebSocketResponse(
            protocols=(protocol.PROTOCOL,),
            heartbeat=self.settings.heartbeat_s,
            max_msg_size=self.settings.hard_frame_bytes,
            compress=False,
        )
        await ws.prepare(request)
        if identity is None:
            identity = await self._await_auth(ws)
            if identity is None:
                return ws
        count = (await self._store.counts([user_key(identity.user_id)]))[0]
        if count >= self.settings.max_connections_per_user:
            await ws.send_str(
                protocol.error(None, errors.TOO_MANY_CONNECTIONS, "too many connections",
                               {"max": self.settings.max_connections_per_user})
            )
            await ws.close(code=errors.CLOSE_TOO_MANY_CONNECTIONS, message=b"too many connections")
            return ws
        bucket = TokenBucket(self.settings.rate_per_s, self.settings.rate_burst)
        conn = Connection(ws, request.transport, identity.user_id, identity.role, bucket)
        self.registry.add(conn)
        await self._store.add(user_key(conn.user_id))
        if conn.role == "consultant":
            await self._status_changed(conn.user_id)
        structlog.contextvars.bind_contextvars(user_id=str(conn.user_id))
        log.info("socket_connected", conn=conn.id, node=self.node_id)
        try:
            await conn.send(
                protocol.event(
                    "hello",
                    {
                        "protocol": protocol.PROTOCOL,
                        "version": protocol.VERSION,
                        "user_id": str(conn.user_id),
                        "role": conn.role,
                        "heartbeat_s": self.settings.heartbeat_s,
                        "max_frame_bytes": self.settings.max_frame_bytes,
                        "rate_per_s": self.settings.rate_per_s,
                    },
                )
            )
            await self._read_loop(conn)
        finally:
            await self._disconnected(conn)
        return ws

    async def _await_auth(self, ws: web.WebSocketResponse) -> Identity | None:
        deadline = time.monotonic() + self.settings.auth_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                msg = await ws.receive(timeout=remaining)
            except TimeoutError:
                await ws.send_str(
                    protocol.error(None, errors.AUTH_TIMEOUT, "no auth message in time")
                )
                await ws.close(code=errors.CLOSE_UNAUTHENTICATED, message=b"auth timeout")
                return None
            if msg.type != WSMsgType.TEXT:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                                WSMsgType.ERROR):
                    return None
                await ws.send_str(protocol.error(None, errors.UNAUTHENTICATED, "auth first"))
                continue
            try:
                message = protocol.decode(msg.data, self.settings.max_frame_bytes)
            except protocol.ProtocolError as exc:
                await ws.send_str(protocol.error(exc.msg_id, exc.code, exc.message, exc.details))
                continue
            if message.type != "auth":
                await ws.send_str(
                    protocol.error(message.id, errors.UNAUTHENTICATED, "send auth first")
                )
                continue
            try:
                identity = self._authenticate(message.data["token"])
            except Exception:
                await ws.send_str(
                    protocol.error(message.id, errors.UNAUTHENTICATED, "invalid token")
                )
                await ws.close(code=errors.CLOSE_UNAUTHENTICATED, message=b"invalid token")
                return None
            await ws.send_str(protocol.ack(message.id, {"user_id": str(identity.user_id)}))
            return identity

    async def _read_loop(self, conn: Connection) -> None:
        async for msg in conn.ws:
            if msg.type == WSMsgType.TEXT:
                await self._on_frame(conn, msg.data)
            elif msg.type == WSMsgType.BINARY:
                await conn.send(
                    protocol.error(None, errors.INVALID_MESSAGE, "binary frames are not accepted")
                )
            elif msg.type == WSMsgType.ERROR:
                log.info("socket_error", conn=conn.id, error=str(conn.ws.exception()))
                break

    async def _on_frame(self, conn: Connection, text: str) -> None:
        try:
            message = protocol.decode(text, self.settings.max_frame_bytes)
        except protocol.ProtocolError as exc:
            await conn.send(protocol.error(exc.msg_id, exc.code, exc.message, exc.details))
            return
        if not conn.bucket.take():
            await conn.send(
                protocol.error(message.id, errors.RATE_LIMITED, "too many messages",
                               {"rate_per_s": self.settings.rate_per_s})
            )
            return
        if message.type == "auth":
            await conn.send(protocol.ack(message.id, {"user_id": str(conn.user_id)}))
            return
        handler = self._handlers[message.type]
        try:
            result = await handler(conn, message.data)
        except SignalError as exc:
            await conn.send(protocol.error(message.id, exc.code, exc.message, exc.details))
            return
        except Exception as exc:
            code = getattr(exc, "code", None)
            if isinstance(code, str) and _CODE.fullmatch(code):
                # A domain error of billing (402 INSUFFICIENT_BALANCE, 409 ...) or of media
                # (BAD_SDP, GLARE ...): pass it on with its stable code.
                details = getattr(exc, "details", None)
                await conn.send(
                    protocol.error(
                        message.id, code, str(getattr(exc, "message", exc)),
                        jsonable(details) if isinstance(details, dict) else None,
                    )
                )
                return
            log.exception("signal_handler_failed", type=message.type, conn=conn.id)
            await conn.send(protocol.error(message.id, errors.INTERNAL, "internal error"))
            return
        await conn.send(protocol.ack(message.id, result))

    async def _disconnected(self, conn: Connection) -> None:
        rooms = list(conn.rooms)
        self.registry.remove(conn)
        self.watchers.forget(conn)
        dropped_at = _now()
        log.info("socket_disconnected", conn=conn.id, rooms=len(rooms))
        with contextlib.suppress(Exception):
            await self._store.remove(user_key(conn.user_id))
        if conn.role == "consultant":
            with contextlib.suppress(Exception):
                await self._status_changed(conn.user_id)
        for room in rooms:
            try:
                await self._left_room(conn, room, dropped_at=dropped_at)
            except Exception:
                log.exception("room_leave_failed", consultation_id=str(room))
        for room in rooms:
            if not self.registry.by_room.get(room):
                self._rooms.pop(room, None)

    # ------------------------------------------------------------------ rooms and presence

    def _participant(self, view: ConsultView, user_id: UUID) -> bool:
        return user_id in view.parties()

    def _joined(self, conn: Connection, data: dict[str, Any]) -> ConsultView:
        room = _uuid(data, "consultation_id")
        view = self._rooms.get(room)
        if room not in conn.rooms or view is None:
            raise SignalError(
                errors.NOT_JOINED, "join_consult first", {"consultation_id": str(room)}
            )
        return view

    def _joined_party(self, conn: Connection, data: dict[str, Any]) -> ConsultView:
        view = self._joined(conn, data)
        if not self._participant(view, conn.user_id):
            raise SignalError(errors.FORBIDDEN, "observers cannot send to the room")
        return view

    async def _left_room(
        self, conn: Connection, room: UUID, *, dropped_at: datetime | None
    ) -> None:
        view = self._rooms.get(room)
        if view is None:
            return
        if not self._participant(view, conn.user_id):
            if self._media is not None and self._media_joined.get((room, conn.user_id)) == conn.id:
                del self._media_joined[(room, conn.user_id)]
                with contextlib.suppress(Exception):
                    await self._media.leave(str(room), str(conn.user_id))
            return
        await self._store.remove(room_key(room, conn.user_id))
        if self._media is not None and self._media_joined.get((room, conn.user_id)) == conn.id:
            del self._media_joined[(room, conn.user_id)]
            with contextlib.suppress(Exception):
                await self._media.leave(str(room), str(conn.user_id))
        if dropped_at is None or view.state != ACTIVE:
            return
        remaining = (await self._store.counts([room_key(room, conn.user_id)]))[0]
        if remaining > 0:
            return
        await self._party_dropped(room, conn.user_id, dropped_at)

    async def _party_dropped(self, room: UUID, user_id: UUID, dropped_at: datetime) -> None:
        grace = self.settings.reconnect_grace_s
        log.info("party_dropped", consultation_id=str(room), user=str(user_id), grace_s=grace)
        await self.router.to_room(
            room,
            protocol.event(
                "presence",
                {"user_id": str(user_id), "status": "reconnecting",
                 "consultation_id": str(room), "grace_s": grace},
            ),
        )
        self._schedule(
            ("grace", room, user_id), grace,
            lambda: self._grace_expired(room, user_id, dropped_at),
        )
        await self.router.control(
            {"e": "dropped", "room": str(room), "user": str(user_id), "node": self.node_id}
        )

    async def _grace_expired(self, room: UUID, user_id: UUID, dropped_at: datetime) -> None:
        if (await self._store.counts([room_key(room, user_id)]))[0] > 0:
            return
        view = await self._consultations.get(room)
        if view.state != ACTIVE:
            return
        log.info("party_gone", consultation_id=str(room), user=str(user_id))
        await self._consultations.end(
            room, "disconnected", actor_id=user_id, ended_at=dropped_at
        )

    async def _status_changed(self, consultant_id: UUID) -> None:
        """An astrologer connected, left or changed away: every node tells its watchers."""
        await self.router.control({"e": "consultant_status", "consultant_id": str(consultant_id)})

    async def _tell_status(self, consultant_id: UUID) -> None:
        if self.watchers.watched(consultant_id):
            await self.watchers.tell(consultant_id, await self.presence.get(consultant_id))

    async def _on_control(self, event: dict[str, Any]) -> None:
        if event.get("e") == "consultant_status":
            await self._tell_status(UUID(event["consultant_id"]))
            return
        key = (UUID(event["room"]), UUID(event["user"]))
        if event.get("e") == "rejoined":
            self._cancel_timer(("grace", *key))
            self._grace_elsewhere.discard(key)
        elif event.get("e") == "dropped" and event.get("node") != self.node_id:
            self._grace_elsewhere.add(key)
        elif event.get("e") == "left":
            self._seen.discard(key)

    async def _watch_rooms(self) -> None:
        """Notice parties whose sockets vanished without a goodbye (their node died).

        A node that loses a socket starts the grace itself; a node killed outright cannot. Every
        node therefore checks, every presence heartbeat, the parties of the active rooms it
        holds sockets for: a party seen connected before and now on no live node gets the same
        grace as a dropped socket, its drop time taken as one node TTL ago (in the caller's
        favour: at most that much earlier than the truth).
        """
        interval = self.settings.presence_heartbeat_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self._check_rooms()
            except Exception:
                log.warning("room_watchdog_failed", exc_info=True)

    async def _check_rooms(self) -> None:
        pairs = [
            (room, user)
            for room, view in self._rooms.items()
            if view.state == ACTIVE
            for user in view.parties()
        ]
        if not pairs:
            self._seen.clear()
            return
        counts = await self._store.counts([room_key(room, user) for room, user in pairs])
        live = set(pairs)
        self._seen &= live
        self._grace_elsewhere &= live
        for pair, count in zip(pairs, counts, strict=True):
            if count > 0:
                self._seen.add(pair)
                continue
            if pair not in self._seen or self.has_timer(("grace", *pair)):
                continue
            if pair in self._grace_elsewhere:
                continue
            self._seen.discard(pair)
            dropped_at = _now() - timedelta(seconds=self.settings.presence_node_ttl_s)
            await self._party_dropped(pair[0], pair[1], dropped_at)

    # ------------------------------------------------------------------ billing's events

    async def _listen(self, ready: asyncio.Event) -> None:
        async with self._bus.subscribe(CONSULTATIONS_TOPIC) as events:
            ready.set()
            async for event in events:
                try:
                    await self._on_consultation_event(event)
                except Exception:
                    log.exception("consultation_event_failed", event=event.get("event"))

    async def _send_parties(self, view_id: UUID, users: tuple[UUID, ...], frame: str) -> None:
        """Local delivery to both parties' sockets and to observers in the room (once each)."""
        targets: dict[str, Connection] = {}
        for user_id in users:
            for conn in self.registry.by_user.get(user_id, ()):
                targets[conn.id] = conn
        for conn in self.registry.by_room.get(view_id, ()):
            targets[conn.id] = conn
        for conn in list(targets.values()):
            await conn.send(frame)

    async def _on_consultation_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "consult_state":
            await self._on_state(ConsultView.from_json(event["consultation"]))
        elif kind == "billing_tick":
            room = UUID(str(event["consultation_id"]))
            caller = UUID(str(event["caller_id"]))
            consultant = UUID(str(event["consultant_id"]))
            data = {
                "consultation_id": str(room),
                "minutes": int(event["minutes"]),
                "amount_paise": int(event["amount_paise"]),
            }
            # The caller's balance is the caller's business only.
            await self.registry.send_users(
                [caller], protocol.event("billing_tick",
                                         {**data, "balance_paise": event.get("balance_paise")}),
            )
            await self.registry.send_users(
                [consultant], protocol.event("billing_tick", {**data, "balance_paise": None})
            )
        elif kind == "balance_warning":
            room = UUID(str(event["consultation_id"]))
            users = (UUID(str(event["caller_id"])), UUID(str(event["consultant_id"])))
            await self._send_parties(
                room, users,
                protocol.event("balance_warning", {"consultation_id": str(room),
                                                   "minutes_left": int(event["minutes_left"])}),
            )

    async def _on_state(self, view: ConsultView) -> None:
        if view.id in self._rooms:
            self._rooms[view.id] = view
        frame = protocol.event("consult_state", {"consultation": view.raw})
        await self._send_parties(view.id, view.parties(), frame)
        if view.state == REQUESTED:
            await self.registry.send_users(
                [view.consultant_id], protocol.event("consult_request", {"consultation": view.raw})
            )
            return
        self._cancel_timer(("request", view.id))
        # Every node sees each state change: busy on accept, free again at the end.
        await self._tell_status(view.consultant_id)
        if view.state != ENDED:
            return
        for user_id in view.parties():
            self._cancel_timer(("grace", view.id, user_id))
        await self._send_parties(
            view.id,
            view.parties(),
            protocol.event(
                "session_end",
                {
                    "consultation_id": str(view.id),
                    "reason": view.end_reason or "completed",
                    "ended_at": view.raw.get("ended_at"),
                    "minutes": view.raw.get("minutes_charged"),
                    "amount_paise": view.raw.get("amount_charged_paise"),
                },
            ),
        )
        for conn in list(self.registry.by_room.get(view.id, ())):
            if self._participant(view, conn.user_id):
                with contextlib.suppress(Exception):
                    await self._store.remove(room_key(view.id, conn.user_id))
            self.registry.leave(view.id, conn)
        self._rooms.pop(view.id, None)
        for key in [k for k in self._media_joined if k[0] == view.id]:
            del self._media_joined[key]
        if self._media is not None:
            with contextlib.suppress(Exception):
                await self._media.close_room(str(view.id))
        await self._offer_next(view.consultant_id)

    # ------------------------------------------------------------------ waitlist

    async def _offer_next(self, consultant_id: UUID) -> None:
        if await self._consultations.live_for_consultant(consultant_id) is not None:
            return
        entry = await self.waitlist.offer_next(consultant_id)
        if entry is None:
            return
        offer_s = self.settings.waitlist_offer_s
        log.info("waitlist_offered", consultant=str(consultant_id), caller=str(entry.caller_id))
        await self.router.to_users(
            [entry.caller_id],
            protocol.event("waitlist", {"consultant_id": str(consultant_id), "status": "offered",
                                        "mode": entry.mode, "offer_expires_in_s": offer_s}),
        )
        self._schedule(
            ("offer", consultant_id), offer_s + 0.05,
            lambda: self._offer_expired(consultant_id, entry.caller_id),
        )

    async def _offer_expired(self, consultant_id: UUID, caller_id: UUID) -> None:
        await self._offer_next(consultant_id)
        if not await self.waitlist.is_open(consultant_id, caller_id):
            await self.router.to_users(
                [caller_id],
                protocol.event("waitlist", {"consultant_id": str(consultant_id),
                                            "status": "expired"}),
            )

    # ------------------------------------------------------------------ handlers

    async def _ping(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        return {"server_time": _now().isoformat()}

    async def _get(self, room: UUID) -> ConsultView:
        return await self._consultations.get(room)

    async def _consult_request(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        consultant_id = _uuid(data, "consultant_id")
        mode = str(data["mode"])
        wants_waitlist = bool(data.get("waitlist", False))
        if consultant_id == conn.user_id:
            raise SignalError(errors.FORBIDDEN, "you cannot consult yourself")
        status = await self.presence.get(consultant_id)
        if status in (OFFLINE, AWAY):
            raise SignalError(errors.CONSULTANT_OFFLINE, f"the astrologer is {status}",
                              {"status": status})
        blocked = status == BUSY or await self.waitlist.blocked_for(consultant_id, conn.user_id)
        if not blocked:
            try:
                view = await self._consultations.request(conn.user_id, consultant_id, mode)
            except Exception as exc:
                if getattr(exc, "code", None) != errors.CONSULTANT_UNAVAILABLE:
                    raise
                blocked = True
                if not wants_waitlist:
                    raise
            else:
                await self.waitlist.taken(consultant_id, conn.user_id)
                self._cancel_timer(("offer", consultant_id))
                self._schedule(
                    ("request", view.id), self.settings.request_timeout_s,
                    lambda: self._request_expired(view.id),
                )
                return {"consultation": view.raw}
        if not wants_waitlist:
            raise SignalError(errors.CONSULTANT_UNAVAILABLE, "the astrologer is busy",
                              {"waitlist": True})
        position = await self.waitlist.join(consultant_id, conn.user_id, mode)
        return {"waitlisted": True, "position": position, "consultant_id": str(consultant_id)}

    async def _request_expired(self, room: UUID) -> None:
        view = await self._consultations.get(room)
        if view.state == REQUESTED:
            log.info("request_timed_out", consultation_id=str(room))
            await self._consultations.end(room, "timeout")

    async def _accept(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        view = await self._consultations.accept(_uuid(data, "consultation_id"), conn.user_id)
        return {"consultation": view.raw}

    async def _reject(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        view = await self._consultations.reject(_uuid(data, "consultation_id"), conn.user_id)
        return {"consultation": view.raw}

    async def _session_end(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        room = _uuid(data, "consultation_id")
        view = await self._get(room)
        participant = self._participant(view, conn.user_id)
        if not participant and conn.role != "admin":
            raise SignalError(errors.FORBIDDEN, "not your consultation")
        if view.state == REQUESTED and conn.user_id == view.consultant_id:
            view = await self._consultations.reject(room, conn.user_id)
            return {"consultation": view.raw}
        if not participant:
            reason = "admin"
        elif view.state == REQUESTED:
            reason = "cancelled"
        else:
            reason = "completed"
        statement = await self._consultations.end(room, reason, actor_id=conn.user_id)
        return {"consultation_id": str(room), "statement": statement}

    async def authorize(self, user_id: UUID, role: str, room: UUID) -> ConsultView:
        """The consultation if ``user_id`` may see it (a participant or an admin)."""
        try:
            view = await self._get(room)
        except Exception as exc:
            if getattr(exc, "code", None) == errors.NOT_FOUND:
                raise SignalError(errors.NOT_FOUND, "no such consultation") from None
            raise
        if not self._participant(view, user_id) and role != "admin":
            raise SignalError(errors.FORBIDDEN, "only the participants may join")
        return view

    async def _join_consult(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        room = _uuid(data, "consultation_id")
        view = await self.authorize(conn.user_id, conn.role, room)
        participant = self._participant(view, conn.user_id)
        first = room not in conn.rooms
        self._rooms[room] = view
        if first:
            self.registry.join(room, conn)
            if not participant and self._audit is not None:
                # An admin watching a private consultation is always on the record.
                await self._audit(conn.user_id, "observer_joined", "consultation", str(room),
                                  {"node": self.node_id, "state": view.state})
            if participant and view.state != ENDED:
                await self._store.add(room_key(room, conn.user_id))
                await self.router.control(
                    {"e": "rejoined", "room": str(room), "user": str(conn.user_id)}
                )
                await self.router.to_room(
                    room,
                    protocol.event("presence", {"user_id": str(conn.user_id), "status": "online",
                                                "consultation_id": str(room)}),
                    exclude=conn.id,
                )
        replayed = 0
        if "since" in data:
            replayed = await self._replay(conn, room, int(data["since"]))
        return {
            "consultation": view.raw,
            "last_seq": await self.chat.last_seq(room),
            "replayed": replayed,
            "reads": {str(k): v for k, v in (await self.chat.reads(room)).items()},
            # STUN/TURN servers with a fresh credential for this user; [] without TURN.
            "ice_servers": self._ice_servers(conn.user_id) if self._ice_servers else [],
        }

    async def _replay(self, conn: Connection, room: UUID, since: int) -> int:
        """Send every message after ``since`` in order, then the live ones held meanwhile."""
        replay = Replay()
        conn.replays[room] = replay
        cursor = since
        sent = 0
        try:
            while True:
                page = await self.chat.since(room, cursor, REPLAY_PAGE)
                for message in page:
                    await conn.send(protocol.event("message", {"message": message.to_json()}))
                    cursor = message.seq
                    sent += 1
                if len(page) < REPLAY_PAGE:
                    break
        finally:
            if conn.replays.get(room) is replay:
                del conn.replays[room]
            conn.cursors[room] = max(cursor, conn.cursors.get(room, 0))
        for seq, frame in sorted(replay.pending, key=lambda item: item[0]):
            if seq > cursor:
                await conn.send(frame)
                cursor = seq
        return sent

    async def _leave_consult(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        room = _uuid(data, "consultation_id")
        if room in conn.rooms:
            await self._left_room(conn, room, dropped_at=None)
            self.registry.leave(room, conn)
            # A deliberate leave is not a drop: no node's watchdog should start a grace for it.
            await self.router.control(
                {"e": "left", "room": str(room), "user": str(conn.user_id)}
            )
            if not self.registry.by_room.get(room):
                self._rooms.pop(room, None)
        return {"consultation_id": str(room)}

    async def _message(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        view = self._joined_party(conn, data)
        if view.state != ACTIVE:
            raise SignalError(errors.CONSULT_NOT_ACTIVE, "the consultation is not active",
                              {"state": view.state})
        text: str | None = data.get("text")
        upload_id: UUID | None = None
        masked = False
        if text is not None:
            result = mask(text, self.settings.masking)
            text, masked = result.text, result.masked
        else:
            upload_id = _uuid(data, "upload_id")
            meta = await self.chat.upload_meta(upload_id)
            if meta is None or meta.consultation_id != view.id or meta.uploader_id != conn.user_id:
                raise SignalError(errors.UPLOAD_NOT_FOUND, "no such upload of yours here")
        message, new = await self.chat.append(
            view.id, conn.user_id, str(data["client_id"]), text=text, upload_id=upload_id,
            masked=masked,
        )
        body = message.to_json()
        if new:
            await self.router.to_room(
                view.id, protocol.event("message", {"message": body}), exclude=conn.id,
                seq=message.seq,
            )
        return {"message": body, "duplicate": not new}

    async def _typing(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        view = self._joined_party(conn, data)
        await self.router.to_room(
            view.id,
            protocol.event("typing", {"consultation_id": str(view.id),
                                      "user_id": str(conn.user_id),
                                      "typing": bool(data["typing"])}),
            exclude=conn.id,
        )
        return {}

    async def _media_state(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        """A party muted/unmuted or turned the camera off/on: tell the room. Not stored: the
        clients send their state again when a call starts and when either party rejoins."""
        view = self._joined_party(conn, data)
        if view.state != ACTIVE:
            raise SignalError(errors.CONSULT_NOT_ACTIVE, "the consultation is not active",
                              {"state": view.state})
        await self.router.to_room(
            view.id,
            protocol.event("media_state", {"consultation_id": str(view.id),
                                           "user_id": str(conn.user_id), "role": conn.role,
                                           "audio": bool(data["audio"]),
                                           "video": bool(data["video"])}),
            exclude=conn.id,
        )
        return {}

    async def _read(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        view = self._joined_party(conn, data)
        seq = await self.chat.mark_read(view.id, conn.user_id, int(data["seq"]))
        await self.router.to_room(
            view.id,
            protocol.event("read", {"consultation_id": str(view.id),
                                    "user_id": str(conn.user_id), "seq": seq}),
            exclude=conn.id,
        )
        return {"seq": seq}

    async def _call_signal(
        self, kind: str, conn: Connection, data: dict[str, Any]
    ) -> dict[str, Any]:
        view = self._joined(conn, data)
        if view.state != ACTIVE:
            raise SignalError(errors.CONSULT_NOT_ACTIVE, "the consultation is not active",
                              {"state": view.state})
        target = data.get("target") or ("sfu" if self._media is not None else "peer")
        if target == "peer":
            if not self._participant(view, conn.user_id):
                raise SignalError(errors.FORBIDDEN, "observers cannot send to the room")
            payload = {k: v for k, v in data.items() if k != "target"}
            await self.router.to_room(
                view.id,
                protocol.event(kind, {**payload, "from": str(conn.user_id)}),
                exclude=conn.id,
            )
            return {}
        return await self._to_media(conn, view, kind, data)

    async def _to_media(
        self, conn: Connection, view: ConsultView, kind: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        media = self._media
        if media is None:
            raise SignalError(errors.MEDIA_UNAVAILABLE, "no media server on this node")
        room, participant = str(view.id), str(conn.user_id)
        key = (view.id, conn.user_id)
        if kind == "call_offer":
            if self._media_joined.get(key) != conn.id:
                # First offer of this socket: a fresh peer connection (a rejoin replaces the
                # old one; aiortc has no ICE restart). Observers subscribe only.
                await media.join(room, participant,
                                 can_publish=self._participant(view, conn.user_id))
                self._media_joined[key] = conn.id
            answer = await media.handle_offer(room, participant, str(data["sdp"]))
            await conn.send(protocol.event("call_answer", {"consultation_id": room,
                                                           "from": "sfu", "sdp": answer}))
        elif kind == "call_answer":
            await media.handle_answer(room, participant, str(data["sdp"]))
        else:
            await media.add_ice_candidate(room, participant, data.get("candidate"))
        return {}

    async def send_signal(self, room_id: str, participant_id: str, message: dict[str, Any]) -> None:
        """The media engine's callback: a server-initiated offer or candidate to a participant.

        ``message`` is ``{"type": "call_offer", "data": {"type": "offer", "sdp": ...}}``; it goes
        to the participant's socket(s) on this node joined to the room (signals of a room hosted
        by another node arrive through ``signalling.media_routing.RoutedMedia``).
        """
        kind = str(message.get("type", ""))
        if kind not in ("call_offer", "call_answer", "ice_candidate"):
            raise ValueError(f"not a signal: {kind!r}")
        inner = message.get("data")
        body: dict[str, Any] = inner if isinstance(inner, dict) else message
        data: dict[str, Any] = {"consultation_id": room_id, "from": "sfu"}
        if kind == "ice_candidate":
            data["candidate"] = body.get("candidate")
        else:
            data["sdp"] = body.get("sdp")
        room = UUID(room_id)
        user = UUID(participant_id)
        frame = protocol.event(kind, data)
        owner = self._media_joined.get((room, user))
        for conn in list(self.registry.by_room.get(room, ())):
            if conn.user_id == user and (owner is None or conn.id == owner):
                await conn.send(frame)

    async def _presence(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if "status" in data:
            if conn.role != "consultant":
                raise SignalError(errors.FORBIDDEN, "only astrologers set their availability")
            await self.presence.set_away(conn.user_id, data["status"] == AWAY)
            result["status"] = (await self.presence.get(conn.user_id))
            await self._status_changed(conn.user_id)
        if "consultant_ids" in data:
            ids = [UUID(u) for u in data["consultant_ids"]]
            if data.get("watch"):
                self.watchers.watch(conn, ids)
            statuses = await self.presence.statuses(ids)
            result["statuses"] = {str(k): v for k, v in statuses.items()}
        return result

    async def _waitlist(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
        consultant_id = _uuid(data, "consultant_id")
        if data["action"] == "leave":
            left = await self.waitlist.leave(consultant_id, conn.user_id)
            return {"left": left}
        if consultant_id == conn.user_id:
            raise SignalError(errors.FORBIDDEN, "you cannot wait for yourself")
        position = await self.waitlist.join(consultant_id, conn.user_id,
                                            str(data.get("mode", "chat")))
        return {"waitlisted": True, "position": position, "consultant_id": str(consultant_id)}
