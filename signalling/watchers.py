"""Status watchers: sockets that asked to be told when astrologers' statuses change.

A caller's list of astrologers sends ``presence`` with ``consultant_ids`` and ``watch: true``;
from then on this node pushes ``consultant_status`` to that socket whenever one of them connects,
goes away or back, starts or ends a consultation, or leaves (on any node: the hub passes the
change to every node as a control notice). No client polls.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from uuid import UUID

from signalling import protocol
from signalling.connection import Connection

if TYPE_CHECKING:
    from signalling.context import HubContext

STATUS_CHANGED = "consultant_status"
"""The control notice (``e``) that an astrologer's status may have changed."""

MAX_WATCHED_PER_SOCKET = 500
"""A socket watching more astrologers than this forgets the oldest (memory stays bounded)."""


class StatusWatchers:
    """Which sockets of this node watch which astrologers."""

    def __init__(self) -> None:
        self._by_consultant: dict[UUID, dict[str, Connection]] = {}
        self._by_conn: dict[str, list[UUID]] = {}

    def watch(self, conn: Connection, consultant_ids: Iterable[UUID]) -> None:
        watched = self._by_conn.setdefault(conn.id, [])
        for consultant_id in consultant_ids:
            if consultant_id in watched:
                continue
            watched.append(consultant_id)
            self._by_consultant.setdefault(consultant_id, {})[conn.id] = conn
        while len(watched) > MAX_WATCHED_PER_SOCKET:
            self._drop(conn.id, watched.pop(0))

    def forget(self, conn: Connection) -> None:
        for consultant_id in self._by_conn.pop(conn.id, []):
            self._drop(conn.id, consultant_id)

    def _drop(self, conn_id: str, consultant_id: UUID) -> None:
        conns = self._by_consultant.get(consultant_id)
        if conns is not None:
            conns.pop(conn_id, None)
            if not conns:
                del self._by_consultant[consultant_id]

    def watched(self, consultant_id: UUID) -> bool:
        return consultant_id in self._by_consultant

    async def tell(self, consultant_id: UUID, status: str) -> None:
        frame = protocol.event(
            "consultant_status", {"consultant_id": str(consultant_id), "status": status}
        )
        for conn in list(self._by_consultant.get(consultant_id, {}).values()):
            await conn.send(frame)


async def status_changed(ctx: HubContext, consultant_id: UUID) -> None:
    """An astrologer connected, left or changed away on this node: every node tells its
    watchers (the control notice reaches this node too)."""
    await ctx.router.control({"e": STATUS_CHANGED, "consultant_id": str(consultant_id)})


async def tell_status(ctx: HubContext, consultant_id: UUID) -> None:
    """Push the astrologer's current status to this node's watchers (none: no lookup)."""
    if ctx.watchers.watched(consultant_id):
        await ctx.watchers.tell(consultant_id, await ctx.services.presence.get(consultant_id))
